//! # tensorbridge-torch
//!
//! The libtorch backend (through `tch` 0.24 = libtorch 2.11): storage is a flat libtorch tensor on
//! `cpu` or `cuda:N`, every op of the core [`Backend`] trait runs as libtorch kernels, and host
//! transfer follows the same contract as every other backend. It owns the libtorch glue (kinds,
//! exact casts, loading `libtorch_cuda`, the device→host path); dtype rules, broadcasting and
//! views stay in `tensorbridge-core`.
//!
//! What it fixes compared with using tch directly:
//! - bf16 is bf16 (tch maps `half::bf16` to `Kind::Half`, tch #995): kinds are mapped here, and
//!   uint16/32/64, which tch cannot name, are stored in the signed kind of the same width with
//!   unsigned semantics given by this crate;
//! - CUDA is found when present (tch drops `libtorch_cuda` at link time, tch #907/#980): it is
//!   loaded when a CUDA device is first asked for ([`cuda::load_libtorch_cuda`]);
//! - host transfer copies once, into memory nobody zero-filled first; a contiguous CPU tensor is
//!   read in place ([`Backend::host_bytes`]), so the Python `.numpy()` is zero-copy;
//! - tensors from PyTorch that require grad are taken detached (`from_tch`).
//!
//! ```no_run
//! use tensorbridge_core::{Device, Tensor};
//! use tensorbridge_torch::Torch;
//! let t = Tensor::<Torch>::from_slice(&[1.5f32, 2.0, 4.0, 8.0], &[2, 2], &Device::Cpu).unwrap();
//! let host = (&t * 2.0).unwrap().t().to_host_array::<f32>().unwrap();
//! assert_eq!(host.as_slice().unwrap(), &[3.0, 8.0, 4.0, 16.0]);
//! ```
#![warn(missing_docs)]

pub mod cuda;
mod kinds;
mod transfer;

use std::any::Any;
use std::mem::MaybeUninit;
use std::sync::{Arc, OnceLock};

use ndarray::ArrayViewMutD;
use tch::{Kind, Tensor as TchTensor};
use tensorbridge_core::host::bool_bytes_are_canonical;
use tensorbridge_core::memory_guard::check_host_op;
use tensorbridge_core::{
    with_dtype, with_host_array, Backend, BinaryOp, CmpOp, DType, DTypeKind, Device, DeviceKind,
    DeviceMemory, Element, Error, ExternalMemory, HostArray, Layout, ReduceOp, Result, Scalar,
    Tensor, UnaryOp,
};

pub use kinds::{dtype_of_kind, storage_kind};
use kinds::{flip_sign, signed_storage, OrTch};

/// An f32 result rounded to bfloat16 as NumPy (ml_dtypes) rounds it: to nearest even, every NaN
/// the quiet NaN `0x7fc0` with the f32 NaN's sign ([`kinds::cast`]). bfloat16 arithmetic (`+ - *
/// /`, `@`) is computed in f32 and rounded by this, as ml_dtypes and the CPU backend compute it:
/// libtorch's own bfloat16 kernels also compute in f32 but round every NaN to the positive
/// `0x7fc0`, so `0 / 0`, `inf - inf` and `0 * inf` lost the sign NumPy gives them.
fn bf16_from_f32(r: &TchTensor) -> Result<TchTensor> {
    kinds::cast(r, DType::F32, DType::BF16)
}
/// The NaN this machine's floating-point unit writes for an invalid operation (`0 / 0`,
/// `sqrt(-1)`): negative on x86 (`0xfff8...`), positive on Arm. NumPy's `sqrt` and `log` of a
/// negative number return it, through the hardware or the C library; libtorch's kernels return
/// the positive NaN on every machine.
fn invalid_operation_nan() -> f64 {
    // Computed at run time (not folded by the compiler, which would write the positive NaN).
    let (zero, also_zero) = std::hint::black_box((0.0_f64, 0.0_f64));
    zero / also_zero
}

