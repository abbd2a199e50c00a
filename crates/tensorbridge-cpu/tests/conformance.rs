//! The backend-generic conformance suite, run on the CPU backend.

tensorbridge_conformance::conformance_suite!(tensorbridge_cpu::Cpu, tensorbridge_core::Device::Cpu);

/// NumPy/DLPack bool memory with bytes other than 0/1, taken zero-copy by `Cpu::from_foreign`
/// (what `tb.from_numpy` and `tb.from_dlpack` use), is normalised on the way in.
#[test]
fn raw_bool_memory_is_normalised_on_ingress() {
    use std::sync::Arc;
    use tensorbridge_core::{DType, Device, Layout, Tensor};
    use tensorbridge_cpu::Cpu;
    tensorbridge_conformance::check_raw_bool_ingress::<Cpu>(&Device::Cpu, |bytes| {
        let owner = Arc::new(bytes.to_vec());
        // SAFETY: `owner`'s bytes are valid for `len` reads and live as long as the storage,
        // which keeps the Arc.
        let s = unsafe {
            Cpu::from_foreign_bytes(owner.as_ptr(), owner.len(), DType::Bool, owner.clone())
        };
        Tensor::from_storage(Arc::new(s), Layout::contiguous(&[bytes.len()]))
    });
}
