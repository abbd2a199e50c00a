//! # tensorbridge Python bindings (`tensorbridge._native`)
//!
//! One `Tensor` class over [`AnyTensor`] (every compiled backend), and one NumPy conversion
//! contract for all of them: `t.numpy()`, `np.asarray(t)` and `np.array(t)` give a read-only
//! zero-copy view where the data is host memory and a single copy otherwise; `copy=True` gives a
//! writable independent array; `copy=False` fails when a copy is unavoidable (NumPy 2 semantics).
//! The Python-level conveniences (`tb.tensor`, `tb.zeros`, ...) live in `tensorbridge/__init__.py`.

mod buffer;
mod convert;
mod dlpack;
mod errors;
mod guard;
mod index;
mod session;
#[cfg(feature = "torch")]
mod torch_import;

use numpy::{PyArrayDescr, PyArrayDescrMethods, PyUntypedArray};
use pyo3::exceptions::{PyAttributeError, PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyTuple};
use tensorbridge::{AnyTensor, BackendKind, DType, Device, Scalar};

use crate::convert::{descr, export_copy, export_into, export_view, import_array};
use crate::errors::{detached, with_context, IntoPyResult};

/// An immutable n-dimensional tensor on one backend and device.
#[pyclass(name = "Tensor", module = "tensorbridge", frozen, weakref)]
pub struct PyTensor {
    inner: AnyTensor,
}

impl PyTensor {
    fn wrap(inner: AnyTensor) -> Self {
        PyTensor { inner }
    }
}

/// Parses a dtype-like: a name (`"float32"`, `"bf16"`), a NumPy dtype or scalar type,
/// `ml_dtypes.bfloat16`.
pub fn parse_dtype(obj: &Bound<'_, PyAny>) -> PyResult<DType> {
    let py = obj.py();
    // Our own names first; any other string NumPy understands (`"<i4"`, `"int_"`) goes through
    // `numpy.dtype` below, and the error for a string names it as given.
    let named = obj.extract::<String>().ok().map(|s| s.parse::<DType>());
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
    let name: String = match obj.cast::<PyArrayDescr>() {
        Ok(d) => d.getattr("name")?.extract()?,
        Err(_) => {
            let np = py.import("numpy")?;
            match np.call_method1("dtype", (obj,)) {
                Ok(d) => d.getattr("name")?.extract()?,
                Err(_) => {
                    return Err(match named {
                        Some(Err(e)) => errors::to_py(py, e),
                        _ => unknown(),
                    })
                }
            }
        }
    };
    name.parse::<DType>().map_err(|_| unknown())
}

fn parse_backend(
    py: Python<'_>,
    backend: Option<&str>,
    default: BackendKind,
) -> PyResult<BackendKind> {
    match backend {
        None => Ok(default),
        Some(b) => b.parse::<BackendKind>().py(py),
    }
}

fn parse_device(py: Python<'_>, device: Option<&str>) -> PyResult<Device> {
    match device {
        None => Ok(Device::Cpu),
        Some(d) => d.parse::<Device>().py(py),
    }
}

/// A Python operand of a binary op: another tensor or a weakly typed Python scalar.
enum Operand {
    Tensor(AnyTensor),
    Scalar(Scalar),
}

/// A shape as Python prints it: `()`, `(3,)`, `(2, 3)`.
fn shape_str(shape: &[usize]) -> String {
    match shape {
        [d] => format!("({d},)"),
        _ => {
            let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
            format!("({})", dims.join(", "))
        }
    }
}