/// True when [`float_unary`] computes `op` of `dtype` values on `device` in f64 (float32 `sqrt`
/// on the CPU, see there): the one place that says so, for it and for the memory checks that
/// count the f64 buffers it holds.
fn sqrt_in_f64(op: UnaryOp, dtype: DType, device: &Device) -> bool {
    op == UnaryOp::Sqrt && dtype == DType::F32 && *device == Device::Cpu
}

/// `op` of a float tensor `x` of `dtype` (f16, f32 or f64 storage), with NumPy's answers where
/// libtorch's differ:
/// - `sqrt` and `log` of a number below zero (`-inf` included) give [`invalid_operation_nan`],
///   where libtorch gives the positive NaN; a NaN input stays that NaN.
/// - float32 `sqrt` on the CPU is computed in f64 and rounded once: libtorch's CPU float32 sqrt
///   is not correctly rounded (one ulp off for about 1 input in 6, and, in this project's test
///   runs with other threads using libtorch, now and then ~3e-4 off (relative) from element 2048
///   on, its parallel chunk size). The f64 square root rounded to f32 is correctly rounded
///   (53 >= 2 * 24 + 2 bits): NumPy's and the CPU backend's answer, bit for bit.
fn float_unary(x: &TchTensor, dtype: DType, device: &Device, op: UnaryOp) -> Result<TchTensor> {
    let r = match op {
        UnaryOp::Neg => x.f_neg(),
        UnaryOp::Abs => x.f_abs(),
        UnaryOp::Exp => x.f_exp(),
        UnaryOp::Log => x.f_log(),
        UnaryOp::Sqrt if sqrt_in_f64(op, dtype, device) => x
            .f_to_kind(Kind::Double)
            .and_then(|d| d.f_sqrt())
            .and_then(|d| d.f_to_kind(Kind::Float)),
        UnaryOp::Sqrt => x.f_sqrt(),
    }
    .or_tch()?;
    if matches!(op, UnaryOp::Log | UnaryOp::Sqrt) && x.numel() > 0 {
        // On the CPU one reduction decides: with no input below zero (or NaN, which hides one
        // from `amin`) there is nothing to fix, and the mask is not made. On a GPU, reading that
        // reduction back would make every `sqrt`/`log` wait for the device (libtorch's own do
        // not): the mask is always made there, queued behind the op like the op itself.
        let refill = match device {
            Device::Cpu => {
                let lowest = x
                    .f_amin(&[] as &[i64], false)
                    .and_then(|m| m.f_double_value(&[]))
                    .or_tch()?;
                lowest.is_nan() || lowest < 0.0
            }
            _ => true,
        };
        if refill {
            let below_zero = x.f_lt(0i64).or_tch()?;
            return r
                .f_masked_fill(&below_zero, invalid_operation_nan())
                .or_tch();
        }
    }
    Ok(r)
}

/// `reduced` (`amax`/`amin` of float `x` over `axis`, or over all of it), with each NaN
/// replaced by the first NaN of its lane of `x`, bit for bit: NumPy's `max`/`min` return a NaN
/// of the input, sign included, where libtorch's write the positive NaN (a `-nan` input gave
/// `+nan`). On the CPU, when no result is NaN this costs reading the one result back, or one
/// `isnan` and `any` over the results. On a GPU nothing is read back (that would make every
/// `max`/`min` wait for the device, which libtorch's do not): the lookup is always queued.
fn with_input_nan(x: &TchTensor, reduced: TchTensor, axis: Option<usize>) -> Result<TchTensor> {
    let on_cpu = x.device() == tch::Device::Cpu;
    if on_cpu && reduced.numel() == 1 && !reduced.f_double_value(&[]).or_tch()?.is_nan() {
        return Ok(reduced);
    }
    let reduced_nan = reduced.f_isnan().or_tch()?;
    if on_cpu
        && reduced_nan
            .f_any()
            .and_then(|a| a.f_int64_value(&[]))
            .or_tch()?
            == 0
    {
        return Ok(reduced);
    }
    let (x, dim) = match axis {
        None => (x.f_reshape([-1]).or_tch()?, 0),
        Some(a) => (x.shallow_clone(), a as i64),
    };
    // argmax of a 0/1 mask is the index of its first 1.
    let first_nan = x
        .f_isnan()
        .and_then(|m| m.f_to_kind(Kind::Uint8))
        .and_then(|m| m.f_argmax(dim, true))
        .and_then(|i| x.f_gather(dim, &i, false))
        .and_then(|v| v.f_squeeze_dim(dim))
        .or_tch()?;
    first_nan.f_where_self(&reduced_nan, &reduced).or_tch()
}

