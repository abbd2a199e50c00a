//! # tensorbridge-candle
//!
//! The candle backend of tensorbridge (registered as `"candle"`), on `candle-core`: storage is a
//! flat candle tensor on candle's CPU device (`Device::Cpu`, always compiled, so the conformance
//! suite exercises every op of this crate in CI without a GPU) or on a CUDA device
//! (`Device::Cuda(n)`, cargo feature `cuda`).
//! Ops run where the storage lives, through candle's kernels. The device → host path is this
//! crate's own (`transfer.rs`): the view is made contiguous on the device, so only its elements
//! cross the bus, then copied through pooled, page-locked, double-buffered staging buffers straight
//! into the caller's array — which may be a memory-mapped file larger than host RAM.
//!
//! It does not own dtype promotion, broadcasting or views (the core resolves those). CPU storage
//! is read in place ([`Backend::host_bytes`]: zero-copy `t.numpy()`, as on the `cpu` backend).
//! Device data reaches the host only through an explicit copy; its CUDA memory is exposed for
//! zero-copy export to device consumers (DLPack, `__cuda_array_interface__`) through
//! [`Backend::device_memory`].
//!
//! Dtypes: candle has no `uint16`, `uint64` or `int8`; those fail with
//! [`Error::UnsupportedDType`] naming the backend. `bool` is stored as candle `u8` (0/1), which is
//! what candle's comparisons produce. See [`SUPPORTED_DTYPES`].
//!
//! ```
//! use tensorbridge_core::{Device, Tensor};
//! use tensorbridge_candle::Candle;
//! // Device::Cpu runs on candle's CPU device; Device::Cuda(0) needs the `cuda` feature and a GPU.
//! let t = Tensor::<Candle>::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2], &Device::Cpu).unwrap();
//! let host = t.t().to_host_array::<f32>().unwrap();
//! assert_eq!(host.as_slice().unwrap(), &[1.0, 3.0, 2.0, 4.0]);
//! ```
#![warn(missing_docs)]

mod device;
pub mod transfer;

use std::mem::MaybeUninit;
use std::sync::Arc;

use candle_core::{DType as CDType, Tensor as CTensor};
use ndarray::ArrayViewMutD;
use tensorbridge_core::host::into_row_major_vec;
use tensorbridge_core::memory_guard::check_host_op;
use tensorbridge_core::{
    with_host_array, Backend, BinaryOp, CmpOp, DType, Device, DeviceKind, DeviceMemory, Element,
    Error, ExternalMemory, HostArray, Layout, ReduceOp, Result, Scalar, Tensor, UnaryOp,
};

/// The `candle-core` this backend is built on (for `from_candle`/`to_candle` users: one version,
/// no mismatch).
pub use candle_core;
pub use device::{cuda_device_count, cuda_is_compiled};

/// The tensorbridge dtypes this backend stores (every other one is [`Error::UnsupportedDType`]).
pub const SUPPORTED_DTYPES: [DType; 10] = [
    DType::Bool,
    DType::U8,
    DType::U32,
    DType::I16,
    DType::I32,
    DType::I64,
    DType::F16,
    DType::BF16,
    DType::F32,
    DType::F64,
];

/// Storage of the CUDA backend: a flat, contiguous candle tensor and the tensorbridge dtype it holds.
#[derive(Clone, Debug)]
pub struct Candle {
    data: CTensor,
    dtype: DType,
}

/// The candle dtype that stores `dtype`, or [`Error::UnsupportedDType`].
pub fn candle_dtype(dtype: DType) -> Result<CDType> {
    Ok(match dtype {
        DType::Bool | DType::U8 => CDType::U8,
        DType::U32 => CDType::U32,
        DType::I16 => CDType::I16,
        DType::I32 => CDType::I32,
        DType::I64 => CDType::I64,
        DType::F16 => CDType::F16,
        DType::BF16 => CDType::BF16,
        DType::F32 => CDType::F32,
        DType::F64 => CDType::F64,
        DType::U16 | DType::U64 | DType::I8 => {
            return Err(Error::UnsupportedDType {
                op: "the candle backend (candle-core has no such type; use backend='cpu' or \
                     'torch', or cast first)",
                dtype,
            })
        }
    })
}

