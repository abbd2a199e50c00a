//! Values NumPy 2 gives for the edge cases that matter most, written out literally: integer
//! wrapping, NaN propagation, true division, reduction and promotion dtypes, weak scalars.

use tensorbridge_core::{Backend, DType, Device, Result, Scalar, Tensor};

use crate::checker::{Checker, Tol};
use crate::reference::{host_of, Value};

use Value::{Float as F, Int as I};

struct Pins<'a> {
    c: Checker,
    device: &'a Device,
}

impl Pins<'_> {
    fn t<B: Backend>(&self, dtype: DType, shape: &[usize], v: &[Value]) -> Result<Tensor<B>> {
        Tensor::from_host(host_of(dtype, shape, v.to_vec()), self.device)
    }

    /// `got` must be exactly `want` of `dtype` and `shape`.
    fn expect<B: Backend>(
        &mut self,
        ctx: &str,
        got: Result<Tensor<B>>,
        dtype: DType,
        shape: &[usize],
        want: &[Value],
    ) {
        let want = host_of(dtype, shape, want.to_vec());
        self.c.tensor(ctx, got, &want, &Tol::Exact);
    }
}

/// Integer arithmetic wraps, sums widen before they wrap, NaN propagates through `max`/`min` and
/// compares false, integer true division gives float64, and the result dtypes of promotion,
/// reductions, unary math and weak scalars are NumPy's.
pub fn check_numpy_edge_cases<B: Backend>(device: &Device) {
    let mut p = Pins {
        c: Checker::new("numpy edge cases"),
        device,
    };
    for (what, run) in [
        (
            "integer wrapping",
            wrapping::<B> as fn(&mut Pins) -> Result<()>,
        ),
        ("NaN", nan::<B>),
        ("result dtypes", dtypes::<B>),
    ] {
        if let Err(e) = run(&mut p) {
            p.c.unexpected(what, e);
        }
    }
    p.c.finish();
}

fn wrapping<B: Backend>(p: &mut Pins) -> Result<()> {
    use DType::*;
    let a = p.t::<B>(U8, &[3], &[I(250), I(16), I(255)])?;
    let b = p.t::<B>(U8, &[3], &[I(10), I(16), I(1)])?;
    p.expect("u8 add wraps", a.add(&b), U8, &[3], &[I(4), I(32), I(0)]);
    p.expect("u8 mul wraps", a.mul(&b), U8, &[3], &[I(196), I(0), I(255)]);
    p.expect("u8 sub wraps", b.sub(&a), U8, &[3], &[I(16), I(0), I(2)]);
    let x = p.t::<B>(I8, &[3], &[I(100), I(-128), I(127)])?;
    let y = p.t::<B>(I8, &[3], &[I(3), I(-1), I(1)])?;
    p.expect(
        "i8 mul wraps",
        x.mul(&y),
        I8,
        &[3],
        &[I(44), I(-128), I(127)],
    );
    p.expect(
        "i8 add wraps",
        x.add(&y),
        I8,
        &[3],
        &[I(103), I(127), I(-128)],
    );
    let got = a.add_scalar(10i64);
    p.expect("u8 + 10 wraps in u8", got, U8, &[3], &[I(4), I(26), I(9)]);
    let got = x.mul_scalar(3i64);
    p.expect(
        "i8 * 3 wraps in i8",
        got,
        I8,
        &[3],
        &[I(44), I(-128), I(125)],
    );
    let got = x.abs();
    p.expect(
        "abs(i8 min) stays i8 min",
        got,
        I8,
        &[3],
        &[I(100), I(-128), I(127)],
    );
    let got = p.t::<B>(U8, &[2], &[I(1), I(0)])?.neg();
    p.expect("neg of u8 wraps", got, U8, &[2], &[I(255), I(0)]);
    let got = p
        .t::<B>(U64, &[2], &[I(u64::MAX as i128), I(2)])?
        .sum(None, false);
    p.expect("sum of u64 wraps in u64", got, U64, &[], &[I(1)]);
    let got = p
        .t::<B>(I8, &[3], &[I(100), I(100), I(100)])?
        .sum(None, false);
    p.expect("sum of i8 accumulates in i64", got, I64, &[], &[I(300)]);
    // Float sums accumulate in f64 and round once into the dtype: in bf16 itself 256 + 1 is 256
    // (ml_dtypes' np.sum gives 256), in f32 2^24 + 1 + 1 is 2^24 (a float32 accumulator).
    let mut ones = vec![F(256.0)];
    ones.extend([F(1.0); 7]);
    let got = p.t::<B>(BF16, &[8], &ones)?.sum(None, false);
    p.expect(
        "sum of bf16 accumulates in f64",
        got,
        BF16,
        &[],
        &[F(264.0)],
    );
    let got = p.t::<B>(BF16, &[2, 4], &ones)?.mean(None, false);
    p.expect(
        "mean of bf16 accumulates in f64",
        got,
        BF16,
        &[],
        &[F(33.0)],
    );
    let mut halves = vec![F(2048.0)];
    halves.extend([F(1.0); 8]);
    let got = p.t::<B>(F16, &[9], &halves)?.sum(None, false);
    p.expect("sum of f16 accumulates in f64", got, F16, &[], &[F(2056.0)]);
    let got = p
        .t::<B>(F32, &[1, 3], &[F(16_777_216.0), F(1.0), F(1.0)])?
        .sum(Some(1), false);
    p.expect(
        "sum of f32 accumulates in f64",
        got,
        F32,
        &[1],
        &[F(16_777_218.0)],
    );
    let got = p.t::<B>(Bool, &[3], &[I(1), I(1), I(0)])?.sum(None, false);
    p.expect("sum of bool counts in i64", got, I64, &[], &[I(2)]);
    let got = p
        .t::<B>(U8, &[2, 2], &[I(1), I(2), I(255), I(255)])?
        .mean(Some(1), false);
    p.expect("mean of u8 is float64", got, F64, &[2], &[F(1.5), F(255.0)]);
    Ok(())
}

