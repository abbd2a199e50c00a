//! NumPy interop: dtype descriptors, zero-copy export of host storage as a read-only ndarray whose
//! base keeps the storage alive, copies into fresh ndarrays (GIL released), and zero-copy import of
//! ndarrays as CPU tensors that keep the ndarray alive.

use std::any::Any;
use std::mem::MaybeUninit;
use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use numpy::npyffi::{self, npy_intp, PY_ARRAY_API};
use numpy::{PyArrayDescr, PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use smallvec::SmallVec;
use tensorbridge::layout::StridedSpan;
use tensorbridge::ndarray::{ArrayViewMutD, IxDyn, ShapeBuilder};
use tensorbridge::registry::{self, BackendEntry};
use tensorbridge::{AnyTensor, DType, Device, ExternalMemory};

pub use crate::args::dtype_of_descr;
use crate::errors::{run_guarded, with_context, IntoPyResult};

static DESCRS: [PyOnceLock<Py<PyArrayDescr>>; 13] = [const { PyOnceLock::new() }; 13];

fn dtype_index(d: DType) -> usize {
    DType::ALL.iter().position(|&x| x == d).unwrap_or(0)
}

/// The message for bfloat16 without ml_dtypes: both ways out.
pub const BF16_NEEDS_ML_DTYPES: &str = "bfloat16 tensors convert to NumPy as ml_dtypes.bfloat16, \
     but ml_dtypes is not installed: `pip install ml_dtypes`, or convert first with \
     t.astype('float32')";

/// The NumPy dtype of `d` (bfloat16 from `ml_dtypes`, TypeError naming the fixes without it).
pub fn descr(py: Python<'_>, d: DType) -> PyResult<Bound<'_, PyArrayDescr>> {
    let cell = &DESCRS[dtype_index(d)];
    if let Some(x) = cell.get(py) {
        return Ok(x.bind(py).clone());
    }
    let made: Bound<'_, PyArrayDescr> = match d {
        DType::BF16 => {
            let ml = py
                .import("ml_dtypes")
                .map_err(|_| PyTypeError::new_err(BF16_NEEDS_ML_DTYPES))?;
            let ty = ml.getattr("bfloat16")?;
            PyArrayDescr::new(py, &ty)?
        }
        other => builtin_descr(py, other),
    };
    let _ = cell.set(py, made.clone().unbind());
    Ok(made)
}

/// NumPy's own descriptor for the dtypes NumPy has built in.
fn builtin_descr(py: Python<'_>, d: DType) -> Bound<'_, PyArrayDescr> {
    use numpy::dtype;
    match d {
        DType::Bool => dtype::<bool>(py),
        DType::U8 => dtype::<u8>(py),
        DType::U16 => dtype::<u16>(py),
        DType::U32 => dtype::<u32>(py),
        DType::U64 => dtype::<u64>(py),
        DType::I8 => dtype::<i8>(py),
        DType::I16 => dtype::<i16>(py),
        DType::I32 => dtype::<i32>(py),
        DType::I64 => dtype::<i64>(py),
        DType::F16 => dtype::<half::f16>(py),
        DType::F32 => dtype::<f32>(py),
        // bfloat16 has no NumPy built-in; `descr` handles it through ml_dtypes before this.
        DType::F64 | DType::BF16 => dtype::<f64>(py),
    }
}

fn new_array<'py>(
    py: Python<'py>,
    d: DType,
    shape: &[usize],
    strides_bytes: Option<&[npy_intp]>,
    data: *mut c_void,
    flags: c_int,
) -> PyResult<Bound<'py, PyAny>> {
    let descr = descr(py, d)?;
    // Inline for up to 8 axes: no heap allocation per conversion (NumPy copies both arrays).
    let mut dims: SmallVec<[npy_intp; 8]> = shape.iter().map(|&x| x as npy_intp).collect();
    let mut strides: SmallVec<[npy_intp; 8]> =
        strides_bytes.map(SmallVec::from_slice).unwrap_or_default();
    // SAFETY: `descr` is a valid descriptor whose reference `into_dtype_ptr` hands to NumPy (the
    // call steals it); `dims`/`strides` have `shape.len()` entries and live across the call; `data`
    // is either null (NumPy allocates) or memory the caller keeps alive via the base object.
    let ptr = unsafe {
        PY_ARRAY_API.PyArray_NewFromDescr(
            py,
            npyffi::get_type_object(py, npyffi::NpyTypes::PyArray_Type),
            descr.into_dtype_ptr(),
            shape.len() as c_int,
            dims.as_mut_ptr(),
            if strides_bytes.is_some() {
                strides.as_mut_ptr()
            } else {
                std::ptr::null_mut()
            },
            data,
            flags,
            std::ptr::null_mut(),
        )
    };
    // SAFETY: a non-null result is a new reference we now own; null means a Python error is set.
    unsafe { Bound::from_owned_ptr_or_err(py, ptr) }
}

