//! DLPack export: `Tensor.__dlpack__`. A capsule named `dltensor_versioned` (DLPack ≥ 1.0, when
//! the consumer passes `max_version >= (1, 0)`) or `dltensor` (legacy). Our tensors are immutable,
//! so a zero-copy export is flagged `READ_ONLY`; the legacy struct cannot say so, hence a legacy
//! export needs `copy=True` (NumPy's rule). The capsule destructor calls the deleter only while the
//! capsule still has its unconsumed name; a consumer renames it to `used_dltensor[_versioned]` and
//! owns the tensor from then on. Our deleter takes the GIL (the exported tensor may hold Python
//! objects, e.g. a NumPy array it was imported from) and leaks instead when the interpreter is
//! finalizing.

use std::ffi::{c_void, CStr};

use pyo3::exceptions::{PyBufferError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use tensorbridge::registry;
use tensorbridge::{AnyTensor, Device};

use super::ffi::*;
use crate::errors::{run_guarded, IntoPyResult};

// ---- stream argument ---------------------------------------------------------------------------

/// What the consumer asked the producer to order its work against (array API `stream`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamRequest {
    /// `None`: the producer's default (for CUDA: the legacy default stream).
    Default,
    /// CUDA `-1`: the consumer asks for no synchronisation.
    NoSync,
    /// CUDA `1`: the legacy default stream.
    Legacy,
    /// CUDA `2`: the per-thread default stream.
    PerThread,
    /// CUDA `> 2`: a `cudaStream_t` handle owned by the consumer.
    Handle(usize),
}

/// Checks `stream` against the exporting device (array API rules): host memory takes only `None`
/// (anything else is a BufferError); CUDA takes `None`, `-1`, `1`, `2` or a stream handle `> 2`,
/// and rejects `0` as ambiguous (ValueError).
pub fn parse_stream(
    device: DLDevice,
    stream: Option<&Bound<'_, PyAny>>,
) -> PyResult<StreamRequest> {
    let Some(stream) = stream.filter(|s| !s.is_none()) else {
        return Ok(StreamRequest::Default);
    };
    if is_host_readable(device) {
        return Err(PyBufferError::new_err(format!(
            "stream must be None for host memory (device {}); got {}",
            describe_device(device),
            stream.repr().map(|r| r.to_string()).unwrap_or_default()
        )));
    }
    let v = stream_value(stream)?;
    match (device.device_type, v) {
        (KDL_CUDA, -1) => Ok(StreamRequest::NoSync),
        (KDL_CUDA, 0) => Err(PyValueError::new_err(
            "stream=0 is ambiguous for CUDA; pass 1 (legacy default stream), 2 (per-thread \
             default stream), -1 (no synchronisation) or a stream handle",
        )),
        (KDL_CUDA, 1) => Ok(StreamRequest::Legacy),
        (KDL_CUDA, 2) => Ok(StreamRequest::PerThread),
        (KDL_CUDA, h) if h > 2 => Ok(StreamRequest::Handle(h as usize)),
        (_, v) => Err(PyValueError::new_err(format!(
            "stream={v} is not valid for device {}",
            describe_device(device)
        ))),
    }
}

/// A stream argument as an int: an int, or an object with `__cuda_stream__` (an attribute or a
/// method, as `torch.cuda.Stream` and CuPy streams have; the convention `dlpark`'s producer
/// follows too).
fn stream_value(stream: &Bound<'_, PyAny>) -> PyResult<i64> {
    let not_a_stream = || {
        PyTypeError::new_err(
            "stream must be None, an int (a CUDA stream handle, 1, 2 or -1) or an object with \
             __cuda_stream__",
        )
    };
    if let Ok(v) = stream.extract::<i64>() {
        return Ok(v);
    }
    let handle = stream
        .getattr(pyo3::intern!(stream.py(), "__cuda_stream__"))
        .map_err(|_| not_a_stream())?;
    let handle = if handle.is_callable() {
        handle.call0()?
    } else {
        handle
    };
    handle.extract::<i64>().map_err(|_| not_a_stream())
}

// ---- export ------------------------------------------------------------------------------------

/// The arguments of `__dlpack__`, parsed.
pub struct ExportRequest {
    /// A DLPack ≥ 1.0 capsule was asked for.
    pub versioned: bool,
    /// `dl_device`, when given.
    pub device: Option<DLDevice>,
    /// `copy`: `Some(true)` always copies, `Some(false)` never, `None` when needed.
    pub copy: Option<bool>,
    /// The checked stream (host memory: always `Default`).
    pub stream: StreamRequest,
}