fn nan<B: Backend>(p: &mut Pins) -> Result<()> {
    use DType::*;
    let nan = F(f64::NAN);
    for dtype in [F16, BF16, F32, F64] {
        let ctx = |what: &str| format!("{what} ({dtype})");
        let m = p.t::<B>(dtype, &[2, 2], &[F(1.0), nan, F(2.0), F(3.0)])?;
        p.expect(
            &ctx("max with a NaN is NaN"),
            m.max(None, false),
            dtype,
            &[],
            &[nan],
        );
        p.expect(
            &ctx("min with a NaN is NaN"),
            m.min(None, true),
            dtype,
            &[1, 1],
            &[nan],
        );
        let got = m.max(Some(0), false);
        p.expect(
            &ctx("max(axis=0) is NaN only in its lane"),
            got,
            dtype,
            &[2],
            &[F(2.0), nan],
        );
        let got = m.min(Some(-1), false);
        p.expect(
            &ctx("min(axis=-1) is NaN only in its lane"),
            got,
            dtype,
            &[2],
            &[nan, F(2.0)],
        );
        let got = m.t().max(Some(1), false);
        p.expect(
            &ctx("max of .T along axis 1"),
            got,
            dtype,
            &[2],
            &[F(2.0), nan],
        );
        p.expect(
            &ctx("sum with a NaN is NaN"),
            m.sum(None, false),
            dtype,
            &[],
            &[nan],
        );
        let pattern = [I(1), I(0), I(1), I(1)];
        p.expect(
            &ctx("NaN == NaN is false"),
            m.eq(&m),
            Bool,
            &[2, 2],
            &pattern,
        );
        p.expect(
            &ctx("NaN > 0 is false"),
            m.gt_scalar(0i64),
            Bool,
            &[2, 2],
            &pattern,
        );
        let got = Tensor::<B>::zeros(&[0, 2], dtype, p.device)?.sum(None, false);
        p.expect(&ctx("sum of nothing is +0.0"), got, dtype, &[], &[F(0.0)]);
        let z = p.t::<B>(dtype, &[3], &[F(0.0), F(1.0), F(-1.0)])?;
        let got = z.div(&Tensor::zeros(&[3], dtype, p.device)?);
        let want = [nan, F(f64::INFINITY), F(f64::NEG_INFINITY)];
        p.expect(&ctx("x / 0"), got, dtype, &[3], &want);
    }
    // True division of integers is float64.
    let n = p.t::<B>(I32, &[4], &[I(1), I(2), I(-3), I(1)])?;
    let d = p.t::<B>(I32, &[4], &[I(2), I(4), I(2), I(0)])?;
    let want = [F(0.5), F(0.5), F(-1.5), F(f64::INFINITY)];
    p.expect("i32 / i32 is float64", n.div(&d), F64, &[4], &want);
    let got = p.t::<B>(U8, &[2], &[I(3), I(1)])?.div_scalar(2i64);
    p.expect("u8 / 2 is float64", got, F64, &[2], &[F(1.5), F(0.5)]);
    Ok(())
}

fn dtypes<B: Backend>(p: &mut Pins) -> Result<()> {
    use DType::*;
    let promotions = [
        (U8, I8, I16),
        (U16, I16, I32),
        (U64, I64, F64),
        (I16, F16, F32),
        (F16, BF16, F32),
        (U8, BF16, BF16),
        (Bool, I8, I8),
        (I64, F32, F64),
    ];
    for (x, y, want) in promotions {
        let got = p
            .t::<B>(x, &[1], &[I(1)])?
            .add(&p.t::<B>(y, &[1], &[I(1)])?);
        let two = if want.is_float() { F(2.0) } else { I(2) };
        p.expect(&format!("{x} + {y} is {want}"), got, want, &[1], &[two]);
    }
    for (x, want) in [
        (Bool, F16),
        (U8, F16),
        (I8, F16),
        (I16, F32),
        (U32, F64),
        (I64, F64),
    ] {
        let got = p.t::<B>(x, &[1], &[I(1)])?.sqrt();
        p.expect(&format!("sqrt({x}) is {want}"), got, want, &[1], &[F(1.0)]);
    }
    let weak = [
        (U8, Scalar::Int(3), U8, I(4)),
        (Bool, Scalar::Int(1), I64, I(2)),
        (I32, Scalar::Float(0.5), F64, F(1.5)),
        (F16, Scalar::Float(1.0), F16, F(2.0)),
        (BF16, Scalar::Int(2), BF16, F(3.0)),
        (I8, Scalar::Bool(true), I8, I(2)),
    ];
    for (x, s, want, v) in weak {
        let got = p.t::<B>(x, &[1], &[I(1)])?.add_scalar(s);
        p.expect(&format!("{x} + {s:?} is {want}"), got, want, &[1], &[v]);
    }
    Ok(())
}
