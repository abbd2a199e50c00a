//! DLPack import: `tb.from_dlpack`. Takes any object with `__dlpack__` (or a capsule), reads its
//! memory zero-copy into a tensor of the backend that can hold it (host memory: the default host
//! backend; CUDA memory: a backend with CUDA devices), whose storage keeps the producer's managed
//! tensor alive and calls its deleter exactly once when the last view drops; copies when asked to
//! or when no backend can hold the memory in place.

use std::any::Any;
use std::ffi::CStr;
use std::sync::Arc;

use pyo3::exceptions::{PyBufferError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tensorbridge::layout::StridedSpan;
use tensorbridge::registry::{self, BackendEntry};
use tensorbridge::{cast_element, memory_guard};
use tensorbridge::{AnyTensor, DType, Device, Element, ExternalMemory, Scalar};

use super::ffi::*;
use crate::errors::{run_guarded, IntoPyResult};

// ---- import ------------------------------------------------------------------------------------

/// A producer's managed tensor that we consumed; dropping it calls the producer's deleter once.
enum Managed {
    Legacy(*mut DLManagedTensor),
    Versioned(*mut DLManagedTensorVersioned),
}

/// Keeps a producer's memory alive behind a CPU storage; the last tensor view drops it.
struct ProducerOwner {
    managed: Managed,
    /// The producer's READ_ONLY flag. tensorbridge never writes into a storage, so this changes
    /// nothing here; it is kept so the provenance of the memory stays truthful when debugging.
    read_only: bool,
}

impl std::fmt::Debug for ProducerOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerOwner")
            .field("versioned", &matches!(self.managed, Managed::Versioned(_)))
            .field("read_only", &self.read_only)
            .finish()
    }
}

// SAFETY: the managed tensor is only touched to call its deleter, once, in Drop. DLPack producers
// must accept the deleter being called from any thread (the spec says so; NumPy, PyTorch and JAX
// take the GIL themselves where they need it).
unsafe impl Send for ProducerOwner {}
// SAFETY: no method reads through the pointers; shared references only reach the Debug impl.
unsafe impl Sync for ProducerOwner {}

impl Drop for ProducerOwner {
    fn drop(&mut self) {
        // SAFETY: we consumed the capsule (renamed it), so the managed tensor is ours to release,
        // and Drop runs once.
        unsafe {
            match self.managed {
                Managed::Legacy(p) => {
                    if let Some(d) = (*p).deleter {
                        d(p)
                    }
                }
                Managed::Versioned(p) => {
                    if let Some(d) = (*p).deleter {
                        d(p)
                    }
                }
            }
        }
    }
}

/// A consumed capsule's tensor description, copied out of the producer's struct.
struct Incoming {
    data: *const u8,
    device: DLDevice,
    dtype: DType,
    shape: Vec<usize>,
    /// Element strides (C-contiguous when the producer gave none).
    strides: Vec<isize>,
    /// The elements the view reaches, checked to lie inside the address space.
    span: StridedSpan,
    flags: DlpackFlags,
}

/// `tb.from_dlpack(x, device=, copy=)`: a tensor over `x`'s memory.
///
/// `device`: where the result lives (default: where the producer's memory is). `backend`: which
/// backend holds it (default: the registry's default for that device). Memory is held in place
/// when the backend can; it is copied when `copy=True`, when the memory is misaligned for its
/// dtype, or when it must move to another device or backend.
pub fn from_dlpack(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    device: Option<Device>,
    backend: Option<&'static BackendEntry>,
    copy: Option<bool>,
) -> PyResult<AnyTensor> {
    let capsule = if is_capsule(x) {
        x.clone()
    } else {
        request_capsule(py, x, device.as_ref(), copy)?
    };
    import_capsule(py, &capsule, device, backend, copy)
}

fn is_capsule(x: &Bound<'_, PyAny>) -> bool {
    // SAFETY: PyCapsule_CheckExact only reads the object's type.
    unsafe { ffi::PyCapsule_CheckExact(x.as_ptr()) != 0 }
}

