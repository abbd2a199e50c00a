//! The buffer protocol (PEP 3118) on tensors whose storage is host memory: read-only, with the
//! struct-module format of the dtype, and strides for views. bfloat16 has no PEP 3118 format, so
//! the request fails and NumPy falls back to `__array__` (which gives `ml_dtypes.bfloat16`).

use std::ffi::{c_int, c_void, CStr};

use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;
use tensorbridge::{AnyTensor, DType, Device};

/// The shape and byte strides a `Py_buffer` points into, freed by `release`.
struct Dims {
    shape: Vec<ffi::Py_ssize_t>,
    strides: Vec<ffi::Py_ssize_t>,
}

/// The struct-module format of `d` (native byte order and size, as NumPy exports them).
fn format_of(d: DType) -> Option<&'static CStr> {
    let long_is_64 = std::mem::size_of::<std::ffi::c_long>() == 8;
    Some(match d {
        DType::Bool => c"?",
        DType::U8 => c"B",
        DType::I8 => c"b",
        DType::U16 => c"H",
        DType::I16 => c"h",
        DType::U32 => c"I",
        DType::I32 => c"i",
        DType::U64 if long_is_64 => c"L",
        DType::I64 if long_is_64 => c"l",
        DType::U64 => c"Q",
        DType::I64 => c"q",
        DType::F16 => c"e",
        DType::F32 => c"f",
        DType::F64 => c"d",
        DType::BF16 => return None,
    })
}

fn is_c_contiguous(shape: &[isize], strides: &[isize], item: isize) -> bool {
    if shape.contains(&0) {
        return true;
    }
    let mut expect = item;
    for (&d, &s) in shape.iter().zip(strides).rev() {
        if d != 1 && s != expect {
            return false;
        }
        expect *= d;
    }
    true
}

fn is_f_contiguous(shape: &[isize], strides: &[isize], item: isize) -> bool {
    if shape.contains(&0) {
        return true;
    }
    let mut expect = item;
    for (&d, &s) in shape.iter().zip(strides) {
        if d != 1 && s != expect {
            return false;
        }
        expect *= d;
    }
    true
}

fn has(flags: c_int, mask: c_int) -> bool {
    flags & mask == mask
}

/// Fills `view` for `owner` (the Python tensor holding `t`).
///
/// # Safety
/// `view` must be the `Py_buffer` CPython passes to `bf_getbuffer`.
pub unsafe fn get_buffer(
    owner: &Bound<'_, PyAny>,
    t: &AnyTensor,
    view: *mut ffi::Py_buffer,
    flags: c_int,
) -> PyResult<()> {
    if view.is_null() {
        return Err(PyBufferError::new_err("null Py_buffer"));
    }
    let d = t.dtype();
    let Some(format) = format_of(d) else {
        return Err(PyBufferError::new_err(
            "bfloat16 has no buffer-protocol format; use np.asarray(t) (ml_dtypes.bfloat16) or \
             t.astype('float32')",
        ));
    };
    if !t.is_evaluated() {
        // A lazy tensor: evaluating is the work of this conversion, however small its result:
        // let other threads run meanwhile.
        let py = owner.py();
        crate::errors::run_guarded(py, usize::MAX, || t.evaluate())?;
    }
    let Some(mem) = t.view_memory().filter(|m| m.device == Device::Cpu) else {
        return Err(PyBufferError::new_err(format!(
            "a tensor on {} has no host buffer; use t.numpy() for a host copy",
            t.placement()
        )));
    };
    if has(flags, ffi::PyBUF_WRITABLE) {
        return Err(PyBufferError::new_err(
            "tensors are immutable: the buffer is read-only (use t.numpy(copy=True) for a \
             writable copy)",
        ));
    }
    let item = d.size_in_bytes() as isize;
    let shape: Vec<isize> = mem.shape.iter().map(|&x| x as isize).collect();
    let strides: Vec<isize> = mem.strides.iter().map(|&s| s * item).collect();
    let c_contig = is_c_contiguous(&shape, &strides, item);
    let f_contig = is_f_contiguous(&shape, &strides, item);
    let contiguity_ok = if has(flags, ffi::PyBUF_C_CONTIGUOUS) {
        c_contig
    } else if has(flags, ffi::PyBUF_F_CONTIGUOUS) {
        f_contig
    } else if has(flags, ffi::PyBUF_ANY_CONTIGUOUS) {
        c_contig || f_contig
    } else if has(flags, ffi::PyBUF_STRIDES) {
        true
    } else {
        // No strides requested: the consumer assumes C order.
        c_contig
    };
    if !contiguity_ok {
        return Err(PyBufferError::new_err(
            "the tensor view is not contiguous as requested; use t.contiguous()",
        ));
    }
    let buf = mem.data as *mut c_void;
    let dims = Box::new(Dims { shape, strides });
    let want_nd = has(flags, ffi::PyBUF_ND);
    let want_strides = has(flags, ffi::PyBUF_STRIDES);
    // SAFETY: `view` is CPython's Py_buffer for this request (caller's contract). Every pointer we
    // store stays valid until `release_buffer`: `dims` is leaked into `internal` and freed there,
    // `format` is 'static, `buf` is the view's first element in host memory (every element inside
    // the storage: `view_memory` checked the span) kept alive by `obj` (the tensor).
    unsafe {
        let v = &mut *view;
        v.buf = buf;
        v.len = (t.elem_count() as isize * item) as ffi::Py_ssize_t;
        v.itemsize = item as ffi::Py_ssize_t;
        v.readonly = 1;
        v.ndim = dims.shape.len() as c_int;
        v.format = if has(flags, ffi::PyBUF_FORMAT) {
            format.as_ptr() as *mut _
        } else {
            std::ptr::null_mut()
        };
        let dims = Box::into_raw(dims);
        v.shape = if want_nd {
            (*dims).shape.as_mut_ptr()
        } else {
            std::ptr::null_mut()
        };
        v.strides = if want_strides {
            (*dims).strides.as_mut_ptr()
        } else {
            std::ptr::null_mut()
        };
        v.suboffsets = std::ptr::null_mut();
        v.internal = dims as *mut c_void;
        v.obj = owner.clone().into_ptr();
    }
    Ok(())
}

/// Frees what `get_buffer` allocated (CPython releases `obj` itself).
///
/// # Safety
/// `view` must be a `Py_buffer` filled by `get_buffer`, released once.
pub unsafe fn release_buffer(view: *mut ffi::Py_buffer) {
    // SAFETY: `internal` is the `Dims` box leaked by `get_buffer` (or null), freed once here.
    unsafe {
        let internal = (*view).internal as *mut Dims;
        if !internal.is_null() {
            drop(Box::from_raw(internal));
            (*view).internal = std::ptr::null_mut();
        }
    }
}
