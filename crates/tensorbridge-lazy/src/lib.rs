//! # tensorbridge-lazy
//!
//! Deferred execution, the TensorFlow 1 way: [`Lazy<B>`] is a [`Backend`] decorator over any
//! backend `B` that records every op into a graph instead of running it. Nothing is computed
//! until a value is needed: a host transfer (`to_host*`, `host_view`, `into_host_array`,
//! `synchronize`), [`LazyTensor::eval`], or [`Session::run`]. Then the graph is evaluated once:
//!
//! - **common-subexpression elimination**: structurally identical subgraphs (same ops, scalars,
//!   inputs and views) are computed once, and so is a subgraph shared by several fetches;
//! - **fusion**: on host memory (the CPU backend, or any backend whose storage is host memory),
//!   every chain of elementwise ops (unary, binary, comparisons, casts, Python-scalar operands,
//!   broadcasts) runs as one fused kernel: one parallel pass over memory, no full-size
//!   temporaries (see `fused.rs`). Everything else runs as `B`'s own op.
//!
//! ## The session rule
//!
//! A [`Session`] owns the target device (and the evaluation options) and evaluates graphs:
//! `session.run(&[&a, &b])` or `t.eval(&session)`, which return tensors of `B`. Evaluating
//! *explicitly* always names its session: in Rust the signatures require one; in Python
//! `t.eval()` with no `session=` and no default session (`with tb.Session() as s:`) is an error,
//! as in TF1. *Conversions* never need one: `to_host*` (in Python `.numpy()`, `np.asarray`)
//! evaluate implicitly with the default options on the tensor's own device, because handing
//! data to the host is the moment of evaluation. A fetch on another device than the session's
//! is an error.
//!
//! An evaluated tensor keeps its value (tensors are immutable, so it cannot change): converting
//! it again costs nothing, and a zero-copy host view points into that value. Intermediate results
//! are not kept.
//!
//! It owns no backend and no kernels other than the fused elementwise one.
//!
//! ```
//! use tensorbridge_core::{Device, Tensor};
//! use tensorbridge_cpu::Cpu;
//! use tensorbridge_lazy::{Lazy, LazyTensor, Session};
//!
//! let x = Tensor::<Lazy<Cpu>>::from_slice(&[4.0f32, 4.0, 12.0], &[3], &Device::Cpu)?;
//! let y = (&(&x * 2.0)? + 1.0)?.sqrt()?; // recorded, not computed
//! assert!(!y.is_evaluated());
//! let session = Session::<Cpu>::new(Device::Cpu);
//! let value: Tensor<Cpu> = y.eval(&session)?; // one fused pass
//! assert_eq!(value.to_host_array::<f32>()?.as_slice(), Some(&[3.0f32, 3.0, 5.0][..]));
//! assert_eq!(session.last_run_stats().fused_kernels, 1);
//! # Ok::<(), tensorbridge_core::Error>(())
//! ```
#![warn(missing_docs)]

mod exec;
mod fused;
mod graph;
mod registration;

use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::sync::{Arc, Mutex};

use ndarray::ArrayViewMutD;
use tensorbridge_core::{
    Backend, BinaryOp, CmpOp, DType, Device, DeviceKind, DeviceMemory, Element, Error,
    ExternalMemory, HostArray, Layout, ReduceOp, Result, Scalar, Tensor, UnaryOp,
};

pub use exec::{RunStats, SessionOptions};
use graph::{Input, Node, Op};
pub use registration::entry;

/// A backend decorator: storage of `Lazy<B>` is a node of a recorded graph whose value, once
/// computed, is storage of `B`.
pub struct Lazy<B: Backend> {
    node: Arc<Node<B>>,
}

impl<B: Backend> Clone for Lazy<B> {
    fn clone(&self) -> Self {
        Lazy {
            node: Arc::clone(&self.node),
        }
    }
}

