//! The backend-generic conformance suite, run on the CPU backend.

tensorbridge_conformance::conformance_suite!(tensorbridge_cpu::Cpu, tensorbridge_core::Device::Cpu);
