//! # tensorbridge-cpu
//!
//! The CPU backend: host-memory storage and every op of the core [`Backend`] trait, computed with
//! `ndarray` over strided views. It owns the storage types ([`Cpu`], [`Buffer`]); it does not own
//! dtype rules, broadcasting or views — `tensorbridge-core` resolves those before a call arrives.
//!
//! Storage is either a `Vec<T>` this crate allocated, or foreign host memory (a NumPy array, say)
//! kept alive by an owner object, so `tb.from_numpy(a)` and `t.numpy()` can both be zero-copy.
//!
//! ```
//! use tensorbridge_core::{Device, Tensor};
//! use tensorbridge_cpu::Cpu;
//! let t = Tensor::<Cpu>::from_slice(&[1i64, 2, 4, 8], &[2, 2], &Device::Cpu).unwrap();
//! let doubled = (&t * 2i64).unwrap();
//! let host = doubled.t().to_host_array::<i64>().unwrap();
//! assert_eq!(host.as_slice().unwrap(), &[2, 8, 4, 16]);
//! ```
#![warn(missing_docs)]

mod ops;

use std::any::Any;
use std::mem::MaybeUninit;
use std::sync::Arc;

use ndarray::{ArrayD, ArrayViewMutD, IxDyn};
use tensorbridge_core::host::{
    bool_bytes_are_canonical, bools_from_bytes, copy_into, copy_into_contiguous,
    into_row_major_vec, to_contiguous,
};
use tensorbridge_core::memory_guard::try_alloc;
use tensorbridge_core::{
    with_dtype, with_host_array, Backend, BinaryOp, CmpOp, DType, Device, DeviceKind, DeviceMemory,
    Element, Error, ExternalMemory, FloatElement, HostArray, Layout, ReduceOp, Result, Scalar,
    Tensor, UnaryOp,
};

/// A flat host buffer of `T`: owned, or foreign memory kept alive by its owner.
pub enum Buffer<T: Element> {
    /// Memory allocated by tensorbridge.
    Owned(Vec<T>),
    /// Memory owned by someone else (e.g. a NumPy array), valid while `owner` lives.
    Foreign {
        /// First element.
        ptr: *const T,
        /// Number of elements.
        len: usize,
        /// Keeps the memory alive; dropped with the buffer.
        owner: Arc<dyn Any + Send + Sync>,
    },
}

// SAFETY: `Owned` is a Vec of Send+Sync elements. `Foreign` memory is only ever read through a
// shared slice (tensors are immutable), and its owner is `Send + Sync`; the creator of a foreign
// buffer promises (see `Cpu::from_foreign`) that the memory stays valid while the owner lives.
unsafe impl<T: Element> Send for Buffer<T> {}
// SAFETY: as above; all access through `&Buffer` is read-only.
unsafe impl<T: Element> Sync for Buffer<T> {}

impl<T: Element> Drop for Buffer<T> {
    fn drop(&mut self) {
        // Large owned storage goes back to the core's cache of paged-in buffers, so the next
        // output of its size skips the page faults (see `tensorbridge_core::host::recycle`).
        if let Buffer::Owned(v) = self {
            tensorbridge_core::host::recycle(std::mem::take(v));
        }
    }
}

impl<T: Element> Buffer<T> {
    /// The elements.
    pub fn as_slice(&self) -> &[T] {
        match self {
            Buffer::Owned(v) => v,
            // SAFETY: `from_foreign`'s contract: `ptr` is valid, aligned and initialised for `len`
            // reads of `T` while `owner` lives, and `owner` lives as long as `self`.
            Buffer::Foreign { ptr, len, .. } => unsafe { std::slice::from_raw_parts(*ptr, *len) },
        }
    }
}

/// Storage of the CPU backend: one typed [`Buffer`] per dtype.
#[allow(missing_docs)]
pub enum Cpu {
    Bool(Buffer<bool>),
    U8(Buffer<u8>),
    U16(Buffer<u16>),
    U32(Buffer<u32>),
    U64(Buffer<u64>),
    I8(Buffer<i8>),
    I16(Buffer<i16>),
    I32(Buffer<i32>),
    I64(Buffer<i64>),
    F16(Buffer<half::f16>),
    BF16(Buffer<half::bf16>),
    F32(Buffer<f32>),
    F64(Buffer<f64>),
}

