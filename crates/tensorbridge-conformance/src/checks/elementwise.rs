//! Elementwise ops: tensor-tensor arithmetic with broadcasting and promotion, tensor-scalar
//! arithmetic with weak scalars (NEP 50), unary math, and comparisons.

use tensorbridge_core::{
    Backend, BinaryOp, CmpOp, DType, Device, Error, HostArray, Result, Scalar, Tensor, UnaryOp,
};

use crate::checker::{Checker, Tol};
use crate::fixtures::{
    fixture, Case, Dist, BROADCAST_COLUMN, CASES, CONTIGUOUS, NEGATIVE_STEP, PAIRS, SCALAR,
    TRANSPOSED,
};
use crate::reference::{self, host_of, Value};
use crate::rng::Lcg;

const BINARY_OPS: [BinaryOp; 4] = [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div];
const CMP_OPS: [CmpOp; 3] = [CmpOp::Eq, CmpOp::Lt, CmpOp::Gt];

fn apply_binary<B: Backend>(op: BinaryOp, a: &Tensor<B>, b: &Tensor<B>) -> Result<Tensor<B>> {
    match op {
        BinaryOp::Add => a.add(b),
        BinaryOp::Sub => a.sub(b),
        BinaryOp::Mul => a.mul(b),
        BinaryOp::Div => a.div(b),
    }
}

fn is_unsupported(e: &Error) -> bool {
    matches!(e, Error::Unsupported(_))
}

/// Float arithmetic is one correctly rounded op in the result dtype.
fn arithmetic_tol(dtype: DType) -> Tol {
    if dtype.is_float() {
        Tol::Ulps(1.0)
    } else {
        Tol::Exact
    }
}

/// Both operands of a pair, or a recorded failure.
#[allow(clippy::type_complexity)]
fn operands<B: Backend>(
    c: &mut Checker,
    (lc, rc): (&Case, &Case),
    (da, db): (DType, DType),
    dist: Dist,
    rng: &mut Lcg,
    device: &Device,
) -> Option<((Tensor<B>, HostArray), (Tensor<B>, HostArray))> {
    let lhs = fixture::<B>(lc, da, dist, rng, device);
    let rhs = fixture::<B>(rc, db, dist, rng, device);
    match (lhs, rhs) {
        (Ok(l), Ok(r)) => Some((l, r)),
        (Err(e), _) | (_, Err(e)) => {
            c.unexpected(&format!("{da} {} with {db} {}", lc.name, rc.name), e);
            None
        }
    }
}

/// The dtype pairs to run on pair `i` of [`PAIRS`]: every dtype with itself on every pair, and
/// every mixed pair once, rotating through the layout pairs.
fn dtype_pairs(pair_index: usize) -> Vec<(DType, DType)> {
    let mut out: Vec<(DType, DType)> = DType::ALL.iter().map(|&d| (d, d)).collect();
    let n = DType::ALL.len();
    for (i, &a) in DType::ALL.iter().enumerate() {
        for (j, &b) in DType::ALL.iter().enumerate() {
            if a != b && (i * n + j) % PAIRS.len() == pair_index {
                out.push((a, b));
            }
        }
    }
    out
}

/// `+ - * /` between tensors of every dtype pair and layout pair broadcast like NumPy, compute in
/// `DType::promote` (true division of integers in float64), wrap integers, and reject bool `-`.
pub fn check_binary<B: Backend>(device: &Device) {
    let mut c = Checker::new("binary");
    let mut rng = Lcg::new(0xB1);
    for (pi, (lc, rc)) in PAIRS.iter().enumerate() {
        for (da, db) in dtype_pairs(pi) {
            let Some(((ta, ha), (tb, hb))) =
                operands::<B>(&mut c, (lc, rc), (da, db), Dist::Full, &mut rng, device)
            else {
                continue;
            };
            let promoted = DType::promote(da, db);
            for op in BINARY_OPS {
                let ctx = format!("{op:?} {da} {} with {db} {}", lc.name, rc.name);
                let got = apply_binary(op, &ta, &tb);
                if op == BinaryOp::Sub && promoted == DType::Bool {
                    c.error(&ctx, got, "Error::Unsupported", is_unsupported);
                    continue;
                }
                let dtype = match op {
                    BinaryOp::Div => reference::true_divide_dtype(promoted),
                    _ => promoted,
                };
                let want = reference::binary(
                    op,
                    &reference::cast(&ha, dtype),
                    &reference::cast(&hb, dtype),
                );
                c.tensor(&ctx, got, &want, &arithmetic_tol(dtype));
            }
        }
    }
    c.finish();
}

