//! The module's constructors (`tb.tensor` itself, `tensorbridge._native._from_numpy` & co.; the
//! Python-level `tb.zeros`, ... in `tensorbridge/__init__.py` call these) and the registry as
//! Python sees it.

use numpy::{PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyOverflowError, PyTypeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString};
use tensorbridge::registry;
use tensorbridge::{AnyTensor, DType, Device, Scalar};

use crate::args::{
    dims_arg, dtype_of_descr, known_dtype, opt_dtype, parse_device, parse_dtype, placement,
};
use crate::errors::{run_guarded, IntoPyResult};
use crate::interop::dlpack;
use crate::interop::numpy::{copy_array_to, import_array};
use crate::tensor::{bytes_of, int_fits, PyTensor};

/// A CPU tensor sharing ``array``'s memory (zero-copy; the tensor keeps the array alive).
///
/// Like ``torch.from_numpy``: later writes to ``array`` are visible through the tensor. Arrays
/// whose memory cannot be viewed (misaligned, byte-swapped, or bool arrays with bytes other than
/// 0 and 1, which NumPy reads as True) are copied once (bools normalised to 0/1). TypeError for
/// anything but a ``numpy.ndarray`` (subclasses included) and for dtypes tensorbridge lacks.
#[pyfunction]
pub fn from_numpy(py: Python<'_>, array: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
    let Ok(arr) = array.cast::<PyUntypedArray>() else {
        return Err(PyTypeError::new_err(format!(
            "tb.from_numpy expects a numpy.ndarray, got {}",
            array.get_type().name()?
        )));
    };
    _from_numpy(
        py,
        &native_array(arr, "tb.from_numpy")?,
        false,
        None,
        None,
        None,
    )
}

/// A new tensor holding a copy of ``data``.
///
/// ``data``: nested lists, Python scalars, NumPy arrays, any object with ``__array__``, a
/// ``torch.Tensor`` (detached, any device, bfloat16 included: what ``Tensor.numpy()`` refuses),
/// or a Tensor (always copied, as ``np.array`` and ``torch.tensor`` do, also when it shares
/// NumPy or torch memory through ``tb.from_numpy``/``tb.from_torch``).
///
/// ``backend`` names the library that holds the tensor, one of ``tb.compiled_backends()``
/// (``"cpu"``, ``"torch"``, ``"candle"``, ``"lazy:cpu"``, ...); ``device`` says where its
/// memory is: ``"cpu"``, ``"cuda"`` (= ``"cuda:0"``), ``"cuda:N"``. Neither given: the ``cpu``
/// backend. A device alone: the default backend for it (``tb.default_backend("cuda")``: torch
/// when compiled in, else candle). A backend alone: its CPU device. A CUDA device that is not
/// there is a RuntimeError naming it, never a silent CPU tensor.
///
/// dtype inference follows NumPy (Python int -> int64, float -> float64, bool -> bool).
/// ``dtype``: Python data (lists, scalars) converts as ``np.array(data, dtype=dtype)`` does, so
/// Python ints are exact (``tb.tensor([2**64 - 1], dtype="uint64")``) and an int out of the
/// dtype's range is NumPy's OverflowError; arrays and tensors are cast as ``astype``, except
/// that float -> integer casts saturate (NaN -> 0), a deliberate choice where NumPy's result is
/// platform-defined. bool data is NumPy's: any non-zero byte is True.
#[pyfunction]
#[pyo3(signature = (data, dtype=None, backend=None, device=None))]
pub fn tensor(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    dtype: Option<&Bound<'_, PyAny>>,
    backend: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyAny>> {
    // The common case, an exact `numpy.ndarray` with `str` (or no) placement, is answered here;
    // everything else goes to `tensorbridge._tensor_of_data`, as before this entry point was
    // native (it costs a Python frame: about a quarter of `tb.tensor` of a small array).
    let (backend_name, device_name) = (
        placement_str(backend, "backend")?,
        placement_str(device, "device")?,
    );
    if let (Ok(array), Some(backend), Some(device)) = (
        data.cast_exact::<PyUntypedArray>(),
        backend_name,
        device_name,
    ) {
        return Ok(_tensor_of_ndarray(py, array, dtype, backend, device)?
            .into_pyobject(py)?
            .into_any()
            .unbind());
    }
    let of_data = TENSOR_OF_DATA.import(py, "tensorbridge", "_tensor_of_data")?;
    Ok(of_data.call1((data, dtype, backend, device))?.unbind())
}

/// `tensorbridge._tensor_of_data`: `tb.tensor` of anything but an exact ndarray.
static TENSOR_OF_DATA: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `Some(None)` for no argument, `Some(Some(s))` for an exact `str`, `None` for a `str` subclass
/// (`np.str_`, left to the Python path); a TypeError naming the argument for anything else.
fn placement_str<'a>(
    arg: Option<&'a Bound<'_, PyAny>>,
    name: &str,
) -> PyResult<Option<Option<&'a str>>> {
    let Some(a) = arg else {
        return Ok(Some(None));
    };
    if let Ok(s) = a.cast_exact::<PyString>() {
        return Ok(Some(Some(s.to_str()?)));
    }
    if a.is_instance_of::<PyString>() {
        return Ok(None);
    }
    let hint = if name == "backend" {
        "a backend name from tb.compiled_backends()"
    } else {
        "'cpu', 'cuda' or 'cuda:N'"
    };
    Err(PyTypeError::new_err(format!(
        "tb.tensor: {name} must be a str ({hint}) or None, got {}",
        a.get_type().name()?
    )))
}

