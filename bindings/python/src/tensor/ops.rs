//! Operators and math: `+ - * / @`, comparisons, unary math, reductions and `astype`. Operands
//! are parsed once ([`operand`]); Python scalars stay weak (NEP 50) and reach the core as
//! [`Scalar`]s, everything else becomes a tensor first.

use numpy::PyUntypedArray;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt};
use tensorbridge::{AnyTensor, ReduceOp, Scalar, ScalarOp, TensorOp, UnaryOp};

use super::{bytes_of, describe_tensor, work_bytes, PyTensor};
use crate::args::{opt_dtype, opt_int_arg, parse_dtype};
use crate::errors::{run_guarded, with_context};
use crate::interop::numpy::import_array;

/// A Python operand of a binary op: another tensor or a weakly typed Python scalar.
pub enum Operand {
    /// A tensor (NumPy arrays and scalars are imported as tensors).
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

/// The operands of a failed binary op, for its error message (the core names only the shapes).
fn operands_context(a: &AnyTensor, b: &Operand, reversed: bool) -> String {
    let (l, r) = (describe_tensor(a), b.describe());
    let (l, r) = if reversed { (r, l) } else { (l, r) };
    format!("lhs: {l}; rhs: {r}")
}

/// Parses a binary op's other operand; `None` when it is nothing we take (Python then tries the
/// other operand's reflected method).
pub fn operand(other: &Bound<'_, PyAny>) -> PyResult<Option<Operand>> {
    let py = other.py();
    if let Ok(t) = other.cast::<PyTensor>() {
        return Ok(Some(Operand::Tensor(t.get().inner.clone())));
    }
    if other.is_instance_of::<PyBool>() {
        return Ok(Some(Operand::Scalar(Scalar::Bool(other.extract()?))));
    }
    if other.is_instance_of::<PyInt>() {
        let v: i128 = other.extract().map_err(|_| {
            PyValueError::new_err("Python integer out of range for any tensorbridge dtype")
        })?;
        return Ok(Some(Operand::Scalar(Scalar::Int(v))));
    }
    if other.is_instance_of::<PyFloat>() {
        return Ok(Some(Operand::Scalar(Scalar::Float(other.extract()?))));
    }
    let np = py.import("numpy")?;
    let is_numpy = other.is_instance(&np.getattr("ndarray")?)?
        || other.is_instance(&np.getattr("generic")?)?;
    if is_numpy {
        let arr = np.call_method1("asarray", (other,))?;
        let arr = arr.cast_into::<PyUntypedArray>()?;
        return Ok(Some(Operand::Tensor(import_array(py, &arr, false)?)));
    }
    Ok(None)
}

impl PyTensor {
    fn arith(&self, other: &Bound<'_, PyAny>, op: TensorOp, reversed: bool) -> PyResult<Py<PyAny>> {
        let py = other.py();
        let Some(rhs) = operand(other)? else {
            return Ok(py.NotImplemented());
        };
        let a = &self.inner;
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
        axis: Option<isize>,
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
            let r = src.reduce(op, axis, keep)?;
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
    /// Sum over all elements or one axis (`keepdims`, or PyTorch's `keepdim`; `dtype` to
    /// compute in, as NumPy).
    #[pyo3(signature = (axis=None, dtype=None, out=None, keepdims=false, *, keepdim=None))]
    fn sum(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = opt_int_arg)] axis: Option<isize>,
        dtype: Option<&Bound<'_, PyAny>>,
        out: Option<&Bound<'_, PyAny>>,
        keepdims: bool,
        keepdim: Option<bool>,
    ) -> PyResult<PyTensor> {
        let keep = keepdim.unwrap_or(keepdims);
        self.reduce(py, ReduceOp::Sum, axis, dtype, out, keep)
    }

    /// Mean over all elements or one axis.
    #[pyo3(signature = (axis=None, dtype=None, out=None, keepdims=false, *, keepdim=None))]
    fn mean(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = opt_int_arg)] axis: Option<isize>,
        dtype: Option<&Bound<'_, PyAny>>,
        out: Option<&Bound<'_, PyAny>>,
        keepdims: bool,
        keepdim: Option<bool>,
    ) -> PyResult<PyTensor> {
        let keep = keepdim.unwrap_or(keepdims);
        self.reduce(py, ReduceOp::Mean, axis, dtype, out, keep)
    }

    /// Maximum over all elements or one axis (NaN propagates).
    #[pyo3(signature = (axis=None, out=None, keepdims=false, *, keepdim=None))]
    fn max(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = opt_int_arg)] axis: Option<isize>,
        out: Option<&Bound<'_, PyAny>>,
        keepdims: bool,
        keepdim: Option<bool>,
    ) -> PyResult<PyTensor> {
        let keep = keepdim.unwrap_or(keepdims);
        self.reduce(py, ReduceOp::Max, axis, None, out, keep)
    }

    /// Minimum over all elements or one axis (NaN propagates).
    #[pyo3(signature = (axis=None, out=None, keepdims=false, *, keepdim=None))]
    fn min(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = opt_int_arg)] axis: Option<isize>,
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
        let Some(rhs) = operand(other)? else {
            return Ok(py.NotImplemented());
        };
        let a = &self.inner;
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
    /// `dtype`.
    fn astype(&self, py: Python<'_>, dtype: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        let d = parse_dtype(dtype)?;
        let t = &self.inner;
        Ok(PyTensor::wrap(run_guarded(py, bytes_of(t), || t.cast(d))?))
    }
}