fn apply_scalar<B: Backend>(
    op: BinaryOp,
    reversed: bool,
    t: &Tensor<B>,
    s: Scalar,
) -> Result<Tensor<B>> {
    match (op, reversed) {
        (BinaryOp::Add, _) => t.add_scalar(s),
        (BinaryOp::Sub, false) => t.sub_scalar(s),
        (BinaryOp::Sub, true) => t.rsub_scalar(s),
        (BinaryOp::Mul, _) => t.mul_scalar(s),
        (BinaryOp::Div, false) => t.div_scalar(s),
        (BinaryOp::Div, true) => t.rdiv_scalar(s),
    }
}

const SCALARS: [Scalar; 6] = [
    Scalar::Bool(true),
    Scalar::Int(3),
    Scalar::Int(-2),
    Scalar::Float(0.5),
    Scalar::Float(-1.25),
    Scalar::Int(300),
];

/// Tensor-scalar arithmetic keeps the tensor's dtype where the Python scalar fits (NEP 50), goes
/// to int64 for `bool + int` and float64 for `int + float` and for true division of integers, and
/// rejects Python ints out of the tensor's range (except in true division, which is float64).
pub fn check_scalar_arithmetic<B: Backend>(device: &Device) {
    let mut c = Checker::new("scalar arithmetic");
    let mut rng = Lcg::new(0x5CA1);
    for dtype in DType::ALL {
        for case in &CASES {
            let (t, h) = match fixture::<B>(case, dtype, Dist::Full, &mut rng, device) {
                Ok(f) => f,
                Err(e) => {
                    c.unexpected(&format!("{} {dtype}", case.name), e);
                    continue;
                }
            };
            for s in SCALARS {
                for op in BINARY_OPS {
                    for reversed in [false, true] {
                        if reversed && matches!(op, BinaryOp::Add | BinaryOp::Mul) {
                            continue;
                        }
                        let ctx = format!(
                            "{}{op:?} {dtype} {} with {s:?}",
                            if reversed { "reversed " } else { "" },
                            case.name
                        );
                        let got = apply_scalar(op, reversed, &t, s);
                        let Some(out) = reference::scalar_op_dtype(op, s, dtype) else {
                            c.error(&ctx, got, "Error::IntegerOutOfBounds", |e| {
                                matches!(e, Error::IntegerOutOfBounds { .. })
                            });
                            continue;
                        };
                        if op == BinaryOp::Sub && out == DType::Bool {
                            c.error(&ctx, got, "Error::Unsupported", is_unsupported);
                            continue;
                        }
                        let tensor = reference::cast(&h, out);
                        let scalar = host_of(out, &[], vec![Value::of_scalar(s)]);
                        let want = if reversed {
                            reference::binary(op, &scalar, &tensor)
                        } else {
                            reference::binary(op, &tensor, &scalar)
                        };
                        c.tensor(&ctx, got, &want, &arithmetic_tol(out));
                    }
                }
            }
        }
    }
    c.finish();
}

fn apply_unary<B: Backend>(op: UnaryOp, t: &Tensor<B>) -> Result<Tensor<B>> {
    match op {
        UnaryOp::Neg => t.neg(),
        UnaryOp::Abs => t.abs(),
        UnaryOp::Exp => t.exp(),
        UnaryOp::Log => t.log(),
        UnaryOp::Sqrt => t.sqrt(),
    }
}

