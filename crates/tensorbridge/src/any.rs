//! [`AnyTensor`]: one handle over a [`Tensor<B>`] of every compiled backend. Ops between tensors of
//! different backends or devices are errors that name `.to(...)`; nothing is copied behind the
//! user's back.

use std::fmt;
use std::str::FromStr;

use tensorbridge_core::ndarray::ArrayViewMutD;
use tensorbridge_core::{DType, Device, Element, Error, HostArray, Layout, Result, Scalar, Tensor};

#[cfg(feature = "cpu")]
use tensorbridge_cpu::Cpu;
#[cfg(feature = "cuda")]
use tensorbridge_cuda::Cuda;
#[cfg(feature = "lazy")]
use tensorbridge_lazy::{Lazy, LazyTensor};
#[cfg(feature = "torch")]
use tensorbridge_torch::Torch;

#[cfg(not(feature = "cpu"))]
compile_error!("tensorbridge needs at least one backend feature (`cpu`)");

/// The backends this build knows by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// `tensorbridge-cpu` (ndarray).
    Cpu,
    /// `tensorbridge-torch` (libtorch through tch; CPU and CUDA devices).
    #[cfg(feature = "torch")]
    Torch,
    /// `tensorbridge-lazy` over the CPU backend: ops are recorded, evaluated on demand, fused.
    #[cfg(feature = "lazy")]
    LazyCpu,
    /// `tensorbridge-cuda` (candle-core: a CUDA device, or candle's CPU device).
    #[cfg(feature = "cuda")]
    Cuda,
}

impl BackendKind {
    /// The backend's name, as users write it.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            #[cfg(feature = "torch")]
            BackendKind::Torch => "torch",
            #[cfg(feature = "lazy")]
            BackendKind::LazyCpu => "lazy:cpu",
            #[cfg(feature = "cuda")]
            BackendKind::Cuda => "cuda",
        }
    }

    /// The backends compiled into this build.
    pub fn compiled() -> &'static [BackendKind] {
        &[
            BackendKind::Cpu,
            #[cfg(feature = "torch")]
            BackendKind::Torch,
            #[cfg(feature = "lazy")]
            BackendKind::LazyCpu,
            #[cfg(feature = "cuda")]
            BackendKind::Cuda,
        ]
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackendKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "cpu" => Ok(BackendKind::Cpu),
            #[cfg(feature = "torch")]
            "torch" => Ok(BackendKind::Torch),
            #[cfg(feature = "lazy")]
            "lazy:cpu" | "lazy" => Ok(BackendKind::LazyCpu),
            #[cfg(feature = "cuda")]
            "cuda" => Ok(BackendKind::Cuda),
            // A compiled backend matched above; this names the ones this build lacks.
            #[allow(unreachable_patterns)]
            "torch" | "cuda" | "lazy:cpu" | "lazy" => {
                let compiled: Vec<&str> =
                    BackendKind::compiled().iter().map(|k| k.name()).collect();
                Err(Error::DeviceUnavailable(format!(
                    "backend '{s}' is not compiled into this build of tensorbridge (compiled: {}); \
                     build the '{s}' variant (cargo feature `{}`) to use it",
                    compiled.join(", "),
                    s.split(':').next().unwrap_or(s)
                )))
            }
            other => Err(Error::InvalidArgument(format!(
                "unknown backend '{other}'; expected one of: cpu, lazy:cpu, torch, cuda"
            ))),
        }
    }
}

/// A tensor of any compiled backend.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum AnyTensor {
    /// A CPU tensor.
    Cpu(Tensor<Cpu>),
    /// A libtorch tensor (CPU or CUDA).
    #[cfg(feature = "torch")]
    Torch(Tensor<Torch>),
    /// A lazy tensor over the CPU backend (a node of a recorded graph).
    #[cfg(feature = "lazy")]
    LazyCpu(Tensor<Lazy<Cpu>>),
    /// A tensor of the CUDA (candle) backend.
    #[cfg(feature = "cuda")]
    Cuda(Tensor<Cuda>),
}

/// Runs `$body` with `$t` bound to the inner `Tensor<B>`.
macro_rules! dispatch {
    ($s:expr, $t:ident => $body:expr) => {
        match $s {
            AnyTensor::Cpu($t) => $body,
            #[cfg(feature = "torch")]
            AnyTensor::Torch($t) => $body,
            #[cfg(feature = "lazy")]
            AnyTensor::LazyCpu($t) => $body,
            #[cfg(feature = "cuda")]
            AnyTensor::Cuda($t) => $body,
        }
    };
}