/// `tb.tensor(array, dtype, backend, device)` of a `numpy.ndarray`: one copy (see
/// [`_from_numpy`]), after `tb.tensor`'s checks of the array's dtype.
#[pyfunction]
#[pyo3(signature = (array, dtype=None, backend=None, device=None))]
pub fn _tensor_of_ndarray(
    py: Python<'_>,
    array: &Bound<'_, PyUntypedArray>,
    dtype: Option<&Bound<'_, PyAny>>,
    backend: Option<&str>,
    device: Option<&str>,
) -> PyResult<PyTensor> {
    let arr = native_array(array, "tb.tensor")?;
    _from_numpy(py, &arr, true, dtype, backend, device)
}

/// [`native_array`] for the Python side (`tb.tensor`'s and `tb.full`'s conversion of other data),
/// so the dtype checks and their messages live in one place.
#[pyfunction]
pub fn _native_array<'py>(
    array: &Bound<'py, PyUntypedArray>,
    what: &str,
) -> PyResult<Bound<'py, PyUntypedArray>> {
    native_array(array, what)
}

/// `arr` itself when its dtype is one of ours in native byte order (read from the descriptor's C
/// fields: the common case costs nothing), a native-order copy of a byte-swapped one, or the
/// TypeError naming what tensors hold (`what` is the caller, e.g. `tb.from_numpy`). Dtypes of a
/// kind we have but a size we lack (float128) are left to the import, which names them.
fn native_array<'py>(
    arr: &Bound<'py, PyUntypedArray>,
    what: &str,
) -> PyResult<Bound<'py, PyUntypedArray>> {
    let descr = arr.dtype();
    if known_dtype(&descr).is_some() {
        return Ok(arr.clone());
    }
    match descr.kind() {
        b'b' | b'i' | b'u' | b'f' => {}
        b'O' => {
            return Err(PyTypeError::new_err(format!(
                "{what}: cannot convert {} data to a tensor (mixed or non-numeric Python objects, \
                 or integers too large for 64 bits); tensors hold bool, integer and float values",
                descr.str()?
            )))
        }
        _ if dtype_of_descr(&descr).is_ok() => {}
        _ => {
            return Err(PyTypeError::new_err(format!(
                "{what}: unsupported dtype {}; tensorbridge supports bool, uint8-64, int8-64, \
                 float16, bfloat16, float32, float64",
                descr.str()?
            )))
        }
    }
    if descr.is_native_byteorder() == Some(false) {
        let native = descr.call_method1("newbyteorder", ("=",))?;
        let swapped = arr.call_method1("astype", (native,))?;
        return Ok(swapped.cast_into::<PyUntypedArray>()?);
    }
    Ok(arr.clone())
}

