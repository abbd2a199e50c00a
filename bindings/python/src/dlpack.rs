//! DLPack both ways: `Tensor.__dlpack__` / `__dlpack_device__` (export) and `tb.from_dlpack`
//! (import), with the array API standard's semantics.
//!
//! The C structs are declared here, `repr(C)`, field for field as in `dlpack.h` v1.1.
//!
//! Export hands out a capsule named `dltensor_versioned` (DLPack ≥ 1.0, when the consumer passes
//! `max_version >= (1, 0)`) or `dltensor` (legacy). Our tensors are immutable, so a zero-copy
//! export is flagged `READ_ONLY`; the legacy struct cannot say so, hence a legacy export needs
//! `copy=True` (NumPy's rule). The capsule destructor calls the deleter only while the capsule
//! still has its unconsumed name; a consumer renames it to `used_dltensor[_versioned]` and owns the
//! tensor from then on. Our deleter takes the GIL (the exported tensor may hold Python objects,
//! e.g. a NumPy array it was imported from) and leaks instead when the interpreter is finalizing.
//!
//! Import takes any object with `__dlpack__` (or a capsule), reads host memory zero-copy into a
//! CPU tensor whose storage keeps the producer's managed tensor alive and calls its deleter exactly
//! once when the last view drops. Device memory goes through [`import_device_memory`] and device
//! tensors through [`export_device_memory`]: the single places a device backend plugs into.

use std::any::Any;
use std::ffi::{c_void, CStr};
use std::sync::Arc;

use pyo3::exceptions::{PyBufferError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use tensorbridge::{AnyTensor, BackendKind, Cpu, DType, Device, Layout, Tensor};

use crate::errors::{detached, IntoPyResult};

// ---- dlpack.h ----------------------------------------------------------------------------------

/// `DLPackVersion`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DLPackVersion {
    pub major: u32,
    pub minor: u32,
}

/// `DLDevice` (`device_type` is the C enum `DLDeviceType`, an `int`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DLDevice {
    pub device_type: i32,
    pub device_id: i32,
}

/// `DLDataType`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DLDataType {
    pub code: u8,
    pub bits: u8,
    pub lanes: u16,
}

/// `DLTensor`.
#[repr(C)]
pub struct DLTensor {
    pub data: *mut c_void,
    pub device: DLDevice,
    pub ndim: i32,
    pub dtype: DLDataType,
    pub shape: *mut i64,
    pub strides: *mut i64,
    pub byte_offset: u64,
}

/// `DLManagedTensor` (legacy, pre-1.0 ABI).
#[repr(C)]
pub struct DLManagedTensor {
    pub dl_tensor: DLTensor,
    pub manager_ctx: *mut c_void,
    pub deleter: Option<unsafe extern "C" fn(*mut DLManagedTensor)>,
}

/// `DLManagedTensorVersioned` (DLPack ≥ 1.0).
#[repr(C)]
pub struct DLManagedTensorVersioned {
    pub version: DLPackVersion,
    pub manager_ctx: *mut c_void,
    pub deleter: Option<unsafe extern "C" fn(*mut DLManagedTensorVersioned)>,
    pub flags: u64,
    pub dl_tensor: DLTensor,
}

/// The DLPack version we produce and read.
pub const DLPACK_VERSION: DLPackVersion = DLPackVersion { major: 1, minor: 1 };
/// `DLPACK_FLAG_BITMASK_READ_ONLY`.
pub const FLAG_READ_ONLY: u64 = 1 << 0;
/// `DLPACK_FLAG_BITMASK_IS_COPIED`.
pub const FLAG_IS_COPIED: u64 = 1 << 1;

/// `DLDeviceType` values we name.
pub const KDL_CPU: i32 = 1;
pub const KDL_CUDA: i32 = 2;
pub const KDL_CUDA_HOST: i32 = 3;
pub const KDL_ROCM: i32 = 10;
pub const KDL_CUDA_MANAGED: i32 = 13;

/// `DLDataTypeCode` values we use.
const KDL_INT: u8 = 0;
const KDL_UINT: u8 = 1;
const KDL_FLOAT: u8 = 2;
const KDL_BFLOAT: u8 = 4;
const KDL_BOOL: u8 = 6;