/// Like `dispatch!`, wrapping the resulting `Tensor<B>` back into the same variant.
macro_rules! map_tensor {
    ($s:expr, $t:ident => $body:expr) => {
        Ok(match $s {
            AnyTensor::Cpu($t) => AnyTensor::Cpu($body?),
            #[cfg(feature = "torch")]
            AnyTensor::Torch($t) => AnyTensor::Torch($body?),
            #[cfg(feature = "lazy")]
            AnyTensor::LazyCpu($t) => AnyTensor::LazyCpu($body?),
            #[cfg(feature = "cuda")]
            AnyTensor::Cuda($t) => AnyTensor::Cuda($body?),
        })
    };
}

/// Pairs two handles of the same backend, or fails with [`Error::BackendMismatch`].
macro_rules! zip_tensors {
    ($a:expr, $b:expr, $op:expr, ($x:ident, $y:ident) => $body:expr) => {
        Ok(match ($a, $b) {
            (AnyTensor::Cpu($x), AnyTensor::Cpu($y)) => AnyTensor::Cpu($body?),
            #[cfg(feature = "torch")]
            (AnyTensor::Torch($x), AnyTensor::Torch($y)) => AnyTensor::Torch($body?),
            #[cfg(feature = "lazy")]
            (AnyTensor::LazyCpu($x), AnyTensor::LazyCpu($y)) => AnyTensor::LazyCpu($body?),
            #[cfg(feature = "cuda")]
            (AnyTensor::Cuda($x), AnyTensor::Cuda($y)) => AnyTensor::Cuda($body?),
            #[allow(unreachable_patterns)]
            (l, r) => {
                return Err(Error::BackendMismatch {
                    op: $op,
                    lhs: l.placement(),
                    rhs: r.placement(),
                })
            }
        })
    };
}

/// Creates a tensor on the backend `$kind` by calling `Tensor::<B>::$ctor(args..)`.
macro_rules! create {
    ($kind:expr, $ctor:ident($($arg:expr),*)) => {
        Ok(match $kind {
            BackendKind::Cpu => AnyTensor::Cpu(Tensor::<Cpu>::$ctor($($arg),*)?),
            #[cfg(feature = "torch")]
            BackendKind::Torch => AnyTensor::Torch(Tensor::<Torch>::$ctor($($arg),*)?),
            #[cfg(feature = "lazy")]
            BackendKind::LazyCpu => AnyTensor::LazyCpu(Tensor::<Lazy<Cpu>>::$ctor($($arg),*)?),
            #[cfg(feature = "cuda")]
            BackendKind::Cuda => AnyTensor::Cuda(Tensor::<Cuda>::$ctor($($arg),*)?),
        })
    };
}

impl AnyTensor {
    // ---- creation ------------------------------------------------------------------------------

    /// A tensor holding host data on `kind`/`device`.
    pub fn from_host(kind: BackendKind, data: HostArray, device: &Device) -> Result<Self> {
        create!(kind, from_host(data, device))
    }
    /// `shape` filled with `value` (dtype defaults to the scalar's).
    pub fn full(
        kind: BackendKind,
        shape: &[usize],
        value: Scalar,
        dtype: Option<DType>,
        device: &Device,
    ) -> Result<Self> {
        create!(kind, full(shape, value, dtype, device))
    }
    /// NumPy `arange`.
    pub fn arange(
        kind: BackendKind,
        start: Scalar,
        stop: Scalar,
        step: Scalar,
        dtype: Option<DType>,
        device: &Device,
    ) -> Result<Self> {
        create!(kind, arange(start, stop, step, dtype, device))
    }

    // ---- properties ----------------------------------------------------------------------------

