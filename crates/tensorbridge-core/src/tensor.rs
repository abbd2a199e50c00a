//! [`Tensor<B>`]: shared, immutable storage of a backend plus a [`Layout`]. Views are layout changes;
//! ops resolve dtypes and shapes here (NumPy rules) and call the backend with explicit layouts.

use std::mem::MaybeUninit;
use std::sync::Arc;

use ndarray::{ArrayBase, ArrayD, ArrayViewD, ArrayViewMutD, Data, Dimension};

use crate::arange::Arange;
use crate::backend::{Backend, BinaryOp, CmpOp, Device, ReduceOp, UnaryOp};
use crate::dtype::{int_fits, DType, DTypeKind, Element, Scalar};
use crate::error::{Error, Result};
use crate::host::{new_array_guard, strided_view, HostArray};
use crate::layout::{broadcast_shapes, checked_shape_bytes, infer_shape, normalize_axis, Layout};

/// An immutable n-dimensional tensor on backend `B`. Cloning is O(1) and shares the storage.
pub struct Tensor<B: Backend> {
    storage: Arc<B>,
    layout: Layout,
}

impl<B: Backend> Clone for Tensor<B> {
    fn clone(&self) -> Self {
        Tensor {
            storage: Arc::clone(&self.storage),
            layout: self.layout.clone(),
        }
    }
}

impl<B: Backend> std::fmt::Debug for Tensor<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tensor(shape={:?}, dtype={}, backend={}, device={})",
            self.shape(),
            self.dtype(),
            B::NAME,
            self.device()
        )
    }
}

fn scalar_layout(shape: &[usize]) -> Result<Layout> {
    Layout::contiguous(&[]).broadcast_to(shape)
}

/// A C-order copy of `a`, allocated through the memory guard (an error, not an abort, when it does
/// not fit).
fn standard_copy<T: Element>(a: &ArrayViewD<'_, T>) -> Result<ArrayD<T>> {
    let mut v = crate::memory_guard::try_alloc::<T>("copy", a.shape())?;
    v.extend(a.iter().copied());
    ArrayD::from_shape_vec(a.raw_dim(), v).map_err(|e| Error::InvalidArgument(format!("copy: {e}")))
}

impl<B: Backend> Tensor<B> {
    /// Wraps storage with a layout, checking that the layout fits the storage and that its shape
    /// is one an array of the storage's dtype can have ([`Error::ShapeTooLarge`] otherwise).
    pub fn from_storage(storage: Arc<B>, layout: Layout) -> Result<Self> {
        layout.check_fits(storage.len())?;
        checked_shape_bytes("from_storage", layout.shape(), Some(storage.dtype()))?;
        Ok(Tensor { storage, layout })
    }

    /// [`new_array_guard`] for a result of this tensor's backend and device.
    fn guard_new(op: &'static str, shape: &[usize], dtype: DType, device: &Device) -> Result<()> {
        new_array_guard(op, shape, dtype, *device == Device::Cpu).map(drop)
    }

    fn contiguous_of(storage: B, shape: &[usize]) -> Self {
        Tensor {
            storage: Arc::new(storage),
            layout: Layout::contiguous(shape),
        }
    }

    fn with_layout(&self, layout: Layout) -> Self {
        Tensor {
            storage: Arc::clone(&self.storage),
            layout,
        }
    }

    // ---- creation -------------------------------------------------------------------------

    /// A tensor holding a host array's values (moved in; non-standard layouts are copied first).
    pub fn from_host(data: impl Into<HostArray>, device: &Device) -> Result<Self> {
        let data = crate::with_host_array!(data.into(), a => {
            if a.is_standard_layout() { HostArray::from(a) } else { HostArray::from(standard_copy(&a.view())?) }
        });
        // The layout first (inline axes): keeping the shape past the move cost a heap copy.
        let layout = Layout::contiguous(data.shape());
        Ok(Tensor {
            storage: Arc::new(B::from_host(device, data)?),
            layout,
        })
    }

    /// A tensor from any `ndarray` array of an element type (copied).
    pub fn from_array<T: Element, S: Data<Elem = T>, D: Dimension>(
        a: &ArrayBase<S, D>,
        device: &Device,
    ) -> Result<Self> {
        Self::from_host(standard_copy(&a.view().into_dyn())?, device)
    }

