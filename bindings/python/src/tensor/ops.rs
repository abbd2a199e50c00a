//! Operators and math: `+ - * / @`, comparisons, unary math, reductions and `astype`. Operands
//! are parsed once ([`operand`]), with NumPy 2's rules (NEP 50): Python scalars stay weak and reach
//! the core as [`Scalar`]s; NumPy scalars and arrays, lists, tuples and anything with `__array__`
//! are strong: NumPy converts them, and the result moves onto the tensor's backend and device.

use numpy::{PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyList, PyTuple};
use tensorbridge::dtype::DTypeKind;
use tensorbridge::registry;
use tensorbridge::{AnyTensor, DType, Device, ReduceOp, Scalar, ScalarOp, TensorOp, UnaryOp};

use super::{bytes_of, describe_tensor, work_bytes, PyTensor};
use crate::args::{opt_dtype, parse_dtype, reduce_axes_arg};
use crate::errors::{run_guarded, with_context, IntoPyResult};
use crate::interop::numpy::{copy_array_to, import_array};

/// A Python operand of a binary op: a tensor on the other operand's backend and device, or a
/// weakly typed Python scalar.
pub enum Operand {
    /// A tensor (NumPy arrays and scalars, lists, ... are converted into one).
    Tensor(AnyTensor),
    /// A Python `bool`, `int` or `float`.
    Scalar(Scalar),
}

impl Operand {
    fn describe(&self) -> String {
        match self {
            Operand::Tensor(t) => describe_tensor(t),
            Operand::Scalar(Scalar::Bool(b)) => {
                format!("Python bool {}", if *b { "True" } else { "False" })
            }
            Operand::Scalar(Scalar::Int(v)) => format!("Python int {v}"),
            Operand::Scalar(Scalar::Float(v)) => format!("Python float {v}"),
        }
    }
}

/// What a binary op does with its operand: NumPy 2 checks a Python int against the tensor's
/// dtype differently for each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// `+ - *` (and `@`, which refuses scalars anyway): the int must be a value of an integer
    /// tensor's dtype (of int64 for a bool tensor), else OverflowError.
    Arith,
    /// `/`: integer and bool tensors compute in float64, so any int that float64 holds works.
    TrueDiv,
    /// `== != < <= > >=`: answered exactly for every int (bool tensors: ints of int64's range).
    Compare,
}

impl Use {
    fn of(op: TensorOp) -> Use {
        match op {
            TensorOp::Div => Use::TrueDiv,
            TensorOp::Add | TensorOp::Sub | TensorOp::Mul => Use::Arith,
            _ => Use::Compare,
        }
    }
}

/// The operands of a failed binary op, for its error message (the core names only the shapes).
fn operands_context(a: &AnyTensor, b: &Operand, reversed: bool) -> String {
    let (l, r) = (describe_tensor(a), b.describe());
    let (l, r) = if reversed { (r, l) } else { (l, r) };
    format!("lhs: {l}; rhs: {r}")
}

/// NumPy 2's OverflowError for a Python int that is no value of `dtype`.
fn int_out_of_bounds(v: &Bound<'_, PyAny>, dtype: DType) -> PyErr {
    let shown = v.str().map(|s| s.to_string()).unwrap_or_default();
    PyOverflowError::new_err(format!("Python integer {shown} out of bounds for {dtype}"))
}

/// True when `v` is a value of the integer (or, as int64, bool) dtype `dtype`.
pub fn int_fits(v: i128, dtype: DType) -> bool {
    let (lo, hi): (i128, i128) = match dtype {
        DType::U8 => (0, u8::MAX.into()),
        DType::U16 => (0, u16::MAX.into()),
        DType::U32 => (0, u32::MAX.into()),
        DType::U64 => (0, u64::MAX.into()),
        DType::I8 => (i8::MIN.into(), i8::MAX.into()),
        DType::I16 => (i16::MIN.into(), i16::MAX.into()),
        DType::I32 => (i32::MIN.into(), i32::MAX.into()),
        _ => (i64::MIN.into(), i64::MAX.into()),
    };
    (lo..=hi).contains(&v)
}