/// Calls the producer's `__dlpack__` with the array API keywords, falling back to a bare call for
/// producers that predate them (TypeError on the keywords).
fn request_capsule<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    device: Option<&Device>,
    copy: Option<bool>,
) -> PyResult<Bound<'py, PyAny>> {
    if !x.hasattr("__dlpack__")? {
        return Err(PyTypeError::new_err(format!(
            "tb.from_dlpack expects an object with __dlpack__ (an array API array) or a DLPack \
             capsule, got {}",
            x.get_type().name()?
        )));
    }
    let theirs: Option<(u32, i32)> = match x.getattr("__dlpack_device__") {
        Ok(f) => Some(f.call0()?.extract()?),
        Err(_) => None,
    };
    // Ask the producer for host memory when we need it there and it lives elsewhere.
    let wanted = match (device, theirs) {
        (Some(Device::Cpu), Some((ty, id)))
            if !is_host_readable(DLDevice {
                device_type: DLDeviceType(ty),
                device_id: id,
            }) =>
        {
            Some((KDL_CPU.0, 0))
        }
        _ => None,
    };
    let kwargs = PyDict::new(py);
    kwargs.set_item("max_version", (DLPACK_VERSION.major, DLPACK_VERSION.minor))?;
    if let Some(c) = copy {
        kwargs.set_item("copy", c)?;
    }
    if let Some(w) = wanted {
        kwargs.set_item("dl_device", w)?;
    }
    match x.call_method("__dlpack__", (), Some(&kwargs)) {
        Err(e) if e.is_instance_of::<PyTypeError>(py) && wanted.is_none() => {
            // A pre-1.0 producer without the keywords: a bare call gives its own memory, which
            // `import_capsule` copies when `copy=True` (a legacy capsule is never IS_COPIED).
            x.call_method0("__dlpack__").map_err(|_| e)
        }
        other => other,
    }
}