    /// The backend.
    pub fn backend(&self) -> BackendKind {
        match self {
            AnyTensor::Cpu(_) => BackendKind::Cpu,
            #[cfg(feature = "torch")]
            AnyTensor::Torch(_) => BackendKind::Torch,
            #[cfg(feature = "lazy")]
            AnyTensor::LazyCpu(_) => BackendKind::LazyCpu,
            #[cfg(feature = "cuda")]
            AnyTensor::Cuda(_) => BackendKind::Cuda,
        }
    }
    /// `"backend:device"`, for error messages.
    pub fn placement(&self) -> String {
        format!("{}:{}", self.backend(), self.device())
    }
    /// Blocks until the work queued on this tensor's device has finished.
    pub fn synchronize(&self) -> Result<()> {
        dispatch!(self, t => t.synchronize())
    }
    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        dispatch!(self, t => t.shape())
    }
    /// The element type.
    pub fn dtype(&self) -> DType {
        dispatch!(self, t => t.dtype())
    }
    /// The device.
    pub fn device(&self) -> Device {
        dispatch!(self, t => t.device())
    }
    /// Number of elements.
    pub fn elem_count(&self) -> usize {
        dispatch!(self, t => t.elem_count())
    }
    /// The view's layout over its storage.
    pub fn layout(&self) -> &Layout {
        dispatch!(self, t => t.layout())
    }
    /// The storage bytes when they are host memory readable in place (zero-copy export).
    pub fn host_bytes(&self) -> Option<&[u8]> {
        dispatch!(self, t => tensorbridge_core::Backend::host_bytes(t.storage().as_ref()))
    }
    /// An opaque keep-alive for the storage behind [`AnyTensor::host_bytes`].
    pub fn storage_owner(&self) -> std::sync::Arc<dyn std::any::Any + Send + Sync> {
        dispatch!(self, t => t.storage().clone() as std::sync::Arc<dyn std::any::Any + Send + Sync>)
    }

    // ---- elementwise -----------------------------------------------------------------------------

    /// `a + b`
    pub fn add(&self, rhs: &Self) -> Result<Self> {
        zip_tensors!(self, rhs, "add", (a, b) => a.add(b))
    }
    /// `a - b`
    pub fn sub(&self, rhs: &Self) -> Result<Self> {
        zip_tensors!(self, rhs, "sub", (a, b) => a.sub(b))
    }
    /// `a * b`
    pub fn mul(&self, rhs: &Self) -> Result<Self> {
        zip_tensors!(self, rhs, "mul", (a, b) => a.mul(b))
    }
    /// `a / b` (true division)
    pub fn div(&self, rhs: &Self) -> Result<Self> {
        zip_tensors!(self, rhs, "div", (a, b) => a.div(b))
    }
    /// `a @ b`
    pub fn matmul(&self, rhs: &Self) -> Result<Self> {
        zip_tensors!(self, rhs, "matmul", (a, b) => a.matmul(b))
    }
    /// `a == b`
    pub fn eq(&self, rhs: &Self) -> Result<Self> {
        zip_tensors!(self, rhs, "eq", (a, b) => a.eq(b))
    }
    /// `a < b`
    pub fn lt(&self, rhs: &Self) -> Result<Self> {
        zip_tensors!(self, rhs, "lt", (a, b) => a.lt(b))
    }
    /// `a > b`
    pub fn gt(&self, rhs: &Self) -> Result<Self> {
        zip_tensors!(self, rhs, "gt", (a, b) => a.gt(b))
    }
    /// `a + s`
    pub fn add_scalar(&self, s: Scalar) -> Result<Self> {
        map_tensor!(self, t => t.add_scalar(s))
    }
    /// `a - s`
    pub fn sub_scalar(&self, s: Scalar) -> Result<Self> {
        map_tensor!(self, t => t.sub_scalar(s))
    }
    /// `s - a`
    pub fn rsub_scalar(&self, s: Scalar) -> Result<Self> {
        map_tensor!(self, t => t.rsub_scalar(s))
    }
    /// `a * s`
    pub fn mul_scalar(&self, s: Scalar) -> Result<Self> {
        map_tensor!(self, t => t.mul_scalar(s))
    }
    /// `a / s`
    pub fn div_scalar(&self, s: Scalar) -> Result<Self> {
        map_tensor!(self, t => t.div_scalar(s))
    }
    /// `s / a`
    pub fn rdiv_scalar(&self, s: Scalar) -> Result<Self> {
        map_tensor!(self, t => t.rdiv_scalar(s))
    }
    /// `a == s`
    pub fn eq_scalar(&self, s: Scalar) -> Result<Self> {
        map_tensor!(self, t => t.eq_scalar(s))
    }
    /// `a < s`
    pub fn lt_scalar(&self, s: Scalar) -> Result<Self> {
        map_tensor!(self, t => t.lt_scalar(s))
    }
    /// `a > s`
    pub fn gt_scalar(&self, s: Scalar) -> Result<Self> {
        map_tensor!(self, t => t.gt_scalar(s))
    }
    /// `-a`
    pub fn neg(&self) -> Result<Self> {
        map_tensor!(self, t => t.neg())
    }
    /// `|a|`
    pub fn abs(&self) -> Result<Self> {
        map_tensor!(self, t => t.abs())
    }
    /// `e^a`
    pub fn exp(&self) -> Result<Self> {
        map_tensor!(self, t => t.exp())
    }
    /// `ln a`
    pub fn log(&self) -> Result<Self> {
        map_tensor!(self, t => t.log())
    }
    /// `sqrt a`
    pub fn sqrt(&self) -> Result<Self> {
        map_tensor!(self, t => t.sqrt())
    }

    // ---- reductions ----------------------------------------------------------------------------

    /// Sum over all or one axis.
    pub fn sum(&self, axis: Option<isize>, keepdim: bool) -> Result<Self> {
        map_tensor!(self, t => t.sum(axis, keepdim))
    }
    /// Mean over all or one axis.
    pub fn mean(&self, axis: Option<isize>, keepdim: bool) -> Result<Self> {
        map_tensor!(self, t => t.mean(axis, keepdim))
    }
    /// Maximum over all or one axis.
    pub fn max(&self, axis: Option<isize>, keepdim: bool) -> Result<Self> {
        map_tensor!(self, t => t.max(axis, keepdim))
    }
    /// Minimum over all or one axis.
    pub fn min(&self, axis: Option<isize>, keepdim: bool) -> Result<Self> {
        map_tensor!(self, t => t.min(axis, keepdim))
    }

    // ---- views -----------------------------------------------------------------------------------

    /// Reshape (a view when possible).
    pub fn reshape(&self, shape: &[isize]) -> Result<Self> {
        map_tensor!(self, t => t.reshape(shape))
    }
    /// Swap two axes.
    pub fn transpose(&self, a: isize, b: isize) -> Result<Self> {
        map_tensor!(self, t => t.transpose(a, b))
    }
    /// Reverse the axes.
    pub fn t(&self) -> Self {
        dispatch!(self, x => AnyTensor::from(x.t()))
    }
    /// Reorder the axes.
    pub fn permute(&self, perm: &[isize]) -> Result<Self> {
        map_tensor!(self, t => t.permute(perm))
    }
    /// Slice one axis.
    pub fn slice(
        &self,
        axis: isize,
        start: Option<isize>,
        stop: Option<isize>,
        step: isize,
    ) -> Result<Self> {
        map_tensor!(self, t => t.slice(axis, start, stop, step))
    }
    /// Index one axis, dropping it.
    pub fn select(&self, axis: isize, index: isize) -> Result<Self> {
        map_tensor!(self, t => t.select(axis, index))
    }
    /// Broadcast to a shape.
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Self> {
        map_tensor!(self, t => t.broadcast_to(shape))
    }
    /// Remove size-1 axes.
    pub fn squeeze(&self, axis: Option<isize>) -> Result<Self> {
        map_tensor!(self, t => t.squeeze(axis))
    }
    /// Insert a size-1 axis.
    pub fn unsqueeze(&self, axis: isize) -> Result<Self> {
        map_tensor!(self, t => t.unsqueeze(axis))
    }
    /// Convert the dtype.
    pub fn cast(&self, dtype: DType) -> Result<Self> {
        map_tensor!(self, t => t.cast(dtype))
    }
    /// Materialise as contiguous.
    pub fn contiguous(&self) -> Result<Self> {
        map_tensor!(self, t => t.contiguous())
    }

    // ---- transfer --------------------------------------------------------------------------------

    /// The values on the host.
    pub fn to_host(&self) -> Result<HostArray> {
        dispatch!(self, t => t.to_host())
    }
    /// The values on the host, converted to `dtype` in the same pass.
    pub fn to_host_as(&self, dtype: DType) -> Result<HostArray> {
        dispatch!(self, t => t.to_host_as(dtype))
    }
    /// The values written into a caller's buffer.
    pub fn to_host_into<T: Element>(&self, out: &mut ArrayViewMutD<'_, T>) -> Result<()> {
        dispatch!(self, t => t.to_host_into(out))
    }
    /// The same values on another backend/device (a copy through the host when they differ).
    pub fn to(&self, kind: BackendKind, device: &Device) -> Result<Self> {
        if kind == self.backend() && *device == self.device() {
            return Ok(self.clone());
        }
        // Between the CPU backend and the lazy one over it nothing moves: a lazy leaf shares the
        // eager storage, an evaluated lazy tensor hands over its value.
        #[cfg(feature = "lazy")]
        match (self, kind) {
            (AnyTensor::Cpu(t), BackendKind::LazyCpu) if *device == t.device() => {
                return Ok(AnyTensor::LazyCpu(Lazy::lift(t)?));
            }
            (AnyTensor::LazyCpu(t), BackendKind::Cpu) if *device == t.device() => {
                let s = tensorbridge_lazy::Session::<Cpu>::new(t.device());
                return Ok(AnyTensor::Cpu(t.eval(&s)?));
            }
            _ => {}
        }
        Self::from_host(kind, self.to_host()?, device)
    }
}

