//! The recorded graph: nodes, the view each consumer reads of its inputs, a topological walk, and
//! the text / DOT printers.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use tensorbridge_core::{
    Backend, BinaryOp, CmpOp, DType, Device, Layout, ReduceOp, Scalar, UnaryOp,
};

/// What a node computes. The result is always contiguous in the node's `shape`, as every
/// [`Backend`] op's result is.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    /// Data that already exists on the target backend (`from_host`, a lifted tensor).
    Source,
    /// `len` copies of a scalar (also every Python-scalar operand of `x * 2`).
    Full(Scalar),
    Unary(UnaryOp),
    Binary(BinaryOp),
    Compare(CmpOp),
    Matmul,
    Reduce {
        op: ReduceOp,
        axis: Option<usize>,
    },
    /// To the node's dtype.
    Cast,
    /// A view materialised.
    Contiguous,
}

fn scalar_text(s: Scalar) -> String {
    match s {
        Scalar::Bool(b) => if b { "True" } else { "False" }.to_string(),
        Scalar::Int(v) => v.to_string(),
        Scalar::Float(v) => format!("{v:?}"),
    }
}

impl Op {
    /// Ops a fused kernel can compute element by element.
    pub(crate) fn is_elementwise(&self) -> bool {
        matches!(
            self,
            Op::Unary(_) | Op::Binary(_) | Op::Compare(_) | Op::Cast | Op::Contiguous
        )
    }

    /// The name shown in graphs and reprs.
    pub(crate) fn name(&self) -> String {
        let lower = |d: &dyn std::fmt::Debug| format!("{d:?}").to_lowercase();
        match self {
            Op::Source => "input".into(),
            Op::Full(v) => format!("full({})", scalar_text(*v)),
            Op::Unary(op) => lower(op),
            Op::Binary(op) => lower(op),
            Op::Compare(op) => lower(op),
            Op::Matmul => "matmul".into(),
            Op::Reduce { op, axis: None } => lower(op),
            Op::Reduce { op, axis: Some(a) } => format!("{}(axis={a})", lower(op)),
            Op::Cast => "cast".into(),
            Op::Contiguous => "contiguous".into(),
        }
    }

    /// An exact identity of the op and its parameters, for common-subexpression elimination
    /// (floats by their bits, so `0.0` and `-0.0` stay apart).
    pub(crate) fn key(&self) -> String {
        match self {
            Op::Full(Scalar::Float(v)) => format!("full:f{:x}", v.to_bits()),
            other => format!("{other:?}"),
        }
    }
}

/// One input of a node: the node it reads and the view (layout) it reads of that node's result.
pub(crate) struct Input<B: Backend> {
    pub node: Arc<Node<B>>,
    pub layout: Layout,
}

impl<B: Backend> Input<B> {
    /// True when the consumer reads the input's result element for element in row-major order
    /// (a contiguous view from offset 0 of all of it, whatever its shape): flat indices agree, so
    /// the input can be computed inside the consumer's loop.
    pub(crate) fn is_flat_identity(&self) -> bool {
        self.layout.is_contiguous()
            && self.layout.offset() == 0
            && self.layout.elem_count() == self.node.len
    }
}

/// A recorded operation. Immutable once made, except `value`, which is set once when the node is
/// evaluated as a fetch (and from the start for sources).
pub(crate) struct Node<B: Backend> {
    pub op: Op,
    pub inputs: Vec<Input<B>>,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub len: usize,
    pub device: Device,
    pub value: OnceLock<Arc<B>>,
}

impl<B: Backend> Node<B> {
    pub(crate) fn new(
        op: Op,
        inputs: Vec<Input<B>>,
        dtype: DType,
        shape: Vec<usize>,
        device: Device,
    ) -> Arc<Self> {
        let len = shape.iter().product();
        Arc::new(Node {
            op,
            inputs,
            dtype,
            shape,
            len,
            device,
            value: OnceLock::new(),
        })
    }

    /// A node whose value exists already.
    pub(crate) fn source(storage: Arc<B>, shape: Vec<usize>) -> Arc<Self> {
        let n = Node {
            op: Op::Source,
            inputs: Vec::new(),
            dtype: storage.dtype(),
            len: storage.len(),
            shape,
            device: storage.device(),
            value: OnceLock::new(),
        };
        let _ = n.value.set(storage);
        Arc::new(n)
    }

    pub(crate) fn is_evaluated(&self) -> bool {
        self.value.get().is_some()
    }
}

impl<B: Backend> Drop for Node<B> {
    /// Drops long chains iteratively: the default recursive drop of `Arc<Node>` inputs would
    /// overflow the stack on a graph of a hundred thousand chained ops.
    fn drop(&mut self) {
        let mut pending = std::mem::take(&mut self.inputs);
        while let Some(input) = pending.pop() {
            if let Ok(mut node) = Arc::try_unwrap(input.node) {
                pending.append(&mut node.inputs);
            }
        }
    }
}

/// Identity of a node for maps and sets.
pub(crate) fn node_key<B: Backend>(n: &Arc<Node<B>>) -> usize {
    Arc::as_ptr(n) as usize
}

