//! `Tensor.numpy` and `Tensor.__array__` as hand-written vectorcall methods
//! (`METH_FASTCALL | METH_KEYWORDS`), installed on the class when the module loads.
//!
//! Every new NumPy array made from a tensor enters through one of these two (`t.numpy(copy=True)`,
//! and NumPy's `np.array(t)`, `np.asarray(t)`, `np.ascontiguousarray(t)`, which call
//! `t.__array__(dtype, copy=...)`). pyo3's generated argument parsing decodes each keyword name to
//! UTF-8 and compares it as a string, then extracts every parameter: callgrind counted 319
//! instructions of the 1,586 of a 4-element `t.numpy(copy=True)` in it (NumPy's whole `a.copy()`:
//! 1,470). Here a keyword name is first matched by identity with the interned parameter name
//! (CPython interns the keyword names of a call in its code object), by value otherwise, and `None`
//! is "not given" for every parameter (all default to `None`), as it was before.
//!
//! The methods' behaviour is `PyTensor::numpy` / `PyTensor::array` (in `numpy.rs`); errors in the
//! arguments are the TypeErrors CPython gives for its own functions.

use std::ffi::{c_int, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyString;

use super::PyTensor;
use crate::errors::panic_to_py;

/// How one method takes its `N` arguments: every parameter defaults to `None`.
struct Signature<const N: usize> {
    /// The method's name, for error messages.
    name: &'static str,
    /// The parameters, in order.
    params: [&'static str; N],
    /// How many of `params` (the first ones) may be given by position; the rest are keyword-only.
    positional: usize,
    /// `params` as interned Python strings, made on the first call.
    interned: PyOnceLock<[Py<PyString>; N]>,
}

static NUMPY: Signature<3> = Signature {
    name: "numpy",
    params: ["copy", "out", "casting"],
    positional: 0,
    interned: PyOnceLock::new(),
};

static ARRAY: Signature<2> = Signature {
    name: "__array__",
    params: ["dtype", "copy"],
    positional: 2,
    interned: PyOnceLock::new(),
};

impl<const N: usize> Signature<N> {
    /// The TypeError for a value of parameter `param` that does not convert (`e` says why).
    fn arg_error(&self, param: &str, e: impl std::fmt::Display) -> PyErr {
        PyTypeError::new_err(format!("{}() argument '{param}': {e}", self.name))
    }
}

/// The arguments of one vectorcall by parameter of `sig`:
/// `None` where a parameter was not given or was given as `None`. TypeError, worded as CPython's,
/// for too many positional arguments, an unknown keyword, or a parameter given twice. Nothing
/// is reference-counted: the arguments are borrowed from the caller.
///
/// # Safety
/// `args` points to `nargs` positional arguments followed by one value per name in `kwnames`
/// (a tuple of str, or null), all borrowed from the caller for `'a`: CPython's
/// `METH_FASTCALL | METH_KEYWORDS` convention.
unsafe fn parse<'a, 'py, const N: usize>(
    py: Python<'py>,
    sig: &Signature<N>,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> PyResult<[Option<Borrowed<'a, 'py, PyAny>>; N]> {
    let names = sig
        .interned
        .get_or_init(py, || sig.params.map(|p| PyString::intern(py, p).unbind()));
    let mut slots = [std::ptr::null_mut::<ffi::PyObject>(); N];
    let nargs = usize::try_from(nargs).unwrap_or(0);
    if nargs > sig.positional {
        let takes = match sig.positional {
            0 => "takes no positional arguments".to_string(),
            n => format!("takes from 0 to {n} positional arguments"),
        };
        return Err(PyTypeError::new_err(format!(
            "{}() {takes} but {nargs} were given",
            sig.name
        )));
    }
    for (i, slot) in slots.iter_mut().enumerate().take(nargs) {
        // SAFETY: `args` holds `nargs` positional arguments (contract).
        *slot = unsafe { *args.add(i) };
    }
    let nkw = if kwnames.is_null() {
        0
    } else {
        // SAFETY: a non-null `kwnames` is a tuple (contract).
        unsafe { ffi::PyTuple_Size(kwnames) }
    };
    for k in 0..usize::try_from(nkw).unwrap_or(0) {
        // SAFETY: `k` is an index of the tuple `kwnames`; the item is borrowed from it.
        let name = unsafe { ffi::PyTuple_GetItem(kwnames, k as ffi::Py_ssize_t) };
        let found = names.iter().position(|p| p.as_ptr() == name).or_else(|| {
            // SAFETY: `name` is a live item of `kwnames`, borrowed for this call.
            let name = unsafe { Borrowed::from_ptr(py, name) };
            let name = name.cast::<PyString>().ok()?;
            let name = name.to_str().ok()?;
            sig.params.iter().position(|p| *p == name)
        });
        let Some(i) = found else {
            // SAFETY: as above.
            let name = unsafe { Borrowed::from_ptr(py, name) };
            return Err(PyTypeError::new_err(format!(
                "{}() got an unexpected keyword argument {}",
                sig.name,
                name.repr()?
            )));
        };
        if !slots[i].is_null() {
            return Err(PyTypeError::new_err(format!(
                "{}() got multiple values for argument '{}'",
                sig.name, sig.params[i]
            )));
        }
        // SAFETY: the keyword values follow the `nargs` positional ones, one per name (contract).
        slots[i] = unsafe { *args.add(nargs + k) };
    }
    // SAFETY: `Py_None` only returns the address of the static `None` object.
    let none = unsafe { ffi::Py_None() };
    Ok(slots.map(|p| {
        // SAFETY: a non-null slot is one of the caller's arguments, alive for `'a` (contract).
        (p != none)
            .then(|| unsafe { Borrowed::from_ptr_or_opt(py, p) })
            .flatten()
    }))
}

/// `Option<bool>` of parameter `param` of `sig`: Python's two bools by identity, anything else
/// (NumPy's bools) as pyo3 extracts a `bool`.
fn opt_bool<const N: usize>(
    sig: &Signature<N>,
    param: &str,
    v: Option<Borrowed<'_, '_, PyAny>>,
) -> PyResult<Option<bool>> {
    let Some(v) = v else { return Ok(None) };
    // SAFETY: `Py_True`/`Py_False` only return the addresses of the two static bool objects.
    let (t, f) = unsafe { (ffi::Py_True(), ffi::Py_False()) };
    match v.as_ptr() {
        p if p == t => Ok(Some(true)),
        p if p == f => Ok(Some(false)),
        _ => v
            .extract::<bool>()
            .map(Some)
            .map_err(|e| sig.arg_error(param, e)),
    }
}

/// Runs one method call for CPython: `self` as a Tensor, the result or the raised exception
/// (a panic becomes the RuntimeError every other entry point raises for one), never an unwind.
///
/// # Safety
/// Called by CPython with the thread attached, `slf` a `Tensor` (a method descriptor of the class
/// checks the type of `self` before calling).
unsafe fn call(
    slf: *mut ffi::PyObject,
    f: impl for<'py> FnOnce(Python<'py>, &Bound<'py, PyTensor>) -> PyResult<Bound<'py, PyAny>>,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls methods with the thread attached (contract).
    let py = unsafe { Python::assume_attached() };
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `slf` is a live `Tensor` borrowed for this call (contract).
        let slf = unsafe { Bound::from_borrowed_ptr(py, slf).cast_into_unchecked::<PyTensor>() };
        f(py, &slf)
    }));
    match result.unwrap_or_else(|payload| Err(panic_to_py(payload))) {
        Ok(obj) => obj.into_ptr(),
        Err(e) => {
            e.restore(py);
            std::ptr::null_mut()
        }
    }
}