fn describe_tensor(t: &AnyTensor) -> String {
    format!(
        "shape {}, dtype {}, backend {}, device {}",
        shape_str(t.shape()),
        t.dtype(),
        t.backend(),
        t.device()
    )
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

fn operand(other: &Bound<'_, PyAny>) -> PyResult<Option<Operand>> {
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

#[derive(Clone, Copy)]
enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    MatMul,
}

fn bytes_of(t: &AnyTensor) -> usize {
    t.elem_count() * t.dtype().size_in_bytes()
}

impl PyTensor {
    fn arith(&self, other: &Bound<'_, PyAny>, op: Arith, reversed: bool) -> PyResult<Py<PyAny>> {
        let py = other.py();
        let Some(rhs) = operand(other)? else {
            return Ok(py.NotImplemented());
        };
        let a = &self.inner;
        let bytes = bytes_of(a);
        let out = match &rhs {
            Operand::Tensor(b) => {
                let (l, r) = if reversed { (b, a) } else { (a, b) };
                detached(py, bytes.max(bytes_of(b)), || match op {
                    Arith::Add => l.add(r),
                    Arith::Sub => l.sub(r),
                    Arith::Mul => l.mul(r),
                    Arith::Div => l.div(r),
                    Arith::MatMul => l.matmul(r),
                })
            }
            &Operand::Scalar(s) => detached(py, bytes, || match (op, reversed) {
                (Arith::Add, _) => a.add_scalar(s),
                (Arith::Mul, _) => a.mul_scalar(s),
                (Arith::Sub, false) => a.sub_scalar(s),
                (Arith::Sub, true) => a.rsub_scalar(s),
                (Arith::Div, false) => a.div_scalar(s),
                (Arith::Div, true) => a.rdiv_scalar(s),
                (Arith::MatMul, _) => Err(tensorbridge::Error::InvalidArgument(
                    "matmul: operands must have at least one dimension (use * for scalars)".into(),
                )),
            }),
        }
        .map_err(|e| with_context(py, e, &operands_context(a, &rhs, reversed)))?;
        Ok(Py::new(py, PyTensor::wrap(out))?.into_any())
    }

    fn reduce(
        &self,
        py: Python<'_>,
        op: tensorbridge::ReduceOp,
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
        let dtype = dtype
            .filter(|d| !d.is_none())
            .map(parse_dtype)
            .transpose()?;
        let t = &self.inner;
        let result = detached(py, bytes_of(t), || {
            let src = match dtype {
                Some(d) => t.cast(d)?,
                None => t.clone(),
            };
            let r = match op {
                tensorbridge::ReduceOp::Sum => src.sum(axis, keep),
                tensorbridge::ReduceOp::Mean => src.mean(axis, keep),
                tensorbridge::ReduceOp::Max => src.max(axis, keep),
                tensorbridge::ReduceOp::Min => src.min(axis, keep),
            }?;
            match dtype {
                Some(d) => r.cast(d),
                None => Ok(r),
            }
        })?;
        Ok(PyTensor::wrap(result))
    }

    fn unary(
        &self,
        py: Python<'_>,
        f: fn(&AnyTensor) -> tensorbridge::Result<AnyTensor>,
    ) -> PyResult<PyTensor> {
        let t = &self.inner;
        Ok(PyTensor::wrap(detached(py, bytes_of(t), || f(t))?))
    }

    /// NumPy array of the values; `copy`: None = view if possible, True = always new, False = never.
    fn to_numpy<'py>(
        slf: &Bound<'py, Self>,
        dtype: Option<DType>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let t = &slf.get().inner;
        if !t.is_evaluated() {
            // Conversion is the moment of evaluation (no session needed); the view below then
            // points into the evaluated value.
            detached(py, bytes_of(t), || t.evaluate())?;
        }
        let target = dtype.unwrap_or(t.dtype());
        if target == t.dtype() && copy != Some(true) {
            if let Some(view) = export_view(py, slf.as_any(), t)? {
                return Ok(view);
            }
        }
        if copy == Some(false) {
            let why = if target != t.dtype() {
                format!("a dtype conversion {} -> {}", t.dtype(), target)
            } else {
                format!("a device-to-host copy from {}", t.placement())
            };
            return Err(PyValueError::new_err(format!(
                "Unable to avoid copy while creating an array as requested: the conversion needs {why}. \
                 Use copy=None (np.asarray) to allow a copy when needed."
            )));
        }
        export_copy(py, t, target)
    }

    /// A host ndarray for printing and Python scalars: bf16 widens to float32 so `item`/`tolist`
    /// give Python floats whether or not ml_dtypes is installed.
    fn host_for_python<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let t = &slf.get().inner;
        if t.dtype() == DType::BF16 {
            return export_copy(slf.py(), t, DType::F32);
        }
        Self::to_numpy(slf, None, None)
    }

    fn one_element<'py>(slf: &Bound<'py, Self>, what: &str) -> PyResult<Bound<'py, PyAny>> {
        let t = &slf.get().inner;
        if t.elem_count() != 1 {
            return Err(PyValueError::new_err(format!(
                "{what} needs a tensor with exactly one element, got shape {:?}",
                t.shape()
            )));
        }
        Self::host_for_python(slf)?.call_method0("item")
    }
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
fn int_arg(obj: &Bound<'_, PyAny>) -> PyResult<isize> {
    no_overflow(obj.py(), obj.extract())
}

