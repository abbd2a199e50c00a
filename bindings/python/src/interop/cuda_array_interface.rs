//! `__cuda_array_interface__` (version 3) for every tensor whose view lies in CUDA memory that
//! its backend exposes ([`tensorbridge::AnyTensor::view_memory`]): the view in place, read-only.
//! All work queued on the device is waited for first, so `stream` is `None` (the consumer needs no
//! synchronisation). bfloat16 has no typestr: AttributeError, so consumers fall back to DLPack.

use pyo3::exceptions::PyAttributeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use tensorbridge::{AnyTensor, DType, DeviceKind};

use crate::errors::IntoPyResult;

/// The interface's type string of a dtype (little-endian, as CUDA devices are).
fn typestr(d: DType) -> Option<&'static str> {
    Some(match d {
        DType::Bool => "|b1",
        DType::U8 => "|u1",
        DType::I8 => "|i1",
        DType::U16 => "<u2",
        DType::U32 => "<u4",
        DType::U64 => "<u8",
        DType::I16 => "<i2",
        DType::I32 => "<i4",
        DType::I64 => "<i8",
        DType::F16 => "<f2",
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        DType::BF16 => return None,
    })
}

/// The interface dict of `t`, or AttributeError when `t` is not in CUDA memory its backend
/// exposes (so `hasattr(t, "__cuda_array_interface__")` is False for host tensors).
pub fn describe(py: Python<'_>, t: &AnyTensor) -> PyResult<Py<PyAny>> {
    let not_cuda = || {
        PyAttributeError::new_err(format!(
            "__cuda_array_interface__: the tensor is on {}, not a CUDA device (or its backend \
             does not expose the memory)",
            t.placement()
        ))
    };
    if t.device().kind() != DeviceKind::Cuda {
        return Err(not_cuda());
    }
    let Some(ts) = typestr(t.dtype()) else {
        return Err(PyAttributeError::new_err(
            "__cuda_array_interface__ has no typestr for bfloat16; use __dlpack__",
        ));
    };
    t.synchronize().py(py)?;
    let mem = t.view_memory().ok_or_else(not_cuda)?;
    let item = t.dtype().size_in_bytes() as isize;
    let d = PyDict::new(py);
    d.set_item("version", 3)?;
    d.set_item("shape", PyTuple::new(py, &mem.shape)?)?;
    d.set_item("typestr", ts)?;
    d.set_item("data", (mem.data as usize, true))?;
    if mem.is_c_contiguous() {
        d.set_item("strides", py.None())?;
    } else {
        let strides: Vec<isize> = mem.strides.iter().map(|s| s * item).collect();
        d.set_item("strides", PyTuple::new(py, strides)?)?;
    }
    d.set_item("descr", vec![("", ts)])?;
    d.set_item("stream", py.None())?;
    Ok(d.into_any().unbind())
}
