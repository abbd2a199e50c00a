//! Reductions: `sum mean max min` over all elements and over each axis (negative axes too), with
//! and without `keepdim`, on every layout and dtype; NaN propagates through `max`/`min`.

use tensorbridge_core::{Backend, DType, Device, Error, HostArray, ReduceOp, Result, Tensor};

use crate::checker::{Checker, Tol};
use crate::fixtures::{fixture, Dist, CASES};
use crate::reference;
use crate::rng::Lcg;

const OPS: [ReduceOp; 4] = [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min];

fn apply<B: Backend>(
    op: ReduceOp,
    t: &Tensor<B>,
    axis: Option<isize>,
    keepdim: bool,
) -> Result<Tensor<B>> {
    match op {
        ReduceOp::Sum => t.sum(axis, keepdim),
        ReduceOp::Mean => t.mean(axis, keepdim),
        ReduceOp::Max => t.max(axis, keepdim),
        ReduceOp::Min => t.min(axis, keepdim),
    }
}

/// Sums of bool/signed give int64 and of unsigned uint64 (wrapping), means of integers float64,
/// `max`/`min` keep the dtype and propagate NaN, and `max`/`min` over an empty lane are errors.
pub fn check_reductions<B: Backend>(device: &Device) {
    let mut c = Checker::new("reductions");
    let mut rng = Lcg::new(0x5E3);
    for dtype in DType::ALL {
        let dists: &[Dist] = if dtype.is_float() {
            &[Dist::Full, Dist::WithNan]
        } else {
            &[Dist::Full]
        };
        for &dist in dists {
            for case in &CASES {
                let ctx = format!("{dtype} {} {dist:?}", case.name);
                match fixture::<B>(case, dtype, dist, &mut rng, device) {
                    Ok((t, h)) => reduce_all_ways(&mut c, &ctx, &t, &h),
                    Err(e) => c.unexpected(&ctx, e),
                }
            }
        }
    }
    c.finish();
}

fn reduce_all_ways<B: Backend>(c: &mut Checker, ctx: &str, t: &Tensor<B>, h: &HostArray) {
    let shape = h.shape().to_vec();
    let ndim = shape.len() as isize;
    let mut axes: Vec<Option<isize>> = vec![None];
    axes.extend((0..ndim).map(Some));
    if ndim > 0 {
        axes.push(Some(-1));
    }
    for op in OPS {
        for &axis in &axes {
            let ax = axis.map(|a| if a < 0 { a + ndim } else { a } as usize);
            let lane = ax.map_or(shape.iter().product(), |a| shape[a]);
            let outputs: usize = match ax {
                None => 1,
                Some(a) => (shape.iter().enumerate())
                    .filter(|&(i, _)| i != a)
                    .map(|(_, &d)| d)
                    .product(),
            };
            for keepdim in [false, true] {
                let what = format!("{op:?}(axis={axis:?}, keepdim={keepdim}) {ctx}");
                let got = apply(op, t, axis, keepdim);
                let exact = matches!(op, ReduceOp::Max | ReduceOp::Min);
                if exact && lane == 0 && outputs > 0 {
                    c.error(&what, got, "an error (no identity)", |e| {
                        matches!(e, Error::InvalidArgument(_))
                    });
                    continue;
                }
                let (want, scale) = reference::reduce(op, h, ax, keepdim);
                let tol = match (want.dtype().is_float(), exact) {
                    (false, _) => Tol::Exact,
                    (true, true) => Tol::Equal,
                    (true, false) => Tol::Accumulated { terms: lane, scale },
                };
                c.tensor(&what, got, &want, &tol);
            }
        }
    }
}
