//! [`AnyTensor`]: a tensor of any registered backend behind one object-safe trait,
//! [`DynTensor`], which is implemented once, generically, for every [`Tensor<B>`]. The Python
//! bindings (and any Rust code that picks a backend at run time) hold `AnyTensor`s and never name
//! a backend: what differs between backends is asked through the trait or the backend's
//! [`BackendEntry`] in the [registry](crate::registry).
//!
//! Ops between tensors of different backends or devices are errors that name `.to(...)`; nothing
//! is copied behind the user's back.

use std::any::Any;
use std::fmt;
use std::mem::MaybeUninit;
use std::sync::Arc;

use ndarray::ArrayViewMutD;

use crate::backend::{Backend, Device, DeviceMemory, ReduceOp, UnaryOp};
use crate::dtype::{DType, Element, Scalar};
use crate::error::{Error, Result};
use crate::host::{HostArray, HostViewMut};
use crate::layout::Layout;
use crate::registry::{self, BackendEntry};
use crate::tensor::Tensor;

/// The memory of a view, for zero-copy export (NumPy views, the buffer protocol, DLPack,
/// `__cuda_array_interface__`): where its first element is, how the others are laid out, and an
/// owner that keeps the storage alive. Computed in one place ([`AnyTensor::view_memory`]) for
/// every backend.
#[derive(Clone)]
pub struct ViewMemory {
    /// Address of the view's element `[0, .., 0]` (host address for `Device::Cpu`, device
    /// address otherwise). For a view with no elements, the storage's base address.
    pub data: *const u8,
    /// Where the memory is.
    pub device: Device,
    /// Element type.
    pub dtype: DType,
    /// The view's shape.
    pub shape: Vec<usize>,
    /// The view's strides, in elements (negative and zero strides allowed).
    pub strides: Vec<isize>,
    /// The lowest and one-past-highest byte the view touches, relative to `data` (`(0, 0)` for
    /// a view with no elements).
    pub byte_span: (isize, isize),
    /// Keeps the storage (and so the memory) alive while it lives.
    pub owner: Arc<dyn Any + Send + Sync>,
}

impl fmt::Debug for ViewMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ViewMemory")
            .field("data", &self.data)
            .field("device", &self.device)
            .field("dtype", &self.dtype)
            .field("shape", &self.shape)
            .field("strides", &self.strides)
            .field("byte_span", &self.byte_span)
            .finish_non_exhaustive()
    }
}

// SAFETY: `data` is an address the owner keeps valid; it is only read (tensors are immutable), and
// the owner is `Send + Sync` itself.
unsafe impl Send for ViewMemory {}
// SAFETY: as above.
unsafe impl Sync for ViewMemory {}

impl ViewMemory {
    /// True when the view is dense and row-major.
    pub fn is_c_contiguous(&self) -> bool {
        Layout::from_parts(&self.shape, &self.strides, 0)
            .map(|l| l.is_contiguous())
            .unwrap_or(false)
    }
}

