//! Element types: the runtime [`DType`] tag, the compile-time [`Element`] trait that ties a Rust type
//! to its tag, NumPy's promotion rules, and the element-level arithmetic every backend shares.

use std::fmt;
use std::str::FromStr;

use half::{bf16, f16};
use ndarray::{ArrayD, ArrayViewMutD};

use crate::error::{Error, Result};
use crate::host::{HostArray, HostViewMut};
use crate::round;

/// The element type of a tensor. Names and promotion follow NumPy (bf16 follows `ml_dtypes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// `bool`, one byte, 0 or 1.
    Bool,
    /// `uint8`
    U8,
    /// `uint16`
    U16,
    /// `uint32`
    U32,
    /// `uint64`
    U64,
    /// `int8`
    I8,
    /// `int16`
    I16,
    /// `int32`
    I32,
    /// `int64`
    I64,
    /// IEEE half precision, `float16`.
    F16,
    /// Brain float, `bfloat16` (8-bit exponent, 7-bit mantissa).
    BF16,
    /// `float32`
    F32,
    /// `float64`
    F64,
}

/// What kind of number a dtype holds; NumPy promotes across kinds in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DTypeKind {
    /// `bool`
    Bool,
    /// unsigned integers
    Unsigned,
    /// signed integers
    Signed,
    /// floating point
    Float,
}

impl DType {
    /// Every dtype, in a fixed order (used by tests and error messages).
    pub const ALL: [DType; 13] = [
        DType::Bool,
        DType::U8,
        DType::U16,
        DType::U32,
        DType::U64,
        DType::I8,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::F16,
        DType::BF16,
        DType::F32,
        DType::F64,
    ];

