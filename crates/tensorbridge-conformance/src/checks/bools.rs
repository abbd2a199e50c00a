//! bool data is 0/1 everywhere: every op that makes bools stores 0 and 1, and memory that
//! arrives from outside as bool with other bytes (NumPy and DLPack allow any non-zero byte as
//! True) is normalised on the way in, so every op then gives NumPy's answer.

use tensorbridge_core::{Backend, CmpOp, DType, Device, HostArray, Result, Scalar, Tensor};

use crate::checker::{read_back, Checker, Tol};
use crate::fixtures::{random_host, Dist};
use crate::reference::{host_of, values, Value};
use crate::rng::Lcg;

fn bools(v: &[bool]) -> HostArray {
    let values = v.iter().map(|&b| Value::Int(b as i128)).collect();
    host_of(DType::Bool, &[v.len()], values)
}

/// The tensor's bool storage holds only the bytes 0 and 1 (read as `u8` through a cast, and, for
/// host storage, the bytes themselves).
fn check_canonical<B: Backend>(c: &mut Checker, ctx: &str, t: Result<Tensor<B>>) {
    let t = match t {
        Ok(t) => t,
        Err(e) => return c.unexpected(ctx, e),
    };
    if t.dtype() != DType::Bool {
        return c.fail(ctx, format!("dtype {}, expected bool", t.dtype()));
    }
    if let Some(bytes) = t.storage().host_bytes() {
        let bad = bytes.iter().filter(|&&b| b > 1).count();
        c.check(bad == 0, ctx, || {
            format!("{bad} storage bytes are neither 0 nor 1")
        });
    }
    match t.cast(DType::U8).and_then(|u| read_back(&u)) {
        Ok(h) => {
            let bad = values(&h)
                .iter()
                .filter(|v| !matches!(v, Value::Int(0 | 1)))
                .count();
            c.check(bad == 0, ctx, || {
                format!("{bad} elements cast to uint8 are not 0 or 1")
            });
        }
        Err(e) => c.unexpected(ctx, e),
    }
}

/// Every op that produces bool stores 0/1: comparisons, casts, fills, logical `+`/`*`,
/// reductions and matmul of bools.
pub fn check_bool_results<B: Backend>(device: &Device) {
    let mut c = Checker::new("bool results");
    let mut rng = Lcg::new(0xB001);
    for dtype in DType::ALL {
        let h = random_host(dtype, &[3, 5], Dist::Wide, &mut rng);
        let t = match Tensor::<B>::from_host(h, device) {
            Ok(t) => t,
            Err(e) => {
                c.unexpected(&format!("{dtype} input"), e);
                continue;
            }
        };
        check_canonical(
            &mut c,
            &format!("cast {dtype} -> bool"),
            t.cast(DType::Bool),
        );
        check_canonical(
            &mut c,
            &format!("cast of .T {dtype} -> bool"),
            t.t().cast(DType::Bool),
        );
        for op in [CmpOp::Eq, CmpOp::Lt, CmpOp::Gt] {
            let got = match op {
                CmpOp::Eq => t.eq(&t.t().t()),
                CmpOp::Lt => t.lt_scalar(Scalar::Int(1)),
                CmpOp::Gt => t.gt(&t.slice(0, Some(1), Some(2), 1).unwrap_or(t.clone())),
            };
            check_canonical(&mut c, &format!("{dtype} {op:?}"), got);
        }
    }
    check_canonical(
        &mut c,
        "full(True)",
        Tensor::<B>::full(&[4], Scalar::Bool(true), None, device),
    );
    check_canonical(
        &mut c,
        "full(7, bool)",
        Tensor::<B>::full(&[4], Scalar::Int(7), Some(DType::Bool), device),
    );
    check_canonical(
        &mut c,
        "ones(bool)",
        Tensor::<B>::ones(&[4], DType::Bool, device),
    );
    let b = Tensor::<B>::from_host(bools(&[true, false, true, true]), device);
    if let Ok(b) = b {
        check_canonical(&mut c, "bool + bool", b.add(&b.t()));
        check_canonical(&mut c, "bool * bool", b.mul(&b));
        check_canonical(&mut c, "bool + True", b.add_scalar(Scalar::Bool(true)));
        check_canonical(&mut c, "max of bool", b.max(None, false));
        check_canonical(&mut c, "min of bool", b.min(Some(0), true));
        let m = b.reshape(&[2, 2]);
        check_canonical(&mut c, "bool @ bool", m.and_then(|m| m.matmul(&m)));
    }
    c.finish();
}

