//! The shared conformance suite on libtorch's CPU device (every CI run).
tensorbridge_conformance::conformance_suite!(
    tensorbridge_torch::Torch,
    tensorbridge_core::Device::Cpu
);

/// Bool memory with bytes other than 0/1, taken by `Torch::from_raw` (`tb.from_torch`, DLPack)
/// and by `from_tch` (a tch tensor over such memory), is normalised on the way in.
#[test]
fn raw_bool_memory_is_normalised_on_ingress() {
    use std::sync::Arc;
    use tensorbridge_core::{DType, Device, Layout, Tensor};
    use tensorbridge_torch::{from_tch, Torch};
    tensorbridge_conformance::check_raw_bool_ingress::<Torch>(&Device::Cpu, |bytes| {
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
        Tensor::from_storage(Arc::new(s), Layout::contiguous(&[bytes.len()]))
    });
    tensorbridge_conformance::check_raw_bool_ingress::<Torch>(&Device::Cpu, |bytes| {
        // A libtorch bool tensor over the raw bytes, as torch.from_numpy(a.view(np.bool_)) makes.
        let t = tch::Tensor::from_slice(bytes)
            .f_view_dtype(tch::Kind::Bool)
            .map_err(|e| tensorbridge_core::Error::Backend {
                backend: "torch",
                message: e.to_string(),
            })?;
        from_tch(&t)
    });
}
