//! `arange`, computed as NumPy computes it, bit for bit (`PyArray_ArangeObj` and the dtypes'
//! `fill` functions in NumPy's `arraytypes.c.src`; `NPyCustomFloat_Fill` in ml_dtypes for
//! bfloat16):
//!
//! 1. the length is `ceil((stop - start) / step)` evaluated with Python's arithmetic on the
//!    arguments (ints exactly, an int true division correctly rounded, floats in f64);
//! 2. `out[0]` is `start` and `out[1]` is `start + step` (again Python arithmetic), each converted
//!    into the dtype (an int that does not fit an integer dtype is an error, as in NumPy 2);
//! 3. `delta = out[1] - out[0]` and `out[i] = out[0] + i * delta` for `i >= 2`, computed in the
//!    dtype: f64 in f64, f32 in f32 (`i` converted to f32), f16 and bf16 in f32 and rounded,
//!    integers with wrapping arithmetic. bool has no fill: at most two elements.
//!
//! So `arange(1, 2, 0.1)` is `1 + i * 0.10000000000000009` in f64, not `1 + i * 0.1`. The values
//! are made on the host, once, by this code, for every backend: they cannot differ by backend.

use ndarray::{ArrayD, IxDyn};

use crate::dtype::{DType, Element, Scalar};
use crate::error::{Error, Result};
use crate::host::HostArray;

/// What an `arange` call makes: its dtype, length and first two values (as Python computes them).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Arange {
    pub dtype: DType,
    pub len: usize,
    start: Scalar,
    next: Scalar,
}

/// `a - b` or `a + b` as Python evaluates it: exactly for ints (bools are ints), in f64 when a
/// float is involved.
fn python_arith(a: Scalar, b: Scalar, subtract: bool) -> Scalar {
    match (as_int(a), as_int(b)) {
        (Some(x), Some(y)) => Scalar::Int(if subtract { x - y } else { x + y }),
        _ => {
            let (x, y) = (a.to_f64(), b.to_f64());
            Scalar::Float(if subtract { x - y } else { x + y })
        }
    }
}

fn as_int(s: Scalar) -> Option<i128> {
    match s {
        Scalar::Bool(b) => Some(b as i128),
        Scalar::Int(i) => Some(i),
        Scalar::Float(_) => None,
    }
}

/// `n / d` for integers, correctly rounded to f64 as Python's int true division is.
pub(crate) fn int_true_div(n: i128, d: i128) -> f64 {
    let negative = (n < 0) != (d < 0);
    let (n, d) = (n.unsigned_abs(), d.unsigned_abs());
    if n == 0 {
        return if negative { -0.0 } else { 0.0 };
    }
    // Scale the numerator so the integer quotient has at least 55 significant bits: it then holds
    // the 53 bits of the result, a rounding bit and (with the remainder) a sticky bit.
    let bits = |x: u128| 128 - x.leading_zeros() as i32;
    let shift = (55 + bits(d) - bits(n)).max(0);
    let value = if shift as u32 + bits(n) as u32 <= 127 {
        let scaled = n << shift;
        let (q, r) = (scaled / d, scaled % d);
        // Rounding `q` with the remainder folded in as a sticky bit below it is rounding n/d:
        // `q` has at least 55 bits, so that bit is under the rounding position.
        let odd = (q << 1) | (r != 0) as u128;
        (odd as f64) * 2f64.powi(-(shift + 1))
    } else {
        // Beyond every length an array can have; any rounding gives the same error later.
        n as f64 / d as f64
    };
    if negative {
        -value
    } else {
        value
    }
}

impl Arange {
    /// Resolves the dtype (NumPy: at least int64, promoted with each argument's own dtype) and
    /// the length, or fails as NumPy does: a zero step, a non-finite bound or step, more than
    /// `isize::MAX` elements, bool with more than two.
    pub(crate) fn new(
        start: Scalar,
        stop: Scalar,
        step: Scalar,
        dtype: Option<DType>,
    ) -> Result<Self> {
        let dtype = dtype.unwrap_or_else(|| {
            [start, stop, step]
                .iter()
                .fold(DType::I64, |acc, s| DType::promote(acc, s.default_dtype()))
        });
        let bad = |why: &str| {
            Error::InvalidArgument(format!(
                "arange: {why} (start {start:?}, stop {stop:?}, step {step:?})"
            ))
        };
        if step.to_f64() == 0.0 {
            return Err(bad("step must not be zero"));
        }
        let span = python_arith(stop, start, true);
        let quotient = match (span, as_int(step)) {
            (Scalar::Int(n), Some(d)) => int_true_div(n, d),
            _ => span.to_f64() / step.to_f64(),
        };
        if !quotient.is_finite() {
            return Err(bad("start, stop and step must be finite"));
        }
        let len = quotient.ceil();
        if len >= isize::MAX as f64 {
            return Err(Error::ShapeTooLarge {
                op: "arange",
                shape: vec![len as usize],
                dtype: Some(dtype),
            });
        }
        let len = len.max(0.0) as usize;
        if dtype == DType::Bool && len > 2 {
            return Err(Error::Unsupported(format!(
                "arange of dtype bool is only supported for at most 2 elements (as in NumPy); \
                 this one has {len}"
            )));
        }
        Ok(Arange {
            dtype,
            len,
            start,
            next: python_arith(start, step, false),
        })
    }

