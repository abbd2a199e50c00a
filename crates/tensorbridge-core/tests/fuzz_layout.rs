//! Property test: every `Layout` view op, chained on random layouts (shapes with 0 and 1, negative
//! and zero strides, offsets), agrees with a naive model that keeps the view's values as an explicit
//! array and applies each op by enumeration. Invalid arguments must be errors in both, never a
//! panic. Case count and time budget: see `fuzz/mod.rs`.

mod fuzz;

use ndarray::{ArrayD, Axis, Dimension, IxDyn};
use proptest::prelude::*;
use tensorbridge_core::host::to_contiguous;
use tensorbridge_core::Layout;

/// A view under test: storage, the layout over it, and the model of the values it shows.
#[derive(Clone, Debug)]
struct State {
    data: Vec<i64>,
    layout: Layout,
    model: ArrayD<i64>,
}

/// A random strided layout over storage holding its own indices: shape `dims`, each stride in
/// `-6..=6` (zero included) or contiguous, an offset with slack on both sides.
fn start_state() -> impl Strategy<Value = State> {
    (
        prop::collection::vec((0usize..=5, -6isize..=6), 0..=4),
        any::<bool>(),
        0usize..3,
        0usize..3,
    )
        .prop_map(|(axes, contiguous, pre, post)| {
            let shape: Vec<usize> = axes.iter().map(|a| a.0).collect();
            let strides: Vec<isize> = if contiguous {
                Layout::contiguous(&shape).strides().to_vec()
            } else {
                axes.iter().map(|a| a.1).collect()
            };
            let (mut lo, mut hi) = (0isize, 0isize);
            for (&d, &s) in shape.iter().zip(&strides) {
                let reach = s * (d.max(1) as isize - 1);
                if reach < 0 {
                    lo += reach;
                } else {
                    hi += reach;
                }
            }
            let offset = (-lo) as usize + pre;
            let len = offset + hi as usize + 1 + post;
            let data: Vec<i64> = (0..len as i64).map(|v| v * 10 + 7).collect();
            let layout = Layout::new(shape.clone(), strides, offset).unwrap();
            let model = ArrayD::from_shape_fn(IxDyn(&shape), |ix| {
                let at: isize = ix
                    .slice()
                    .iter()
                    .zip(layout.strides())
                    .map(|(&i, &s)| i as isize * s)
                    .sum();
                data[(offset as isize + at) as usize]
            });
            State {
                data,
                layout,
                model,
            }
        })
}

