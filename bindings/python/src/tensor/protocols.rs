//! The interchange protocols on a tensor: DLPack (`__dlpack__`, `__dlpack_device__`), the CUDA
//! array interface and the buffer protocol. Each delegates to `crate::interop`, which reads the
//! view's memory through the core ([`tensorbridge::AnyTensor::view_memory`]), so every backend
//! that exposes its memory gets them.

use pyo3::prelude::*;
use pyo3::types::PyTuple;

use super::PyTensor;
use crate::interop::{buffer, cuda_array_interface, dlpack};

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

    /// The buffer protocol: a read-only view of host memory (not for bfloat16 or device tensors).
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut pyo3::ffi::Py_buffer,
        flags: std::os::raw::c_int,
    ) -> PyResult<()> {
        let t = slf.get().inner.clone();
        // SAFETY: CPython passes the Py_buffer of this request.
        unsafe { buffer::get_buffer(slf.as_any(), &t, view, flags) }
    }

    unsafe fn __releasebuffer__(&self, view: *mut pyo3::ffi::Py_buffer) {
        // SAFETY: CPython passes a Py_buffer that __getbuffer__ filled, once.
        unsafe { buffer::release_buffer(view) }
    }
}