/// Reads a capsule named `dltensor_versioned` or `dltensor`, renames it as consumed, and makes a
/// tensor over its memory (or a copy of it).
fn import_capsule(
    py: Python<'_>,
    capsule: &Bound<'_, PyAny>,
    device: Option<Device>,
    backend: Option<&'static BackendEntry>,
    copy: Option<bool>,
) -> PyResult<AnyTensor> {
    let ptr = capsule.as_ptr();
    // SAFETY: `ptr` is a capsule (checked by the callers through is_capsule or the producer's
    // contract; IsValid checks again); GetName/IsValid never dereference our arguments unsafely.
    let versioned = unsafe {
        if ffi::PyCapsule_CheckExact(ptr) == 0 {
            return Err(PyTypeError::new_err(
                "__dlpack__ did not return a PyCapsule",
            ));
        }
        if ffi::PyCapsule_IsValid(ptr, NAME_VERSIONED.as_ptr()) != 0 {
            true
        } else if ffi::PyCapsule_IsValid(ptr, NAME_LEGACY.as_ptr()) != 0 {
            false
        } else {
            let name = ffi::PyCapsule_GetName(ptr);
            ffi::PyErr_Clear();
            let shown = if name.is_null() {
                "<no name>".to_string()
            } else {
                CStr::from_ptr(name).to_string_lossy().into_owned()
            };
            let why = if shown.starts_with("used_") {
                "it was already consumed (a capsule can be imported once)"
            } else {
                "expected \"dltensor\" or \"dltensor_versioned\""
            };
            return Err(PyValueError::new_err(format!(
                "not a DLPack capsule ({shown:?}): {why}"
            )));
        }
    };
    let (incoming, managed) = if versioned {
        // SAFETY: the capsule is valid under this name, so its pointer is a managed tensor.
        let p = unsafe { ffi::PyCapsule_GetPointer(ptr, NAME_VERSIONED.as_ptr()) }
            as *mut DLManagedTensorVersioned;
        if p.is_null() {
            return Err(PyErr::fetch(py));
        }
        // SAFETY: the producer owns `p` until we rename the capsule; we only read it here.
        let m = unsafe { &*p };
        if m.version.major != 1 {
            // Not consumed: the capsule's destructor still releases it.
            return Err(PyBufferError::new_err(format!(
                "DLPack version {}.{} is not supported (tensorbridge reads 1.x)",
                m.version.major, m.version.minor
            )));
        }
        // SAFETY: a DLPack 1.x producer fills `dl_tensor` validly for as long as it owns it.
        let inc = unsafe { describe(&m.dl_tensor, m.flags)? };
        (inc, Managed::Versioned(p))
    } else {
        // SAFETY: as above, for the legacy name.
        let p =
            unsafe { ffi::PyCapsule_GetPointer(ptr, NAME_LEGACY.as_ptr()) } as *mut DLManagedTensor;
        if p.is_null() {
            return Err(PyErr::fetch(py));
        }
        // SAFETY: as above.
        let inc = unsafe { describe(&(*p).dl_tensor, DlpackFlags::empty())? };
        (inc, Managed::Legacy(p))
    };
    let pending = Pending {
        capsule: ptr,
        versioned,
        managed,
        incoming,
    };
    let Some(source) = tensorbridge_device(pending.incoming.device) else {
        // Not consumed: the capsule's destructor still calls the producer's deleter.
        return Err(PyBufferError::new_err(format!(
            "DLPack import of memory on {}: no tensorbridge backend has that kind of device \
             (backends in this build: {}); pass device='cpu' to ask the producer for a host copy",
            describe_device(pending.incoming.device),
            registry::names().join(", ")
        )));
    };
    let target = device.unwrap_or(source);
    // The backend that holds the memory where it is; a move to `backend`/`target` follows.
    let holder = match backend.filter(|b| b.accepts(source.kind())) {
        Some(b) => b,
        None => registry::default_for(&source).py(py)?,
    };
    // Ask before consuming: an unavailable device (or dtype) leaves the capsule to its own
    // destructor, and the producer's memory with its owner.
    if let Err(e) = holder.full(&[0], Scalar::Int(0), Some(pending.incoming.dtype), &source) {
        return Err(PyBufferError::new_err(format!(
            "DLPack import of memory on {source}: backend '{holder}' cannot hold it ({e}); pass \
             device='cpu' to ask the producer for a host copy"
        )));
    }
    let (incoming, owner) = pending.consume(py)?;
    let producer_copied = incoming.flags.contains(FLAG_IS_COPIED);
    let (t, copied) =
        hold(py, holder, source, &incoming, owner)?.ok_or_else(|| no_holder(holder, source))?;
    let copied_why = copied.map(|why| why.describe(incoming.dtype));
    let copied = copied_why.is_some();
    let final_backend = match backend {
        Some(b) => b,
        None if target == source => holder,
        None => registry::default_for(&target).py(py)?,
    };
    let in_place = std::ptr::eq(final_backend, holder) && target == source;
    if copy == Some(false) && (copied || !in_place) {
        let why = if let Some(why) = copied_why {
            why
        } else {
            format!("it must move to a '{final_backend}' tensor on {target}")
        };
        return Err(PyBufferError::new_err(format!(
            "copy=False, but importing this DLPack tensor needs a copy: {why}"
        )));
    }
    let wants_copy = copy == Some(true) && !producer_copied && !copied;
    if in_place && !wants_copy {
        return Ok(t);
    }
    // One copy: onto the requested backend and device (through the host where they differ).
    run_guarded(py, t.nbytes(), || {
        final_backend.tensor_from_host(t.to_host()?, &target)
    })
}

/// The tensorbridge device of a DLPack device, when some backend could have it.
fn tensorbridge_device(d: DLDevice) -> Option<Device> {
    match d.device_type {
        KDL_CPU | KDL_CUDA_HOST => Some(Device::Cpu),
        KDL_CUDA | KDL_CUDA_MANAGED => usize::try_from(d.device_id).ok().map(Device::Cuda),
        _ => None,
    }
}

