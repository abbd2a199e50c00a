//! Inputs: value distributions, layout cases (a base shape plus a chain of views), and the
//! builder that makes the same view once as a backend tensor and once as a host `ndarray`.

use tensorbridge_core::{Backend, DType, DTypeKind, Device, HostArray, Result, Tensor};

use crate::reference::{self, int_range, Value};
use crate::rng::Lcg;

/// One view step, applied to the tensor through the core's API and to the reference through
/// `ndarray`'s.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ViewOp {
    /// NumPy `.T`.
    Reverse,
    /// Swap two axes.
    Transpose(isize, isize),
    /// Reorder axes (negative axes allowed).
    Permute(&'static [isize]),
    /// Python `start:stop:step` on one axis.
    Slice {
        axis: isize,
        start: Option<isize>,
        stop: Option<isize>,
        step: isize,
    },
    /// `broadcast_to` (stride-0 axes).
    BroadcastTo(&'static [usize]),
    /// Index one axis away.
    Select { axis: isize, index: isize },
    /// Insert a size-1 axis.
    Unsqueeze(isize),
    /// Drop size-1 axes.
    Squeeze(Option<isize>),
    /// Reshape (view or copy).
    Reshape(&'static [isize]),
    /// Materialise; the identity on values.
    Contiguous,
}

impl ViewOp {
    fn apply<B: Backend>(&self, t: &Tensor<B>) -> Result<Tensor<B>> {
        match *self {
            ViewOp::Reverse => Ok(t.t()),
            ViewOp::Transpose(a, b) => t.transpose(a, b),
            ViewOp::Permute(p) => t.permute(p),
            ViewOp::Slice {
                axis,
                start,
                stop,
                step,
            } => t.slice(axis, start, stop, step),
            ViewOp::BroadcastTo(s) => t.broadcast_to(s),
            ViewOp::Select { axis, index } => t.select(axis, index),
            ViewOp::Unsqueeze(a) => t.unsqueeze(a),
            ViewOp::Squeeze(a) => t.squeeze(a),
            ViewOp::Reshape(s) => t.reshape(s),
            ViewOp::Contiguous => t.contiguous(),
        }
    }
}

/// Shorthand for a [`ViewOp::Slice`].
pub(crate) const fn slice(
    axis: isize,
    start: Option<isize>,
    stop: Option<isize>,
    step: isize,
) -> ViewOp {
    ViewOp::Slice {
        axis,
        start,
        stop,
        step,
    }
}

/// A named input layout: a contiguous base of `base` shape, then `views`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Case {
    pub name: &'static str,
    pub base: &'static [usize],
    pub views: &'static [ViewOp],
}

const fn case(name: &'static str, base: &'static [usize], views: &'static [ViewOp]) -> Case {
    Case { name, base, views }
}

pub(crate) const CONTIGUOUS: Case = case("contiguous[3,5]", &[3, 5], &[]);
pub(crate) const TRANSPOSED: Case = case("transposed[5,3].T", &[5, 3], &[ViewOp::Reverse]);
pub(crate) const PERMUTED: Case = case(
    "permuted[5,2,3]->(1,2,0)",
    &[5, 2, 3],
    &[ViewOp::Permute(&[1, 2, 0])],
);
pub(crate) const STEP_SLICED: Case = case(
    "step_sliced[7,11][1::2,0:10:2]",
    &[7, 11],
    &[slice(0, Some(1), None, 2), slice(1, Some(0), Some(10), 2)],
);
pub(crate) const NEGATIVE_STEP: Case = case(
    "negative_step[4,9][-2::-1,::-2]",
    &[4, 9],
    &[slice(1, None, None, -2), slice(0, Some(-2), None, -1)],
);
pub(crate) const SELECTED: Case = case(
    "offset[2,3,5][-1]",
    &[2, 3, 5],
    &[ViewOp::Select { axis: 0, index: -1 }],
);
pub(crate) const SCALAR: Case = case("0-d", &[], &[]);
pub(crate) const ZERO_SIZE: Case = case("zero_size[3,0]", &[3, 0], &[]);
pub(crate) const EMPTY_SLICE: Case = case(
    "empty_slice[3,5][:,4:1]",
    &[3, 5],
    &[slice(1, Some(4), Some(1), 1)],
);
pub(crate) const BROADCAST_COLUMN: Case = case(
    "broadcast[3,1]->[3,5]",
    &[3, 1],
    &[ViewOp::BroadcastTo(&[3, 5])],
);
pub(crate) const BROADCAST_ROWS: Case = case(
    "broadcast[5]->[2,3,5]",
    &[5],
    &[ViewOp::BroadcastTo(&[2, 3, 5])],
);
pub(crate) const ROW: Case = case("row[5]", &[5], &[]);
pub(crate) const COLUMN: Case = case("column[3,1]", &[3, 1], &[]);

/// Every single-operand layout the suite runs each op on.
pub(crate) const CASES: [Case; 11] = [
    CONTIGUOUS,
    TRANSPOSED,
    PERMUTED,
    STEP_SLICED,
    NEGATIVE_STEP,
    SELECTED,
    SCALAR,
    ZERO_SIZE,
    EMPTY_SLICE,
    BROADCAST_COLUMN,
    BROADCAST_ROWS,
];

/// Operand pairs for binary ops and comparisons: same shapes in different layouts, implicit
/// broadcasting on either side, 0-d and zero-size operands.
pub(crate) const PAIRS: [(Case, Case); 9] = [
    (CONTIGUOUS, CONTIGUOUS),
    (TRANSPOSED, NEGATIVE_STEP),
    (STEP_SLICED, BROADCAST_COLUMN),
    (PERMUTED, ROW),
    (COLUMN, ROW),
    (SCALAR, SELECTED),
    (ZERO_SIZE, COLUMN),
    (BROADCAST_ROWS, SCALAR),
    (EMPTY_SLICE, SCALAR),
];

/// Layouts big enough to take a host copy kernel's blocked, tiled and parallel paths: one above
/// 2^18 elements, one dense run above 2^16, tile edges that are not multiples of any tile size,
/// negative and zero strides.
pub(crate) const LARGE: [Case; 6] = [
    case(
        "large transposed[520,520].T",
        &[520, 520],
        &[ViewOp::Reverse],
    ),
    case("large contiguous[300,250]", &[300, 250], &[]),
    case("tiles[67,131].T", &[67, 131], &[ViewOp::Reverse]),
    case(
        "large step_sliced[130,300][1::2,::-3]",
        &[130, 300],
        &[slice(0, Some(1), None, 2), slice(1, None, None, -3)],
    ),
    case(
        "large permuted[65,10,70]->(2,0,1)",
        &[65, 10, 70],
        &[ViewOp::Permute(&[2, 0, 1])],
    ),
    case(
        "large broadcast[1,700]->[100,700]",
        &[1, 700],
        &[ViewOp::BroadcastTo(&[100, 700])],
    ),
];

/// How input values are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Dist {
    /// Integers over their whole range (so arithmetic wraps); floats in [-8, 8).
    Full,
    /// Integers in [-8, 16] and floats in quarter steps within [-4, 4], so equal values occur.
    Small,
    /// Integers in [1, 100] and floats in [0.125, 16): the domain of log and sqrt.
    Positive,
    /// Like `Full`, but floats in [-300, 300) and, one time in six, NaN, ±inf, -0.0 or a value
    /// outside the narrow float types: the inputs of casts.
    Wide,
    /// Like `Full`, with NaN one time in eight for floats.
    WithNan,
}