/// Calls `$body` with `$b` bound to the typed buffer of a [`Cpu`] storage.
macro_rules! with_buffer {
    ($s:expr, $b:ident => $body:expr) => {
        match $s {
            Cpu::Bool($b) => $body,
            Cpu::U8($b) => $body,
            Cpu::U16($b) => $body,
            Cpu::U32($b) => $body,
            Cpu::U64($b) => $body,
            Cpu::I8($b) => $body,
            Cpu::I16($b) => $body,
            Cpu::I32($b) => $body,
            Cpu::I64($b) => $body,
            Cpu::F16($b) => $body,
            Cpu::BF16($b) => $body,
            Cpu::F32($b) => $body,
            Cpu::F64($b) => $body,
        }
    };
}

/// Ties an element type to its [`Cpu`] variant; implemented for every [`Element`].
pub trait CpuElement: Element {
    /// Wraps a buffer.
    fn wrap(b: Buffer<Self>) -> Cpu;
    /// Borrows the buffer when the storage has this dtype.
    fn buffer(s: &Cpu) -> Option<&Buffer<Self>>;
    /// `exp`/`log`/`sqrt` for float dtypes; `None` for the others (the core promotes them first).
    fn transcendental(op: UnaryOp) -> Option<fn(Self) -> Self>;
}

macro_rules! cpu_element {
    ($($t:ty => $v:ident : $kind:ident),* $(,)?) => {$(
        impl CpuElement for $t {
            fn wrap(b: Buffer<Self>) -> Cpu { Cpu::$v(b) }
            fn buffer(s: &Cpu) -> Option<&Buffer<Self>> {
                match s { Cpu::$v(b) => Some(b), _ => None }
            }
            fn transcendental(op: UnaryOp) -> Option<fn(Self) -> Self> {
                cpu_element!(@$kind op)
            }
        }
    )*};
    (@exact $op:ident) => { { let _ = $op; None } };
    (@float $op:ident) => {
        match $op {
            UnaryOp::Exp => Some(FloatElement::exp),
            UnaryOp::Log => Some(FloatElement::ln),
            UnaryOp::Sqrt => Some(FloatElement::sqrt),
            UnaryOp::Neg | UnaryOp::Abs => None,
        }
    };
}
cpu_element!(
    bool => Bool: exact, u8 => U8: exact, u16 => U16: exact, u32 => U32: exact,
    u64 => U64: exact, i8 => I8: exact, i16 => I16: exact, i32 => I32: exact, i64 => I64: exact,
    half::f16 => F16: float, half::bf16 => BF16: float, f32 => F32: float, f64 => F64: float,
);

impl Cpu {
    /// Owned storage from a vector.
    pub fn from_vec<T: CpuElement>(v: Vec<T>) -> Self {
        T::wrap(Buffer::Owned(v))
    }

    /// Storage over foreign host memory, without copying.
    ///
    /// **bool:** foreign memory of dtype bool (a NumPy `bool_` array, a DLPack `kDLBool` tensor)
    /// may hold any byte, and NumPy reads every non-zero byte as True. A Rust `bool` must be 0 or
    /// 1, so for `T = bool` the bytes are checked first
    /// ([`bool_bytes_are_canonical`](tensorbridge_core::host::bool_bytes_are_canonical)): when
    /// they are all 0/1 the memory is shared as usual; otherwise the storage is one normalised
    /// copy (`byte != 0`) and `owner` is released. No other byte ever becomes a `bool` here;
    /// shared memory must then keep holding only 0/1 bytes (the "nobody writes" contract below).
    ///
    /// # Safety
    /// `ptr` must be non-null, aligned for `T`, and valid for reads of `len` initialised elements
    /// (`len * size_of::<T>()` bytes; for `T = bool` any byte values) for as long as `owner` is
    /// alive; nobody may write that memory while a tensor reads it unless the caller accepts the
    /// data race semantics of shared host memory (as `torch.from_numpy` does).
    pub unsafe fn from_foreign<T: CpuElement>(
        ptr: *const T,
        len: usize,
        owner: Arc<dyn Any + Send + Sync>,
    ) -> Self {
        if T::DTYPE == DType::Bool {
            // SAFETY: the caller guarantees `len` readable, initialised bytes at `ptr` (bool is
            // one byte); they are read as `u8`, for which every byte is valid.
            let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
            if !bool_bytes_are_canonical(bytes) {
                return Cpu::Bool(Buffer::Owned(bools_from_bytes(bytes)));
            }
        }
        T::wrap(Buffer::Foreign { ptr, len, owner })
    }

