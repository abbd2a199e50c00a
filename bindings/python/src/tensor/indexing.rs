//! `t[key]` as NumPy reads `key`.
//!
//! - **Basic indexing** (every item an integer — anything with `__index__`, 0-d integer tensors
//!   and arrays included —, a slice, `...` or `None`) is a view made by the tensor's backend:
//!   no copy, no transfer.
//! - **Advanced indexing** (integer or bool arrays, lists, tensors, bool scalars, mixed with basic
//!   items as NumPy combines them) is a copy, as in NumPy. There is no gather in the backend
//!   interface, so NumPy computes it on the host: the tensor's values as a NumPy array (a
//!   zero-copy view for host memory; for device memory one device-to-host copy of the view, which
//!   `tb.transfer_guard` governs like `np.asarray`), the index tensors likewise, then NumPy's
//!   `a[key]`, and the result goes to the tensor's backend and device (a copy there, except on
//!   the host backend, which takes NumPy's fresh result as it is).
//!
//! Anything NumPy rejects is rejected here with NumPy's exception type: slice bounds that are not
//! integers, `None` or `__index__` objects raise TypeError (`t[2.0:]`); a float, string or other
//! non-index raises IndexError.

use numpy::{PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyIndexError, PyOverflowError, PyTypeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyBytes, PyEllipsis, PyFloat, PyInt, PyNone, PySlice, PyString, PyTuple, PyType,
};
use smallvec::SmallVec;
use tensorbridge::layout::slice_indices;
use tensorbridge::AnyTensor;

use super::PyTensor;
use crate::errors::{with_context, IntoPyResult};
use crate::transfer_guard;

#[derive(Clone, Copy)]
enum Item {
    Int(isize),
    /// start, stop, step as `PySlice_Unpack` gives them: saturated, `None` as the bound Python
    /// uses for it (`0`/`isize::MAX` for a positive step).
    Slice(isize, isize, isize),
    Ellipsis,
    NewAxis,
}

/// NumPy's (and Python's) message for an index that is none of the valid kinds.
const NOT_AN_INDEX: &str = "only integers, slices (`:`), ellipsis (`...`), numpy.newaxis (`None`) \
                            and integer or boolean arrays are valid indices";

/// `operator.index` and `numpy.bool_`, looked up once: a NumPy integer index (`t[np.int64(1)]`)
/// reaches both, and importing their modules on every call cost it 1.55 µs against 178 ns for
/// `t[1]`.
static OPERATOR_INDEX: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static NUMPY_BOOL: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// `operator.index(v)` as an integer index ([`int_index`]): TypeError when `v` has no
/// `__index__`.
fn operator_index(v: &Bound<'_, PyAny>) -> PyResult<isize> {
    let i = OPERATOR_INDEX
        .import(v.py(), "operator", "index")?
        .call1((v,))?;
    int_index(&i)
}

/// A Python int as an integer index, with NumPy's errors for one beyond `isize` (NumPy 2.4 reads
/// an index as a C `long`, through `unsigned long` first): OverflowError from 2**63 to 2**64 - 1
/// (`np.arange(3)[2**63]`, `[np.uint64(2**63)]`), IndexError further out.
fn int_index(i: &Bound<'_, PyAny>) -> PyResult<isize> {
    if let Ok(x) = i.extract::<isize>() {
        return Ok(x);
    }
    if i.extract::<u64>().is_ok() {
        return Err(PyOverflowError::new_err(format!(
            "index {i} is too large for an index (at most 2**63 - 1)"
        )));
    }
    Err(PyIndexError::new_err(format!("index {i} is out of range")))
}

fn is_numpy_bool(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    obj.is_instance(NUMPY_BOOL.import(obj.py(), "numpy", "bool_")?)
}

