//! `Counted<Cpu, false>`: host memory hidden from zero-copy readers (how `counted:candle` stands in
//! for device memory) keeps every op and conversion of the conformance suite exact.
tensorbridge_conformance::conformance_suite!(
    tensorbridge_counted::Counted<tensorbridge_cpu::Cpu, false>,
    tensorbridge_core::Device::Cpu
);
