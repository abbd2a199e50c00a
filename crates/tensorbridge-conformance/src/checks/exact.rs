//! Integers are exact: comparisons and arithmetic between an integer tensor and a Python int
//! never pass through f64, for every integer dtype, and a Python int outside the dtype behaves as
//! in NumPy 2 (comparisons answer exactly; arithmetic and creation raise OverflowError, here
//! `Error::IntegerOutOfBounds`). Creation from ints is exact too (`full(uint64, 2**64 - 2)`).
//!
//! Expected values are computed here in `i128` (and, for NumPy's behaviour with out-of-range
//! ints, written out from NumPy 2.4).

use tensorbridge_core::{Backend, BinaryOp, CmpOp, DType, Device, Error, Result, Scalar, Tensor};

use crate::checker::{Checker, Tol};
use crate::reference::{compare_values, host_of, int_range, wrap_int, Value};

const INT_DTYPES: [DType; 8] = [
    DType::U8,
    DType::U16,
    DType::U32,
    DType::U64,
    DType::I8,
    DType::I16,
    DType::I32,
    DType::I64,
];

fn ints<B: Backend>(dtype: DType, v: &[i128], device: &Device) -> Result<Tensor<B>> {
    let values = v.iter().map(|&i| Value::Int(i)).collect();
    Tensor::from_host(host_of(dtype, &[v.len()], values), device)
}

fn bools(v: &[bool]) -> tensorbridge_core::HostArray {
    let values = v.iter().map(|&b| Value::Int(b as i128)).collect();
    host_of(DType::Bool, &[v.len()], values)
}

fn compare_op<B: Backend>(t: &Tensor<B>, op: CmpOp, s: Scalar) -> Result<Tensor<B>> {
    match op {
        CmpOp::Eq => t.eq_scalar(s),
        CmpOp::Lt => t.lt_scalar(s),
        CmpOp::Gt => t.gt_scalar(s),
    }
}

fn arith_op<B: Backend>(
    t: &Tensor<B>,
    op: BinaryOp,
    s: Scalar,
    reversed: bool,
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

fn out_of_bounds(value: i128, dtype: DType) -> impl FnOnce(&Error) -> bool {
    move |e| matches!(e, Error::IntegerOutOfBounds { value: v, dtype: d } if *v == value && *d == dtype)
}

/// Comparisons and arithmetic with Python ints are exact on every integer dtype; ints outside
/// the dtype compare exactly and make arithmetic and creation fail as NumPy 2 does.
pub fn check_exact_integers<B: Backend>(device: &Device) {
    let mut c = Checker::new("exact integers");
    uint64_around_2_63::<B>(&mut c, device);
    for dtype in INT_DTYPES {
        if let Err(e) = edges::<B>(&mut c, dtype, device) {
            c.unexpected(&format!("{dtype} edges"), e);
        }
    }
    if let Err(e) = bool_and_float_tensors::<B>(&mut c, device) {
        c.unexpected("bool and float tensors with big ints", e);
    }
    c.finish();
}

/// The case: uint64 `[2**63 - 1, 2**63, 2**63 + 1]`.
fn uint64_around_2_63<B: Backend>(c: &mut Checker, device: &Device) {
    let p = 1i128 << 63;
    let t = match ints::<B>(DType::U64, &[p - 1, p, p + 1], device) {
        Ok(t) => t,
        Err(e) => return c.unexpected("uint64 [2**63-1, 2**63, 2**63+1]", e),
    };
    let cases = [
        (CmpOp::Eq, p, [false, true, false]),
        (CmpOp::Lt, p + 1, [true, true, false]),
        (CmpOp::Gt, p, [false, false, true]),
        (CmpOp::Eq, p - 1, [true, false, false]),
    ];
    for (op, v, want) in cases {
        c.tensor(
            &format!("uint64 [2**63-1, 2**63, 2**63+1] {op:?} {v}"),
            compare_op(&t, op, Scalar::Int(v)),
            &bools(&want),
            &Tol::Exact,
        );
    }
}

fn edges<B: Backend>(c: &mut Checker, dtype: DType, device: &Device) -> Result<()> {
    let (lo, hi) = int_range(dtype);
    let data = [lo, lo + 1, 0, 1, hi - 1, hi];
    let t = match ints::<B>(dtype, &data, device) {
        Ok(t) => t,
        Err(e) => {
            c.unexpected(&format!("{dtype} edge values"), e);
            return Ok(());
        }
    };
    c.tensor(
        &format!("{dtype} edge values round-trip"),
        Ok(t.clone()),
        &host_of(dtype, &[6], data.iter().map(|&i| Value::Int(i)).collect()),
        &Tol::Exact,
    );
    let inside = [lo, lo + 1, 0, 1, hi - 1, hi];
    let outside = [
        lo - 1,
        hi + 1,
        1i128 << 64,
        -(1i128 << 64),
        1i128 << 100,
        -(1i128 << 100),
    ];
    for &v in inside.iter().chain(&outside) {
        for op in [CmpOp::Eq, CmpOp::Lt, CmpOp::Gt] {
            let want: Vec<bool> = data
                .iter()
                .map(|&x| compare_values(op, Value::Int(x), Value::Int(v)))
                .collect();
            c.tensor(
                &format!("{dtype} edges {op:?} {v}"),
                compare_op(&t, op, Scalar::Int(v)),
                &bools(&want),
                &Tol::Exact,
            );
        }
    }
    // Arithmetic with an int inside the range wraps exactly in the dtype (no f64 on the way).
    for &v in &inside {
        for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul] {
            for reversed in [false, true] {
                if reversed && op != BinaryOp::Sub {
                    continue;
                }
                let want: Vec<Value> = data
                    .iter()
                    .map(|&x| {
                        let (a, b) = if reversed { (v, x) } else { (x, v) };
                        Value::Int(wrap_int(
                            match op {
                                BinaryOp::Add => a + b,
                                BinaryOp::Sub => a - b,
                                _ => a.wrapping_mul(b),
                            },
                            dtype,
                        ))
                    })
                    .collect();
                c.tensor(
                    &format!("{dtype} edges {op:?} {v} (reversed: {reversed})"),
                    arith_op(&t, op, Scalar::Int(v), reversed),
                    &host_of(dtype, &[6], want),
                    &Tol::Exact,
                );
            }
        }
    }
    // NumPy 2: `uint8 + 300` is OverflowError "Python integer 300 out of bounds for uint8";
    // true division computes in float64 and accepts any int.
    for &v in &outside {
        for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul] {
            for reversed in [false, true] {
                c.error(
                    &format!("{dtype} {op:?} {v} (reversed: {reversed})"),
                    arith_op(&t, op, Scalar::Int(v), reversed),
                    "Error::IntegerOutOfBounds",
                    out_of_bounds(v, dtype),
                );
            }
        }
        c.check(
            arith_op(&t, BinaryOp::Div, Scalar::Int(v), false)
                .is_ok_and(|q| q.dtype() == DType::F64),
            &format!("{dtype} / {v} is float64"),
            || "true division by an out-of-range int failed or is not float64".into(),
        );
        c.error(
            &format!("full({v}, {dtype})"),
            Tensor::<B>::full(&[2], Scalar::Int(v), Some(dtype), device),
            "Error::IntegerOutOfBounds",
            out_of_bounds(v, dtype),
        );
    }
    // Creation from ints is exact at every edge.
    for &v in &inside {
        c.tensor(
            &format!("full({v}, {dtype})"),
            Tensor::<B>::full(&[2], Scalar::Int(v), Some(dtype), device),
            &host_of(dtype, &[2], vec![Value::Int(v); 2]),
            &Tol::Exact,
        );
    }
    Ok(())
}

