//! `tb.asnumpy(x)`: any runtime's tensor into NumPy under one contract (the one `t.numpy()` has).
//!
//! The entry point is native so that the common call — a host tensor of a runtime, no options —
//! costs little more than that runtime's own conversion: a tensorbridge tensor, a NumPy array, or
//! an object of a type that `tensorbridge/_asnumpy.py` registered as having a zero-copy host view
//! (a method that returns an ndarray over the object's memory, or the buffer protocol) is answered
//! here. Everything else — other runtimes, device memory, `dtype=`/`copy=`/`out=`/`order=` on
//! foreign objects — goes to the Python fallback, which brings the object to either a host ndarray
//! over its memory or a tensor over its memory (DLPack), and comes back to [`_asnumpy_tensor`] or
//! [`_asnumpy_array`] for the copies: fused casts, layout changes and streamed `out=` writes are the
//! core's kernels, the same as `t.numpy()`'s. Nothing here names a backend or a runtime.

use std::ffi::{c_int, CStr};

use numpy::npyffi::{self, npy_intp, PY_ARRAY_API};
use numpy::{PyArrayDescr, PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyMemoryError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyType};
use tensorbridge::{AnyTensor, DType};

use crate::args::{known_dtype, parse_dtype};
use crate::errors::{run_guarded, IntoPyResult};
use crate::interop::numpy::{
    descr, dtype_of_descr, export_copy, export_into, export_view, import_array,
};
use crate::tensor::{describe_tensor, PyTensor};
use crate::transfer_guard;

/// Types with a zero-copy host view: type → its [`FastPath`]. Filled by the Python side
/// (`_asnumpy_register_fast`).
static FAST: PyOnceLock<Py<PyDict>> = PyOnceLock::new();

/// How `tb.asnumpy` reads a registered type's host memory without the Python fallback.
#[pyclass(frozen, module = "tensorbridge")]
struct FastPath {
    /// The method returning an ndarray over the object's host memory (`torch.Tensor.numpy`);
    /// `None`: the buffer protocol.
    method: Option<Py<PyString>>,
    /// Boolean attributes and the value each must have for the method to be asked at all
    /// (torch: `is_cpu` true, `requires_grad` false): a method that refuses raises, and a
    /// raised torch error costs ~10 µs, more than the fallback's whole conversion.
    when: Vec<(Py<PyString>, bool)>,
    /// {dtype (`x.dtype`): (a same-width dtype the method reads, the `numpy.dtype` of the
    /// bits)} for the dtypes it refuses (torch bfloat16: int16, ml_dtypes' bfloat16).
    bits: Option<Py<PyDict>>,
}

/// `tensorbridge._asnumpy._convert`, for everything the native entry point does not answer.
static FALLBACK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// NumPy's memory-layout request (`order=`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Order {
    /// Keep: any strides for a view; a copy is Fortran-ordered when the source is.
    K,
    /// As NumPy's `asarray(order="A")`: any view; a copy is Fortran-ordered when the source is.
    A,
    C,
    F,
}

impl Order {
    fn parse(s: &str) -> PyResult<Self> {
        match s {
            "K" | "k" => Ok(Order::K),
            "A" | "a" => Ok(Order::A),
            "C" | "c" => Ok(Order::C),
            "F" | "f" => Ok(Order::F),
            _ => Err(PyValueError::new_err(format!(
                "tb.asnumpy: order must be 'K', 'A', 'C' or 'F', got {s:?}"
            ))),
        }
    }

    /// Whether an existing array with these contiguity flags satisfies the request.
    fn accepts(self, c_contiguous: bool, f_contiguous: bool) -> bool {
        match self {
            Order::K | Order::A => true,
            Order::C => c_contiguous,
            Order::F => f_contiguous,
        }
    }

    /// Whether a copy of a source with these flags is made in Fortran order.
    fn copy_in_fortran(self, c_contiguous: bool, f_contiguous: bool) -> bool {
        match self {
            Order::F => true,
            Order::C => false,
            Order::K | Order::A => f_contiguous && !c_contiguous,
        }
    }
}

/// True when the strides (in elements) describe a Fortran-contiguous layout.
fn is_f_contiguous(shape: &[usize], strides: &[isize]) -> bool {
    if shape.contains(&0) {
        return true;
    }
    let mut expect = 1isize;
    for (&d, &s) in shape.iter().zip(strides) {
        if d != 1 && s != expect {
            return false;
        }
        expect = expect.saturating_mul(d as isize);
    }
    true
}

