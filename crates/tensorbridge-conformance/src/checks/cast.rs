//! `cast` between every pair of dtypes, on every layout, plus NumPy's `astype` values pinned,
//! plus the rounding of every cast into a float dtype checked bit for bit: all 65,536 f16 and
//! bf16 bit patterns into every dtype, f64 and f32 values at and around every rounding midpoint
//! of the narrower floats, and integers at the edges of every integer dtype.

use ndarray::{ArrayD, IxDyn};
use tensorbridge_core::{Backend, DType, Device, HostArray, Tensor};

use crate::checker::{read_back, Checker, Tol};
use crate::fixtures::{fixture, Dist, CASES};
use crate::reference::{self, bits_value, host_of, int_range, Value};
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
        // float16 rounded once from the f64 value: NumPy's bits 0x3ca9 (not 0x3ca8, the result
        // of rounding through float32); bfloat16 through float32 as ml_dtypes: 0xbf1d (`half`'s
        // `from_f64` gives 0xbf1c), and 1 + 2^-8 + 2^-30 is 1.0 (once: 1.0078125).
        (F64, F(1.1645508316087867), F16, F(bits_value(0x3ca9, F16))),
        (
            F64,
            F(-0.6113285415306722),
            BF16,
            F(bits_value(0xbf1d, BF16)),
        ),
        (F64, F(1.0 + 2f64.powi(-8) + 2f64.powi(-30)), BF16, F(1.0)),
        (
            F64,
            F(-1.0 - 2f64.powi(-8) - 2f64.powi(-20)),
            BF16,
            F(-1.0078125),
        ),
        // Integers are exact into float64 up to 2^53 and rounded once beyond; into float32 once.
        (I64, I((1 << 53) + 1), F64, F(9007199254740992.0)),
        (U64, I(u64::MAX as i128), F64, F(18446744073709551616.0)),
        (
            I64,
            I((1 << 60) + (1 << 36) + 1),
            F32,
            F(((1u64 << 60) + (1 << 37)) as f64),
        ),
        (
            U64,
            I((1 << 63) + (1 << 39) + 1),
            F32,
            F(((1u64 << 63) + (1 << 40)) as f64),
        ),
        // Out-of-range floats saturate and NaN is 0 (NumPy: platform-defined).
        (F64, F(f64::NAN), I32, I(0)),
        (F32, F(-1e10), I32, I(i32::MIN as i128)),
        (F64, F(1e300), U64, I(u64::MAX as i128)),
        (F16, F(-1.0), U8, I(0)),
        (BF16, F(3.0e38), I64, I(i64::MAX as i128)),
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
    for (what, input) in rounding_inputs() {
        for to in DType::ALL {
            let ctx = format!("cast of {what} -> {to}");
            let got = Tensor::<B>::from_host(input.clone(), device).and_then(|t| t.cast(to));
            c.tensor(&ctx, got, &reference::cast(&input, to), &Tol::Exact);
        }
    }
    nan_bits::<B>(&mut c, device);
    c.finish();
}