/// The nodes reachable from `roots`, every node after its inputs (iterative, so deep graphs do
/// not overflow the stack). With `stop_at_values`, the inputs of evaluated nodes are not walked.
pub(crate) fn topo_order<B: Backend>(
    roots: &[Arc<Node<B>>],
    stop_at_values: bool,
) -> Vec<Arc<Node<B>>> {
    let mut seen = HashSet::new();
    let mut order = Vec::new();
    let mut stack: Vec<(Arc<Node<B>>, bool)> =
        roots.iter().rev().map(|r| (Arc::clone(r), false)).collect();
    while let Some((n, expanded)) = stack.pop() {
        if expanded {
            order.push(n);
            continue;
        }
        if !seen.insert(node_key(&n)) {
            continue;
        }
        let walk = !(stop_at_values && n.is_evaluated());
        let inputs: Vec<Arc<Node<B>>> = if walk {
            n.inputs.iter().map(|i| Arc::clone(&i.node)).collect()
        } else {
            Vec::new()
        };
        stack.push((n, true));
        for i in inputs.into_iter().rev() {
            if !seen.contains(&node_key(&i)) {
                stack.push((i, false));
            }
        }
    }
    order
}

fn type_text(dtype: DType, shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("{dtype}[{}]", dims.join(", "))
}

fn view_text(layout: &Layout) -> String {
    if layout.strides().iter().all(|&s| s == 0) {
        return format!("broadcast({:?})", layout.shape());
    }
    format!(
        "view(shape={:?}, strides={:?}, offset={})",
        layout.shape(),
        layout.strides(),
        layout.offset()
    )
}

/// A readable listing of the graph behind a tensor: one line per node, inputs first, with the
/// view a node reads of an input when it is not the whole input in order.
pub(crate) fn render_text<B: Backend>(root: &Arc<Node<B>>, layout: &Layout) -> String {
    let order = topo_order(std::slice::from_ref(root), false);
    let index: std::collections::HashMap<usize, usize> = order
        .iter()
        .enumerate()
        .map(|(i, n)| (node_key(n), i))
        .collect();
    let pending = order.iter().filter(|n| !n.is_evaluated()).count();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "graph: {} node(s), {pending} not evaluated, device {}",
        order.len(),
        root.device
    );
    for (i, n) in order.iter().enumerate() {
        let args: Vec<String> = n
            .inputs
            .iter()
            .map(|inp| {
                let j = index
                    .get(&node_key(&inp.node))
                    .copied()
                    .unwrap_or(usize::MAX);
                if inp.layout.shape() == inp.node.shape.as_slice() && inp.is_flat_identity() {
                    format!("%{j}")
                } else {
                    format!("%{j}.{}", view_text(&inp.layout))
                }
            })
            .collect();
        let call = if args.is_empty() {
            n.op.name()
        } else {
            format!("{}({})", n.op.name(), args.join(", "))
        };
        let state = if n.is_evaluated() {
            "  [evaluated]"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  %{i} = {call} -> {}{state}",
            type_text(n.dtype, &n.shape)
        );
    }
    let last = order.len().saturating_sub(1);
    if layout.shape() == root.shape.as_slice() && layout.is_contiguous() && layout.offset() == 0 {
        let _ = write!(out, "  result: %{last}");
    } else {
        let _ = write!(out, "  result: %{last}.{}", view_text(layout));
    }
    out
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The same graph in Graphviz DOT (`dot -Tsvg`), edges from inputs to consumers.
pub(crate) fn render_dot<B: Backend>(root: &Arc<Node<B>>) -> String {
    let order = topo_order(std::slice::from_ref(root), false);
    let index: std::collections::HashMap<usize, usize> = order
        .iter()
        .enumerate()
        .map(|(i, n)| (node_key(n), i))
        .collect();
    let mut out = String::from("digraph tensorbridge {\n  rankdir=LR;\n  node [shape=box];\n");
    for (i, n) in order.iter().enumerate() {
        let style = if n.is_evaluated() {
            ", style=filled, fillcolor=lightgrey"
        } else {
            ""
        };
        let label = format!("%{i} {}\\n{}", n.op.name(), type_text(n.dtype, &n.shape));
        let _ = writeln!(out, "  n{i} [label=\"{}\"{style}];", dot_escape(&label));
        for inp in &n.inputs {
            let j = index
                .get(&node_key(&inp.node))
                .copied()
                .unwrap_or(usize::MAX);
            if inp.is_flat_identity() && inp.layout.shape() == inp.node.shape.as_slice() {
                let _ = writeln!(out, "  n{j} -> n{i};");
            } else {
                let _ = writeln!(
                    out,
                    "  n{j} -> n{i} [label=\"{}\"];",
                    dot_escape(&view_text(&inp.layout))
                );
            }
        }
    }
    out.push_str("}\n");
    out
}

/// A one-line expression of the graph (`sqrt(add(mul(input, 2.0), 1.0))`), cut at `depth`
/// levels; for reprs that must not compute anything.
pub(crate) fn expression<B: Backend>(node: &Node<B>, depth: usize) -> String {
    if node.is_evaluated() && !matches!(node.op, Op::Source) {
        return "value".into();
    }
    match &node.op {
        Op::Source => return "input".into(),
        Op::Full(v) => return scalar_text(*v),
        _ => {}
    }
    if depth == 0 {
        return format!("{}(...)", node.op.name());
    }
    let args: Vec<String> = node
        .inputs
        .iter()
        .map(|i| expression(&i.node, depth - 1))
        .collect();
    format!("{}({})", node.op.name(), args.join(", "))
}
