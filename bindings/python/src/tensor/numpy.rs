//! NumPy conversion on a tensor: `numpy()`, `__array__` (NumPy 2 `copy` semantics), Python
//! scalars and lists, and `repr`. The copies themselves are in `crate::interop::numpy`.

use numpy::{PyArrayDescr, PyArrayDescrMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use tensorbridge::DType;

use super::PyTensor;
use crate::args::parse_dtype;
use crate::errors::run_guarded;
use crate::interop::numpy::{descr, export_copy, export_copy_keep_order, export_into, export_view};
use crate::transfer_guard;

impl PyTensor {
    /// NumPy array of the values; `copy`: None = view if possible, True = always new, False = never.
    pub(crate) fn to_numpy<'py>(
        slf: &Bound<'py, Self>,
        dtype: Option<DType>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let t = &slf.get().inner;
        if !t.is_evaluated() {
            // Conversion is the moment of evaluation (no session needed); the view below then
            // points into the evaluated value. The work is the graph's, not the result's size
            // (a reduction over 64 MiB has a tiny result): always let other threads run.
            run_guarded(py, usize::MAX, || t.evaluate())?;
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

    /// What NumPy's own entry points (`np.asarray`, `np.array`, `np.ascontiguousarray`, `np.copy`,
    /// ufunc inputs) get through `__array__`, always from tensorbridge's kernels:
    /// - `copy=False`: the zero-copy view (any strides) or ValueError, as `t.numpy(copy=False)`;
    /// - `copy=None`, same dtype: the zero-copy read-only view when the view's memory is
    ///   C-contiguous or broadcast (zero strides: a copy could be far larger than the memory);
    ///   otherwise (transposed, sliced with steps, device memory) one C-contiguous copy by the
    ///   core's blocked kernels, which NumPy then uses as it is (`np.ascontiguousarray(t.T)` is
    ///   that one copy, not NumPy's element loop over a strided view);
    /// - `copy=True`: a new writable array in NumPy's `order="K"` (`np.array(t.T)` is
    ///   F-contiguous, as `np.array(a.T)`);
    /// - a dtype: one fused cast-and-copy (C order, or "K" for `copy=True`).
    ///
    /// The caller ([`Self::array`]) has evaluated a lazy tensor already (asking again costs a
    /// lazy tensor's `np.array(t)` a call through its backend's hooks).
    fn array_protocol<'py>(
        slf: &Bound<'py, Self>,
        dtype: Option<DType>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let t = &slf.get().inner;
        if copy == Some(false) {
            return Self::to_numpy(slf, dtype, copy);
        }
        let target = dtype.unwrap_or(t.dtype());
        if copy == Some(true) {
            return export_copy_keep_order(py, t, target);
        }
        if target == t.dtype() && Self::view_is_what_numpy_wants(t) {
            if let Some(view) = export_view(py, slf.as_any(), t)? {
                return Ok(view);
            }
        }
        export_copy(py, t, target)
    }

    /// True when the zero-copy view is C-contiguous, or broadcast along some axis.
    fn view_is_what_numpy_wants(t: &tensorbridge::AnyTensor) -> bool {
        let layout = t.layout();
        layout.is_contiguous()
            || layout
                .shape()
                .iter()
                .zip(layout.strides())
                .any(|(&d, &s)| d > 1 && s == 0)
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

    /// Where the view's elements are, when they are in host memory (evaluating a lazy tensor
    /// first, with the GIL released): what `tolist` and the one-element conversions read in
    /// place. `None` for device memory, which they take through NumPy.
    fn host_view_memory(slf: &Bound<'_, Self>) -> PyResult<Option<tensorbridge::ViewMemory>> {
        let t = &slf.get().inner;
        if !t.is_evaluated() {
            run_guarded(slf.py(), usize::MAX, || t.evaluate())?;
        }
        Ok(t.view_memory()
            .filter(|m| m.device == tensorbridge::Device::Cpu))
    }

    /// The single value of a one-element tensor as the Python scalar `ndarray.item()` gives
    /// (bfloat16 widened to float); ValueError naming `what` for any other element count.
    pub(super) fn one_element<'py>(
        slf: &Bound<'py, Self>,
        what: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let t = &slf.get().inner;
        if t.elem_count() != 1 {
            return Err(PyValueError::new_err(format!(
                "{what} needs a tensor with exactly one element, got shape {:?}",
                t.shape()
            )));
        }
        // Host memory is read in place, as `tolist` reads it: making a NumPy array to call its
        // `item()` cost `t.item()` 406 ns (torch 221 ns). Other memory goes through NumPy.
        match Self::host_view_memory(slf)? {
            // SAFETY: `m` describes the view's one element in host memory (every index of a
            // shape with one element is all zeros, so it is at `m.data`): an initialised value
            // of `m.dtype` (bools 0 or 1), kept alive by `m.owner` while we read.
            Some(m) => unsafe { python_scalar(py, m.dtype, m.data) },
            None => Self::host_for_python(slf)?.call_method0("item"),
        }
    }
}

impl PyTensor {
    /// `Tensor.numpy(*, copy=None, out=None, casting=None)`, its arguments parsed by
    /// [`super::fastcall`] (`None` there is "not given"); its Python docstring is
    /// `fastcall::NUMPY_DOC`.
    pub(super) fn numpy<'py>(
        slf: &Bound<'py, Self>,
        copy: Option<bool>,
        out: Option<&Bound<'py, PyAny>>,
        casting: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match out {
            Some(_) if copy.is_some() => Err(PyValueError::new_err(
                "numpy(out=...) always writes into `out`; do not pass copy= with it",
            )),
            Some(o) => export_into(
                slf.py(),
                &slf.get().inner,
                o,
                casting.unwrap_or("same_kind"),
            ),
            None if casting.is_some() => Err(PyValueError::new_err(
                "casting= applies to numpy(out=...) only (a new array has the tensor's dtype)",
            )),
            None => Self::to_numpy(slf, None, copy),
        }
    }

    /// `Tensor.__array__(dtype=None, copy=None)`, NumPy's conversion protocol with NumPy 2's
    /// `copy` semantics, its arguments parsed by [`super::fastcall`]; its Python docstring is
    /// `fastcall::ARRAY_DOC`.
    pub(super) fn array<'py>(
        slf: &Bound<'py, Self>,
        dtype: Option<&Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let t = &slf.get().inner;
        if !t.is_evaluated() {
            // Evaluate with the GIL released before anything asks where the memory is (the
            // transfer guard's question would evaluate it with the GIL held).
            run_guarded(slf.py(), usize::MAX, || t.evaluate())?;
        }
        transfer_guard::check_implicit(slf.py(), t)?;
        let Some(dtype) = dtype else {
            return Self::array_protocol(slf, None, copy);
        };
        let ours = parse_dtype(dtype).ok().filter(|&d| {
            // A descriptor with our dtype's name but another byte order is not ours.
            match (dtype.cast::<PyArrayDescr>(), descr(slf.py(), d)) {
                (Ok(requested), Ok(native)) => requested.is_equiv_to(&native),
                _ => true,
            }
        });
        if let Some(d) = ours {
            return Self::array_protocol(slf, Some(d), copy);
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
}

#[pymethods]
impl PyTensor {
    /// The single value of a one-element tensor as a Python scalar.
    fn item<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        Self::one_element(slf, "item()")
    }

    /// The raw bytes of the values in C order, as `bytes(ndarray)` gives them (`t.numpy().tobytes()`).
    fn __bytes__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        Self::to_numpy(slf, None, None)?.call_method0("tobytes")
    }

    /// The values as nested Python lists of Python scalars, as NumPy's `ndarray.tolist()` gives
    /// them (bool, int, float; float16/bfloat16/float32 widened exactly to float; a 0-d tensor
    /// gives the scalar itself).
    fn tolist<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        // Host memory is read in place, element by element, without making an ndarray first
        // (that cost more than the list for small tensors); other memory goes through NumPy.
        match Self::host_view_memory(slf)? {
            // SAFETY: `m` describes the view's elements in host memory: every position
            // `data + sum(i_k * strides_k) * itemsize` for an index of `shape` holds an
            // initialised value of `m.dtype` (bools 0 or 1), and `m.owner` keeps the storage
            // alive while we read.
            Some(m) => unsafe { nested_list(py, &m, m.data, 0) },
            None => Self::host_for_python(slf)?.call_method0("tolist"),
        }
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
        // Python's `int(v)`: a ValueError for NaN, an OverflowError for an infinity.
        slf.py().get_type::<pyo3::types::PyInt>().call1((v,))
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

    fn __str__(slf: &Bound<'_, Self>) -> PyResult<String> {
        Self::__repr__(slf)
    }
}