    /// Storage of `dtype` over `len` elements of foreign host memory at `ptr`, without copying
    /// (bool bytes checked and normalised as in [`Cpu::from_foreign`]): the dtype-erased form for
    /// importers (NumPy arrays, DLPack) that know the dtype at run time.
    ///
    /// # Safety
    /// As [`Cpu::from_foreign`], for the element type of `dtype`.
    pub unsafe fn from_foreign_bytes(
        ptr: *const u8,
        len: usize,
        dtype: DType,
        owner: Arc<dyn Any + Send + Sync>,
    ) -> Self {
        // SAFETY: forwarded: the caller's contract is from_foreign's for this element type.
        with_dtype!(dtype, T => unsafe { Cpu::from_foreign::<T>(ptr.cast::<T>(), len, owner) })
    }

    /// The typed elements, when the storage is of dtype `T`.
    pub fn as_slice<T: CpuElement>(&self) -> Option<&[T]> {
        T::buffer(self).map(Buffer::as_slice)
    }

    fn is_owned(&self) -> bool {
        with_buffer!(self, b => matches!(b, Buffer::Owned(_)))
    }

    fn check_device(device: &Device) -> Result<()> {
        match device {
            Device::Cpu => Ok(()),
            other => Err(Error::DeviceUnavailable(format!(
                "the cpu backend has no device {other}; use backend='torch' or 'candle' for GPUs"
            ))),
        }
    }
}

/// Reserves `len` elements or reports [`Error::TooLarge`] instead of aborting; large buffers get
/// the core's huge-page advice (see [`tensorbridge_core::host::alloc_output`]).
pub(crate) fn try_vec<T: Element>(op: &'static str, shape: &[usize], len: usize) -> Result<Vec<T>> {
    tensorbridge_core::host::alloc_output(op, shape, len)
}

fn storage_from_array<T: CpuElement>(a: ArrayD<T>) -> Cpu {
    Cpu::from_vec(into_row_major_vec(a))
}

impl Backend for Cpu {
    const NAME: &'static str = "cpu";
    const DEVICE_KINDS: &'static [DeviceKind] = &[DeviceKind::Cpu];

    fn device(&self) -> Device {
        Device::Cpu
    }

    fn dtype(&self) -> DType {
        with_buffer!(self, b => buffer_dtype(b))
    }