fn no_holder(holder: &BackendEntry, source: Device) -> PyErr {
    PyBufferError::new_err(format!(
        "backend '{holder}' cannot hold DLPack memory on {source} in place, and it cannot be \
         copied from there; pass device='cpu' to ask the producer for a host copy"
    ))
}

/// Why an import copied the producer's memory instead of holding it in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CopiedBecause {
    /// The data pointer is not aligned for the element type.
    Misaligned,
    /// Bool bytes other than 0 and 1 (any non-zero byte is True; a Rust `bool` may only be 0/1).
    BoolBytes,
    /// The backend cannot hold foreign host memory in place.
    Backend,
}

impl CopiedBecause {
    fn describe(self, dtype: DType) -> String {
        match self {
            CopiedBecause::Misaligned => format!("the memory is misaligned for {dtype}"),
            CopiedBecause::BoolBytes => "its bool bytes are not all 0 or 1 (each non-zero byte \
                                         is True), so they are normalised into a copy"
                .to_string(),
            CopiedBecause::Backend => "the backend cannot hold foreign memory in place".into(),
        }
    }
}

/// A tensor of `holder` over the producer's memory on `source`: zero-copy (kept alive by
/// `owner`), or — for host memory misaligned for its dtype, bool memory with bytes other than
/// 0/1, or a backend that cannot hold foreign memory — a copy (`.1` says why then). `None` for
/// device memory the backend cannot hold (it cannot be gathered on the host).
fn hold(
    py: Python<'_>,
    holder: &'static BackendEntry,
    source: Device,
    inc: &Incoming,
    owner: Arc<ProducerOwner>,
) -> PyResult<Option<(AnyTensor, Option<CopiedBecause>)>> {
    let item = inc.dtype.size_in_bytes();
    let n: usize = inc.shape.iter().product();
    let span = &inc.span;
    // In bounds: `describe` checked that `lowest * item` bytes below `data` is an address.
    let base = inc.data.wrapping_offset(span.lowest * item as isize);
    let host = source == Device::Cpu;
    if n == 0 {
        // Nothing to share: an empty tensor of the dtype (no data is copied).
        drop(owner);
        let t = tensorbridge::with_dtype!(inc.dtype, T => gather_owned::<T>(py, holder, inc))?;
        return Ok(Some((t, None)));
    }
    let misaligned = (base as usize) % item != 0;
    if !host && misaligned {
        return Err(PyBufferError::new_err(format!(
            "DLPack memory on {source} is misaligned for {}",
            inc.dtype
        )));
    }
    // Host bool memory is read before anything holds it as `bool`: a byte other than 0/1 would
    // be undefined behaviour in Rust (device memory is the holding backend's to check).
    let stray_bools = host
        && inc.dtype == DType::Bool
        // SAFETY: the producer's elements lie in `base .. base + span.len` bytes (its span; a
        // bool is one byte) of host memory valid until its deleter runs, which `owner` defers;
        // any byte is a valid `u8`.
        && !tensorbridge::host::bool_bytes_are_canonical(unsafe {
            std::slice::from_raw_parts(base, span.len)
        });
    if host && (misaligned || stray_bools) {
        // Gather the elements into aligned storage, through the memory guard (bools normalised
        // on the way).
        let t = tensorbridge::with_dtype!(inc.dtype, T => gather_owned::<T>(py, holder, inc))?;
        drop(owner);
        let why = if misaligned {
            CopiedBecause::Misaligned
        } else {
            CopiedBecause::BoolBytes
        };
        return Ok(Some((t, Some(why))));
    }
    let memory = ExternalMemory {
        ptr: base,
        len: span.len,
        dtype: inc.dtype,
        device: source,
        owner: owner.clone() as Arc<dyn Any + Send + Sync>,
    };
    // SAFETY: the producer guarantees its elements lie in `base .. base + len * item` (the span
    // computed from its shape and strides) of the memory of `source`, initialised and valid until
    // its deleter runs, which `owner` (dropped with the last storage using it) calls; `base` is
    // aligned for the dtype (checked above).
    match unsafe { holder.tensor_from_external(memory, span.layout.clone()) }.py(py)? {
        Some(t) => Ok(Some((t, None))),
        None if host => {
            let t = tensorbridge::with_dtype!(inc.dtype, T => gather_owned::<T>(py, holder, inc))?;
            drop(owner);
            Ok(Some((t, Some(CopiedBecause::Backend))))
        }
        None => Ok(None),
    }
}

