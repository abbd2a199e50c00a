//! Our dtypes on libtorch, and conversions between them with the core's exact semantics.
//!
//! tch's own `Element` mapping is not used anywhere: it maps `half::bf16` to `Kind::Half`
//! (tch #995), which silently reinterprets bf16 bits as f16. tch also has no `Kind` for
//! uint16/uint32/uint64, and libtorch implements almost no ops for them; we store those dtypes in
//! the signed kind of the same width (the bits are identical) and give every op unsigned
//! semantics here: arithmetic wraps identically, comparisons and max/min flip the sign bit,
//! widening zero-extends.
//!
//! Casts follow [`cast_element`](tensorbridge_core::cast_element) bit for bit, where libtorch's
//! `static_cast`s differ: float → int saturates (NaN → 0) instead of being undefined; integers
//! round once into f32/f64 (uint64, stored as int64, with the sign bit handled here), into f16
//! and bf16 through f32 as the core does; f64 → f16 rounds once (libtorch goes through f32 and
//! rounds twice — we round to f32 "to odd" first, which makes the second rounding exact);
//! f64 → bf16 rounds through f32 in libtorch and in the core alike (ml_dtypes' answer); NaNs get
//! NumPy's sign and payload bits (`numpy_nan_bits`).

use tch::{Kind, Tensor as TchTensor};
use tensorbridge_core::{DType, DTypeKind, Error, Result};

/// A libtorch error as ours.
pub(crate) fn tch_err(e: tch::TchError) -> Error {
    Error::Backend {
        backend: "torch",
        message: e.to_string(),
    }
}

/// Shorthand for fallible tch calls.
pub(crate) trait OrTch<T> {
    fn or_tch(self) -> Result<T>;
}

impl<T> OrTch<T> for std::result::Result<T, tch::TchError> {
    fn or_tch(self) -> Result<T> {
        self.map_err(tch_err)
    }
}

/// The libtorch kind a dtype is stored as.
pub fn storage_kind(dtype: DType) -> Kind {
    match dtype {
        DType::Bool => Kind::Bool,
        DType::U8 => Kind::Uint8,
        DType::I8 => Kind::Int8,
        DType::U16 | DType::I16 => Kind::Int16,
        DType::U32 | DType::I32 => Kind::Int,
        DType::U64 | DType::I64 => Kind::Int64,
        DType::F16 => Kind::Half,
        DType::BF16 => Kind::BFloat16,
        DType::F32 => Kind::Float,
        DType::F64 => Kind::Double,
    }
}

/// The dtype of a libtorch kind, for tensors coming from tch (`None` for complex, quantized and
/// float8 kinds).
pub fn dtype_of_kind(kind: Kind) -> Option<DType> {
    Some(match kind {
        Kind::Bool => DType::Bool,
        Kind::Uint8 => DType::U8,
        Kind::Int8 => DType::I8,
        Kind::Int16 => DType::I16,
        Kind::Int => DType::I32,
        Kind::Int64 => DType::I64,
        Kind::Half => DType::F16,
        Kind::BFloat16 => DType::BF16,
        Kind::Float => DType::F32,
        Kind::Double => DType::F64,
        _ => return None,
    })
}

/// Unsigned dtypes stored in a signed kind (their order differs from the storage's).
pub(crate) fn signed_storage(dtype: DType) -> bool {
    matches!(dtype, DType::U16 | DType::U32 | DType::U64)
}

/// The storage kind's minimum, whose XOR maps unsigned order onto signed order.
pub(crate) fn sign_bit(dtype: DType) -> i64 {
    match dtype {
        DType::U16 => i16::MIN as i64,
        DType::U32 => i32::MIN as i64,
        _ => i64::MIN,
    }
}

/// `x` with unsigned order turned into the storage's signed order (an involution).
pub(crate) fn flip_sign(x: &TchTensor, dtype: DType) -> Result<TchTensor> {
    x.f_bitwise_xor(sign_bit(dtype)).or_tch()
}

fn bits(dtype: DType) -> u32 {
    (dtype.size_in_bytes() * 8) as u32
}