/// The requested dtype: ours, or one only NumPy has (complex, ...), which NumPy converts to.
enum Target<'py> {
    Same,
    Ours(DType),
    Foreign(Bound<'py, PyAny>),
}

/// `numpy.dtype`, looked up once.
static NP_DTYPE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn target<'py>(dtype: Option<&Bound<'py, PyAny>>, source: DType) -> PyResult<Target<'py>> {
    let Some(d) = dtype else {
        return Ok(Target::Same);
    };
    let py = d.py();
    let ours = |found: DType| {
        if found == source {
            Target::Same
        } else {
            Target::Ours(found)
        }
    };
    // Our own names first ("bf16" too, which NumPy does not know).
    if let Ok(name) = d.cast::<PyString>() {
        if let Ok(found) = name.to_str()?.parse::<DType>() {
            return Ok(ours(found));
        }
    }
    let requested = match d.cast::<PyArrayDescr>() {
        Ok(descr) => descr.clone(),
        Err(_) => {
            let np_dtype = NP_DTYPE.get_or_try_init(py, || {
                py.import("numpy")?.getattr("dtype").map(Bound::unbind)
            })?;
            match np_dtype.bind(py).call1((d,)) {
                Ok(descr) => descr.cast_into::<PyArrayDescr>()?,
                // Not a dtype NumPy knows either: the error names ours.
                Err(_) => {
                    return Err(parse_dtype(d).err().unwrap_or_else(|| {
                        PyTypeError::new_err("tb.asnumpy: dtype= is not a dtype")
                    }))
                }
            }
        }
    };
    Ok(match known_dtype(&requested) {
        Some(found) => ours(found),
        None => Target::Foreign(requested.into_any()),
    })
}

fn none_if_none<'a, 'py>(x: Option<&'a Bound<'py, PyAny>>) -> Option<&'a Bound<'py, PyAny>> {
    x.filter(|v| !v.is_none())
}

/// Any runtime's tensor as a `numpy.ndarray`, under the contract of `Tensor.numpy()`.
///
/// `x`: a tensorbridge Tensor (any backend), a `torch.Tensor` (any device; requires_grad,
/// conjugate/negative bits, bfloat16, any strides), a JAX array (any device; sharded arrays are
/// assembled from their shards), a TensorFlow `EagerTensor` or `tf.Variable`, a CuPy array,
/// anything with `__dlpack__` or `__array__`, nested sequences and scalars.
///
/// - `copy=None`: a read-only zero-copy view where the memory is host memory NumPy can address
///   (tensorbridge host tensors, torch CPU tensors, JAX CPU arrays, TensorFlow CPU tensors, NumPy
///   arrays); otherwise exactly one copy, writable.
/// - `copy=True`: always a new writable array. `copy=False`: ValueError when a copy is
///   unavoidable (device memory, a dtype conversion, an `order` the view does not have).
/// - `dtype`: the result's dtype, the conversion fused into the one copy (bfloat16 -> float32 in
///   one pass, whatever the source).
/// - `out`: a writable ndarray of the same shape (an `np.memmap` works) receives the values,
///   converted to its dtype, and is returned; device memory is streamed into it in chunks, so a
///   tensor larger than host RAM converts into a file.
/// - `order`: `"K"` and `"A"` keep a view's strides (a copy is Fortran-ordered when the source
///   is); `"C"` / `"F"`: C- / Fortran-contiguous (a copy when the view is not).
/// - Device memory is read through DLPack by the tensorbridge backend for that device; a new
///   result is checked against the free host memory first (MemoryError naming `out=`).
///   `copy=None` on device memory is an implicit transfer, governed by `tb.transfer_guard`;
///   `copy=True` and `out=` are explicit.
///
/// Errors name the runtime and the fix: TypeError for dtypes NumPy lacks (torch complex32,
/// quantized tensors), sparse layouts and symbolic TensorFlow tensors; ValueError for
/// `copy=False`, a mismatched `out`, deleted JAX arrays; MemoryError when the host cannot hold
/// the result.
#[pyfunction]
#[pyo3(signature = (x, /, *, dtype=None, copy=None, out=None, order="K"))]
pub fn asnumpy<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    dtype: Option<&Bound<'py, PyAny>>,
    copy: Option<bool>,
    out: Option<&Bound<'py, PyAny>>,
    order: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let dtype = none_if_none(dtype);
    let out = none_if_none(out);
    if let Ok(t) = x.cast::<PyTensor>() {
        let what = describe_tensor(&t.get().inner);
        return convert_tensor(t, dtype, copy, out, Order::parse(order)?, &what);
    }
    if dtype.is_none() && copy.is_none() && out.is_none() && order == "K" {
        if let Some(view) = fast_view(py, x)? {
            return Ok(view);
        }
    } else if out.is_none() && copy != Some(false) {
        if let Some(converted) = fast_convert(py, x, dtype, copy, order)? {
            return Ok(converted);
        }
    }
    let Some(fallback) = FALLBACK.get(py) else {
        return Err(PyRuntimeError::new_err(
            "tb.asnumpy is not set up: import tensorbridge (not tensorbridge._native)",
        ));
    };
    let kwargs = PyDict::new(py);
    kwargs.set_item("dtype", dtype)?;
    kwargs.set_item("copy", copy)?;
    kwargs.set_item("out", out)?;
    kwargs.set_item("order", order)?;
    fallback.bind(py).call((x,), Some(&kwargs))
}

