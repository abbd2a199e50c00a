//! # tensorbridge-core
//!
//! The vocabulary and the contract of tensorbridge: [`DType`], [`Layout`], [`Device`], [`Error`],
//! [`HostArray`], the [`Backend`] trait and [`Tensor<B>`], plus the host-side kernels every backend
//! shares (the cache-blocked strided → contiguous copy, fused dtype conversion).
//!
//! It owns no backend: `tensorbridge-cpu`, `tensorbridge-torch` and `tensorbridge-cuda` implement
//! [`Backend`]; the `tensorbridge` facade re-exports them behind features.
//!
//! ```
//! use tensorbridge_core::{DType, Layout};
//! let t = Layout::contiguous(&[2, 3]).reversed_axes();
//! assert_eq!(t.shape(), &[3, 2]);
//! assert!(!t.is_contiguous());
//! assert_eq!(DType::promote(DType::U8, DType::I8), DType::I16);
//! ```
#![warn(missing_docs)]

mod arange;
pub mod backend;
pub mod dtype;
pub mod error;
pub mod host;
pub mod layout;
pub mod round;
pub mod tensor;

pub use backend::{Backend, BinaryOp, CmpOp, Device, ReduceOp, UnaryOp};
pub use dtype::{cast_element, DType, DTypeKind, Element, FloatElement, Scalar};
pub use error::{Error, Result};
pub use host::HostArray;
pub use layout::Layout;
pub use tensor::Tensor;

#[doc(hidden)]
pub use half;
pub use ndarray;