fn draw(dtype: DType, dist: Dist, rng: &mut Lcg) -> Value {
    const SPECIAL: [f64; 7] = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        0.5,
        -2.5,
        1e6,
    ];
    let (lo, hi) = int_range(dtype);
    match (dtype.kind(), dist) {
        (DTypeKind::Bool, _) => Value::Int(rng.int_in(0, 1)),
        (_, Dist::Small) if !dtype.is_float() => Value::Int(rng.int_in(lo.max(-8), 16)),
        (_, Dist::Positive) if !dtype.is_float() => Value::Int(rng.int_in(1, 100)),
        (_, _) if !dtype.is_float() => Value::Int(rng.int_in(lo, hi)),
        (_, Dist::Small) => Value::Float(rng.int_in(-16, 16) as f64 / 4.0),
        (_, Dist::Positive) => Value::Float(rng.float_in(0.125, 16.0)),
        (_, Dist::Wide) if rng.one_in(6) => {
            Value::Float(SPECIAL[rng.int_in(0, SPECIAL.len() as i128 - 1) as usize])
        }
        (_, Dist::Wide) => Value::Float(rng.float_in(-300.0, 300.0)),
        (_, Dist::WithNan) if rng.one_in(8) => Value::Float(f64::NAN),
        (_, _) => Value::Float(rng.float_in(-8.0, 8.0)),
    }
}

/// A contiguous host array of `dtype` and `shape` with values from `dist`.
pub(crate) fn random_host(dtype: DType, shape: &[usize], dist: Dist, rng: &mut Lcg) -> HostArray {
    let n = shape.iter().product();
    let v = (0..n).map(|_| draw(dtype, dist, rng)).collect();
    reference::host_of(dtype, shape, v)
}

/// Applies `views` to a backend tensor and, with `ndarray`, to the host reference.
pub(crate) fn apply_views<B: Backend>(
    mut t: Tensor<B>,
    mut h: HostArray,
    views: &[ViewOp],
) -> Result<(Tensor<B>, HostArray)> {
    for v in views {
        t = v.apply(&t)?;
        h = reference::view(h, v);
    }
    Ok((t, h))
}

/// The input `case` of `dtype`: the tensor on `device` and the host reference of its values.
pub(crate) fn fixture<B: Backend>(
    case: &Case,
    dtype: DType,
    dist: Dist,
    rng: &mut Lcg,
    device: &Device,
) -> Result<(Tensor<B>, HostArray)> {
    let base = random_host(dtype, case.base, dist, rng);
    let t = Tensor::<B>::from_host(base.clone(), device)?;
    apply_views(t, base, case.views)
}
