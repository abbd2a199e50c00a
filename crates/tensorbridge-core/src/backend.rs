//! The [`Backend`] trait: what a runtime must do for tensorbridge, and nothing more.
//!
//! A backend owns storage (a flat buffer of one dtype on one device) and implements storage ops.
//! Every op takes the [`Layout`] of each operand explicitly, so a view is never confused with its
//! storage; the core has already resolved dtypes (promotion, casts) and shapes (broadcasting, axes)
//! before a backend sees a call. Results are always new contiguous storage. There are no default
//! methods: a backend that forgets an op does not compile.

use std::any::Any;
use std::fmt;
use std::mem::MaybeUninit;
use std::str::FromStr;
use std::sync::Arc;

use ndarray::ArrayViewMutD;

use crate::dtype::{DType, Element, Scalar};
use crate::error::{Error, Result};
use crate::host::HostArray;
use crate::layout::Layout;

/// Where a tensor's storage lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Device {
    /// Host memory.
    Cpu,
    /// A CUDA device by ordinal.
    Cuda(usize),
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl FromStr for Device {
    type Err = Error;

    /// `"cpu"`, `"cuda"` (ordinal 0) or `"cuda:N"`.
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        match s {
            "cpu" => return Ok(Device::Cpu),
            "cuda" => return Ok(Device::Cuda(0)),
            _ => {}
        }
        if let Some(n) = s.strip_prefix("cuda:") {
            if let Ok(i) = n.parse::<usize>() {
                return Ok(Device::Cuda(i));
            }
        }
        Err(Error::InvalidArgument(format!(
            "unknown device '{s}'; expected 'cpu', 'cuda' or 'cuda:N'"
        )))
    }
}

impl Device {
    /// The kind of device, without its ordinal.
    pub fn kind(&self) -> DeviceKind {
        match self {
            Device::Cpu => DeviceKind::Cpu,
            Device::Cuda(_) => DeviceKind::Cuda,
        }
    }
}

/// A kind of device, without an ordinal: what a backend can hold storage on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// Host memory.
    Cpu,
    /// CUDA devices (`cuda:N`).
    Cuda,
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Cuda => "cuda:N",
        })
    }
}

/// Storage memory on a device other than the host, for zero-copy export (DLPack,
/// `__cuda_array_interface__`). Host memory is [`Backend::host_bytes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceMemory {
    /// Address of the storage's first element in the device's address space.
    pub ptr: *const u8,
    /// Bytes of storage from `ptr` on.
    pub len_bytes: usize,
    /// The device the address belongs to.
    pub device: Device,
}

// SAFETY: a `DeviceMemory` is an address and a size; it is never dereferenced on the host, and
// whoever dereferences it (a consumer on the device) holds the storage alive separately.
unsafe impl Send for DeviceMemory {}
// SAFETY: as above; no shared mutable state.
unsafe impl Sync for DeviceMemory {}

/// Memory someone else owns (a NumPy array, a DLPack producer, a torch tensor), offered to a
/// backend to hold in place: [`Backend::from_external`].
#[derive(Clone)]
pub struct ExternalMemory {
    /// First element (host address for `Device::Cpu`, device address otherwise).
    pub ptr: *const u8,
    /// Number of elements from `ptr` on.
    pub len: usize,
    /// Element type.
    pub dtype: DType,
    /// Where the memory is.
    pub device: Device,
    /// Keeps the memory valid and unmodified while it lives; dropped with the last storage that
    /// uses it (a DLPack owner calls the producer's deleter when dropped).
    pub owner: Arc<dyn Any + Send + Sync>,
}

impl fmt::Debug for ExternalMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalMemory")
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .field("dtype", &self.dtype)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

// SAFETY: the memory is only read (tensors are immutable) and its owner is `Send + Sync`;
// `Backend::from_external`'s caller promises validity for as long as the owner lives.
unsafe impl Send for ExternalMemory {}
// SAFETY: as above.
unsafe impl Sync for ExternalMemory {}