/// A capsule read and checked but not yet consumed. Until [`Pending::consume`] runs, an error
/// leaves the capsule to its destructor (which calls the producer's deleter).
struct Pending {
    capsule: *mut ffi::PyObject,
    versioned: bool,
    managed: Managed,
    incoming: Incoming,
}

impl Pending {
    /// Marks the capsule consumed (renamed first, so its destructor can never call the deleter a
    /// second time) and returns the owner that calls the producer's deleter once, on drop.
    fn consume(self, py: Python<'_>) -> PyResult<(Incoming, Arc<ProducerOwner>)> {
        let used = if self.versioned {
            NAME_VERSIONED_USED
        } else {
            NAME_LEGACY_USED
        };
        // SAFETY: `capsule` is the valid capsule this was read from (the caller holds a reference
        // for the duration of the import); the name is 'static.
        if unsafe { ffi::PyCapsule_SetName(self.capsule, used.as_ptr()) } != 0 {
            return Err(PyErr::fetch(py));
        }
        let owner = Arc::new(ProducerOwner {
            managed: self.managed,
            read_only: self.incoming.flags.contains(FLAG_READ_ONLY),
        });
        Ok((self.incoming, owner))
    }
}

/// Copies the producer's description out of its `DLTensor`, checking what can be checked.
///
/// # Safety
/// `t` must be a `DLTensor` filled by a DLPack producer: `shape` (and `strides`, unless null)
/// valid for `ndim` reads.
unsafe fn describe(t: &DLTensor, flags: DlpackFlags) -> PyResult<Incoming> {
    let dtype = dtype_of_dl(t.dtype)?;
    let ndim = usize::try_from(t.ndim)
        .map_err(|_| PyBufferError::new_err(format!("DLPack tensor has ndim {}", t.ndim)))?;
    if ndim > 0 && t.shape.is_null() {
        return Err(PyBufferError::new_err("DLPack tensor has a null shape"));
    }
    let raw_shape: &[i64] = if ndim == 0 {
        &[]
    } else {
        // SAFETY: the producer's shape array has `ndim` entries (caller's contract).
        unsafe { std::slice::from_raw_parts(t.shape, ndim) }
    };
    let shape = raw_shape
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| PyBufferError::new_err(format!("DLPack tensor has shape {raw_shape:?}")))?;
    let strides: Vec<isize> = if t.strides.is_null() || ndim == 0 {
        let mut s = vec![0isize; ndim];
        let mut acc = 1isize;
        for i in (0..ndim).rev() {
            s[i] = acc;
            acc = acc.saturating_mul(shape[i].max(1) as isize);
        }
        s
    } else {
        // SAFETY: non-null strides have `ndim` entries (caller's contract).
        let raw = unsafe { std::slice::from_raw_parts(t.strides, ndim) };
        raw.iter()
            .map(|&s| isize::try_from(s))
            .collect::<Result<_, _>>()
            .map_err(|_| PyBufferError::new_err(format!("DLPack tensor has strides {raw:?}")))?
    };
    // NumPy's rule (and Rust's for any object): the product of the non-zero sides, in bytes,
    // fits in an isize -- whatever the order of the sides and whether one of them is 0.
    let item = dtype.size_in_bytes();
    let nbytes = shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(item, |a, &d| a.checked_mul(d));
    if nbytes.is_none_or(|b| isize::try_from(b).is_err()) {
        return Err(PyBufferError::new_err(format!(
            "DLPack tensor shape {shape:?} of {dtype} overflows: its size in bytes does not fit \
             in the address space"
        )));
    }
    let n: usize = shape.iter().product(); // cannot overflow: checked above
    if n != 0 && t.data.is_null() {
        return Err(PyBufferError::new_err(
            "DLPack tensor has a null data pointer",
        ));
    }
    let span = StridedSpan::of(&shape, &strides)
        .map_err(|e| PyBufferError::new_err(format!("DLPack tensor: {e}")))?;
    // The bytes the view reaches, from its lowest element to past its highest, must be addresses:
    // no wrap-around of `data + byte_offset`, of the lowest element below it, or of the end, and
    // at most isize::MAX bytes (what Rust's slices and pointer offsets require).
    let in_address_space = || -> Option<()> {
        let first = (t.data as usize).checked_add(usize::try_from(t.byte_offset).ok()?)?;
        let lowest = first.checked_add_signed(span.lowest.checked_mul(item as isize)?)?;
        let len = span
            .len
            .checked_mul(item)
            .filter(|&b| isize::try_from(b).is_ok())?;
        lowest.checked_add(len).map(|_| ())
    };
    if n != 0 && in_address_space().is_none() {
        return Err(PyBufferError::new_err(format!(
            "DLPack tensor of shape {shape:?}, strides {strides:?} and {dtype} at {:p} + \
             byte_offset {} reaches past the address space",
            t.data, t.byte_offset
        )));
    }
    let data = (t.data as *const u8).wrapping_add(t.byte_offset as usize);
    Ok(Incoming {
        data,
        device: t.device,
        dtype,
        shape,
        strides,
        span,
        flags,
    })
}