/// Converts `x` (stored as `from`'s kind) to `to`, returning `to`'s storage kind.
pub(crate) fn cast(x: &TchTensor, from: DType, to: DType) -> Result<TchTensor> {
    if from == to {
        return x.f_detach_copy().or_tch();
    }
    match (from.kind(), to.kind()) {
        // NumPy: nonzero (NaN included) is true.
        (_, DTypeKind::Bool) => x.f_ne(0i64).or_tch(),
        (DTypeKind::Bool, _) => x.f_to_kind(storage_kind(to)).or_tch(),
        (DTypeKind::Float, DTypeKind::Float) => float_to_float(x, from, to),
        (DTypeKind::Float, _) => float_to_int(x, from, to),
        (_, DTypeKind::Float) if to == DType::F64 => int_to_f64(x, from),
        // One rounding into f32; f16 from there is exact (an integer beyond f32's 24 bits is
        // beyond f16's range too), bf16 rounds again, as the core and ml_dtypes do.
        (_, DTypeKind::Float) => int_to_f32(x, from)?.f_to_kind(storage_kind(to)).or_tch(),
        _ => int_to_int(x, from, to),
    }
}

/// Zero-extends an unsigned dtype stored in a signed kind to int64.
fn zero_extend(x: &TchTensor, from: DType) -> Result<TchTensor> {
    let mask = (1i64 << bits(from)) - 1;
    x.f_to_kind(Kind::Int64)
        .and_then(|w| w.f_bitwise_and(mask))
        .or_tch()
}

fn int_to_int(x: &TchTensor, from: DType, to: DType) -> Result<TchTensor> {
    // Narrowing and same-width conversions keep the low bits (NumPy's wrap); widening from a
    // signed-stored unsigned dtype must zero-extend rather than sign-extend.
    if matches!(from, DType::U16 | DType::U32) && bits(to) > bits(from) {
        return zero_extend(x, from)?.f_to_kind(storage_kind(to)).or_tch();
    }
    x.f_to_kind(storage_kind(to)).or_tch()
}

/// An integer tensor as f64, rounded once to nearest as the core's `as f64` does.
fn int_to_f64(x: &TchTensor, from: DType) -> Result<TchTensor> {
    match from {
        DType::U16 | DType::U32 => zero_extend(x, from)?.f_to_kind(Kind::Double).or_tch(),
        DType::U64 => {
            // hi * 2^32 is exact and hi * 2^32 + lo rounds once.
            let lo = x.f_bitwise_and(0xFFFF_FFFFi64).or_tch()?;
            let hi = x
                .f_bitwise_right_shift_tensor_scalar(32i64)
                .and_then(|h| h.f_bitwise_and(0xFFFF_FFFFi64))
                .or_tch()?;
            let hi = hi
                .f_to_kind(Kind::Double)
                .and_then(|h| h.f_mul_scalar(4_294_967_296.0f64))
                .or_tch()?;
            lo.f_to_kind(Kind::Double)
                .and_then(|l| l.f_add(&hi))
                .or_tch()
        }
        _ => x.f_to_kind(Kind::Double).or_tch(),
    }
}

/// An integer tensor as f32, rounded once to nearest-even (`static_cast<float>` of the exact
/// value).
fn int_to_f32(x: &TchTensor, from: DType) -> Result<TchTensor> {
    match from {
        DType::U16 | DType::U32 => zero_extend(x, from)?.f_to_kind(Kind::Float).or_tch(),
        DType::U64 => {
            // Stored as int64: values from 2^63 up read as negative. Those are halved with the
            // dropped bit kept as a sticky bit (rounding v/2 to 24 bits is then exact), converted,
            // and doubled (exact).
            let high = x.f_lt(0i64).or_tch()?;
            let halved = x
                .f_bitwise_right_shift_tensor_scalar(1i64)
                .and_then(|h| h.f_bitwise_and(i64::MAX))
                .and_then(|h| h.f_bitwise_or_tensor(&x.f_bitwise_and(1i64)?))
                .and_then(|h| h.f_to_kind(Kind::Float))
                .and_then(|h| h.f_mul_scalar(2.0f64))
                .or_tch()?;
            let low = x.f_to_kind(Kind::Float).or_tch()?;
            halved.f_where_self(&high, &low).or_tch()
        }
        _ => x.f_to_kind(Kind::Float).or_tch(),
    }
}

fn float_to_float(x: &TchTensor, from: DType, to: DType) -> Result<TchTensor> {
    let out = if from == DType::F64 && to == DType::F16 {
        round_to_odd_f32(x)?.f_to_kind(storage_kind(to)).or_tch()?
    } else {
        x.f_to_kind(storage_kind(to)).or_tch()?
    };
    numpy_nan_bits(x, from, to, out)
}