    fn len(&self) -> usize {
        with_buffer!(self, b => b.as_slice().len())
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn from_host(device: &Device, data: HostArray) -> Result<Self> {
        Self::check_device(device)?;
        Ok(with_host_array!(data, a => storage_from_array(a)))
    }

    fn full(device: &Device, len: usize, dtype: DType, value: Scalar) -> Result<Self> {
        Self::check_device(device)?;
        with_dtype!(dtype, T => {
            let mut v = try_alloc::<T>("full", &[len])?;
            v.resize(len, value.to_element::<T>());
            Ok(Cpu::from_vec(v))
        })
    }

    fn unary(&self, layout: &Layout, op: UnaryOp) -> Result<Self> {
        with_buffer!(self, b => ops::unary(b.as_slice(), layout, op))
    }

    fn binary(
        &self,
        layout: &Layout,
        rhs: &Self,
        rhs_layout: &Layout,
        op: BinaryOp,
    ) -> Result<Self> {
        with_buffer!(self, b => {
            let r = same_dtype_slice(b, rhs, "binary")?;
            ops::binary(b.as_slice(), layout, r, rhs_layout, op)
        })
    }

    fn compare(&self, layout: &Layout, rhs: &Self, rhs_layout: &Layout, op: CmpOp) -> Result<Self> {
        with_buffer!(self, b => {
            let r = same_dtype_slice(b, rhs, "compare")?;
            ops::compare(b.as_slice(), layout, r, rhs_layout, op)
        })
    }

    fn matmul(&self, layout: &Layout, rhs: &Self, rhs_layout: &Layout) -> Result<Self> {
        with_buffer!(self, b => {
            let r = same_dtype_slice(b, rhs, "matmul")?;
            ops::matmul(b.as_slice(), layout, r, rhs_layout)
        })
    }

    fn reduce(
        &self,
        layout: &Layout,
        op: ReduceOp,
        axis: Option<usize>,
        out_dtype: DType,
    ) -> Result<Self> {
        with_buffer!(self, b => with_dtype!(out_dtype, O => ops::reduce::<_, O>(b.as_slice(), layout, op, axis)))
    }

    fn cast(&self, layout: &Layout, dtype: DType) -> Result<Self> {
        with_buffer!(self, b => with_dtype!(dtype, D => {
            Ok(storage_from_array(to_contiguous::<_, D>(b.as_slice(), layout)?))
        }))
    }

    fn contiguous(&self, layout: &Layout) -> Result<Self> {
        self.cast(layout, self.dtype())
    }

    fn to_host(&self, layout: &Layout, dtype: DType) -> Result<HostArray> {
        with_buffer!(self, b => with_dtype!(dtype, D => {
            Ok(HostArray::from(to_contiguous::<_, D>(b.as_slice(), layout)?))
        }))
    }

    fn into_host(self, layout: &Layout, dtype: DType) -> Result<HostArray> {
        let whole = layout.is_contiguous()
            && layout.offset() == 0
            && layout.elem_count() == self.len()
            && dtype == self.dtype();
        if whole && self.is_owned() {
            return with_buffer!(self, b => hand_over(b, layout.shape()));
        }
        // Foreign or partially viewed memory cannot be handed over: copy the view.
        self.to_host(layout, dtype)
    }

    fn to_host_into<T: Element>(
        &self,
        layout: &Layout,
        out: &mut ArrayViewMutD<'_, T>,
    ) -> Result<()> {
        with_buffer!(self, b => copy_into(b.as_slice(), layout, out))
    }

    fn to_host_into_contiguous<T: Element>(
        &self,
        layout: &Layout,
        out: &mut [MaybeUninit<T>],
    ) -> Result<()> {
        with_buffer!(self, b => copy_into_contiguous(b.as_slice(), layout, out))
    }

    fn host_bytes(&self) -> Option<&[u8]> {
        Some(with_buffer!(self, b => as_bytes(b.as_slice())))
    }
    fn device_memory(&self) -> Option<DeviceMemory> {
        None
    }

    unsafe fn from_external(memory: ExternalMemory) -> Result<Option<Self>> {
        if memory.device != Device::Cpu {
            return Ok(None);
        }
        Ok(Some(with_dtype!(memory.dtype, T => {
            // SAFETY: `from_external`'s contract is `from_foreign`'s: valid, aligned, initialised
            // (canonical bools) elements for as long as the owner lives.
            unsafe { Cpu::from_foreign::<T>(memory.ptr.cast::<T>(), memory.len, memory.owner) }
        })))
    }

    fn synchronize(&self) -> Result<()> {
        // Every CPU op has finished when it returns.
        Ok(())
    }
}

/// A CPU tensor taking over an owned `ndarray` array without copying: a standard-layout (C order)
/// array's buffer becomes the storage as it is; any other layout is made standard first (one
/// copy). Back the other way, also without a copy while the storage is not shared:
/// [`Tensor::into_host_array`].
///
/// ```
/// use tensorbridge_cpu::from_ndarray;
/// let a = ndarray::Array::from_shape_vec((2, 3), vec![1.0f32, 2., 3., 4., 5., 6.])?.into_dyn();
/// let ptr = a.as_ptr();
/// let t = from_ndarray(a)?;                         // no copy
/// let b = t.into_host_array::<f32>()?;              // no copy either
/// assert_eq!(b.as_ptr(), ptr);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn from_ndarray<T: CpuElement>(a: ArrayD<T>) -> Result<Tensor<Cpu>> {
    let shape = a.shape().to_vec();
    Tensor::from_storage(Arc::new(storage_from_array(a)), Layout::contiguous(&shape))
}

/// Moves a buffer into a host array of `shape`: without copying when it is owned.
fn hand_over<T: CpuElement>(mut b: Buffer<T>, shape: &[usize]) -> Result<HostArray> {
    let v = match &mut b {
        // The vector moves out; `b` drops empty, so nothing is recycled.
        Buffer::Owned(v) => std::mem::take(v),
        Buffer::Foreign { .. } => b.as_slice().to_vec(),
    };
    ArrayD::from_shape_vec(IxDyn(shape), v)
        .map(HostArray::from)
        .map_err(|e| Error::InvalidArgument(format!("into_host: {e}")))
}

fn as_bytes<T: Element>(s: &[T]) -> &[u8] {
    // SAFETY: every `Element` is plain old data without padding (bool is one byte, 0 or 1), so its
    // bytes are initialised; the byte slice covers exactly the same memory and borrows `s`.
    unsafe { std::slice::from_raw_parts(s.as_ptr() as *const u8, std::mem::size_of_val(s)) }
}