const NAME_LEGACY: &CStr = c"dltensor";
const NAME_VERSIONED: &CStr = c"dltensor_versioned";
const NAME_LEGACY_USED: &CStr = c"used_dltensor";
const NAME_VERSIONED_USED: &CStr = c"used_dltensor_versioned";

// ---- dtypes and devices ------------------------------------------------------------------------

/// The DLPack type of a dtype (every tensorbridge dtype has one).
pub fn dl_dtype(d: DType) -> DLDataType {
    let code = match d {
        DType::Bool => KDL_BOOL,
        DType::U8 | DType::U16 | DType::U32 | DType::U64 => KDL_UINT,
        DType::I8 | DType::I16 | DType::I32 | DType::I64 => KDL_INT,
        DType::F16 | DType::F32 | DType::F64 => KDL_FLOAT,
        DType::BF16 => KDL_BFLOAT,
    };
    DLDataType {
        code,
        bits: (d.size_in_bytes() * 8) as u8,
        lanes: 1,
    }
}

/// The dtype of a DLPack type, or BufferError naming it.
pub fn dtype_of_dl(t: DLDataType) -> PyResult<DType> {
    let d = match (t.code, t.bits, t.lanes) {
        (KDL_BOOL, 8, 1) => DType::Bool,
        (KDL_UINT, 8, 1) => DType::U8,
        (KDL_UINT, 16, 1) => DType::U16,
        (KDL_UINT, 32, 1) => DType::U32,
        (KDL_UINT, 64, 1) => DType::U64,
        (KDL_INT, 8, 1) => DType::I8,
        (KDL_INT, 16, 1) => DType::I16,
        (KDL_INT, 32, 1) => DType::I32,
        (KDL_INT, 64, 1) => DType::I64,
        (KDL_FLOAT, 16, 1) => DType::F16,
        (KDL_FLOAT, 32, 1) => DType::F32,
        (KDL_FLOAT, 64, 1) => DType::F64,
        (KDL_BFLOAT, 16, 1) => DType::BF16,
        (code, bits, lanes) => {
            return Err(PyBufferError::new_err(format!(
                "DLPack dtype (code {code}, bits {bits}, lanes {lanes}) is not supported; \
                 tensorbridge supports bool, uint8-64, int8-64, float16, bfloat16, float32, \
                 float64 with one lane"
            )))
        }
    };
    Ok(d)
}

/// The DLPack device of a tensorbridge device.
pub fn dl_device(d: &Device) -> DLDevice {
    match d {
        Device::Cpu => DLDevice {
            device_type: KDL_CPU,
            device_id: 0,
        },
        Device::Cuda(i) => DLDevice {
            device_type: KDL_CUDA,
            device_id: *i as i32,
        },
    }
}

/// A DLPack device as a human reads it.
fn describe_device(d: DLDevice) -> String {
    let name = match d.device_type {
        KDL_CPU => "kDLCPU",
        KDL_CUDA => "kDLCUDA",
        KDL_CUDA_HOST => "kDLCUDAHost",
        KDL_ROCM => "kDLROCM",
        KDL_CUDA_MANAGED => "kDLCUDAManaged",
        _ => "device type",
    };
    format!("({name}={}, {})", d.device_type, d.device_id)
}