/// An optional axis argument (`None`: all axes).
fn opt_int_arg(obj: &Bound<'_, PyAny>) -> PyResult<Option<isize>> {
    no_overflow(obj.py(), obj.extract())
}

/// A shape: a sequence of non-negative ints.
fn dims_arg(obj: &Bound<'_, PyAny>) -> PyResult<Vec<usize>> {
    let dims: Vec<isize> = no_overflow(obj.py(), obj.extract())?;
    dims.iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| {
            PyValueError::new_err(format!("negative dimensions are not allowed: {dims:?}"))
        })
}

fn shape_arg(args: &Bound<'_, PyTuple>) -> PyResult<Vec<isize>> {
    let py = args.py();
    // Accept both t.reshape(2, 3) and t.reshape((2, 3)).
    if args.len() == 1 {
        let first = args.get_item(0)?;
        if let Ok(v) = no_overflow(py, first.extract::<Vec<isize>>()) {
            return Ok(v);
        }
    }
    no_overflow(py, args.extract::<Vec<isize>>())
}

#[pymethods]
impl PyTensor {
    /// The dimensions, as a tuple.
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.inner.shape())
    }

    /// The element type, as a `numpy.dtype` (bfloat16 is `ml_dtypes.bfloat16`).
    #[getter]
    fn dtype<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArrayDescr>> {
        descr(py, self.inner.dtype())
    }

    /// Number of dimensions.
    #[getter]
    fn ndim(&self) -> usize {
        self.inner.shape().len()
    }

    /// Number of elements.
    #[getter]
    fn size(&self) -> usize {
        self.inner.elem_count()
    }

    /// Bytes per element.
    #[getter]
    fn itemsize(&self) -> usize {
        self.inner.dtype().size_in_bytes()
    }

    /// Bytes of the view's elements.
    #[getter]
    fn nbytes(&self) -> usize {
        bytes_of(&self.inner)
    }

    /// The backend's name (`"cpu"`).
    #[getter]
    fn backend(&self) -> &'static str {
        self.inner.backend().name()
    }

    /// The device (`"cpu"`, `"cuda:0"`).
    #[getter]
    fn device(&self) -> String {
        self.inner.device().to_string()
    }

    /// True when the view is dense and row-major.
    #[getter]
    fn is_contiguous(&self) -> bool {
        self.inner.layout().is_contiguous()
    }

    /// The axes reversed (a view).
    #[getter(T)]
    fn transposed(&self) -> PyTensor {
        PyTensor::wrap(self.inner.t())
    }

    fn __len__(&self) -> PyResult<usize> {
        self.inner
            .shape()
            .first()
            .copied()
            .ok_or_else(|| PyTypeError::new_err("len() of a 0-d tensor"))
    }

    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        Ok(PyTensor::wrap(index::get_item(py, &self.inner, key)?))
    }

    /// The values as a `numpy.ndarray`: a read-only zero-copy view of host memory when possible,
    /// else one copy. `copy=True` always returns a new writable array; `copy=False` raises
    /// ValueError when a copy would be needed.
    ///
    /// `out=`: an existing writable ndarray of the same shape (any tensorbridge dtype, any
    /// non-negative strides, e.g. an `np.memmap`) receives the values chunk by chunk, converted to
    /// its dtype, and is returned; nothing else of the tensor's size is allocated on the host.
    #[pyo3(signature = (*, copy=None, out=None))]
    fn numpy<'py>(
        slf: &Bound<'py, Self>,
        copy: Option<bool>,
        out: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match out.filter(|o| !o.is_none()) {
            Some(_) if copy.is_some() => Err(PyValueError::new_err(
                "numpy(out=...) always writes into `out`; do not pass copy= with it",
            )),
            Some(o) => export_into(slf.py(), &slf.get().inner, o),
            None => Self::to_numpy(slf, None, copy),
        }
    }

    /// NumPy's conversion protocol, with NumPy 2's `copy` semantics.
    #[pyo3(signature = (dtype=None, copy=None))]
    fn __array__<'py>(
        slf: &Bound<'py, Self>,
        dtype: Option<&Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        guard::check_implicit(slf.py(), &slf.get().inner)?;
        let Some(dtype) = dtype.filter(|d| !d.is_none()) else {
            return Self::to_numpy(slf, None, copy);
        };
        let ours = parse_dtype(dtype).ok().filter(|&d| {
            // A descriptor with our dtype's name but another byte order is not ours.
            match (dtype.cast::<PyArrayDescr>(), descr(slf.py(), d)) {
                (Ok(requested), Ok(native)) => requested.is_equiv_to(&native),
                _ => true,
            }
        });
        if let Some(d) = ours {
            return Self::to_numpy(slf, Some(d), copy);
        }
        // A dtype tensorbridge does not have (complex, big-endian): NumPy converts our array.
        // That is always a conversion, so `copy=False` cannot be honoured.
        if copy == Some(false) {
            let shown = dtype.repr().map(|r| r.to_string()).unwrap_or_default();
            return Err(PyValueError::new_err(format!(
                "Unable to avoid copy while creating an array as requested: the conversion \
                 needs a dtype conversion {} -> {shown}. Use copy=None (np.asarray) to allow a \
                 copy when needed.",
                slf.get().inner.dtype()
            )));
        }
        Self::to_numpy(slf, None, None)?.call_method1("astype", (dtype,))
    }

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
        let req = dlpack::ExportRequest::parse(t, stream, max_version, dl_device, copy)?;
        dlpack::export(slf.py(), t, &req)
    }

    /// `(device_type, device_id)` as DLPack numbers them: `(1, 0)` for the CPU.
    fn __dlpack_device__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        dlpack::device_tuple(py, &self.inner)
    }

    /// The CUDA array interface (v3) of CUDA tensors; CPU tensors have none (AttributeError, so
    /// `hasattr(t, "__cuda_array_interface__")` is False).
    #[getter]
    fn __cuda_array_interface__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        #[cfg(feature = "torch")]
        if let AnyTensor::Torch(t) = &self.inner {
            if matches!(t.device(), Device::Cuda(_)) {
                return dlpack::cuda_array_interface(py, t);
            }
        }
        let _ = py;
        Err(PyAttributeError::new_err(format!(
            "__cuda_array_interface__: the tensor is on {}, not a CUDA device",
            self.inner.placement()
        )))
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

    /// The single value of a one-element tensor as a Python scalar.
    fn item<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        Self::one_element(slf, "item()")
    }

    /// The values as nested Python lists.
    fn tolist<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        Self::host_for_python(slf)?.call_method0("tolist")
    }

    fn __bool__(slf: &Bound<'_, Self>) -> PyResult<bool> {
        if slf.get().inner.elem_count() != 1 {
            return Err(PyValueError::new_err(format!(
                "the truth value of a tensor with {} elements is ambiguous; use .any() or .all() \
                 on the NumPy array",
                slf.get().inner.elem_count()
            )));
        }
        Self::one_element(slf, "bool()")?.is_truthy()
    }

    fn __int__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let v = Self::one_element(slf, "int()")?;
        let builtins = slf.py().import("builtins")?;
        builtins.getattr("int")?.call1((v,))
    }

    fn __float__(slf: &Bound<'_, Self>) -> PyResult<f64> {
        Self::one_element(slf, "float()")?.extract()
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let py = slf.py();
        let t = &slf.get().inner;
        if let Some(expr) = t.pending_expression() {
            // An unevaluated lazy tensor: show what it will compute, compute nothing.
            return Ok(format!(
                "tb.Tensor(<unevaluated {expr}>, shape={}, dtype={}, backend={}, device={})",
                PyTuple::new(py, t.shape())?.repr()?,
                t.dtype(),
                t.backend(),
                t.device()
            ));
        }
        let arr = Self::host_for_python(slf)?;
        let np = py.import("numpy")?;
        let body: String = np.call_method1("array2string", (arr,))?.extract()?;
        let shape = PyTuple::new(py, t.shape())?.repr()?.to_string();
        Ok(format!(
            "tb.Tensor({body}, shape={shape}, dtype={}, backend={}, device={})",
            t.dtype(),
            t.backend(),
            t.device()
        ))
    }

    /// The value of a lazy tensor as a NumPy array, evaluated in `session` or else in the
    /// thread's default session (`with tb.Session() as s:`); without either, a ValueError (as
    /// TF1). A read-only zero-copy view of the evaluated value.
    #[pyo3(signature = (session=None))]
    fn eval<'py>(
        slf: &Bound<'py, Self>,
        session: Option<&Bound<'py, session::PySession>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        session::eval_tensor(slf, session)
    }

    /// True when the values exist: always for eager tensors, after evaluation for lazy ones.
    /// Asking computes nothing.
    #[getter]
    fn is_evaluated(&self) -> bool {
        self.inner.is_evaluated()
    }

    /// The graph behind a lazy tensor, one line per node (`format="dot"`: Graphviz DOT).
    /// Computes nothing; a ValueError for eager tensors.
    #[pyo3(signature = (format="text"))]
    fn graph(&self, py: Python<'_>, format: &str) -> PyResult<String> {
        let dot = match format {
            "text" => false,
            "dot" => true,
            other => {
                return Err(PyValueError::new_err(format!(
                    "graph(format={other:?}): expected 'text' or 'dot'"
                )))
            }
        };
        self.inner.graph(dot).py(py)
    }

    fn __str__(slf: &Bound<'_, Self>) -> PyResult<String> {
        Self::__repr__(slf)
    }

    /// A copy converted to `dtype` (NumPy `astype` semantics); the same tensor if already `dtype`.
    fn astype(&self, py: Python<'_>, dtype: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        let d = parse_dtype(dtype)?;
        let t = &self.inner;
        Ok(PyTensor::wrap(detached(py, bytes_of(t), || t.cast(d))?))
    }

    /// The same values on another backend and/or device (a copy when either differs).
    #[pyo3(signature = (backend=None, device=None))]
    fn to(
        &self,
        py: Python<'_>,
        backend: Option<&str>,
        device: Option<&str>,
    ) -> PyResult<PyTensor> {
        let kind = parse_backend(py, backend, self.inner.backend())?;
        let dev = match device {
            None => self.inner.device(),
            Some(_) => parse_device(py, device)?,
        };
        let t = &self.inner;
        Ok(PyTensor::wrap(detached(py, bytes_of(t), || {
            t.to(kind, &dev)
        })?))
    }

    /// A contiguous tensor with the same values (self when already contiguous).
    fn contiguous(&self, py: Python<'_>) -> PyResult<PyTensor> {
        let t = &self.inner;
        Ok(PyTensor::wrap(detached(py, bytes_of(t), || {
            t.contiguous()
        })?))
    }

    /// Blocks until every operation queued on this tensor's device has finished (a no-op on
    /// synchronous backends such as `cpu`); benchmarks call it to time asynchronous devices.
    fn synchronize(&self, py: Python<'_>) -> PyResult<()> {
        let t = &self.inner;
        // Waiting on a device can take long: let other Python threads run meanwhile.
        let wait = if t.device() == Device::Cpu {
            0
        } else {
            usize::MAX
        };
        detached(py, wait, || t.synchronize())
    }

    /// Reshape: `t.reshape(2, 3)` or `t.reshape((2, -1))`; a view when the strides allow.
    #[pyo3(signature = (*shape))]
    fn reshape(&self, py: Python<'_>, shape: &Bound<'_, PyTuple>) -> PyResult<PyTensor> {
        let s = shape_arg(shape)?;
        let t = &self.inner;
        Ok(PyTensor::wrap(detached(py, bytes_of(t), || t.reshape(&s))?))
    }

    /// NumPy `transpose`: no axes reverses them, else a permutation (a view).
    #[pyo3(signature = (*axes))]
    fn transpose(&self, py: Python<'_>, axes: &Bound<'_, PyTuple>) -> PyResult<PyTensor> {
        if axes.is_empty() {
            return Ok(PyTensor::wrap(self.inner.t()));
        }
        let perm = shape_arg(axes)?;
        Ok(PyTensor::wrap(self.inner.permute(&perm).py(py)?))
    }

    /// Reorders the axes (a view): `t.permute(2, 0, 1)`.
    #[pyo3(signature = (*dims))]
    fn permute(&self, py: Python<'_>, dims: &Bound<'_, PyTuple>) -> PyResult<PyTensor> {
        let perm = shape_arg(dims)?;
        Ok(PyTensor::wrap(self.inner.permute(&perm).py(py)?))
    }

    /// Swaps two axes (a view).
    fn swapaxes(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = int_arg)] axis1: isize,
        #[pyo3(from_py_with = int_arg)] axis2: isize,
    ) -> PyResult<PyTensor> {
        Ok(PyTensor::wrap(self.inner.transpose(axis1, axis2).py(py)?))
    }

    /// Removes size-1 axes: all, or the one given (a view).
    #[pyo3(signature = (axis=None))]
    fn squeeze(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = opt_int_arg)] axis: Option<isize>,
    ) -> PyResult<PyTensor> {
        Ok(PyTensor::wrap(self.inner.squeeze(axis).py(py)?))
    }

    /// Inserts a size-1 axis (a view).
    fn unsqueeze(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = int_arg)] axis: isize,
    ) -> PyResult<PyTensor> {
        Ok(PyTensor::wrap(self.inner.unsqueeze(axis).py(py)?))
    }

    /// NumPy `broadcast_to` (a view with zero strides).
    fn broadcast_to(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = dims_arg)] shape: Vec<usize>,
    ) -> PyResult<PyTensor> {
        Ok(PyTensor::wrap(self.inner.broadcast_to(&shape).py(py)?))
    }

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
        self.reduce(
            py,
            tensorbridge::ReduceOp::Sum,
            axis,
            dtype,
            out,
            keepdim.unwrap_or(keepdims),
        )
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
        self.reduce(
            py,
            tensorbridge::ReduceOp::Mean,
            axis,
            dtype,
            out,
            keepdim.unwrap_or(keepdims),
        )
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
        self.reduce(
            py,
            tensorbridge::ReduceOp::Max,
            axis,
            None,
            out,
            keepdim.unwrap_or(keepdims),
        )
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
        self.reduce(
            py,
            tensorbridge::ReduceOp::Min,
            axis,
            None,
            out,
            keepdim.unwrap_or(keepdims),
        )
    }

    /// `e^x` (integers compute in NumPy's float result type).
    fn exp(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.unary(py, AnyTensor::exp)
    }

    /// Natural logarithm.
    fn log(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.unary(py, AnyTensor::log)
    }

    /// Square root.
    fn sqrt(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.unary(py, AnyTensor::sqrt)
    }

    /// Absolute value.
    fn abs(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.unary(py, AnyTensor::abs)
    }

    fn __abs__(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.unary(py, AnyTensor::abs)
    }

    fn __neg__(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.unary(py, AnyTensor::neg)
    }

    fn __add__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.arith(other, Arith::Add, false)
    }
    fn __radd__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.arith(other, Arith::Add, true)
    }
    fn __sub__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.arith(other, Arith::Sub, false)
    }
    fn __rsub__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.arith(other, Arith::Sub, true)
    }
    fn __mul__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.arith(other, Arith::Mul, false)
    }
    fn __rmul__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.arith(other, Arith::Mul, true)
    }
    fn __truediv__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.arith(other, Arith::Div, false)
    }
    fn __rtruediv__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.arith(other, Arith::Div, true)
    }
    fn __matmul__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.arith(other, Arith::MatMul, false)
    }
    fn __rmatmul__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.arith(other, Arith::MatMul, true)
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
            C::Eq => (tensorbridge::CmpOp::Eq, false),
            C::Ne => (tensorbridge::CmpOp::Eq, true),
            C::Lt => (tensorbridge::CmpOp::Lt, false),
            C::Gt => (tensorbridge::CmpOp::Gt, false),
            // a <= b is not (a > b) only without NaN; compute it as (a < b) | (a == b).
            C::Le => (tensorbridge::CmpOp::Lt, false),
            C::Ge => (tensorbridge::CmpOp::Gt, false),
        };
        let out = detached(py, bytes_of(a), || {
            let run = |c: tensorbridge::CmpOp| match &rhs {
                Operand::Tensor(b) => match c {
                    tensorbridge::CmpOp::Eq => a.eq(b),
                    tensorbridge::CmpOp::Lt => a.lt(b),
                    tensorbridge::CmpOp::Gt => a.gt(b),
                },
                Operand::Scalar(s) => match c {
                    tensorbridge::CmpOp::Eq => a.eq_scalar(*s),
                    tensorbridge::CmpOp::Lt => a.lt_scalar(*s),
                    tensorbridge::CmpOp::Gt => a.gt_scalar(*s),
                },
            };
            let r = run(cmp)?;
            match op {
                // bool add is logical or: (a < b) | (a == b).
                C::Le | C::Ge => r.add(&run(tensorbridge::CmpOp::Eq)?),
                // bool == False is logical not.
                _ if flip => r.eq_scalar(Scalar::Bool(false)),
                _ => Ok(r),
            }
        })
        .map_err(|e| with_context(py, e, &operands_context(a, &rhs, false)))?;
        Ok(Py::new(py, PyTensor::wrap(out))?.into_any())
    }
}