fn buffer_dtype<T: Element>(_: &Buffer<T>) -> DType {
    T::DTYPE
}

/// The right operand's elements as `T`. The core hands both operands in one dtype (the
/// [`Backend`] contract, checked once there); this is the typed view of that, and a mismatch, a
/// bug in a caller of the trait, is an error rather than a misread.
fn same_dtype_slice<'a, T: CpuElement>(
    _: &Buffer<T>,
    rhs: &'a Cpu,
    op: &'static str,
) -> Result<&'a [T]> {
    rhs.as_slice::<T>().ok_or(Error::DTypeMismatch {
        op,
        actual: rhs.dtype(),
        requested: T::DTYPE,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn from_ndarray_and_into_host_array_move_the_buffer_without_copying() {
        let a = ndarray::Array::from_shape_vec((3, 4), (0..12).map(|x| x as f64).collect())
            .unwrap()
            .into_dyn();
        let ptr = a.as_ptr();
        let t = super::from_ndarray(a).unwrap();
        assert_eq!(t.host_view::<f64>().unwrap().as_ptr(), ptr);
        let shared = t.clone();
        // Shared storage must be copied out; the last owner hands the buffer over.
        let copied = shared.into_host_array::<f64>().unwrap();
        assert_ne!(copied.as_ptr(), ptr);
        let moved = t.into_host_array::<f64>().unwrap();
        assert_eq!(moved.as_ptr(), ptr);
        assert_eq!(moved, copied);
        // A non-standard layout is made standard first (one copy), values kept.
        let f = ndarray::Array::from_shape_vec((2, 3), vec![1u8, 2, 3, 4, 5, 6])
            .unwrap()
            .reversed_axes()
            .into_dyn();
        let tf = super::from_ndarray(f.clone()).unwrap();
        assert_eq!(tf.to_host_array::<u8>().unwrap(), f);
    }

    use super::*;
    use tensorbridge_core::Tensor;

    #[test]
    fn into_host_array_hands_over_unique_owned_storage() {
        let t = Tensor::<Cpu>::from_slice(&[1.0f32, 2.0, 3.0], &[3], &Device::Cpu).unwrap();
        let ptr = t.storage().as_slice::<f32>().unwrap().as_ptr();
        let a = t.into_host_array::<f32>().unwrap();
        assert_eq!(
            a.as_ptr(),
            ptr,
            "unique contiguous storage moves without a copy"
        );
    }

    #[test]
    fn into_host_array_copies_when_shared() {
        let t = Tensor::<Cpu>::from_slice(&[1i32, 2, 3], &[3], &Device::Cpu).unwrap();
        let keep = t.clone();
        let a = t.into_host_array::<i32>().unwrap();
        assert_ne!(
            a.as_ptr(),
            keep.storage().as_slice::<i32>().unwrap().as_ptr()
        );
        assert_eq!(keep.to_host_array::<i32>().unwrap(), a);
    }

    #[test]
    fn foreign_memory_is_read_in_place_and_owner_kept_alive() {
        let owner: Arc<Vec<f64>> = Arc::new(vec![1.0, 2.0, 3.0, 4.0]);
        let ptr = owner.as_ptr();
        let weak = Arc::downgrade(&owner);
        // SAFETY: `ptr` points into the Vec the Arc owns; the Arc is moved into the storage.
        let s = unsafe { Cpu::from_foreign(ptr, 4, owner) };
        let t = Tensor::from_storage(Arc::new(s), Layout::contiguous(&[2, 2])).unwrap();
        let v = t.host_view::<f64>().unwrap();
        assert_eq!(v.as_ptr(), ptr);
        assert_eq!(
            t.t().to_host_array::<f64>().unwrap().as_slice().unwrap(),
            &[1.0, 3.0, 2.0, 4.0]
        );
        assert!(weak.upgrade().is_some());
        drop(v);
        drop(t);
        assert!(
            weak.upgrade().is_none(),
            "owner released with the last tensor"
        );
    }

    #[test]
    fn cuda_device_on_cpu_backend_is_device_unavailable() {
        let e = Tensor::<Cpu>::zeros(&[2], DType::F32, &Device::Cuda(0)).unwrap_err();
        assert!(matches!(e, Error::DeviceUnavailable(_)), "{e}");
    }

    #[test]
    fn full_of_a_shape_beyond_isize_bytes_is_shape_too_large_and_beyond_memory_too_large() {
        // NumPy: np.zeros((2**62, 4)) is ValueError "array is too big", np.zeros(2**57) a
        // MemoryError.
        let e = Tensor::<Cpu>::zeros(&[1 << 62, 4], DType::F64, &Device::Cpu).unwrap_err();
        assert!(matches!(e, Error::ShapeTooLarge { .. }), "{e}");
        let e = Tensor::<Cpu>::zeros(&[1 << 57], DType::F64, &Device::Cpu).unwrap_err();
        assert!(matches!(e, Error::TooLarge { .. }), "{e}");
    }

    /// Foreign bool memory with bytes other than 0/1 (`np.array([0, 1, 3, 200], np.uint8)
    /// .view(np.bool_)`) becomes one normalised copy; 0/1 memory is shared in place.
    #[test]
    fn foreign_bool_bytes_are_checked_and_normalised_once() {
        let raw: Arc<Vec<u8>> = Arc::new(vec![0, 1, 3, 200]);
        // SAFETY: 4 readable bytes owned by the Arc moved into the storage.
        let s = unsafe { Cpu::from_foreign(raw.as_ptr().cast::<bool>(), 4, raw.clone()) };
        assert_eq!(s.host_bytes().unwrap(), &[0, 1, 1, 1]);
        assert_ne!(
            s.host_bytes().unwrap().as_ptr(),
            raw.as_ptr(),
            "normalised copy"
        );
        let t = Tensor::from_storage(Arc::new(s), Layout::contiguous(&[4])).unwrap();
        let f = t.cast(DType::F32).unwrap().to_host_array::<f32>().unwrap();
        assert_eq!(f.as_slice().unwrap(), &[0.0, 1.0, 1.0, 1.0]);
        let sum = t.sum(None, false).unwrap().to_host_array::<i64>().unwrap();
        assert_eq!(sum.as_slice().unwrap(), &[3]);
        let min = t
            .slice(0, Some(1), None, 1)
            .unwrap()
            .min(None, false)
            .unwrap();
        assert_eq!(
            min.to_host_array::<bool>().unwrap().as_slice().unwrap(),
            &[true]
        );

        let ok: Arc<Vec<u8>> = Arc::new(vec![0, 1, 1, 0]);
        // SAFETY: as above.
        let s = unsafe { Cpu::from_foreign_bytes(ok.as_ptr(), 4, DType::Bool, ok.clone()) };
        assert_eq!(
            s.host_bytes().unwrap().as_ptr(),
            ok.as_ptr(),
            "0/1 bytes are shared"
        );
    }

    #[test]
    fn max_over_an_empty_axis_is_an_error_even_when_the_result_is_empty() {
        let t = Tensor::<Cpu>::zeros(&[0, 0], DType::F32, &Device::Cpu).unwrap();
        assert!(t.max(Some(0), false).is_err());
        let t = Tensor::<Cpu>::zeros(&[3, 0], DType::F32, &Device::Cpu).unwrap();
        assert_eq!(t.min(Some(0), false).unwrap().shape(), &[0]);
    }

    #[test]
    fn empty_float_sum_is_positive_zero() {
        let t = Tensor::<Cpu>::zeros(&[0, 2], DType::F64, &Device::Cpu).unwrap();
        let s = t
            .sum(Some(0), false)
            .unwrap()
            .to_host_array::<f64>()
            .unwrap();
        assert!(s.iter().all(|x| *x == 0.0 && x.is_sign_positive()));
    }

    #[test]
    fn integer_true_division_by_any_python_int_computes_in_f64() {
        let t = Tensor::<Cpu>::from_slice(&[2u8, 4], &[2], &Device::Cpu).unwrap();
        let q = t.div_scalar(Scalar::Int(-1)).unwrap();
        assert_eq!(
            q.to_host_array::<f64>().unwrap().as_slice(),
            Some(&[-2.0, -4.0][..])
        );
        assert!(
            t.add_scalar(Scalar::Int(-1)).is_err(),
            "-1 is out of range for uint8"
        );
    }

    #[test]
    fn host_view_is_zero_copy_for_strided_views() {
        let t = Tensor::<Cpu>::arange(0i64.into(), 12i64.into(), 1i64.into(), None, &Device::Cpu)
            .unwrap();
        let v = t
            .reshape(&[3, 4])
            .unwrap()
            .slice(1, None, None, -2)
            .unwrap();
        let hv = v.host_view::<i64>().unwrap();
        assert_eq!(hv[[0, 0]], 3);
        assert_eq!(hv[[2, 1]], 9);
        assert!(v.host_view::<f32>().is_err());
    }
}
