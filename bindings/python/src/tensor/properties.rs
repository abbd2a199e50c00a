//! What a tensor is: shape, dtype, sizes, backend and device.

use numpy::PyArrayDescr;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use super::{bytes_of, PyTensor};
use crate::interop::numpy::descr;

#[pymethods]
impl PyTensor {
    /// The dimensions, as a tuple.
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.inner.shape())
    }

    /// The element type, as a `numpy.dtype` (bfloat16 is `ml_dtypes.bfloat16`).
    #[getter]
    fn dtype<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArrayDescr>> {
        descr(py, self.inner.dtype())
    }

    /// Number of dimensions.
    #[getter]
    fn ndim(&self) -> usize {
        self.inner.shape().len()
    }

    /// Number of elements.
    #[getter]
    fn size(&self) -> usize {
        self.inner.elem_count()
    }

    /// Bytes per element.
    #[getter]
    fn itemsize(&self) -> usize {
        self.inner.dtype().size_in_bytes()
    }

    /// Bytes of the view's elements.
    #[getter]
    fn nbytes(&self) -> usize {
        bytes_of(&self.inner)
    }

    /// The name of the backend (library) the tensor lives in, as registered: `"cpu"`,
    /// `"torch"`, `"lazy:cpu"`, ...
    #[getter]
    fn backend(&self) -> &'static str {
        self.inner.backend().name()
    }

    /// The device (`"cpu"`, `"cuda:0"`).
    #[getter]
    fn device(&self) -> String {
        self.inner.device().to_string()
    }

    /// True when the view is dense and row-major.
    #[getter]
    fn is_contiguous(&self) -> bool {
        self.inner.layout().is_contiguous()
    }

    fn __len__(&self) -> PyResult<usize> {
        self.inner
            .shape()
            .first()
            .copied()
            .ok_or_else(|| PyTypeError::new_err("len() of a 0-d tensor"))
    }
}