/// A read-only zero-copy view for an exact NumPy array or a registered type; `None` when the
/// object has none (the fallback decides then).
fn fast_view<'py>(py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
    // SAFETY: PyArray_CheckExact only reads the object's type.
    if unsafe { npyffi::PyArray_CheckExact(py, x.as_ptr()) } != 0 {
        return readonly_view(x).map(Some);
    }
    let Some(path) = registered(py, x)? else {
        return Ok(None);
    };
    if path.get().method.is_none() {
        return buffer_view(py, x);
    }
    match runtime_array(x, path.get()) {
        Some(arr) => readonly(arr).map(Some),
        None => Ok(None),
    }
}

/// What `_asnumpy_register_fast` registered for `x`'s exact type, if anything.
fn registered<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, FastPath>>> {
    let Some(fast) = FAST.get(py) else {
        return Ok(None);
    };
    match fast.bind(py).get_item(x.get_type())? {
        Some(path) => Ok(Some(path.cast_into::<FastPath>()?)),
        None => Ok(None),
    }
}

/// The ndarray a registered runtime's own zero-copy method (`torch.Tensor.numpy`) returns for
/// `x`, or `None` when the path's conditions do not hold, when the method refuses (device
/// memory, autograd, ...: the fallback's to explain) or returns something else. A dtype in the
/// path's `bits` (one the method refuses, as torch's `numpy()` refuses bfloat16) is read as its
/// same-width dtype (`x.view(torch.int16).numpy()`) and the array reinterpreted as the NumPy
/// dtype of the bits (ml_dtypes' bfloat16), without asking the method first.
fn runtime_array<'py>(x: &Bound<'py, PyAny>, path: &FastPath) -> Option<Bound<'py, PyAny>> {
    let py = x.py();
    let method = path.method.as_ref()?.bind(py);
    for (attr, want) in &path.when {
        if x.getattr(attr.bind(py)).ok()?.is_truthy().ok()? != *want {
            return None;
        }
    }
    let is_ndarray =
        // SAFETY: PyArray_Check only reads the object's type.
        |a: &Bound<'py, PyAny>| unsafe { npyffi::PyArray_Check(py, a.as_ptr()) } != 0;
    if let Some(bits) = &path.bits {
        let dtype = x.getattr(intern!(py, "dtype")).ok()?;
        if let Some(spec) = bits.bind(py).get_item(&dtype).ok()? {
            let (same_width, numpy_dtype) = spec
                .extract::<(Bound<'py, PyAny>, Bound<'py, PyArrayDescr>)>()
                .ok()?;
            let words = x.call_method1(intern!(py, "view"), (same_width,)).ok()?;
            let arr = words.call_method0(method).ok()?;
            return is_ndarray(&arr)
                .then(|| reinterpret(&arr, &numpy_dtype))
                .flatten();
        }
    }
    let arr = x.call_method0(method).ok()?;
    is_ndarray(&arr).then_some(arr)
}