/// Memory the CPU reads in place: plain host memory and CUDA pinned host memory.
fn is_host_readable(d: DLDevice) -> bool {
    matches!(d.device_type, KDL_CPU | KDL_CUDA_HOST)
}

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
    let v: i64 = stream.extract().map_err(|_| {
        PyTypeError::new_err("stream must be None or an int (a CUDA stream handle, 1, 2 or -1)")
    })?;
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
                let (device_type, device_id): (i32, i32) = d.extract().map_err(|_| {
                    PyTypeError::new_err(
                        "dl_device must be None or a (device_type, device_id) tuple",
                    )
                })?;
                Some(DLDevice {
                    device_type,
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
    if !req.versioned && req.copy != Some(true) {
        return Err(PyBufferError::new_err(
            "cannot export a read-only tensor as a legacy DLPack capsule (it cannot say \
             read-only): the consumer must ask for max_version=(1, 0) or copy=True",
        ));
    }
    let must_copy = cross_device || req.copy == Some(true);
    if must_copy && req.copy == Some(false) {
        return Err(PyBufferError::new_err(format!(
            "copy=False, but exporting {} to DLPack device {} needs a copy",
            t.placement(),
            describe_device(target)
        )));
    }
    let exported = if must_copy {
        let bytes = t.elem_count() * t.dtype().size_in_bytes();
        detached(py, bytes, || {
            AnyTensor::from_host(BackendKind::Cpu, t.to_host()?, &Device::Cpu)
        })?
    } else {
        t.clone()
    };
    let (data, device) = match exported.host_bytes() {
        Some(bytes) => {
            let item = exported.dtype().size_in_bytes();
            let offset = if exported.elem_count() == 0 {
                0
            } else {
                exported.layout().offset()
            };
            if offset * item > bytes.len() {
                return Err(PyBufferError::new_err(
                    "tensor view lies outside its storage",
                ));
            }
            // SAFETY: `offset` is inside the storage (checked above), so the pointer stays within
            // the same allocation (or one past its end for an empty view).
            let data = unsafe { bytes.as_ptr().add(offset * item) } as *mut c_void;
            (
                data,
                DLDevice {
                    device_type: KDL_CPU,
                    device_id: 0,
                },
            )
        }
        None => export_device_memory(&exported, req)?,
    };
    let flags = if must_copy {
        FLAG_IS_COPIED
    } else {
        FLAG_READ_ONLY
    };
    let ctx = ExportContext::new(exported, data, device);
    if req.versioned {
        ctx.into_capsule_versioned(py, flags)
    } else {
        ctx.into_capsule_legacy(py)
    }
}

/// The device pointer of a tensor whose storage is not host memory. The torch and cuda backends
/// plug in here (data pointer of the view, `DLDevice`, and an event recorded on the tensor's
/// stream that `req.stream` waits for); this build has none of them.
fn export_device_memory(t: &AnyTensor, req: &ExportRequest) -> PyResult<(*mut c_void, DLDevice)> {
    #[cfg(feature = "torch")]
    if let AnyTensor::Torch(x) = t {
        if let Device::Cuda(ordinal) = x.device() {
            // Ordering: our kernels run on libtorch's current stream. Rather than an event
            // per consumer stream, wait for all queued work on the device (a superset of what
            // the consumer's stream needs), unless the consumer opted out with stream=-1.
            if req.stream != StreamRequest::NoSync {
                x.synchronize()
                    .map_err(|e| PyBufferError::new_err(e.to_string()))?;
            }
            return Ok((
                device_data_ptr(x.storage().data_ptr(), x),
                DLDevice {
                    device_type: KDL_CUDA,
                    device_id: ordinal as i32,
                },
            ));
        }
    }
    let _ = req.stream;
    Err(PyBufferError::new_err(format!(
        "cannot export {} memory through DLPack in this build (backends: {}); pass \
         dl_device=(1, 0) for a host copy",
        t.placement(),
        BackendKind::compiled()
            .iter()
            .map(|b| b.name())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// The address of a view's first element in a device storage starting at `base`.
#[cfg(feature = "torch")]
fn device_data_ptr<B: tensorbridge::Backend>(base: *const u8, t: &Tensor<B>) -> *mut c_void {
    let offset = if t.elem_count() == 0 {
        0
    } else {
        t.layout().offset() * t.dtype().size_in_bytes()
    };
    base.wrapping_add(offset) as *mut c_void
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

    fn into_capsule_versioned(self, py: Python<'_>, flags: u64) -> PyResult<Bound<'_, PyAny>> {
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
    flags: u64,
}

/// `tb.from_dlpack(x, device=, copy=)`: a tensor over `x`'s memory.
pub fn from_dlpack(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    device: Option<Device>,
    copy: Option<bool>,
) -> PyResult<AnyTensor> {
    let capsule = if is_capsule(x) {
        x.clone()
    } else {
        request_capsule(py, x, device.as_ref(), copy)?
    };
    import_capsule(py, &capsule, device, copy)
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
    let theirs: Option<(i32, i32)> = match x.getattr("__dlpack_device__") {
        Ok(f) => Some(f.call0()?.extract()?),
        Err(_) => None,
    };
    // Ask the producer for host memory when we need it there and it lives elsewhere.
    let wanted = match (device, theirs) {
        (Some(Device::Cpu), Some((ty, id)))
            if !is_host_readable(DLDevice {
                device_type: ty,
                device_id: id,
            }) =>
        {
            Some((KDL_CPU, 0))
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
        let inc = unsafe { describe(&(*p).dl_tensor, 0)? };
        (inc, Managed::Legacy(p))
    };
    let pending = Pending {
        capsule: ptr,
        versioned,
        managed,
        incoming,
    };
    let wants_device = device.is_some_and(|d| d != Device::Cpu);
    if !is_host_readable(pending.incoming.device) || wants_device {
        return import_device_memory(py, pending, device);
    }
    let (incoming, owner) = pending.consume(py)?;
    let producer_copied = incoming.flags & FLAG_IS_COPIED != 0;
    host_tensor(py, &incoming, owner, copy == Some(true) && !producer_copied)
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
            read_only: self.incoming.flags & FLAG_READ_ONLY != 0,
        });
        Ok((self.incoming, owner))
    }
}

/// Copies the producer's description out of its `DLTensor`, checking what can be checked.
///
/// # Safety
/// `t` must be a `DLTensor` filled by a DLPack producer: `shape` (and `strides`, unless null)
/// valid for `ndim` reads.
unsafe fn describe(t: &DLTensor, flags: u64) -> PyResult<Incoming> {
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
    let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if n.is_none() {
        return Err(PyBufferError::new_err(format!(
            "DLPack tensor shape {shape:?} overflows"
        )));
    }
    if n != Some(0) && t.data.is_null() {
        return Err(PyBufferError::new_err(
            "DLPack tensor has a null data pointer",
        ));
    }
    let data = (t.data as *const u8).wrapping_add(t.byte_offset as usize);
    Ok(Incoming {
        data,
        device: t.device,
        dtype,
        shape,
        strides,
        flags,
    })
}

/// Device memory from a producer (CUDA, ROCm, ...), or a request for a device tensor. The torch
/// and cuda backends plug in here: `pending.consume(py)` hands over `Incoming` (data pointer,
/// device, dtype, shape, element strides) and the owner that keeps the producer's memory alive;
/// wrap them in the backend's storage (the cuda stream was already passed to `__dlpack__`). This
/// build has no device backend, so the capsule is left unconsumed and the error names the fix.
fn import_device_memory(
    py: Python<'_>,
    pending: Pending,
    device: Option<Device>,
) -> PyResult<AnyTensor> {
    #[cfg(feature = "torch")]
    if matches!(
        pending.incoming.device.device_type,
        KDL_CUDA | KDL_CUDA_MANAGED
    ) && device.is_none_or(|d| d == Device::Cuda(pending.incoming.device.device_id as usize))
    {
        let ordinal = pending.incoming.device.device_id as usize;
        let visible = tensorbridge::torch::cuda::device_count();
        if ordinal < visible {
            let (incoming, owner) = pending.consume(py)?;
            return torch_cuda_tensor(py, &incoming, owner);
        }
        // Not consumed: the capsule's destructor still calls the producer's deleter.
        return Err(PyBufferError::new_err(format!(
            "DLPack import of CUDA memory on cuda:{ordinal}: the torch backend cannot reach it, \
             cuda:{ordinal} is unavailable (libtorch sees {visible} CUDA device(s)); pass \
             device='cpu' to ask the producer for a host copy"
        )));
    }
    let _ = py;
    let incoming = &pending.incoming;
    let compiled: Vec<&str> = BackendKind::compiled().iter().map(|b| b.name()).collect();
    let source = describe_device(incoming.device);
    let need = match incoming.device.device_type {
        KDL_CUDA | KDL_CUDA_MANAGED => "the cuda or torch backend",
        _ => "a backend for that device (tensorbridge has cpu, cuda, torch)",
    };
    Err(PyBufferError::new_err(match device {
        Some(w) if is_host_readable(incoming.device) => format!(
            "tb.from_dlpack(device=\"{w}\") needs the cuda or torch backend; this build has: {}. \
             Import to the cpu backend, then use .to(...)",
            compiled.join(", ")
        ),
        _ => format!(
            "DLPack import of device memory on {source} needs {need}; this build has: {}. \
             Pass device='cpu' to ask the producer for a host copy",
            compiled.join(", ")
        ),
    }))
}

/// The memory a producer's view reaches: the offset of its lowest element relative to `data`
/// (≤ 0 with negative strides) and the number of elements from there to its highest (0 for an
/// empty view).
fn span(inc: &Incoming) -> PyResult<(isize, usize)> {
    if inc.shape.contains(&0) {
        return Ok((0, 0));
    }
    let (mut lo, mut hi) = (0isize, 0isize);
    for (&dim, &s) in inc.shape.iter().zip(&inc.strides) {
        let reach = s
            .checked_mul(dim as isize - 1)
            .ok_or_else(|| PyBufferError::new_err("DLPack strides overflow"))?;
        if reach < 0 {
            lo += reach;
        } else {
            hi += reach;
        }
    }
    Ok((lo, (hi - lo + 1) as usize))
}

/// A CPU tensor over host memory the producer owns (zero-copy, kept alive by `owner`), or a copy
/// of it when `copy` or when the memory is misaligned for the dtype.
fn host_tensor(
    py: Python<'_>,
    inc: &Incoming,
    owner: Arc<ProducerOwner>,
    copy: bool,
) -> PyResult<AnyTensor> {
    let d = inc.dtype;
    let item = d.size_in_bytes();
    let n: usize = inc.shape.iter().product();
    if n == 0 {
        drop(owner);
        let h = tensorbridge::with_dtype!(d, T => tensorbridge::HostArray::from(
            tensorbridge::ndarray::ArrayD::<T>::from_shape_vec(
                tensorbridge::ndarray::IxDyn(&inc.shape), Vec::new())
                .map_err(|e| PyValueError::new_err(e.to_string()))?));
        return Ok(AnyTensor::from(
            Tensor::<Cpu>::from_host(h, &Device::Cpu).py(py)?,
        ));
    }
    let (lo, len) = span(inc)?;
    let base = inc.data.wrapping_offset(lo * item as isize);
    let layout = Layout::new(inc.shape.clone(), inc.strides.clone(), (-lo) as usize).py(py)?;
    if (base as usize) % item != 0 {
        // Misaligned for the element type: gather the elements byte-wise into aligned storage.
        let gathered = gather(inc, item, n);
        drop(owner);
        return tensorbridge::with_dtype!(d, T => owned_from_bytes::<T>(py, &inc.shape, gathered));
    }
    let keep: Arc<dyn Any + Send + Sync> = owner;
    // SAFETY: the producer guarantees its elements lie in `base .. base + len * item` (the span
    // computed from its shape and strides), initialised and valid until its deleter runs, which
    // `keep` (dropped with the storage) calls; `base` is aligned for T (checked above).
    let storage = tensorbridge::with_dtype!(d, T => unsafe {
        Cpu::from_foreign::<T>(base as *const T, len, keep)
    });
    let t = AnyTensor::from(Tensor::<Cpu>::from_storage(Arc::new(storage), layout).py(py)?);
    if !copy {
        return Ok(t);
    }
    detached(py, n * item, || {
        AnyTensor::from_host(BackendKind::Cpu, t.to_host()?, &Device::Cpu)
    })
}

/// A torch-backend CUDA tensor over the producer's device memory (zero-copy, kept alive by
/// `owner`, which calls the producer's deleter when the last view drops).
#[cfg(feature = "torch")]
fn torch_cuda_tensor(
    py: Python<'_>,
    inc: &Incoming,
    owner: Arc<ProducerOwner>,
) -> PyResult<AnyTensor> {
    let item = inc.dtype.size_in_bytes();
    let device = Device::Cuda(inc.device.device_id as usize);
    let (lo, len) = span(inc)?;
    let base = inc.data.wrapping_offset(lo * item as isize);
    if (base as usize) % item != 0 {
        return Err(PyBufferError::new_err(
            "DLPack CUDA memory misaligned for its dtype",
        ));
    }
    let layout = Layout::new(inc.shape.clone(), inc.strides.clone(), (-lo) as usize).py(py)?;
    let keep: Arc<dyn Any + Send + Sync> = owner;
    // SAFETY: the producer guarantees its elements lie in `base .. base + len * item` of the
    // device memory of `device`, valid until its deleter runs, which `keep` (dropped with the
    // storage) calls; `base` is aligned for the dtype (checked above).
    let storage =
        unsafe { tensorbridge::torch::Torch::from_raw(base, len, inc.dtype, &device, keep) }
            .py(py)?;
    Ok(AnyTensor::from(
        Tensor::from_storage(Arc::new(storage), layout).py(py)?,
    ))
}

/// The elements of a (possibly misaligned) strided view, C order, as bytes.
fn gather(inc: &Incoming, item: usize, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * item);
    let mut index = vec![0usize; inc.shape.len()];
    for _ in 0..n {
        let off: isize = index
            .iter()
            .zip(&inc.strides)
            .map(|(&i, &s)| i as isize * s)
            .sum();
        // SAFETY: every index is inside the producer's shape, so the element lies in its memory.
        let src = unsafe {
            std::slice::from_raw_parts(inc.data.wrapping_offset(off * item as isize), item)
        };
        out.extend_from_slice(src);
        for ax in (0..index.len()).rev() {
            index[ax] += 1;
            if index[ax] < inc.shape[ax] {
                break;
            }
            index[ax] = 0;
        }
    }
    out
}

fn owned_from_bytes<T: tensorbridge::Element>(
    py: Python<'_>,
    shape: &[usize],
    bytes: Vec<u8>,
) -> PyResult<AnyTensor> {
    let n = bytes.len() / std::mem::size_of::<T>();
    let mut v: Vec<T> = vec![T::default(); n];
    // SAFETY: `v` has room for exactly `bytes.len()` bytes, the regions do not overlap, and every
    // tensorbridge element type is plain data valid for the producer's bit patterns (bool: the
    // producer's 0/1 bytes, as in the zero-copy path).
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), v.as_mut_ptr() as *mut u8, bytes.len())
    };
    let arr =
        tensorbridge::ndarray::ArrayD::<T>::from_shape_vec(tensorbridge::ndarray::IxDyn(shape), v)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(AnyTensor::from(
        Tensor::<Cpu>::from_host(tensorbridge::HostArray::from(arr), &Device::Cpu).py(py)?,
    ))
}

/// `__dlpack_device__`: `(device_type, device_id)`.
pub fn device_tuple<'py>(py: Python<'py>, t: &AnyTensor) -> PyResult<Bound<'py, PyTuple>> {
    let d = dl_device(&t.device());
    PyTuple::new(py, [d.device_type, d.device_id])
}