/// A candle failure as a backend error.
pub(crate) fn candle_err(e: candle_core::Error) -> Error {
    Error::Backend {
        backend: "candle",
        message: e.to_string(),
    }
}

/// `?` on candle results.
pub(crate) trait OrCandle<T> {
    fn or_candle(self) -> Result<T>;
}
impl<T> OrCandle<T> for candle_core::Result<T> {
    fn or_candle(self) -> Result<T> {
        self.map_err(candle_err)
    }
}

/// Calls `$body` with `$t` bound to the Rust element type candle stores for the candle dtype `$d`.
macro_rules! with_candle_type {
    ($d:expr, $t:ident => $body:expr) => {
        match $d {
            candle_core::DType::U8 => {
                type $t = u8;
                $body
            }
            candle_core::DType::U32 => {
                type $t = u32;
                $body
            }
            candle_core::DType::I16 => {
                type $t = i16;
                $body
            }
            candle_core::DType::I32 => {
                type $t = i32;
                $body
            }
            candle_core::DType::I64 => {
                type $t = i64;
                $body
            }
            candle_core::DType::F16 => {
                type $t = half::f16;
                $body
            }
            candle_core::DType::BF16 => {
                type $t = half::bf16;
                $body
            }
            candle_core::DType::F32 => {
                type $t = f32;
                $body
            }
            candle_core::DType::F64 => {
                type $t = f64;
                $body
            }
            other => {
                return Err(Error::Backend {
                    backend: "candle",
                    message: format!("candle dtype {other:?} has no tensorbridge dtype"),
                })
            }
        }
    };
}
pub(crate) use with_candle_type;

impl Candle {
    fn new(data: CTensor, dtype: DType) -> Result<Self> {
        let data = if data.rank() == 1 {
            data
        } else {
            data.flatten_all().or_candle()?
        };
        Ok(Candle { data, dtype })
    }

    /// The flat candle tensor holding the storage (contiguous, one dimension).
    pub fn candle(&self) -> &CTensor {
        &self.data
    }

    /// The elements `layout` selects, as a new or shared contiguous candle tensor of its shape.
    /// Only the view's elements are read; nothing leaves the device.
    pub fn view_as_contiguous(&self, layout: &Layout) -> Result<CTensor> {
        transfer::contiguous_view(&self.data, layout)
    }

    fn zeros_like(x: &CTensor) -> Result<CTensor> {
        x.zeros_like().or_candle()
    }
}

/// The device address of a candle CUDA allocation's first element.
#[cfg(feature = "cuda")]
fn cuda_base_address(c: &candle_core::CudaStorage) -> Result<usize> {
    use candle_core::backend::BackendStorage;
    use cudarc::driver::DevicePtr;
    let stream = c.device.cuda_stream();
    with_candle_type!(c.dtype(), S => {
        let slice = c.as_cuda_slice::<S>().or_candle()?;
        // The returned guard records a read event on the stream when dropped; consumers are
        // ordered by the exporter's synchronize() instead.
        let (ptr, _read) = slice.device_ptr(&stream);
        Ok(ptr as usize)
    })
}

fn device_of(t: &CTensor) -> Device {
    match t.device().location() {
        candle_core::DeviceLocation::Cuda { gpu_id } => Device::Cuda(gpu_id),
        _ => Device::Cpu,
    }
}

/// `value` as a one-element candle tensor of `dtype` on `like`'s device (for fills and `where`).
fn scalar_like(like: &CTensor, dtype: DType, value: f64) -> Result<CTensor> {
    let cd = candle_dtype(dtype)?;
    let dev = like.device();
    with_candle_type!(cd, T => {
        let v: T = host_element::<T>(dtype, value);
        CTensor::from_vec(vec![v], 1, dev).or_candle()
    })
}

/// `v` converted to the element stored for `dtype` (bool: 0 or 1).
fn host_element<T: Element>(dtype: DType, v: f64) -> T {
    if dtype == DType::Bool {
        return T::from_f64(if v != 0.0 { 1.0 } else { 0.0 });
    }
    T::from_f64(v)
}

fn is_signed_int(d: DType) -> bool {
    matches!(d, DType::I16 | DType::I32 | DType::I64)
}

