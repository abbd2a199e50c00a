//! The deferred-execution decorator over candle (`"lazy:candle"`): `Lazy<Candle>` passes the same
//! suite, with the same dtypes candle lacks refused by name (candle's storage is not host memory
//! readable in place, so the graph runs op by op on candle's kernels).

tensorbridge_conformance::conformance_suite!(
    tensorbridge_lazy::Lazy<tensorbridge_candle::Candle>,
    tensorbridge_core::Device::Cpu,
    unsupported = [
        tensorbridge_core::DType::U16,
        tensorbridge_core::DType::U64,
        tensorbridge_core::DType::I8
    ],
);