/// The `tch` this backend is built on (for `from_tch`/`to_tch` users: one version, no mismatch).
pub use tch;

/// Storage of the torch backend: a 1-D contiguous libtorch tensor (in [`storage_kind`] of its
/// dtype) on one device, plus whatever keeps borrowed memory alive.
pub struct Torch {
    data: TchTensor,
    dtype: DType,
    device: Device,
    /// Keeps memory that `data` borrows (a host array, a Python object) alive; dropped after
    /// `data` (field order).
    _owner: Option<Arc<dyn Any + Send + Sync>>,
    /// `data`'s first element's address and element count, asked of libtorch once (each ask is
    /// an FFI call, `numel` one that allocates the shape; every conversion needs both). `data`
    /// never changes after construction, so neither does this.
    extent: OnceLock<(usize, usize)>,
}

// SAFETY: `&Torch` only ever runs functional libtorch ops on `data` (never in-place ones), which
// read the tensor and allocate new results; ATen's reference counts are atomic and concurrent reads
// of one tensor are safe. The owner is `Send + Sync` itself.
unsafe impl Sync for Torch {}

impl std::fmt::Debug for Torch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Torch")
            .field("dtype", &self.dtype)
            .field("device", &self.device)
            .field("len", &self.data.numel())
            .finish()
    }
}

impl Torch {
    /// Wraps a libtorch result as storage of `dtype` on `device` (made contiguous and flat).
    fn wrap(t: TchTensor, dtype: DType, device: Device) -> Result<Self> {
        if !t.is_contiguous() {
            // libtorch gathers a strided (or expanded) result into new memory here.
            let shape: Vec<usize> = t.size().iter().map(|&d| d.max(0) as usize).collect();
            check_host_op(&device, "contiguous", &shape, dtype, 1)?;
        }
        let data = t.f_contiguous().and_then(|c| c.f_reshape([-1])).or_tch()?;
        Ok(Torch {
            data,
            dtype,
            device,
            _owner: None,
            extent: OnceLock::new(),
        })
    }

    /// Wraps an op's result. Some results are views of this storage (a contiguous view, a cast
    /// between dtypes of the same storage kind, `abs` of unsigned values); those must keep our
    /// borrowed memory alive too, or they would outlive it.
    fn result(&self, t: TchTensor, dtype: DType) -> Result<Self> {
        let mut out = Self::wrap(t, dtype, self.device)?;
        if self.aliases(&out) {
            out._owner = self._owner.clone();
        }
        Ok(out)
    }

    /// True when `other`'s first element lies inside this storage's memory.
    fn aliases(&self, other: &Torch) -> bool {
        let start = self.data_ptr() as usize;
        let end = start + self.len() * self.dtype.size_in_bytes();
        let p = other.data_ptr() as usize;
        other.len() > 0 && start <= p && p < end
    }