unsafe extern "C" fn numpy_entry(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython's METH_FASTCALL | METH_KEYWORDS convention for a method of `Tensor`: the
    // thread attached, `slf` a Tensor, `args`/`nargs`/`kwnames` as `parse` requires.
    unsafe {
        call(slf, |py, slf| {
            let [copy, out, casting] = parse(py, &NUMPY, args, nargs, kwnames)?;
            let copy = opt_bool(&NUMPY, "copy", copy)?;
            let casting: Option<String> = casting
                .map(|c| c.extract().map_err(|e| NUMPY.arg_error("casting", e)))
                .transpose()?;
            PyTensor::numpy(slf, copy, out.as_deref(), casting.as_deref())
        })
    }
}

unsafe extern "C" fn array_entry(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: as for `numpy_entry`.
    unsafe {
        call(slf, |py, slf| {
            let [dtype, copy] = parse(py, &ARRAY, args, nargs, kwnames)?;
            let copy = opt_bool(&ARRAY, "copy", copy)?;
            PyTensor::array(slf, dtype.as_deref(), copy)
        })
    }
}

/// The docstrings, each led by the text signature `inspect.signature` reads.
const NUMPY_DOC: &CStr = c"numpy($self, *, copy=None, out=None, casting=None)\n\
--\n\
\n\
The values as a `numpy.ndarray`: a read-only zero-copy view of host memory when possible,\n\
else one copy. `copy=True` always returns a new writable array; `copy=False` raises\n\
ValueError when a copy would be needed.\n\
\n\
`out=`: an existing writable ndarray of the same shape (any tensorbridge dtype, any\n\
strides, negative ones included, but no two elements in the same memory; e.g. an\n\
`np.memmap`) receives the values chunk by chunk, converted to\n\
its dtype, and is returned; nothing else of the tensor's size is allocated on the host,\n\
unless `out` shares memory with the tensor: then the tensor is copied first, so every\n\
value is read before any is written (as `np.copyto` does).\n\
The conversion follows `np.copyto`'s `casting` rule (`\"same_kind\"` by default: float64\n\
into int32 is a TypeError; `casting=\"unsafe\"` allows it).";