impl ExportRequest {
    /// Parses and checks the keyword arguments of `__dlpack__` for tensor `t`.
    pub fn parse(
        t: &AnyTensor,
        stream: Option<&Bound<'_, PyAny>>,
        max_version: Option<&Bound<'_, PyAny>>,
        dl_device_arg: Option<&Bound<'_, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Self> {
        let versioned = match max_version.filter(|v| !v.is_none()) {
            None => false,
            Some(v) => {
                let (major, _minor): (i64, i64) = v.extract().map_err(|_| {
                    PyTypeError::new_err("max_version must be None or a (major, minor) tuple")
                })?;
                major >= 1
            }
        };
        let device = match dl_device_arg.filter(|d| !d.is_none()) {
            None => None,
            Some(d) => {
                let (device_type, device_id): (u32, i32) = d.extract().map_err(|_| {
                    PyTypeError::new_err(
                        "dl_device must be None or a (device_type, device_id) tuple",
                    )
                })?;
                Some(DLDevice {
                    device_type: DLDeviceType(device_type),
                    device_id,
                })
            }
        };
        // The stream belongs to the device the capsule will describe (kDLCPU takes only None).
        let stream = parse_stream(device.unwrap_or_else(|| dl_device(&t.device())), stream)?;
        Ok(ExportRequest {
            versioned,
            device,
            copy,
            stream,
        })
    }
}

/// The capsule for `__dlpack__`.
pub fn export<'py>(
    py: Python<'py>,
    t: &AnyTensor,
    req: &ExportRequest,
) -> PyResult<Bound<'py, PyAny>> {
    let here = dl_device(&t.device());
    let target = req.device.unwrap_or(here);
    let cross_device = target != here;
    if cross_device
        && target
            != (DLDevice {
                device_type: KDL_CPU,
                device_id: 0,
            })
    {
        return Err(PyBufferError::new_err(format!(
            "cannot export a tensor on {} to DLPack device {}: only the tensor's own device or \
             (kDLCPU=1, 0) is supported",
            t.placement(),
            describe_device(target)
        )));
    }
    // A legacy capsule cannot say read-only, so handing our memory out through one would let the
    // consumer write into an immutable tensor. The array API lets a producer copy when the
    // consumer allows it (copy=None): legacy consumers (JAX, TensorFlow) get a copy then.
    let legacy_needs_copy = !req.versioned;
    if legacy_needs_copy && req.copy == Some(false) {
        return Err(PyBufferError::new_err(
            "copy=False, but a legacy DLPack capsule (no max_version >= (1, 0)) cannot say the \
             memory is read-only, so sharing it would need a copy; ask for max_version=(1, 0)",
        ));
    }
    let must_copy = cross_device || req.copy == Some(true) || legacy_needs_copy;
    if must_copy && req.copy == Some(false) {
        return Err(PyBufferError::new_err(format!(
            "copy=False, but exporting {} to DLPack device {} needs a copy",
            t.placement(),
            describe_device(target)
        )));
    }
    let host_copy = |t: &AnyTensor| -> PyResult<AnyTensor> {
        let host = registry::default_for(&Device::Cpu).py(py)?;
        run_guarded(py, t.nbytes(), || {
            AnyTensor::from_host(host, t.to_host()?, &Device::Cpu)
        })
    };
    let mut copied = must_copy;
    let mut exported = if must_copy { host_copy(t)? } else { t.clone() };
    if !exported.is_evaluated() {
        // A lazy tensor: its graph is evaluated now (however small the result, the work may be
        // large: let other threads run).
        run_guarded(py, usize::MAX, || exported.evaluate())?;
    }
    let mem = match exported.view_memory() {
        Some(mem) => mem,
        // Host memory a backend does not share (the `counted:candle` test decorator hides
        // candle's): one host copy, on the same device, as `copy=None` allows (as `np.asarray`).
        None if exported.device() == Device::Cpu && req.copy != Some(false) => {
            exported = host_copy(&exported)?;
            copied = true;
            exported.view_memory().ok_or_else(|| {
                PyBufferError::new_err("internal error: a host copy has no host memory")
            })?
        }
        None if exported.device() == Device::Cpu => {
            return Err(PyBufferError::new_err(format!(
                "copy=False, but backend '{}' cannot share the memory of {}: exporting it \
                 through DLPack needs a copy (copy=None allows one)",
                exported.backend(),
                exported.placement()
            )))
        }
        None => {
            return Err(PyBufferError::new_err(format!(
                "cannot export {} memory through DLPack: backend '{}' does not expose it; pass \
                 dl_device=(1, 0) for a host copy",
                exported.placement(),
                exported.backend()
            )))
        }
    };
    if mem.device != Device::Cpu && req.stream != StreamRequest::NoSync {
        // Ordering: backends queue their kernels on their own streams. Rather than an event per
        // consumer stream, wait for all queued work on the device (a superset of what the
        // consumer's stream needs), unless the consumer opted out with stream=-1.
        exported
            .synchronize()
            .map_err(|e| PyBufferError::new_err(e.to_string()))?;
    }
    let flags = if copied {
        FLAG_IS_COPIED
    } else {
        FLAG_READ_ONLY
    };
    let ctx = ExportContext::new(exported, mem.data as *mut c_void, dl_device(&mem.device));
    if req.versioned {
        ctx.into_capsule_versioned(py, flags)
    } else {
        ctx.into_capsule_legacy(py)
    }
}