    /// Storage over `len` elements of `dtype` at `ptr` in memory of `device`, read in place and
    /// kept alive by `owner`.
    ///
    /// **bool:** the memory may hold any byte (NumPy, PyTorch and DLPack producers treat every
    /// non-zero byte as True); only 0 and 1 may be read as `bool`. So for dtype bool the bytes
    /// are checked first (on the host with
    /// [`bool_bytes_are_canonical`](tensorbridge_core::host::bool_bytes_are_canonical), on a GPU
    /// with one reduction `any(byte > 1)`): 0/1 memory is shared in place, anything else becomes
    /// one normalised copy (`byte != 0`) and `owner` is released.
    ///
    /// # Safety
    /// `ptr` must point to `len` initialised elements of `dtype` (for bool: bytes of any value),
    /// aligned for it, in memory of `device` (host memory for `Device::Cpu`, device memory of that
    /// GPU otherwise), valid and unmodified for as long as `owner` lives.
    pub unsafe fn from_raw(
        ptr: *const u8,
        len: usize,
        dtype: DType,
        device: &Device,
        owner: Arc<dyn Any + Send + Sync>,
    ) -> Result<Self> {
        let dev = cuda::tch_device(device)?;
        // Bool memory is read as bytes until it is known to hold only 0 and 1.
        let kind = match dtype {
            DType::Bool => Kind::Uint8,
            d => storage_kind(d),
        };
        // SAFETY: the caller's contract above is exactly from_blob's (uint8 for bool memory has
        // bool's size and alignment, and every byte is a valid uint8).
        let data = unsafe { TchTensor::f_from_blob(ptr, &[len as i64], &[1], kind, dev).or_tch()? };
        if dtype == DType::Bool {
            return Torch::bool_from_bytes(data, *device, Some(owner));
        }
        Ok(Torch {
            data,
            dtype,
            device: *device,
            _owner: Some(owner),
            extent: OnceLock::new(),
        })
    }

    /// Bool storage over `bytes` (a flat, contiguous uint8 tensor on `device` over memory that
    /// holds bools): the same memory when every byte is 0 or 1, else one normalised copy.
    fn bool_from_bytes(
        bytes: TchTensor,
        device: Device,
        owner: Option<Arc<dyn Any + Send + Sync>>,
    ) -> Result<Self> {
        let canonical = if device == Device::Cpu {
            let n = bytes.numel();
            n == 0 || {
                // SAFETY: `bytes` is a contiguous CPU uint8 tensor of `n` elements, alive (and
                // not written) for the duration of this borrow.
                let b = unsafe { std::slice::from_raw_parts(bytes.data_ptr() as *const u8, n) };
                bool_bytes_are_canonical(b)
            }
        } else {
            bytes
                .f_gt(1i64)
                .and_then(|m| m.f_any())
                .and_then(|a| a.f_int64_value(&[]))
                .or_tch()?
                == 0
        };
        if canonical {
            let data = bytes.f_view_dtype(Kind::Bool).or_tch()?;
            return Ok(Torch {
                data,
                dtype: DType::Bool,
                device,
                _owner: owner,
                extent: OnceLock::new(),
            });
        }
        // New libtorch memory: nothing borrowed any more.
        let data = bytes.f_ne(0i64).or_tch()?;
        Ok(Torch {
            data,
            dtype: DType::Bool,
            device,
            _owner: None,
            extent: OnceLock::new(),
        })
    }

    /// The storage as a libtorch tensor (1-D, contiguous; uint16/32/64 in the signed kind of the
    /// same width).
    pub fn tch_tensor(&self) -> &TchTensor {
        &self.data
    }

    /// The first element's address (host or device memory).
    pub fn data_ptr(&self) -> *const u8 {
        self.extent().0 as *const u8
    }

    /// The storage's first element's address and its element count.
    fn extent(&self) -> (usize, usize) {
        *self
            .extent
            .get_or_init(|| (self.data.data_ptr() as usize, self.data.numel()))
    }

    /// The storage's elements as a host slice, when it lives in host memory.
    fn host_slice<T: Element>(&self) -> Option<&[T]> {
        if self.device != Device::Cpu || T::DTYPE != self.dtype {
            return None;
        }
        let (ptr, len) = self.extent();
        if len == 0 {
            return Some(&[]);
        }
        // SAFETY: `data` is a contiguous CPU tensor of `len` elements whose kind has the size and
        // bit layout of `T` (see `storage_kind`); libtorch allocations and the host arrays we
        // borrow are aligned for their element type; tensors are immutable, so nothing writes
        // while the slice (tied to `&self`, which keeps `data` alive) exists.
        Some(unsafe { std::slice::from_raw_parts(ptr as *const T, len) })
    }