/// One item of a key: `Some` for a basic item, `None` for an advanced one (NumPy decides what
/// it means), an error for what NumPy rejects outright.
fn parse_item(obj: &Bound<'_, PyAny>) -> PyResult<Option<Item>> {
    // Bools are checked first: they have `__index__` but index as 0-d bool masks in NumPy.
    // (`numpy.bool_` is no `int` subclass; it is checked below, after the cheap common kinds.)
    if obj.is_instance_of::<PyBool>() {
        return Ok(None);
    }
    if obj.is_instance_of::<PyInt>() {
        return int_index(obj).map(|i| Some(Item::Int(i)));
    }
    if let Ok(s) = obj.cast::<PySlice>() {
        let (mut start, mut stop, mut step) = (0, 0, 0);
        // SAFETY: `s` is a live slice object (checked by the cast) and the three pointers are
        // to locals. PySlice_Unpack reads its bounds as Python does (`None`, or `__index__`,
        // saturated to the Py_ssize_t range), or sets a Python error and returns -1: TypeError
        // for a bound that is not an index, ValueError for a zero step — NumPy's errors.
        let rc = unsafe { pyo3::ffi::PySlice_Unpack(s.as_ptr(), &mut start, &mut stop, &mut step) };
        if rc != 0 {
            return Err(PyErr::fetch(obj.py()));
        }
        return Ok(Some(Item::Slice(start, stop, step)));
    }
    if obj.is_instance_of::<PyEllipsis>() {
        return Ok(Some(Item::Ellipsis));
    }
    if obj.is_instance_of::<PyNone>() {
        return Ok(Some(Item::NewAxis));
    }
    if is_numpy_bool(obj)? {
        return Ok(None);
    }
    // Tensors and arrays: 0-d integer ones are integers (NumPy's rule), the rest advanced.
    if let Ok(t) = obj.cast::<PyTensor>() {
        let t = &t.get().inner;
        if !(t.shape().is_empty() && t.dtype().is_int()) {
            return Ok(None);
        }
    } else if let Ok(a) = obj.cast::<PyUntypedArray>() {
        if a.ndim() != 0 || !matches!(a.dtype().kind(), b'i' | b'u') {
            return Ok(None);
        }
    }
    if obj.is_instance_of::<PyFloat>()
        || obj.is_instance_of::<PyString>()
        || obj.is_instance_of::<PyBytes>()
    {
        return Err(PyIndexError::new_err(NOT_AN_INDEX));
    }
    // Objects with `__index__` (NumPy integers, 0-d integer tensors) are integers. Without one,
    // or with one that refuses (a 0-d float torch tensor), `operator.index` raises TypeError:
    // maybe an array-like.
    match operator_index(obj) {
        Ok(i) => return Ok(Some(Item::Int(i))),
        Err(e) if e.is_instance_of::<PyTypeError>(obj.py()) => {}
        Err(e) => return Err(e),
    }
    // Sequences and array-likes go to NumPy, which converts them (or raises IndexError).
    let array_like = [
        "__array__",
        "__array_interface__",
        "__array_struct__",
        "__len__",
    ]
    .iter()
    .map(|a| obj.hasattr(*a))
    .collect::<PyResult<Vec<bool>>>()?
    .contains(&true);
    if array_like {
        Ok(None)
    } else {
        Err(PyIndexError::new_err(NOT_AN_INDEX))
    }
}

/// `t[key]`: a view for basic keys, a copy (through NumPy) for advanced ones.
pub fn get_item(slf: &Bound<'_, PyTensor>, key: &Bound<'_, PyAny>) -> PyResult<AnyTensor> {
    let py = slf.py();
    let t = &slf.get().inner;
    // Parsed in place (no heap for up to 8 items): a basic index is a fixed cost of every view.
    let mut items: SmallVec<[Item; 8]> = SmallVec::new();
    let mut advanced_key = false;
    let mut push = |o: &Bound<'_, PyAny>| -> PyResult<()> {
        match parse_item(o)? {
            Some(item) => items.push(item),
            None => advanced_key = true,
        }
        Ok(())
    };
    match key.cast::<PyTuple>() {
        Ok(tuple) => {
            for o in tuple.iter() {
                push(&o)?;
            }
        }
        Err(_) => push(key)?,
    }
    if advanced_key {
        return advanced(slf, key);
    }
    basic(py, t, &items)
}

