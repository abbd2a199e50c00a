//! Views: layout changes that share the storage (`reshape` copies only when the strides cannot
//! express the new shape), and `t[...]` (see `indexing.rs`).

use pyo3::prelude::*;
use pyo3::types::PyTuple;

use super::{bytes_of, indexing, PyTensor};
use crate::args::{dims_arg, int_arg, opt_int_arg, spread_dims};
use crate::errors::{run_guarded, IntoPyResult};

#[pymethods]
impl PyTensor {
    /// The axes reversed (a view).
    #[getter(T)]
    fn transposed(&self) -> PyTensor {
        PyTensor::wrap(self.inner.t())
    }

    /// `t[key]` as NumPy reads `key`: basic indexing is a view, advanced indexing a copy (see
    /// `indexing.rs`).
    fn __getitem__(slf: &Bound<'_, Self>, key: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        Ok(PyTensor::wrap(indexing::get_item(slf, key)?))
    }

    /// Reshape: `t.reshape(2, 3)` or `t.reshape((2, -1))`; a view when the strides allow.
    #[pyo3(signature = (*shape))]
    fn reshape(&self, py: Python<'_>, shape: &Bound<'_, PyTuple>) -> PyResult<PyTensor> {
        let s = spread_dims(shape)?;
        let t = &self.inner;
        Ok(PyTensor::wrap(run_guarded(py, bytes_of(t), || {
            t.reshape(&s)
        })?))
    }

    /// NumPy `transpose`: no axes reverses them, else a permutation (a view).
    #[pyo3(signature = (*axes))]
    fn transpose(&self, py: Python<'_>, axes: &Bound<'_, PyTuple>) -> PyResult<PyTensor> {
        if axes.is_empty() {
            return Ok(PyTensor::wrap(self.inner.t()));
        }
        let perm = spread_dims(axes)?;
        Ok(PyTensor::wrap(self.inner.permute(&perm).py(py)?))
    }

    /// Reorders the axes (a view): `t.permute(2, 0, 1)`.
    #[pyo3(signature = (*dims))]
    fn permute(&self, py: Python<'_>, dims: &Bound<'_, PyTuple>) -> PyResult<PyTensor> {
        let perm = spread_dims(dims)?;
        Ok(PyTensor::wrap(self.inner.permute(&perm).py(py)?))
    }

    /// Swaps two axes (a view).
    fn swapaxes(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = int_arg)] axis1: isize,
        #[pyo3(from_py_with = int_arg)] axis2: isize,
    ) -> PyResult<PyTensor> {
        Ok(PyTensor::wrap(self.inner.transpose(axis1, axis2).py(py)?))
    }

    /// Removes size-1 axes: all, or the one given (a view).
    #[pyo3(signature = (axis=None))]
    fn squeeze(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = opt_int_arg)] axis: Option<isize>,
    ) -> PyResult<PyTensor> {
        Ok(PyTensor::wrap(self.inner.squeeze(axis).py(py)?))
    }

    /// Inserts a size-1 axis (a view).
    fn unsqueeze(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = int_arg)] axis: isize,
    ) -> PyResult<PyTensor> {
        Ok(PyTensor::wrap(self.inner.unsqueeze(axis).py(py)?))
    }

    /// NumPy `broadcast_to` (a view with zero strides).
    fn broadcast_to(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = dims_arg)] shape: Vec<usize>,
    ) -> PyResult<PyTensor> {
        Ok(PyTensor::wrap(self.inner.broadcast_to(&shape).py(py)?))
    }
}
