//! The conformance suite on `cuda:0`, in builds with the `cuda` feature: ignored (with the reason)
//! unless asked for with `--include-ignored`, which `scripts/gpu-check` does on a GPU machine; there
//! a missing device fails the tests.
#![cfg(feature = "cuda")]

/// `cuda:0`, or a panic naming why it cannot be used.
macro_rules! gpu {
    () => {
        match tensorbridge_candle::cuda_device_count() {
            Ok(_) => tensorbridge_core::Device::Cuda(0),
            Err(e) => panic!("this test needs a usable CUDA GPU: {e}"),
        }
    };
}

tensorbridge_conformance::conformance_suite!(
    tensorbridge_candle::Candle,
    gpu!(),
    unsupported = [
        tensorbridge_core::DType::U16,
        tensorbridge_core::DType::U64,
        tensorbridge_core::DType::I8
    ],
    ignore = "needs a CUDA GPU; scripts/gpu-check runs it with --include-ignored",
);
