//! Correctly rounded conversions into the 16-bit floats, the ones `half` does not give.
//!
//! `half` 2.7's `f16::from_f64` / `bf16::from_f64` are not correctly rounded: the software path
//! drops the low 32 bits of the f64 mantissa before deciding a tie (so `-0.6113285415306722`
//! becomes bf16 `0xbf1c`, not `0xbf1d`), and with F16C the f16 path goes through `f64 as f32`,
//! which rounds twice (`1.1645508316087867` becomes `0x3ca8`, not NumPy's `0x3ca9`). The functions
//! here give NumPy's answer. float64 → float16 rounds the exact f64 value once, to nearest with ties
//! to even, as IEEE 754 and NumPy's `npy_double_to_half` do: first to f32 *rounding to odd*
//! (truncate, and set the last bit when anything was cut off), then to f16 to nearest-even.
//! Rounding to odd keeps a sticky bit, so the second rounding is exact whenever the intermediate
//! has at least two more bits than the target (f32 has 24, f16 11; f16's subnormals are f32
//! normals). float64 → bfloat16 rounds as NumPy's bfloat16 (ml_dtypes) and PyTorch do: to f32 to
//! nearest-even, then to bfloat16 to nearest-even — twice, which differs from one rounding only
//! next to a bfloat16 midpoint.
//!
//! NaNs convert bit for bit as NumPy and ml_dtypes do on x86-64 (so `np.signbit` and the payload
//! of a converted NaN are NumPy's on every backend): into bfloat16 every NaN becomes the quiet
//! NaN `0x7fc0` with its sign (ml_dtypes); float32/float64 → float16 keeps the top payload bits
//! without setting the quiet bit, and a payload that would vanish becomes 1 (NumPy's
//! `npy_floatbits_to_halfbits`/`npy_doublebits_to_halfbits`); float16 → float32/float64 shifts
//! the payload in unchanged (`npy_halfbits_to_floatbits`/`..._to_doublebits`); bfloat16 →
//! float16 is the quiet NaN `0x7e00` with its sign (ml_dtypes). `half` instead quiets every NaN
//! and keeps payloads into bfloat16 (and with F16C the hardware does the same for float16).

use half::{bf16, f16};

/// `x` rounded to f32 "to odd": the f32 toward zero from `x`, with its last mantissa bit set when
/// that is not `x` itself. NaN stays NaN; beyond f32's range the result is `±f32::MAX`, odd (so a
/// narrower type then rounds it to infinity, as it must).
#[inline]
pub fn f64_to_f32_round_to_odd(x: f64) -> f32 {
    let near = x as f32;
    let back = near as f64;
    if back == x || x.is_nan() {
        return near;
    }
    // `near` is one of the two f32 around `x`; the one toward zero is `near` itself or, when
    // `near` is farther from zero than `x`, its neighbour one step toward zero (never the other
    // sign: |near| > |x| > 0 there).
    let bits = near.to_bits();
    let toward_zero = if back.abs() > x.abs() { bits - 1 } else { bits };
    f32::from_bits(toward_zero | 1)
}

/// `x` rounded once, to nearest with ties to even, to IEEE half precision (NumPy's
/// `float64 → float16`, NaN payloads included).
#[inline]
pub fn f64_to_f16(x: f64) -> f16 {
    if x.is_nan() {
        let b = x.to_bits();
        return f16_nan((b >> 63) != 0, ((b & 0x000f_ffff_ffff_ffff) >> 42) as u16);
    }
    f16::from_f32(f64_to_f32_round_to_odd(x))
}

/// `x` rounded to nearest-even in IEEE half precision (NumPy's `float32 → float16`, NaN payloads
/// included).
#[inline]
pub fn f32_to_f16(x: f32) -> f16 {
    if x.is_nan() {
        let b = x.to_bits();
        return f16_nan((b >> 31) != 0, ((b & 0x007f_ffff) >> 13) as u16);
    }
    f16::from_f32(x)
}

/// The float16 NaN NumPy makes from a wider NaN whose top ten payload bits are `payload`: those
/// bits as they are (no quiet bit added), or 1 when they are all zero (0 would be infinity).
#[inline]
fn f16_nan(negative: bool, payload: u16) -> f16 {
    f16::from_bits(((negative as u16) << 15) | 0x7c00 | payload.max(1))
}

/// `x` exactly in f32 (NumPy's `float16 → float32`: a NaN's payload shifted in unchanged; `half`
/// with F16C would set the quiet bit).
#[inline]
pub fn f16_to_f32(x: f16) -> f32 {
    if x.is_nan() {
        let b = x.to_bits() as u32;
        return f32::from_bits(((b & 0x8000) << 16) | 0x7f80_0000 | ((b & 0x03ff) << 13));
    }
    x.to_f32()
}