/// A read-only ndarray over the tensor's host memory, its base the Python tensor object, or
/// `None` when the memory is not host memory NumPy can read in place.
pub fn export_view<'py>(
    py: Python<'py>,
    owner: &Bound<'py, PyAny>,
    t: &AnyTensor,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let Some(mem) = t.view_memory().filter(|m| m.device == Device::Cpu) else {
        return Ok(None);
    };
    let item = mem.dtype.size_in_bytes() as isize;
    let strides: SmallVec<[npy_intp; 8]> = mem
        .strides
        .iter()
        .map(|&s| (s * item) as npy_intp)
        .collect();
    // flags = 0: not writeable. Tensors are immutable; NumPy may not write through this view.
    let arr = new_array(
        py,
        mem.dtype,
        &mem.shape,
        Some(&strides),
        mem.data as *mut c_void,
        0,
    )?;
    // SAFETY: `arr` is a fresh ndarray; SetBaseObject steals one reference to `owner`, which we
    // create with `into_ptr` on a clone. The owner holds the tensor, which holds the storage the
    // array points into (every element lies inside it: `view_memory` checked the span), so the
    // memory outlives the array.
    let rc = unsafe {
        PY_ARRAY_API.PyArray_SetBaseObject(
            py,
            arr.as_ptr() as *mut npyffi::PyArrayObject,
            owner.clone().into_ptr(),
        )
    };
    if rc != 0 {
        return Err(PyErr::fetch(py));
    }
    Ok(Some(arr))
}

/// The address of an ndarray's first element (not dereferenced).
pub fn array_data(a: &Bound<'_, PyUntypedArray>) -> usize {
    // SAFETY: `a` is an ndarray, so its object is a `PyArrayObject`; reading the data field does
    // not dereference the data pointer.
    unsafe { (*a.as_array_ptr()).fields.data as usize }
}

/// Copies of tensors on the CPU device of at least this many bytes are written into a buffer from
/// the core's output cache and handed to NumPy without another copy, and go back to that cache
/// when NumPy frees them ([`RecycledBuffer`]). glibc hands allocations from 32 MiB up (its
/// largest mmap threshold) back to the system on free, so only those pay their page faults again
/// on every conversion; smaller ones come back from the allocator's own free lists, and keeping
/// them (a Dask or Zarr pipeline makes many) would only hold memory out-of-core work means to give
/// back.
const RECYCLED_EXPORT_MIN_BYTES: usize = 32 << 20;