fn basic(py: Python<'_>, t: &AnyTensor, items: &[Item]) -> PyResult<AnyTensor> {
    let (mut consumed, mut ellipses) = (0usize, 0usize);
    for item in items {
        match item {
            Item::Int(_) | Item::Slice(..) => consumed += 1,
            Item::Ellipsis => ellipses += 1,
            Item::NewAxis => {}
        }
    }
    if ellipses > 1 {
        return Err(PyIndexError::new_err(
            "an index can only have a single ellipsis ('...')",
        ));
    }
    let ndim = t.shape().len();
    if consumed > ndim {
        return Err(PyIndexError::new_err(format!(
            "too many indices for tensor: tensor is {ndim}-dimensional, but {consumed} were indexed"
        )));
    }
    // The view so far; `None` while it is still `t` itself (`t[:, ::8]` makes one view, and
    // neither clones nor drops `t` for the `:`).
    let mut out: Option<AnyTensor> = None;
    let mut axis: isize = 0;
    for &item in items {
        let current = out.as_ref().unwrap_or(t);
        match item {
            Item::Int(i) => out = Some(current.select(axis, i).py(py)?),
            Item::Slice(start, stop, step) => {
                // `:` (and any slice that keeps a whole axis in order) is the view itself.
                let size = current.shape()[axis as usize];
                let whole = step == 1 && start == 0 && stop >= size as isize || {
                    let (first, len) = slice_indices(size, Some(start), Some(stop), step);
                    step == 1 && first == 0 && len == size
                };
                if !whole {
                    out = Some(current.slice(axis, Some(start), Some(stop), step).py(py)?);
                }
                axis += 1;
            }
            Item::Ellipsis => axis += (ndim - consumed) as isize,
            Item::NewAxis => {
                out = Some(current.unsqueeze(axis).py(py)?);
                axis += 1;
            }
        }
    }
    Ok(out.unwrap_or_else(|| t.clone()))
}

/// A key item as NumPy takes it: tensors become their NumPy arrays (host memory read in place;
/// a device index is copied to the host), the rest is passed as it is.
fn numpy_item<'py>(obj: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    match obj.cast::<PyTensor>() {
        Ok(t) => PyTensor::to_numpy(t, None, None),
        Err(_) => Ok(obj),
    }
}

/// NumPy's advanced indexing of `slf` by `key`, the result on `slf`'s backend and device.
fn advanced(slf: &Bound<'_, PyTensor>, key: &Bound<'_, PyAny>) -> PyResult<AnyTensor> {
    let py = slf.py();
    let t = &slf.get().inner;
    let np_key = match key.cast::<PyTuple>() {
        Ok(tuple) => PyTuple::new(
            py,
            tuple.iter().map(numpy_item).collect::<PyResult<Vec<_>>>()?,
        )?
        .into_any(),
        Err(_) => numpy_item(key.clone())?,
    };
    // The values go to the host as `np.asarray(t)` would take them.
    transfer_guard::check_implicit(py, t).map_err(|e| {
        with_context(
            py,
            e,
            "advanced indexing t[key] reads the tensor on the host",
        )
    })?;
    let host = PyTensor::to_numpy(slf, None, None)?;
    let np = py.import("numpy")?;
    let result = np.call_method1("asarray", (host.get_item(&np_key)?,))?;
    let result = result.cast_into::<PyUntypedArray>()?;
    // Advanced indexing returns a new array; should NumPy ever hand back memory of `host`
    // (which may be the tensor's own storage), copy it.
    let shares: bool = np
        .call_method1("may_share_memory", (&result, &host))?
        .extract()?;
    let (backend, device) = (t.backend().name(), t.device().to_string());
    let out =
        crate::construction::_from_numpy(py, &result, shares, None, Some(backend), Some(&device))?;
    Ok(out.inner)
}
