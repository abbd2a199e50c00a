//! The deferred-execution decorator over libtorch: `Lazy<Torch>` passes the same suite (libtorch
//! storage is host memory on the CPU device, so fused chains read it in place).
tensorbridge_conformance::conformance_suite!(
    tensorbridge_lazy::Lazy<tensorbridge_torch::Torch>,
    tensorbridge_core::Device::Cpu
);