/// `neg abs` keep the dtype (wrapping at the signed minimum, rejecting bool `neg`); `exp log
/// sqrt` compute in NumPy's float result type (float16 for 8-bit inputs, float32 for 16-bit,
/// float64 for wider integers).
pub fn check_unary<B: Backend>(device: &Device) {
    let mut c = Checker::new("unary");
    let mut rng = Lcg::new(0x0E);
    let ops = [
        (UnaryOp::Neg, Dist::Full),
        (UnaryOp::Abs, Dist::Full),
        (UnaryOp::Exp, Dist::Small),
        (UnaryOp::Log, Dist::Positive),
        (UnaryOp::Sqrt, Dist::Positive),
    ];
    for dtype in DType::ALL {
        for case in &CASES {
            for (op, dist) in ops {
                let ctx = format!("{op:?} {dtype} {}", case.name);
                let (t, h) = match fixture::<B>(case, dtype, dist, &mut rng, device) {
                    Ok(f) => f,
                    Err(e) => {
                        c.unexpected(&ctx, e);
                        continue;
                    }
                };
                let got = apply_unary(op, &t);
                if op == UnaryOp::Neg && dtype == DType::Bool {
                    c.error(&ctx, got, "Error::Unsupported", is_unsupported);
                    continue;
                }
                let tol = match op {
                    UnaryOp::Neg | UnaryOp::Abs => Tol::Exact,
                    _ => Tol::Ulps(2.0),
                };
                c.tensor(&ctx, got, &reference::unary(op, &h), &tol);
            }
        }
    }
    c.finish();
}

fn apply_compare<B: Backend>(op: CmpOp, a: &Tensor<B>, b: &Tensor<B>) -> Result<Tensor<B>> {
    match op {
        CmpOp::Eq => a.eq(b),
        CmpOp::Lt => a.lt(b),
        CmpOp::Gt => a.gt(b),
    }
}

fn apply_compare_scalar<B: Backend>(op: CmpOp, a: &Tensor<B>, s: Scalar) -> Result<Tensor<B>> {
    match op {
        CmpOp::Eq => a.eq_scalar(s),
        CmpOp::Lt => a.lt_scalar(s),
        CmpOp::Gt => a.gt_scalar(s),
    }
}

/// `== < >` between tensors compare in the promoted dtype (NaN compares false) and give bool;
/// against a Python scalar they compare the mathematical values, even when the scalar does not
/// fit the tensor's dtype.
pub fn check_compare<B: Backend>(device: &Device) {
    let mut c = Checker::new("compare");
    let mut rng = Lcg::new(0xC3);
    for (pi, (lc, rc)) in PAIRS.iter().enumerate() {
        for (da, db) in dtype_pairs(pi) {
            let Some(((ta, ha), (tb, hb))) =
                operands::<B>(&mut c, (lc, rc), (da, db), Dist::Small, &mut rng, device)
            else {
                continue;
            };
            let promoted = DType::promote(da, db);
            let (ca, cb) = (
                reference::cast(&ha, promoted),
                reference::cast(&hb, promoted),
            );
            for op in CMP_OPS {
                c.tensor(
                    &format!("{op:?} {da} {} with {db} {}", lc.name, rc.name),
                    apply_compare(op, &ta, &tb),
                    &reference::compare(op, &ca, &cb),
                    &Tol::Exact,
                );
            }
        }
    }
    let scalars = [
        Scalar::Bool(true),
        Scalar::Int(2),
        Scalar::Int(-2),
        Scalar::Int(300),
        Scalar::Float(0.5),
        Scalar::Float(-1.25),
    ];
    for dtype in DType::ALL {
        for case in [
            &CONTIGUOUS,
            &TRANSPOSED,
            &NEGATIVE_STEP,
            &SCALAR,
            &BROADCAST_COLUMN,
        ] {
            let (t, h) = match fixture::<B>(case, dtype, Dist::Small, &mut rng, device) {
                Ok(f) => f,
                Err(e) => {
                    c.unexpected(&format!("{} {dtype}", case.name), e);
                    continue;
                }
            };
            let v = reference::values(&h);
            for s in scalars {
                let sv = Value::of_scalar(s);
                for op in CMP_OPS {
                    let want = v.mapv(|x| Value::Int(reference::compare_values(op, x, sv) as i128));
                    c.tensor(
                        &format!("{op:?} {dtype} {} with scalar {s:?}", case.name),
                        apply_compare_scalar(op, &t, s),
                        &reference::from_values(DType::Bool, &want),
                        &Tol::Exact,
                    );
                }
            }
        }
    }
    c.finish();
}