/// A new writable, C-contiguous ndarray of `dtype` holding the tensor's values (one pass: transfer,
/// layout and dtype conversion together; the GIL is released for large copies).
///
/// Outputs of [`RECYCLED_EXPORT_MIN_BYTES`] (32 MiB) and more of tensors on the CPU device (whose
/// backends take their outputs from the core's allocator) are written into a buffer from the
/// core's output cache (a cached, already paged-in buffer when one of about the size is free,
/// else fresh memory advised to use huge pages) and handed to NumPy without another copy; when
/// NumPy frees the array its buffer goes back to that cache ([`RecycledBuffer`]), so a loop of
/// conversions does not pay a page fault per 4 KiB page every time. Other outputs are written
/// straight into an uninitialised array from NumPy's allocator (`np.empty`: no zero-fill, no
/// base object), which is also what NumPy's own `a.copy()` allocates.
pub fn export_copy<'py>(
    py: Python<'py>,
    t: &AnyTensor,
    dtype: DType,
) -> PyResult<Bound<'py, PyAny>> {
    let shape = t.shape();
    // A copy (out of device memory, or a view or cast of host memory) may be larger than the
    // memory the host, or the container, has free: refuse before anything is allocated (an
    // overcommitted allocation would succeed and the OOM killer end the process on first touch),
    // and name the way to convert it anyway.
    let bytes = tensorbridge::memory_guard::check_host_alloc("numpy", shape, dtype)
        .py(py)
        .map_err(|e| {
            with_context(
                py,
                e,
                "convert it in pieces into a file with t.numpy(out=np.memmap(path, dtype, 'w+', \
                 shape=t.shape)), or into any preallocated array with out=",
            )
        })?;
    // Only tensors on the CPU device: their backends' copies take their buffers from the core's
    // allocator (so the cache they give back to is also where they take from); a device-to-host
    // copy allocates its own host buffer and would only add buffers to the cache, never take them.
    if bytes >= RECYCLED_EXPORT_MIN_BYTES && t.device() == Device::Cpu {
        let host = run_guarded(py, bytes, || t.to_host_as(dtype))?;
        return wrap_host_array(py, host);
    }
    let descr = descr(py, dtype)?;
    // SAFETY: as in `new_array`; PyArray_Empty steals the descriptor reference. It reads the
    // `shape.len()` dimensions and copies them (never writes them): `usize` and `npy_intp`
    // (`isize`) have one size, and every dimension fits an `isize` (`check_host_alloc` proved the
    // byte count does). The memory is uninitialised: `to_host_into_contiguous` writes every
    // element before the array is returned, and on an error the array is dropped unseen.
    let ptr = unsafe {
        PY_ARRAY_API.PyArray_Empty(
            py,
            shape.len() as c_int,
            shape.as_ptr() as *mut npy_intp,
            descr.into_dtype_ptr(),
            0,
        )
    };
    // SAFETY: owned new reference or null with an error set.
    let arr = unsafe { Bound::from_owned_ptr_or_err(py, ptr)? };
    let out: &mut [MaybeUninit<u8>] = if bytes == 0 {
        &mut []
    } else {
        // SAFETY: `ptr` is the new C-contiguous ndarray PyArray_Empty just returned (no type check
        // needed): its data field is NumPy's allocation of exactly `bytes` bytes (the shape's
        // element count times the descriptor's size, which is the dtype's), aligned for the dtype
        // by NumPy's allocator, and nobody else refers to the array until we return it. It is
        // viewed as `MaybeUninit` bytes, which are only written.
        unsafe {
            let data = (*(ptr as *mut npyffi::PyArrayObject)).fields.data;
            std::slice::from_raw_parts_mut(data as *mut MaybeUninit<u8>, bytes)
        }
    };
    run_guarded(py, bytes, || t.to_host_into_contiguous(dtype, out))?;
    Ok(arr)
}

/// A new writable ndarray of `dtype` holding the tensor's values in NumPy's `order="K"`: the
/// axes keep the memory order of the tensor's view (`np.array(a.T)` of a C-contiguous `a` is
/// F-contiguous; NumPy's rule, `PyArray_CreateSortedStridePerm`: axes sorted by decreasing
/// absolute stride, ties in axis order). Copying a permuted dense view this way is a plain
/// contiguous copy, not a transpose.
pub fn export_copy_keep_order<'py>(
    py: Python<'py>,
    t: &AnyTensor,
    dtype: DType,
) -> PyResult<Bound<'py, PyAny>> {
    // C-contiguous views (every fresh tensor) and 1-D views keep their axes: no permutation.
    if t.shape().len() <= 1 || t.layout().is_contiguous() {
        return export_copy(py, t, dtype);
    }
    let perm = keep_order_permutation(t.shape(), t.layout().strides());
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        return export_copy(py, t, dtype);
    }
    let axes: Vec<isize> = perm.iter().map(|&p| p as isize).collect();
    let permuted = t.permute(&axes).py(py)?;
    let arr = export_copy(py, &permuted, dtype)?;
    let arr = arr.cast::<PyUntypedArray>()?;
    // NumPy's `arr.transpose(inverse)` through its C API: the Python method call cost a 2 × 2
    // `np.array(t.T)` more than half of its 1.46 µs.
    let mut inverse: SmallVec<[npy_intp; 8]> = SmallVec::from_elem(0, perm.len());
    for (i, &p) in perm.iter().enumerate() {
        inverse[p] = i as npy_intp;
    }
    let mut dims = npyffi::PyArray_Dims {
        ptr: inverse.as_mut_ptr(),
        // At most NumPy's 64 dimensions: `arr` was made with this many.
        len: inverse.len() as c_int,
    };
    // SAFETY: `arr` is a live ndarray (checked by the cast) with `inverse.len()` dimensions, and
    // `dims` points at that many entries, a permutation of `0..len`; PyArray_Transpose only reads
    // them and returns a new reference to a view of `arr` (holding `arr` as its base), or null
    // with a Python error set.
    unsafe {
        let view = PY_ARRAY_API.PyArray_Transpose(
            py,
            arr.as_ptr() as *mut npyffi::PyArrayObject,
            &mut dims,
        );
        Bound::from_owned_ptr_or_err(py, view)
    }
}

