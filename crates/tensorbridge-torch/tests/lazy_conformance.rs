//! The deferred-execution decorator over libtorch: `Lazy<Torch>` passes the same suite (libtorch
//! storage is host memory on the CPU device, so fused chains read it in place).
tensorbridge_conformance::conformance_suite!(
    tensorbridge_lazy::Lazy<tensorbridge_torch::Torch>,
    tensorbridge_core::Device::Cpu
);

/// Raw bool memory lifted into a lazy graph over libtorch is normalised on ingress.
#[test]
fn raw_bool_memory_is_normalised_on_ingress() {
    use std::sync::Arc;
    use tensorbridge_core::{DType, Device, Layout, Tensor};
    use tensorbridge_lazy::Lazy;
    use tensorbridge_torch::Torch;
    tensorbridge_conformance::check_raw_bool_ingress::<Lazy<Torch>>(&Device::Cpu, |bytes| {
        let owner = Arc::new(bytes.to_vec());
        // SAFETY: `owner`'s bytes are valid for `len` reads and live as long as the storage,
        // which keeps the Arc.
        let s = unsafe {
            Torch::from_raw(
                owner.as_ptr(),
                owner.len(),
                DType::Bool,
                &Device::Cpu,
                owner.clone(),
            )
        }?;
        let t = Tensor::from_storage(Arc::new(s), Layout::contiguous(&[bytes.len()]))?;
        Lazy::lift(&t)
    });
}