/// What an exported capsule owns: the tensor (keeping its storage alive) and the shape/strides
/// arrays the `DLTensor` points into. The managed struct comes first so its address is ours.
#[repr(C)]
struct Exported<M> {
    managed: M,
    shape: Vec<i64>,
    strides: Vec<i64>,
    tensor: AnyTensor,
}

struct ExportContext {
    tensor: AnyTensor,
    data: *mut c_void,
    device: DLDevice,
}

impl ExportContext {
    fn new(tensor: AnyTensor, data: *mut c_void, device: DLDevice) -> Self {
        ExportContext {
            tensor,
            data,
            device,
        }
    }

    fn dl_tensor(&self, shape: &mut [i64], strides: &mut [i64]) -> DLTensor {
        DLTensor {
            data: self.data,
            device: self.device,
            ndim: shape.len() as i32,
            dtype: dl_dtype(self.tensor.dtype()),
            shape: shape.as_mut_ptr(),
            strides: strides.as_mut_ptr(),
            byte_offset: 0,
        }
    }

    fn shape_strides(&self) -> (Vec<i64>, Vec<i64>) {
        let l = self.tensor.layout();
        (
            l.shape().iter().map(|&d| d as i64).collect(),
            l.strides().iter().map(|&s| s as i64).collect(),
        )
    }

    fn into_capsule_versioned(
        self,
        py: Python<'_>,
        flags: DlpackFlags,
    ) -> PyResult<Bound<'_, PyAny>> {
        let (shape, strides) = self.shape_strides();
        let mut boxed = Box::new(Exported {
            managed: DLManagedTensorVersioned {
                version: DLPACK_VERSION,
                manager_ctx: std::ptr::null_mut(),
                deleter: Some(delete_versioned),
                flags,
                dl_tensor: DLTensor {
                    data: std::ptr::null_mut(),
                    device: self.device,
                    ndim: 0,
                    dtype: dl_dtype(self.tensor.dtype()),
                    shape: std::ptr::null_mut(),
                    strides: std::ptr::null_mut(),
                    byte_offset: 0,
                },
            },
            shape,
            strides,
            tensor: self.tensor.clone(),
        });
        let b = &mut *boxed;
        // The Vec buffers do not move when the Box is turned into a raw pointer.
        b.managed.dl_tensor = self.dl_tensor(&mut b.shape, &mut b.strides);
        let raw = Box::into_raw(boxed);
        // SAFETY: `raw` is a valid, uniquely owned allocation; manager_ctx points at it.
        unsafe { (*raw).managed.manager_ctx = raw as *mut c_void };
        // SAFETY: `Exported` is repr(C) with the managed struct first, so `raw` is also a valid
        // `DLManagedTensorVersioned` pointer; the capsule owns it until a consumer renames it.
        unsafe {
            make_capsule(
                py,
                raw as *mut c_void,
                NAME_VERSIONED,
                capsule_destructor_versioned,
            )
        }
        .inspect_err(|_| {
            // SAFETY: the capsule was not made, so we still own `raw` (once).
            unsafe { delete_versioned(raw as *mut DLManagedTensorVersioned) }
        })
    }

    fn into_capsule_legacy(self, py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
        let (shape, strides) = self.shape_strides();
        let mut boxed = Box::new(Exported {
            managed: DLManagedTensor {
                dl_tensor: DLTensor {
                    data: std::ptr::null_mut(),
                    device: self.device,
                    ndim: 0,
                    dtype: dl_dtype(self.tensor.dtype()),
                    shape: std::ptr::null_mut(),
                    strides: std::ptr::null_mut(),
                    byte_offset: 0,
                },
                manager_ctx: std::ptr::null_mut(),
                deleter: Some(delete_legacy),
            },
            shape,
            strides,
            tensor: self.tensor.clone(),
        });
        let b = &mut *boxed;
        b.managed.dl_tensor = self.dl_tensor(&mut b.shape, &mut b.strides);
        let raw = Box::into_raw(boxed);
        // SAFETY: as in `into_capsule_versioned`.
        unsafe { (*raw).managed.manager_ctx = raw as *mut c_void };
        // SAFETY: as in `into_capsule_versioned`, for the legacy struct.
        unsafe {
            make_capsule(
                py,
                raw as *mut c_void,
                NAME_LEGACY,
                capsule_destructor_legacy,
            )
        }
        .inspect_err(|_| {
            // SAFETY: the capsule was not made, so we still own `raw` (once).
            unsafe { delete_legacy(raw as *mut DLManagedTensor) }
        })
    }
}

