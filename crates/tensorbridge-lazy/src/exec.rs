//! Evaluation of a graph: common-subexpression elimination, the choice of what to fuse, and the
//! run itself (fused kernels on host memory, the target backend's own ops for everything else).

use std::collections::HashMap;
use std::sync::Arc;

use tensorbridge_core::{Backend, Device, Error, Layout, Result};

use crate::fused::{HostInput, Program, Step};
use crate::graph::{node_key, topo_order, Node, Op};

/// How a session evaluates graphs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionOptions {
    /// Fuse chains of elementwise ops into one pass over memory (host-memory storage only).
    pub fuse: bool,
    /// Compute structurally identical subgraphs once.
    pub cse: bool,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            fuse: true,
            cse: true,
        }
    }
}

/// What one evaluation did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Nodes that needed a value (after common-subexpression elimination), evaluated ones
    /// excluded.
    pub nodes: usize,
    /// Nodes found identical to another and computed once for both.
    pub cse_merged: usize,
    /// Kernels launched: fused kernels plus the backend's own ops.
    pub kernels: usize,
    /// Of those, fused kernels.
    pub fused_kernels: usize,
    /// Ops computed inside fused kernels.
    pub fused_ops: usize,
    /// Most intermediate values held at once: a value is dropped as soon as the last kernel
    /// reading it has run (fetches are kept).
    pub peak_live_values: usize,
}

/// Longest chain computed in one fused kernel; longer chains are cut (bounds the per-chunk
/// work and the recursion that builds a program).
const MAX_FUSED_DEPTH: usize = 64;

fn internal(msg: &str) -> Error {
    Error::Backend {
        backend: "lazy",
        message: format!("evaluation: {msg}"),
    }
}

/// One evaluation of the graphs behind `roots`.
struct Run<'g, B: Backend> {
    order: &'g [Arc<Node<B>>],
    index: HashMap<usize, usize>,
    canon: Vec<usize>,
    inline: Vec<bool>,
    is_root: Vec<bool>,
    /// Kernels still to run that read each node's value.
    readers: Vec<usize>,
    values: HashMap<usize, Arc<B>>,
    device: Device,
    options: SessionOptions,
    stats: RunStats,
}

/// Evaluates `roots` on `device`, stores each root's value in it, and says what it did.
pub(crate) fn evaluate<B: Backend>(
    roots: &[Arc<Node<B>>],
    device: Device,
    options: SessionOptions,
) -> Result<RunStats> {
    for r in roots {
        if r.device != device {
            return Err(Error::InvalidArgument(format!(
                "this session evaluates on {device}, but a fetched tensor is on {}; \
                 use a Session for {}",
                r.device, r.device
            )));
        }
    }
    let order = topo_order(roots, true);
    let index: HashMap<usize, usize> = order
        .iter()
        .enumerate()
        .map(|(i, n)| (node_key(n), i))
        .collect();
    let mut run = Run {
        order: &order,
        index,
        canon: (0..order.len()).collect(),
        inline: vec![false; order.len()],
        is_root: vec![false; order.len()],
        readers: vec![0; order.len()],
        values: HashMap::new(),
        device,
        options,
        stats: RunStats::default(),
    };
    run.eliminate_common_subexpressions();
    let root_ix: Vec<usize> = roots
        .iter()
        .map(|r| run.canon[run.index[&node_key(r)]])
        .collect();
    let needed = run.plan(&root_ix)?;
    for i in needed {
        let v = run.compute(i)?;
        run.values.insert(i, v);
        run.release_inputs(i)?;
        run.stats.peak_live_values = run.stats.peak_live_values.max(run.values.len());
    }
    for (r, &i) in roots.iter().zip(&root_ix) {
        if r.is_evaluated() {
            continue;
        }
        let v = run.value_of(i)?;
        // Another thread may have evaluated the same node meanwhile; either value is the same.
        let _ = r.value.set(v);
    }
    Ok(run.stats)
}

