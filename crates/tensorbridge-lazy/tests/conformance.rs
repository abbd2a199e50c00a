//! The backend-generic conformance suite, run on `Lazy<Cpu>`: every op recorded, then evaluated
//! (fused where elementwise) when the suite reads the result back. Another target backend is one
//! more line, e.g. `conformance_suite!(Lazy<tensorbridge_torch::Torch>, Device::Cpu)` in a test
//! file of a crate that depends on both.

use tensorbridge_core::Device;
use tensorbridge_cpu::Cpu;
use tensorbridge_lazy::Lazy;

tensorbridge_conformance::conformance_suite!(Lazy<Cpu>, Device::Cpu);