/// Deferred execution: these see through the lazy variant; on eager tensors they are trivial.
impl AnyTensor {
    /// True for tensors of a lazy backend.
    pub fn is_lazy(&self) -> bool {
        match self {
            #[cfg(feature = "lazy")]
            AnyTensor::LazyCpu(_) => true,
            _ => false,
        }
    }
    /// True when the values exist (always, for eager tensors); nothing is computed by asking.
    pub fn is_evaluated(&self) -> bool {
        match self {
            #[cfg(feature = "lazy")]
            AnyTensor::LazyCpu(t) => t.is_evaluated(),
            _ => true,
        }
    }
    /// Computes the values of a lazy tensor now (implicitly, on its own device); a no-op for
    /// eager tensors and evaluated ones.
    pub fn evaluate(&self) -> Result<()> {
        self.synchronize()
    }
    /// The pending computation of an unevaluated lazy tensor as one expression; `None` otherwise.
    pub fn pending_expression(&self) -> Option<String> {
        match self {
            #[cfg(feature = "lazy")]
            AnyTensor::LazyCpu(t) if !t.is_evaluated() => Some(t.expression()),
            _ => None,
        }
    }
    /// The graph behind a lazy tensor, as text or Graphviz DOT; an error for eager tensors.
    pub fn graph(&self, dot: bool) -> Result<String> {
        #[cfg(not(feature = "lazy"))]
        let _ = dot;
        match self {
            #[cfg(feature = "lazy")]
            AnyTensor::LazyCpu(t) => Ok(if dot { t.graph_dot() } else { t.graph() }),
            other => Err(Error::InvalidArgument(format!(
                "graph(): the tensor is on the eager backend {} and has no graph; make it lazy \
                 with .to(backend='lazy:{}') or tb.lazy(...)",
                other.backend(),
                other.backend()
            ))),
        }
    }
}