/// The axis order NumPy's `order="K"` gives a copy of a view with these element strides: by
/// decreasing absolute stride, stable, broadcast axes (stride 0) innermost
/// (`np.array(np.broadcast_to(row, (n, m)))` is F-contiguous). Axes of length 1 have no memory
/// order; they stay next to the axis before them.
fn keep_order_permutation(shape: &[usize], strides: &[isize]) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..shape.len()).collect();
    if shape.contains(&0) {
        return perm;
    }
    let mut keys: Vec<usize> = Vec::with_capacity(shape.len());
    let mut last = usize::MAX;
    for (&d, &s) in shape.iter().zip(strides) {
        if d > 1 {
            last = s.unsigned_abs();
        }
        keys.push(last);
    }
    perm.sort_by_key(|&i| std::cmp::Reverse(keys[i]));
    perm
}

/// The owner of an exported copy's memory: NumPy's base object for the array, holding the
/// core's buffer (only copies of 32 MiB and more are wrapped, [`export_copy`]). When NumPy frees
/// the array (and every view of it), the buffer is given back to the core's output cache
/// ([`tensorbridge::host::recycle`]), still paged in, for the next large output of about its size
/// (the cache is bounded and `tb.release_cached_buffers()` empties it).
#[pyclass(module = "tensorbridge", frozen)]
pub struct RecycledBuffer {
    host: std::sync::Mutex<Option<tensorbridge::HostArray>>,
}

impl Drop for RecycledBuffer {
    fn drop(&mut self) {
        let host = self.host.get_mut().ok().and_then(Option::take);
        if let Some(h) = host {
            tensorbridge::with_host_array!(h, a => {
                let (v, _) = a.into_raw_vec_and_offset();
                tensorbridge::host::recycle(v);
            });
        }
    }
}