/// A tensor of `holder` (host memory) holding a copy of the producer's view, gathered element by
/// element in C order (the memory may be misaligned for its dtype). Bool bytes other than 0/1
/// become `true`: no other bit pattern may reach Rust as `bool`.
fn gather_owned<T: Element>(
    py: Python<'_>,
    holder: &'static BackendEntry,
    inc: &Incoming,
) -> PyResult<AnyTensor> {
    let item = std::mem::size_of::<T>() as isize;
    let n: usize = inc.shape.iter().product();
    let mut out = memory_guard::try_alloc::<T>("from_dlpack", &inc.shape).py(py)?;
    let mut index = vec![0usize; inc.shape.len()];
    for _ in 0..n {
        let off: isize = index
            .iter()
            .zip(&inc.strides)
            .map(|(&i, &s)| i as isize * s)
            .sum();
        let at = inc.data.wrapping_offset(off * item);
        let v = if T::DTYPE == DType::Bool {
            // SAFETY: every index is inside the producer's shape, so this byte lies in its memory
            // (initialised, valid until its deleter runs, which has not happened: the caller holds
            // the owner).
            let byte = unsafe { at.read() };
            cast_element::<bool, T>(byte != 0)
        } else {
            // SAFETY: as above, the `item` bytes of the element lie in the producer's memory; every
            // bit pattern is a valid value of the non-bool element types; unaligned reads are
            // allowed by `read_unaligned`.
            unsafe { at.cast::<T>().read_unaligned() }
        };
        out.push(v);
        for ax in (0..index.len()).rev() {
            index[ax] += 1;
            if index[ax] < inc.shape[ax] {
                break;
            }
            index[ax] = 0;
        }
    }
    let arr = tensorbridge::ndarray::ArrayD::<T>::from_shape_vec(
        tensorbridge::ndarray::IxDyn(&inc.shape),
        out,
    )
    .map_err(|e| PyValueError::new_err(e.to_string()))?;
    AnyTensor::from_host(holder, tensorbridge::HostArray::from(arr), &Device::Cpu).py(py)
}