/// A new capsule over `ptr` named `name` with `destructor`.
///
/// # Safety
/// `ptr` must be a managed tensor that `destructor` knows how to release.
unsafe fn make_capsule<'py>(
    py: Python<'py>,
    ptr: *mut c_void,
    name: &'static CStr,
    destructor: unsafe extern "C" fn(*mut ffi::PyObject),
) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: `name` is a 'static C string (the capsule keeps the pointer); `ptr` is non-null.
    let cap = unsafe { ffi::PyCapsule_New(ptr, name.as_ptr(), Some(destructor)) };
    // SAFETY: a new reference, or null with an exception set.
    unsafe { Bound::from_owned_ptr_or_err(py, cap) }
}

/// Frees an `Exported<M>`, with the GIL held (the tensor may own Python objects); at interpreter
/// shutdown, when the GIL cannot be taken, it is leaked rather than touched.
///
/// # Safety
/// `p` must come from `Box::into_raw` of an `Exported<M>` and not have been freed.
unsafe fn release_exported<M>(p: *mut Exported<M>) {
    if p.is_null() {
        return;
    }
    // SAFETY: the caller guarantees `p` is a live Box allocation we own.
    let mut slot = Some(unsafe { Box::from_raw(p) });
    // Dropping the tensor may release Python objects (a NumPy array it was imported from), so
    // take the GIL. At interpreter shutdown it cannot be taken: leak rather than crash.
    if Python::try_attach(|_py| drop(slot.take())).is_none() {
        std::mem::forget(slot.take());
    }
}

/// The deleter of a versioned managed tensor we produced (the consumer calls it when done).
unsafe extern "C" fn delete_versioned(p: *mut DLManagedTensorVersioned) {
    // SAFETY: we only hand out this deleter on `Exported<DLManagedTensorVersioned>` allocations.
    unsafe { release_exported(p as *mut Exported<DLManagedTensorVersioned>) }
}

/// The deleter of a legacy managed tensor we produced.
unsafe extern "C" fn delete_legacy(p: *mut DLManagedTensor) {
    // SAFETY: we only hand out this deleter on `Exported<DLManagedTensor>` allocations.
    unsafe { release_exported(p as *mut Exported<DLManagedTensor>) }
}

/// Capsule destructor: the managed tensor is freed only if no consumer took it (the capsule still
/// has its unconsumed name). Runs with the GIL held (capsule deallocation).
unsafe extern "C" fn capsule_destructor_versioned(capsule: *mut ffi::PyObject) {
    // SAFETY: `capsule` is the capsule being deallocated; IsValid/GetPointer do not raise for the
    // name it was checked against; the pointer under that name is our versioned managed tensor.
    unsafe {
        if ffi::PyCapsule_IsValid(capsule, NAME_VERSIONED.as_ptr()) == 0 {
            return;
        }
        let p = ffi::PyCapsule_GetPointer(capsule, NAME_VERSIONED.as_ptr())
            as *mut DLManagedTensorVersioned;
        if let Some(deleter) = p.as_ref().and_then(|m| m.deleter) {
            preserving_error(|| deleter(p));
        }
    }
}

/// Capsule destructor for the legacy name (as above).
unsafe extern "C" fn capsule_destructor_legacy(capsule: *mut ffi::PyObject) {
    // SAFETY: as in `capsule_destructor_versioned`, for the legacy struct.
    unsafe {
        if ffi::PyCapsule_IsValid(capsule, NAME_LEGACY.as_ptr()) == 0 {
            return;
        }
        let p = ffi::PyCapsule_GetPointer(capsule, NAME_LEGACY.as_ptr()) as *mut DLManagedTensor;
        if let Some(deleter) = p.as_ref().and_then(|m| m.deleter) {
            preserving_error(|| deleter(p));
        }
    }
}

/// Runs `release` with any pending Python exception set aside: a capsule can be freed while an
/// exception propagates, and the Python objects the deleter releases must neither see nor clear it.
///
/// # Safety
/// The GIL must be held.
unsafe fn preserving_error(release: impl FnOnce()) {
    let (mut ty, mut value, mut tb) = (
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
    );
    // SAFETY: the GIL is held (caller's contract); Fetch moves the exception into our three
    // references and Restore hands them back, so ownership balances.
    unsafe {
        ffi::PyErr_Fetch(&mut ty, &mut value, &mut tb);
        release();
        ffi::PyErr_Restore(ty, value, tb);
    }
}