/// The docstring of `__array__`.
const ARRAY_DOC: &CStr = c"__array__($self, dtype=None, copy=None)\n\
--\n\
\n\
NumPy's conversion protocol, with NumPy 2's `copy` semantics: how `np.asarray(t)`,\n\
`np.array(t)`, `np.ascontiguousarray(t)`, `np.copy(t)` and ufuncs read a tensor (it has no\n\
buffer protocol, so NumPy always asks here). `copy=None`: the zero-copy read-only view when\n\
the memory is C-contiguous (or broadcast), else one C-contiguous copy by tensorbridge's\n\
kernels; `copy=True`: a new writable array in NumPy's `order=\"K\"`; `copy=False`: the view\n\
or ValueError. A dtype is cast in the same pass.";

/// A `PyMethodDef` CPython may keep a pointer to for the life of the process.
struct MethodDef(ffi::PyMethodDef);

// SAFETY: the definitions are never written after construction; CPython only reads them.
unsafe impl Sync for MethodDef {}

const FASTCALL_KEYWORDS: c_int = ffi::METH_FASTCALL | ffi::METH_KEYWORDS;

static NUMPY_DEF: MethodDef = MethodDef(ffi::PyMethodDef {
    ml_name: c"numpy".as_ptr(),
    ml_meth: ffi::PyMethodDefPointer {
        PyCFunctionFastWithKeywords: numpy_entry,
    },
    ml_flags: FASTCALL_KEYWORDS,
    ml_doc: NUMPY_DOC.as_ptr(),
});

static ARRAY_DEF: MethodDef = MethodDef(ffi::PyMethodDef {
    ml_name: c"__array__".as_ptr(),
    ml_meth: ffi::PyMethodDefPointer {
        PyCFunctionFastWithKeywords: array_entry,
    },
    ml_flags: FASTCALL_KEYWORDS,
    ml_doc: ARRAY_DOC.as_ptr(),
});

/// Installs `numpy` and `__array__` on the `Tensor` class (once, when the module loads).
pub fn install(py: Python<'_>) -> PyResult<()> {
    let cls = py.get_type::<PyTensor>();
    for (name, def) in [("numpy", &NUMPY_DEF), ("__array__", &ARRAY_DEF)] {
        // SAFETY: `cls` is a live type object; `def` is a static method definition that outlives
        // every descriptor made from it, and CPython never writes through the pointer.
        let descr = unsafe {
            Bound::from_owned_ptr_or_err(
                py,
                ffi::PyDescr_NewMethod(cls.as_type_ptr(), std::ptr::from_ref(&def.0).cast_mut()),
            )?
        };
        cls.setattr(name, descr)?;
    }
    Ok(())
}