/// A new ndarray over `arr`'s memory (an ndarray; its base keeps it alive) with `dtype`, which
/// must have `arr`'s element size (else `None`).
fn reinterpret<'py>(
    arr: &Bound<'py, PyAny>,
    dtype: &Bound<'py, PyArrayDescr>,
) -> Option<Bound<'py, PyAny>> {
    let py = arr.py();
    let words = arr.cast::<PyUntypedArray>().ok()?;
    if words.dtype().itemsize() != dtype.itemsize() {
        return None;
    }
    // SAFETY: `arr` is an ndarray; PyArray_View steals the descriptor reference we hand it (a
    // new one, from `clone().into_ptr()`) and makes a base-class ndarray over the same memory
    // and strides, valid since the element size is the same; it returns a new reference or
    // null with an error set.
    unsafe {
        let ptr = PY_ARRAY_API.PyArray_View(
            py,
            arr.as_ptr() as *mut npyffi::PyArrayObject,
            dtype.clone().into_ptr() as *mut npyffi::PyArray_Descr,
            npyffi::get_type_object(py, npyffi::NpyTypes::PyArray_Type),
        );
        Bound::from_owned_ptr_or_err(py, ptr).ok()
    }
}

/// `arr` (a runtime's ndarray over its memory) as a read-only array: a fresh array (ours alone)
/// is made read-only in place; one the runtime keeps (a cache) gets a read-only view, so the
/// runtime's own object is left as it was.
fn readonly(arr: Bound<'_, PyAny>) -> PyResult<Bound<'_, PyAny>> {
    // SAFETY: Py_REFCNT reads the reference count of a live object we hold.
    if unsafe { ffi::Py_REFCNT(arr.as_ptr()) } == 1 {
        clear_writeable(&arr);
        return Ok(arr);
    }
    readonly_view(&arr)
}

/// `tb.asnumpy(x, dtype=, copy=None/True, order=)` of a type registered with a method (torch
/// tensors), without the Python fallback: the runtime's own zero-copy array, then the fallback's
/// rule (`_asnumpy._host`) — a read-only view when its dtype and layout are what is asked and no
/// copy is, else one copy by the core's fused kernel. `None` for everything else (an `order` or
/// `dtype` that is not valid or not ours, a runtime that refuses): the fallback decides and
/// words the errors.
fn fast_convert<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    dtype: Option<&Bound<'py, PyAny>>,
    copy: Option<bool>,
    order: &str,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let (Some(path), Ok(order)) = (registered(py, x)?, Order::parse(order)) else {
        return Ok(None);
    };
    let Some(arr) = runtime_array(x, path.get()) else {
        return Ok(None);
    };
    let v = arr.cast::<PyUntypedArray>()?;
    let Ok(source) = dtype_of_descr(&v.dtype()) else {
        return Ok(None);
    };
    let d = match target(dtype, source) {
        Ok(Target::Same) => source,
        Ok(Target::Ours(d)) => d,
        Ok(Target::Foreign(_)) | Err(_) => return Ok(None),
    };
    let (c, f) = (v.is_c_contiguous(), v.is_fortran_contiguous());
    if d == source && order.accepts(c, f) && copy != Some(true) {
        return readonly(arr).map(Some);
    }
    let t = import_array(py, v, false)?;
    copy_tensor(py, &t, d, order.copy_in_fortran(c, f)).map(Some)
}

/// Clears NumPy's WRITEABLE flag of `arr` (an ndarray).
fn clear_writeable(arr: &Bound<'_, PyAny>) {
    // SAFETY: `arr` is an ndarray (checked by the callers), so its object is a PyArrayObject;
    // clearing WRITEABLE only forbids writes through it (NumPy's PyArray_CLEARFLAGS does this).
    unsafe {
        let fields = npyffi::_PyArray_GET_ITEM_DATA(arr.as_ptr() as *const npyffi::PyArrayObject);
        (*fields).flags &= !npyffi::NPY_ARRAY_WRITEABLE;
    }
}

/// A new read-only ndarray object viewing `arr`'s memory (its base keeps `arr` alive).
fn readonly_view<'py>(arr: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = arr.py();
    // SAFETY: `arr` is an ndarray (checked by the callers); PyArray_View with a null descriptor
    // and type makes a base-class ndarray of the same dtype over the same memory, returning a new
    // reference or null with an error set.
    let view = unsafe {
        let ptr = PY_ARRAY_API.PyArray_View(
            py,
            arr.as_ptr() as *mut npyffi::PyArrayObject,
            std::ptr::null_mut(),
            npyffi::get_type_object(py, npyffi::NpyTypes::PyArray_Type),
        );
        Bound::from_owned_ptr_or_err(py, ptr)?
    };
    clear_writeable(&view);
    Ok(view)
}

/// A read-only view of `a` (an ndarray) as a base-class ndarray: `tensorbridge._asnumpy` returns
/// this for memory it must not let NumPy write.
#[pyfunction]
pub fn _readonly<'py>(a: &Bound<'py, PyUntypedArray>) -> PyResult<Bound<'py, PyAny>> {
    readonly_view(a.as_any())
}