/// NumPy semantics for the kinds candle's kernels do not cover: wrapping integer negation
/// (`0 - x`), integer absolute value (`where(x < 0, -x, x)`), unsigned `abs` (identity).
fn unary_op(x: &CTensor, dtype: DType, op: UnaryOp) -> Result<CTensor> {
    match op {
        UnaryOp::Neg if dtype.is_float() => x.neg().or_candle(),
        UnaryOp::Neg => Candle::zeros_like(x)?.sub(x).or_candle(),
        UnaryOp::Abs if dtype.is_float() => x.abs().or_candle(),
        UnaryOp::Abs if is_signed_int(dtype) => {
            let zero = Candle::zeros_like(x)?;
            let neg = zero.sub(x).or_candle()?;
            x.lt(&zero).or_candle()?.where_cond(&neg, x).or_candle()
        }
        UnaryOp::Abs => Ok(x.clone()),
        UnaryOp::Exp => x.exp().or_candle(),
        UnaryOp::Log => x.log().or_candle(),
        UnaryOp::Sqrt => x.sqrt().or_candle(),
    }
}

fn binary_op(a: &CTensor, b: &CTensor, dtype: DType, op: BinaryOp) -> Result<CTensor> {
    match (op, dtype) {
        // NumPy: bool + is logical or, bool * logical and.
        (BinaryOp::Add, DType::Bool) => a.maximum(b).or_candle(),
        (BinaryOp::Mul, DType::Bool) => a.minimum(b).or_candle(),
        (BinaryOp::Add, _) => a.add(b).or_candle(),
        (BinaryOp::Sub, _) => a.sub(b).or_candle(),
        (BinaryOp::Mul, _) => a.mul(b).or_candle(),
        (BinaryOp::Div, _) => a.div(b).or_candle(),
    }
}

/// `[b.., m, k] @ [b.., k, n]`: cuBLAS/gemm for floats; for integers and bool (which BLAS lacks)
/// a broadcast product summed over `k` on the device, in the operands' wrapping arithmetic.
fn matmul_op(a: &CTensor, b: &CTensor, dtype: DType) -> Result<CTensor> {
    let r = a.rank();
    let (m, k, n) = (
        a.dim(r - 2).or_candle()?,
        a.dim(r - 1).or_candle()?,
        b.dim(r - 1).or_candle()?,
    );
    if dtype.is_float() && m > 0 && k > 0 && n > 0 {
        return a.matmul(b).or_candle();
    }
    let (a, b) = if dtype == DType::Bool {
        (
            a.to_dtype(CDType::I64).or_candle()?,
            b.to_dtype(CDType::I64).or_candle()?,
        )
    } else {
        (a.clone(), b.clone())
    };
    let prod = a
        .unsqueeze(r)
        .or_candle()?
        .broadcast_mul(&b.unsqueeze(r - 2).or_candle()?)
        .or_candle()?;
    let sum = prod.sum(r - 1).or_candle()?;
    if dtype == DType::Bool {
        return sum.ne(0i64).or_candle();
    }
    Ok(sum)
}

/// NumPy `max`/`min` propagate NaN: a lane with a NaN gives a NaN of the input, sign included.
/// candle's kernels skip NaN, so each such lane's result is replaced by its first NaN, read from
/// `x` bit for bit (a `-nan` stays negative; a NaN made here would be the positive one).
fn propagate_nan(x: &CTensor, reduced: CTensor, dim: usize, dtype: DType) -> Result<CTensor> {
    if !dtype.is_float() {
        return Ok(reduced);
    }
    let is_nan = x.ne(x).or_candle()?;
    let any_nan = is_nan.max(dim).or_candle()?;
    // argmax of a 0/1 mask is the index of its first 1 (candle keeps the first maximum).
    let first_nan = is_nan
        .argmax_keepdim(dim)
        .and_then(|i| x.gather(&i, dim))
        .and_then(|v| v.squeeze(dim))
        .or_candle()?;
    any_nan.where_cond(&first_nan, &reduced).or_candle()
}

