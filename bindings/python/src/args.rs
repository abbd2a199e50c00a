//! Python arguments parsed once, the same way for every method and function: dtypes, devices,
//! backends, axes and shapes, as `FromPyObject` types (`fn f(dtype: DTypeArg)`), or as
//! `from_py_with` helpers where a plain Rust type reads better in the signature.

use numpy::{PyArrayDescr, PyArrayDescrMethods};
use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyString, PyTuple};
use tensorbridge::registry::{self, BackendEntry};
use tensorbridge::{DType, Device};

use crate::errors::{self, IntoPyResult};

/// Parses a dtype-like: a name (`"float32"`, `"bf16"`), a NumPy dtype or scalar type,
/// `ml_dtypes.bfloat16`.
pub fn parse_dtype(obj: &Bound<'_, PyAny>) -> PyResult<DType> {
    let py = obj.py();
    // Our own names first; any other string NumPy understands (`"<i4"`, `"int_"`) goes through
    // NumPy's converter below, and the error for a string names it as given.
    let named = match obj.cast::<PyString>() {
        Ok(s) => Some(s.to_str()?.parse::<DType>()),
        Err(_) => None,
    };
    if let Some(Ok(d)) = named {
        return Ok(d);
    }
    let unknown = || {
        let shown = obj
            .repr()
            .map(|r| r.to_string())
            .unwrap_or_else(|_| "?".into());
        PyTypeError::new_err(format!(
            "unknown dtype {shown}; expected one of bool, uint8, uint16, uint32, uint64, int8, \
             int16, int32, int64, float16, bfloat16, float32, float64"
        ))
    };
    // A descriptor, or anything NumPy's C converter makes one of (`np.float32`, `"<i4"`), read
    // from its C fields: `dtype.name` is Python code in NumPy 2 and cost more than a small
    // conversion (`np.asarray(t, dtype=np.float32)` of 4 elements: 2.5 us of 2.6).
    let descr = match obj.cast::<PyArrayDescr>() {
        Ok(d) => d.clone(),
        Err(_) => match PyArrayDescr::new(py, obj) {
            Ok(d) => d,
            Err(_) => {
                return Err(match named {
                    Some(Err(e)) => errors::to_py(py, e),
                    _ => unknown(),
                })
            }
        },
    };
    if let Some(d) = known_dtype(&descr) {
        return Ok(d);
    }
    // Byte-swapped descriptors of our dtypes keep their name (callers compare byte orders).
    let name: String = descr.getattr("name")?.extract()?;
    name.parse::<DType>().map_err(|_| unknown())
}

/// An optional dtype argument (`None`: not given).
pub fn opt_dtype(obj: &Bound<'_, PyAny>) -> PyResult<Option<DType>> {
    if obj.is_none() {
        return Ok(None);
    }
    parse_dtype(obj).map(Some)
}

/// The tensorbridge dtype of a NumPy dtype descriptor, or TypeError naming it.
pub fn dtype_of_descr(d: &Bound<'_, PyArrayDescr>) -> PyResult<DType> {
    if let Some(found) = known_dtype(d) {
        return Ok(found);
    }
    let name: String = d.getattr("name")?.extract()?;
    name.parse::<DType>().map_err(|_| {
        PyTypeError::new_err(format!(
            "unsupported dtype {name}; tensorbridge supports bool, uint8-64, int8-64, float16, \
             bfloat16, float32, float64"
        ))
    })
}

/// Our dtype of a native-byte-order descriptor, read from its C fields (kind, item size):
/// `dtype.name` is computed by Python code in NumPy 2, which costs more than a small conversion.
/// `None` for anything else (byte-swapped, structured, dtypes we lack), which the callers
/// name in their errors.
pub fn known_dtype(d: &Bound<'_, PyArrayDescr>) -> Option<DType> {
    if d.is_native_byteorder() == Some(false) {
        return None;
    }
    Some(match (d.kind(), d.itemsize()) {
        (b'b', 1) => DType::Bool,
        (b'u', 1) => DType::U8,
        (b'u', 2) => DType::U16,
        (b'u', 4) => DType::U32,
        (b'u', 8) => DType::U64,
        (b'i', 1) => DType::I8,
        (b'i', 2) => DType::I16,
        (b'i', 4) => DType::I32,
        (b'i', 8) => DType::I64,
        (b'f', 2) => DType::F16,
        (b'f', 4) => DType::F32,
        (b'f', 8) => DType::F64,
        // ml_dtypes' bfloat16 is a 2-byte user dtype; other 2-byte void dtypes are not ours.
        (b'V', 2) => {
            let bf16 = crate::interop::numpy::descr(d.py(), DType::BF16).ok()?;
            return d.is_equiv_to(&bf16).then_some(DType::BF16);
        }
        _ => return None,
    })
}