/// One op with raw arguments; they are read against the current ndim when applied, and may be
/// out of range on purpose.
#[derive(Clone, Debug)]
enum Op {
    Slice {
        axis: i8,
        start: Option<i8>,
        stop: Option<i8>,
        step: i8,
    },
    Select {
        axis: u8,
        index: i8,
    },
    Transpose(i8, i8),
    Reversed,
    Permute(Vec<i8>),
    Broadcast {
        prepend: Vec<u8>,
        grow: Vec<u8>,
    },
    Squeeze(Option<i8>),
    Unsqueeze(i8),
    Reshape {
        picks: Vec<u8>,
        infer: Option<u8>,
        spoil: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let small = -7i8..7;
    prop_oneof![
        (
            -5i8..5,
            prop::option::of(small.clone()),
            prop::option::of(small.clone()),
            -4i8..=4
        )
            .prop_map(|(axis, start, stop, step)| Op::Slice {
                axis,
                start,
                stop,
                step
            }),
        (0u8..5, small.clone()).prop_map(|(axis, index)| Op::Select { axis, index }),
        (-5i8..5, -5i8..5).prop_map(|(a, b)| Op::Transpose(a, b)),
        Just(Op::Reversed),
        prop::collection::vec(-5i8..5, 0..6).prop_map(Op::Permute),
        (
            prop::collection::vec(0u8..4, 0..3),
            prop::collection::vec(0u8..5, 0..6)
        )
            .prop_map(|(prepend, grow)| Op::Broadcast { prepend, grow }),
        prop::option::of(-5i8..5).prop_map(Op::Squeeze),
        (-6i8..6).prop_map(Op::Unsqueeze),
        (
            prop::collection::vec(any::<u8>(), 0..4),
            prop::option::of(any::<u8>()),
            prop::bool::weighted(0.1)
        )
            .prop_map(|(picks, infer, spoil)| Op::Reshape {
                picks,
                infer,
                spoil
            }),
    ]
}

/// Python's `range(n)[start:stop:step]`, by walking the range.
fn py_slice(n: usize, start: Option<isize>, stop: Option<isize>, step: isize) -> Vec<usize> {
    let n = n as isize;
    let norm = |v: isize, lo: isize, hi: isize| {
        let v = if v < 0 { v + n } else { v };
        v.clamp(lo, hi)
    };
    let mut out = Vec::new();
    if step > 0 {
        let (mut i, end) = (
            start.map_or(0, |s| norm(s, 0, n)),
            stop.map_or(n, |s| norm(s, 0, n)),
        );
        while i < end {
            out.push(i as usize);
            i += step;
        }
    } else {
        let (mut i, end) = (
            start.map_or(n - 1, |s| norm(s, -1, n - 1)),
            stop.map_or(-1, |s| norm(s, -1, n - 1)),
        );
        while i > end {
            out.push(i as usize);
            i += step;
        }
    }
    out
}

/// The axis `a` names in `0..ndim`, Python style, or `None`.
fn axis(a: isize, ndim: usize) -> Option<usize> {
    let n = ndim as isize;
    let a = if a < 0 { a + n } else { a };
    (0..n).contains(&a).then_some(a as usize)
}

/// A reshape target for `n` elements from random picks: divisors of what is left, then the rest.
fn reshape_target(n: usize, picks: &[u8], infer: Option<u8>, spoil: bool) -> Vec<isize> {
    let mut dims = Vec::new();
    let mut rem = n;
    for &p in picks {
        let divisors: Vec<usize> = if rem == 0 {
            vec![0, 1, 2, 3]
        } else {
            (1..=rem).filter(|d| rem % d == 0).collect()
        };
        let d = divisors[p as usize % divisors.len()];
        dims.push(d as isize);
        rem = rem.checked_div(d).unwrap_or(rem);
    }
    dims.push(rem as isize);
    if let Some(i) = infer {
        let i = i as usize % dims.len();
        dims[i] = -1;
    }
    if spoil {
        dims.push(2);
    }
    dims
}

/// Applies `op` to the layout and, independently, to the model; checks they agree on success
/// and on failure.
fn apply(s: &State, op: &Op) -> Result<Option<State>, TestCaseError> {
    let (l, m, nd) = (&s.layout, &s.model, s.model.ndim());
    // (layout result, model result): `None` in the model means the op is invalid.
    let (got, want): (Result<Layout, _>, Option<ArrayD<i64>>) = match op {
        Op::Slice {
            axis: a,
            start,
            stop,
            step,
        } => {
            let (start, stop, step) = (
                start.map(isize::from),
                stop.map(isize::from),
                isize::from(*step),
            );
            let want = axis(isize::from(*a), nd).filter(|_| step != 0).map(|ax| {
                let idx = py_slice(m.shape()[ax], start, stop, step);
                m.select(Axis(ax), &idx)
            });
            (l.slice(isize::from(*a), start, stop, step), want)
        }
        Op::Select { axis: a, index } => {
            let a = *a as usize;
            let want = (a < nd)
                .then(|| {
                    let n = m.shape()[a] as isize;
                    let i = isize::from(*index);
                    let i = if i < 0 { i + n } else { i };
                    (0..n)
                        .contains(&i)
                        .then(|| m.index_axis(Axis(a), i as usize).to_owned())
                })
                .flatten();
            (l.select(a, isize::from(*index)), want)
        }
        Op::Transpose(a, b) => {
            let want = axis(isize::from(*a), nd)
                .zip(axis(isize::from(*b), nd))
                .map(|(a, b)| {
                    let mut v = m.clone();
                    v.swap_axes(a, b);
                    v
                });
            (l.transpose(isize::from(*a), isize::from(*b)), want)
        }
        Op::Reversed => (Ok(l.reversed_axes()), Some(m.clone().reversed_axes())),
        Op::Permute(p) => {
            let perm: Vec<isize> = p.iter().map(|&x| isize::from(x)).collect();
            let norm: Option<Vec<usize>> = perm.iter().map(|&x| axis(x, nd)).collect();
            let want = norm
                .filter(|n| {
                    let mut seen = n.clone();
                    seen.sort_unstable();
                    seen.dedup();
                    n.len() == nd && seen.len() == nd
                })
                .map(|n| m.clone().permuted_axes(IxDyn(&n)));
            (l.permute(&perm), want)
        }
        Op::Broadcast { prepend, grow } => {
            let mut shape: Vec<usize> = prepend.iter().map(|&d| d as usize).collect();
            for (i, &d) in m.shape().iter().enumerate() {
                // Size-1 axes may grow; a random "grow" on another axis is usually invalid.
                let g = grow.get(i).copied().unwrap_or(0) as usize;
                shape.push(if g == 4 {
                    d + 1
                } else if d == 1 {
                    g.max(1)
                } else {
                    d
                });
            }
            let want = m.broadcast(IxDyn(&shape)).map(|v| v.to_owned());
            (l.broadcast_to(&shape), want)
        }
        Op::Squeeze(None) => {
            let mut v = m.clone();
            for ax in (0..nd).rev() {
                if v.shape()[ax] == 1 {
                    v = v.index_axis_move(Axis(ax), 0);
                }
            }
            (l.squeeze(None), Some(v))
        }
        Op::Squeeze(Some(a)) => {
            let want = axis(isize::from(*a), nd)
                .filter(|&ax| m.shape()[ax] == 1)
                .map(|ax| m.index_axis(Axis(ax), 0).to_owned());
            (l.squeeze(Some(isize::from(*a))), want)
        }
        Op::Unsqueeze(a) => {
            let want = axis(isize::from(*a), nd + 1).map(|ax| m.clone().insert_axis(Axis(ax)));
            (l.unsqueeze(isize::from(*a)), want)
        }
        Op::Reshape {
            picks,
            infer,
            spoil,
        } => {
            let target = reshape_target(m.len(), picks, *infer, *spoil);
            return reshape(s, &target);
        }
    };
    match (got, want) {
        (Err(_), None) => Ok(None),
        (Ok(layout), Some(model)) => Ok(Some(State {
            data: s.data.clone(),
            layout,
            model,
        })),
        (got, want) => Err(TestCaseError::fail(format!(
            "{op:?} on {l:?}: layout gave {got:?}, model {}",
            if want.is_some() { "valid" } else { "invalid" }
        ))),
    }
}

/// Reshape: a view when the strides allow (checked like any view), else the caller copies, which
/// the model does too; a contiguous source must never need the copy.
fn reshape(s: &State, target: &[isize]) -> Result<Option<State>, TestCaseError> {
    let known: Option<usize> = target
        .iter()
        .filter(|&&d| d != -1)
        .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize));
    let n = s.model.len();
    let shape: Option<Vec<usize>> = known.and_then(|k| {
        target
            .iter()
            .map(|&d| match d {
                -1 if k != 0 && n % k == 0 => Some(n / k),
                -1 => None,
                d => Some(d as usize),
            })
            .collect::<Option<Vec<usize>>>()
            .filter(|sh| sh.iter().product::<usize>() == n)
    });
    let got = s.layout.reshape(target);
    let Some(shape) = shape else {
        prop_assert!(
            got.is_err(),
            "reshape {target:?} of {:?} should fail",
            s.layout
        );
        return Ok(None);
    };
    let values: Vec<i64> = s.model.iter().copied().collect();
    let model = ArrayD::from_shape_vec(IxDyn(&shape), values.clone()).unwrap();
    match got {
        Ok(Some(layout)) => Ok(Some(State {
            data: s.data.clone(),
            layout,
            model,
        })),
        Ok(None) => {
            prop_assert!(
                !s.layout.is_contiguous(),
                "reshape of contiguous {:?} asked for a copy",
                s.layout
            );
            Ok(Some(State {
                data: values,
                layout: Layout::contiguous(&shape),
                model,
            }))
        }
        Err(e) => Err(TestCaseError::fail(format!(
            "reshape {target:?} of {:?} failed: {e}",
            s.layout
        ))),
    }
}

