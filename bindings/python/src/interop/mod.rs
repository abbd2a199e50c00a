//! Interchange with other array libraries: NumPy arrays (`numpy.rs`), `tb.asnumpy` of any
//! runtime's tensor (`asnumpy.rs`), the CUDA array interface (`cuda_array_interface.rs`) and
//! DLPack (`dlpack/`). Each reads a view's memory through the core (`AnyTensor::view_memory`) and
//! imports foreign memory through the backend registry, so none of them names a backend.

pub mod asnumpy;
pub mod cuda_array_interface;
pub mod dlpack;
pub mod numpy;