/// NaN bit patterns of each float dtype and the bits NumPy 2.2 (`astype`; ml_dtypes 0.5 for
/// bfloat16) gives for them in every other float dtype on x86-64, written out literally: quiet
/// and signalling NaNs of both signs, all-ones payloads, payloads that vanish when narrowed.
#[allow(clippy::type_complexity)]
fn nan_cases() -> Vec<(DType, &'static [u64], Vec<(DType, &'static [u64])>)> {
    use DType::*;
    vec![
        (
            F32,
            &[
                0x7fc00000, 0xffc00000, 0x7f800001, 0xff800001, 0x7fffffff, 0x7fa12345, 0xffa12345,
            ],
            vec![
                (
                    F64,
                    &[
                        0x7ff8000000000000,
                        0xfff8000000000000,
                        0x7ff8000020000000,
                        0xfff8000020000000,
                        0x7fffffffe0000000,
                        0x7ffc2468a0000000,
                        0xfffc2468a0000000,
                    ],
                ),
                (
                    F16,
                    &[0x7e00, 0xfe00, 0x7c01, 0xfc01, 0x7fff, 0x7d09, 0xfd09],
                ),
                (
                    BF16,
                    &[0x7fc0, 0xffc0, 0x7fc0, 0xffc0, 0x7fc0, 0x7fc0, 0xffc0],
                ),
            ],
        ),
        (
            F64,
            &[
                0x7ff8000000000000,
                0xfff8000000000000,
                0x7ff0000000000001,
                0x7fffffffffffffff,
                0xfff4000000000001,
                0x7ff123456789abcd,
            ],
            vec![
                (
                    F32,
                    &[
                        0x7fc00000, 0xffc00000, 0x7fc00000, 0x7fffffff, 0xffe00000, 0x7fc91a2b,
                    ],
                ),
                (F16, &[0x7e00, 0xfe00, 0x7c01, 0x7fff, 0xfd00, 0x7c48]),
                (BF16, &[0x7fc0, 0xffc0, 0x7fc0, 0x7fc0, 0xffc0, 0x7fc0]),
            ],
        ),
        (
            F16,
            &[0x7e00, 0xfe00, 0x7c01, 0x7fff, 0xfd55, 0x7d00],
            vec![
                (
                    F32,
                    &[
                        0x7fc00000, 0xffc00000, 0x7f802000, 0x7fffe000, 0xffaaa000, 0x7fa00000,
                    ],
                ),
                (
                    F64,
                    &[
                        0x7ff8000000000000,
                        0xfff8000000000000,
                        0x7ff0040000000000,
                        0x7ffffc0000000000,
                        0xfff5540000000000,
                        0x7ff4000000000000,
                    ],
                ),
                (BF16, &[0x7fc0, 0xffc0, 0x7fc0, 0x7fc0, 0xffc0, 0x7fc0]),
            ],
        ),
        (
            BF16,
            &[0x7fc0, 0xffc0, 0x7f81, 0xff81, 0x7fff, 0x7fa5],
            vec![
                (
                    F32,
                    &[
                        0x7fc00000, 0xffc00000, 0x7f810000, 0xff810000, 0x7fff0000, 0x7fa50000,
                    ],
                ),
                (
                    F64,
                    &[
                        0x7ff8000000000000,
                        0xfff8000000000000,
                        0x7ff8200000000000,
                        0xfff8200000000000,
                        0x7fffe00000000000,
                        0x7ffca00000000000,
                    ],
                ),
                (F16, &[0x7e00, 0xfe00, 0x7e00, 0xfe00, 0x7e00, 0x7e00]),
            ],
        ),
    ]
}

/// A 1-D host array of `dtype` (a float dtype) with these bit patterns.
fn host_of_bits(dtype: DType, bits: &[u64]) -> HostArray {
    match dtype {
        DType::F16 => host_1d(
            bits.iter()
                .map(|&b| half::f16::from_bits(b as u16))
                .collect(),
        ),
        DType::BF16 => host_1d(
            bits.iter()
                .map(|&b| half::bf16::from_bits(b as u16))
                .collect(),
        ),
        DType::F32 => host_1d(bits.iter().map(|&b| f32::from_bits(b as u32)).collect()),
        _ => host_1d(bits.iter().map(|&b| f64::from_bits(b)).collect()),
    }
}

/// The bit patterns of a host array of a float dtype (`None` for other dtypes).
fn bits_of(h: &HostArray) -> Option<Vec<u64>> {
    Some(match h {
        HostArray::F16(a) => a.iter().map(|x| x.to_bits() as u64).collect(),
        HostArray::BF16(a) => a.iter().map(|x| x.to_bits() as u64).collect(),
        HostArray::F32(a) => a.iter().map(|x| x.to_bits() as u64).collect(),
        HostArray::F64(a) => a.iter().map(|x| x.to_bits()).collect(),
        _ => return None,
    })
}

/// Every cast of a NaN between float dtypes gives NumPy's bits, sign and payload included
/// (`np.signbit` of a cast NaN is NumPy's), through `cast` and through `to_host_as` (the cast
/// fused into the transfer); inputs of 1 and of 64 elements (vectorised kernels start there).
fn nan_bits<B: Backend>(c: &mut Checker, device: &Device) {
    for (from, input, targets) in nan_cases() {
        for repeat in [1, 64 / input.len() + 1] {
            let src: Vec<u64> = input.repeat(repeat);
            let t = match Tensor::<B>::from_host(host_of_bits(from, &src), device) {
                Ok(t) => t,
                Err(e) => {
                    c.unexpected(&format!("NaNs of {from}"), e);
                    continue;
                }
            };
            for &(to, want) in &targets {
                let want: Vec<u64> = want.repeat(repeat);
                let through_cast = t.cast(to).and_then(|x| read_back(&x));
                for (how, got) in [("cast", through_cast), ("to_host_as", t.to_host_as(to))] {
                    let ctx = format!("{how} of {} NaNs {from} -> {to}", src.len());
                    match got {
                        Err(e) => c.unexpected(&ctx, e),
                        Ok(h) => {
                            let got = bits_of(&h);
                            c.check(got.as_deref() == Some(&want[..]), &ctx, || {
                                format!(
                                    "bits {:x?}, NumPy gives {want:x?}",
                                    got.unwrap_or_default()
                                )
                            });
                        }
                    }
                }
            }
        }
    }
}