// ---- the buffer protocol ------------------------------------------------------------------------

/// Holds a `Py_buffer` for as long as an ndarray views it (the array's base), then releases it.
#[pyclass(frozen, module = "tensorbridge")]
struct HeldBuffer {
    view: std::cell::UnsafeCell<ffi::Py_buffer>,
}

// SAFETY: the Py_buffer is only touched in Drop, which runs with the GIL held (pyo3 drops a
// pyclass's contents from its tp_dealloc, under the GIL), where PyBuffer_Release is allowed.
unsafe impl Send for HeldBuffer {}
// SAFETY: no method reads the buffer; shared references never reach it.
unsafe impl Sync for HeldBuffer {}

impl Drop for HeldBuffer {
    fn drop(&mut self) {
        // SAFETY: the buffer was filled by a successful PyObject_GetBuffer and is released once.
        unsafe { ffi::PyBuffer_Release(self.view.get_mut()) }
    }
}

/// Our dtype of a PEP 3118 format of native byte order, by its element size.
fn dtype_of_format(format: &CStr, itemsize: isize) -> Option<DType> {
    let bytes = format.to_bytes();
    let code = match bytes {
        [c] | [b'@' | b'=', c] => *c,
        [b'<', c] if cfg!(target_endian = "little") => *c,
        [b'>' | b'!', c] if cfg!(target_endian = "big") => *c,
        _ => return None,
    };
    let signed = |n| match n {
        1 => Some(DType::I8),
        2 => Some(DType::I16),
        4 => Some(DType::I32),
        8 => Some(DType::I64),
        _ => None,
    };
    let unsigned = |n| match n {
        1 => Some(DType::U8),
        2 => Some(DType::U16),
        4 => Some(DType::U32),
        8 => Some(DType::U64),
        _ => None,
    };
    let d = match code {
        b'?' => Some(DType::Bool),
        b'b' | b'h' | b'i' | b'l' | b'q' | b'n' => signed(itemsize),
        b'B' | b'H' | b'I' | b'L' | b'Q' | b'N' => unsigned(itemsize),
        b'e' => Some(DType::F16),
        b'f' => Some(DType::F32),
        b'd' => Some(DType::F64),
        _ => None,
    }?;
    (d.size_in_bytes() as isize == itemsize).then_some(d)
}

/// A read-only ndarray over the host memory `x` exports through the buffer protocol, or `None`
/// when it exports none (or one of a dtype tensorbridge has no NumPy descriptor for).
fn buffer_view<'py>(py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
    let held = Bound::new(
        py,
        HeldBuffer {
            // SAFETY: an all-zero Py_buffer is a valid empty value (null pointers, zero sizes).
            view: std::cell::UnsafeCell::new(unsafe { std::mem::zeroed() }),
        },
    )?;
    let view = held.get().view.get();
    // SAFETY: `view` points into `held`, alive for this call; on failure nothing is filled and
    // an error is set, which we clear (the exporter refusing is an answer, not an error).
    if unsafe { ffi::PyObject_GetBuffer(x.as_ptr(), view, ffi::PyBUF_RECORDS_RO) } != 0 {
        // SAFETY: a failed GetBuffer leaves `view.obj` null, so Drop's release is a no-op, and
        // the pending error is ours to clear.
        unsafe { ffi::PyErr_Clear() };
        return Ok(None);
    }
    // SAFETY: GetBuffer succeeded: `view` describes the exported memory until released; the
    // format (requested by PyBUF_RECORDS) and shape/strides (PyBUF_STRIDES) are filled.
    let v = unsafe { &*view };
    let format = if v.format.is_null() {
        c"B"
    } else {
        // SAFETY: a non-null format is a NUL-terminated string owned by the exporter.
        unsafe { CStr::from_ptr(v.format) }
    };
    let Some(d) = dtype_of_format(format, v.itemsize) else {
        return Ok(None); // `held` drops here and releases the buffer
    };
    let ndim = v.ndim as usize;
    let (mut dims, mut strides): (Vec<npy_intp>, Vec<npy_intp>) = if ndim == 0 {
        (Vec::new(), Vec::new())
    } else {
        // SAFETY: with PyBUF_STRIDES the exporter fills `ndim` shape and stride entries.
        unsafe {
            (
                std::slice::from_raw_parts(v.shape, ndim).to_vec(),
                std::slice::from_raw_parts(v.strides, ndim).to_vec(),
            )
        }
    };
    let descr = descr(py, d)?;
    // SAFETY: the memory `v.buf` with these byte strides is the exporter's, valid until the
    // buffer is released, which `held` (set as the array's base below) does when the array is
    // gone; flags 0 makes the array read-only; PyArray_NewFromDescr steals the descriptor.
    let arr = unsafe {
        let ptr = PY_ARRAY_API.PyArray_NewFromDescr(
            py,
            npyffi::get_type_object(py, npyffi::NpyTypes::PyArray_Type),
            descr.into_dtype_ptr(),
            ndim as c_int,
            dims.as_mut_ptr(),
            strides.as_mut_ptr(),
            v.buf,
            0,
            std::ptr::null_mut(),
        );
        Bound::from_owned_ptr_or_err(py, ptr)?
    };
    // SAFETY: `arr` is a fresh ndarray; SetBaseObject steals the reference `into_ptr` makes.
    let rc = unsafe {
        PY_ARRAY_API.PyArray_SetBaseObject(
            py,
            arr.as_ptr() as *mut npyffi::PyArrayObject,
            held.into_any().into_ptr(),
        )
    };
    if rc != 0 {
        return Err(PyErr::fetch(py));
    }
    Ok(Some(arr))
}