impl<B: Backend> Lazy<B> {
    /// A lazy tensor over an existing tensor of `B`, sharing its storage (no copy): the leaf of
    /// a graph.
    pub fn lift(t: &Tensor<B>) -> Result<Tensor<Lazy<B>>> {
        let storage = Arc::clone(t.storage());
        let len = storage.len();
        let l = t.layout();
        let whole = l.is_contiguous() && l.offset() == 0 && l.elem_count() == len;
        let shape = if whole { l.shape().to_vec() } else { vec![len] };
        let node = Node::source(storage, shape);
        Tensor::from_storage(Arc::new(Lazy { node }), t.layout().clone())
    }

    /// True once the value exists (sources always; ops after evaluation).
    pub fn is_evaluated(&self) -> bool {
        self.node.is_evaluated()
    }

    /// The value, evaluating implicitly (default options, the node's own device) if needed.
    fn materialize(&self) -> Result<&Arc<B>> {
        if let Some(v) = self.node.value.get() {
            return Ok(v);
        }
        exec::evaluate(
            std::slice::from_ref(&self.node),
            self.node.device,
            SessionOptions::default(),
        )?;
        self.node.value.get().ok_or_else(|| Error::Backend {
            backend: "lazy",
            message: "evaluation finished without a value".into(),
        })
    }

    fn record(&self, op: Op, inputs: Vec<Input<B>>, dtype: DType, shape: Vec<usize>) -> Self {
        Lazy {
            node: Node::new(op, inputs, dtype, shape, self.node.device),
        }
    }

    fn input(&self, layout: &Layout) -> Input<B> {
        Input {
            node: Arc::clone(&self.node),
            layout: layout.clone(),
        }
    }

    /// Fails now, as the eager backend would, when `device` is not one `B` has: an empty storage
    /// costs nothing and runs `B`'s own device check.
    fn check_device(device: &Device, dtype: DType) -> Result<()> {
        B::full(device, 0, dtype, Scalar::Int(0)).map(drop)
    }
}

impl<B: Backend> Backend for Lazy<B> {
    const NAME: &'static str = "lazy";
    const DEVICE_KINDS: &'static [DeviceKind] = B::DEVICE_KINDS;

    fn device(&self) -> Device {
        self.node.device
    }
    fn dtype(&self) -> DType {
        self.node.dtype
    }
    fn len(&self) -> usize {
        self.node.len
    }
    fn is_empty(&self) -> bool {
        self.node.len == 0
    }

    /// Host data goes to `B` at once (the graph's inputs are data, as TF1's constants).
    fn from_host(device: &Device, data: HostArray) -> Result<Self> {
        let shape = data.shape().to_vec();
        let storage = B::from_host(device, data)?;
        Ok(Lazy {
            node: Node::source(Arc::new(storage), shape),
        })
    }

    fn full(device: &Device, len: usize, dtype: DType, value: Scalar) -> Result<Self> {
        Self::check_device(device, dtype)?;
        Ok(Lazy {
            node: Node::new(Op::Full(value), Vec::new(), dtype, vec![len], *device),
        })
    }

    fn unary(&self, layout: &Layout, op: UnaryOp) -> Result<Self> {
        let transcendental = matches!(op, UnaryOp::Exp | UnaryOp::Log | UnaryOp::Sqrt);
        if transcendental && !self.dtype().is_float() {
            return Err(Error::UnsupportedDType {
                op: "exp/log/sqrt",
                dtype: self.dtype(),
            });
        }
        Ok(self.record(
            Op::Unary(op),
            vec![self.input(layout)],
            self.dtype(),
            layout.shape().to_vec(),
        ))
    }

    fn binary(
        &self,
        layout: &Layout,
        rhs: &Self,
        rhs_layout: &Layout,
        op: BinaryOp,
    ) -> Result<Self> {
        Ok(self.record(
            Op::Binary(op),
            vec![self.input(layout), rhs.input(rhs_layout)],
            self.dtype(),
            layout.shape().to_vec(),
        ))
    }

    fn compare(&self, layout: &Layout, rhs: &Self, rhs_layout: &Layout, op: CmpOp) -> Result<Self> {
        Ok(self.record(
            Op::Compare(op),
            vec![self.input(layout), rhs.input(rhs_layout)],
            DType::Bool,
            layout.shape().to_vec(),
        ))
    }