fn host_1d<T: tensorbridge_core::Element>(v: Vec<T>) -> HostArray {
    let n = v.len();
    HostArray::from(ArrayD::from_shape_vec(IxDyn(&[n]), v).expect("1-D"))
}

/// The inputs whose casts test rounding: every bit pattern of the 16-bit floats; f64 and f32
/// values exactly at, one ulp around, and far inside every midpoint between neighbouring f16,
/// bf16 (and, for f64, f32) values, plus random ones; integers at the edges of each integer
/// dtype and just past 2^24, 2^53 and 2^63.
fn rounding_inputs() -> Vec<(String, HostArray)> {
    let mut out = Vec::new();
    let all_bits = || (0..=u16::MAX).collect::<Vec<u16>>();
    out.push((
        "all 65536 f16 bit patterns".to_string(),
        host_1d(all_bits().into_iter().map(half::f16::from_bits).collect()),
    ));
    out.push((
        "all 65536 bf16 bit patterns".to_string(),
        host_1d(all_bits().into_iter().map(half::bf16::from_bits).collect()),
    ));
    let mut f64s: Vec<f64> = Vec::new();
    let mut f32s: Vec<f32> = Vec::new();
    let up = |x: f64| f64::from_bits(x.to_bits() + 1);
    let down = |x: f64| f64::from_bits(x.to_bits() - 1);
    for (dtype, step) in [(DType::F16, 3u16), (DType::BF16, 3)] {
        let max = if dtype == DType::F16 { 0x7bff } else { 0x7f7f };
        for b in (0..max).step_by(step as usize) {
            let (lo, hi) = (bits_value(b as u64, dtype), bits_value(b as u64 + 1, dtype));
            let mid = (lo + hi) / 2.0;
            for x in [mid, up(mid), down(mid), mid + (hi - lo) * 2f64.powi(-40)] {
                f64s.extend([x, -x]);
            }
            // Midpoints are exact in f32 too; one f32 ulp either side.
            let m32 = mid as f32;
            for x in [
                m32,
                f32::from_bits(m32.to_bits() + 1),
                f32::from_bits(m32.to_bits() - 1),
            ] {
                f32s.extend([x, -x]);
            }
        }
    }
    // f64 → f32 midpoints, and f32's edges.
    let mut rng = Lcg::new(0x0DD5);
    for _ in 0..4000 {
        let b = (rng.next_u64() as u32) & 0x7f7f_fffe;
        let (lo, hi) = (f32::from_bits(b) as f64, f32::from_bits(b + 1) as f64);
        let mid = (lo + hi) / 2.0;
        f64s.extend([mid, up(mid), down(mid)]);
    }
    for _ in 0..20000 {
        // Random magnitudes across every binade, random mantissas.
        let x = f64::from_bits(rng.next_u64() & !(1 << 63) & 0x47ff_ffff_ffff_ffff);
        let y = f64::from_bits(rng.next_u64());
        f64s.extend([x, -x, y]);
        f32s.push(f32::from_bits(rng.next_u64() as u32));
    }
    f64s.extend([
        f32::MAX as f64,
        up(f32::MAX as f64),
        f64::MAX,
        f64::MIN_POSITIVE,
        5e-324,
    ]);
    f64s.extend([
        65504.0,
        65519.99,
        65520.0,
        3.3895313892515355e38,
        3.4e38,
        f64::INFINITY,
    ]);
    f64s.extend([-f64::INFINITY, f64::NAN, -0.0, 0.5, 1.5, 2.5, -2.5]);
    out.push((format!("{} f64 rounding cases", f64s.len()), host_1d(f64s)));
    out.push((format!("{} f32 rounding cases", f32s.len()), host_1d(f32s)));
    for dtype in [
        DType::U8,
        DType::U16,
        DType::U32,
        DType::U64,
        DType::I8,
        DType::I16,
        DType::I32,
        DType::I64,
    ] {
        let (lo, hi) = int_range(dtype);
        let mut v: Vec<i128> = vec![lo, lo + 1, 0, 1, hi - 1, hi];
        for p in [24, 53, 63] {
            let base = 1i128 << p;
            for d in [-3, -1, 0, 1, 3, (1 << 20) + 1] {
                v.extend([base + d, -(base + d), (base + d) << 1]);
            }
        }
        for _ in 0..200 {
            v.push(rng.int_in(lo, hi));
        }
        v.retain(|x| (lo..=hi).contains(x));
        let values: Vec<Value> = v.into_iter().map(Value::Int).collect();
        let n = values.len();
        out.push((format!("{dtype} edges"), host_of(dtype, &[n], values)));
    }
    out
}
