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

/// This backend takes host data only through `from_host`; foreign bool bytes reach it through
/// the core's `host_array_from_bytes`, which normalises them.
#[test]
fn raw_bool_memory_is_normalised_on_ingress() {
    use tensorbridge_core::host::host_array_from_bytes;
    use tensorbridge_core::{DType, Device, Tensor};
    tensorbridge_conformance::check_raw_bool_ingress::<tensorbridge_candle::Candle>(
        &Device::Cpu,
        |bytes| {
            let h = host_array_from_bytes(DType::Bool, &[bytes.len()], bytes)?;
            Tensor::from_host(h, &Device::Cpu)
        },
    );
}
