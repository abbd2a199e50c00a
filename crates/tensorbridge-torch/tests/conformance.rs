//! The shared conformance suite on libtorch's CPU device (every CI run).
tensorbridge_conformance::conformance_suite!(
    tensorbridge_torch::Torch,
    tensorbridge_core::Device::Cpu
);
