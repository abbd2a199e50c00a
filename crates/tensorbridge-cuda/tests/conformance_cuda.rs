//! The conformance suite on `cuda:0`, in builds with the `cuda` feature. Without a usable GPU each
//! test prints why and returns, unless `TB_REQUIRE_GPU=1` (set by `scripts/gpu-check`), where a
//! missing device fails the test instead.
#![cfg(feature = "cuda")]

/// `cuda:0` when it opens; otherwise returns from the calling test (or panics when a GPU is
/// required).
macro_rules! gpu {
    () => {
        match tensorbridge_cuda::cuda_device_count() {
            Ok(_) => tensorbridge_core::Device::Cuda(0),
            Err(e) if std::env::var_os("TB_REQUIRE_GPU").is_some() => {
                panic!("TB_REQUIRE_GPU is set but there is no usable GPU: {e}")
            }
            Err(e) => {
                eprintln!("skipped: no CUDA device ({e})");
                return;
            }
        }
    };
}

tensorbridge_conformance::conformance_suite!(
    tensorbridge_cuda::Cuda,
    gpu!(),
    unsupported = [
        tensorbridge_core::DType::U16,
        tensorbridge_core::DType::U64,
        tensorbridge_core::DType::I8
    ],
);