    /// A tensor from a flat slice and a shape.
    pub fn from_slice<T: Element>(data: &[T], shape: &[usize], device: &Device) -> Result<Self> {
        let expected =
            checked_shape_bytes("from_slice", shape, Some(T::DTYPE))? / T::DTYPE.size_in_bytes();
        if expected != data.len() {
            return Err(Error::ElementCount {
                op: "from_slice",
                len: data.len(),
                shape: shape.to_vec(),
                expected,
            });
        }
        // One pass with the host copy kernel (parallel first-touch copy into huge-page-advised
        // memory for large slices); the array then moves into the backend without another copy.
        let a = crate::host::to_contiguous::<T, T>(data, &Layout::contiguous(shape))?;
        Self::from_host(a, device)
    }

    /// A 0-d tensor.
    pub fn scalar<T: Element>(value: T, device: &Device) -> Result<Self> {
        Self::from_slice(&[value], &[], device)
    }

    /// `shape` filled with `value` converted to `dtype` (default: the scalar's own dtype, see
    /// [`Scalar::default_dtype`]), from the exact value: an int never passes through f64.
    ///
    /// Errors as NumPy 2: an int outside an integer dtype's range is
    /// [`Error::IntegerOutOfBounds`] (`np.full(2, 300, dtype=np.uint8)`); a shape beyond
    /// `isize::MAX` bytes is [`Error::ShapeTooLarge`]; one that exceeds the host's available
    /// memory (on the CPU device) is [`Error::TooLarge`]. Floats into an integer dtype truncate
    /// toward zero and saturate (NaN → 0), as [`Tensor::cast`].
    pub fn full(
        shape: &[usize],
        value: Scalar,
        dtype: Option<DType>,
        device: &Device,
    ) -> Result<Self> {
        let dtype = dtype.unwrap_or(value.default_dtype());
        value.check_fits(dtype)?;
        let n =
            new_array_guard("full", shape, dtype, *device == Device::Cpu)? / dtype.size_in_bytes();
        Ok(Self::contiguous_of(
            B::full(device, n, dtype, value).map_err(|e| e.with_shape(shape))?,
            shape,
        ))
    }

    /// Zeros of `dtype`.
    pub fn zeros(shape: &[usize], dtype: DType, device: &Device) -> Result<Self> {
        Self::full(shape, Scalar::Int(0), Some(dtype), device)
    }

    /// Ones of `dtype`.
    pub fn ones(shape: &[usize], dtype: DType, device: &Device) -> Result<Self> {
        Self::full(shape, Scalar::Int(1), Some(dtype), device)
    }

    /// NumPy `arange(start, stop, step)`, bit for bit: `ceil((stop - start) / step)` values,
    /// `out[0] = start`, `out[1] = start + step`, then `out[0] + i * (out[1] - out[0])` computed
    /// in the dtype (f16/bf16 in f32), as NumPy's `fill` does. Without a dtype: int64 promoted
    /// with each argument's own dtype (so any float gives float64, an int above int64 float64).
    ///
    /// The values are computed on the host by the core for every backend, then moved to
    /// `device` like any host data (one upload for a device tensor), so no backend can differ.
    ///
    /// Errors: a zero, infinite or NaN step or bound ([`Error::InvalidArgument`]); an int value
    /// outside an integer dtype ([`Error::IntegerOutOfBounds`]); bool with more than 2 values
    /// ([`Error::Unsupported`]); too many elements ([`Error::ShapeTooLarge`] /
    /// [`Error::TooLarge`]).
    pub fn arange(
        start: Scalar,
        stop: Scalar,
        step: Scalar,
        dtype: Option<DType>,
        device: &Device,
    ) -> Result<Self> {
        let a = Arange::new(start, stop, step, dtype)?;
        Self::guard_new("arange", &[a.len], a.dtype, device)?;
        Self::from_host(a.fill()?, device)
    }