    /// The NumPy name of the dtype (`"float32"`, `"bfloat16"`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::U8 => "uint8",
            DType::U16 => "uint16",
            DType::U32 => "uint32",
            DType::U64 => "uint64",
            DType::I8 => "int8",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::F32 => "float32",
            DType::F64 => "float64",
        }
    }

    /// Bytes per element.
    pub const fn size_in_bytes(self) -> usize {
        match self {
            DType::Bool | DType::U8 | DType::I8 => 1,
            DType::U16 | DType::I16 | DType::F16 | DType::BF16 => 2,
            DType::U32 | DType::I32 | DType::F32 => 4,
            DType::U64 | DType::I64 | DType::F64 => 8,
        }
    }

    /// The kind of number this dtype holds.
    pub const fn kind(self) -> DTypeKind {
        match self {
            DType::Bool => DTypeKind::Bool,
            DType::U8 | DType::U16 | DType::U32 | DType::U64 => DTypeKind::Unsigned,
            DType::I8 | DType::I16 | DType::I32 | DType::I64 => DTypeKind::Signed,
            DType::F16 | DType::BF16 | DType::F32 | DType::F64 => DTypeKind::Float,
        }
    }

    /// True for the four floating point dtypes.
    pub const fn is_float(self) -> bool {
        matches!(self.kind(), DTypeKind::Float)
    }

    /// True for signed and unsigned integers (not bool).
    pub const fn is_int(self) -> bool {
        matches!(self.kind(), DTypeKind::Signed | DTypeKind::Unsigned)
    }

    /// The dtype NumPy's `result_type(a, b)` gives for two arrays (`ml_dtypes` rules for bfloat16).
    pub fn promote(a: DType, b: DType) -> DType {
        use DType::*;
        if a == b {
            return a;
        }
        let (lo, hi) = if a.kind() <= b.kind() { (a, b) } else { (b, a) };
        match (lo.kind(), hi.kind()) {
            (DTypeKind::Bool, _) => hi,
            (DTypeKind::Unsigned, DTypeKind::Unsigned) | (DTypeKind::Signed, DTypeKind::Signed) => {
                if lo.size_in_bytes() >= hi.size_in_bytes() {
                    lo
                } else {
                    hi
                }
            }
            (DTypeKind::Unsigned, DTypeKind::Signed) => {
                // A signed type holds the unsigned one only if it is strictly wider.
                if hi.size_in_bytes() > lo.size_in_bytes() {
                    return hi;
                }
                match lo {
                    U8 => I16,
                    U16 => I32,
                    U32 => I64,
                    _ => F64,
                }
            }
            (DTypeKind::Unsigned | DTypeKind::Signed, DTypeKind::Float) => {
                // The smallest float that holds every value of the integer type, if wider than `hi`.
                let needed = match lo.size_in_bytes() {
                    1 => 2,
                    2 => 4,
                    _ => 8,
                };
                if hi.size_in_bytes() >= needed {
                    hi
                } else {
                    match needed {
                        4 => F32,
                        _ => F64,
                    }
                }
            }
            (DTypeKind::Float, DTypeKind::Float) => {
                match (lo.size_in_bytes(), hi.size_in_bytes()) {
                    // f16 with bf16: neither holds the other, f32 holds both.
                    (2, 2) => F32,
                    (x, y) if x > y => lo,
                    _ => hi,
                }
            }
            _ => unreachable!("kinds are ordered lo <= hi"),
        }
    }

    /// The float dtype NumPy computes `sqrt`/`exp`/`log`/true division of this dtype in.
    pub const fn float_result(self) -> DType {
        match self {
            DType::F16 | DType::BF16 | DType::F32 | DType::F64 => self,
            DType::Bool | DType::U8 | DType::I8 => DType::F16,
            DType::U16 | DType::I16 => DType::F32,
            _ => DType::F64,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DType {
    type Err = Error;

    /// Parses NumPy names and the common short aliases (`"f32"`, `"bf16"`, `"int"`, `"float"`).
    fn from_str(s: &str) -> Result<Self> {
        let d = match s.trim() {
            "bool" | "bool_" | "?" | "b1" => DType::Bool,
            "uint8" | "u8" | "u1" | "B" => DType::U8,
            "uint16" | "u16" | "u2" | "H" => DType::U16,
            "uint32" | "u32" | "u4" | "I" => DType::U32,
            "uint64" | "u64" | "u8b" | "L" => DType::U64,
            "int8" | "i8" | "i1" | "b" => DType::I8,
            "int16" | "i16" | "i2" | "h" => DType::I16,
            "int32" | "i32" | "i4" | "i" => DType::I32,
            "int64" | "i64" | "int" | "l" => DType::I64,
            "float16" | "f16" | "half" | "f2" | "e" => DType::F16,
            "bfloat16" | "bf16" => DType::BF16,
            "float32" | "f32" | "single" | "f4" | "f" => DType::F32,
            "float64" | "f64" | "float" | "double" | "f8" | "d" => DType::F64,
            other => {
                return Err(Error::UnknownDType {
                    name: other.to_string(),
                })
            }
        };
        Ok(d)
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A Rust type that is the element of one [`DType`]. Sealed: the set of dtypes is closed.
///
/// Integer arithmetic wraps (as NumPy's does); `f16`/`bf16` arithmetic rounds through `f32`.
pub trait Element:
    sealed::Sealed + Copy + Send + Sync + PartialOrd + PartialEq + Default + fmt::Debug + 'static
{
    /// The runtime tag of this type.
    const DTYPE: DType;
    /// Additive identity.
    const ZERO: Self;
    /// Multiplicative identity.
    const ONE: Self;

    /// Value as `f64`, rounded once to nearest-even (exact for every dtype but 64-bit integers
    /// beyond 2^53).
    fn to_f64(self) -> f64;
    /// Value as `f32`, rounded once to nearest-even (exact for f16, bf16, f32 and integers up to
    /// 2^24).
    fn to_f32(self) -> f32;
    /// Value as `i128`: exact for every integer and bool; floats truncate toward zero, saturating.
    fn to_i128(self) -> i128;
    /// Cast from `f64`: floats round once to nearest-even (bfloat16 through f32, as ml_dtypes
    /// and PyTorch do), integers truncate toward zero and saturate (NaN → 0), bool is `!= 0`
    /// (NaN is true).
    fn from_f64(v: f64) -> Self;
    /// Cast from `f32`, with the rules of [`Element::from_f64`].
    fn from_f32(v: f32) -> Self;
    /// Cast from an integer: integers wrap (keep the low bits), bool is `!= 0`, f16/f32/f64
    /// round the exact value once to nearest-even, bfloat16 rounds through f32 (as ml_dtypes and
    /// PyTorch convert integers to bfloat16).
    fn from_i128(v: i128) -> Self;

    /// NumPy `add` (bool: logical or).
    fn add(self, rhs: Self) -> Self;
    /// NumPy `subtract` (not defined for bool; the core rejects it before a backend sees it).
    fn sub(self, rhs: Self) -> Self;
    /// NumPy `multiply` (bool: logical and).
    fn mul(self, rhs: Self) -> Self;
    /// Division; only called for float dtypes (true division of integers promotes to float first).
    fn div(self, rhs: Self) -> Self;
    /// NumPy `negative` (wrapping for integers).
    fn neg(self) -> Self;
    /// NumPy `absolute` (wrapping for the minimum signed value, as NumPy).
    fn abs(self) -> Self;
    /// NumPy `maximum` semantics for reductions: NaN propagates.
    fn max_nan(self, rhs: Self) -> Self {
        if self.is_nan() || rhs.is_nan() {
            if self.is_nan() {
                self
            } else {
                rhs
            }
        } else if rhs > self {
            rhs
        } else {
            self
        }
    }
    /// NumPy `minimum` semantics for reductions: NaN propagates.
    fn min_nan(self, rhs: Self) -> Self {
        if self.is_nan() || rhs.is_nan() {
            if self.is_nan() {
                self
            } else {
                rhs
            }
        } else if rhs < self {
            rhs
        } else {
            self
        }
    }
    /// True only for a floating point NaN.
    fn is_nan(self) -> bool {
        false
    }

    /// Wraps a typed array in its [`HostArray`] variant.
    fn wrap_host(a: ArrayD<Self>) -> HostArray;
    /// Unwraps a [`HostArray`] of this dtype, handing it back otherwise.
    fn unwrap_host(h: HostArray) -> std::result::Result<ArrayD<Self>, HostArray>;
    /// Borrows the typed array inside a [`HostArray`] of this dtype.
    fn host_ref(h: &HostArray) -> Option<&ArrayD<Self>>;
    /// Wraps a typed mutable view in its [`HostViewMut`] variant (the dtype-erased caller's
    /// buffer of [`crate::AnyTensor::to_host_into`]).
    fn wrap_view_mut(v: ArrayViewMutD<'_, Self>) -> HostViewMut<'_>;
}

macro_rules! impl_host_variant {
    ($d:ident) => {
        fn wrap_host(a: ArrayD<Self>) -> HostArray {
            HostArray::$d(a)
        }
        fn unwrap_host(h: HostArray) -> std::result::Result<ArrayD<Self>, HostArray> {
            match h {
                HostArray::$d(a) => Ok(a),
                other => Err(other),
            }
        }
        fn host_ref(h: &HostArray) -> Option<&ArrayD<Self>> {
            match h {
                HostArray::$d(a) => Some(a),
                _ => None,
            }
        }
        fn wrap_view_mut(v: ArrayViewMutD<'_, Self>) -> HostViewMut<'_> {
            HostViewMut::$d(v)
        }
    };
}

/// Converts one element to another dtype: the one definition of a cast every backend follows.
///
/// - integer → integer (and bool → integer) keeps the low bits (wraps), as NumPy;
/// - anything → bool is `!= 0` (NaN is true), as NumPy;
/// - float → float rounds the exact value once, to nearest with ties to even (f64 → f16
///   included, as NumPy), except f64 → bf16, which rounds through f32 (twice) as ml_dtypes —
///   NumPy's bfloat16 — and PyTorch do;
/// - integer → float rounds the exact value once to nearest-even, except integer → bfloat16,
///   which rounds through float32 as ml_dtypes and PyTorch do;
/// - float → integer truncates toward zero and **saturates** at the dtype's bounds, NaN → 0: a
///   deliberate choice where NumPy's result is platform-defined (x86-64 NumPy gives the
///   "integer indefinite" value, e.g. `int32` −2³¹ for NaN);
/// - a NaN keeps NumPy's (ml_dtypes' for bfloat16) sign and payload bits ([`crate::round`]).
#[inline(always)]
pub fn cast_element<S: Element, D: Element>(v: S) -> D {
    if !S::DTYPE.is_float() {
        if D::DTYPE.is_float() {
            // Static per instantiation: native `as` conversions, which round once.
            return match D::DTYPE {
                DType::F64 => D::from_f64(v.to_f64()),
                DType::F32 | DType::F16 | DType::BF16 => D::from_f32(v.to_f32()),
                _ => D::from_i128(v.to_i128()),
            };
        }
        return D::from_i128(v.to_i128());
    }
    if S::DTYPE == DType::BF16 && D::DTYPE == DType::F16 && v.is_nan() {
        // ml_dtypes: a bfloat16 NaN becomes float16's quiet NaN with its sign, no payload
        // (through f32 NumPy's float16 rule would keep payload bits).
        let negative = v.to_f32().is_sign_negative();
        return D::from_f32(f32::from_bits(((negative as u32) << 31) | 0x7fc0_0000));
    }
    if S::DTYPE != DType::F64 && D::DTYPE != DType::F64 {
        // f16/bf16/f32 are exact in f32: one rounding from there.
        return D::from_f32(v.to_f32());
    }
    // Into f64 (exact) directly, so a float16 NaN keeps NumPy's bits (f32 → f64 would set the
    // quiet bit); out of f64, one rounding.
    D::from_f64(v.to_f64())
}

macro_rules! impl_int_element {
    ($($t:ty => $d:ident),* $(,)?) => {$(
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const DTYPE: DType = DType::$d;
            const ZERO: Self = 0;
            const ONE: Self = 1;
            #[inline(always)] fn to_f64(self) -> f64 { self as f64 }
            #[inline(always)] fn to_f32(self) -> f32 { self as f32 }
            #[inline(always)] fn to_i128(self) -> i128 { self as i128 }
            #[inline(always)] fn from_f64(v: f64) -> Self { v as $t }
            #[inline(always)] fn from_f32(v: f32) -> Self { v as $t }
            #[inline(always)] fn from_i128(v: i128) -> Self { v as $t }
            #[inline(always)] fn add(self, rhs: Self) -> Self { self.wrapping_add(rhs) }
            #[inline(always)] fn sub(self, rhs: Self) -> Self { self.wrapping_sub(rhs) }
            #[inline(always)] fn mul(self, rhs: Self) -> Self { self.wrapping_mul(rhs) }
            #[inline(always)] fn div(self, rhs: Self) -> Self { self.checked_div(rhs).unwrap_or(0) }
            #[inline(always)] fn neg(self) -> Self { self.wrapping_neg() }
            #[inline(always)] fn abs(self) -> Self { if self.to_i128() < 0 { self.wrapping_neg() } else { self } }
            impl_host_variant!($d);
        }
    )*};
}
impl_int_element!(u8 => U8, u16 => U16, u32 => U32, u64 => U64, i8 => I8, i16 => I16, i32 => I32, i64 => I64);

impl sealed::Sealed for bool {}
impl Element for bool {
    const DTYPE: DType = DType::Bool;
    const ZERO: Self = false;
    const ONE: Self = true;
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as u8 as f64
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self as u8 as f32
    }
    #[inline(always)]
    fn to_i128(self) -> i128 {
        self as i128
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v != 0.0
    }
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        v != 0.0
    }
    #[inline(always)]
    fn from_i128(v: i128) -> Self {
        v != 0
    }
    #[inline(always)]
    fn add(self, rhs: Self) -> Self {
        self | rhs
    }
    #[inline(always)]
    fn sub(self, rhs: Self) -> Self {
        self ^ rhs
    }
    #[inline(always)]
    fn mul(self, rhs: Self) -> Self {
        self & rhs
    }
    #[inline(always)]
    fn div(self, rhs: Self) -> Self {
        self & rhs
    }
    #[inline(always)]
    fn neg(self) -> Self {
        self
    }
    #[inline(always)]
    fn abs(self) -> Self {
        self
    }
    impl_host_variant!(Bool);
}

macro_rules! impl_float_element {
    ($($t:ty => $d:ident, $zero:expr, $one:expr, $to64:expr, $to32:expr, $from64:expr, $from32:expr,
       $fromint:expr);* $(;)?) => {$(
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const DTYPE: DType = DType::$d;
            const ZERO: Self = $zero;
            const ONE: Self = $one;
            #[inline(always)] fn to_f64(self) -> f64 { ($to64)(self) }
            #[inline(always)] fn to_f32(self) -> f32 { ($to32)(self) }
            #[inline(always)] fn to_i128(self) -> i128 { self.to_f64() as i128 }
            #[inline(always)] fn from_f64(v: f64) -> Self { ($from64)(v) }
            #[inline(always)] fn from_f32(v: f32) -> Self { ($from32)(v) }
            #[inline(always)] fn from_i128(v: i128) -> Self { ($fromint)(v) }
            #[inline(always)] fn add(self, rhs: Self) -> Self { self + rhs }
            #[inline(always)] fn sub(self, rhs: Self) -> Self { self - rhs }
            #[inline(always)] fn mul(self, rhs: Self) -> Self { self * rhs }
            #[inline(always)] fn div(self, rhs: Self) -> Self { self / rhs }
            #[inline(always)] fn neg(self) -> Self { -self }
            #[inline(always)] fn abs(self) -> Self { num_traits::Float::abs(self) }
            #[inline(always)] fn is_nan(self) -> bool { num_traits::Float::is_nan(self) }
            impl_host_variant!($d);
        }
        impl FloatElement for $t {
            #[inline(always)] fn exp(self) -> Self { num_traits::Float::exp(self) }
            #[inline(always)] fn ln(self) -> Self { num_traits::Float::ln(self) }
            #[inline(always)] fn sqrt(self) -> Self { num_traits::Float::sqrt(self) }
        }
    )*};
}
// `as` between Rust's floats and from integers rounds once to nearest-even; f16/bf16 from f64
// use `round` (half's own `from_f64` is neither NumPy's nor ml_dtypes' rounding), from f32
// `half` (correct) behind `round`'s NaN rules (NumPy's and ml_dtypes' NaN bits).
impl_float_element!(
    f32 => F32, 0.0, 1.0, |v: f32| v as f64, |v: f32| v, |v: f64| v as f32, |v: f32| v,
        |v: i128| v as f32;
    f64 => F64, 0.0, 1.0, |v: f64| v, |v: f64| v as f32, |v: f64| v, |v: f32| v as f64,
        |v: i128| v as f64;
    f16 => F16, f16::ZERO, f16::ONE, round::f16_to_f64, round::f16_to_f32, round::f64_to_f16,
        round::f32_to_f16,
        // Exact through f32 up to 2^24, and anything larger is beyond f16's range either way.
        |v: i128| f16::from_f32(v as f32);
    bf16 => BF16, bf16::ZERO, bf16::ONE, bf16::to_f64, bf16::to_f32, round::f64_to_bf16,
        round::f32_to_bf16, |v: i128| bf16::from_f32(v as f32);
);

/// The float elements: transcendental functions, computed in the type's own precision
/// (f16/bf16 round through f32, like NumPy's float16 loops).
pub trait FloatElement: Element {
    /// `e^x`
    fn exp(self) -> Self;
    /// natural logarithm
    fn ln(self) -> Self;
    /// square root
    fn sqrt(self) -> Self;
}

/// A Python-like scalar operand: NumPy 2 treats Python scalars as "weak", so they take the tensor's
/// dtype where they fit (NEP 50).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar {
    /// `True` / `False`
    Bool(bool),
    /// A Python `int` (the range of i64 and u64 together).
    Int(i128),
    /// A Python `float`.
    Float(f64),
}

impl Scalar {
    /// The dtype an operation between a tensor of `dtype` and this weak scalar computes in (NEP 50).
    ///
    /// A Python int that does not fit an integer dtype is [`Error::IntegerOutOfBounds`], as NumPy 2
    /// raises `OverflowError` (`uint8 + 300`); with a bool tensor the int must fit int64.
    pub fn weak_result(self, dtype: DType) -> Result<DType> {
        let out = match (self, dtype.kind()) {
            (Scalar::Bool(_), _) => dtype,
            (Scalar::Int(v), DTypeKind::Bool) => {
                Scalar::Int(v).check_fits(DType::I64)?;
                DType::I64
            }
            (Scalar::Int(v), DTypeKind::Unsigned | DTypeKind::Signed) => {
                Scalar::Int(v).check_fits(dtype)?;
                dtype
            }
            (Scalar::Int(_), DTypeKind::Float) => dtype,
            (Scalar::Float(_), DTypeKind::Float) => dtype,
            (Scalar::Float(_), _) => DType::F64,
        };
        Ok(out)
    }

    /// [`Error::IntegerOutOfBounds`] when this is an int outside the range of the integer dtype
    /// `dtype`; `Ok` for every other scalar and dtype (floats and bools convert, NumPy-style).
    pub fn check_fits(self, dtype: DType) -> Result<()> {
        match self {
            Scalar::Int(value) if dtype.is_int() && !int_fits(value, dtype) => {
                Err(Error::IntegerOutOfBounds { value, dtype })
            }
            _ => Ok(()),
        }
    }

    /// The value as `f64`: exact for bools, floats and ints up to 2^53, else rounded once.
    pub fn to_f64(self) -> f64 {
        match self {
            Scalar::Bool(b) => b as u8 as f64,
            Scalar::Int(i) => i as f64,
            Scalar::Float(f) => f,
        }
    }

    /// The value converted to `T` with [`cast_element`]'s rules, from the exact value: an int
    /// never passes through f64 (ints into an integer dtype keep their low bits; see
    /// [`Scalar::to_element_checked`] for NumPy 2's range check).
    pub fn to_element<T: Element>(self) -> T {
        match self {
            Scalar::Bool(b) => T::from_i128(b as i128),
            Scalar::Int(i) => T::from_i128(i),
            Scalar::Float(f) => T::from_f64(f),
        }
    }

    /// Like [`Scalar::to_element`], but an int outside an integer `T`'s range is
    /// [`Error::IntegerOutOfBounds`] (NumPy 2's `np.full(3, 300, dtype=np.uint8)`) instead of
    /// wrapping.
    pub fn to_element_checked<T: Element>(self) -> Result<T> {
        self.check_fits(T::DTYPE)?;
        Ok(self.to_element())
    }

    /// The dtype NumPy infers for this scalar on its own: `bool`; `int` → int64, or uint64 above
    /// int64's range (`np.array(2**63)`); `float` → float64.
    pub fn default_dtype(self) -> DType {
        match self {
            Scalar::Bool(_) => DType::Bool,
            Scalar::Int(i) if i > i64::MAX as i128 && i <= u64::MAX as i128 => DType::U64,
            Scalar::Int(_) => DType::I64,
            Scalar::Float(_) => DType::F64,
        }
    }
}

impl From<bool> for Scalar {
    fn from(v: bool) -> Self {
        Scalar::Bool(v)
    }
}
impl From<i64> for Scalar {
    fn from(v: i64) -> Self {
        Scalar::Int(v as i128)
    }
}
impl From<i32> for Scalar {
    fn from(v: i32) -> Self {
        Scalar::Int(v as i128)
    }
}
impl From<u64> for Scalar {
    fn from(v: u64) -> Self {
        Scalar::Int(v as i128)
    }
}
impl From<f64> for Scalar {
    fn from(v: f64) -> Self {
        Scalar::Float(v)
    }
}
impl From<f32> for Scalar {
    fn from(v: f32) -> Self {
        Scalar::Float(v as f64)
    }
}

/// True when `v` is a value of `dtype` (always, for float and bool dtypes).
pub(crate) fn int_fits(v: i128, dtype: DType) -> bool {
    let (lo, hi): (i128, i128) = match dtype {
        DType::U8 => (0, u8::MAX as i128),
        DType::U16 => (0, u16::MAX as i128),
        DType::U32 => (0, u32::MAX as i128),
        DType::U64 => (0, u64::MAX as i128),
        DType::I8 => (i8::MIN as i128, i8::MAX as i128),
        DType::I16 => (i16::MIN as i128, i16::MAX as i128),
        DType::I32 => (i32::MIN as i128, i32::MAX as i128),
        DType::I64 => (i64::MIN as i128, i64::MAX as i128),
        _ => return true,
    };
    (lo..=hi).contains(&v)
}

/// Calls `$body` with the type alias `$T` bound to the Rust element type of `$dtype`.
///
/// The one place that turns a runtime dtype into a monomorphised call.
#[macro_export]
macro_rules! with_dtype {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            $crate::DType::Bool => {
                type $T = bool;
                $body
            }
            $crate::DType::U8 => {
                type $T = u8;
                $body
            }
            $crate::DType::U16 => {
                type $T = u16;
                $body
            }
            $crate::DType::U32 => {
                type $T = u32;
                $body
            }
            $crate::DType::U64 => {
                type $T = u64;
                $body
            }
            $crate::DType::I8 => {
                type $T = i8;
                $body
            }
            $crate::DType::I16 => {
                type $T = i16;
                $body
            }
            $crate::DType::I32 => {
                type $T = i32;
                $body
            }
            $crate::DType::I64 => {
                type $T = i64;
                $body
            }
            $crate::DType::F16 => {
                type $T = $crate::half::f16;
                $body
            }
            $crate::DType::BF16 => {
                type $T = $crate::half::bf16;
                $body
            }
            $crate::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::DType::F64 => {
                type $T = f64;
                $body
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promote_matches_numpy_table() {
        use DType::*;
        let cases = [
            (Bool, I8, I8),
            (U8, I8, I16),
            (U16, I16, I32),
            (U32, I32, I64),
            (U64, I64, F64),
            (U8, I64, I64),
            (I16, F16, F32),
            (I32, F16, F64),
            (I8, F16, F16),
            (I64, F32, F64),
            (I16, F32, F32),
            (F16, BF16, F32),
            (BF16, F64, F64),
            (U8, BF16, BF16),
            (F32, F64, F64),
        ];
        for (a, b, want) in cases {
            assert_eq!(DType::promote(a, b), want, "{a} + {b}");
            assert_eq!(DType::promote(b, a), want, "{b} + {a}");
        }
    }

    #[test]
    fn parse_names_round_trip_and_unknown_is_an_error() {
        for d in DType::ALL {
            assert_eq!(d.name().parse::<DType>().ok(), Some(d));
        }
        let err = "float128".parse::<DType>().unwrap_err();
        assert!(err.to_string().contains("float128"));
    }

    #[test]
    fn casts_follow_numpy() {
        assert_eq!(cast_element::<f64, i32>(3.7), 3);
        assert_eq!(cast_element::<f64, i32>(-3.7), -3);
        assert_eq!(cast_element::<i32, u8>(300), 44);
        assert!(cast_element::<f32, bool>(0.5));
        assert!(!cast_element::<f32, bool>(0.0));
        assert_eq!(cast_element::<bool, f32>(true), 1.0);
        assert_eq!(cast_element::<i64, u64>(-1), u64::MAX);
        assert_eq!(cast_element::<u64, i64>(u64::MAX), -1);
        assert_eq!(cast_element::<f32, bf16>(1.5), bf16::from_f32(1.5));
    }

    #[test]
    fn weak_scalars_follow_nep50() {
        assert_eq!(Scalar::Int(3).weak_result(DType::U8).ok(), Some(DType::U8));
        assert!(Scalar::Int(300).weak_result(DType::U8).is_err());
        assert!(Scalar::Int(-1).weak_result(DType::U8).is_err());
        assert_eq!(
            Scalar::Float(0.5).weak_result(DType::I32).ok(),
            Some(DType::F64)
        );
        assert_eq!(
            Scalar::Float(0.5).weak_result(DType::F16).ok(),
            Some(DType::F16)
        );
        assert_eq!(
            Scalar::Int(1).weak_result(DType::Bool).ok(),
            Some(DType::I64)
        );
    }

    #[test]
    fn integer_arithmetic_wraps_like_numpy() {
        assert_eq!(Element::add(250u8, 10u8), 4);
        assert_eq!(Element::abs(i8::MIN), i8::MIN);
        assert_eq!(Element::neg(1u8), 255);
        assert!(Element::max_nan(1.0f32, f32::NAN).is_nan());
        assert!(Element::min_nan(f32::NAN, 1.0f32).is_nan());
    }
}