    /// The elements of `layout` as a libtorch view of the storage (a copy only where a stride is
    /// negative, which libtorch cannot express: those axes are flipped).
    fn view(&self, layout: &Layout) -> Result<TchTensor> {
        let shape: Vec<i64> = layout.shape().iter().map(|&d| d as i64).collect();
        if layout.elem_count() == 0 {
            return TchTensor::f_empty(&shape, (storage_kind(self.dtype), self.data.device()))
                .or_tch();
        }
        let (forward, flipped) = layout.with_nonnegative_strides();
        let strides: Vec<i64> = forward.strides().iter().map(|&s| s as i64).collect();
        let first = forward.offset() as i64;
        let flips: Vec<i64> = flipped.iter().map(|&a| a as i64).collect();
        // `as_strided` counts its offset from the storage's start; starting from a one-element
        // narrow at the lowest address makes it relative to our storage instead.
        let v = self
            .data
            .f_narrow(0, first, 1)
            .and_then(|n| n.f_as_strided(&shape, &strides, None::<i64>))
            .or_tch()?;
        if flips.is_empty() {
            Ok(v)
        } else {
            v.f_flip(&flips).or_tch()
        }
    }
}

/// `[b.., m, k] @ [b.., k, n]` for integer kinds: libtorch has integer GEMM on the CPU only.
fn int_matmul(a: &TchTensor, b: &TchTensor, kind: Kind) -> Result<TchTensor> {
    if a.device() == tch::Device::Cpu {
        return a.f_matmul(b).or_tch();
    }
    let prod = a
        .f_unsqueeze(-1)
        .and_then(|a| a.f_mul(&b.f_unsqueeze(-3)?))
        .or_tch()?;
    prod.f_sum_dim_intlist([-2i64].as_slice(), false, kind)
        .or_tch()
}

impl Backend for Torch {
    const NAME: &'static str = "torch";
    const DEVICE_KINDS: &'static [DeviceKind] = &[DeviceKind::Cpu, DeviceKind::Cuda];

    fn device(&self) -> Device {
        self.device
    }

    fn dtype(&self) -> DType {
        self.dtype
    }