impl<B: Backend> Run<'_, B> {
    fn ix(&self, n: &Arc<Node<B>>) -> Result<usize> {
        self.index
            .get(&node_key(n))
            .map(|&i| self.canon[i])
            .ok_or_else(|| internal("input outside the walked graph"))
    }

    /// Maps every node to the first structurally identical one: same op and parameters, dtype,
    /// shape, and the same (canonical) inputs read through the same views. Evaluated nodes are
    /// only identical to themselves.
    fn eliminate_common_subexpressions(&mut self) {
        if !self.options.cse {
            return;
        }
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, n) in self.order.iter().enumerate() {
            if n.is_evaluated() {
                continue;
            }
            let mut key = format!("{}|{}|{:?}", n.op.key(), n.dtype, n.shape);
            for inp in &n.inputs {
                let Ok(j) = self.ix(&inp.node) else { return };
                let l = &inp.layout;
                key.push_str(&format!(
                    "|{j}:{:?}:{:?}:{}",
                    l.shape(),
                    l.strides(),
                    l.offset()
                ));
            }
            match seen.get(&key) {
                Some(&first) => {
                    self.canon[i] = first;
                    self.stats.cse_merged += 1;
                }
                None => {
                    seen.insert(key, i);
                }
            }
        }
    }

    fn fusable(&self, n: &Node<B>) -> bool {
        self.options.fuse && self.device == Device::Cpu && n.op.is_elementwise()
    }

    /// Decides which nodes are computed inside their consumer's fused kernel and returns the
    /// nodes that need their own value, inputs first.
    fn plan(&mut self, roots: &[usize]) -> Result<Vec<usize>> {
        let n = self.order.len();
        let mut live = vec![false; n];
        let mut is_root = vec![false; n];
        for &r in roots {
            live[r] = true;
            is_root[r] = true;
        }
        self.is_root.clone_from(&is_root);
        // Consumers come after their inputs in `order`: walk backwards to find the live nodes
        // and, per node, its uses and whether its only use could compute it inline.
        let mut uses = vec![0usize; n];
        let mut inline_ok = vec![false; n];
        for i in (0..n).rev() {
            if !live[i] || self.canon[i] != i || self.order[i].is_evaluated() {
                continue;
            }
            let consumer_fuses = self.fusable(&self.order[i]);
            for inp in &self.order[i].inputs {
                let j = self.ix(&inp.node)?;
                live[j] = true;
                uses[j] += 1;
                inline_ok[j] = consumer_fuses && inp.is_flat_identity();
            }
        }
        let mut depth = vec![0usize; n];
        let order = self.order;
        for (i, node) in order.iter().enumerate() {
            if !live[i] || self.canon[i] != i || node.is_evaluated() {
                continue;
            }
            self.stats.nodes += 1;
            let inline = self.fusable(node) && !is_root[i] && uses[i] == 1 && inline_ok[i];
            let mut d = 1;
            for inp in &node.inputs {
                let j = self.ix(&inp.node)?;
                if self.inline[j] {
                    d = d.max(depth[j] + 1);
                }
            }
            depth[i] = d;
            self.inline[i] = inline && d < MAX_FUSED_DEPTH;
        }
        // A node needs a value unless it is inlined, or is a constant that only fused kernels
        // read (they take it as a scalar).
        let mut needs = vec![false; n];
        for &r in roots {
            needs[r] = true;
        }
        for (i, node) in order.iter().enumerate() {
            if !live[i] || self.canon[i] != i || node.is_evaluated() {
                continue;
            }
            let fused_here = self.fusable(node);
            for inp in &node.inputs {
                let j = self.ix(&inp.node)?;
                let constant = matches!(self.order[j].op, Op::Full(_));
                if !(fused_here && (constant || self.inline[j])) {
                    needs[j] = true;
                    self.readers[j] += 1;
                }
            }
        }
        // An inlined node's own inputs are read by the kernel that computes it; `needs` above
        // already counts them (the inlined node is `fusable`).
        Ok((0..n)
            .filter(|&i| {
                needs[i] && !self.inline[i] && self.canon[i] == i && !self.order[i].is_evaluated()
            })
            .collect())
    }

    /// After the kernel computing `i` ran: drops the values nobody else will read. Walks the same
    /// edges as `plan` counted (those of `i` and of the nodes inlined into it).
    fn release_inputs(&mut self, i: usize) -> Result<()> {
        let order = self.order;
        let mut stack = vec![i];
        while let Some(k) = stack.pop() {
            let fused_here = self.fusable(&order[k]);
            for inp in &order[k].inputs {
                let j = self.ix(&inp.node)?;
                let constant = matches!(order[j].op, Op::Full(_));
                if fused_here && (constant || self.inline[j]) {
                    if self.inline[j] {
                        stack.push(j);
                    }
                    continue;
                }
                self.readers[j] = self.readers[j].saturating_sub(1);
                if self.readers[j] == 0 && !self.is_root[j] {
                    self.values.remove(&j);
                }
            }
        }
        Ok(())
    }

    fn value_of(&self, i: usize) -> Result<Arc<B>> {
        if let Some(v) = self.order[i].value.get() {
            return Ok(Arc::clone(v));
        }
        self.values
            .get(&i)
            .cloned()
            .ok_or_else(|| internal("input not computed before its consumer"))
    }

    /// Computes node `i` (its inputs have values, or are inlined into it).
    fn compute(&mut self, i: usize) -> Result<Arc<B>> {
        let order = self.order;
        let node = &order[i];
        if self.fusable(node) {
            if let Some(v) = self.compute_fused(i)? {
                return Ok(v);
            }
            return self.compute_unfused(i);
        }
        let inputs: Vec<(Arc<B>, &Layout)> = node
            .inputs
            .iter()
            .map(|inp| Ok((self.value_of(self.ix(&inp.node)?)?, &inp.layout)))
            .collect::<Result<_>>()?;
        self.stats.kernels += 1;
        Ok(Arc::new(apply(node, &inputs)?))
    }

    /// Computes `i` op by op, inlined inputs and constants included (for storage that is not
    /// host memory).
    fn compute_unfused(&mut self, i: usize) -> Result<Arc<B>> {
        let order = self.order;
        let node = &order[i];
        let mut inputs: Vec<(Arc<B>, &Layout)> = Vec::with_capacity(node.inputs.len());
        for inp in &node.inputs {
            let j = self.ix(&inp.node)?;
            let v = match self.value_of(j) {
                Ok(v) => v,
                Err(_) if self.inline[j] => self.compute_unfused(j)?,
                Err(_) => {
                    self.stats.kernels += 1;
                    Arc::new(apply::<B>(&self.order[j], &[])?)
                }
            };
            inputs.push((v, &inp.layout));
        }
        self.stats.kernels += 1;
        Ok(Arc::new(apply(node, &inputs)?))
    }

    /// Builds and runs the fused kernel rooted at `i`; `None` when an input is not in host
    /// memory.
    fn compute_fused(&mut self, i: usize) -> Result<Option<Arc<B>>> {
        let mut program = Program::default();
        let mut leaves: Vec<(usize, Layout)> = Vec::new();
        let mut loaded: HashMap<(usize, Layout), usize> = HashMap::new();
        self.emit(i, &mut program, &mut leaves, &mut loaded)?;
        let storages: Vec<Arc<B>> = leaves
            .iter()
            .map(|(j, _)| self.value_of(*j))
            .collect::<Result<_>>()?;
        let mut inputs = Vec::with_capacity(leaves.len());
        for (s, (_, layout)) in storages.iter().zip(&leaves) {
            let Some(bytes) = s.host_bytes() else {
                return Ok(None);
            };
            layout.check_fits(s.len())?;
            inputs.push(HostInput {
                bytes,
                dtype: s.dtype(),
                layout: layout.clone(),
            });
        }
        let node = &self.order[i];
        let host = program.run(&inputs, &node.shape)?;
        self.stats.kernels += 1;
        self.stats.fused_kernels += 1;
        self.stats.fused_ops += program
            .steps
            .iter()
            .filter(|(s, _)| !matches!(s, Step::Load(_) | Step::Const(_)))
            .count();
        Ok(Some(Arc::new(B::from_host(&self.device, host)?)))
    }

    /// Appends the steps computing node `i` and returns the step of its value.
    fn emit(
        &self,
        i: usize,
        p: &mut Program,
        leaves: &mut Vec<(usize, Layout)>,
        loaded: &mut HashMap<(usize, Layout), usize>,
    ) -> Result<usize> {
        let node = &self.order[i];
        let mut args = Vec::with_capacity(node.inputs.len());
        for inp in &node.inputs {
            let j = self.ix(&inp.node)?;
            let child = &self.order[j];
            let step = if let (Op::Full(v), false) = (&child.op, child.is_evaluated()) {
                p.steps.push((Step::Const(*v), child.dtype));
                p.steps.len() - 1
            } else if self.inline[j] {
                self.emit(j, p, leaves, loaded)?
            } else if let Some(&s) = loaded.get(&(j, inp.layout.clone())) {
                s
            } else {
                leaves.push((j, inp.layout.clone()));
                p.steps.push((Step::Load(leaves.len() - 1), child.dtype));
                loaded.insert((j, inp.layout.clone()), p.steps.len() - 1);
                p.steps.len() - 1
            };
            args.push(step);
        }
        let arg = |k: usize| {
            args.get(k)
                .copied()
                .ok_or_else(|| internal("missing operand"))
        };
        let step = match node.op {
            Op::Unary(op) => Step::Unary(op, arg(0)?),
            Op::Binary(op) => Step::Binary(op, arg(0)?, arg(1)?),
            Op::Compare(op) => Step::Compare(op, arg(0)?, arg(1)?),
            Op::Cast => Step::Cast(arg(0)?),
            // A materialised view is its input read through the view.
            Op::Contiguous => return arg(0),
            _ => return Err(internal("non-elementwise op in a fused kernel")),
        };
        p.steps.push((step, node.dtype));
        Ok(p.steps.len() - 1)
    }
}