    // ---- properties -----------------------------------------------------------------------

    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        self.layout.shape()
    }
    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.layout.ndim()
    }
    /// Number of elements.
    pub fn elem_count(&self) -> usize {
        self.layout.elem_count()
    }
    /// Element type.
    pub fn dtype(&self) -> DType {
        self.storage.dtype()
    }
    /// Device of the storage.
    pub fn device(&self) -> Device {
        self.storage.device()
    }
    /// The view's layout over its storage.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
    /// Blocks until the work queued on this tensor's device has finished (see
    /// [`Backend::synchronize`]).
    pub fn synchronize(&self) -> Result<()> {
        self.storage.synchronize()
    }
    /// The shared storage.
    pub fn storage(&self) -> &Arc<B> {
        &self.storage
    }
    /// The backend's name.
    pub fn backend_name(&self) -> &'static str {
        B::NAME
    }
    /// True when the view is dense and row-major.
    pub fn is_contiguous(&self) -> bool {
        self.layout.is_contiguous()
    }

    // ---- views (O(1), no copy) ---------------------------------------------------------------

    /// Reshape (one `-1` allowed); a view when the strides allow, else one copy.
    pub fn reshape(&self, shape: &[isize]) -> Result<Self> {
        match self.layout.reshape(shape)? {
            Some(l) => Ok(self.with_layout(l)),
            None => {
                let c = self.contiguous()?;
                let shape = infer_shape(self.elem_count(), shape)?;
                Ok(c.with_layout(Layout::contiguous(&shape)))
            }
        }
    }
    /// Swaps two axes.
    pub fn transpose(&self, a: isize, b: isize) -> Result<Self> {
        Ok(self.with_layout(self.layout.transpose(a, b)?))
    }
    /// Reverses the axes (NumPy `.T`).
    pub fn t(&self) -> Self {
        self.with_layout(self.layout.reversed_axes())
    }
    /// Reorders the axes.
    pub fn permute(&self, perm: &[isize]) -> Result<Self> {
        Ok(self.with_layout(self.layout.permute(perm)?))
    }
    /// Python slice `start:stop:step` of one axis.
    pub fn slice(
        &self,
        axis: isize,
        start: Option<isize>,
        stop: Option<isize>,
        step: isize,
    ) -> Result<Self> {
        Ok(self.with_layout(self.layout.slice(axis, start, stop, step)?))
    }
    /// Index `index` of `axis`, dropping the axis.
    pub fn select(&self, axis: isize, index: isize) -> Result<Self> {
        let a = normalize_axis("select", axis, self.ndim())?;
        Ok(self.with_layout(self.layout.select(a, index)?))
    }
    /// NumPy `broadcast_to` (a view). A shape beyond `isize::MAX` bytes of this dtype is
    /// [`Error::ShapeTooLarge`], as NumPy's "array is too big".
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Self> {
        let layout = self.layout.broadcast_to(shape)?;
        checked_shape_bytes("broadcast_to", shape, Some(self.dtype()))?;
        Ok(self.with_layout(layout))
    }
    /// Removes size-1 axes (all, or the one given).
    pub fn squeeze(&self, axis: Option<isize>) -> Result<Self> {
        Ok(self.with_layout(self.layout.squeeze(axis)?))
    }
    /// Inserts a size-1 axis.
    pub fn unsqueeze(&self, axis: isize) -> Result<Self> {
        Ok(self.with_layout(self.layout.unsqueeze(axis)?))
    }

    // ---- materialisation -------------------------------------------------------------------

    /// A contiguous tensor with the same values: `self` when already contiguous, else one copy.
    pub fn contiguous(&self) -> Result<Self> {
        if self.layout.is_contiguous() && self.layout.offset() == 0 {
            return Ok(self.clone());
        }
        Self::guard_new("contiguous", self.shape(), self.dtype(), &self.device())?;
        let s = self.storage.contiguous(&self.layout)?;
        Ok(Self::contiguous_of(s, self.shape()))
    }

    /// Converts to `dtype` (the same tensor when the dtype already matches), with
    /// [`cast_element`](crate::cast_element)'s rules on every backend:
    ///
    /// - integer → integer keeps the low bits (wraps) and anything → bool is `!= 0` (NaN is
    ///   true), as NumPy's `astype`;
    /// - into a float dtype the exact value is rounded once, to nearest-even (f64 → f16
    ///   included), except into bfloat16 from float64 or an integer, which rounds through
    ///   float32 as ml_dtypes and PyTorch do;
    /// - float → integer truncates toward zero and **saturates** at the dtype's bounds, NaN → 0.
    ///   NumPy's result there is platform-defined (x86-64 gives the "integer indefinite" value,
    ///   e.g. int32 −2³¹ for NaN and for 1e10); tensorbridge saturates on every backend instead.
    pub fn cast(&self, dtype: DType) -> Result<Self> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        Self::guard_new("cast", self.shape(), dtype, &self.device())?;
        Ok(Self::contiguous_of(
            self.storage.cast(&self.layout, dtype)?,
            self.shape(),
        ))
    }

    // ---- elementwise -------------------------------------------------------------------------

    fn unary(&self, op: UnaryOp) -> Result<Self> {
        let src = match op {
            UnaryOp::Exp | UnaryOp::Log | UnaryOp::Sqrt => {
                self.cast(self.dtype().float_result())?
            }
            UnaryOp::Neg if self.dtype() == DType::Bool => {
                return Err(Error::Unsupported(
                    "negative of a bool tensor is not supported (as in NumPy); use logical not"
                        .into(),
                ))
            }
            _ => self.clone(),
        };
        Self::guard_new("unary", src.shape(), src.dtype(), &src.device())?;
        let s = src.storage.unary(&src.layout, op)?;
        Ok(Self::contiguous_of(s, src.shape()))
    }

    /// `-x`
    pub fn neg(&self) -> Result<Self> {
        self.unary(UnaryOp::Neg)
    }
    /// `|x|`
    pub fn abs(&self) -> Result<Self> {
        self.unary(UnaryOp::Abs)
    }
    /// `e^x`; integers compute in NumPy's float result type.
    pub fn exp(&self) -> Result<Self> {
        self.unary(UnaryOp::Exp)
    }
    /// natural log
    pub fn log(&self) -> Result<Self> {
        self.unary(UnaryOp::Log)
    }
    /// square root
    pub fn sqrt(&self) -> Result<Self> {
        self.unary(UnaryOp::Sqrt)
    }

    fn check_same_device(&self, rhs: &Self, op: &'static str) -> Result<()> {
        if self.device() != rhs.device() {
            return Err(Error::BackendMismatch {
                op,
                lhs: format!("{}:{}", B::NAME, self.device()),
                rhs: format!("{}:{}", B::NAME, rhs.device()),
            });
        }
        Ok(())
    }

    fn arith_dtype(op: BinaryOp, dtype: DType) -> Result<DType> {
        match (op, dtype) {
            (BinaryOp::Sub, DType::Bool) => Err(Error::Unsupported(
                "subtracting bool tensors is not supported (as in NumPy); use logical xor".into(),
            )),
            (BinaryOp::Div, d) if !d.is_float() => Ok(DType::F64),
            (_, d) => Ok(d),
        }
    }

    /// Casts both operands to `dtype`, broadcasts them, and hands them to `f`, whose result
    /// (of `out_dtype`) is checked for size first.
    fn broadcast_pair<R>(
        &self,
        rhs: &Self,
        dtype: DType,
        out_dtype: DType,
        op: &'static str,
        f: impl FnOnce(&Self, &Layout, &Self, &Layout) -> Result<R>,
    ) -> Result<(R, Vec<usize>)> {
        self.check_same_device(rhs, op)?;
        let shape = broadcast_shapes(op, self.shape(), rhs.shape())?;
        Self::guard_new(op, &shape, out_dtype, &self.device())?;
        let (a, b) = (self.cast(dtype)?, rhs.cast(dtype)?);
        let (la, lb) = (
            a.layout.broadcast_to(&shape)?,
            b.layout.broadcast_to(&shape)?,
        );
        Ok((f(&a, &la, &b, &lb)?, shape))
    }

    fn binary(&self, rhs: &Self, op: BinaryOp, name: &'static str) -> Result<Self> {
        let dtype = Self::arith_dtype(op, DType::promote(self.dtype(), rhs.dtype()))?;
        let (s, shape) = self.broadcast_pair(rhs, dtype, dtype, name, |a, la, b, lb| {
            a.storage.binary(la, &b.storage, lb, op)
        })?;
        Ok(Self::contiguous_of(s, &shape))
    }

    /// A one-element tensor of `dtype` holding `value`, on this tensor's device.
    fn scalar_like(&self, value: Scalar, dtype: DType) -> Result<Self> {
        let s = B::full(&self.device(), 1, dtype, value)?;
        Ok(Tensor {
            storage: Arc::new(s),
            layout: scalar_layout(&[])?,
        })
    }

    /// `self op value`: the scalar is weak (NEP 50), converted exactly into the computing dtype;
    /// a Python int outside an integer tensor's range is [`Error::IntegerOutOfBounds`] (NumPy 2's
    /// OverflowError), except in true division, which computes in float64.
    fn binary_scalar(&self, value: Scalar, op: BinaryOp, reversed: bool) -> Result<Self> {
        let dtype = match op {
            // True division of integers computes in float64 whatever the Python int is, so an int
            // outside the tensor's range is no error (NumPy: `uint8 tensor / -1` is fine).
            BinaryOp::Div if !self.dtype().is_float() => DType::F64,
            _ => Self::arith_dtype(op, value.weak_result(self.dtype())?)?,
        };
        let s = self.scalar_like(value, dtype)?;
        let (lhs, rhs) = if reversed { (&s, self) } else { (self, &s) };
        lhs.binary(rhs, op, "scalar op")
    }

    /// `self + rhs` with broadcasting and NumPy promotion.
    pub fn add(&self, rhs: &Self) -> Result<Self> {
        self.binary(rhs, BinaryOp::Add, "add")
    }
    /// `self - rhs`
    pub fn sub(&self, rhs: &Self) -> Result<Self> {
        self.binary(rhs, BinaryOp::Sub, "sub")
    }
    /// `self * rhs`
    pub fn mul(&self, rhs: &Self) -> Result<Self> {
        self.binary(rhs, BinaryOp::Mul, "mul")
    }
    /// True division `self / rhs` (integers promote to float64, as NumPy).
    pub fn div(&self, rhs: &Self) -> Result<Self> {
        self.binary(rhs, BinaryOp::Div, "div")
    }
    /// `self + scalar` (the scalar is weakly typed, NEP 50).
    pub fn add_scalar(&self, v: impl Into<Scalar>) -> Result<Self> {
        self.binary_scalar(v.into(), BinaryOp::Add, false)
    }
    /// `self - scalar`
    pub fn sub_scalar(&self, v: impl Into<Scalar>) -> Result<Self> {
        self.binary_scalar(v.into(), BinaryOp::Sub, false)
    }
    /// `scalar - self`
    pub fn rsub_scalar(&self, v: impl Into<Scalar>) -> Result<Self> {
        self.binary_scalar(v.into(), BinaryOp::Sub, true)
    }
    /// `self * scalar`
    pub fn mul_scalar(&self, v: impl Into<Scalar>) -> Result<Self> {
        self.binary_scalar(v.into(), BinaryOp::Mul, false)
    }
    /// `self / scalar`
    pub fn div_scalar(&self, v: impl Into<Scalar>) -> Result<Self> {
        self.binary_scalar(v.into(), BinaryOp::Div, false)
    }
    /// `scalar / self`
    pub fn rdiv_scalar(&self, v: impl Into<Scalar>) -> Result<Self> {
        self.binary_scalar(v.into(), BinaryOp::Div, true)
    }

    fn compare(&self, rhs: &Self, op: CmpOp) -> Result<Self> {
        let dtype = DType::promote(self.dtype(), rhs.dtype());
        let (s, shape) =
            self.broadcast_pair(rhs, dtype, DType::Bool, "compare", |a, la, b, lb| {
                a.storage.compare(la, &b.storage, lb, op)
            })?;
        Ok(Self::contiguous_of(s, &shape))
    }

    /// `self op value` → bool, exactly as NumPy 2 compares with a Python scalar: the scalar is
    /// weak, converted exactly into the tensor's dtype (integers are never compared through f64);
    /// an int outside an integer dtype's range answers every element at once (`uint8 < 300` is
    /// all true, `uint8 == -1` all false). With a bool tensor an int must fit int64, as NumPy.
    fn compare_scalar(&self, value: Scalar, op: CmpOp) -> Result<Self> {
        if let Scalar::Int(v) = value {
            if self.dtype().is_int() && !int_fits(v, self.dtype()) {
                // Above every value of the dtype when positive, below every one when negative.
                let above = v > 0;
                let answer = match op {
                    CmpOp::Eq => false,
                    CmpOp::Lt => above,
                    CmpOp::Gt => !above,
                };
                return Self::full(
                    self.shape(),
                    Scalar::Bool(answer),
                    Some(DType::Bool),
                    &self.device(),
                );
            }
        }
        let dtype = value.weak_result(self.dtype())?;
        let s = self.scalar_like(value, dtype)?;
        self.compare(&s, op)
    }

    /// Elementwise `==` → bool.
    pub fn eq(&self, rhs: &Self) -> Result<Self> {
        self.compare(rhs, CmpOp::Eq)
    }
    /// Elementwise `<` → bool.
    pub fn lt(&self, rhs: &Self) -> Result<Self> {
        self.compare(rhs, CmpOp::Lt)
    }
    /// Elementwise `>` → bool.
    pub fn gt(&self, rhs: &Self) -> Result<Self> {
        self.compare(rhs, CmpOp::Gt)
    }
    /// `== scalar` → bool.
    pub fn eq_scalar(&self, v: impl Into<Scalar>) -> Result<Self> {
        self.compare_scalar(v.into(), CmpOp::Eq)
    }
    /// `< scalar` → bool.
    pub fn lt_scalar(&self, v: impl Into<Scalar>) -> Result<Self> {
        self.compare_scalar(v.into(), CmpOp::Lt)
    }
    /// `> scalar` → bool.
    pub fn gt_scalar(&self, v: impl Into<Scalar>) -> Result<Self> {
        self.compare_scalar(v.into(), CmpOp::Gt)
    }

    // ---- matmul --------------------------------------------------------------------------------

    /// NumPy `matmul`: 1-D operands are promoted and the added axis removed; batch axes broadcast.
    pub fn matmul(&self, rhs: &Self) -> Result<Self> {
        self.check_same_device(rhs, "matmul")?;
        if self.ndim() == 0 || rhs.ndim() == 0 {
            return Err(Error::InvalidArgument(
                "matmul: operands must have at least one dimension (use * for scalars)".into(),
            ));
        }
        let a = if self.ndim() == 1 {
            self.unsqueeze(0)?
        } else {
            self.clone()
        };
        let b = if rhs.ndim() == 1 {
            rhs.unsqueeze(-1)?
        } else {
            rhs.clone()
        };
        let (m, k) = (a.shape()[a.ndim() - 2], a.shape()[a.ndim() - 1]);
        let (k2, n) = (b.shape()[b.ndim() - 2], b.shape()[b.ndim() - 1]);
        if k != k2 {
            return Err(Error::ShapeMismatch {
                op: "matmul",
                lhs: self.shape().to_vec(),
                rhs: rhs.shape().to_vec(),
            });
        }
        let batch = broadcast_shapes(
            "matmul",
            &a.shape()[..a.ndim() - 2],
            &b.shape()[..b.ndim() - 2],
        )
        .map_err(|_| Error::ShapeMismatch {
            op: "matmul",
            lhs: self.shape().to_vec(),
            rhs: rhs.shape().to_vec(),
        })?;
        let dtype = DType::promote(a.dtype(), b.dtype());
        let full = [&batch[..], &[m, n]].concat();
        Self::guard_new("matmul", &full, dtype, &self.device())?;
        let (a, b) = (a.cast(dtype)?, b.cast(dtype)?);
        let la = a.layout.broadcast_to(&[&batch[..], &[m, k]].concat())?;
        let lb = b.layout.broadcast_to(&[&batch[..], &[k, n]].concat())?;
        let s = a.storage.matmul(&la, &b.storage, &lb)?;
        let mut out = batch.clone();
        if self.ndim() > 1 {
            out.push(m);
        }
        if rhs.ndim() > 1 {
            out.push(n);
        }
        let t = Self::contiguous_of(s, &full);
        Ok(t.with_layout(Layout::contiguous(&out)))
    }

    // ---- reductions --------------------------------------------------------------------------

    /// The dtype NumPy returns for a reduction of `dtype`.
    pub fn reduce_dtype(op: ReduceOp, dtype: DType) -> DType {
        match (op, dtype.kind()) {
            (ReduceOp::Sum, DTypeKind::Bool | DTypeKind::Signed) => DType::I64,
            (ReduceOp::Sum, DTypeKind::Unsigned) => DType::U64,
            (ReduceOp::Mean, DTypeKind::Float) => dtype,
            (ReduceOp::Mean, _) => DType::F64,
            _ => dtype,
        }
    }

    fn reduce(&self, op: ReduceOp, axis: Option<isize>, keepdim: bool) -> Result<Self> {
        let name = op.name();
        let axis = axis
            .map(|a| normalize_axis(name, a, self.ndim()))
            .transpose()?;
        let reduced_len = axis.map_or(self.elem_count(), |a| self.shape()[a]);
        let mut out_shape: Vec<usize> = self.shape().to_vec();
        match axis {
            Some(a) => {
                out_shape.remove(a);
            }
            None => out_shape.clear(),
        }
        // As NumPy: an empty reduced axis has no max/min even when the result is empty too.
        if reduced_len == 0 && matches!(op, ReduceOp::Max | ReduceOp::Min) {
            return Err(Error::InvalidArgument(format!(
                "zero-size tensor of shape {:?} to reduction operation {name} which has no identity",
                self.shape()
            )));
        }
        let out_dtype = Self::reduce_dtype(op, self.dtype());
        // Float sums and means accumulate in f64 on every backend and round once into the dtype
        // with the core's casts: summing in the input's precision loses the small terms (in
        // bfloat16, 256 + 1 is 256; libtorch's float32 sum was off by several ulps, candle's
        // bfloat16 sum of [256, 1 x 7] was 256). Backends reduce in the dtype they are asked for.
        let acc_dtype = if out_dtype.is_float() && matches!(op, ReduceOp::Sum | ReduceOp::Mean) {
            DType::F64
        } else {
            out_dtype
        };
        let mut s = self.storage.reduce(&self.layout, op, axis, acc_dtype)?;
        if acc_dtype != out_dtype {
            s = s.cast(&Layout::contiguous(&out_shape), out_dtype)?;
        }
        let t = Self::contiguous_of(s, &out_shape);
        if !keepdim {
            return Ok(t);
        }
        let kept: Vec<usize> = match axis {
            Some(a) => {
                let mut k = self.shape().to_vec();
                k[a] = 1;
                k
            }
            None => vec![1; self.ndim()],
        };
        Ok(t.with_layout(Layout::contiguous(&kept)))
    }

    /// Sum over all elements or one axis (ints accumulate in int64/uint64, as NumPy).
    pub fn sum(&self, axis: Option<isize>, keepdim: bool) -> Result<Self> {
        self.reduce(ReduceOp::Sum, axis, keepdim)
    }
    /// Mean over all elements or one axis (ints give float64).
    pub fn mean(&self, axis: Option<isize>, keepdim: bool) -> Result<Self> {
        self.reduce(ReduceOp::Mean, axis, keepdim)
    }
    /// Maximum; an error on an empty reduction.
    pub fn max(&self, axis: Option<isize>, keepdim: bool) -> Result<Self> {
        self.reduce(ReduceOp::Max, axis, keepdim)
    }
    /// Minimum; an error on an empty reduction.
    pub fn min(&self, axis: Option<isize>, keepdim: bool) -> Result<Self> {
        self.reduce(ReduceOp::Min, axis, keepdim)
    }

    // ---- host transfer ---------------------------------------------------------------------

    /// The view's values as an `ndarray` of `T`; an error when `T` is not the tensor's dtype
    /// (cast explicitly with [`Tensor::cast`] or use [`Tensor::to_host_as`]).
    pub fn to_host_array<T: Element>(&self) -> Result<ArrayD<T>> {
        if T::DTYPE != self.dtype() {
            return Err(Error::DTypeMismatch {
                op: "to_host_array",
                actual: self.dtype(),
                requested: T::DTYPE,
            });
        }
        self.storage.to_host(&self.layout, T::DTYPE)?.into_typed()
    }

    /// The view's values as a dtype-erased host array. Transfers only the view's elements.
    pub fn to_host(&self) -> Result<HostArray> {
        self.storage.to_host(&self.layout, self.dtype())
    }

    /// The view's values converted to `dtype` on the way to the host (one pass, no intermediate).
    pub fn to_host_as(&self, dtype: DType) -> Result<HostArray> {
        self.storage.to_host(&self.layout, dtype)
    }

    /// Like [`Tensor::to_host_array`], but hands the storage over without copying when this tensor
    /// is its only owner and the view covers all of it in row-major order.
    pub fn into_host_array<T: Element>(self) -> Result<ArrayD<T>> {
        if T::DTYPE != self.dtype() {
            return Err(Error::DTypeMismatch {
                op: "into_host_array",
                actual: self.dtype(),
                requested: T::DTYPE,
            });
        }
        match Arc::try_unwrap(self.storage) {
            Ok(s) => s.into_host(&self.layout, T::DTYPE)?.into_typed(),
            Err(shared) => shared.to_host(&self.layout, T::DTYPE)?.into_typed(),
        }
    }

    /// Writes the view's values into a caller's buffer (any strides) of the same shape, converting
    /// to `T`: memory maps, pinned pools, preallocated arrays.
    pub fn to_host_into<T: Element>(&self, out: &mut ArrayViewMutD<'_, T>) -> Result<()> {
        self.storage.to_host_into(&self.layout, out)
    }

    /// Writes the view's values in C order into `out` (exactly [`Tensor::elem_count`] elements,
    /// possibly uninitialised: every one is written, none read), converting to `T`: the
    /// C-contiguous case of [`Tensor::to_host_into`] without an `ndarray` view.
    /// [`Error::ShapeMismatch`] when `out` has another length (the backend checks it, once).
    pub fn to_host_into_contiguous<T: Element>(&self, out: &mut [MaybeUninit<T>]) -> Result<()> {
        self.storage.to_host_into_contiguous(&self.layout, out)
    }

    /// A zero-copy `ndarray` view of the tensor, when its storage is host memory of dtype `T`.
    pub fn host_view<T: Element>(&self) -> Result<ArrayViewD<'_, T>> {
        if T::DTYPE != self.dtype() {
            return Err(Error::DTypeMismatch {
                op: "host_view",
                actual: self.dtype(),
                requested: T::DTYPE,
            });
        }
        let bytes = self.storage.host_bytes().ok_or_else(|| {
            Error::DeviceUnavailable(format!(
                "host_view: the {} tensor's storage is on {}, not in host memory; use to_host_array",
                B::NAME,
                self.device()
            ))
        })?;
        let len = bytes.len() / std::mem::size_of::<T>();
        if bytes.as_ptr() as usize % std::mem::align_of::<T>() != 0 {
            return Err(Error::InvalidArgument(
                "host_view: storage is not aligned for its dtype".into(),
            ));
        }
        // SAFETY: the backend guarantees `host_bytes` is the storage of dtype `T::DTYPE` (checked
        // above), i.e. `len` initialised values of the one sealed type `T`; alignment is checked;
        // the slice borrows `self`, which keeps the storage alive and immutable.
        let data = unsafe { std::slice::from_raw_parts(bytes.as_ptr() as *const T, len) };
        strided_view(data, &self.layout)
    }
}