/// `x` exactly in f64 (NumPy's `float16 → float64`: a NaN's payload shifted in unchanged).
#[inline]
pub fn f16_to_f64(x: f16) -> f64 {
    if x.is_nan() {
        let b = x.to_bits() as u64;
        return f64::from_bits(((b & 0x8000) << 48) | 0x7ff0_0000_0000_0000 | ((b & 0x03ff) << 42));
    }
    x.to_f64()
}

/// `x` rounded to nearest-even in bfloat16; a NaN becomes the quiet NaN `0x7fc0` with its sign,
/// as in ml_dtypes (`half` keeps the top payload bits).
#[inline]
pub fn f32_to_bf16(x: f32) -> bf16 {
    if x.is_nan() {
        return bf16_nan(x.is_sign_negative());
    }
    bf16::from_f32(x)
}

/// ml_dtypes' bfloat16 NaN: quiet, no payload, the sign kept.
#[inline]
fn bf16_nan(negative: bool) -> bf16 {
    bf16::from_bits(((negative as u16) << 15) | 0x7fc0)
}

/// `x` rounded to bfloat16 as ml_dtypes' `np.asarray(x).astype(bfloat16)` (NumPy's bfloat16) and
/// PyTorch's `.to(torch.bfloat16)` do: to f32 to nearest with ties to even, then to bfloat16 the
/// same way. Rounding twice differs from rounding the exact value once only within 2⁻²⁴
/// (relative) of a bfloat16 midpoint: `1 + 2⁻⁸ + 2⁻³⁰` is 1.0 here (it becomes the midpoint
/// `1 + 2⁻⁸` in f32, a tie to even), 1.0078125 when rounded once. (`half`'s `bf16::from_f64` is
/// neither: it drops the low 32 bits of the mantissa before deciding a tie.) A NaN becomes
/// `0x7fc0` with its sign, as in ml_dtypes.
#[inline]
pub fn f64_to_bf16(x: f64) -> bf16 {
    f32_to_bf16(x as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pair of adjacent finite values of a 16-bit type, as f64 (exact).
    fn neighbours(
        to_f64: fn(u16) -> f64,
        max_finite: u16,
    ) -> impl Iterator<Item = (u16, f64, f64)> {
        (0..max_finite).map(move |b| (b, to_f64(b), to_f64(b + 1)))
    }

    /// The midpoint of every adjacent pair rounds to the even one, and anything on either side
    /// of it (one f64 ulp, and the widest deviation below f32 precision) to the nearer one. The
    /// expected values are the two neighbours themselves: no rounding code is involved.
    fn check_midpoints(
        name: &str,
        to_f64: fn(u16) -> f64,
        from_f64: fn(f64) -> u16,
        max_finite: u16,
    ) {
        for (lo_bits, lo, hi) in neighbours(to_f64, max_finite) {
            let mid = (lo + hi) / 2.0; // exact: one more bit than the 16-bit type has
            let even = if lo_bits % 2 == 0 {
                lo_bits
            } else {
                lo_bits + 1
            };
            for sign in [1.0, -1.0] {
                let s = |b: u16| if sign < 0.0 { b | 0x8000 } else { b };
                let cases = [
                    (mid, s(even)),
                    (next_up(mid), s(lo_bits + 1)),
                    (next_down(mid), s(lo_bits)),
                    (mid + (hi - lo) * 2f64.powi(-30), s(lo_bits + 1)),
                    (mid - (hi - lo) * 2f64.powi(-30), s(lo_bits)),
                    (lo, s(lo_bits)),
                ];
                for (x, want) in cases {
                    let got = from_f64(sign * x);
                    assert_eq!(
                        got,
                        want,
                        "{name}: {:e} gives {got:#06x}, expected {want:#06x}",
                        sign * x
                    );
                }
            }
        }
    }

    fn next_up(x: f64) -> f64 {
        f64::from_bits(x.to_bits() + 1)
    }
    fn next_down(x: f64) -> f64 {
        f64::from_bits(x.to_bits() - 1)
    }

    #[test]
    fn f16_rounds_every_midpoint_once_to_even() {
        check_midpoints(
            "f16",
            |b| f16::from_bits(b).to_f64(),
            |x| f64_to_f16(x).to_bits(),
            0x7bff,
        );
    }

    /// Next to every bfloat16 midpoint: within half an f32 ulp the value first becomes the midpoint
    /// in f32 and then the even neighbour (ml_dtypes' and PyTorch's answer); two f32 ulps away it
    /// rounds to the nearer neighbour. The expected values are the neighbours themselves.
    #[test]
    fn bf16_rounds_through_f32_like_ml_dtypes() {
        for (lo_bits, lo, hi) in neighbours(|b| bf16::from_bits(b).to_f64(), 0x7f7f) {
            let mid = (lo + hi) / 2.0;
            let even = if lo_bits % 2 == 0 {
                lo_bits
            } else {
                lo_bits + 1
            };
            // `hi - lo` is 2⁸ (normal) or 2¹⁶ (subnormal) f32 ulps: 2⁻³⁰ of it is far below half
            // an f32 ulp, 2⁻⁶ of it is 4 (or 1,024) ulps.
            let below_f32 = (hi - lo) * 2f64.powi(-30);
            let beyond_f32 = (hi - lo) * 2f64.powi(-6);
            for sign in [1.0, -1.0] {
                let s = |b: u16| if sign < 0.0 { b | 0x8000 } else { b };
                let cases = [
                    (mid, s(even)),
                    (next_up(mid), s(even)),
                    (next_down(mid), s(even)),
                    (mid + below_f32, s(even)),
                    (mid - below_f32, s(even)),
                    (mid + beyond_f32, s(lo_bits + 1)),
                    (mid - beyond_f32, s(lo_bits)),
                    (lo, s(lo_bits)),
                ];
                for (x, want) in cases {
                    let got = f64_to_bf16(sign * x).to_bits();
                    assert_eq!(
                        got,
                        want,
                        "bf16: {:e} gives {got:#06x}, expected {want:#06x}",
                        sign * x
                    );
                }
            }
        }
        // ml_dtypes: np.array([1 + 2**-8 + 2**-30]).astype(bfloat16).view(np.uint16) is 0x3f80.
        assert_eq!(
            f64_to_bf16(1.0 + 2f64.powi(-8) + 2f64.powi(-30)).to_bits(),
            0x3f80
        );
    }

    #[test]
    fn the_values_that_half_rounds_wrong() {
        assert_eq!(f64_to_bf16(-0.6113285415306722).to_bits(), 0xbf1d);
        assert_eq!(f64_to_f16(1.1645508316087867).to_bits(), 0x3ca9);
    }

    #[test]
    fn overflow_underflow_infinities_and_nan() {
        // f16: 65520 is the midpoint between 65504 and the next binade: rounds to infinity.
        assert_eq!(f64_to_f16(65520.0).to_bits(), 0x7c00);
        assert_eq!(f64_to_f16(next_down(65520.0)).to_bits(), 0x7bff);
        assert_eq!(f64_to_f16(-1e300).to_bits(), 0xfc00);
        assert_eq!(f64_to_bf16(1e300).to_bits(), 0x7f80);
        assert_eq!(f64_to_bf16(f64::MAX).to_bits(), 0x7f80);
        assert_eq!(f64_to_f16(f64::INFINITY).to_bits(), 0x7c00);
        assert_eq!(f64_to_bf16(f64::NEG_INFINITY).to_bits(), 0xff80);
        assert!(f64_to_f16(f64::NAN).is_nan());
        assert!(f64_to_bf16(-f64::NAN).is_nan());
        // Half the smallest subnormal is a tie with zero (even); anything above rounds up.
        let tiny16 = 2f64.powi(-25);
        assert_eq!(f64_to_f16(tiny16).to_bits(), 0);
        assert_eq!(f64_to_f16(next_up(tiny16)).to_bits(), 1);
        assert_eq!(f64_to_f16(-next_up(tiny16)).to_bits(), 0x8001);
        let tiny_bf = 2f64.powi(-134);
        assert_eq!(f64_to_bf16(tiny_bf).to_bits(), 0);
        // Through f32 (ml_dtypes): just above the tie it is the tie in f32, then even (zero).
        assert_eq!(f64_to_bf16(next_up(tiny_bf)).to_bits(), 0);
        assert_eq!(f64_to_bf16(tiny_bf + 2f64.powi(-149)).to_bits(), 1);
        assert_eq!(f64_to_bf16(1e-300).to_bits(), 0);
        assert_eq!(f64_to_bf16(-1e-300).to_bits(), 0x8000);
        assert_eq!(f64_to_bf16(-0.0).to_bits(), 0x8000);
    }

    #[test]
    fn round_to_odd_is_exact_or_odd() {
        assert_eq!(f64_to_f32_round_to_odd(1.5), 1.5);
        let x = 1.0 + 2f64.powi(-30);
        let r = f64_to_f32_round_to_odd(x);
        assert_eq!(r.to_bits(), 1.0f32.to_bits() | 1);
        let r = f64_to_f32_round_to_odd(-x);
        assert_eq!(r.to_bits(), (-1.0f32).to_bits() | 1);
        assert_eq!(f64_to_f32_round_to_odd(1e300), f32::MAX);
        assert_eq!(f64_to_f32_round_to_odd(-1e300), -f32::MAX);
        assert_eq!(f64_to_f32_round_to_odd(1e-300).to_bits(), 1);
    }
}