/// A Python int (any size) as the weak scalar operand of `use_` with a tensor of `dtype`,
/// following NumPy 2: comparisons are exact, arithmetic with an int that the dtype cannot hold
/// is an OverflowError, float tensors take the int's float value.
pub fn python_int(v: &Bound<'_, PyAny>, dtype: DType, use_: Use) -> PyResult<Scalar> {
    let exact: Option<i128> = v.extract().ok();
    let as_float = || -> PyResult<Scalar> {
        // Python's own conversion: OverflowError beyond float64's range, as NumPy.
        Ok(Scalar::Float(v.extract::<f64>()?))
    };
    match (dtype.kind(), use_) {
        (DTypeKind::Float, _) | (_, Use::TrueDiv) => match exact {
            Some(i) => Ok(Scalar::Int(i)),
            None => as_float(),
        },
        (DTypeKind::Bool, _) => match exact {
            // NumPy converts the int to int64 (bool + int is int64).
            Some(i) if int_fits(i, DType::I64) => Ok(Scalar::Int(i)),
            _ => Err(int_out_of_bounds(v, DType::I64)),
        },
        (_, Use::Compare) => Ok(Scalar::Int(match exact {
            Some(i) => i,
            // Beyond every integer dtype: any int past i128 compares like i128's bound.
            None if v.lt(0)? => i128::MIN,
            None => i128::MAX,
        })),
        (_, Use::Arith) => match exact {
            Some(i) if int_fits(i, dtype) => Ok(Scalar::Int(i)),
            _ => Err(int_out_of_bounds(v, dtype)),
        },
    }
}

