//! The backend-generic conformance suite, run on `Lazy<Cpu>`: every op recorded, then evaluated
//! (fused where elementwise) when the suite reads the result back. Another target backend is one
//! more line, e.g. `conformance_suite!(Lazy<tensorbridge_torch::Torch>, Device::Cpu)` in a test
//! file of a crate that depends on both.

use tensorbridge_core::Device;
use tensorbridge_cpu::Cpu;
use tensorbridge_lazy::Lazy;

tensorbridge_conformance::conformance_suite!(Lazy<Cpu>, Device::Cpu);

/// Foreign bool memory lifted into a lazy graph is the CPU backend's, normalised on ingress.
#[test]
fn raw_bool_memory_is_normalised_on_ingress() {
    use std::sync::Arc;
    use tensorbridge_core::{DType, Layout, Tensor};
    tensorbridge_conformance::check_raw_bool_ingress::<Lazy<Cpu>>(&Device::Cpu, |bytes| {
        let owner = Arc::new(bytes.to_vec());
        // SAFETY: `owner`'s bytes are valid for `len` reads and live as long as the storage,
        // which keeps the Arc.
        let s = unsafe {
            Cpu::from_foreign_bytes(owner.as_ptr(), owner.len(), DType::Bool, owner.clone())
        };
        let t = Tensor::from_storage(Arc::new(s), Layout::contiguous(&[bytes.len()]))?;
        Lazy::lift(&t)
    });
}
