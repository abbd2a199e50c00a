//! The interchange protocols on a tensor: DLPack (`__dlpack__`, `__dlpack_device__`) and the CUDA
//! array interface. Each delegates to `crate::interop`, which reads the view's memory through the
//! core ([`tensorbridge::AnyTensor::view_memory`]), so every backend that exposes its memory gets
//! them.
//!
//! There is deliberately no buffer protocol (PEP 3118): NumPy tries it before `__array__`, and
//! then copies the exported view with its own single-threaded loop into freshly faulted memory, so
//! `np.array(t)` and `np.ascontiguousarray(t.T)` would never reach tensorbridge's kernels. PyTorch
//! tensors have none either. Buffer consumers take `t.numpy()` (a zero-copy, read-only ndarray:
//! `memoryview(t.numpy())`), and `bytes(t)` works through `__bytes__`.

use pyo3::prelude::*;
use pyo3::types::PyTuple;

use super::PyTensor;
use crate::interop::{cuda_array_interface, dlpack};

#[pymethods]
impl PyTensor {
    /// DLPack export (array API): a `dltensor_versioned` capsule flagged read-only when the
    /// consumer passes `max_version >= (1, 0)`, else a legacy `dltensor` capsule, which needs
    /// `copy=True` because it cannot say read-only. `dl_device=(1, 0)` asks for host memory;
    /// `copy=True` always copies (flagged IS_COPIED), `copy=False` never does.
    #[pyo3(signature = (*, stream=None, max_version=None, dl_device=None, copy=None))]
    fn __dlpack__<'py>(
        slf: &Bound<'py, Self>,
        stream: Option<&Bound<'py, PyAny>>,
        max_version: Option<&Bound<'py, PyAny>>,
        dl_device: Option<&Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let t = &slf.get().inner;
        let req = dlpack::export::ExportRequest::parse(t, stream, max_version, dl_device, copy)?;
        dlpack::export::export(slf.py(), t, &req)
    }

    /// `(device_type, device_id)` as DLPack numbers them: `(1, 0)` for the CPU.
    fn __dlpack_device__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        dlpack::device_tuple(py, &self.inner)
    }

    /// The CUDA array interface (v3) of tensors in CUDA memory; others have none
    /// (AttributeError, so `hasattr(t, "__cuda_array_interface__")` is False).
    #[getter]
    fn __cuda_array_interface__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        cuda_array_interface::describe(py, &self.inner)
    }
}