/// A tensor of some backend, with every op of [`Tensor<B>`] in object-safe form. Implemented once,
/// for every `Tensor<B: Backend>`; nothing else implements it. Results are new type-erased
/// tensors of the same backend.
///
/// Binary ops take the other operand as `&dyn DynTensor` and require it to be a tensor of the
/// same backend type (checked by [`AnyTensor`] before the call; a mismatch is
/// [`Error::BackendMismatch`]).
pub trait DynTensor: Send + Sync + 'static {
    /// The concrete `Tensor<B>`, for downcasting.
    fn as_any(&self) -> &dyn Any;
    /// The dimensions.
    fn shape(&self) -> &[usize];
    /// The element type.
    fn dtype(&self) -> DType;
    /// The device of the storage.
    fn device(&self) -> Device;
    /// The view's layout over its storage.
    fn layout(&self) -> &Layout;
    /// The storage bytes when they are host memory readable in place.
    fn host_bytes(&self) -> Option<&[u8]>;
    /// The storage's device memory, when the backend exposes it.
    fn device_memory(&self) -> Option<DeviceMemory>;
    /// An owner keeping the storage alive.
    fn storage_owner(&self) -> Arc<dyn Any + Send + Sync>;
    /// Blocks until the work queued on the storage's device has finished.
    fn synchronize(&self) -> Result<()>;

    /// `self <op> rhs` between tensors of the same backend.
    fn binary(&self, op: TensorOp, rhs: &dyn DynTensor) -> Result<Arc<dyn DynTensor>>;
    /// `self <op> scalar` (or `scalar <op> self` for the reversed ops).
    fn scalar(&self, op: ScalarOp, s: Scalar) -> Result<Arc<dyn DynTensor>>;
    /// Elementwise unary op.
    fn unary(&self, op: UnaryOp) -> Result<Arc<dyn DynTensor>>;
    /// Reduction over all elements or one axis.
    fn reduce(
        &self,
        op: ReduceOp,
        axis: Option<isize>,
        keepdim: bool,
    ) -> Result<Arc<dyn DynTensor>>;
    /// A view (or, for a reshape the strides cannot express, a copy).
    fn view(&self, op: &ViewOp<'_>) -> Result<Arc<dyn DynTensor>>;
    /// Converted to `dtype`.
    fn cast(&self, dtype: DType) -> Result<Arc<dyn DynTensor>>;
    /// Materialised as contiguous storage.
    fn contiguous(&self) -> Result<Arc<dyn DynTensor>>;

    /// The values on the host.
    fn to_host(&self) -> Result<HostArray>;
    /// The values on the host, converted to `dtype` in the same pass.
    fn to_host_as(&self, dtype: DType) -> Result<HostArray>;
    /// The values written into a caller's buffer of the same shape, converted to its dtype.
    fn to_host_into(&self, out: HostViewMut<'_>) -> Result<()>;
    /// The values written in C order into `out`, converted to `dtype`: `out` is exactly
    /// `elem_count * dtype.size_in_bytes()` bytes, aligned for `dtype`, possibly uninitialised
    /// (every byte is written, none read). See [`Backend::to_host_into_contiguous`].
    fn to_host_into_contiguous(&self, dtype: DType, out: &mut [MaybeUninit<u8>]) -> Result<()>;
}

/// Binary ops between two tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum TensorOp {
    Add,
    Sub,
    Mul,
    Div,
    MatMul,
    Eq,
    Lt,
    Gt,
}

impl TensorOp {
    /// The op's name, for errors.
    pub fn name(self) -> &'static str {
        match self {
            TensorOp::Add => "add",
            TensorOp::Sub => "sub",
            TensorOp::Mul => "mul",
            TensorOp::Div => "div",
            TensorOp::MatMul => "matmul",
            TensorOp::Eq => "eq",
            TensorOp::Lt => "lt",
            TensorOp::Gt => "gt",
        }
    }
}

/// Binary ops between a tensor and a Python-style weak scalar (`R*`: the scalar on the left).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum ScalarOp {
    Add,
    Sub,
    RSub,
    Mul,
    Div,
    RDiv,
    Eq,
    Lt,
    Gt,
}