    fn len(&self) -> usize {
        self.extent().1
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn from_host(device: &Device, data: HostArray) -> Result<Self> {
        let dev = cuda::tch_device(device)?;
        let dtype = data.dtype();
        let host = with_host_array!(data, a => {
            let a = if a.is_standard_layout() { a } else { a.as_standard_layout().into_owned() };
            let (ptr, len) = (a.as_ptr().cast::<u8>(), a.len());
            let owner: Arc<dyn Any + Send + Sync> = Arc::new(a);
            // SAFETY: `a` is a standard-layout array of `len` elements of `dtype` starting at
            // `ptr`; moving it into the Arc does not move its heap buffer, and the Arc keeps it
            // alive (and unmodified: nobody else can reach it) as long as the storage.
            unsafe { Torch::from_raw(ptr, len, dtype, &Device::Cpu, owner)? }
        });
        if *device == Device::Cpu {
            return Ok(host);
        }
        let on_device = host.data.f_to_device(dev).or_tch()?;
        Torch::wrap(on_device, dtype, *device)
    }

    fn full(device: &Device, len: usize, dtype: DType, value: Scalar) -> Result<Self> {
        let dev = cuda::tch_device(device)?;
        // The value is converted on the host, with the core's rules, then broadcast.
        let one = with_dtype!(dtype, T => {
            let v: T = value.to_element::<T>();
            // SAFETY: reading the bytes of one plain-old-data element.
            let bytes = unsafe {
                std::slice::from_raw_parts((&v as *const T).cast::<u8>(), std::mem::size_of::<T>())
            };
            TchTensor::f_from_data_size(bytes, &[1], storage_kind(dtype)).or_tch()?
        });
        let t = one
            .f_to_device(dev)
            .and_then(|t| t.f_expand([len as i64], false))
            .or_tch()?;
        Torch::wrap(t, dtype, *device)
    }

    fn unary(&self, layout: &Layout, op: UnaryOp) -> Result<Self> {
        check_host_op(&self.device, "unary", layout.shape(), self.dtype, 1)?;
        let x = self.view(layout)?;
        let kind = self.dtype.kind();
        if self.dtype == DType::BF16 {
            // In f32, rounded once by the backend's cast, as NumPy (ml_dtypes) computes
            // bfloat16 math: libtorch's bfloat16 kernels write every NaN as `0x7fc0` (so `-x`
            // of a NaN kept its sign) or, for `exp`/`log`/`sqrt` of a NaN, as `0xffff`.
            // f32 buffers alive at the peak: the widened input, the result and the rounding's
            // temporary; CPU `sqrt` (computed in f64 by `float_unary`) holds the widened input
            // and two f64 buffers (the f64 copy and its root, 2 f32 buffers each) at once.
            let f32_buffers = if sqrt_in_f64(op, DType::F32, &self.device) {
                5
            } else {
                3
            };
            check_host_op(
                &self.device,
                "unary",
                layout.shape(),
                DType::F32,
                f32_buffers,
            )?;
            let wide = x.f_to_kind(Kind::Float).or_tch()?;
            let r = float_unary(&wide, DType::F32, &self.device, op)?;
            return self.result(bf16_from_f32(&r)?, self.dtype);
        }
        let r = match op {
            UnaryOp::Neg if kind == DTypeKind::Bool => {
                return Err(Error::Unsupported(
                    "negation of bool is not supported; use logical not".into(),
                ))
            }
            UnaryOp::Neg if kind != DTypeKind::Float => x.f_neg().or_tch()?,
            UnaryOp::Abs if matches!(kind, DTypeKind::Bool | DTypeKind::Unsigned) => {
                return self.result(x, self.dtype)
            }
            UnaryOp::Abs if kind != DTypeKind::Float => x.f_abs().or_tch()?,
            _ if kind != DTypeKind::Float => {
                return Err(Error::UnsupportedDType {
                    op: "unary",
                    dtype: self.dtype,
                })
            }
            _ => {
                if sqrt_in_f64(op, self.dtype, &self.device) {
                    check_host_op(&self.device, "unary", layout.shape(), DType::F64, 2)?;
                }
                float_unary(&x, self.dtype, &self.device, op)?
            }
        };
        self.result(r, self.dtype)
    }

    fn binary(
        &self,
        layout: &Layout,
        rhs: &Self,
        rhs_layout: &Layout,
        op: BinaryOp,
    ) -> Result<Self> {
        check_host_op(&self.device, "binary", layout.shape(), self.dtype, 1)?;
        let (a, b) = (self.view(layout)?, rhs.view(rhs_layout)?);
        let kind = self.dtype.kind();
        if self.dtype == DType::BF16 {
            check_host_op(&self.device, "binary", layout.shape(), DType::F32, 3)?;
            let (a, b) = (
                a.f_to_kind(Kind::Float).or_tch()?,
                b.f_to_kind(Kind::Float).or_tch()?,
            );
            let r = match op {
                BinaryOp::Add => a.f_add(&b),
                BinaryOp::Sub => a.f_sub(&b),
                BinaryOp::Mul => a.f_mul(&b),
                BinaryOp::Div => a.f_div(&b),
            };
            return self.result(bf16_from_f32(&r.or_tch()?)?, self.dtype);
        }
        // Integer arithmetic wraps in the storage kind; uint16/32/64 have the same bits in the
        // signed kind of their width, so the wrapped result is also the unsigned one.
        let r = match (kind, op) {
            (DTypeKind::Bool, BinaryOp::Add) => a.f_logical_or(&b),
            (DTypeKind::Bool, BinaryOp::Mul) => a.f_logical_and(&b),
            (DTypeKind::Float, BinaryOp::Div) => a.f_div(&b),
            (DTypeKind::Bool, _) | (_, BinaryOp::Div) => {
                return Err(Error::UnsupportedDType {
                    op: "binary",
                    dtype: self.dtype,
                })
            }
            (_, BinaryOp::Add) => a.f_add(&b),
            (_, BinaryOp::Sub) => a.f_sub(&b),
            (_, BinaryOp::Mul) => a.f_mul(&b),
        };
        self.result(r.or_tch()?, self.dtype)
    }

    fn compare(&self, layout: &Layout, rhs: &Self, rhs_layout: &Layout, op: CmpOp) -> Result<Self> {
        // Signed orderings flip both operands' sign bits first: two temporaries of the input.
        let temps = if signed_storage(self.dtype) && op != CmpOp::Eq {
            3
        } else {
            1
        };
        check_host_op(&self.device, "compare", layout.shape(), self.dtype, temps)?;
        let (mut a, mut b) = (self.view(layout)?, rhs.view(rhs_layout)?);
        if signed_storage(self.dtype) && op != CmpOp::Eq {
            a = flip_sign(&a, self.dtype)?;
            b = flip_sign(&b, self.dtype)?;
        }
        let r = match op {
            CmpOp::Eq => a.f_eq_tensor(&b),
            CmpOp::Lt => a.f_lt_tensor(&b),
            CmpOp::Gt => a.f_gt_tensor(&b),
        };
        self.result(r.or_tch()?, DType::Bool)
    }

    fn matmul(&self, layout: &Layout, rhs: &Self, rhs_layout: &Layout) -> Result<Self> {
        let nd = layout.ndim();
        let mut out_shape = layout.shape().to_vec();
        if let (Some(last), Some(&n)) = (
            out_shape.last_mut(),
            rhs_layout.shape().get(nd.wrapping_sub(1)),
        ) {
            *last = n;
        }
        check_host_op(&self.device, "matmul", &out_shape, self.dtype, 1)?;
        let (a, b) = (self.view(layout)?, rhs.view(rhs_layout)?);
        let kind = storage_kind(self.dtype);
        let r = match self.dtype {
            DType::F32 | DType::F64 => a.f_matmul(&b).or_tch()?,
            // As the CPU backend: computed in f32, rounded once.
            DType::F16 => a
                .f_to_kind(Kind::Float)
                .and_then(|a| a.f_matmul(&b.f_to_kind(Kind::Float)?))
                .and_then(|c| c.f_to_kind(kind))
                .or_tch()?,
            DType::BF16 => bf16_from_f32(
                &a.f_to_kind(Kind::Float)
                    .and_then(|a| a.f_matmul(&b.f_to_kind(Kind::Float)?))
                    .or_tch()?,
            )?,
            // Logical: any (a_ik and b_kj).
            DType::Bool => {
                let (a, b) = (
                    a.f_to_kind(Kind::Int64).or_tch()?,
                    b.f_to_kind(Kind::Int64).or_tch()?,
                );
                int_matmul(&a, &b, Kind::Int64)?.f_ne(0i64).or_tch()?
            }
            _ => int_matmul(&a, &b, kind)?,
        };
        self.result(r, self.dtype)
    }

    fn reduce(
        &self,
        layout: &Layout,
        op: ReduceOp,
        axis: Option<usize>,
        out_dtype: DType,
    ) -> Result<Self> {
        // A float input is widened inside the reduction (`dtype=`, no temporary: the core asks
        // for f64 for every float sum and mean); any other input of another output dtype is cast
        // to it first, with the core's rules.
        let cast_first =
            out_dtype != self.dtype && !(out_dtype.is_float() && self.dtype.is_float());
        if cast_first && matches!(op, ReduceOp::Sum | ReduceOp::Mean) {
            check_host_op(&self.device, "reduce", layout.shape(), out_dtype, 1)?;
        }
        let x = self.view(layout)?;
        let dims: Vec<i64> = axis.map(|a| vec![a as i64]).unwrap_or_default();
        let out_kind = storage_kind(out_dtype);
        let r = match op {
            ReduceOp::Sum | ReduceOp::Mean => {
                let x = if cast_first {
                    kinds::cast(&x, self.dtype, out_dtype)?
                } else {
                    x
                };
                match (op, axis) {
                    (ReduceOp::Sum, None) => x.f_sum(out_kind),
                    (ReduceOp::Sum, Some(_)) => {
                        x.f_sum_dim_intlist(dims.as_slice(), false, out_kind)
                    }
                    (_, None) => x.f_mean(out_kind),
                    (_, Some(_)) => x.f_mean_dim(dims.as_slice(), false, out_kind),
                }
                .or_tch()?
            }
            ReduceOp::Max | ReduceOp::Min => {
                let flip = signed_storage(self.dtype);
                let x = if flip { flip_sign(&x, self.dtype)? } else { x };
                let r = if op == ReduceOp::Max {
                    x.f_amax(dims.as_slice(), false)
                } else {
                    x.f_amin(dims.as_slice(), false)
                }
                .or_tch()?;
                if flip {
                    flip_sign(&r, self.dtype)?
                } else if self.dtype.is_float() {
                    with_input_nan(&x, r, axis)?
                } else {
                    r
                }
            }
        };
        self.result(r, out_dtype)
    }

    fn cast(&self, layout: &Layout, dtype: DType) -> Result<Self> {
        let x = self.view(layout)?;
        if dtype == self.dtype {
            return self.result(x, dtype);
        }
        check_host_op(&self.device, "cast", layout.shape(), dtype, 1)?;
        self.result(kinds::cast(&x, self.dtype, dtype)?, dtype)
    }

    fn contiguous(&self, layout: &Layout) -> Result<Self> {
        self.result(self.view(layout)?, self.dtype)
    }

    fn to_host(&self, layout: &Layout, dtype: DType) -> Result<HostArray> {
        transfer::to_host(self, layout, dtype)
    }

    fn into_host(self, layout: &Layout, dtype: DType) -> Result<HostArray> {
        // libtorch owns the memory; it cannot become a Vec without a copy.
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

    fn host_bytes(&self) -> Option<&[u8]> {
        with_dtype!(self.dtype, T => self.host_slice::<T>().map(|s| {
            // SAFETY: any initialised memory may be viewed as bytes; same length in bytes.
            unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<u8>(), std::mem::size_of_val(s)) }
        }))
    }