// ---- registration -------------------------------------------------------------------------------

/// Registers `tp` as having a zero-copy host view: `how` is the name of a method returning an
/// ndarray over the object's host memory (raising for anything else), or `"buffer"` for the
/// buffer protocol. With a method: `when`, (attribute, value) pairs that must all hold (by
/// truth value) for the method to be asked (torch: `[("is_cpu", True), ("requires_grad",
/// False)]`), else the fallback converts; `bits`, {dtype (`x.dtype`): (a same-width dtype the
/// method reads, the `numpy.dtype` of the bits)} for dtypes the method refuses, read as
/// `x.view(same_width).<how>()` reinterpreted (torch bfloat16: int16, ml_dtypes' bfloat16).
#[pyfunction]
#[pyo3(signature = (tp, how, *, when=None, bits=None))]
pub fn _asnumpy_register_fast(
    py: Python<'_>,
    tp: &Bound<'_, PyType>,
    how: &str,
    when: Option<Vec<(String, bool)>>,
    bits: Option<&Bound<'_, PyDict>>,
) -> PyResult<()> {
    let buffer = how == "buffer";
    if buffer && (when.is_some() || bits.is_some()) {
        return Err(PyValueError::new_err(
            "_asnumpy_register_fast: when= and bits= need a method, not the buffer protocol",
        ));
    }
    if let Some(bits) = bits {
        for (dtype, spec) in bits.iter() {
            if spec
                .extract::<(Bound<'_, PyAny>, Bound<'_, PyArrayDescr>)>()
                .is_err()
            {
                return Err(PyTypeError::new_err(format!(
                    "_asnumpy_register_fast: bits[{}] must be (same-width dtype, numpy.dtype)",
                    dtype.repr()?
                )));
            }
        }
    }
    let path = FastPath {
        method: (!buffer).then(|| PyString::intern(py, how).unbind()),
        when: when
            .unwrap_or_default()
            .into_iter()
            .map(|(attr, want)| (PyString::intern(py, &attr).unbind(), want))
            .collect(),
        bits: bits.map(|b| b.clone().unbind()),
    };
    let fast = FAST.get_or_init(py, || PyDict::new(py).unbind()).bind(py);
    fast.set_item(tp, Bound::new(py, path)?)
}

/// Sets the Python fallback of `tb.asnumpy` (`tensorbridge._asnumpy._convert`).
#[pyfunction]
pub fn _asnumpy_set_fallback(py: Python<'_>, f: Bound<'_, PyAny>) -> PyResult<()> {
    FALLBACK
        .set(py, f.unbind())
        .map_err(|_| PyRuntimeError::new_err("tb.asnumpy's fallback is already set"))
}

// ---- guards ---------------------------------------------------------------------------------------

