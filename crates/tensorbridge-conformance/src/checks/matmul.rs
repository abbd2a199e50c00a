//! `matmul`: vector·vector, matrix @ matrix, vector @ matrix and back, batches with broadcast
//! batch dimensions (implicit and stride 0), zero-size operands, and every dtype pair.

use tensorbridge_core::{Backend, DType, Device};

use crate::checker::{Checker, Tol};
use crate::fixtures::{fixture, slice, Case, Dist, ViewOp};
use crate::reference;
use crate::rng::Lcg;

const fn case(name: &'static str, base: &'static [usize], views: &'static [ViewOp]) -> Case {
    Case { name, base, views }
}

const VECTOR: Case = case("vector[7]", &[7], &[]);
const MATRIX: Case = case("matrix[7,4]", &[7, 4], &[]);

const PAIRS: [(Case, Case); 11] = [
    (
        VECTOR,
        case("reversed[7][::-1]", &[7], &[slice(0, None, None, -1)]),
    ),
    (
        case("transposed[7,3].T", &[7, 3], &[ViewOp::Reverse]),
        case(
            "negative_step[7,8][:,::-2]",
            &[7, 8],
            &[slice(1, None, None, -2)],
        ),
    ),
    (VECTOR, MATRIX),
    (
        case("step_sliced[6,7][::2]", &[6, 7], &[slice(0, None, None, 2)]),
        VECTOR,
    ),
    (
        case("batch[2,1,3,7]", &[2, 1, 3, 7], &[]),
        case(
            "permuted[4,5,7]->(0,2,1)",
            &[4, 5, 7],
            &[ViewOp::Permute(&[0, 2, 1])],
        ),
    ),
    (
        case(
            "stride-0 batch[3,7]->[2,3,7]",
            &[3, 7],
            &[ViewOp::BroadcastTo(&[2, 3, 7])],
        ),
        case("matrix[7,2]", &[7, 2], &[]),
    ),
    (case("batch[2,3,7]", &[2, 3, 7], &[]), VECTOR),
    (case("k=0 [3,0]", &[3, 0], &[]), case("[0,4]", &[0, 4], &[])),
    (case("m=0 [0,7]", &[0, 7], &[]), MATRIX),
    (
        case("empty batch[0,3,7]", &[0, 3, 7], &[]),
        case("[7,2]", &[7, 2], &[]),
    ),
    (
        case("k=0 vector[0]", &[0], &[]),
        case("k=0 vector[0]", &[0], &[]),
    ),
];

/// Every dtype (and every dtype pair, promoted) multiplies like the naive reference: integers
/// wrap, bool is `or` of `and`s, floats agree within accumulated round-off.
pub fn check_matmul<B: Backend>(device: &Device) {
    let mut c = Checker::new("matmul");
    let mut rng = Lcg::new(0x3A7);
    let n = DType::ALL.len();
    for (i, &da) in DType::ALL.iter().enumerate() {
        for (j, &db) in DType::ALL.iter().enumerate() {
            // Same-dtype products run on every pair; mixed ones rotate through the pairs.
            let pairs: Vec<&(Case, Case)> = if da == db {
                PAIRS.iter().collect()
            } else {
                vec![&PAIRS[(i * n + j) % PAIRS.len()]]
            };
            for (lc, rc) in pairs {
                let ctx = format!("matmul {da} {} @ {db} {}", lc.name, rc.name);
                let lhs = fixture::<B>(lc, da, Dist::Small, &mut rng, device);
                let rhs = fixture::<B>(rc, db, Dist::Small, &mut rng, device);
                let ((ta, ha), (tb, hb)) = match (lhs, rhs) {
                    (Ok(l), Ok(r)) => (l, r),
                    (Err(e), _) | (_, Err(e)) => {
                        c.unexpected(&ctx, e);
                        continue;
                    }
                };
                let dtype = DType::promote(da, db);
                let k = ha.shape().last().copied().unwrap_or(0);
                let (want, scale) =
                    reference::matmul(&reference::cast(&ha, dtype), &reference::cast(&hb, dtype));
                let tol = if dtype.is_float() {
                    Tol::Accumulated { terms: k, scale }
                } else {
                    Tol::Exact
                };
                c.tensor(&ctx, ta.matmul(&tb), &want, &tol);
            }
        }
    }
    c.finish();
}