/// Makes a tensor from an ndarray: zero-copy unless `copy` (then one copy, GIL released), cast to
/// `dtype` when given, moved to `backend`/`device`.
#[pyfunction]
#[pyo3(signature = (array, *, copy, dtype=None, backend=None, device=None))]
pub fn _from_numpy(
    py: Python<'_>,
    array: &Bound<'_, PyUntypedArray>,
    copy: bool,
    dtype: Option<&Bound<'_, PyAny>>,
    backend: Option<&str>,
    device: Option<&str>,
) -> PyResult<PyTensor> {
    let (entry, dev) = placement(py, backend, device)?;
    let target = match dtype {
        Some(d) => opt_dtype(d)?,
        None => None,
    };
    let needs_cast = target.is_some_and(|d| dtype_of_descr(&array.dtype()).ok() != Some(d));
    let host = registry::default_for(&Device::Cpu).py(py)?;
    // Moving to another backend or device copies anyway, and so does a cast; a lazy backend over
    // the host backend shares the imported storage (`to` lifts it), so it needs the copy here.
    let lazy_over_host = entry
        .deferred()
        .and_then(|d| registry::entry_by_type(d.target()))
        .is_some_and(|target| std::ptr::eq(target, host));
    let shares_import = lazy_over_host || std::ptr::eq(entry, host);
    if !needs_cast && (copy || !shares_import || dev != Device::Cpu) {
        // One copy, from the ndarray's memory into the buffer `entry` keeps as its storage; an
        // import in place and then `to` cost an owner, a storage and a tensor more.
        return Ok(PyTensor::wrap(copy_array_to(py, array, entry, dev)?));
    }
    let t = import_array(py, array, false)?;
    if let Some(d) = target.filter(|_| needs_cast) {
        // One pass: converted from the ndarray's memory into the buffer `entry` takes over (a
        // host cast and then `to` copied a second time onto any other backend or device).
        let out = run_guarded(py, bytes_of(&t), || {
            AnyTensor::from_host(entry, t.to_host_as(d)?, &dev)
        })?;
        return Ok(PyTensor::wrap(out));
    }
    // No cast and no copy asked: `to` onto the host backend (or a lazy one over it) only wraps
    // the imported storage, so there is no reason to release and retake the GIL.
    let out = run_guarded(py, 0, || t.to(entry, &dev))?;
    Ok(PyTensor::wrap(out))
}

/// `tb.tensor(t)` of a Tensor: a new tensor holding a copy of its values (never its storage,
/// which may be memory a NumPy array or torch tensor still writes to), cast to `dtype` first,
/// on `backend`/`device` (default: `t`'s).
#[pyfunction]
#[pyo3(signature = (t, *, dtype=None, backend=None, device=None))]
pub fn _copy(
    py: Python<'_>,
    t: &Bound<'_, PyTensor>,
    dtype: Option<&Bound<'_, PyAny>>,
    backend: Option<&str>,
    device: Option<&str>,
) -> PyResult<PyTensor> {
    registry::init();
    let t = &t.get().inner;
    let entry = match backend {
        Some(b) => registry::find(b).py(py)?,
        None => t.backend(),
    };
    let dev = match device {
        Some(d) => parse_device(py, d)?,
        None => t.device(),
    };
    entry.check_device(&dev).py(py)?;
    let target = match dtype {
        Some(d) => opt_dtype(d)?,
        None => None,
    };
    // One pass to the host, converting on the way (a GPU backend converts on its device before
    // the download); `entry` takes the host buffer over as its storage.
    let out = run_guarded(py, bytes_of(t), || {
        let host = match target {
            Some(d) => t.to_host_as(d)?,
            None => t.to_host()?,
        };
        AnyTensor::from_host(entry, host, &dev)
    })?;
    Ok(PyTensor::wrap(out))
}