impl Backend for Candle {
    const NAME: &'static str = "candle";
    const DEVICE_KINDS: &'static [DeviceKind] = if cfg!(feature = "cuda") {
        &[DeviceKind::Cpu, DeviceKind::Cuda]
    } else {
        &[DeviceKind::Cpu]
    };

    fn device(&self) -> Device {
        device_of(&self.data)
    }

    fn dtype(&self) -> DType {
        self.dtype
    }

    fn len(&self) -> usize {
        self.data.elem_count()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn from_host(device: &Device, data: HostArray) -> Result<Self> {
        let dtype = data.dtype();
        candle_dtype(dtype)?;
        let dev = device::candle_device(device)?;
        // The array's own buffer becomes candle's storage when it is row-major (what the core
        // hands over); otherwise one row-major copy first.
        check_host_op(&Device::Cpu, "from_host", data.shape(), dtype, 2)?;
        let t = with_host_array!(data, a => upload(into_row_major_vec(a), &dev)?);
        Candle::new(t, dtype)
    }

    fn full(device: &Device, len: usize, dtype: DType, value: Scalar) -> Result<Self> {
        let cd = candle_dtype(dtype)?;
        let dev = device::candle_device(device)?;
        check_host_op(device, "full", &[len], dtype, 1)?;
        let t = with_candle_type!(cd, T => {
            let v: T = if dtype == DType::Bool {
                T::from_f64(f64::from(u8::from(value.to_element::<bool>())))
            } else {
                value.to_element::<T>()
            };
            CTensor::full(v, len, &dev).or_candle()?
        });
        Candle::new(t, dtype)
    }

    fn unary(&self, layout: &Layout, op: UnaryOp) -> Result<Self> {
        // Candle's CPU allocations abort when refused: ask first (the gathered view and the result).
        check_host_op(&self.device(), "unary", layout.shape(), self.dtype, 2)?;
        let x = self.view_as_contiguous(layout)?;
        Candle::new(unary_op(&x, self.dtype, op)?, self.dtype)
    }

    fn binary(
        &self,
        layout: &Layout,
        rhs: &Self,
        rhs_layout: &Layout,
        op: BinaryOp,
    ) -> Result<Self> {
        check_host_op(&self.device(), "binary", layout.shape(), self.dtype, 3)?;
        let (a, b) = (
            self.view_as_contiguous(layout)?,
            rhs.view_as_contiguous(rhs_layout)?,
        );
        Candle::new(binary_op(&a, &b, self.dtype, op)?, self.dtype)
    }

    fn compare(&self, layout: &Layout, rhs: &Self, rhs_layout: &Layout, op: CmpOp) -> Result<Self> {
        check_host_op(&self.device(), "compare", layout.shape(), self.dtype, 3)?;
        let (a, b) = (
            self.view_as_contiguous(layout)?,
            rhs.view_as_contiguous(rhs_layout)?,
        );
        let r = match op {
            CmpOp::Eq => a.eq(&b),
            CmpOp::Lt => a.lt(&b),
            CmpOp::Gt => a.gt(&b),
        };
        Candle::new(r.or_candle()?, DType::Bool)
    }

    fn matmul(&self, layout: &Layout, rhs: &Self, rhs_layout: &Layout) -> Result<Self> {
        let mut out_shape = layout.shape().to_vec();
        if let (Some(last), Some(&n)) = (out_shape.last_mut(), rhs_layout.shape().last()) {
            *last = n;
        }
        check_host_op(&self.device(), "matmul", &out_shape, self.dtype, 1)?;
        let (a, b) = (
            self.view_as_contiguous(layout)?,
            rhs.view_as_contiguous(rhs_layout)?,
        );
        Candle::new(matmul_op(&a, &b, self.dtype)?, self.dtype)
    }

    fn reduce(
        &self,
        layout: &Layout,
        op: ReduceOp,
        axis: Option<usize>,
        out_dtype: DType,
    ) -> Result<Self> {
        // In `out_dtype` (the core asks for f64 for float sums and means: candle's own sums run
        // in the input's precision).
        let x = self.cast(layout, out_dtype)?.data;
        let (x, dim) = match axis {
            None => (x, 0),
            Some(a) => (x.reshape(layout.shape()).or_candle()?, a),
        };
        let count = x.dim(dim).or_candle()?;
        if x.elem_count() == 0 && matches!(op, ReduceOp::Max | ReduceOp::Min) {
            // The core has ruled out an empty reduced axis, so the result is empty too; candle's
            // max/min refuse empty input even then.
            let mut dims = x.dims().to_vec();
            dims.remove(dim);
            return Candle::new(
                CTensor::zeros(dims, x.dtype(), x.device()).or_candle()?,
                out_dtype,
            );
        }
        let r = match op {
            ReduceOp::Sum => x.sum(dim).or_candle()?,
            ReduceOp::Mean => {
                let s = x.sum(dim).or_candle()?;
                let n = scalar_like(&s, out_dtype, count as f64)?;
                s.broadcast_div(&n).or_candle()?
            }
            ReduceOp::Max => propagate_nan(&x, x.max(dim).or_candle()?, dim, out_dtype)?,
            ReduceOp::Min => propagate_nan(&x, x.min(dim).or_candle()?, dim, out_dtype)?,
        };
        Candle::new(r, out_dtype)
    }

    /// The core's casts bit for bit. To bool: `!= 0` on the device (exact). On candle's CPU
    /// device every other cast runs the core's fused copy-and-convert kernel over the storage
    /// (candle's own `to_dtype` rounds f64 → f16/bf16 wrongly, through `half`). On a CUDA device
    /// the conversions CUDA defines as exact or rounded once to nearest-even run there
    /// (`exact_on_device`); the rest (float → integer, which the core saturates; f64 → f16, which
    /// candle's kernels round through f32 where NumPy rounds once; f64 → bf16 and integer →
    /// f16/bf16, where the core's rounding is ml_dtypes' and CUDA's intrinsics differ) are
    /// converted on the host by the core and uploaded again.
    fn cast(&self, layout: &Layout, dtype: DType) -> Result<Self> {
        let target = candle_dtype(dtype)?;
        if dtype == self.dtype {
            return Candle::new(self.view_as_contiguous(layout)?, dtype);
        }
        if dtype == DType::Bool {
            let x = self.view_as_contiguous(layout)?;
            return Candle::new(x.ne(&Candle::zeros_like(&x)?).or_candle()?, dtype);
        }
        check_host_op(
            &self.device(),
            "cast",
            layout.shape(),
            if dtype.size_in_bytes() >= self.dtype.size_in_bytes() {
                dtype
            } else {
                self.dtype
            },
            2,
        )?;
        let on_gpu = matches!(self.device(), Device::Cuda(_));
        if on_gpu && exact_on_device(self.dtype, dtype) {
            let x = self.view_as_contiguous(layout)?;
            return Candle::new(x.to_dtype(target).or_candle()?, dtype);
        }
        let host = self.to_host(layout, dtype)?;
        Candle::from_host(&self.device(), host)
    }

    fn contiguous(&self, layout: &Layout) -> Result<Self> {
        check_host_op(&self.device(), "contiguous", layout.shape(), self.dtype, 1)?;
        Candle::new(self.view_as_contiguous(layout)?, self.dtype)
    }

    fn to_host(&self, layout: &Layout, dtype: DType) -> Result<HostArray> {
        transfer::to_host(self, layout, dtype)
    }

    fn into_host(self, layout: &Layout, dtype: DType) -> Result<HostArray> {
        // Device memory cannot become a host array in place: copy the view.
        transfer::to_host(&self, layout, dtype)
    }

    fn to_host_into<T: Element>(
        &self,
        layout: &Layout,
        out: &mut ArrayViewMutD<'_, T>,
    ) -> Result<()> {
        transfer::to_host_into(self, layout, out)
    }

    fn to_host_into_contiguous<T: Element>(
        &self,
        layout: &Layout,
        out: &mut [MaybeUninit<T>],
    ) -> Result<()> {
        transfer::to_host_into_contiguous(self, layout, out)
    }

    /// The bytes of the storage on candle's CPU device (zero-copy `t.numpy()`, `np.asarray(t)`,
    /// DLPack); `None` for CUDA storage.
    fn host_bytes(&self) -> Option<&[u8]> {
        let (storage, layout) = self.data.storage_and_layout();
        let candle_core::Storage::Cpu(c) = &*storage else {
            return None;
        };
        let (start, end) = layout.contiguous_offsets()?;
        let elements = |c: &candle_core::CpuStorage| -> Result<(*const u8, usize)> {
            with_candle_type!(self.data.dtype(), S => {
                let s = &c.as_slice::<S>().or_candle()?[start..end];
                Ok((s.as_ptr().cast::<u8>(), std::mem::size_of_val(s)))
            })
        };
        let (ptr, len) = elements(c).ok()?;
        // SAFETY: the slice outlives candle's read guard but not the memory: `self.data` (borrowed
        // for the slice's lifetime) holds the `Arc` of candle's storage, whose CPU `Vec` is never
        // reallocated or freed while that `Arc` lives. The guard only excludes candle's in-place
        // writers (`slice_set`, `const_set`, `scatter_set`, in-place custom ops, `Var::set`); this
        // crate never calls them (tensors are immutable), and storage shared with a caller's
        // candle tensor through `from_candle`/`to_candle` must not be written in place while
        // tensorbridge reads it (documented there, as for `from_tch`). A `Bool` storage holds only
        // 0/1 bytes: candle's comparisons, `cast` and `from_host` write nothing else.
        Some(unsafe { std::slice::from_raw_parts(ptr, len) })
    }

    /// The CUDA memory of the storage (candle keeps every op's result in its own allocation;
    /// the flat tensor may start at an offset into it). `None` on candle's CPU device, whose
    /// storage is read through [`Backend::host_bytes`].
    fn device_memory(&self) -> Option<DeviceMemory> {
        #[cfg(feature = "cuda")]
        {
            let (storage, layout) = self.data.storage_and_layout();
            let candle_core::Storage::Cuda(c) = &*storage else {
                return None;
            };
            let base = cuda_base_address(c).ok()?;
            let item = self.dtype.size_in_bytes();
            Some(DeviceMemory {
                ptr: (base + layout.start_offset() * item) as *const u8,
                len_bytes: self.data.elem_count() * item,
                device: device_of(&self.data),
            })
        }
        #[cfg(not(feature = "cuda"))]
        None
    }

    /// candle cannot wrap memory it did not allocate (its CUDA storage owns and frees its
    /// allocation), so foreign memory is always copied in: `Ok(None)`.
    unsafe fn from_external(_memory: ExternalMemory) -> Result<Option<Self>> {
        Ok(None)
    }

    fn synchronize(&self) -> Result<()> {
        self.data.device().synchronize().or_candle()
    }
}