    fn matmul(&self, layout: &Layout, rhs: &Self, rhs_layout: &Layout) -> Result<Self> {
        let (ls, rs) = (layout.shape(), rhs_layout.shape());
        let nd = ls.len();
        let mismatch = || Error::ShapeMismatch {
            op: "matmul",
            lhs: ls.to_vec(),
            rhs: rs.to_vec(),
        };
        if nd < 2 || rs.len() != nd || ls[..nd - 2] != rs[..nd - 2] || rs[nd - 2] != ls[nd - 1] {
            return Err(mismatch());
        }
        if rhs.dtype() != self.dtype() {
            return Err(Error::DTypeMismatch {
                op: "matmul",
                actual: rhs.dtype(),
                requested: self.dtype(),
            });
        }
        let mut shape = ls[..nd - 1].to_vec();
        shape.push(rs[nd - 1]);
        Ok(self.record(
            Op::Matmul,
            vec![self.input(layout), rhs.input(rhs_layout)],
            self.dtype(),
            shape,
        ))
    }

    fn reduce(
        &self,
        layout: &Layout,
        op: ReduceOp,
        axis: Option<usize>,
        out_dtype: DType,
    ) -> Result<Self> {
        let shape = match axis {
            None => Vec::new(),
            Some(a) if a < layout.ndim() => {
                let mut s = layout.shape().to_vec();
                s.remove(a);
                s
            }
            Some(a) => {
                return Err(Error::AxisOutOfRange {
                    op: "reduce",
                    axis: a as isize,
                    ndim: layout.ndim(),
                })
            }
        };
        let shape = if axis.is_none() { vec![1] } else { shape };
        Ok(self.record(
            Op::Reduce { op, axis },
            vec![self.input(layout)],
            out_dtype,
            shape,
        ))
    }

    fn cast(&self, layout: &Layout, dtype: DType) -> Result<Self> {
        Ok(self.record(
            Op::Cast,
            vec![self.input(layout)],
            dtype,
            layout.shape().to_vec(),
        ))
    }

    fn contiguous(&self, layout: &Layout) -> Result<Self> {
        Ok(self.record(
            Op::Contiguous,
            vec![self.input(layout)],
            self.dtype(),
            layout.shape().to_vec(),
        ))
    }

    fn to_host(&self, layout: &Layout, dtype: DType) -> Result<HostArray> {
        self.materialize()?.to_host(layout, dtype)
    }

    fn into_host(self, layout: &Layout, dtype: DType) -> Result<HostArray> {
        self.materialize()?;
        // Hand the value over when nobody else holds the node or the value.
        let node = match Arc::try_unwrap(self.node) {
            Ok(node) => node,
            Err(shared) => return Lazy { node: shared }.to_host(layout, dtype),
        };
        let mut node = node;
        let value = node.value.take().ok_or_else(|| Error::Backend {
            backend: "lazy",
            message: "into_host: value vanished".into(),
        })?;
        match Arc::try_unwrap(value) {
            Ok(storage) => storage.into_host(layout, dtype),
            Err(shared) => shared.to_host(layout, dtype),
        }
    }

    fn to_host_into<T: Element>(
        &self,
        layout: &Layout,
        out: &mut ArrayViewMutD<'_, T>,
    ) -> Result<()> {
        self.materialize()?.to_host_into(layout, out)
    }

    fn to_host_into_contiguous<T: Element>(
        &self,
        layout: &Layout,
        out: &mut [MaybeUninit<T>],
    ) -> Result<()> {
        self.materialize()?.to_host_into_contiguous(layout, out)
    }

    /// Evaluates implicitly (a zero-copy host view is a host transfer); `None` when that fails
    /// (the next `to_host` reports the error) or the value is not in host memory.
    fn host_bytes(&self) -> Option<&[u8]> {
        self.materialize().ok()?.host_bytes()
    }

    /// The value's device memory (evaluating first), when `B` exposes it.
    fn device_memory(&self) -> Option<DeviceMemory> {
        self.materialize().ok()?.device_memory()
    }