/// `tb.from_dlpack`: a tensor over a DLPack producer's memory (zero-copy unless a copy is asked
/// for or needed), on `backend`/`device` when given.
#[pyfunction]
#[pyo3(signature = (x, *, device=None, backend=None, copy=None))]
pub fn _from_dlpack(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    device: Option<&str>,
    backend: Option<&str>,
    copy: Option<bool>,
) -> PyResult<PyTensor> {
    registry::init();
    let dev = device.map(|d| parse_device(py, d)).transpose()?;
    let entry = backend.map(|b| registry::find(b).py(py)).transpose()?;
    Ok(PyTensor::wrap(dlpack::import::from_dlpack(
        py, x, dev, entry, copy,
    )?))
}

/// A fill value or `arange` bound: a Python number, or a NumPy scalar / 0-d array (its Python
/// value), exactly (a Python int never passes through float64). `target` is the dtype it becomes:
/// a Python int beyond i128 only fits a float dtype, and an int that an integer `target` cannot
/// hold is NumPy 2's OverflowError when `check_range` (`np.full(2, 300, dtype=np.uint8)`).
fn scalar_arg(v: &Bound<'_, PyAny>, target: Option<DType>, check_range: bool) -> PyResult<Scalar> {
    let py = v.py();
    let type_name = || {
        v.get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default()
    };
    let numpy_scalar = py
        .import("numpy")?
        .getattr("generic")
        .and_then(|g| v.is_instance(&g))?;
    let python_number = v.is_instance_of::<PyBool>()
        || v.is_instance_of::<PyInt>()
        || v.is_instance_of::<PyFloat>();
    let value = if python_number && !numpy_scalar {
        v.clone()
    } else {
        // NumPy scalars and 0-d arrays: their Python value.
        v.call_method0("item").map_err(|_| {
            PyTypeError::new_err(format!("expected a real number, got {}", type_name()))
        })?
    };
    // Only a Python int is NumPy 2's OverflowError; a NumPy scalar or array is cast as NumPy casts.
    let check_range = check_range && python_number && !numpy_scalar;
    if value.is_instance_of::<PyBool>() {
        return Ok(Scalar::Bool(value.extract()?));
    }
    if value.is_instance_of::<PyInt>() {
        let out_of_bounds = |d: DType| {
            let shown = value.str().map(|s| s.to_string()).unwrap_or_default();
            PyOverflowError::new_err(format!("Python integer {shown} out of bounds for {d}"))
        };
        return match (value.extract::<i128>().ok(), target) {
            (Some(i), Some(d)) if check_range && d.is_int() && !int_fits(i, d) => {
                Err(out_of_bounds(d))
            }
            (Some(i), _) => Ok(Scalar::Int(i)),
            // Python's conversion: OverflowError beyond float64's range.
            (None, Some(d)) if d.is_float() => Ok(Scalar::Float(value.extract::<f64>()?)),
            (None, d) => Err(out_of_bounds(d.unwrap_or(DType::I64))),
        };
    }
    if value.is_instance_of::<PyFloat>() {
        return Ok(Scalar::Float(value.extract()?));
    }
    Err(PyTypeError::new_err(format!(
        "expected a real number, got {}",
        type_name()
    )))
}

/// `shape` filled with `value`.
#[pyfunction]
#[pyo3(signature = (shape, value, *, dtype=None, backend=None, device=None))]
pub fn _full(
    py: Python<'_>,
    #[pyo3(from_py_with = dims_arg)] shape: Vec<usize>,
    value: &Bound<'_, PyAny>,
    dtype: Option<&Bound<'_, PyAny>>,
    backend: Option<&str>,
    device: Option<&str>,
) -> PyResult<PyTensor> {
    let (entry, dev) = placement(py, backend, device)?;
    let d = match dtype {
        Some(d) => opt_dtype(d)?,
        None => None,
    };
    let v = scalar_arg(value, d, true)?;
    let bytes = shape.iter().fold(8usize, |acc, &x| acc.saturating_mul(x));
    let out = run_guarded(py, bytes, || AnyTensor::full(entry, &shape, v, d, &dev))?;
    Ok(PyTensor::wrap(out))
}

