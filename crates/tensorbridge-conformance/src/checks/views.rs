//! Views: transpose, permute, slice, broadcast_to, squeeze, unsqueeze, select and reshape are
//! layout changes whose values must read back like the same view made by `ndarray`; `contiguous`
//! materialises any of them.

use tensorbridge_core::{Backend, DType, Device};

use crate::checker::{read_back, Checker, Tol};
use crate::fixtures::{fixture, slice, Case, Dist, ViewOp, CASES};
use crate::rng::Lcg;

const fn case(name: &'static str, base: &'static [usize], views: &'static [ViewOp]) -> Case {
    Case { name, base, views }
}

/// View chains beyond the op cases: every view op, alone and combined.
const VIEWS: [Case; 31] = [
    case("transpose(0,-1)", &[2, 3, 4], &[ViewOp::Transpose(0, -1)]),
    case(
        "permute(-1,0,1)",
        &[2, 3, 4],
        &[ViewOp::Permute(&[-1, 0, 1])],
    ),
    case(".T of 3-d", &[2, 3, 4], &[ViewOp::Reverse]),
    case("[1:8:3]", &[10], &[slice(0, Some(1), Some(8), 3)]),
    case("[-2:1:-3]", &[10], &[slice(0, Some(-2), Some(1), -3)]),
    case(
        "[-100:100:2] clamps",
        &[6],
        &[slice(0, Some(-100), Some(100), 2)],
    ),
    case("[4:2] is empty", &[6], &[slice(0, Some(4), Some(2), 1)]),
    case(
        "[::-1, ::-1]",
        &[4, 5],
        &[slice(0, None, None, -1), slice(1, None, None, -1)],
    ),
    case(
        "broadcast_to new axes",
        &[3],
        &[ViewOp::BroadcastTo(&[2, 4, 3])],
    ),
    case("broadcast_to of 0-d", &[], &[ViewOp::BroadcastTo(&[2, 3])]),
    case(
        "broadcast_to zero-size",
        &[1, 3],
        &[ViewOp::BroadcastTo(&[0, 3])],
    ),
    case("squeeze()", &[1, 3, 1, 2], &[ViewOp::Squeeze(None)]),
    case("squeeze(-1)", &[1, 3, 1], &[ViewOp::Squeeze(Some(-1))]),
    case("unsqueeze(0)", &[3, 2], &[ViewOp::Unsqueeze(0)]),
    case(
        "unsqueeze(-1) of .T",
        &[3, 2],
        &[ViewOp::Reverse, ViewOp::Unsqueeze(-1)],
    ),
    case(
        "select(1, -1)",
        &[3, 4],
        &[ViewOp::Select { axis: 1, index: -1 }],
    ),
    case(
        "select to 0-d",
        &[4],
        &[ViewOp::Select { axis: 0, index: 2 }],
    ),
    case(
        "reshape contiguous",
        &[3, 4],
        &[ViewOp::Reshape(&[2, -1, 3])],
    ),
    case(
        "reshape of .T copies",
        &[3, 4],
        &[ViewOp::Reverse, ViewOp::Reshape(&[-1])],
    ),
    case(
        "reshape of a step slice",
        &[4, 6],
        &[slice(1, None, None, 2), ViewOp::Reshape(&[2, 2, 3])],
    ),
    case(
        "reshape of a step slice that copies",
        &[4, 6],
        &[slice(1, None, None, 2), ViewOp::Reshape(&[12])],
    ),
    case(
        "reshape of a broadcast",
        &[3, 1],
        &[ViewOp::BroadcastTo(&[3, 4]), ViewOp::Reshape(&[3, 2, 2])],
    ),
    case(
        "reshape splitting an axis of [::-1, :] (no copy)",
        &[4, 6],
        &[slice(0, None, None, -1), ViewOp::Reshape(&[2, 2, 2, 3])],
    ),
    case(
        "reshape splitting a reversed axis (no copy)",
        &[4, 6],
        &[slice(1, None, None, -1), ViewOp::Reshape(&[4, 3, 2])],
    ),
    case(
        "select along a reversed axis",
        &[4, 5],
        &[
            slice(0, None, None, -1),
            ViewOp::Select { axis: 0, index: 1 },
        ],
    ),
    case(
        "select(-1, -2) of a negative step .T",
        &[4, 5],
        &[
            slice(1, None, None, -2),
            ViewOp::Reverse,
            ViewOp::Select {
                axis: -1,
                index: -2,
            },
        ],
    ),
    case("reshape 0-d to [1,1]", &[], &[ViewOp::Reshape(&[1, 1])]),
    case("reshape [1] to 0-d", &[1], &[ViewOp::Reshape(&[])]),
    case("reshape zero-size", &[3, 0], &[ViewOp::Reshape(&[0, 5])]),
    case(
        "reshape of a negative step",
        &[3, 4],
        &[slice(1, None, None, -1), ViewOp::Reshape(&[2, 6])],
    ),
    case(
        "permute, negative slice, select, unsqueeze, contiguous, .T",
        &[4, 5, 6],
        &[
            ViewOp::Permute(&[2, 0, 1]),
            slice(0, Some(5), Some(0), -2),
            ViewOp::Select { axis: 1, index: 1 },
            ViewOp::Unsqueeze(0),
            ViewOp::Contiguous,
            ViewOp::Reverse,
        ],
    ),
];

/// Every view reads back the values `ndarray` gives for the same view, and `contiguous()` of it
/// is contiguous with the same values.
pub fn check_views<B: Backend>(device: &Device) {
    let mut c = Checker::new("views");
    let mut rng = Lcg::new(0x51DE);
    for dtype in DType::ALL {
        for case in VIEWS.iter().chain(&CASES) {
            let ctx = format!("{} {dtype}", case.name);
            let (t, h) = match fixture::<B>(case, dtype, Dist::Full, &mut rng, device) {
                Ok(f) => f,
                Err(e) => {
                    c.unexpected(&ctx, e);
                    continue;
                }
            };
            c.host(&ctx, read_back(&t), &h, &Tol::Exact);
            let dense = t.contiguous();
            if let Ok(d) = &dense {
                c.check(d.is_contiguous(), &ctx, || {
                    format!("contiguous() gave layout {:?}", d.layout())
                });
            }
            c.tensor(&format!("contiguous() of {ctx}"), dense, &h, &Tol::Exact);
        }
    }
    c.finish();
}
