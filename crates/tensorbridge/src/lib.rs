//! # tensorbridge
//!
//! Get tensors from any runtime into host arrays (`ndarray`), correctly and fast. This facade
//! re-exports the core vocabulary (`tensorbridge-core`), the backends compiled in by feature
//! (`cpu`, default; `torch`: libtorch through tch; `candle`: candle-core, with its CUDA device
//! under `cuda`; `lazy`: deferred execution over each of them), and registers them in the
//! [`registry`], which [`AnyTensor`] — one type-erased handle over every backend, what the
//! Python bindings are built on — uses to find them by name.
//!
//! ```
//! use tensorbridge::{Cpu, Device, Tensor};
//! let t = Tensor::<Cpu>::from_slice(&[1i64, 2, 4, 8], &[2, 2], &Device::Cpu)?;
//! let a = (&t * 2i64)?.to_host_array::<i64>()?;
//! assert_eq!(a, ndarray::arr2(&[[2, 4], [8, 16]]).into_dyn());
//!
//! tensorbridge::registry::init();
//! let any = tensorbridge::AnyTensor::new(t)?;
//! assert_eq!(any.backend().name(), "cpu");
//! # Ok::<(), tensorbridge::Error>(())
//! ```
#![warn(missing_docs)]

#[cfg(not(feature = "cpu"))]
compile_error!("tensorbridge needs at least one backend feature (`cpu`)");

pub mod registry;

/// The candle-core backend (CPU device; its CUDA device with feature `cuda`).
#[cfg(feature = "candle")]
pub use tensorbridge_candle::{self as candle, Candle};
pub use tensorbridge_core::{
    any, backend, cast_element, dtype, host, layout, memory_guard, ndarray, AnyTensor, Backend,
    BackendEntry, BinaryOp, CmpOp, DType, Device, DeviceKind, DeviceMemory, DynTensor, Element,
    Error, ExternalMemory, HostArray, HostViewMut, Layout, ReduceOp, Result, Scalar, ScalarOp,
    Tensor, TensorOp, UnaryOp, ViewMemory, ViewOp,
};
pub use tensorbridge_core::{with_dtype, with_host_array, with_host_view_mut};
#[cfg(feature = "cpu")]
pub use tensorbridge_cpu::{Buffer, Cpu};
#[cfg(feature = "lazy")]
pub use tensorbridge_lazy::{Lazy, LazyTensor, RunStats, Session, SessionOptions};
/// The libtorch backend crate (`from_tch`, `to_tch`, CUDA helpers).
#[cfg(feature = "torch")]
pub use tensorbridge_torch as torch;
#[cfg(feature = "torch")]
pub use tensorbridge_torch::Torch;