/// Makes a tensor from an ndarray: zero-copy unless `copy` (then one copy, GIL released), cast to
/// `dtype` when given, moved to `backend`/`device`.
#[pyfunction]
#[pyo3(signature = (array, *, copy, dtype=None, backend=None, device=None))]
fn _from_numpy(
    py: Python<'_>,
    array: &Bound<'_, PyUntypedArray>,
    copy: bool,
    dtype: Option<&Bound<'_, PyAny>>,
    backend: Option<&str>,
    device: Option<&str>,
) -> PyResult<PyTensor> {
    let kind = parse_backend(py, backend, BackendKind::Cpu)?;
    let dev = parse_device(py, device)?;
    let target = dtype
        .filter(|d| !d.is_none())
        .map(parse_dtype)
        .transpose()?;
    let needs_cast = target.is_some_and(|d| dtype_of(array).ok() != Some(d));
    let t = import_array(
        py,
        array,
        // The lazy CPU backend shares the imported storage (`to` lifts it), so it needs the copy too.
        copy && !needs_cast
            && matches!(kind, BackendKind::Cpu | BackendKind::LazyCpu)
            && dev == Device::Cpu,
    )?;
    let bytes = bytes_of(&t);
    let out = detached(py, bytes, || {
        let t = match target {
            Some(d) => t.cast(d)?,
            None => t,
        };
        t.to(kind, &dev)
    })?;
    Ok(PyTensor::wrap(out))
}