/// `out`, the cast of `x` from `from` to `to`, with every NaN given the bits NumPy (ml_dtypes for
/// bfloat16) gives it, the core's rules (`tensorbridge_core::round`): into bfloat16 the quiet NaN
/// `0x7fc0` with its sign; bfloat16 → float16 `0x7e00` with its sign; float32/float64 → float16
/// the top payload bits, at least 1; float16 → float32/float64 the payload shifted in unchanged.
/// libtorch's own casts drop the sign, quiet signalling NaNs, or (vectorised, into bfloat16) give
/// all-ones bits. The other float pairs already agree (hardware conversions, as NumPy's). Costs
/// one sum over `x` (and, on a CUDA device, a synchronisation) when `x` has no NaN.
fn numpy_nan_bits(x: &TchTensor, from: DType, to: DType, out: TchTensor) -> Result<TchTensor> {
    let Some(rule) = NanRule::of(from, to) else {
        return Ok(out);
    };
    // One reduction to find out whether there may be a NaN at all (the common case has none;
    // the rewrite below costs several passes): a NaN makes the sum NaN. So can an overflow to
    // both infinities, which only costs the rewrite, still exact.
    let may_have_nan = x
        .f_sum(Kind::Float)
        .and_then(|s| s.f_isnan())
        .and_then(|n| n.f_is_nonzero())
        .or_tch()?;
    if !may_have_nan {
        return Ok(out);
    }
    let is_nan = x.f_isnan().or_tch()?;
    // The integer kind of `to`'s width (narrowing int64 to it keeps the low bits, C++
    // conversion: the bit pattern wanted), and `to`'s sign bit in it.
    let (int, sign_bit) = match to.size_in_bytes() {
        2 => (Kind::Int16, 0x8000),
        4 => (Kind::Int, 1 << 31),
        _ => (Kind::Int64, i64::MIN),
    };
    // The sign bit where `x`'s is set, or-ed with the rule's fixed bits, as int64.
    let signed_bits = x
        .f_signbit()
        .and_then(|s| s.f_to_kind(Kind::Int64))
        .and_then(|s| s.f_mul_scalar(sign_bit))
        .and_then(|s| s.f_bitwise_or(rule.bits()))
        .or_tch()?;
    let nan_bits = match rule {
        NanRule::Quiet { .. } => signed_bits,
        NanRule::Payload {
            from_int,
            mask,
            right,
            left,
            min,
            ..
        } => {
            let mut payload = x
                .f_view_dtype(from_int)
                .and_then(|b| b.f_to_kind(Kind::Int64))
                .and_then(|b| b.f_bitwise_and(mask))
                .or_tch()?;
            if right > 0 {
                payload = payload
                    .f_bitwise_right_shift_tensor_scalar(right)
                    .or_tch()?;
            }
            if left > 0 {
                payload = payload.f_bitwise_left_shift_tensor_scalar(left).or_tch()?;
            }
            if min > 0 {
                payload = payload.f_clamp_min(min).or_tch()?;
            }
            payload.f_bitwise_or_tensor(&signed_bits).or_tch()?
        }
    };
    let nans = nan_bits
        .f_to_kind(int)
        .and_then(|b| b.f_view_dtype(storage_kind(to)))
        .or_tch()?;
    nans.f_where_self(&is_nan, &out).or_tch()
}

/// The bits NumPy (ml_dtypes for bfloat16) gives a NaN cast between two float dtypes, where
/// libtorch's differ, besides the target's sign bit (set when the source NaN's sign is): one
/// quiet NaN, or the source's payload moved into place.
#[derive(Clone, Copy)]
enum NanRule {
    /// `bits | sign`: into bfloat16 (`0x7fc0`), bfloat16 → float16 (`0x7e00`).
    Quiet { bits: i64 },
    /// `max(((source bits as from_int) & mask) >> right << left, min) | bits | sign`:
    /// float32/float64 → float16 (the top ten payload bits, at least 1), float16 →
    /// float32/float64 (the payload shifted in unchanged).
    Payload {
        from_int: Kind,
        mask: i64,
        right: i64,
        left: i64,
        min: i64,
        bits: i64,
    },
}

impl NanRule {
    /// The rule of a cast from `from` to `to`, `None` where libtorch's cast already gives
    /// NumPy's bits (hardware conversions, as NumPy's) or the pair is not float to float.
    fn of(from: DType, to: DType) -> Option<NanRule> {
        use DType::*;
        let payload = |from_int, mask, right, left, min, bits| NanRule::Payload {
            from_int,
            mask,
            right,
            left,
            min,
            bits,
        };
        Some(match (from, to) {
            (_, BF16) => NanRule::Quiet { bits: 0x7fc0 },
            (BF16, F16) => NanRule::Quiet { bits: 0x7e00 },
            (F32, F16) => payload(Kind::Int, 0x007f_ffff, 13, 0, 1, 0x7c00),
            (F64, F16) => payload(Kind::Int64, 0x000f_ffff_ffff_ffff, 42, 0, 1, 0x7c00),
            (F16, F32) => payload(Kind::Int16, 0x03ff, 0, 13, 0, 0x7f80_0000),
            (F16, F64) => payload(Kind::Int16, 0x03ff, 0, 42, 0, 0x7ff0_0000_0000_0000),
            _ => return None,
        })
    }