/// The tensorbridge dtype of a candle dtype (`U8` is `uint8`: candle has no bool), or
/// [`Error::Unsupported`] naming it (candle's 8-bit float formats).
pub fn dtype_of_candle(d: CDType) -> Result<DType> {
    Ok(match d {
        CDType::U8 => DType::U8,
        CDType::U32 => DType::U32,
        CDType::I16 => DType::I16,
        CDType::I32 => DType::I32,
        CDType::I64 => DType::I64,
        CDType::F16 => DType::F16,
        CDType::BF16 => DType::BF16,
        CDType::F32 => DType::F32,
        CDType::F64 => DType::F64,
        other => {
            return Err(Error::Unsupported(format!(
                "the candle backend has no dtype for candle's {other:?}; convert it with \
                 to_dtype() first"
            )))
        }
    })
}

/// A candle tensor as a tensorbridge tensor on the same device, sharing candle's storage when the
/// tensor is contiguous (else one copy by candle, `contiguous()`). candle has no bool: its `U8`
/// arrives as `uint8`.
///
/// Shared storage is read in place (host arrays of CPU tensors are views of it), so it must not
/// be written in place through candle (`slice_set`, `const_set`, `Var::set`, in-place custom ops)
/// while the tensorbridge tensor or a view exported from it lives — as for any zero-copy import
/// (as with `torch.from_numpy`, whose tensor shares the NumPy array).
///
/// ```
/// use tensorbridge_candle::{from_candle, to_candle};
/// let c = candle_core::Tensor::arange(0f32, 6., &candle_core::Device::Cpu)?.reshape((2, 3))?;
/// let t = from_candle(&c)?;                      // shares candle's storage
/// let host = t.t().to_host_array::<f32>()?;     // the transposed view, into ndarray
/// assert_eq!(host[[2, 1]], 5.0);
/// let back = to_candle(&t)?;                     // and back, still the same storage
/// assert_eq!(back.to_vec2::<f32>()?, c.to_vec2::<f32>()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn from_candle(t: &CTensor) -> Result<Tensor<Candle>> {
    let dtype = dtype_of_candle(t.dtype())?;
    let shape = t.dims().to_vec();
    let data = if t.is_contiguous() {
        t.clone()
    } else {
        t.contiguous().or_candle()?
    };
    let flat = data.flatten_all().or_candle()?;
    Tensor::from_storage(
        Arc::new(Candle::new(flat, dtype)?),
        Layout::contiguous(&shape),
    )
}