/// `tb.from_dlpack`: a CPU tensor over a DLPack producer's memory (zero-copy unless `copy`).
#[pyfunction]
#[pyo3(signature = (x, *, device=None, copy=None))]
fn _from_dlpack(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    device: Option<&str>,
    copy: Option<bool>,
) -> PyResult<PyTensor> {
    let dev = device.map(|d| d.parse::<Device>()).transpose().py(py)?;
    Ok(PyTensor::wrap(dlpack::from_dlpack(py, x, dev, copy)?))
}

fn dtype_of(a: &Bound<'_, PyUntypedArray>) -> PyResult<DType> {
    use numpy::PyUntypedArrayMethods;
    convert::dtype_of_descr(&a.dtype())
}

fn scalar_arg(v: &Bound<'_, PyAny>) -> PyResult<Scalar> {
    match operand(v)? {
        Some(Operand::Scalar(s)) => Ok(s),
        _ => {
            // NumPy scalars and 0-d arrays: take their Python value.
            let item = v.call_method0("item").map_err(|_| {
                PyTypeError::new_err(format!(
                    "expected a Python number, got {}",
                    v.get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ))
            })?;
            match operand(&item)? {
                Some(Operand::Scalar(s)) => Ok(s),
                _ => Err(PyTypeError::new_err("expected a real number")),
            }
        }
    }
}