/// The layout shows exactly the model's values, stays inside its storage, and its summaries
/// (span, contiguity) are true; the copy kernel reads the same values.
fn check(s: &State) -> Result<(), TestCaseError> {
    let l = &s.layout;
    prop_assert_eq!(l.shape(), s.model.shape());
    prop_assert!(
        l.check_fits(s.data.len()).is_ok(),
        "{:?} outside {}",
        l,
        s.data.len()
    );
    let mut indices = Vec::with_capacity(s.model.len());
    for (ix, &want) in s.model.indexed_iter() {
        let at = l.storage_index(ix.slice());
        indices.push(at);
        prop_assert_eq!(s.data[at], want, "at {:?} of {:?}", ix.slice(), l);
    }
    let span = indices
        .iter()
        .min()
        .zip(indices.iter().max())
        .map(|(&lo, &hi)| (lo, hi + 1));
    prop_assert_eq!(l.storage_span(), span, "span of {:?}", l);
    if l.is_contiguous() {
        let dense = indices.windows(2).all(|w| w[1] == w[0] + 1);
        prop_assert!(dense, "{:?} claims contiguity over {:?}", l, indices);
    }
    let copied =
        to_contiguous::<i64, i64>(&s.data, l).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&copied, &s.model.as_standard_layout().to_owned());
    Ok(())
}

#[test]
fn chained_view_ops_match_the_naive_model() {
    fuzz::fuzz(
        "layout view ops",
        (start_state(), prop::collection::vec(op(), 0..8)),
        |(mut s, ops)| {
            check(&s)?;
            for op in &ops {
                if s.model.ndim() > 8 {
                    break;
                }
                if let Some(next) = apply(&s, op)? {
                    check(&next)?;
                    s = next;
                }
            }
            Ok(())
        },
    );
}

#[test]
fn python_slice_model_matches_known_values() {
    // The model itself, against values printed by CPython's list(range(n))[a:b:c].
    assert_eq!(py_slice(10, Some(2), Some(8), 3), vec![2, 5]);
    assert_eq!(py_slice(10, Some(-3), None, -2), vec![7, 5, 3, 1]);
    assert_eq!(py_slice(5, Some(-100), Some(100), 2), vec![0, 2, 4]);
    assert_eq!(py_slice(0, None, None, -1), Vec::<usize>::new());
    assert_eq!(py_slice(4, None, None, -1), vec![3, 2, 1, 0]);
}