/// Bool memory taken in raw by a backend's zero-copy import (`import` turns bytes into a bool
/// tensor the way the backend's foreign-memory constructor does) is normalised: bytes other than
/// 0 and 1 read as True, and every op gives NumPy's answer for
/// `np.array(bytes, np.uint8).view(np.bool_)`.
pub fn check_raw_bool_ingress<B: Backend>(
    device: &Device,
    import: impl Fn(&[u8]) -> Result<Tensor<B>>,
) {
    let mut c = Checker::new("raw bool ingress");
    let _ = device;
    let mut rng = Lcg::new(0xB17E);
    // Past the scanner's 4096-byte chunks, with one stray byte at the very end.
    let mut long: Vec<u8> = (0..10_000).map(|_| (rng.next_u64() % 2) as u8).collect();
    *long.last_mut().unwrap_or(&mut 0) = 2;
    let random: Vec<u8> = (0..5000).map(|_| rng.next_u64() as u8).collect();
    let inputs: Vec<(&str, Vec<u8>)> = vec![
        ("[0, 1, 3, 200]", vec![0, 1, 3, 200]),
        (
            "[0, 1, 3, 200, 255, 2, 0, 128]",
            vec![0, 1, 3, 200, 255, 2, 0, 128],
        ),
        ("canonical [0, 1, 1, 0]", vec![0, 1, 1, 0]),
        ("10000 bytes, the last one 2", long),
        ("5000 random bytes", random),
        ("empty", vec![]),
    ];
    for (name, bytes) in inputs {
        let truth: Vec<bool> = bytes.iter().map(|&b| b != 0).collect();
        let t = match import(&bytes) {
            Ok(t) => t,
            Err(e) => {
                c.unexpected(&format!("import {name}"), e);
                continue;
            }
        };
        let n = truth.len();
        check_canonical(&mut c, &format!("{name} as stored"), Ok(t.clone()));
        c.tensor(
            &format!("{name} reads back"),
            Ok(t.clone()),
            &bools(&truth),
            &Tol::Exact,
        );
        let ones = |dtype: DType| {
            let v = truth.iter().map(|&b| Value::Int(b as i128)).collect();
            host_of(dtype, &[n], v)
        };
        for dtype in [DType::F32, DType::I64, DType::U8, DType::F16] {
            c.tensor(
                &format!("{name}.astype({dtype})"),
                t.cast(dtype),
                &ones(dtype),
                &Tol::Exact,
            );
            c.host(
                &format!("{name} to_host_as({dtype})"),
                t.to_host_as(dtype),
                &ones(dtype),
                &Tol::Exact,
            );
        }
        let count = truth.iter().filter(|&&b| b).count() as i128;
        c.tensor(
            &format!("{name}.sum()"),
            t.sum(None, false),
            &host_of(DType::I64, &[], vec![Value::Int(count)]),
            &Tol::Exact,
        );
        c.tensor(
            &format!("{name} == True"),
            t.eq_scalar(Scalar::Bool(true)),
            &bools(&truth),
            &Tol::Exact,
        );
        let negated: Vec<bool> = truth.iter().map(|&b| !b).collect();
        c.tensor(
            &format!("{name} == False"),
            t.eq_scalar(Scalar::Bool(false)),
            &bools(&negated),
            &Tol::Exact,
        );
        if let Ok(clean) = Tensor::<B>::from_host(bools(&truth), device) {
            c.tensor(
                &format!("{name} == its normalised copy"),
                t.eq(&clean),
                &bools(&vec![true; n]),
                &Tol::Exact,
            );
        }
        if n > 1 {
            let tail = &truth[1..];
            let min = tail.iter().all(|&b| b);
            let max = tail.iter().any(|&b| b);
            let rest = t.slice(0, Some(1), None, 1);
            c.tensor(
                &format!("{name}[1:].min()"),
                rest.clone().and_then(|r| r.min(None, false)),
                &host_of(DType::Bool, &[], vec![Value::Int(min as i128)]),
                &Tol::Exact,
            );
            c.tensor(
                &format!("{name}[1:].max()"),
                rest.and_then(|r| r.max(None, false)),
                &host_of(DType::Bool, &[], vec![Value::Int(max as i128)]),
                &Tol::Exact,
            );
            let anded: Vec<bool> = truth.iter().map(|&b| b && truth[0]).collect();
            c.tensor(
                &format!("{name} * {name}[0]"),
                t.select(0, 0).and_then(|first| t.mul(&first)),
                &bools(&anded),
                &Tol::Exact,
            );
        }
    }
    c.finish();
}