/// `shape` filled with `value`.
#[pyfunction]
#[pyo3(signature = (shape, value, *, dtype=None, backend=None, device=None))]
fn _full(
    py: Python<'_>,
    #[pyo3(from_py_with = dims_arg)] shape: Vec<usize>,
    value: &Bound<'_, PyAny>,
    dtype: Option<&Bound<'_, PyAny>>,
    backend: Option<&str>,
    device: Option<&str>,
) -> PyResult<PyTensor> {
    let kind = parse_backend(py, backend, BackendKind::Cpu)?;
    let dev = parse_device(py, device)?;
    let d = dtype
        .filter(|d| !d.is_none())
        .map(parse_dtype)
        .transpose()?;
    let v = scalar_arg(value)?;
    let bytes = shape.iter().fold(8usize, |acc, &x| acc.saturating_mul(x));
    let out = detached(py, bytes, || AnyTensor::full(kind, &shape, v, d, &dev))?;
    Ok(PyTensor::wrap(out))
}

/// NumPy `arange(start, stop, step)`.
#[pyfunction]
#[pyo3(signature = (start, stop, step, *, dtype=None, backend=None, device=None))]
fn _arange(
    py: Python<'_>,
    start: &Bound<'_, PyAny>,
    stop: &Bound<'_, PyAny>,
    step: &Bound<'_, PyAny>,
    dtype: Option<&Bound<'_, PyAny>>,
    backend: Option<&str>,
    device: Option<&str>,
) -> PyResult<PyTensor> {
    let kind = parse_backend(py, backend, BackendKind::Cpu)?;
    let dev = parse_device(py, device)?;
    let d = dtype
        .filter(|d| !d.is_none())
        .map(parse_dtype)
        .transpose()?;
    let (a, b, c) = (scalar_arg(start)?, scalar_arg(stop)?, scalar_arg(step)?);
    let out = AnyTensor::arange(kind, a, b, c, d, &dev).py(py)?;
    Ok(PyTensor::wrap(out))
}

/// Names of the backends compiled into this build.
#[pyfunction]
fn _compiled_backends() -> Vec<&'static str> {
    BackendKind::compiled().iter().map(|b| b.name()).collect()
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyTensor>()?;
    m.add_class::<session::PySession>()?;
    m.add_function(wrap_pyfunction!(_from_numpy, m)?)?;
    m.add_function(wrap_pyfunction!(_from_dlpack, m)?)?;
    m.add_function(wrap_pyfunction!(_full, m)?)?;
    m.add_function(wrap_pyfunction!(_arange, m)?)?;
    m.add_function(wrap_pyfunction!(_compiled_backends, m)?)?;
    #[cfg(feature = "torch")]
    m.add_function(wrap_pyfunction!(torch_import::_from_torch, m)?)?;
    m.add_function(wrap_pyfunction!(guard::_set_transfer_guard, m)?)?;
    m.add_function(wrap_pyfunction!(guard::_get_transfer_guard, m)?)?;
    m.add("BF16_NEEDS_ML_DTYPES", convert::BF16_NEEDS_ML_DTYPES)?;
    Ok(())
}