/// View ops, by argument.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum ViewOp<'a> {
    Reshape(&'a [isize]),
    Transpose(isize, isize),
    ReverseAxes,
    Permute(&'a [isize]),
    Slice {
        axis: isize,
        start: Option<isize>,
        stop: Option<isize>,
        step: isize,
    },
    Select {
        axis: isize,
        index: isize,
    },
    BroadcastTo(&'a [usize]),
    Squeeze(Option<isize>),
    Unsqueeze(isize),
}

fn erase<B: Backend>(t: Tensor<B>) -> Arc<dyn DynTensor> {
    Arc::new(t)
}

impl<B: Backend> DynTensor for Tensor<B> {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn shape(&self) -> &[usize] {
        Tensor::shape(self)
    }
    fn dtype(&self) -> DType {
        Tensor::dtype(self)
    }
    fn device(&self) -> Device {
        Tensor::device(self)
    }
    fn layout(&self) -> &Layout {
        Tensor::layout(self)
    }
    fn host_bytes(&self) -> Option<&[u8]> {
        self.storage().host_bytes()
    }
    fn device_memory(&self) -> Option<DeviceMemory> {
        self.storage().device_memory()
    }
    fn storage_owner(&self) -> Arc<dyn Any + Send + Sync> {
        self.storage().clone()
    }
    fn synchronize(&self) -> Result<()> {
        Tensor::synchronize(self)
    }

    fn binary(&self, op: TensorOp, rhs: &dyn DynTensor) -> Result<Arc<dyn DynTensor>> {
        let Some(r) = rhs.as_any().downcast_ref::<Tensor<B>>() else {
            return Err(Error::BackendMismatch {
                op: op.name(),
                lhs: B::NAME.into(),
                rhs: "another backend".into(),
            });
        };
        Ok(erase(match op {
            TensorOp::Add => self.add(r),
            TensorOp::Sub => self.sub(r),
            TensorOp::Mul => self.mul(r),
            TensorOp::Div => self.div(r),
            TensorOp::MatMul => self.matmul(r),
            TensorOp::Eq => self.eq(r),
            TensorOp::Lt => self.lt(r),
            TensorOp::Gt => self.gt(r),
        }?))
    }
    fn scalar(&self, op: ScalarOp, s: Scalar) -> Result<Arc<dyn DynTensor>> {
        Ok(erase(match op {
            ScalarOp::Add => self.add_scalar(s),
            ScalarOp::Sub => self.sub_scalar(s),
            ScalarOp::RSub => self.rsub_scalar(s),
            ScalarOp::Mul => self.mul_scalar(s),
            ScalarOp::Div => self.div_scalar(s),
            ScalarOp::RDiv => self.rdiv_scalar(s),
            ScalarOp::Eq => self.eq_scalar(s),
            ScalarOp::Lt => self.lt_scalar(s),
            ScalarOp::Gt => self.gt_scalar(s),
        }?))
    }
    fn unary(&self, op: UnaryOp) -> Result<Arc<dyn DynTensor>> {
        Ok(erase(match op {
            UnaryOp::Neg => self.neg(),
            UnaryOp::Abs => self.abs(),
            UnaryOp::Exp => self.exp(),
            UnaryOp::Log => self.log(),
            UnaryOp::Sqrt => self.sqrt(),
        }?))
    }
    fn reduce(
        &self,
        op: ReduceOp,
        axis: Option<isize>,
        keepdim: bool,
    ) -> Result<Arc<dyn DynTensor>> {
        Ok(erase(match op {
            ReduceOp::Sum => self.sum(axis, keepdim),
            ReduceOp::Mean => self.mean(axis, keepdim),
            ReduceOp::Max => self.max(axis, keepdim),
            ReduceOp::Min => self.min(axis, keepdim),
        }?))
    }
    fn view(&self, op: &ViewOp<'_>) -> Result<Arc<dyn DynTensor>> {
        Ok(erase(match *op {
            ViewOp::Reshape(shape) => self.reshape(shape)?,
            ViewOp::Transpose(a, b) => self.transpose(a, b)?,
            ViewOp::ReverseAxes => self.t(),
            ViewOp::Permute(perm) => self.permute(perm)?,
            ViewOp::Slice {
                axis,
                start,
                stop,
                step,
            } => self.slice(axis, start, stop, step)?,
            ViewOp::Select { axis, index } => self.select(axis, index)?,
            ViewOp::BroadcastTo(shape) => self.broadcast_to(shape)?,
            ViewOp::Squeeze(axis) => self.squeeze(axis)?,
            ViewOp::Unsqueeze(axis) => self.unsqueeze(axis)?,
        }))
    }
    fn cast(&self, dtype: DType) -> Result<Arc<dyn DynTensor>> {
        Ok(erase(Tensor::cast(self, dtype)?))
    }
    fn contiguous(&self) -> Result<Arc<dyn DynTensor>> {
        Ok(erase(Tensor::contiguous(self)?))
    }
    fn to_host(&self) -> Result<HostArray> {
        Tensor::to_host(self)
    }
    fn to_host_as(&self, dtype: DType) -> Result<HostArray> {
        Tensor::to_host_as(self, dtype)
    }
    fn to_host_into(&self, out: HostViewMut<'_>) -> Result<()> {
        crate::with_host_view_mut!(out, v => {
            let mut v = v;
            Tensor::to_host_into(self, &mut v)
        })
    }
    fn to_host_into_contiguous(&self, dtype: DType, out: &mut [MaybeUninit<u8>]) -> Result<()> {
        crate::with_dtype!(dtype, T => {
            let size = std::mem::size_of::<T>();
            if out.is_empty() {
                // An empty `&mut [u8]`'s pointer need not be aligned for `T`, so the typed empty
                // slice is made directly (the backend still checks its length).
                return Tensor::to_host_into_contiguous(self, &mut [] as &mut [MaybeUninit<T>]);
            }
            if out.as_ptr().align_offset(std::mem::align_of::<T>()) != 0 || out.len() % size != 0 {
                return Err(Error::InvalidArgument(format!(
                    "to_host_into_contiguous: the output buffer of {} bytes at {:p} is not whole, \
                     aligned {dtype} elements",
                    out.len(),
                    out.as_ptr(),
                )));
            }
            // SAFETY: `out` is non-empty, aligned for `T` and `len / size` whole `T`s long
            // (checked above), borrowed mutably for this call; `MaybeUninit<T>` has no invalid
            // bit patterns and the same layout as `T`, so those bytes may be viewed as it.
            let elements = unsafe {
                std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<MaybeUninit<T>>(), out.len() / size)
            };
            Tensor::to_host_into_contiguous(self, elements)
        })
    }
}

/// A tensor of any registered backend: a type-erased [`Tensor<B>`] and the
/// [`BackendEntry`] it was registered under. Cloning is O(1) and shares the storage.
#[derive(Clone)]
pub struct AnyTensor {
    tensor: Arc<dyn DynTensor>,
    backend: &'static BackendEntry,
}

impl fmt::Debug for AnyTensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AnyTensor(shape={:?}, dtype={}, backend={}, device={})",
            self.shape(),
            self.dtype(),
            self.backend.name(),
            self.device()
        )
    }
}