/// Elementwise unary operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `|x|`
    Abs,
    /// `e^x` (float dtypes only)
    Exp,
    /// natural log (float dtypes only)
    Log,
    /// square root (float dtypes only)
    Sqrt,
}

/// Elementwise binary arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b` (float dtypes only; the core promotes integers first)
    Div,
}

/// Elementwise comparisons, producing bool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `a == b`
    Eq,
    /// `a < b`
    Lt,
    /// `a > b`
    Gt,
}

/// Reductions over all elements or one axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    /// Sum (in the output dtype's arithmetic).
    Sum,
    /// Arithmetic mean.
    Mean,
    /// Maximum; NaN propagates.
    Max,
    /// Minimum; NaN propagates.
    Min,
}

impl ReduceOp {
    /// The operation's name in messages (NumPy's: `sum`, `mean`, `max`, `min`).
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Mean => "mean",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
        }
    }
}

/// Storage of one backend: a flat buffer of one dtype on one device, and the ops on it.
///
/// Contracts every method can rely on (the core checks them first, once, in `Tensor`: a backend
/// does not check them again):
/// - every `Layout` passed fits the storage it describes;
/// - binary ops, comparisons and `matmul` get operands of the same dtype on the same device;
/// - binary ops and comparisons get operands of the same (broadcast) shape;
/// - `matmul` gets `[batch.., m, k]` and `[batch.., k, n]` with identical batch dimensions;
/// - unary `Exp/Log/Sqrt` and binary `Div` are only called on float dtypes;
/// - every result shape fits `isize::MAX` bytes (and, on the host, the available memory);
/// - creation ops that must match NumPy bit for bit (`arange`) are computed by the core on the
///   host and arrive through [`Backend::from_host`].
///
/// Every result is new storage, contiguous in the row-major layout of the result's shape.
pub trait Backend: Sized + Send + Sync + 'static {
    /// Short name, shown in `Debug` output and backend errors (`"cpu"`, `"torch"`, `"candle"`).
    /// The name users write is the one the backend is registered under
    /// ([`crate::registry`]), which may differ (e.g. `"lazy:cpu"` for `Lazy<Cpu>`).
    const NAME: &'static str;
    /// The kinds of device this backend can hold storage on (as compiled). The registry refuses a
    /// device of another kind before the backend is asked; a device of an accepted kind may
    /// still be unavailable at run time (`Error::DeviceUnavailable`).
    const DEVICE_KINDS: &'static [DeviceKind];

    /// The device the storage is on.
    fn device(&self) -> Device;
    /// Element type.
    fn dtype(&self) -> DType;
    /// Number of elements in the storage (not in any view of it).
    fn len(&self) -> usize;
    /// True when the storage holds no elements.
    fn is_empty(&self) -> bool;

    /// Takes ownership of host data (row-major contiguous in the array's logical order). Its
    /// values are valid Rust values (a `bool` is 0 or 1): a backend that also takes foreign or
    /// raw memory as bool checks it with
    /// [`bool_bytes_are_canonical`](crate::host::bool_bytes_are_canonical) and normalises it
    /// (one copy, only when needed) before anything reads it as `bool`.
    fn from_host(device: &Device, data: HostArray) -> Result<Self>;
    /// `len` elements, all `value` converted to `dtype` with
    /// [`Scalar::to_element`] (exact: an int never passes through f64; the core has checked
    /// that an int fits an integer dtype).
    fn full(device: &Device, len: usize, dtype: DType, value: Scalar) -> Result<Self>;

    /// Elementwise unary op; the result has the input's dtype.
    fn unary(&self, layout: &Layout, op: UnaryOp) -> Result<Self>;
    /// Elementwise binary op between same-dtype, same-shape operands.
    fn binary(
        &self,
        layout: &Layout,
        rhs: &Self,
        rhs_layout: &Layout,
        op: BinaryOp,
    ) -> Result<Self>;
    /// Elementwise comparison between same-dtype, same-shape operands; bool result.
    fn compare(&self, layout: &Layout, rhs: &Self, rhs_layout: &Layout, op: CmpOp) -> Result<Self>;
    /// Batched matrix product, `[b.., m, k] @ [b.., k, n] -> [b.., m, n]`, in the operands' dtype.
    fn matmul(&self, layout: &Layout, rhs: &Self, rhs_layout: &Layout) -> Result<Self>;
    /// Reduces all elements (`axis == None`, result of one element) or one axis (removed from the
    /// shape). Accumulates in and returns `out_dtype`.
    fn reduce(
        &self,
        layout: &Layout,
        op: ReduceOp,
        axis: Option<usize>,
        out_dtype: DType,
    ) -> Result<Self>;
    /// Converts to `dtype` with [`cast_element`](crate::cast_element)'s rules bit for bit
    /// (integers wrap, floats round once to nearest-even, float → int saturates with NaN → 0,
    /// anything → bool is `!= 0`; see [`Tensor::cast`](crate::Tensor::cast)).
    fn cast(&self, layout: &Layout, dtype: DType) -> Result<Self>;
    /// Materialises a view as new contiguous storage of the same dtype.
    fn contiguous(&self, layout: &Layout) -> Result<Self>;

    /// Copies the view's elements (only those) to a new host array of `dtype`, converting on the way.
    fn to_host(&self, layout: &Layout, dtype: DType) -> Result<HostArray>;
    /// Like [`Backend::to_host`] but consumes the storage, so a backend may hand its buffer over
    /// without copying when the view covers all of it.
    fn into_host(self, layout: &Layout, dtype: DType) -> Result<HostArray>;
    /// Copies the view's elements into a caller's buffer of the same shape, converting to `T`.
    fn to_host_into<T: Element>(
        &self,
        layout: &Layout,
        out: &mut ArrayViewMutD<'_, T>,
    ) -> Result<()>;
    /// Copies the view's elements in C order into `out`, converting to `T`: the C-contiguous case
    /// of [`Backend::to_host_into`], which every new NumPy array (`t.numpy(copy=True)`,
    /// `np.array(t)`) is written through. `out` holds exactly `layout.elem_count()` elements and
    /// may be uninitialised: every element is written once, none is read; another length is
    /// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) (from
    /// [`crate::host::check_contiguous_len`]; [`crate::Tensor`] does not check it again). A host
    /// backend calls [`crate::host::copy_into_contiguous`]; others may wrap `out` with
    /// [`crate::host::contiguous_view_mut`] and share their strided path.
    fn to_host_into_contiguous<T: Element>(
        &self,
        layout: &Layout,
        out: &mut [MaybeUninit<T>],
    ) -> Result<()>;
    /// The storage's bytes when it lives in host memory that others may read in place (zero-copy
    /// export); `None` for device memory.
    fn host_bytes(&self) -> Option<&[u8]>;
    /// The storage's device memory, when it lives on a device other than the host and the
    /// backend can expose its address for zero-copy export (DLPack, `__cuda_array_interface__`);
    /// `None` for host memory and for backends that cannot.
    fn device_memory(&self) -> Option<DeviceMemory>;
    /// Storage holding `memory` in place (zero-copy), kept alive by its owner; `Ok(None)` when
    /// this backend cannot hold memory of that device or dtype without a copy (the caller then
    /// copies through [`Backend::from_host`]).
    ///
    /// # Safety
    /// `memory.ptr` must point to `memory.len` initialised elements of `memory.dtype` (for `Bool`:
    /// bytes that are 0 or 1 only: any other byte is undefined behaviour in Rust), aligned for
    /// the dtype, in memory of `memory.device`, valid and unmodified for as long as
    /// `memory.owner` lives.
    unsafe fn from_external(memory: ExternalMemory) -> Result<Option<Self>>;
    /// Blocks until every operation queued on this storage's device has finished (a no-op for
    /// synchronous backends). Benchmarks call it inside the timed region so asynchronous devices
    /// are timed honestly.
    fn synchronize(&self) -> Result<()>;
}