    fn device_memory(&self) -> Option<DeviceMemory> {
        match self.device {
            Device::Cpu => None,
            device => Some(DeviceMemory {
                ptr: self.data_ptr(),
                len_bytes: self.len() * self.dtype.size_in_bytes(),
                device,
            }),
        }
    }

    unsafe fn from_external(memory: ExternalMemory) -> Result<Option<Self>> {
        // SAFETY: `from_external`'s contract is `from_raw`'s.
        let storage = unsafe {
            Torch::from_raw(
                memory.ptr,
                memory.len,
                memory.dtype,
                &memory.device,
                memory.owner,
            )
        }?;
        Ok(Some(storage))
    }

    fn synchronize(&self) -> Result<()> {
        if let Device::Cuda(i) = self.device {
            tch::Cuda::synchronize(i as i64);
        }
        Ok(())
    }
}

/// A tch tensor as a tensorbridge tensor on the same device, sharing its memory where it is
/// contiguous (else one copy by libtorch). A tensor that requires grad is taken detached, as a
/// value: conversion never fails because of autograd. A bool tensor whose bytes are not all 0/1
/// (`torch.from_numpy(np.array([0, 3], np.uint8).view(np.bool_))`) is normalised into one copy
/// (any non-zero byte is True), as [`Torch::from_raw`] does.
pub fn from_tch(t: &TchTensor) -> Result<Tensor<Torch>> {
    let kind = t.f_kind().or_tch()?;
    let dtype = dtype_of_kind(kind).ok_or_else(|| {
        Error::Unsupported(format!(
            "the torch backend has no dtype for libtorch kind {kind:?}"
        ))
    })?;
    let device = cuda::our_device(t.device())?;
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let mut storage = Torch::wrap(t.f_detach().or_tch()?, dtype, device)?;
    if dtype == DType::Bool {
        let bytes = storage.data.f_view_dtype(Kind::Uint8).or_tch()?;
        storage = Torch::bool_from_bytes(bytes, device, None)?;
    }
    Tensor::from_storage(Arc::new(storage), Layout::contiguous(&shape))
}

/// A tensorbridge tensor as a tch tensor (a view of the same memory where libtorch can express
/// the layout, else a copy). uint16/32/64 have no tch kind and are refused; cast first.
pub fn to_tch(t: &Tensor<Torch>) -> Result<TchTensor> {
    if signed_storage(t.dtype()) {
        return Err(Error::UnsupportedDType {
            op: "to_tch (tch has no unsigned 16/32/64-bit kind)",
            dtype: t.dtype(),
        });
    }
    t.storage().view(t.layout())
}