/// A device name: `"cpu"`, `"cuda"` (ordinal 0), `"cuda:N"`.
pub fn parse_device(py: Python<'_>, device: &str) -> PyResult<Device> {
    device.parse::<Device>().py(py)
}

/// Where a new tensor goes: `backend=` names the library, `device=` the memory. Neither: the
/// `cpu` backend. A device alone: the registry's default backend for that device's kind (for
/// CUDA the first registered backend with CUDA devices). A backend alone: its `cpu` device.
pub fn placement(
    py: Python<'_>,
    backend: Option<&str>,
    device: Option<&str>,
) -> PyResult<(&'static BackendEntry, Device)> {
    tensorbridge::registry::init();
    let device = match device {
        None => Device::Cpu,
        Some(d) => parse_device(py, d)?,
    };
    let entry = match backend {
        Some(b) => registry::find(b).py(py)?,
        None => registry::default_for(&device).py(py)?,
    };
    entry.check_device(&device).py(py)?;
    Ok((entry, device))
}

/// A Python int beyond the machine's range is a ValueError (not OverflowError), so every failure
/// is one of the documented exception types.
fn no_overflow<T>(py: Python<'_>, r: PyResult<T>) -> PyResult<T> {
    r.map_err(|e| {
        if e.is_instance_of::<PyOverflowError>(py) {
            PyValueError::new_err(format!("integer argument out of range: {}", e.value(py)))
        } else {
            e
        }
    })
}

/// An axis or dimension argument.
pub fn int_arg(obj: &Bound<'_, PyAny>) -> PyResult<isize> {
    no_overflow(obj.py(), obj.extract())
}

/// An optional axis argument (`None`: all axes).
pub fn opt_int_arg(obj: &Bound<'_, PyAny>) -> PyResult<Option<isize>> {
    no_overflow(obj.py(), obj.extract())
}

/// The `axis=` of a reduction as NumPy takes it: `None` (all axes), an int, or a tuple of ints
/// (several axes; `()` none). Anything `operator.index` takes is an int except `bool`, which is
/// NumPy's TypeError ("an integer is required"), as is a list.
pub fn reduce_axes_arg(obj: &Bound<'_, PyAny>) -> PyResult<Option<Vec<isize>>> {
    if obj.is_none() {
        return Ok(None);
    }
    let one = |item: &Bound<'_, PyAny>| -> PyResult<isize> {
        if item.is_instance_of::<PyBool>() {
            return Err(PyTypeError::new_err("an integer is required"));
        }
        int_arg(item)
    };
    match obj.cast::<PyTuple>() {
        Ok(tuple) => tuple
            .iter()
            .map(|item| one(&item))
            .collect::<PyResult<_>>()
            .map(Some),
        Err(_) => Ok(Some(vec![one(obj)?])),
    }
}

/// A shape: a sequence of non-negative ints.
pub fn dims_arg(obj: &Bound<'_, PyAny>) -> PyResult<Vec<usize>> {
    let dims: Vec<isize> = no_overflow(obj.py(), obj.extract())?;
    dims.iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| {
            PyValueError::new_err(format!("negative dimensions are not allowed: {dims:?}"))
        })
}

/// Dimensions given either spread out or as one sequence: `t.reshape(2, 3)`, `t.reshape((2, 3))`.
pub fn spread_dims(args: &Bound<'_, PyTuple>) -> PyResult<Vec<isize>> {
    let py = args.py();
    if args.len() == 1 {
        let first = args.get_item(0)?;
        if let Ok(v) = no_overflow(py, first.extract::<Vec<isize>>()) {
            return Ok(v);
        }
    }
    no_overflow(py, args.extract::<Vec<isize>>())
}

/// A shape as Python prints it: `()`, `(3,)`, `(2, 3)`.
pub fn shape_str(shape: &[usize]) -> String {
    match shape {
        [d] => format!("({d},)"),
        _ => {
            let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
            format!("({})", dims.join(", "))
        }
    }
}