/// `__cuda_array_interface__` (version 3) of a torch-backend CUDA tensor: the view in place,
/// read-only. All work queued on the device is waited for first, so `stream` is `None` (the
/// consumer needs no synchronisation). bfloat16 has no typestr: AttributeError, so consumers fall
/// back to DLPack.
#[cfg(feature = "torch")]
pub fn cuda_array_interface(
    py: Python<'_>,
    t: &Tensor<tensorbridge::torch::Torch>,
) -> PyResult<Py<PyAny>> {
    let typestr = match t.dtype() {
        DType::Bool => "|b1",
        DType::U8 => "|u1",
        DType::I8 => "|i1",
        DType::U16 => "<u2",
        DType::U32 => "<u4",
        DType::U64 => "<u8",
        DType::I16 => "<i2",
        DType::I32 => "<i4",
        DType::I64 => "<i8",
        DType::F16 => "<f2",
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        DType::BF16 => {
            return Err(pyo3::exceptions::PyAttributeError::new_err(
                "__cuda_array_interface__ has no typestr for bfloat16; use __dlpack__",
            ))
        }
    };
    t.synchronize().py(py)?;
    let item = t.dtype().size_in_bytes() as isize;
    let ptr = device_data_ptr(t.storage().data_ptr(), t) as usize;
    let d = PyDict::new(py);
    d.set_item("version", 3)?;
    d.set_item("shape", PyTuple::new(py, t.shape())?)?;
    d.set_item("typestr", typestr)?;
    d.set_item("data", (ptr, true))?;
    if t.is_contiguous() {
        d.set_item("strides", py.None())?;
    } else {
        let strides: Vec<isize> = t.layout().strides().iter().map(|s| s * item).collect();
        d.set_item("strides", PyTuple::new(py, strides)?)?;
    }
    d.set_item("descr", vec![("", typestr)])?;
    d.set_item("stream", py.None())?;
    Ok(d.into_any().unbind())
}
