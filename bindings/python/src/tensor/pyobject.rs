//! The Python object protocols clients rely on, with NumPy's meaning:
//!
//! - iteration over the first axis (`for row in t`, `list(t)`): each item is `t[i]`, a tensor (a
//!   view on the same backend and device, 0-d for a 1-D tensor), as PyTorch does; iterating a
//!   0-d tensor is a TypeError, as in NumPy. `t.tolist()` gives Python scalars instead.
//! - `x in t`: `(t == x).any()`, NumPy's rule.
//! - `operator.index(t)` for 0-d integer tensors (so they index lists, `range`, slices).
//! - `format(t, spec)`: a 0-d tensor formats as its NumPy scalar; others accept only the empty
//!   spec (then `str(t)`), as NumPy arrays do.

use pyo3::basic::CompareOp;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use tensorbridge::{AnyTensor, DType};

use super::PyTensor;
use crate::errors::{run_guarded, IntoPyResult};
use crate::interop::numpy::export_copy;

/// Iterator over the first axis of a tensor (`iter(t)`).
#[pyclass(name = "TensorIterator", module = "tensorbridge")]
pub struct TensorIterator {
    tensor: AnyTensor,
    next: usize,
}

#[pymethods]
impl TensorIterator {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<PyTensor>> {
        let len = self.tensor.shape().first().copied().unwrap_or(0);
        if self.next >= len {
            return Ok(None);
        }
        let i = self.next as isize;
        self.next += 1;
        Ok(Some(PyTensor::wrap(self.tensor.select(0, i).py(py)?)))
    }

    fn __length_hint__(&self) -> usize {
        let len = self.tensor.shape().first().copied().unwrap_or(0);
        len.saturating_sub(self.next)
    }
}

/// True when any element of `t` is non-zero (`t` empty: false), as one element on the host.
fn any_nonzero(py: Python<'_>, t: &AnyTensor) -> PyResult<bool> {
    if t.elem_count() == 0 {
        return Ok(false);
    }
    let m = run_guarded(py, t.nbytes(), || t.cast(DType::Bool)?.max(None, false))?;
    let host = export_copy(py, &m, DType::Bool)?;
    host.call_method0("item")?.is_truthy()
}

#[pymethods]
impl PyTensor {
    fn __iter__(&self) -> PyResult<TensorIterator> {
        if self.inner.shape().is_empty() {
            return Err(PyTypeError::new_err("iteration over a 0-d tensor"));
        }
        Ok(TensorIterator {
            tensor: self.inner.clone(),
            next: 0,
        })
    }

    /// `value in t` is `(t == value).any()`, as in NumPy (broadcasting included).
    fn __contains__(slf: &Bound<'_, Self>, value: &Bound<'_, PyAny>) -> PyResult<bool> {
        let py = slf.py();
        let eq = slf.as_any().rich_compare(value, CompareOp::Eq)?;
        if let Ok(t) = eq.cast::<PyTensor>() {
            return any_nonzero(py, &t.get().inner);
        }
        // An operand the comparison operators do not take: compare as NumPy does, on the host.
        let host = PyTensor::to_numpy(slf, None, None)?;
        let np = py.import("numpy")?;
        np.call_method1("asarray", (host.rich_compare(value, CompareOp::Eq)?,))?
            .call_method0("any")?
            .is_truthy()
    }

    /// A 0-d integer tensor as a Python int (`operator.index`); TypeError for anything else,
    /// as NumPy arrays.
    fn __index__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let t = &slf.get().inner;
        if !(t.shape().is_empty() && t.dtype().is_int()) {
            return Err(PyTypeError::new_err(
                "only integer scalar tensors can be converted to a scalar index",
            ));
        }
        // A 0-d tensor has one element: read in place when in host memory.
        PyTensor::one_element(slf, "operator.index()")
    }

    /// `format(t, spec)`: a 0-d tensor formats as the NumPy scalar of its dtype
    /// (`format(t, ".2f")`); a tensor with dimensions only with an empty spec (`str(t)`), else
    /// TypeError, as NumPy arrays.
    fn __format__<'py>(slf: &Bound<'py, Self>, spec: &str) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let t = &slf.get().inner;
        let builtins = py.import("builtins")?;
        if !t.shape().is_empty() {
            if spec.is_empty() {
                return builtins.getattr("str")?.call1((slf,));
            }
            return Err(PyTypeError::new_err(
                "unsupported format string passed to tensorbridge.Tensor.__format__",
            ));
        }
        let host = match PyTensor::to_numpy(slf, None, None) {
            Ok(a) => a,
            // bfloat16 without ml_dtypes: the float32 it widens to exactly.
            Err(_) if t.dtype() == DType::BF16 => export_copy(py, t, DType::F32)?,
            Err(e) => return Err(e),
        };
        let scalar = host.get_item(())?;
        builtins.getattr("format")?.call1((scalar, spec))
    }
}