/// `tb.transfer_guard` for an implicit device→host transfer made by `tb.asnumpy` (`copy=None`
/// on memory NumPy cannot read in place); `what` describes the source.
#[pyfunction]
pub fn _asnumpy_transfer_guard(py: Python<'_>, what: &str) -> PyResult<()> {
    let level = transfer_guard::_get_transfer_guard();
    if level == "allow" {
        return Ok(());
    }
    let msg = format!("implicit device-to-host transfer by tb.asnumpy of {what}");
    if level == "log" {
        let logger = py
            .import("logging")?
            .call_method1("getLogger", ("tensorbridge",))?;
        logger.call_method1("warning", (format!("tensorbridge: {msg}"),))?;
        return Ok(());
    }
    Err(PyRuntimeError::new_err(format!(
        "Disallowed {msg}: tb.transfer_guard is 'disallow'; pass copy=True (or out=) to \
         tb.asnumpy to transfer explicitly"
    )))
}

/// The host-memory guard before allocating a result of `shape` × `itemsize` bytes that comes from
/// device memory: MemoryError naming the way out when the host does not have that much free.
#[pyfunction]
pub fn _asnumpy_host_guard(shape: Vec<usize>, itemsize: usize, what: &str) -> PyResult<()> {
    let bytes = shape
        .iter()
        .try_fold(itemsize as u128, |acc, &d| acc.checked_mul(d as u128));
    // The tightest of RAM and the container's limit, as the core's memory guard reads them.
    let available = tensorbridge::memory_guard::HostMemory::probe()
        .tightest()
        .and_then(|l| l.available())
        .map_or(u128::MAX, u128::from);
    match bytes {
        Some(b) if b <= available && b <= isize::MAX as u128 => Ok(()),
        _ => Err(PyMemoryError::new_err(format!(
            "tb.asnumpy of {what}: the result needs {} bytes of host memory, {} are available; \
             convert it in pieces into a file with tb.asnumpy(x, out=np.memmap(path, dtype, \
             'w+', shape=x.shape)), or into any preallocated array with out=",
            bytes.map_or_else(|| "more than 2^128".to_string(), |b| b.to_string()),
            if available == u128::MAX {
                "unknown".to_string()
            } else {
                available.to_string()
            }
        ))),
    }
}

// ---- conversion of tensors ----------------------------------------------------------------------

/// `tb.asnumpy` of a tensorbridge tensor (also the tensors that `tensorbridge._asnumpy` makes over
/// other runtimes' device memory through DLPack); `source` names what the user passed, for errors.
#[pyfunction]
#[pyo3(signature = (t, *, dtype=None, copy=None, out=None, order="K", source=None))]
pub fn _asnumpy_tensor<'py>(
    t: &Bound<'py, PyTensor>,
    dtype: Option<&Bound<'py, PyAny>>,
    copy: Option<bool>,
    out: Option<&Bound<'py, PyAny>>,
    order: &str,
    source: Option<&str>,
) -> PyResult<Bound<'py, PyAny>> {
    let what = source.map_or_else(|| describe_tensor(&t.get().inner), str::to_string);
    convert_tensor(
        t,
        none_if_none(dtype),
        copy,
        none_if_none(out),
        Order::parse(order)?,
        &what,
    )
}

fn convert_tensor<'py>(
    slf: &Bound<'py, PyTensor>,
    dtype: Option<&Bound<'py, PyAny>>,
    copy: Option<bool>,
    out: Option<&Bound<'py, PyAny>>,
    order: Order,
    what: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let py = slf.py();
    let t = &slf.get().inner;
    if !t.is_evaluated() {
        // Conversion is the moment of evaluation, as for t.numpy().
        run_guarded(py, usize::MAX, || t.evaluate())?;
    }
    if let Some(out) = out {
        check_out(out, dtype, copy, order)?;
        return export_into(py, t, out, "same_kind");
    }
    let target = target(dtype, t.dtype())?;
    let layout = t.layout();
    let c_contig = layout.is_contiguous();
    let f_contig = is_f_contiguous(layout.shape(), layout.strides());
    if copy != Some(true) {
        if let Target::Same = target {
            if let Some(view) = export_view(py, slf.as_any(), t)? {
                if order.accepts(c_contig, f_contig) {
                    return Ok(view);
                }
            }
        }
    }
    if copy == Some(false) {
        let why = match &target {
            Target::Ours(d) => format!("a dtype conversion {} -> {d}", t.dtype()),
            Target::Foreign(d) => format!("a dtype conversion {} -> {}", t.dtype(), d.str()?),
            Target::Same
                if t.view_memory()
                    .is_some_and(|m| m.device == tensorbridge::Device::Cpu) =>
            {
                format!("a copy (order={order:?}: the view is not {order:?}-contiguous)")
            }
            Target::Same => "a device-to-host copy (the memory is not host memory NumPy can \
                             read in place)"
                .to_string(),
        };
        return Err(PyValueError::new_err(format!(
            "tb.asnumpy(copy=False) of {what}: the conversion needs {why}. Use copy=None to \
             allow a copy when needed."
        )));
    }
    if copy.is_none() && t.host_bytes().is_none() {
        _asnumpy_transfer_guard(py, what)?;
    }
    let fortran = order.copy_in_fortran(c_contig, f_contig);
    match target {
        Target::Same => copy_tensor(py, t, t.dtype(), fortran),
        Target::Ours(d) => copy_tensor(py, t, d, fortran),
        Target::Foreign(d) => {
            // NumPy converts to a dtype tensorbridge lacks: from a view when there is one, else
            // from one copy of ours.
            let ours = match export_view(py, slf.as_any(), t)? {
                Some(v) => v,
                None => copy_tensor(py, t, t.dtype(), fortran)?,
            };
            let np_order = if fortran { "F" } else { "C" };
            ours.call_method1("astype", (d, np_order))
        }
    }
}