impl AnyTensor {
    // ---- wrapping -----------------------------------------------------------------------------

    /// Wraps a tensor of a registered backend; [`Error::InvalidArgument`] naming the type when
    /// `B` is not registered (see [`crate::registry::register`]).
    pub fn new<B: Backend>(t: Tensor<B>) -> Result<Self> {
        let backend = registry::entry_of::<B>().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "backend type {} ({}) is not registered; register it with \
                 tensorbridge_core::registry::register",
                std::any::type_name::<B>(),
                B::NAME
            ))
        })?;
        Ok(AnyTensor {
            tensor: Arc::new(t),
            backend,
        })
    }

    /// Wraps an erased tensor of `backend` (the entry's type must be the tensor's; constructors
    /// of [`BackendEntry`] guarantee it).
    pub(crate) fn from_parts(tensor: Arc<dyn DynTensor>, backend: &'static BackendEntry) -> Self {
        AnyTensor { tensor, backend }
    }

    fn same_backend(&self, tensor: Arc<dyn DynTensor>) -> Self {
        AnyTensor {
            tensor,
            backend: self.backend,
        }
    }

    /// The concrete tensor, when it is a tensor of `B`.
    pub fn downcast_ref<B: Backend>(&self) -> Option<&Tensor<B>> {
        self.tensor.as_any().downcast_ref::<Tensor<B>>()
    }

    /// The type-erased tensor.
    pub fn as_dyn(&self) -> &dyn DynTensor {
        self.tensor.as_ref()
    }

    // ---- properties ---------------------------------------------------------------------------

    /// The backend's registry entry (its name, devices, capabilities).
    pub fn backend(&self) -> &'static BackendEntry {
        self.backend
    }
    /// `"backend:device"`, for error messages.
    pub fn placement(&self) -> String {
        format!("{}:{}", self.backend.name(), self.device())
    }
    /// Blocks until the work queued on this tensor's device has finished (for a deferred
    /// backend: evaluates the graph first).
    pub fn synchronize(&self) -> Result<()> {
        self.tensor.synchronize()
    }
    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        self.tensor.shape()
    }
    /// The element type.
    pub fn dtype(&self) -> DType {
        self.tensor.dtype()
    }
    /// The device.
    pub fn device(&self) -> Device {
        self.tensor.device()
    }
    /// Number of elements.
    pub fn elem_count(&self) -> usize {
        self.tensor.layout().elem_count()
    }
    /// Bytes of the view's elements (saturating).
    pub fn nbytes(&self) -> usize {
        self.elem_count()
            .saturating_mul(self.dtype().size_in_bytes())
    }
    /// The view's layout over its storage.
    pub fn layout(&self) -> &Layout {
        self.tensor.layout()
    }
    /// The storage bytes when they are host memory readable in place (zero-copy export).
    pub fn host_bytes(&self) -> Option<&[u8]> {
        self.tensor.host_bytes()
    }
    /// An opaque keep-alive for the storage.
    pub fn storage_owner(&self) -> Arc<dyn Any + Send + Sync> {
        self.tensor.storage_owner()
    }

    /// Where the view's elements are, for zero-copy export: host memory (when the storage is
    /// readable in place) or device memory (when the backend exposes it); `None` otherwise (the
    /// caller copies). A deferred tensor is evaluated first.
    pub fn view_memory(&self) -> Option<ViewMemory> {
        let item = self.dtype().size_in_bytes();
        let layout = self.layout();
        let (base, storage_bytes, device) = match self.host_bytes() {
            Some(bytes) => (bytes.as_ptr(), bytes.len(), Device::Cpu),
            None => {
                let m = self.tensor.device_memory()?;
                (m.ptr, m.len_bytes, m.device)
            }
        };
        let (data, byte_span) = match layout.storage_span() {
            None => (base, (0, 0)),
            Some((lo, hi)) => {
                // The layout was checked against the storage when the tensor was made; check
                // again against the bytes the backend reports, so no export can reach past them.
                if hi.checked_mul(item)? > storage_bytes {
                    return None;
                }
                let offset = layout.offset();
                let data = base.wrapping_add(offset * item);
                let lo = (lo as isize - offset as isize) * item as isize;
                let hi = (hi as isize - offset as isize) * item as isize;
                (data, (lo, hi))
            }
        };
        Some(ViewMemory {
            data,
            device,
            dtype: self.dtype(),
            shape: layout.shape().to_vec(),
            strides: layout.strides().to_vec(),
            byte_span,
            owner: self.storage_owner(),
        })
    }

    // ---- creation -----------------------------------------------------------------------------

    /// A tensor holding host data on `backend`/`device`.
    pub fn from_host(
        backend: &'static BackendEntry,
        data: HostArray,
        device: &Device,
    ) -> Result<Self> {
        backend.tensor_from_host(data, device)
    }
    /// `shape` filled with `value` (dtype defaults to the scalar's).
    pub fn full(
        backend: &'static BackendEntry,
        shape: &[usize],
        value: Scalar,
        dtype: Option<DType>,
        device: &Device,
    ) -> Result<Self> {
        backend.full(shape, value, dtype, device)
    }
    /// NumPy `arange`.
    pub fn arange(
        backend: &'static BackendEntry,
        start: Scalar,
        stop: Scalar,
        step: Scalar,
        dtype: Option<DType>,
        device: &Device,
    ) -> Result<Self> {
        backend.arange(start, stop, step, dtype, device)
    }

    // ---- elementwise --------------------------------------------------------------------------

    /// `self <op> rhs`, both of one backend (else [`Error::BackendMismatch`]).
    pub fn binary(&self, op: TensorOp, rhs: &Self) -> Result<Self> {
        if !std::ptr::eq(self.backend, rhs.backend) {
            return Err(Error::BackendMismatch {
                op: op.name(),
                lhs: self.placement(),
                rhs: rhs.placement(),
            });
        }
        Ok(self.same_backend(self.tensor.binary(op, rhs.tensor.as_ref())?))
    }
    /// `self <op> s` (reversed ops: `s <op> self`).
    pub fn scalar_op(&self, op: ScalarOp, s: Scalar) -> Result<Self> {
        Ok(self.same_backend(self.tensor.scalar(op, s)?))
    }
    /// Elementwise unary op.
    pub fn unary(&self, op: UnaryOp) -> Result<Self> {
        Ok(self.same_backend(self.tensor.unary(op)?))
    }

    /// `a + b`
    pub fn add(&self, rhs: &Self) -> Result<Self> {
        self.binary(TensorOp::Add, rhs)
    }
    /// `a - b`
    pub fn sub(&self, rhs: &Self) -> Result<Self> {
        self.binary(TensorOp::Sub, rhs)
    }
    /// `a * b`
    pub fn mul(&self, rhs: &Self) -> Result<Self> {
        self.binary(TensorOp::Mul, rhs)
    }
    /// `a / b` (true division)
    pub fn div(&self, rhs: &Self) -> Result<Self> {
        self.binary(TensorOp::Div, rhs)
    }
    /// `a @ b`
    pub fn matmul(&self, rhs: &Self) -> Result<Self> {
        self.binary(TensorOp::MatMul, rhs)
    }
    /// `a == b`
    pub fn eq(&self, rhs: &Self) -> Result<Self> {
        self.binary(TensorOp::Eq, rhs)
    }
    /// `a < b`
    pub fn lt(&self, rhs: &Self) -> Result<Self> {
        self.binary(TensorOp::Lt, rhs)
    }
    /// `a > b`
    pub fn gt(&self, rhs: &Self) -> Result<Self> {
        self.binary(TensorOp::Gt, rhs)
    }
    /// `a + s`
    pub fn add_scalar(&self, s: Scalar) -> Result<Self> {
        self.scalar_op(ScalarOp::Add, s)
    }
    /// `a - s`
    pub fn sub_scalar(&self, s: Scalar) -> Result<Self> {
        self.scalar_op(ScalarOp::Sub, s)
    }
    /// `s - a`
    pub fn rsub_scalar(&self, s: Scalar) -> Result<Self> {
        self.scalar_op(ScalarOp::RSub, s)
    }
    /// `a * s`
    pub fn mul_scalar(&self, s: Scalar) -> Result<Self> {
        self.scalar_op(ScalarOp::Mul, s)
    }
    /// `a / s`
    pub fn div_scalar(&self, s: Scalar) -> Result<Self> {
        self.scalar_op(ScalarOp::Div, s)
    }
    /// `s / a`
    pub fn rdiv_scalar(&self, s: Scalar) -> Result<Self> {
        self.scalar_op(ScalarOp::RDiv, s)
    }
    /// `a == s`
    pub fn eq_scalar(&self, s: Scalar) -> Result<Self> {
        self.scalar_op(ScalarOp::Eq, s)
    }
    /// `a < s`
    pub fn lt_scalar(&self, s: Scalar) -> Result<Self> {
        self.scalar_op(ScalarOp::Lt, s)
    }
    /// `a > s`
    pub fn gt_scalar(&self, s: Scalar) -> Result<Self> {
        self.scalar_op(ScalarOp::Gt, s)
    }
    /// `-a`
    pub fn neg(&self) -> Result<Self> {
        self.unary(UnaryOp::Neg)
    }
    /// `|a|`
    pub fn abs(&self) -> Result<Self> {
        self.unary(UnaryOp::Abs)
    }
    /// `e^a`
    pub fn exp(&self) -> Result<Self> {
        self.unary(UnaryOp::Exp)
    }
    /// `ln a`
    pub fn log(&self) -> Result<Self> {
        self.unary(UnaryOp::Log)
    }
    /// `sqrt a`
    pub fn sqrt(&self) -> Result<Self> {
        self.unary(UnaryOp::Sqrt)
    }

    // ---- reductions ---------------------------------------------------------------------------

    /// A reduction over all elements or one axis.
    pub fn reduce(&self, op: ReduceOp, axis: Option<isize>, keepdim: bool) -> Result<Self> {
        Ok(self.same_backend(self.tensor.reduce(op, axis, keepdim)?))
    }
    /// [`AnyTensor::reduce`] over several axes at once: NumPy's `axis=(a, b, ...)`. The axes may
    /// be negative; a repeated one is an error (NumPy's "duplicate value in 'axis'"); no axes
    /// reduce nothing but still give the reduction's dtype (NumPy: `a.sum(axis=())` of int8 is
    /// int64). The reduced axes are moved last and merged into one (a copy when they are not
    /// already the last ones, in order), so it is one reduction: float sums accumulate in f64 and
    /// round once, as over one axis.
    pub fn reduce_axes(&self, op: ReduceOp, axes: &[isize], keepdim: bool) -> Result<Self> {
        let shape = self.shape().to_vec();
        let ndim = shape.len();
        let mut reduced = vec![false; ndim];
        for &axis in axes {
            let a = crate::layout::normalize_axis(op.name(), axis, ndim)?;
            if std::mem::replace(&mut reduced[a], true) {
                return Err(Error::InvalidArgument(format!(
                    "{}: duplicate value in 'axis'",
                    op.name()
                )));
            }
        }
        match axes {
            [] => return self.unsqueeze(0)?.reduce(op, Some(0), false),
            [axis] => return self.reduce(op, Some(*axis), keepdim),
            _ => {}
        }
        let kept: Vec<usize> = (0..ndim).filter(|&a| !reduced[a]).collect();
        let merged = if kept.is_empty() {
            self.reduce(op, None, false)?
        } else {
            let perm: Vec<isize> = kept
                .iter()
                .copied()
                .chain((0..ndim).filter(|&a| reduced[a]))
                .map(|a| a as isize)
                .collect();
            let in_order = perm.iter().enumerate().all(|(i, &p)| i as isize == p);
            let moved = if in_order {
                self.clone()
            } else {
                self.permute(&perm)?.contiguous()?
            };
            let reduced_len: usize = (0..ndim)
                .filter(|&a| reduced[a])
                .map(|a| shape[a])
                .product();
            let mut to: Vec<isize> = kept.iter().map(|&a| shape[a] as isize).collect();
            to.push(reduced_len as isize);
            moved
                .reshape(&to)?
                .reduce(op, Some(kept.len() as isize), false)?
        };
        if !keepdim {
            return Ok(merged);
        }
        let ones: Vec<isize> = (0..ndim)
            .map(|a| if reduced[a] { 1 } else { shape[a] as isize })
            .collect();
        merged.reshape(&ones)
    }
    /// Sum over all or one axis.
    pub fn sum(&self, axis: Option<isize>, keepdim: bool) -> Result<Self> {
        self.reduce(ReduceOp::Sum, axis, keepdim)
    }
    /// Mean over all or one axis.
    pub fn mean(&self, axis: Option<isize>, keepdim: bool) -> Result<Self> {
        self.reduce(ReduceOp::Mean, axis, keepdim)
    }
    /// Maximum over all or one axis.
    pub fn max(&self, axis: Option<isize>, keepdim: bool) -> Result<Self> {
        self.reduce(ReduceOp::Max, axis, keepdim)
    }
    /// Minimum over all or one axis.
    pub fn min(&self, axis: Option<isize>, keepdim: bool) -> Result<Self> {
        self.reduce(ReduceOp::Min, axis, keepdim)
    }

    // ---- views --------------------------------------------------------------------------------

    /// A view op (see [`ViewOp`]).
    pub fn view(&self, op: &ViewOp<'_>) -> Result<Self> {
        Ok(self.same_backend(self.tensor.view(op)?))
    }
    /// Reshape (a view when possible).
    pub fn reshape(&self, shape: &[isize]) -> Result<Self> {
        self.view(&ViewOp::Reshape(shape))
    }
    /// Swap two axes.
    pub fn transpose(&self, a: isize, b: isize) -> Result<Self> {
        self.view(&ViewOp::Transpose(a, b))
    }
    /// Reverse the axes.
    pub fn t(&self) -> Self {
        // Reversing the axes of a valid layout cannot fail.
        self.view(&ViewOp::ReverseAxes)
            .unwrap_or_else(|_| self.clone())
    }
    /// Reorder the axes.
    pub fn permute(&self, perm: &[isize]) -> Result<Self> {
        self.view(&ViewOp::Permute(perm))
    }
    /// Slice one axis.
    pub fn slice(
        &self,
        axis: isize,
        start: Option<isize>,
        stop: Option<isize>,
        step: isize,
    ) -> Result<Self> {
        self.view(&ViewOp::Slice {
            axis,
            start,
            stop,
            step,
        })
    }
    /// Index one axis, dropping it.
    pub fn select(&self, axis: isize, index: isize) -> Result<Self> {
        self.view(&ViewOp::Select { axis, index })
    }
    /// Broadcast to a shape.
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Self> {
        self.view(&ViewOp::BroadcastTo(shape))
    }
    /// Remove size-1 axes.
    pub fn squeeze(&self, axis: Option<isize>) -> Result<Self> {
        self.view(&ViewOp::Squeeze(axis))
    }
    /// Insert a size-1 axis.
    pub fn unsqueeze(&self, axis: isize) -> Result<Self> {
        self.view(&ViewOp::Unsqueeze(axis))
    }
    /// Convert the dtype.
    pub fn cast(&self, dtype: DType) -> Result<Self> {
        Ok(self.same_backend(self.tensor.cast(dtype)?))
    }
    /// Materialise as contiguous.
    pub fn contiguous(&self) -> Result<Self> {
        Ok(self.same_backend(self.tensor.contiguous()?))
    }

    // ---- transfer -----------------------------------------------------------------------------

    /// The values on the host.
    pub fn to_host(&self) -> Result<HostArray> {
        self.tensor.to_host()
    }
    /// The values on the host, converted to `dtype` in the same pass.
    pub fn to_host_as(&self, dtype: DType) -> Result<HostArray> {
        self.tensor.to_host_as(dtype)
    }
    /// The values written into a caller's buffer of the same shape (any strides), converted to
    /// `T`.
    pub fn to_host_into<T: Element>(&self, out: &mut ArrayViewMutD<'_, T>) -> Result<()> {
        self.tensor.to_host_into(T::wrap_view_mut(out.view_mut()))
    }
    /// The values written in C order into `out`, converted to `dtype`, which is exactly
    /// `elem_count * dtype.size_in_bytes()` bytes aligned for `dtype` and may be uninitialised
    /// (every byte is written, none read): a new NumPy array's buffer, a pinned staging area.
    /// [`Error::ShapeMismatch`] for another length, [`Error::InvalidArgument`] for a misaligned
    /// buffer.
    pub fn to_host_into_contiguous(&self, dtype: DType, out: &mut [MaybeUninit<u8>]) -> Result<()> {
        self.tensor.to_host_into_contiguous(dtype, out)
    }

    /// The same values on another backend and/or device. Nothing moves between a deferred
    /// backend and the eager one it records for (a deferred leaf shares the eager storage; an
    /// evaluated deferred tensor hands over its value); anything else is one copy through the
    /// host.
    pub fn to(&self, backend: &'static BackendEntry, device: &Device) -> Result<Self> {
        if std::ptr::eq(backend, self.backend) && *device == self.device() {
            return Ok(self.clone());
        }
        backend.check_device(device)?;
        if *device == self.device() {
            if let Some(deferred) = backend.deferred() {
                if let Some(lifted) = deferred.lift(self)? {
                    return Ok(lifted);
                }
            }
            if let Some(deferred) = self.backend.deferred() {
                let value = deferred.evaluate(self)?;
                if std::ptr::eq(value.backend, backend) {
                    return Ok(value);
                }
            }
        }
        backend.tensor_from_host(self.to_host()?, device)
    }

    // ---- deferred execution -------------------------------------------------------------------

    /// True for tensors of a deferred (lazy) backend.
    pub fn is_deferred(&self) -> bool {
        self.backend.deferred().is_some()
    }
    /// True when the values exist (always, for eager tensors); nothing is computed by asking.
    pub fn is_evaluated(&self) -> bool {
        match self.backend.deferred() {
            Some(d) => d.is_evaluated(self),
            None => true,
        }
    }
    /// Computes the values of a deferred tensor now (implicitly, on its own device); a no-op
    /// for eager tensors and evaluated ones.
    pub fn evaluate(&self) -> Result<()> {
        if self.is_evaluated() {
            return Ok(());
        }
        self.synchronize()
    }
    /// The pending computation of an unevaluated deferred tensor as one expression; `None`
    /// otherwise.
    pub fn pending_expression(&self) -> Option<String> {
        let d = self.backend.deferred()?;
        if d.is_evaluated(self) {
            return None;
        }
        Some(d.expression(self))
    }
    /// The graph behind a deferred tensor, as text or Graphviz DOT; an error for eager tensors.
    pub fn graph(&self, dot: bool) -> Result<String> {
        match self.backend.deferred() {
            Some(d) => Ok(d.graph(self, dot)),
            None => Err(Error::InvalidArgument(format!(
                "graph(): the tensor is on the eager backend {} and has no graph; make it lazy \
                 with .to(backend='lazy:{}') or tb.lazy(...)",
                self.backend.name(),
                self.backend.name()
            ))),
        }
    }
}

impl<B: Backend> TryFrom<Tensor<B>> for AnyTensor {
    type Error = Error;

    fn try_from(t: Tensor<B>) -> Result<Self> {
        AnyTensor::new(t)
    }
}