    fn bits(self) -> i64 {
        match self {
            NanRule::Quiet { bits } | NanRule::Payload { bits, .. } => bits,
        }
    }
}

/// f64 → f32 rounding "to odd": truncate, and set the last bit when inexact. A second rounding
/// to a type with at most 22 bits of precision (f16) is then correctly rounded.
fn round_to_odd_f32(x: &TchTensor) -> Result<TchTensor> {
    let near = x.f_to_kind(Kind::Float).or_tch()?;
    let back = near.f_to_kind(Kind::Double).or_tch()?;
    let inexact = back
        .f_ne_tensor(x)
        .and_then(|m| m.f_logical_and(&near.f_isfinite()?))
        .or_tch()?;
    let even = near
        .f_view_dtype(Kind::Int)
        .and_then(|b| b.f_bitwise_and(1i64))
        .and_then(|b| b.f_eq(0i64))
        .or_tch()?;
    let adjust = inexact.f_logical_and(&even).or_tch()?;
    // The neighbour on x's side of the rounded value is odd.
    let toward = near
        .f_full_like(f64::INFINITY)
        .and_then(|t| t.f_masked_fill(&back.f_gt_tensor(x)?, f64::NEG_INFINITY))
        .or_tch()?;
    let stepped = near.f_nextafter(&toward).or_tch()?;
    stepped.f_where_self(&adjust, &near).or_tch()
}

/// Float → integer with the core's saturation: NaN → 0, out of range → the nearest bound.
fn float_to_int(x: &TchTensor, from: DType, to: DType) -> Result<TchTensor> {
    let _ = from;
    let wide = x
        .f_to_kind(Kind::Double)
        .and_then(|w| w.f_nan_to_num(0.0, f64::MAX, f64::MIN))
        .or_tch()?;
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    const TWO_64: f64 = 18_446_744_073_709_551_616.0;
    match to {
        DType::I64 => {
            // The largest f64 below 2^63; above it, saturate explicitly.
            let clamped = wide.f_clamp(-TWO_63, TWO_63 - 1024.0).or_tch()?;
            clamped
                .f_to_kind(Kind::Int64)
                .and_then(|t| t.f_masked_fill(&wide.f_ge(TWO_63)?, i64::MAX))
                .or_tch()
        }
        DType::U64 => {
            let clamped = wide.f_clamp(0.0, TWO_64 - 2048.0).or_tch()?;
            let high = clamped.f_ge(TWO_63).or_tch()?;
            // Values at or above 2^63: convert v - 2^63 (exact), then set the top bit.
            let shifted = clamped
                .f_sub_scalar(TWO_63)
                .and_then(|s| s.f_to_kind(Kind::Int64))
                .and_then(|s| s.f_bitwise_xor(i64::MIN))
                .or_tch()?;
            let low = clamped
                .f_masked_fill(&high, 0.0)
                .and_then(|l| l.f_to_kind(Kind::Int64))
                .or_tch()?;
            shifted
                .f_where_self(&high, &low)
                .and_then(|t| t.f_masked_fill(&wide.f_ge(TWO_64)?, -1i64))
                .or_tch()
        }
        _ => {
            let (lo, hi) = int_bounds(to);
            // In range for int64, so the conversion is exact; the narrowing wraps into `to`'s
            // storage bits (uint16/uint32 live in int16/int32).
            wide.f_clamp(lo, hi)
                .and_then(|c| c.f_to_kind(Kind::Int64))
                .and_then(|c| c.f_to_kind(storage_kind(to)))
                .or_tch()
        }
    }
}

/// An integer dtype's range as f64 (exact for up to 32 bits).
fn int_bounds(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::U8 => (0.0, u8::MAX as f64),
        DType::U16 => (0.0, u16::MAX as f64),
        DType::U32 => (0.0, u32::MAX as f64),
        DType::I8 => (i8::MIN as f64, i8::MAX as f64),
        DType::I16 => (i16::MIN as f64, i16::MAX as f64),
        DType::I32 => (i32::MIN as f64, i32::MAX as f64),
        _ => (i64::MIN as f64, i64::MAX as f64),
    }
}