fn bool_and_float_tensors<B: Backend>(c: &mut Checker, device: &Device) -> Result<()> {
    let p = 1i128 << 63;
    // np.full(2, 2**64 - 2, dtype=np.uint64) and np.full(2, 2**63) (uint64 by default).
    c.tensor(
        "full(2**64 - 2, uint64)",
        Tensor::<B>::full(&[2], Scalar::Int((1 << 64) - 2), Some(DType::U64), device),
        &host_of(DType::U64, &[2], vec![Value::Int((1 << 64) - 2); 2]),
        &Tol::Exact,
    );
    c.tensor(
        "full(2**63) without a dtype is uint64",
        Tensor::<B>::full(&[1], Scalar::Int(p), None, device),
        &host_of(DType::U64, &[1], vec![Value::Int(p)]),
        &Tol::Exact,
    );
    c.tensor(
        "full(5, bool) is True",
        Tensor::<B>::full(&[1], Scalar::Int(5), Some(DType::Bool), device),
        &bools(&[true]),
        &Tol::Exact,
    );
    // A bool tensor with an int computes in int64 (NumPy: `[True] + 5` is int64 [6]); an int
    // beyond int64 is an OverflowError there, comparisons included.
    let b = Tensor::<B>::from_host(bools(&[true, false]), device)?;
    c.tensor(
        "bool + 5 is int64",
        b.add_scalar(Scalar::Int(5)),
        &host_of(DType::I64, &[2], vec![Value::Int(6), Value::Int(5)]),
        &Tol::Exact,
    );
    c.error(
        "bool + 2**63",
        b.add_scalar(Scalar::Int(p)),
        "Error::IntegerOutOfBounds",
        out_of_bounds(p, DType::I64),
    );
    c.error(
        "bool < 2**63",
        b.lt_scalar(Scalar::Int(p)),
        "Error::IntegerOutOfBounds",
        out_of_bounds(p, DType::I64),
    );
    // Float tensors take the int in their own dtype (NumPy 2): 2**63 is inf in float16, and
    // float64 2**63 equals 2**63 + 1 (which rounds to 2**63).
    let h = Tensor::<B>::from_host(
        host_of(
            DType::F16,
            &[2],
            vec![Value::Float(1.0), Value::Float(f64::INFINITY)],
        ),
        device,
    )?;
    c.tensor(
        "float16 [1, inf] < 2**63",
        h.lt_scalar(Scalar::Int(p)),
        &bools(&[true, false]),
        &Tol::Exact,
    );
    c.tensor(
        "float16 [1, inf] == 2**63",
        h.eq_scalar(Scalar::Int(p)),
        &bools(&[false, true]),
        &Tol::Exact,
    );
    for dtype in [DType::F32, DType::F64] {
        let f = Tensor::<B>::from_host(host_of(dtype, &[1], vec![Value::Float(p as f64)]), device)?;
        c.tensor(
            &format!("{dtype} [2**63] == 2**63 + 1"),
            f.eq_scalar(Scalar::Int(p + 1)),
            &bools(&[true]),
            &Tol::Exact,
        );
    }
    Ok(())
}
