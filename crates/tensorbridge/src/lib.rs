//! # tensorbridge
//!
//! Get tensors from any runtime into host arrays (`ndarray`), correctly and fast. This facade
//! re-exports the core vocabulary (`tensorbridge-core`) and the backends compiled in by feature
//! (`cpu`, default; `torch`: libtorch through tch), and offers [`AnyTensor`], one
//! type-erased handle over every compiled backend, which the Python bindings are built on.
//!
//! ```
//! use tensorbridge::{Cpu, Device, Tensor};
//! let t = Tensor::<Cpu>::from_slice(&[1i64, 2, 4, 8], &[2, 2], &Device::Cpu)?;
//! let a = (&t * 2i64)?.to_host_array::<i64>()?;
//! assert_eq!(a, ndarray::arr2(&[[2, 4], [8, 16]]).into_dyn());
//! # Ok::<(), tensorbridge::Error>(())
//! ```
#![warn(missing_docs)]

mod any;

pub use any::{AnyTensor, BackendKind};
pub use tensorbridge_core::{
    backend, cast_element, dtype, host, layout, memory_guard, ndarray, Backend, BinaryOp, CmpOp,
    DType, Device, Element, Error, HostArray, Layout, ReduceOp, Result, Scalar, Tensor, UnaryOp,
};
pub use tensorbridge_core::{with_dtype, with_host_array};
#[cfg(feature = "cpu")]
pub use tensorbridge_cpu::{Buffer, Cpu};
/// The CUDA backend (candle-core), with feature `cuda`.
#[cfg(feature = "cuda")]
pub use tensorbridge_cuda::{self as cuda, Cuda};
#[cfg(feature = "lazy")]
pub use tensorbridge_lazy::{Lazy, LazyTensor, RunStats, Session, SessionOptions};
/// The libtorch backend crate (`from_tch`, `to_tch`, CUDA helpers).
#[cfg(feature = "torch")]
pub use tensorbridge_torch as torch;
#[cfg(feature = "torch")]
pub use tensorbridge_torch::Torch;