/// A tensorbridge tensor as a candle tensor of its shape: the same storage when the view is the
/// whole storage in order, else one copy of only the view's elements, made by candle on the
/// tensor's device. `bool` arrives as candle `U8` (0/1).
pub fn to_candle(t: &Tensor<Candle>) -> Result<CTensor> {
    t.storage()
        .view_as_contiguous(t.layout())?
        .reshape(t.shape())
        .or_candle()
}

/// Casts whose CUDA conversion is the core's: integer → integer (C++ conversions keep the low
/// bits), integer and bool → f32/f64 (`cvt.rn`: one rounding to nearest-even), exact widenings
/// between floats, and f64 → f32 and f32 → f16/bf16 (`cvt.rn`, `__float2half_rn`,
/// `__float2bfloat16_rn`). bool sources hold 0/1 as u8, so they are integers here.
fn exact_on_device(from: DType, to: DType) -> bool {
    use DType::*;
    let int = |d: DType| !d.is_float();
    match (from, to) {
        (f, t) if int(f) && int(t) => true,
        (f, F32 | F64) if int(f) => true,
        (F16 | BF16 | F32, F32 | F64) | (F64, F32) | (F32, F16 | BF16) => true,
        _ => false,
    }
}

/// Uploads host elements as a flat candle tensor: `v` itself when candle stores the element type
/// as it is (every dtype but bool, stored as u8), else converted.
fn upload<T: Element>(v: Vec<T>, dev: &candle_core::Device) -> Result<CTensor> {
    let n = v.len();
    let cd = candle_dtype(T::DTYPE)?;
    with_candle_type!(cd, S => {
        let mut v = Some(v);
        let conv: Vec<S> = match (&mut v as &mut dyn std::any::Any).downcast_mut::<Option<Vec<S>>>() {
            Some(same) => same.take().unwrap_or_default(),
            None => v.iter().flatten().map(|&x| tensorbridge_core::cast_element::<T, S>(x)).collect(),
        };
        CTensor::from_vec(conv, n, dev).or_candle()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtypes_candle_lacks_are_unsupported_with_the_backend_named() {
        for d in [DType::U16, DType::U64, DType::I8] {
            let e = Tensor::<Candle>::zeros(&[2], d, &Device::Cpu).unwrap_err();
            assert!(matches!(e, Error::UnsupportedDType { .. }), "{e}");
            assert!(e.to_string().contains("candle backend"), "{e}");
        }
        for d in SUPPORTED_DTYPES {
            assert!(
                Tensor::<Candle>::zeros(&[2], d, &Device::Cpu).is_ok(),
                "{d}"
            );
        }
    }

    #[test]
    fn bool_is_stored_as_zero_or_one_and_reads_back_as_bool() {
        let t = Tensor::<Candle>::from_slice(&[true, false, true], &[3], &Device::Cpu).unwrap();
        assert_eq!(t.storage().candle().dtype(), CDType::U8);
        let h = t.to_host_array::<bool>().unwrap();
        assert_eq!(h.as_slice().unwrap(), &[true, false, true]);
    }

    /// The storage address of a candle CPU tensor's first element.
    fn cpu_ptr(t: &CTensor) -> usize {
        let (storage, layout) = t.storage_and_layout();
        match &*storage {
            candle_core::Storage::Cpu(candle_core::CpuStorage::F32(v)) => {
                v[layout.start_offset()..].as_ptr() as usize
            }
            _ => 0,
        }
    }

    #[test]
    fn from_candle_and_to_candle_share_the_storage() {
        let c = CTensor::arange(0f32, 12., &candle_core::Device::Cpu)
            .unwrap()
            .reshape((3, 4))
            .unwrap();
        let t = from_candle(&c).unwrap();
        assert_eq!(t.shape(), &[3, 4]);
        assert_eq!(cpu_ptr(t.storage().candle()), cpu_ptr(&c));
        let back = to_candle(&t).unwrap();
        assert_eq!(cpu_ptr(&back), cpu_ptr(&c));
        assert_eq!(back.dims(), &[3, 4]);
        // A view comes back as a copy of its own elements, in its own shape.
        let v = to_candle(&t.t().slice(0, Some(1), None, 2).unwrap()).unwrap();
        assert_eq!(
            v.to_vec2::<f32>().unwrap(),
            vec![vec![1.0, 5.0, 9.0], vec![3.0, 7.0, 11.0]]
        );
        // Non-contiguous candle tensors are made contiguous by candle (one copy).
        let tc = from_candle(&c.t().unwrap()).unwrap();
        assert_eq!(tc.to_host_array::<f32>().unwrap()[[3, 2]], 11.0);
    }

    #[test]
    fn cpu_storage_is_read_in_place_from_its_offset_for_every_element_size() {
        // A narrow of candle's storage starts at an offset: the bytes start there, not at 0.
        let c = CTensor::arange(0f32, 12., &candle_core::Device::Cpu).unwrap();
        let t = from_candle(&c.narrow(0, 5, 4).unwrap()).unwrap();
        let bytes = t.storage().host_bytes().unwrap();
        assert_eq!(bytes.as_ptr() as usize, cpu_ptr(&c) + 5 * 4);
        assert_eq!(
            t.host_view::<f32>().unwrap().as_slice().unwrap(),
            &[5.0, 6.0, 7.0, 8.0]
        );
        let b = Tensor::<Candle>::from_slice(&[true, false, true], &[3], &Device::Cpu).unwrap();
        assert_eq!(b.storage().host_bytes().unwrap(), &[1, 0, 1]);
        let h = Tensor::<Candle>::from_slice(&[1.5f64, -2.0], &[2], &Device::Cpu).unwrap();
        let expected: Vec<u8> = [1.5f64, -2.0]
            .iter()
            .flat_map(|x| x.to_ne_bytes())
            .collect();
        assert_eq!(h.storage().host_bytes().unwrap(), expected.as_slice());
        // Strided views read the same storage in place.
        let m =
            Tensor::<Candle>::from_slice(&[1i32, 2, 3, 4, 5, 6], &[2, 3], &Device::Cpu).unwrap();
        assert_eq!(m.t().host_view::<i32>().unwrap()[[2, 1]], 6);
        let empty = Tensor::<Candle>::from_slice::<f32>(&[], &[0], &Device::Cpu).unwrap();
        assert_eq!(empty.storage().host_bytes().unwrap(), &[] as &[u8]);
    }

    #[test]
    fn host_arrays_of_any_layout_become_storage_in_row_major_order() {
        use ndarray::{s, Array2};
        let a = Array2::from_shape_vec((2, 3), vec![0i32, 1, 2, 3, 4, 5]).unwrap();
        let read = |h: HostArray| {
            let c = Candle::from_host(&Device::Cpu, h).unwrap();
            c.host_bytes()
                .unwrap()
                .chunks(4)
                .map(|b| i32::from_ne_bytes(b.try_into().unwrap()))
                .collect::<Vec<_>>()
        };
        // Row-major from the start: the buffer itself becomes candle's storage.
        assert_eq!(
            read(HostArray::from(a.clone().into_dyn())),
            [0, 1, 2, 3, 4, 5]
        );
        // Transposed (F-order) and starting past the buffer's start: one row-major copy.
        assert_eq!(
            read(HostArray::from(a.clone().reversed_axes().into_dyn())),
            [0, 3, 1, 4, 2, 5]
        );
        assert_eq!(
            read(HostArray::from(a.slice_move(s![1.., 1..]).into_dyn())),
            [4, 5]
        );
        let b = ndarray::arr1(&[true, false, true]).into_dyn();
        let c = Candle::from_host(&Device::Cpu, HostArray::from(b)).unwrap();
        assert_eq!(c.host_bytes().unwrap(), &[1, 0, 1]);
    }

    #[test]
    fn candle_dtypes_without_a_tensorbridge_dtype_are_refused_by_name() {
        let c = CTensor::zeros(2, CDType::F8E4M3, &candle_core::Device::Cpu).unwrap();
        let e = from_candle(&c).unwrap_err().to_string();
        assert!(e.contains("F8E4M3"), "{e}");
    }
}