/// True for what NumPy turns into an array of numbers: NumPy arrays and scalars, lists, tuples,
/// and objects with `__array__`, `__array_interface__` or `__array_struct__`.
fn is_array_like(py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
    if other.is_instance_of::<PyList>() || other.is_instance_of::<PyTuple>() {
        return Ok(true);
    }
    let np = py.import("numpy")?;
    if other.is_instance(&np.getattr("ndarray")?)? || other.is_instance(&np.getattr("generic")?)? {
        return Ok(true);
    }
    for protocol in ["__array__", "__array_interface__", "__array_struct__"] {
        if other.hasattr(protocol)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A foreign operand converted by NumPy (so its dtype is NumPy's, and strong) and placed on
/// `like`'s backend and device. A deferred backend gets a copy, so the graph it records never
/// reads memory that the caller may change before it runs.
fn foreign_operand(other: &Bound<'_, PyAny>, like: &AnyTensor) -> PyResult<AnyTensor> {
    let py = other.py();
    let np = py.import("numpy")?;
    let mut arr = np
        .call_method1("asarray", (other,))?
        .cast_into::<PyUntypedArray>()?;
    if arr.dtype().is_native_byteorder() == Some(false) {
        let native = arr.dtype().call_method1("newbyteorder", ("=",))?;
        arr = arr
            .call_method1("astype", (native,))?
            .cast_into::<PyUntypedArray>()?;
    }
    let (backend, device) = (like.backend(), like.device());
    let host = registry::default_for(&Device::Cpu).py(py)?;
    let t = if std::ptr::eq(backend, host) && device == Device::Cpu {
        import_array(py, &arr, false)
    } else {
        // One copy straight onto `like`'s backend and device (a deferred one included).
        copy_array_to(py, &arr, backend, device)
    };
    t.map_err(|e| {
        let what = other
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default();
        with_context(py, e, &format!("operand of type {what}"))
    })
}

/// Parses the other operand of a binary op of `like` with `use_`; `None` when it is nothing we
/// take (Python then tries the other operand's reflected method).
pub fn operand(other: &Bound<'_, PyAny>, like: &AnyTensor, use_: Use) -> PyResult<Option<Operand>> {
    let py = other.py();
    if let Ok(t) = other.cast::<PyTensor>() {
        return Ok(Some(Operand::Tensor(t.get().inner.clone())));
    }
    // Python scalars are weak. NumPy scalars are not, although `np.float64` subclasses `float`
    // (`np.bool_` and `np.int64` are no `bool`/`int`): they are arrays here. Exact Python types
    // (the common case) cannot be NumPy scalars, so only the others are looked at twice.
    let exact = other.is_exact_instance_of::<PyBool>()
        || other.is_exact_instance_of::<PyInt>()
        || other.is_exact_instance_of::<PyFloat>();
    let numpy_scalar = !exact
        && py
            .import("numpy")?
            .getattr("generic")
            .and_then(|g| other.is_instance(&g))?;
    if !numpy_scalar {
        if other.is_instance_of::<PyBool>() {
            return Ok(Some(Operand::Scalar(Scalar::Bool(other.extract()?))));
        }
        if other.is_instance_of::<PyInt>() {
            return Ok(Some(Operand::Scalar(python_int(
                other,
                like.dtype(),
                use_,
            )?)));
        }
        if other.is_instance_of::<PyFloat>() {
            return Ok(Some(Operand::Scalar(Scalar::Float(other.extract()?))));
        }
    }
    if numpy_scalar || is_array_like(py, other)? {
        return Ok(Some(Operand::Tensor(foreign_operand(other, like)?)));
    }
    Ok(None)
}

impl PyTensor {
    fn arith(&self, other: &Bound<'_, PyAny>, op: TensorOp, reversed: bool) -> PyResult<Py<PyAny>> {
        let py = other.py();
        let a = &self.inner;
        let Some(rhs) = operand(other, a, Use::of(op))? else {
            return Ok(py.NotImplemented());
        };
        let out = match &rhs {
            Operand::Tensor(b) => {
                let (l, r) = if reversed { (b, a) } else { (a, b) };
                run_guarded(py, work_bytes(a, b), || l.binary(op, r))
            }
            &Operand::Scalar(s) => {
                let sop = match (op, reversed) {
                    (TensorOp::Add, _) => ScalarOp::Add,
                    (TensorOp::Mul, _) => ScalarOp::Mul,
                    (TensorOp::Sub, false) => ScalarOp::Sub,
                    (TensorOp::Sub, true) => ScalarOp::RSub,
                    (TensorOp::Div, false) => ScalarOp::Div,
                    (TensorOp::Div, true) => ScalarOp::RDiv,
                    _ => {
                        return Err(PyValueError::new_err(
                            "matmul: operands must have at least one dimension (use * for \
                             scalars)",
                        ))
                    }
                };
                run_guarded(py, bytes_of(a), || a.scalar_op(sop, s))
            }
        }
        .map_err(|e| with_context(py, e, &operands_context(a, &rhs, reversed)))?;
        Ok(Py::new(py, PyTensor::wrap(out))?.into_any())
    }

    fn reduce(
        &self,
        py: Python<'_>,
        op: ReduceOp,
        axes: Option<Vec<isize>>,
        dtype: Option<&Bound<'_, PyAny>>,
        out: Option<&Bound<'_, PyAny>>,
        keep: bool,
    ) -> PyResult<PyTensor> {
        if out.is_some_and(|o| !o.is_none()) {
            return Err(PyTypeError::new_err(
                "out= is not supported: tensors are immutable; use the returned tensor",
            ));
        }
        // NumPy's `dtype=`: the dtype the reduction computes in and returns.
        let dtype = match dtype {
            Some(d) => opt_dtype(d)?,
            None => None,
        };
        let t = &self.inner;
        let result = run_guarded(py, bytes_of(t), || {
            let src = match dtype {
                Some(d) => t.cast(d)?,
                None => t.clone(),
            };
            let r = match &axes {
                None => src.reduce(op, None, keep)?,
                Some(axes) => src.reduce_axes(op, axes, keep)?,
            };
            match dtype {
                Some(d) => r.cast(d),
                None => Ok(r),
            }
        })?;
        Ok(PyTensor::wrap(result))
    }

    fn unary(&self, py: Python<'_>, op: UnaryOp) -> PyResult<PyTensor> {
        let t = &self.inner;
        Ok(PyTensor::wrap(run_guarded(py, bytes_of(t), || {
            t.unary(op)
        })?))
    }
}

#[pymethods]
impl PyTensor {
    /// Above NumPy's (and as `torch.Tensor`'s): `ndarray + t` and `np.float64(2) * t` defer to
    /// the tensor's reflected operator, so the result is a tensor on its backend and device, with
    /// the same NEP 50 rules as `t + ndarray` (NumPy functions, `np.add(t, a)`, still convert the
    /// tensor to an ndarray).
    #[classattr]
    fn __array_priority__() -> f64 {
        1000.0
    }

    /// Sum over all elements, one axis, or a tuple of axes (NumPy's `axis`; `keepdims`, or
    /// PyTorch's `keepdim`; `dtype` to compute in, as NumPy).
    #[pyo3(signature = (axis=None, dtype=None, out=None, keepdims=false, *, keepdim=None))]
    fn sum(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = reduce_axes_arg)] axis: Option<Vec<isize>>,
        dtype: Option<&Bound<'_, PyAny>>,
        out: Option<&Bound<'_, PyAny>>,
        keepdims: bool,
        keepdim: Option<bool>,
    ) -> PyResult<PyTensor> {
        let keep = keepdim.unwrap_or(keepdims);
        self.reduce(py, ReduceOp::Sum, axis, dtype, out, keep)
    }

    /// Mean over all elements, one axis, or a tuple of axes.
    #[pyo3(signature = (axis=None, dtype=None, out=None, keepdims=false, *, keepdim=None))]
    fn mean(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = reduce_axes_arg)] axis: Option<Vec<isize>>,
        dtype: Option<&Bound<'_, PyAny>>,
        out: Option<&Bound<'_, PyAny>>,
        keepdims: bool,
        keepdim: Option<bool>,
    ) -> PyResult<PyTensor> {
        let keep = keepdim.unwrap_or(keepdims);
        self.reduce(py, ReduceOp::Mean, axis, dtype, out, keep)
    }

    /// Maximum over all elements, one axis, or a tuple of axes (NaN propagates).
    #[pyo3(signature = (axis=None, out=None, keepdims=false, *, keepdim=None))]
    fn max(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = reduce_axes_arg)] axis: Option<Vec<isize>>,
        out: Option<&Bound<'_, PyAny>>,
        keepdims: bool,
        keepdim: Option<bool>,
    ) -> PyResult<PyTensor> {
        let keep = keepdim.unwrap_or(keepdims);
        self.reduce(py, ReduceOp::Max, axis, None, out, keep)
    }

    /// Minimum over all elements, one axis, or a tuple of axes (NaN propagates).
    #[pyo3(signature = (axis=None, out=None, keepdims=false, *, keepdim=None))]
    fn min(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = reduce_axes_arg)] axis: Option<Vec<isize>>,
        out: Option<&Bound<'_, PyAny>>,
        keepdims: bool,
        keepdim: Option<bool>,
    ) -> PyResult<PyTensor> {
        let keep = keepdim.unwrap_or(keepdims);
        self.reduce(py, ReduceOp::Min, axis, None, out, keep)
    }

    /// `e^x` (integers compute in NumPy's float result type).
    fn exp(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.unary(py, UnaryOp::Exp)
    }

    /// Natural logarithm.
    fn log(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.unary(py, UnaryOp::Log)
    }

    /// Square root.
    fn sqrt(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.unary(py, UnaryOp::Sqrt)
    }

    /// Absolute value.
    fn abs(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.unary(py, UnaryOp::Abs)
    }

    fn __abs__(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.unary(py, UnaryOp::Abs)
    }

    fn __neg__(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.unary(py, UnaryOp::Neg)
    }

    fn __add__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.arith(other, TensorOp::Add, false)
    }
    fn __radd__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.arith(other, TensorOp::Add, true)
    }
    fn __sub__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.arith(other, TensorOp::Sub, false)
    }
    fn __rsub__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.arith(other, TensorOp::Sub, true)
    }
    fn __mul__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.arith(other, TensorOp::Mul, false)
    }
    fn __rmul__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.arith(other, TensorOp::Mul, true)
    }
    fn __truediv__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.arith(other, TensorOp::Div, false)
    }
    fn __rtruediv__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.arith(other, TensorOp::Div, true)
    }
    fn __matmul__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.arith(other, TensorOp::MatMul, false)
    }
    fn __rmatmul__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.arith(other, TensorOp::MatMul, true)
    }

    fn __richcmp__(
        &self,
        other: &Bound<'_, PyAny>,
        op: pyo3::basic::CompareOp,
    ) -> PyResult<Py<PyAny>> {
        use pyo3::basic::CompareOp as C;
        let py = other.py();
        let a = &self.inner;
        let Some(rhs) = operand(other, a, Use::Compare)? else {
            return Ok(py.NotImplemented());
        };
        let (cmp, flip) = match op {
            C::Eq => (TensorOp::Eq, false),
            C::Ne => (TensorOp::Eq, true),
            C::Lt => (TensorOp::Lt, false),
            C::Gt => (TensorOp::Gt, false),
            // a <= b is not (a > b) only without NaN; compute it as (a < b) | (a == b).
            C::Le => (TensorOp::Lt, false),
            C::Ge => (TensorOp::Gt, false),
        };
        let work = match &rhs {
            Operand::Tensor(b) => work_bytes(a, b),
            Operand::Scalar(_) => bytes_of(a),
        };
        let out = run_guarded(py, work, || {
            let run = |c: TensorOp| match &rhs {
                Operand::Tensor(b) => a.binary(c, b),
                Operand::Scalar(s) => a.scalar_op(
                    match c {
                        TensorOp::Lt => ScalarOp::Lt,
                        TensorOp::Gt => ScalarOp::Gt,
                        _ => ScalarOp::Eq,
                    },
                    *s,
                ),
            };
            let r = run(cmp)?;
            match op {
                // bool add is logical or: (a < b) | (a == b).
                C::Le | C::Ge => r.add(&run(TensorOp::Eq)?),
                // bool == False is logical not.
                _ if flip => r.eq_scalar(Scalar::Bool(false)),
                _ => Ok(r),
            }
        })
        .map_err(|e| with_context(py, e, &operands_context(a, &rhs, false)))?;
        Ok(Py::new(py, PyTensor::wrap(out))?.into_any())
    }

    /// A copy converted to `dtype` (float → integer casts saturate and NaN becomes 0 — a
    /// deliberate choice where NumPy's result is platform-defined); the same tensor if already
    /// `dtype`. `dtype=None` is float64, as in NumPy's `ndarray.astype` (`np.dtype(None)`). A
    /// byte order in `dtype` names the same dtype: tensors hold native-order values (`">f8"` gives
    /// float64; `t.numpy().astype(">f8")` is a big-endian array). TypeError for a dtype
    /// tensorbridge does not have.
    fn astype(&self, py: Python<'_>, dtype: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        let d = if dtype.is_none() {
            DType::F64
        } else {
            parse_dtype(dtype)?
        };
        let t = &self.inner;
        Ok(PyTensor::wrap(run_guarded(py, bytes_of(t), || t.cast(d))?))
    }
}
