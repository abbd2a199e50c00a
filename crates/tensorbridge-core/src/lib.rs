//! # tensorbridge-core
//!
//! The vocabulary and the contract of tensorbridge: [`DType`], [`Layout`], [`Device`], [`Error`],
//! [`HostArray`], the [`Backend`] trait and [`Tensor<B>`], plus the host-side kernels every backend
//! shares (the cache-blocked strided → contiguous copy, fused dtype conversion).
//!
//! It also defines how backends are found at run time: [`AnyTensor`], one object-safe handle over
//! a `Tensor<B>` of any backend, and the [`registry`] of backends by name.
//!
//! It owns no backend: `tensorbridge-cpu`, `tensorbridge-torch`, `tensorbridge-candle` and
//! `tensorbridge-lazy` implement [`Backend`]; the `tensorbridge` facade registers the ones
//! compiled in.
//!
//! ```
//! use tensorbridge_core::{DType, Layout};
//! let t = Layout::contiguous(&[2, 3]).reversed_axes();
//! assert_eq!(t.shape(), &[3, 2]);
//! assert!(!t.is_contiguous());
//! assert_eq!(DType::promote(DType::U8, DType::I8), DType::I16);
//! ```
#![warn(missing_docs)]

pub mod any;
mod arange;
pub mod backend;
pub mod dtype;
pub mod error;
pub mod host;
pub mod layout;
pub mod memory_guard;
pub mod registry;
pub mod round;
pub mod tensor;

pub use any::{AnyTensor, DynTensor, ScalarOp, TensorOp, ViewMemory, ViewOp};
pub use backend::{
    Backend, BinaryOp, CmpOp, Device, DeviceKind, DeviceMemory, ExternalMemory, ReduceOp, UnaryOp,
};
pub use dtype::{cast_element, DType, DTypeKind, Element, FloatElement, Scalar};
pub use error::{Error, Result};
pub use host::{HostArray, HostViewMut};
pub use layout::Layout;
pub use memory_guard::MemoryLimit;
pub use registry::{BackendEntry, DeferredBackend, DynSession};
pub use tensor::Tensor;

#[doc(hidden)]
pub use half;
pub use ndarray;