/// Computes one node with the target backend's own op.
fn apply<B: Backend>(node: &Node<B>, inputs: &[(Arc<B>, &Layout)]) -> Result<B> {
    let arg = |k: usize| {
        inputs
            .get(k)
            .map(|(s, l)| (s.as_ref(), *l))
            .ok_or_else(|| internal("missing operand"))
    };
    match &node.op {
        Op::Source => Err(internal("a source without a value")),
        Op::Full(v) => B::full(&node.device, node.len, node.dtype, *v),
        Op::Unary(op) => {
            let (a, la) = arg(0)?;
            a.unary(la, *op)
        }
        Op::Binary(op) => {
            let ((a, la), (b, lb)) = (arg(0)?, arg(1)?);
            a.binary(la, b, lb, *op)
        }
        Op::Compare(op) => {
            let ((a, la), (b, lb)) = (arg(0)?, arg(1)?);
            a.compare(la, b, lb, *op)
        }
        Op::Matmul => {
            let ((a, la), (b, lb)) = (arg(0)?, arg(1)?);
            a.matmul(la, b, lb)
        }
        Op::Reduce { op, axis } => {
            let (a, la) = arg(0)?;
            a.reduce(la, *op, *axis, node.dtype)
        }
        Op::Cast => {
            let (a, la) = arg(0)?;
            a.cast(la, node.dtype)
        }
        Op::Contiguous => {
            let (a, la) = arg(0)?;
            a.contiguous(la)
        }
    }
}