impl From<Tensor<Cpu>> for AnyTensor {
    fn from(t: Tensor<Cpu>) -> Self {
        AnyTensor::Cpu(t)
    }
}

#[cfg(feature = "torch")]
impl From<Tensor<Torch>> for AnyTensor {
    fn from(t: Tensor<Torch>) -> Self {
        AnyTensor::Torch(t)
    }
}

#[cfg(feature = "lazy")]
impl From<Tensor<Lazy<Cpu>>> for AnyTensor {
    fn from(t: Tensor<Lazy<Cpu>>) -> Self {
        AnyTensor::LazyCpu(t)
    }
}

#[cfg(feature = "cuda")]
impl From<Tensor<Cuda>> for AnyTensor {
    fn from(t: Tensor<Cuda>) -> Self {
        AnyTensor::Cuda(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_missing_backends_have_clear_errors() {
        let e = "tpu".parse::<BackendKind>().unwrap_err().to_string();
        assert!(e.contains("unknown backend 'tpu'"), "{e}");
        let compiled: Vec<&str> = BackendKind::compiled().iter().map(|k| k.name()).collect();
        for name in ["torch", "cuda"]
            .into_iter()
            .filter(|n| !compiled.contains(n))
        {
            let e = name.parse::<BackendKind>().unwrap_err().to_string();
            assert!(e.contains("not compiled"), "{e}");
            assert!(e.contains(&format!("feature `{name}`")), "{e}");
        }
    }

    #[test]
    fn any_tensor_round_trips_through_ops() {
        let h = HostArray::from(tensorbridge_core::ndarray::arr2(&[[1i64, 2], [4, 8]]).into_dyn());
        let t = AnyTensor::from_host(BackendKind::Cpu, h, &Device::Cpu).unwrap();
        let u = t.mul_scalar(Scalar::Int(2)).unwrap().t();
        let back = u.to_host().unwrap().into_typed::<i64>().unwrap();
        assert_eq!(back.as_slice_memory_order().map(|s| s.len()), Some(4));
        assert_eq!(back[[0, 1]], 8);
        assert_eq!(
            t.to(BackendKind::Cpu, &Device::Cpu).unwrap().shape(),
            &[2, 2]
        );
    }
}
