//! The Python `Tensor` class: one `#[pyclass]` over [`AnyTensor`] (any registered backend), its
//! methods split by topic, one `#[pymethods]` block per file:
//!
//! - `properties.rs`: shape, dtype, backend, device, sizes;
//! - `ops.rs`: operators, math, reductions, `astype`;
//! - `views.rs`: reshape, transpose, broadcasting and `t[...]` (with `indexing.rs`);
//! - `numpy.rs`: `numpy()`, `__array__`, Python scalars and lists, `repr` (`numpy()` and
//!   `__array__` are entered through `fastcall.rs`, their hand-written argument parsing);
//! - `protocols.rs`: DLPack, `__cuda_array_interface__` (the work is in
//!   `crate::interop`);
//! - `placement.rs`: `to`, `contiguous`, `synchronize`;
//! - `deferred.rs`: `eval`, `graph`, `is_evaluated` for lazy backends;
//! - `pyobject.rs`: iteration, `in`, `__index__`, `format()`.
//! - `pickling.rs`: `pickle` by value, `copy.copy`/`copy.deepcopy`, and the identity token Dask
//!   names graphs by (`__dask_tokenize__`).

mod deferred;
pub(crate) mod fastcall;
mod indexing;
mod numpy;
mod ops;
mod pickling;
mod placement;
mod properties;
mod protocols;
mod pyobject;
mod views;

use std::sync::OnceLock;

use pyo3::prelude::*;
use tensorbridge::AnyTensor;

use crate::args::shape_str;

pub use ops::int_fits;

/// An immutable n-dimensional tensor on one backend and device.
#[pyclass(name = "Tensor", module = "tensorbridge", frozen, weakref)]
pub struct PyTensor {
    pub(crate) inner: AnyTensor,
    /// This object's serial number in the process, drawn the first time Dask asks for a token
    /// (see `pickling.rs`).
    serial: OnceLock<u64>,
}

impl PyTensor {
    /// Wraps a tensor for Python.
    pub fn wrap(inner: AnyTensor) -> Self {
        PyTensor {
            inner,
            serial: OnceLock::new(),
        }
    }
}

/// Bytes of a tensor's elements: the work an op on it touches, for the GIL-release threshold.
pub fn bytes_of(t: &AnyTensor) -> usize {
    t.nbytes()
}

/// The bytes a binary op between `a` and `b` touches: its inputs, or its broadcast result when
/// that is larger (`(4000, 1) + (1, 4000)` writes 16M elements from 8000): what decides whether
/// the GIL is released while it runs.
pub fn work_bytes(a: &AnyTensor, b: &AnyTensor) -> usize {
    let item = a.dtype().size_in_bytes().max(b.dtype().size_in_bytes());
    let result = tensorbridge::layout::broadcast_shapes("work", a.shape(), b.shape())
        .map(|s| s.iter().fold(item, |acc, &d| acc.saturating_mul(d)))
        .unwrap_or(0);
    bytes_of(a).max(bytes_of(b)).max(result)
}

/// A tensor as error messages describe it.
pub fn describe_tensor(t: &AnyTensor) -> String {
    format!(
        "shape {}, dtype {}, backend {}, device {}",
        shape_str(t.shape()),
        t.dtype(),
        t.backend(),
        t.device()
    )
}