macro_rules! impl_operator {
    ($trait:ident, $method:ident, $tensor_fn:ident, $scalar_fn:ident) => {
        impl<B: Backend> std::ops::$trait<&Tensor<B>> for &Tensor<B> {
            type Output = Result<Tensor<B>>;
            fn $method(self, rhs: &Tensor<B>) -> Result<Tensor<B>> {
                Tensor::$tensor_fn(self, rhs)
            }
        }
        impl<B: Backend> std::ops::$trait<Tensor<B>> for Tensor<B> {
            type Output = Result<Tensor<B>>;
            fn $method(self, rhs: Tensor<B>) -> Result<Tensor<B>> {
                Tensor::$tensor_fn(&self, &rhs)
            }
        }
        impl<B: Backend> std::ops::$trait<f64> for &Tensor<B> {
            type Output = Result<Tensor<B>>;
            fn $method(self, rhs: f64) -> Result<Tensor<B>> {
                Tensor::$scalar_fn(self, rhs)
            }
        }
        impl<B: Backend> std::ops::$trait<i64> for &Tensor<B> {
            type Output = Result<Tensor<B>>;
            fn $method(self, rhs: i64) -> Result<Tensor<B>> {
                Tensor::$scalar_fn(self, rhs)
            }
        }
    };
}
impl_operator!(Add, add, add, add_scalar);
impl_operator!(Sub, sub, sub, sub_scalar);
impl_operator!(Mul, mul, mul, mul_scalar);
impl_operator!(Div, div, div, div_scalar);

impl<B: Backend> std::ops::Neg for &Tensor<B> {
    type Output = Result<Tensor<B>>;
    fn neg(self) -> Result<Tensor<B>> {
        Tensor::neg(self)
    }
}
