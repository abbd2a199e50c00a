//! The backend-generic conformance suite on candle's CPU device: every op of this crate runs in CI
//! without a GPU. dtypes candle lacks must fail with `UnsupportedDType`, which the suite checks.

tensorbridge_conformance::conformance_suite!(
    tensorbridge_candle::Candle,
    tensorbridge_core::Device::Cpu,
    unsupported = [
        tensorbridge_core::DType::U16,
        tensorbridge_core::DType::U64,
        tensorbridge_core::DType::I8
    ],
);