    /// A leaf over `B`'s storage of the memory, when `B` can hold it in place.
    unsafe fn from_external(memory: ExternalMemory) -> Result<Option<Self>> {
        let len = memory.len;
        // SAFETY: forwarded; the caller upholds `from_external`'s contract.
        let Some(storage) = (unsafe { B::from_external(memory) })? else {
            return Ok(None);
        };
        Ok(Some(Lazy {
            node: Node::source(Arc::new(storage), vec![len]),
        }))
    }

    /// The pending work of a lazy tensor is its graph: evaluates it, then waits for `B`.
    fn synchronize(&self) -> Result<()> {
        self.materialize()?.synchronize()
    }
}

/// Owns the target device and the evaluation options, and evaluates graphs (TF1's `Session`).
pub struct Session<B: Backend> {
    device: Device,
    options: SessionOptions,
    last: Mutex<RunStats>,
    _backend: PhantomData<fn() -> B>,
}

impl<B: Backend> Session<B> {
    /// A session evaluating on `device` with fusion and common-subexpression elimination.
    pub fn new(device: Device) -> Self {
        Self::with_options(device, SessionOptions::default())
    }

    /// A session with explicit options (e.g. fusion off, for comparisons).
    pub fn with_options(device: Device, options: SessionOptions) -> Self {
        Session {
            device,
            options,
            last: Mutex::new(RunStats::default()),
            _backend: PhantomData,
        }
    }

    /// The device this session evaluates on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The evaluation options.
    pub fn options(&self) -> SessionOptions {
        self.options
    }

    /// Evaluates the fetches together (a subgraph they share is computed once) and returns their
    /// values as tensors of `B`, each with its fetch's view. Already evaluated fetches cost
    /// nothing.
    pub fn run(&self, fetches: &[&Tensor<Lazy<B>>]) -> Result<Vec<Tensor<B>>> {
        let roots: Vec<Arc<Node<B>>> = fetches
            .iter()
            .map(|t| Arc::clone(&t.storage().node))
            .collect();
        let stats = exec::evaluate(&roots, self.device, self.options)?;
        if let Ok(mut last) = self.last.lock() {
            *last = stats;
        }
        fetches
            .iter()
            .map(|t| {
                let value = t.storage().node.value.get().ok_or_else(|| Error::Backend {
                    backend: "lazy",
                    message: "a fetch has no value after evaluation".into(),
                })?;
                Tensor::from_storage(Arc::clone(value), t.layout().clone())
            })
            .collect()
    }

    /// What the last [`Session::run`] (or `eval`) did.
    pub fn last_run_stats(&self) -> RunStats {
        self.last.lock().map(|s| *s).unwrap_or_default()
    }
}

/// Lazy-tensor methods on `Tensor<Lazy<B>>` (an extension trait: `Tensor` lives in the core).
pub trait LazyTensor<B: Backend> {
    /// Evaluates in `session` and returns the value (TF1's `t.eval(session=...)`).
    fn eval(&self, session: &Session<B>) -> Result<Tensor<B>>;
    /// True once the value exists; nothing is computed by asking.
    fn is_evaluated(&self) -> bool;
    /// The graph behind the tensor, one line per node (nothing is computed).
    fn graph(&self) -> String;
    /// The graph in Graphviz DOT.
    fn graph_dot(&self) -> String;
    /// A one-line expression of the pending computation, e.g. `sqrt(add(mul(input, 2.0), 1.0))`.
    fn expression(&self) -> String;
}

impl<B: Backend> LazyTensor<B> for Tensor<Lazy<B>> {
    fn eval(&self, session: &Session<B>) -> Result<Tensor<B>> {
        let mut v = session.run(&[self])?;
        v.pop().ok_or_else(|| Error::Backend {
            backend: "lazy",
            message: "eval: no value".into(),
        })
    }
    fn is_evaluated(&self) -> bool {
        self.storage().is_evaluated()
    }
    fn graph(&self) -> String {
        graph::render_text(&self.storage().node, self.layout())
    }
    fn graph_dot(&self) -> String {
        graph::render_dot(&self.storage().node)
    }
    fn expression(&self) -> String {
        graph::expression(&self.storage().node, 6)
    }
}

#[cfg(test)]
mod tests;