/// The elements of `m` from axis `axis` on, starting at `at`, as nested lists (a scalar for no
/// axes left).
///
/// # Safety
/// `at` is the address of an index prefix of `m`'s view (axes before `axis` fixed); every
/// position of the remaining axes, `at + sum(i_k * strides_k) * itemsize`, holds an initialised
/// value of `m.dtype` in host memory that stays alive and unchanged during the call.
unsafe fn nested_list<'py>(
    py: Python<'py>,
    m: &tensorbridge::ViewMemory,
    at: *const u8,
    axis: usize,
) -> PyResult<Bound<'py, PyAny>> {
    if axis == m.shape.len() {
        return python_scalar(py, m.dtype, at);
    }
    let step = m.strides[axis] * m.dtype.size_in_bytes() as isize;
    let items = (0..m.shape[axis])
        .map(|i| nested_list(py, m, at.offset(i as isize * step), axis + 1))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(pyo3::types::PyList::new(py, items)?.into_any())
}

/// The value of `dtype` at `p` as the Python scalar `ndarray.tolist()` gives for it.
///
/// # Safety
/// `p` points at an initialised value of `dtype` (any alignment; a bool is 0 or 1).
unsafe fn python_scalar<'py>(
    py: Python<'py>,
    dtype: DType,
    p: *const u8,
) -> PyResult<Bound<'py, PyAny>> {
    fn read<T: Copy>(p: *const u8) -> T {
        // SAFETY: the caller of `python_scalar` guarantees a `T` is at `p`; unaligned read.
        unsafe { (p as *const T).read_unaligned() }
    }
    Ok(match dtype {
        DType::Bool => pyo3::types::PyBool::new(py, *p != 0).to_owned().into_any(),
        DType::U8 => read::<u8>(p).into_pyobject(py)?.into_any(),
        DType::U16 => read::<u16>(p).into_pyobject(py)?.into_any(),
        DType::U32 => read::<u32>(p).into_pyobject(py)?.into_any(),
        DType::U64 => read::<u64>(p).into_pyobject(py)?.into_any(),
        DType::I8 => read::<i8>(p).into_pyobject(py)?.into_any(),
        DType::I16 => read::<i16>(p).into_pyobject(py)?.into_any(),
        DType::I32 => read::<i32>(p).into_pyobject(py)?.into_any(),
        DType::I64 => read::<i64>(p).into_pyobject(py)?.into_any(),
        // NumPy's float16 → float64: a NaN's payload shifts in unchanged (`half` would quiet it).
        DType::F16 => {
            <half::f16 as tensorbridge::Element>::to_f64(half::f16::from_bits(read::<u16>(p)))
                .into_pyobject(py)?
                .into_any()
        }
        DType::BF16 => half::bf16::from_bits(read::<u16>(p))
            .to_f64()
            .into_pyobject(py)?
            .into_any(),
        DType::F32 => (read::<f32>(p) as f64).into_pyobject(py)?.into_any(),
        DType::F64 => read::<f64>(p).into_pyobject(py)?.into_any(),
    })
}
