//! `cast` between every pair of dtypes, on every layout, plus NumPy's `astype` values pinned.

use tensorbridge_core::{Backend, DType, Device, Tensor};

use crate::checker::{Checker, Tol};
use crate::fixtures::{fixture, Dist, CASES};
use crate::reference::{self, host_of, Value};
use crate::rng::Lcg;

/// `astype` results NumPy gives (x86-64), independent of the core's conversion code. Where NumPy
/// leaves float → int out of range undefined, the core saturates; none of these hit that.
fn pinned() -> Vec<(DType, Value, DType, Value)> {
    use DType::*;
    use Value::{Float as F, Int as I};
    vec![
        (F64, F(-1.7), I32, I(-1)),
        (F64, F(3.7), I32, I(3)),
        (F32, F(255.9), U8, I(255)),
        (I32, I(300), U8, I(44)),
        (I32, I(-1), U8, I(255)),
        (U16, I(65535), I16, I(-1)),
        (I64, I(-1), U64, I(u64::MAX as i128)),
        (U64, I(u64::MAX as i128), I64, I(-1)),
        (F32, F(0.5), Bool, I(1)),
        (F32, F(f64::NAN), Bool, I(1)),
        (F64, F(-0.0), Bool, I(0)),
        (I8, I(-3), Bool, I(1)),
        (Bool, I(1), F32, F(1.0)),
        (Bool, I(1), BF16, F(1.0)),
        (F64, F(65520.0), F16, F(f64::INFINITY)),
        (F64, F(2049.0), F16, F(2048.0)),
        (F32, F(1.00390625), BF16, F(1.0)),
        (F16, F(65504.0), BF16, F(65536.0)),
        (BF16, F(3.0e38), F16, F(f64::INFINITY)),
        (I64, I(16_777_217), F32, F(16_777_216.0)),
        (U8, I(200), I8, I(-56)),
    ]
}

/// Every dtype pair, on every layout, gives the reference `astype` values exactly (NaN, ±inf and
/// -0.0 included).
pub fn check_cast<B: Backend>(device: &Device) {
    let mut c = Checker::new("cast");
    let mut rng = Lcg::new(0xCA57);
    for from in DType::ALL {
        for case in &CASES {
            let (t, h) = match fixture::<B>(case, from, Dist::Wide, &mut rng, device) {
                Ok(f) => f,
                Err(e) => {
                    c.unexpected(&format!("{} {from}", case.name), e);
                    continue;
                }
            };
            for to in DType::ALL {
                c.tensor(
                    &format!("cast {from} -> {to} {}", case.name),
                    t.cast(to),
                    &reference::cast(&h, to),
                    &Tol::Exact,
                );
            }
        }
    }
    for (from, v, to, want) in pinned() {
        let ctx = format!("cast {v:?} {from} -> {to}");
        let input = host_of(from, &[], vec![v]);
        let got = Tensor::<B>::from_host(input, device).and_then(|t| t.cast(to));
        c.tensor(&ctx, got, &host_of(to, &[], vec![want]), &Tol::Exact);
    }
    c.finish();
}