/// A C-contiguous ndarray over `host`'s own buffer (no copy), the buffer owned by a
/// [`RecycledBuffer`] base that gives it to the core's output cache when freed.
fn wrap_host_array(py: Python<'_>, host: tensorbridge::HostArray) -> PyResult<Bound<'_, PyAny>> {
    let host = tensorbridge::with_host_array!(host, a => {
        if a.is_standard_layout() {
            tensorbridge::HostArray::from(a)
        } else {
            tensorbridge::HostArray::from(a.as_standard_layout().into_owned())
        }
    });
    let d = host.dtype();
    let shape = host.shape().to_vec();
    let data = tensorbridge::with_host_array!(&host, a => a.as_ptr() as *mut c_void);
    let owner = Bound::new(
        py,
        RecycledBuffer {
            host: std::sync::Mutex::new(Some(host)),
        },
    )?;
    // NPY_ARRAY_WRITEABLE | NPY_ARRAY_ALIGNED | C-contiguous (NumPy recomputes contiguity).
    let flags = npyffi::NPY_ARRAY_WRITEABLE | npyffi::NPY_ARRAY_ALIGNED;
    let arr = new_array(py, d, &shape, None, data, flags as c_int)?;
    // SAFETY: `arr` is a fresh ndarray over `data`, the first element of the C-contiguous buffer
    // of `shape` and dtype `d` that `owner` holds (moved into it above: moving a `HostArray`
    // does not move its heap buffer) and never touches again until it is dropped.
    // SetBaseObject steals the reference `into_ptr` creates, so the buffer lives as long as the
    // array and every view of it.
    let rc = unsafe {
        PY_ARRAY_API.PyArray_SetBaseObject(
            py,
            arr.as_ptr() as *mut npyffi::PyArrayObject,
            owner.into_any().into_ptr(),
        )
    };
    if rc != 0 {
        return Err(PyErr::fetch(py));
    }
    Ok(arr)
}

/// True when the host memory the tensor's view reads and the bytes of the ndarray at `data`
/// (`shape`, non-negative byte `strides`, `item`-byte elements, at least one element) intersect:
/// NumPy's `np.may_share_memory` (bounds only). Tensors not in host memory share none.
fn may_share_memory(
    t: &AnyTensor,
    data: usize,
    shape: &[usize],
    strides: &[isize],
    item: usize,
) -> bool {
    let Some(m) = t.view_memory().filter(|m| m.device == Device::Cpu) else {
        return false;
    };
    let reach: usize = shape
        .iter()
        .zip(strides)
        .map(|(&len, &s)| len.saturating_sub(1).saturating_mul(s.unsigned_abs()))
        .fold(item, usize::saturating_add);
    let out_end = data.saturating_add(reach);
    let lo = (m.data as usize).wrapping_add_signed(m.byte_span.0);
    let hi = (m.data as usize).wrapping_add_signed(m.byte_span.1);
    lo < out_end && data < hi
}

/// Writes the tensor's values into the caller's ndarray `out` (same shape, converted to its dtype
/// if `np.can_cast(t.dtype, out.dtype, casting)`, else TypeError as `np.copyto`; any strides in
/// whole elements, negative ones included, with no two elements in the same memory; an
/// `np.memmap` works) and returns `out`. Backends
/// stream chunk by chunk, so a tensor larger than host RAM can be converted into a file.
pub fn export_into<'py>(
    py: Python<'py>,
    t: &AnyTensor,
    out: &Bound<'py, PyAny>,
    casting: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let arr = out.cast::<PyUntypedArray>().map_err(|_| {
        PyTypeError::new_err(format!(
            "out must be a numpy.ndarray (np.memmap works), got {}",
            out.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    // SAFETY: `arr` is an ndarray (cast above), so its object is a PyArrayObject; reading its
    // flags is what NumPy's PyArray_ISWRITEABLE does.
    let flags = unsafe {
        (*npyffi::_PyArray_GET_ITEM_DATA(arr.as_ptr() as *const npyffi::PyArrayObject)).flags
    };
    if flags & npyffi::NPY_ARRAY_WRITEABLE == 0 {
        return Err(PyValueError::new_err("out is read-only"));
    }
    if arr.shape() != t.shape() {
        return Err(PyValueError::new_err(format!(
            "out has shape {:?}, the tensor has shape {:?}",
            arr.shape(),
            t.shape()
        )));
    }
    let d = dtype_of_descr(&arr.dtype())?;
    if arr.dtype().is_native_byteorder() == Some(false) {
        return Err(PyValueError::new_err(
            "out is byte-swapped; use a native byte order",
        ));
    }
    check_casting(py, t.dtype(), d, &arr.dtype(), casting)?;
    let item = d.size_in_bytes() as isize;
    let mut data = array_data(arr);
    let shape = arr.shape().to_vec();
    let mut strides: Vec<isize> = arr.strides().to_vec();
    let n: usize = shape.iter().product();
    // An axis of `out` that runs backwards (`out=a[::-1]`, as `np.copyto` accepts) is written
    // forwards: that axis of `out` and of the tensor's view are both reversed, which pairs the
    // same elements, so the writes below only ever see non-negative strides.
    let mut reversed = t.clone();
    if n > 0 {
        for (axis, s) in strides.iter_mut().enumerate() {
            if *s < 0 {
                let last = (shape[axis] - 1) as isize * *s;
                data = data.wrapping_add_signed(last);
                *s = -*s;
                reversed = reversed.slice(axis as isize, None, None, -1).py(py)?;
            }
        }
    }
    let t = &reversed;
    let usable = strides.iter().all(|&s| s >= 0 && s % item == 0) && data % item as usize == 0;
    let elem_strides: Vec<usize> = strides.iter().map(|&s| (s / item) as usize).collect();
    if !usable || overlaps(&shape, &elem_strides) {
        return Err(PyValueError::new_err(
            "out must be aligned, with strides in whole elements, and no two of its elements in \
             the same memory (a broadcast out, where NumPy's np.copyto result would depend on \
             the order it writes in)",
        ));
    }
    // When `out` may share memory with the tensor (`t.numpy(out=a)` of `t = tb.from_numpy(a).T`),
    // writing it while reading the tensor would read values already overwritten: the values go
    // through a copy first, as NumPy's `np.copyto` does for overlapping arrays.
    let staged;
    let t = if n > 0 && may_share_memory(t, data, &shape, &strides, item as usize) {
        let host = registry::default_for(&Device::Cpu).py(py)?;
        staged = run_guarded(py, n * item as usize, || {
            AnyTensor::from_host(host, t.to_host()?, &Device::Cpu)
        })?;
        &staged
    } else {
        t
    };
    tensorbridge::with_dtype!(d, T => {
        let ptr = if n == 0 { std::ptr::NonNull::<T>::dangling().as_ptr() } else { data as *mut T };
        // SAFETY: `out` is a writable ndarray of `shape` and dtype T (checked), aligned, whose
        // elements at these non-negative element strides from `data` (its first element, or for
        // axes it runs backwards along, its last: the same set of elements) do not overlap
        // (checked) and lie in its buffer; `out` is borrowed for the whole call, so the buffer
        // outlives the view. Python code cannot run while we write (the GIL is only released
        // inside `detached`, which does not return until the copy is done; other threads
        // writing the same array race as they would with any NumPy ufunc `out=`).
        let mut view = unsafe {
            ArrayViewMutD::<T>::from_shape_ptr(IxDyn(&shape).strides(IxDyn(&elem_strides)), ptr)
        };
        run_guarded(py, n * item as usize, || t.to_host_into(&mut view))?;
    });
    Ok(out.clone())
}

/// The casting rules `np.can_cast` takes, in the order of [`CAN_CAST`]'s last index.
const CASTINGS: [&str; 5] = ["no", "equiv", "safe", "same_kind", "unsafe"];

/// NumPy's `np.can_cast(from, to, casting)` answers for native-order descriptors of our dtypes,
/// asked once each: 0 not asked yet, 1 no, 2 yes.
static CAN_CAST: [[[AtomicU8; CASTINGS.len()]; 13]; 13] =
    [const { [const { [const { AtomicU8::new(0) }; CASTINGS.len()] }; 13] }; 13];

/// `np.copyto`'s rule: TypeError unless NumPy can cast `from` into `to` (a native-order
/// descriptor of our dtype `to_dtype`) under `casting` ("no", "equiv", "safe", "same_kind",
/// "unsafe"; anything else is NumPy's ValueError). NumPy's answer for each pair and rule is asked
/// once and remembered: it depends only on the two dtypes.
fn check_casting(
    py: Python<'_>,
    from: DType,
    to_dtype: DType,
    to: &Bound<'_, PyArrayDescr>,
    casting: &str,
) -> PyResult<()> {
    let memo = CASTINGS
        .iter()
        .position(|&c| c == casting)
        .map(|c| &CAN_CAST[dtype_index(from)][dtype_index(to_dtype)][c]);
    let ok = match memo.map(|m| m.load(Ordering::Relaxed)) {
        Some(known @ (1 | 2)) => known == 2,
        _ => {
            // bfloat16 without ml_dtypes has no NumPy dtype; `out` cannot be bfloat16 then, and
            // float32 is castable exactly where bfloat16 is (both floats, bf16 -> f32 is safe).
            let src = descr(py, from).or_else(|_| descr(py, DType::F32))?;
            let np = py.import("numpy")?;
            let ok: bool = np
                .call_method1("can_cast", (&src, to, casting))?
                .extract()?;
            if let Some(m) = memo {
                m.store(if ok { 2 } else { 1 }, Ordering::Relaxed);
            }
            ok
        }
    };
    if ok {
        return Ok(());
    }
    Err(PyTypeError::new_err(format!(
        "Cannot cast tensor data from dtype('{from}') to dtype('{}') according to the rule \
         '{casting}' (pass casting='unsafe' to allow it)",
        to.getattr("name")?
    )))
}

/// True when two positions of a view with these element strides share memory.
fn overlaps(shape: &[usize], strides: &[usize]) -> bool {
    let mut dims: Vec<(usize, usize)> = shape
        .iter()
        .zip(strides)
        .filter(|(&d, _)| d > 1)
        .map(|(&d, &s)| (s, d))
        .collect();
    if shape.contains(&0) {
        return false;
    }
    dims.sort_unstable();
    let mut span = 1usize;
    for (s, d) in dims {
        if s < span {
            return true;
        }
        span = s.saturating_mul(d);
    }
    false
}

/// A CPU tensor over an ndarray: zero-copy (the tensor keeps the ndarray alive) unless `copy`,
/// or unless the ndarray's memory is misaligned or its strides are not whole elements.
pub fn import_array(
    py: Python<'_>,
    arr: &Bound<'_, PyUntypedArray>,
    copy: bool,
) -> PyResult<AnyTensor> {
    let copy_to = match copy {
        true => Some((registry::default_for(&Device::Cpu).py(py)?, Device::Cpu)),
        false => None,
    };
    import_array_to(py, arr, copy_to)
}

/// A tensor holding a copy of an ndarray's values on `backend`/`device`: one copy, straight from
/// the ndarray's memory (any strides) into the buffer the backend takes as its storage
/// ([`AnyTensor::from_host`]), without importing the ndarray in place first (an owner, a storage
/// and a tensor that `to` would copy from at once). The GIL is released for large copies.
pub fn copy_array_to(
    py: Python<'_>,
    arr: &Bound<'_, PyUntypedArray>,
    backend: &'static BackendEntry,
    device: Device,
) -> PyResult<AnyTensor> {
    import_array_to(py, arr, Some((backend, device)))
}

/// [`import_array`] (`copy_to` None: in place when the memory allows) and [`copy_array_to`].
fn import_array_to(
    py: Python<'_>,
    arr: &Bound<'_, PyUntypedArray>,
    copy_to: Option<(&'static BackendEntry, Device)>,
) -> PyResult<AnyTensor> {
    let d = dtype_of_descr(&arr.dtype())?;
    if arr.dtype().is_native_byteorder() == Some(false) {
        return Err(PyValueError::new_err(
            "byte-swapped ndarray: convert with a.astype(a.dtype.newbyteorder('='))",
        ));
    }
    let host = registry::default_for(&Device::Cpu).py(py)?;
    // A fresh array NumPy made here may be imported in place when the copy asked for is one onto
    // the host backend: that array is the copy.
    let copy_of_fresh = copy_to
        .filter(|&(backend, device)| !(std::ptr::eq(backend, host) && device == Device::Cpu));
    let item = d.size_in_bytes();
    // Borrowed from the ndarray, and the strides below kept inline: no heap copies per import.
    let shape = arr.shape();
    let n: usize = shape.iter().product();
    let data = array_data(arr);
    let expressible = arr.strides().iter().all(|&s| s % item as isize == 0) && data % item == 0;
    if !expressible {
        // A fresh C-order copy: NumPy allocates it aligned with whole-element strides. (Not
        // `ascontiguousarray`, which hands back a misaligned contiguous array unchanged.)
        let fixed = arr.call_method1("copy", ("C",))?;
        let fixed = fixed.cast_into::<PyUntypedArray>()?;
        let fixed_data = array_data(&fixed);
        if fixed_data % item != 0 {
            // Only a custom NumPy allocator could do this; never recurse on it.
            return Err(PyValueError::new_err(format!(
                "cannot import a {d} ndarray: NumPy allocated a copy misaligned for {item}-byte \
                 elements"
            )));
        }
        return import_array_to(py, &fixed, copy_of_fresh);
    }
    if n == 0 {
        let empty = copy_array(py, arr, d, shape)?;
        return match copy_to {
            Some((backend, device)) => run_guarded(py, 0, || empty.to(backend, &device)),
            None => Ok(empty),
        };
    }
    let strides: smallvec::SmallVec<[isize; 8]> =
        arr.strides().iter().map(|&s| s / item as isize).collect();
    let span = StridedSpan::of(shape, &strides).py(py)?;
    let base = (data as *const u8).wrapping_offset(span.lowest * item as isize);
    if d == DType::Bool {
        // SAFETY: the span's bytes lie in the ndarray's buffer (computed from its own shape and
        // strides; a bool is one byte), which `arr` keeps alive for this call; any byte is a
        // valid `u8`.
        let bytes = unsafe { std::slice::from_raw_parts(base, span.len) };
        if !tensorbridge::host::bool_bytes_are_canonical(bytes) {
            // NumPy reads any non-zero byte as True; a Rust `bool` may only be 0 or 1. One
            // normalising copy (`a.view(uint8) != 0`), imported in place.
            return import_array_to(py, &normalised_bools(py, arr)?, copy_of_fresh);
        }
    }
    if let Some((backend, device)) = copy_to {
        // One copy straight from the ndarray's memory into the new tensor's buffer (no import
        // of the array as storage first: that would cost an owner, a storage and a tensor more).
        return tensorbridge::with_dtype!(d, T => {
            // SAFETY: the span's `len` elements of T lie in the ndarray's buffer from `base`
            // (computed from its own shape and strides), aligned (checked above) and
            // initialised (bools canonical, checked above); `arr` keeps the buffer alive for
            // this call, and the slice is only read.
            let elems = unsafe { std::slice::from_raw_parts(base as *const T, span.len) };
            run_guarded(py, n * item, || {
                let a = tensorbridge::host::to_contiguous::<T, T>(elems, &span.layout)?;
                AnyTensor::from_host(backend, tensorbridge::HostArray::from(a), &device)
            })
        });
    }
    let memory = ExternalMemory {
        ptr: base,
        len: span.len,
        dtype: d,
        device: Device::Cpu,
        owner: Arc::new(arr.clone().unbind()) as Arc<dyn Any + Send + Sync>,
    };
    // SAFETY: the ndarray's elements all lie in `base .. base + len * item` (its span, from its
    // own shape and strides), aligned for the dtype (checked above) and initialised; the ndarray
    // object is the owner, alive as long as the storage. An empty view reads nothing.
    let imported = unsafe { host.tensor_from_external(memory, span.layout) }.py(py)?;
    match imported {
        Some(t) => Ok(t),
        // The host backend cannot hold the memory in place: one copy.
        None => copy_array(py, arr, d, shape),
    }
}

/// `a.view(np.uint8).astype(np.bool_)`: a new bool ndarray whose bytes are all 0 or 1, True
/// where `a`'s byte is non-zero (NumPy's truth value of a bool byte).
fn normalised_bools<'py>(
    py: Python<'py>,
    arr: &Bound<'py, PyUntypedArray>,
) -> PyResult<Bound<'py, PyUntypedArray>> {
    let np = py.import("numpy")?;
    let bytes = arr.call_method1("view", (np.getattr("uint8")?,))?;
    let fixed = bytes.call_method1("astype", (np.getattr("bool_")?,))?;
    Ok(fixed.cast_into::<PyUntypedArray>()?)
}

/// A tensor of the default host backend holding a copy of an ndarray's values.
fn copy_array(
    py: Python<'_>,
    arr: &Bound<'_, PyUntypedArray>,
    d: DType,
    shape: &[usize],
) -> PyResult<AnyTensor> {
    let host = registry::default_for(&Device::Cpu).py(py)?;
    let contiguous = arr.call_method1("copy", ("C",))?;
    let contiguous = contiguous.cast_into::<PyUntypedArray>()?;
    let data = array_data(&contiguous);
    let n: usize = shape.iter().product();
    tensorbridge::with_dtype!(d, T => {
        let ptr = if n == 0 { std::ptr::NonNull::<T>::dangling().as_ptr() } else { data as *mut T };
        // SAFETY: `contiguous` is a fresh C-contiguous, aligned ndarray of `n` elements of T
        // (same dtype as `arr`), alive for this call; we only read it.
        let slice = unsafe { std::slice::from_raw_parts(ptr as *const T, n) };
        let a = tensorbridge::ndarray::ArrayD::<T>::from_shape_vec(IxDyn(shape), slice.to_vec())
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        AnyTensor::from_host(host, tensorbridge::HostArray::from(a), &Device::Cpu).py(py)
    })
}

/// Frees the host buffers tensorbridge keeps for reuse (freed tensor storage and the memory of
/// converted arrays NumPy has freed, up to 512 MiB in 16 buffers) and returns how many bytes that
/// was, as `torch.cuda.empty_cache()` does for PyTorch's caching allocator.
#[pyfunction]
pub fn release_cached_buffers() -> usize {
    tensorbridge::host::release_cached_buffers()
}

/// Bytes of freed host memory tensorbridge holds for reuse now (see `release_cached_buffers`).
#[pyfunction]
pub fn cached_buffer_bytes() -> usize {
    tensorbridge::host::cached_bytes()
}