/// A new writable array of `t`'s values as `dtype`, C- or Fortran-ordered (one pass: transfer,
/// layout and cast together).
fn copy_tensor<'py>(
    py: Python<'py>,
    t: &AnyTensor,
    dtype: DType,
    fortran: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let ndim = t.shape().len();
    if !fortran || ndim < 2 {
        return export_copy(py, t, dtype);
    }
    // The C-ordered copy of the axes reversed, transposed back, is the Fortran-ordered copy.
    let reversed: Vec<isize> = (0..ndim as isize).rev().collect();
    let flipped = t.permute(&reversed).py(py)?;
    export_copy(py, &flipped, dtype)?.getattr("T")
}

/// The checks of `out=`: no `copy=False` (writing into `out` is a copy), `dtype=` (if given) is
/// `out`'s, `order='C'/'F'` (if given) is `out`'s layout.
fn check_out(
    out: &Bound<'_, PyAny>,
    dtype: Option<&Bound<'_, PyAny>>,
    copy: Option<bool>,
    order: Order,
) -> PyResult<()> {
    if copy == Some(false) {
        return Err(PyValueError::new_err(
            "tb.asnumpy(out=...) always copies into out; copy=False cannot be honoured",
        ));
    }
    let Ok(arr) = out.cast::<PyUntypedArray>() else {
        // export_into names the type.
        return Ok(());
    };
    if let Some(d) = dtype {
        let py = out.py();
        let requested = py.import("numpy")?.call_method1("dtype", (d,))?;
        if !arr.dtype().as_any().eq(&requested)? {
            return Err(PyValueError::new_err(format!(
                "tb.asnumpy: dtype={} differs from out's dtype {}; pass one of them",
                requested.str()?,
                arr.dtype().str()?
            )));
        }
    }
    if !order.accepts(arr.is_c_contiguous(), arr.is_fortran_contiguous()) {
        return Err(PyValueError::new_err(format!(
            "tb.asnumpy: order={order:?} but out is not {order:?}-contiguous"
        )));
    }
    Ok(())
}

// ---- conversion of host arrays ------------------------------------------------------------------

/// The copy (or `out=` write) of a host ndarray `v` of a tensorbridge dtype, through the core's
/// fused kernels: `v`'s memory is read in place (imported without a copy), converted to `dtype`
/// and laid out in `order` in one pass. The caller has decided that a copy is what is asked for.
#[pyfunction]
#[pyo3(signature = (v, *, dtype=None, out=None, order="K"))]
pub fn _asnumpy_array<'py>(
    py: Python<'py>,
    v: &Bound<'py, PyUntypedArray>,
    dtype: Option<&Bound<'py, PyAny>>,
    out: Option<&Bound<'py, PyAny>>,
    order: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let order = Order::parse(order)?;
    let source = dtype_of_descr(&v.dtype())?;
    let t = import_array(py, v, false)?;
    if let Some(out) = none_if_none(out) {
        check_out(out, none_if_none(dtype), None, order)?;
        return export_into(py, &t, out, "same_kind");
    }
    let d = match target(none_if_none(dtype), source)? {
        Target::Same => source,
        Target::Ours(d) => d,
        Target::Foreign(_) => {
            return Err(PyTypeError::new_err(
                "_asnumpy_array converts to tensorbridge dtypes only",
            ))
        }
    };
    let fortran = order.copy_in_fortran(v.is_c_contiguous(), v.is_fortran_contiguous());
    copy_tensor(py, &t, d, fortran)
}