/// NumPy `arange(start, stop, step)`.
#[pyfunction]
#[pyo3(signature = (start, stop, step, *, dtype=None, backend=None, device=None))]
pub fn _arange(
    py: Python<'_>,
    start: &Bound<'_, PyAny>,
    stop: &Bound<'_, PyAny>,
    step: &Bound<'_, PyAny>,
    dtype: Option<&Bound<'_, PyAny>>,
    backend: Option<&str>,
    device: Option<&str>,
) -> PyResult<PyTensor> {
    let (entry, dev) = placement(py, backend, device)?;
    let d = match dtype {
        Some(d) => opt_dtype(d)?,
        None => None,
    };
    let (a, b, c) = (
        scalar_arg(start, d, false)?,
        scalar_arg(stop, d, false)?,
        scalar_arg(step, d, false)?,
    );
    // The work is the length the core will compute (NumPy's ceil((stop - start) / step)).
    let len = ((b.to_f64() - a.to_f64()) / c.to_f64()).ceil();
    let work = if len.is_finite() && len > 0.0 {
        (len as usize).saturating_mul(8)
    } else {
        0
    };
    let out = run_guarded(py, work, || AnyTensor::arange(entry, a, b, c, d, &dev))?;
    Ok(PyTensor::wrap(out))
}

/// The tensorbridge name of a dtype-like (`"float32"`, `np.uint8`, `"bf16"` -> `"bfloat16"`);
/// TypeError for a dtype tensorbridge does not have.
#[pyfunction]
pub fn _dtype_name(dtype: &Bound<'_, PyAny>) -> PyResult<&'static str> {
    Ok(parse_dtype(dtype)?.name())
}

/// Names of the backends compiled into this build, in registration order.
#[pyfunction]
pub fn _compiled_backends() -> Vec<&'static str> {
    registry::init();
    registry::names()
}

/// What each compiled backend is, from the registry: `{name: {"devices": [...], "lazy": bool,
/// "lazy_over": name or None, "type": rust type}}`.
#[pyfunction]
pub fn _backend_info(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    registry::init();
    let out = PyDict::new(py);
    for b in registry::backends() {
        let d = PyDict::new(py);
        let kinds: Vec<String> = b.device_kinds().iter().map(|k| k.to_string()).collect();
        d.set_item("devices", kinds)?;
        d.set_item("lazy", b.deferred().is_some())?;
        let over = b
            .deferred()
            .and_then(|h| registry::entry_by_type(h.target()))
            .map(|e| e.name());
        d.set_item("lazy_over", over)?;
        d.set_item("type", b.type_name())?;
        out.set_item(b.name(), d)?;
    }
    Ok(out)
}

/// The default backend for a device (`"cpu"` → `"cpu"`; `"cuda"` → the first backend with CUDA
/// devices).
#[pyfunction]
pub fn _default_backend(py: Python<'_>, device: &str) -> PyResult<&'static str> {
    registry::init();
    let dev = parse_device(py, device)?;
    Ok(registry::default_for(&dev).py(py)?.name())
}

/// The figures a backend reports about itself (`{}` when it reports none): the counters of the
/// test decorator `counted:*`, for instance.
#[pyfunction]
pub fn _backend_stats<'py>(py: Python<'py>, backend: &str) -> PyResult<Bound<'py, PyDict>> {
    registry::init();
    let entry = registry::find(backend).py(py)?;
    let out = PyDict::new(py);
    for (name, value) in entry.stats().unwrap_or_default() {
        out.set_item(name, value)?;
    }
    Ok(out)
}

/// The backends this build knows of but was built without: `{name: how to build it}`.
#[pyfunction]
pub fn _absent_backends(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    registry::init();
    let out = PyDict::new(py);
    for (name, how) in registry::absent_backends() {
        out.set_item(name, how)?;
    }
    Ok(out)
}