    /// The values, on the host.
    pub(crate) fn fill(&self) -> Result<HostArray> {
        crate::with_dtype!(self.dtype, T => self.fill_typed::<T>().map(HostArray::from))
    }

    fn fill_typed<T: Element>(&self) -> Result<ArrayD<T>> {
        let n = self.len;
        let mut v: Vec<T> = crate::memory_guard::try_alloc::<T>("arange", &[n])?;
        if n > 0 {
            let first: T = self.start.to_element_checked()?;
            v.push(first);
            if n > 1 {
                let second: T = self.next.to_element_checked()?;
                v.push(second);
                extend_fill(&mut v, first, second, n);
            }
        }
        ArrayD::from_shape_vec(IxDyn(&[n]), v)
            .map_err(|e| Error::InvalidArgument(format!("arange: {e}")))
    }
}

/// NumPy's `fill`: `out[i] = out[0] + i * (out[1] - out[0])` for `i` in `2..n`, in the dtype's own
/// arithmetic (f16/bf16 in f32).
fn extend_fill<T: Element>(v: &mut Vec<T>, first: T, second: T, n: usize) {
    match T::DTYPE {
        DType::F64 => {
            let (s, d) = (first.to_f64(), second.to_f64() - first.to_f64());
            v.extend((2..n).map(|i| T::from_f64(s + i as f64 * d)));
        }
        DType::F32 | DType::F16 | DType::BF16 => {
            let (s, d) = (first.to_f32(), second.to_f32() - first.to_f32());
            v.extend((2..n).map(|i| T::from_f32(s + i as f32 * d)));
        }
        _ => {
            // Integers: the C loop's arithmetic modulo 2^bits, which wrapping i128 preserves.
            let s = first.to_i128();
            let d = second.to_i128().wrapping_sub(s);
            v.extend((2..n).map(|i| T::from_i128(s.wrapping_add((i as i128).wrapping_mul(d)))));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_true_division_is_correctly_rounded_like_python() {
        // Python: (3 * 2**52 + 1) / 2**52 == 3.0 (the exact 3 + 2**-52 is a tie, to even).
        assert_eq!(int_true_div(3 * (1 << 52) + 1, 1 << 52), 3.0);
        assert_eq!(int_true_div(10, 3), 10.0 / 3.0);
        assert_eq!(int_true_div(-7, 2), -3.5);
        assert_eq!(int_true_div(7, -2), -3.5);
        // Python: (2**64 - 1) / 3 == 6.148914691236517e18
        assert_eq!(int_true_div((1 << 64) - 1, 3), 6.148914691236517e18);
        // Python: (2**53 + 1) / 1 == 9007199254740992.0 (tie to even)
        assert_eq!(int_true_div((1 << 53) + 1, 1), 9007199254740992.0);
        assert_eq!(int_true_div((1 << 53) + 3, 1), 9007199254740996.0);
        assert_eq!(int_true_div(1, 1 << 70), 2f64.powi(-70));
    }

    fn values<T: Element>(start: Scalar, stop: Scalar, step: Scalar, d: DType) -> Vec<T> {
        let a = Arange::new(start, stop, step, Some(d)).unwrap();
        a.fill()
            .unwrap()
            .into_typed::<T>()
            .unwrap()
            .iter()
            .copied()
            .collect()
    }

    #[test]
    fn matches_numpy_arange_1_2_point_1_bit_for_bit() {
        // [x.hex() for x in np.arange(1, 2, 0.1)] on NumPy 2.4.
        let want = [
            0x3ff0000000000000u64,
            0x3ff199999999999a,
            0x3ff3333333333334,
            0x3ff4ccccccccccce,
            0x3ff6666666666668,
            0x3ff8000000000002,
            0x3ff999999999999c,
            0x3ffb333333333336,
            0x3ffcccccccccccd0,
            0x3ffe66666666666a,
        ];
        let got: Vec<u64> = values::<f64>(
            Scalar::Int(1),
            Scalar::Int(2),
            Scalar::Float(0.1),
            DType::F64,
        )
        .iter()
        .map(|x| x.to_bits())
        .collect();
        assert_eq!(got, want);
        // np.arange(1, 2, 0.1, dtype=np.float32).view(np.uint32)
        let want32 = [
            1065353216u32,
            1066192077,
            1067030938,
            1067869799,
            1068708660,
            1069547521,
            1070386382,
            1071225243,
            1072064104,
            1072902965,
        ];
        let got: Vec<u32> = values::<f32>(
            Scalar::Int(1),
            Scalar::Int(2),
            Scalar::Float(0.1),
            DType::F32,
        )
        .iter()
        .map(|x| x.to_bits())
        .collect();
        assert_eq!(got, want32);
    }

    #[test]
    fn integer_fill_wraps_and_out_of_range_values_fail() {
        // np.arange(0, 300, 100, dtype=np.int8) == [0, 100, -56]
        let got = values::<i8>(
            Scalar::Int(0),
            Scalar::Int(300),
            Scalar::Int(100),
            DType::I8,
        );
        assert_eq!(got, vec![0, 100, -56]);
        // np.arange(250, 270, 10, dtype=np.uint8): OverflowError for 260.
        let a = Arange::new(
            Scalar::Int(250),
            Scalar::Int(270),
            Scalar::Int(10),
            Some(DType::U8),
        )
        .unwrap();
        assert!(matches!(
            a.fill(),
            Err(Error::IntegerOutOfBounds { value: 260, .. })
        ));
        // One element: `start + step` is never converted.
        let got = values::<u8>(
            Scalar::Int(255),
            Scalar::Int(256),
            Scalar::Int(10),
            DType::U8,
        );
        assert_eq!(got, vec![255]);
        let big = (1i128 << 63) - 3;
        let got = values::<u64>(
            Scalar::Int(big),
            Scalar::Int(big + 5),
            Scalar::Int(1),
            DType::U64,
        );
        assert_eq!(got, (0..5).map(|i| (big + i) as u64).collect::<Vec<_>>());
    }

    #[test]
    fn dtype_inference_and_errors_follow_numpy() {
        let d = |a, b, c| Arange::new(a, b, c, None).map(|a| a.dtype);
        assert_eq!(
            d(Scalar::Int(0), Scalar::Int(3), Scalar::Int(1)).unwrap(),
            DType::I64
        );
        assert_eq!(
            d(Scalar::Int(0), Scalar::Float(3.0), Scalar::Int(1)).unwrap(),
            DType::F64
        );
        // np.arange(2**63, 2**63 + 3) is float64 (int64 promoted with uint64).
        let big = Scalar::Int(1 << 63);
        assert_eq!(
            d(big, Scalar::Int((1 << 63) + 3), Scalar::Int(1)).unwrap(),
            DType::F64
        );
        assert_eq!(
            d(Scalar::Bool(false), Scalar::Bool(true), Scalar::Int(1)).unwrap(),
            DType::I64
        );
        assert!(d(Scalar::Int(0), Scalar::Int(3), Scalar::Int(0)).is_err());
        assert!(d(Scalar::Int(0), Scalar::Float(f64::INFINITY), Scalar::Int(1)).is_err());
        assert!(d(Scalar::Int(0), Scalar::Float(f64::NAN), Scalar::Int(1)).is_err());
        assert!(matches!(
            d(Scalar::Int(0), Scalar::Int(1 << 62), Scalar::Int(1)).map(|_| ()),
            Ok(())
        ));
        let e = Arange::new(
            Scalar::Int(0),
            Scalar::Int(3),
            Scalar::Int(1),
            Some(DType::Bool),
        );
        assert!(matches!(e, Err(Error::Unsupported(_))));
        let two = values::<bool>(Scalar::Int(0), Scalar::Int(2), Scalar::Int(1), DType::Bool);
        assert_eq!(two, vec![false, true]);
        // np.arange(0, 3*2**52 + 1, 2**52) has 3 elements (Python's rounded quotient).
        let n = Arange::new(
            Scalar::Int(0),
            Scalar::Int(3 * (1 << 52) + 1),
            Scalar::Int(1 << 52),
            None,
        );
        assert_eq!(n.unwrap().len, 3);
    }
}
