//! The host reference: NumPy's semantics written out naively, one element at a time.
//!
//! Every value is lifted into [`Value`] (integers and bool exactly as `i128`, floats as `f64`),
//! computed there, and rounded back into the result dtype by this module's own conversions:
//! integers wrap, float → integer truncates and saturates (NaN → 0), anything → bool is `!= 0`,
//! and rounding into a float dtype is done on the bits, with integer arithmetic, once to nearest
//! with ties to even ([`round_bits`]) — independent of the core's and of `half`'s conversion
//! code. NumPy's dtype rules that the suite pins are restated here from NumPy's documentation,
//! not taken from the core.

use ndarray::{ArrayD, Axis, Dimension, IxDyn, Zip};
use tensorbridge_core::{
    with_dtype, with_host_array, BinaryOp, CmpOp, DType, DTypeKind, Element, HostArray, ReduceOp,
    Scalar, UnaryOp,
};

use crate::fixtures::ViewOp;

/// One element, lifted out of its dtype.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Value {
    /// Bool (0 or 1) and every integer, exactly.
    Int(i128),
    /// Every float, exactly (f16/bf16/f32 widen losslessly).
    Float(f64),
}

impl Value {
    pub(crate) fn of<T: Element>(x: T) -> Self {
        if T::DTYPE.is_float() {
            Value::Float(x.to_f64())
        } else {
            Value::Int(x.to_i128())
        }
    }

    /// Converts into `T` with the cast rules, computed here: integers wrap, float → integer
    /// truncates and saturates (NaN → 0), bool is `!= 0`, floats round once to nearest-even
    /// (into bfloat16 through float32, as ml_dtypes does). The core is only handed values `T`
    /// represents exactly, so its own rounding plays no part.
    pub(crate) fn to<T: Element>(self) -> T {
        match (self, T::DTYPE.kind()) {
            (Value::Int(i), DTypeKind::Float) => T::from_f64(round_int(i, T::DTYPE)),
            (Value::Int(i), _) => T::from_i128(wrap_int(i, T::DTYPE)),
            (Value::Float(f), DTypeKind::Float) => T::from_f64(cast_float(f, T::DTYPE)),
            (Value::Float(f), DTypeKind::Bool) => T::from_i128((f != 0.0) as i128),
            (Value::Float(f), _) => T::from_i128(trunc_saturate(f, T::DTYPE)),
        }
    }

    pub(crate) fn as_f64(self) -> f64 {
        match self {
            Value::Int(i) => i as f64,
            Value::Float(f) => f,
        }
    }

    pub(crate) fn of_scalar(s: Scalar) -> Self {
        match s {
            Scalar::Bool(b) => Value::Int(b as i128),
            Scalar::Int(i) => Value::Int(i),
            Scalar::Float(f) => Value::Float(f),
        }
    }
}

/// The elements of a host array, lifted.
pub(crate) fn values(h: &HostArray) -> ArrayD<Value> {
    with_host_array!(h, a => a.mapv(Value::of))
}

/// A host array of `dtype` from lifted values.
pub(crate) fn from_values(dtype: DType, v: &ArrayD<Value>) -> HostArray {
    with_dtype!(dtype, T => HostArray::from(v.mapv(Value::to::<T>)))
}

/// A host array of `dtype` and `shape` from lifted values in row-major order.
pub(crate) fn host_of(dtype: DType, shape: &[usize], v: Vec<Value>) -> HostArray {
    let a = ArrayD::from_shape_vec(IxDyn(shape), v).expect("value count matches the shape");
    from_values(dtype, &a)
}

/// `astype` with tensorbridge's cast rules, element by element, computed by [`Value::to`].
pub(crate) fn cast(h: &HostArray, dtype: DType) -> HostArray {
    from_values(dtype, &values(h))
}

// ---- conversions, on the bits -------------------------------------------------------------------

/// Mantissa bits (without the hidden bit) and exponent bits of a float dtype.
fn float_format(dtype: DType) -> (u32, u32) {
    match dtype {
        DType::F16 => (10, 5),
        DType::BF16 => (7, 8),
        DType::F32 => (23, 8),
        DType::F64 => (52, 11),
        other => panic!("{other} is not a float dtype"),
    }
}

/// The bits of `(-1)^neg × m × 2^e` rounded once, to nearest with ties to even, into the float
/// dtype `dtype` (subnormals, overflow to infinity and signed zero included). Pure integer
/// arithmetic on the exact value.
pub(crate) fn round_bits(neg: bool, m: u128, e: i32, dtype: DType) -> u64 {
    let (mb, eb) = float_format(dtype);
    let (mb_i, bias) = (mb as i32, (1i32 << (eb - 1)) - 1);
    let sign = (neg as u64) << (mb + eb);
    if m == 0 {
        return sign;
    }
    let top = 127 - m.leading_zeros() as i32 + e; // floor(log2 |value|)
                                                  // The spacing of the result: 2^q, fixed below the smallest normal exponent (subnormals).
    let mut q = (top - mb_i).max(1 - bias - mb_i);
    let shift = q - e;
    let mut k: u128 = if shift <= 0 {
        m << (-shift) as u32
    } else {
        let quot = m.checked_shr(shift as u32).unwrap_or(0);
        let rem = if shift >= 128 {
            m
        } else {
            m & ((1u128 << shift) - 1)
        };
        let half = if shift > 128 {
            u128::MAX
        } else {
            1u128 << (shift - 1)
        };
        if shift > 128 || rem < half || (rem == half && quot & 1 == 0) {
            quot
        } else {
            quot + 1
        }
    };
    if k >> (mb + 1) != 0 {
        // Rounding carried into the next binade.
        k >>= 1;
        q += 1;
    }
    let exp_field = if k >> mb == 0 { 0 } else { q + mb_i + bias };
    let max_field = (1i32 << eb) - 1;
    if exp_field >= max_field {
        return sign | ((max_field as u64) << mb);
    }
    sign | ((exp_field as u64) << mb) | (k as u64 & ((1u64 << mb) - 1))
}

/// The exact value of the bits of a float dtype, as f64.
pub(crate) fn bits_value(bits: u64, dtype: DType) -> f64 {
    match dtype {
        DType::F16 => half::f16::from_bits(bits as u16).to_f64(),
        DType::BF16 => half::bf16::from_bits(bits as u16).to_f64(),
        DType::F32 => f32::from_bits(bits as u32) as f64,
        DType::F64 => f64::from_bits(bits),
        other => panic!("{other} is not a float dtype"),
    }
}

/// `x` rounded once into the float dtype `dtype`, as its exact value.
pub(crate) fn round_float(x: f64, dtype: DType) -> f64 {
    if !x.is_finite() {
        return x;
    }
    let bits = x.to_bits();
    let (field, frac) = ((bits >> 52) & 0x7ff, bits & ((1 << 52) - 1));
    let (m, e) = if field == 0 {
        (frac, -1074)
    } else {
        (frac | (1 << 52), field as i32 - 1075)
    };
    bits_value(round_bits(x.is_sign_negative(), m as u128, e, dtype), dtype)
}

/// The float `x` cast into the float dtype `dtype`: rounded once, except into bfloat16, which
/// rounds through float32 (ml_dtypes' `astype(bfloat16)`, PyTorch's `.to(torch.bfloat16)`).
pub(crate) fn cast_float(x: f64, dtype: DType) -> f64 {
    if dtype == DType::BF16 {
        return round_float(round_float(x, DType::F32), DType::BF16);
    }
    round_float(x, dtype)
}

/// The integer `i` rounded into the float dtype `dtype`: once, except bfloat16, which rounds
/// through float32 (as ml_dtypes and PyTorch convert integers).
pub(crate) fn round_int(i: i128, dtype: DType) -> f64 {
    if dtype == DType::BF16 {
        return round_float(round_int(i, DType::F32), DType::BF16);
    }
    bits_value(round_bits(i < 0, i.unsigned_abs(), 0, dtype), dtype)
}

/// `i` wrapped into an integer dtype (its value modulo 2^bits, in the dtype's range); bool is
/// `!= 0`.
pub(crate) fn wrap_int(i: i128, dtype: DType) -> i128 {
    if dtype == DType::Bool {
        return (i != 0) as i128;
    }
    let bits = 8 * dtype.size_in_bytes() as u32;
    let m = i.rem_euclid(1i128 << bits);
    let (lo, _) = int_range(dtype);
    if lo < 0 && m >= 1i128 << (bits - 1) {
        m - (1i128 << bits)
    } else {
        m
    }
}

/// A float truncated toward zero into an integer dtype, saturating at its bounds; NaN is 0.
pub(crate) fn trunc_saturate(f: f64, dtype: DType) -> i128 {
    if f.is_nan() {
        return 0;
    }
    let (lo, hi) = int_range(dtype);
    // Within ±2^127 the conversion of an integral f64 is exact; beyond, it saturates.
    (f.trunc() as i128).clamp(lo, hi)
}

/// The unit roundoff scale of a float dtype (0 for exact dtypes).
pub(crate) fn epsilon(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => (2.0f64).powi(-10),
        DType::BF16 => (2.0f64).powi(-7),
        DType::F32 => f32::EPSILON as f64,
        DType::F64 => f64::EPSILON,
        _ => 0.0,
    }
}

/// The smallest positive normal value of a float dtype (0 for exact dtypes).
pub(crate) fn min_normal(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => (2.0f64).powi(-14),
        DType::BF16 | DType::F32 => f32::MIN_POSITIVE as f64,
        DType::F64 => f64::MIN_POSITIVE,
        _ => 0.0,
    }
}

/// The inclusive value range of an integer dtype.
pub(crate) fn int_range(dtype: DType) -> (i128, i128) {
    match dtype {
        DType::Bool => (0, 1),
        DType::U8 => (0, u8::MAX as i128),
        DType::U16 => (0, u16::MAX as i128),
        DType::U32 => (0, u32::MAX as i128),
        DType::U64 => (0, u64::MAX as i128),
        DType::I8 => (i8::MIN as i128, i8::MAX as i128),
        DType::I16 => (i16::MIN as i128, i16::MAX as i128),
        DType::I32 => (i32::MIN as i128, i32::MAX as i128),
        DType::I64 => (i64::MIN as i128, i64::MAX as i128),
        _ => (i128::MIN, i128::MAX),
    }
}

// ---- NumPy's dtype rules, restated -------------------------------------------------------------

/// The dtype `np.exp/np.log/np.sqrt` return: the smallest float that holds the input type.
pub(crate) fn float_result(dtype: DType) -> DType {
    use DType::*;
    match dtype {
        Bool | U8 | I8 => F16,
        U16 | I16 => F32,
        U32 | I32 | U64 | I64 => F64,
        F16 | BF16 | F32 | F64 => dtype,
    }
}

/// The dtype `np.true_divide` computes in after promotion: integers and bool give float64.
pub(crate) fn true_divide_dtype(promoted: DType) -> DType {
    if promoted.is_float() {
        promoted
    } else {
        DType::F64
    }
}

/// The dtype NumPy's reductions return: `sum` of bool/signed → int64, of unsigned → uint64;
/// `mean` of non-floats → float64; `max`/`min` keep the dtype.
pub(crate) fn reduce_dtype(op: ReduceOp, dtype: DType) -> DType {
    match (op, dtype.kind()) {
        (ReduceOp::Sum, DTypeKind::Bool | DTypeKind::Signed) => DType::I64,
        (ReduceOp::Sum, DTypeKind::Unsigned) => DType::U64,
        (ReduceOp::Mean, kind) if kind != DTypeKind::Float => DType::F64,
        _ => dtype,
    }
}

/// NEP 50: the dtype of `tensor op python_scalar`, or `None` when NumPy 2 raises because the
/// Python int does not fit the tensor's integer dtype.
pub(crate) fn weak_scalar_dtype(s: Scalar, dtype: DType) -> Option<DType> {
    match (s, dtype.kind()) {
        (Scalar::Bool(_), _) => Some(dtype),
        (Scalar::Int(_), DTypeKind::Bool) => Some(DType::I64),
        (Scalar::Int(i), DTypeKind::Signed | DTypeKind::Unsigned) => {
            let (lo, hi) = int_range(dtype);
            (lo..=hi).contains(&i).then_some(dtype)
        }
        (Scalar::Int(_) | Scalar::Float(_), DTypeKind::Float) => Some(dtype),
        (Scalar::Float(_), _) => Some(DType::F64),
    }
}

/// The dtype of `tensor op python_scalar` (either order), or `None` when NumPy 2 raises.
/// True division of a non-float tensor resolves to NumPy's float64 loop before the scalar is
/// converted, so any Python int is fine there (`uint8 / -1` is float64); the other ops follow
/// [`weak_scalar_dtype`].
pub(crate) fn scalar_op_dtype(op: BinaryOp, s: Scalar, dtype: DType) -> Option<DType> {
    if op == BinaryOp::Div && !dtype.is_float() {
        return Some(DType::F64);
    }
    let weak = weak_scalar_dtype(s, dtype)?;
    Some(match op {
        BinaryOp::Div => true_divide_dtype(weak),
        _ => weak,
    })
}

/// NumPy's broadcast of two shapes, or `None` when they do not broadcast.
pub(crate) fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let pad = |s: &[usize], i: usize| {
        if i < n - s.len() {
            1
        } else {
            s[i - (n - s.len())]
        }
    };
    (0..n)
        .map(|i| match (pad(a, i), pad(b, i)) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

// ---- elementwise --------------------------------------------------------------------------------

/// `op` on every element, in the dtype NumPy returns.
pub(crate) fn unary(op: UnaryOp, h: &HostArray) -> HostArray {
    let dtype = match op {
        UnaryOp::Exp | UnaryOp::Log | UnaryOp::Sqrt => float_result(h.dtype()),
        UnaryOp::Neg | UnaryOp::Abs => h.dtype(),
    };
    let v = values(&cast(h, dtype)).mapv(|x| match (op, x) {
        (UnaryOp::Neg, Value::Int(i)) => Value::Int(-i),
        (UnaryOp::Abs, Value::Int(i)) => Value::Int(i.abs()),
        (UnaryOp::Neg, Value::Float(f)) => Value::Float(-f),
        (UnaryOp::Abs, Value::Float(f)) => Value::Float(f.abs()),
        (UnaryOp::Exp, v) => Value::Float(v.as_f64().exp()),
        (UnaryOp::Log, v) => Value::Float(v.as_f64().ln()),
        (UnaryOp::Sqrt, v) => Value::Float(v.as_f64().sqrt()),
    });
    from_values(dtype, &v)
}

/// Applies `f` to the broadcast pairs of two lifted arrays.
fn zip_broadcast<R>(
    a: &ArrayD<Value>,
    b: &ArrayD<Value>,
    f: impl FnMut(&Value, &Value) -> R,
) -> ArrayD<R> {
    let shape = broadcast_shape(a.shape(), b.shape()).expect("reference operands broadcast");
    let (va, vb) = (
        a.broadcast(IxDyn(&shape)).expect("broadcastable"),
        b.broadcast(IxDyn(&shape)).expect("broadcastable"),
    );
    Zip::from(&va).and(&vb).map_collect(f)
}

/// Arithmetic of two operands already cast to one dtype, with broadcasting.
pub(crate) fn binary(op: BinaryOp, a: &HostArray, b: &HostArray) -> HostArray {
    assert_eq!(a.dtype(), b.dtype(), "reference operands share a dtype");
    let v = zip_broadcast(&values(a), &values(b), |&x, &y| match (x, y) {
        // i128 arithmetic is exact for every operand pair here; wrapping keeps u64 * u64 correct
        // modulo 2^64, which is all `from_i128` keeps.
        (Value::Int(x), Value::Int(y)) => Value::Int(match op {
            BinaryOp::Add => x.wrapping_add(y),
            BinaryOp::Sub => x.wrapping_sub(y),
            BinaryOp::Mul => x.wrapping_mul(y),
            BinaryOp::Div => unreachable!("true division is computed in a float dtype"),
        }),
        (x, y) => {
            let (x, y) = (x.as_f64(), y.as_f64());
            Value::Float(match op {
                BinaryOp::Add => x + y,
                BinaryOp::Sub => x - y,
                BinaryOp::Mul => x * y,
                BinaryOp::Div => x / y,
            })
        }
    });
    from_values(a.dtype(), &v)
}

/// Comparison of two operands already cast to one dtype, with broadcasting; a bool array.
pub(crate) fn compare(op: CmpOp, a: &HostArray, b: &HostArray) -> HostArray {
    assert_eq!(a.dtype(), b.dtype(), "reference operands share a dtype");
    let v = zip_broadcast(&values(a), &values(b), |&x, &y| {
        Value::Int(compare_values(op, x, y) as i128)
    });
    from_values(DType::Bool, &v)
}

/// The mathematical comparison of two values (NaN compares false).
pub(crate) fn compare_values(op: CmpOp, x: Value, y: Value) -> bool {
    let ord = match (x, y) {
        (Value::Int(x), Value::Int(y)) => x.partial_cmp(&y),
        (x, y) => x.as_f64().partial_cmp(&y.as_f64()),
    };
    match op {
        CmpOp::Eq => ord == Some(std::cmp::Ordering::Equal),
        CmpOp::Lt => ord == Some(std::cmp::Ordering::Less),
        CmpOp::Gt => ord == Some(std::cmp::Ordering::Greater),
    }
}

// ---- reductions -------------------------------------------------------------------------------

/// One reduced lane and the scale its float round-off is measured against (`Σ|x|`).
fn reduce_lane<'a>(op: ReduceOp, lane: impl Iterator<Item = &'a Value>) -> (Value, f64) {
    let lane: Vec<Value> = lane.copied().collect();
    let scale = lane.iter().map(|v| v.as_f64().abs()).sum();
    let is_float = matches!(lane.first(), Some(Value::Float(_)));
    let v = match op {
        ReduceOp::Sum if !is_float => Value::Int(
            lane.iter()
                .map(|v| match v {
                    Value::Int(i) => *i,
                    Value::Float(_) => unreachable!(),
                })
                .fold(0i128, i128::wrapping_add),
        ),
        ReduceOp::Sum => Value::Float(lane.iter().map(|v| v.as_f64()).sum()),
        ReduceOp::Mean => {
            Value::Float(lane.iter().map(|v| v.as_f64()).sum::<f64>() / lane.len() as f64)
        }
        ReduceOp::Max | ReduceOp::Min => {
            let pick_max = op == ReduceOp::Max;
            let mut it = lane.into_iter();
            let first = it
                .next()
                .expect("max/min of an empty lane is an error, not a value");
            it.fold(first, |acc, x| {
                let nan = |v: Value| matches!(v, Value::Float(f) if f.is_nan());
                if nan(acc) {
                    return acc;
                }
                if nan(x) {
                    return x;
                }
                let greater = compare_values(CmpOp::Gt, x, acc);
                let less = compare_values(CmpOp::Lt, x, acc);
                if (pick_max && greater) || (!pick_max && less) {
                    x
                } else {
                    acc
                }
            })
        }
    };
    (v, scale)
}

/// A reduction over all elements (`axis == None`) or one (non-negative) axis, with NumPy's
/// result dtype; also the per-output `Σ|x|` for float tolerances.
pub(crate) fn reduce(
    op: ReduceOp,
    h: &HostArray,
    axis: Option<usize>,
    keepdim: bool,
) -> (HostArray, ArrayD<f64>) {
    let v = values(h);
    let ndim = v.ndim();
    let (out, scale): (ArrayD<Value>, ArrayD<f64>) = match axis {
        None => {
            let (r, s) = reduce_lane(op, v.iter());
            let shape = if keepdim { vec![1; ndim] } else { vec![] };
            (
                ArrayD::from_elem(IxDyn(&shape), r),
                ArrayD::from_elem(IxDyn(&shape), s),
            )
        }
        Some(ax) => {
            let pairs = v.map_axis(Axis(ax), |lane| reduce_lane(op, lane.iter()));
            let (mut out, mut scale) = (pairs.mapv(|p| p.0), pairs.mapv(|p| p.1));
            if keepdim {
                out = out.insert_axis(Axis(ax));
                scale = scale.insert_axis(Axis(ax));
            }
            (out, scale)
        }
    };
    (from_values(reduce_dtype(op, h.dtype()), &out), scale)
}

// ---- matmul ---------------------------------------------------------------------------------------

/// NumPy `matmul` of two operands already cast to one dtype: 1-D operands gain and then lose an
/// axis, batch axes broadcast. Also the per-output `Σ|a·b|` for float tolerances.
pub(crate) fn matmul(a: &HostArray, b: &HostArray) -> (HostArray, ArrayD<f64>) {
    assert_eq!(a.dtype(), b.dtype(), "reference operands share a dtype");
    let (mut va, mut vb) = (values(a), values(b));
    let (a_vec, b_vec) = (va.ndim() == 1, vb.ndim() == 1);
    if a_vec {
        va = va.insert_axis(Axis(0));
    }
    if b_vec {
        vb = vb.insert_axis(Axis(1));
    }
    let (na, nb) = (va.ndim(), vb.ndim());
    let (m, k, n) = (va.shape()[na - 2], va.shape()[na - 1], vb.shape()[nb - 1]);
    assert_eq!(
        k,
        vb.shape()[nb - 2],
        "reference matmul operands agree on k"
    );
    let batch = broadcast_shape(&va.shape()[..na - 2], &vb.shape()[..nb - 2])
        .expect("reference batch dims broadcast");
    let with = |tail: [usize; 2]| [&batch[..], &tail[..]].concat();
    let va = va.broadcast(IxDyn(&with([m, k]))).expect("broadcastable");
    let vb = vb.broadcast(IxDyn(&with([k, n]))).expect("broadcastable");
    let nbatch = batch.len();
    let cell = |idx: &[usize]| -> (Value, f64) {
        let (mut ia, mut ib) = (idx.to_vec(), idx.to_vec());
        let (i, j) = (idx[nbatch], idx[nbatch + 1]);
        let (mut int_acc, mut float_acc, mut scale) = (0i128, 0f64, 0f64);
        let mut is_float = false;
        for p in 0..k {
            (ia[nbatch], ia[nbatch + 1], ib[nbatch], ib[nbatch + 1]) = (i, p, p, j);
            match (va[IxDyn(&ia)], vb[IxDyn(&ib)]) {
                (Value::Int(x), Value::Int(y)) => {
                    int_acc = int_acc.wrapping_add(x.wrapping_mul(y));
                }
                (x, y) => {
                    is_float = true;
                    let prod = x.as_f64() * y.as_f64();
                    float_acc += prod;
                    scale += prod.abs();
                }
            }
        }
        let v = if is_float || a.dtype().is_float() {
            Value::Float(float_acc)
        } else {
            Value::Int(int_acc)
        };
        (v, scale)
    };
    let pairs = ArrayD::from_shape_fn(IxDyn(&with([m, n])), |idx| cell(idx.slice()));
    let (mut out, mut scale) = (pairs.mapv(|p| p.0), pairs.mapv(|p| p.1));
    if b_vec {
        out = out.index_axis_move(Axis(nbatch + 1), 0);
        scale = scale.index_axis_move(Axis(nbatch + 1), 0);
    }
    if a_vec {
        out = out.index_axis_move(Axis(nbatch), 0);
        scale = scale.index_axis_move(Axis(nbatch), 0);
    }
    (from_values(a.dtype(), &out), scale)
}

// ---- views ------------------------------------------------------------------------------------------

fn norm_axis(axis: isize, ndim: usize) -> usize {
    let a = if axis < 0 { axis + ndim as isize } else { axis };
    assert!(
        (0..ndim as isize).contains(&a),
        "reference view: axis {axis} for {ndim} dims"
    );
    a as usize
}

/// The indices Python's `range(len)[start:stop:step]` selects.
pub(crate) fn python_slice(
    len: usize,
    start: Option<isize>,
    stop: Option<isize>,
    step: isize,
) -> Vec<usize> {
    let n = len as isize;
    let resolve = |i: isize| if i < 0 { i + n } else { i };
    let mut out = Vec::new();
    if step > 0 {
        let mut i = start.map_or(0, |s| resolve(s).clamp(0, n));
        let end = stop.map_or(n, |s| resolve(s).clamp(0, n));
        while i < end {
            out.push(i as usize);
            i += step;
        }
    } else {
        let mut i = start.map_or(n - 1, |s| resolve(s).clamp(-1, n - 1));
        let end = stop.map_or(-1, |s| resolve(s).clamp(-1, n - 1));
        while i > end {
            out.push(i as usize);
            i += step;
        }
    }
    out
}

/// Row-major reshape of the logical elements; one `-1` is inferred.
fn reshape_nd<T: Clone>(a: ArrayD<T>, shape: &[isize]) -> ArrayD<T> {
    let known: usize = shape
        .iter()
        .filter(|&&d| d >= 0)
        .map(|&d| d as usize)
        .product();
    let dims: Vec<usize> = shape
        .iter()
        .map(|&d| if d < 0 { a.len() / known } else { d as usize })
        .collect();
    ArrayD::from_shape_vec(IxDyn(&dims), a.iter().cloned().collect()).expect("reshape count")
}

fn view_nd<T: Clone>(a: ArrayD<T>, op: &ViewOp) -> ArrayD<T> {
    let nd = a.ndim();
    match *op {
        ViewOp::Reverse => a.reversed_axes(),
        ViewOp::Transpose(x, y) => {
            let mut a = a;
            a.swap_axes(norm_axis(x, nd), norm_axis(y, nd));
            a
        }
        ViewOp::Permute(p) => {
            let p: Vec<usize> = p.iter().map(|&x| norm_axis(x, nd)).collect();
            a.permuted_axes(IxDyn(&p))
        }
        ViewOp::Slice {
            axis,
            start,
            stop,
            step,
        } => {
            let ax = norm_axis(axis, nd);
            a.select(Axis(ax), &python_slice(a.shape()[ax], start, stop, step))
        }
        ViewOp::BroadcastTo(shape) => a
            .broadcast(IxDyn(shape))
            .expect("reference broadcast")
            .to_owned(),
        ViewOp::Select { axis, index } => {
            let ax = norm_axis(axis, nd);
            let len = a.shape()[ax] as isize;
            let i = if index < 0 { index + len } else { index };
            a.index_axis_move(Axis(ax), i as usize)
        }
        ViewOp::Unsqueeze(axis) => a.insert_axis(Axis(norm_axis(axis, nd + 1))),
        ViewOp::Squeeze(None) => {
            let shape: Vec<isize> = a
                .shape()
                .iter()
                .filter(|&&d| d != 1)
                .map(|&d| d as isize)
                .collect();
            reshape_nd(a, &shape)
        }
        ViewOp::Squeeze(Some(axis)) => a.index_axis_move(Axis(norm_axis(axis, nd)), 0),
        ViewOp::Reshape(shape) => reshape_nd(a, shape),
        ViewOp::Contiguous => a,
    }
}

/// The view `op` of a host array, done by `ndarray`.
pub(crate) fn view(h: HostArray, op: &ViewOp) -> HostArray {
    with_host_array!(h, a => HostArray::from(view_nd(a, op)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_rounding_matches_known_values() {
        // NumPy / ml_dtypes values of one rounding (`round_float`; casts: `cast_float`).
        let f = |x: f64, d: DType| {
            let v = round_float(x, d);
            match d {
                DType::F16 => half::f16::from_f64(v).to_bits() as u64,
                DType::BF16 => half::bf16::from_f64(v).to_bits() as u64,
                DType::F32 => (v as f32).to_bits() as u64,
                _ => v.to_bits(),
            }
        };
        assert_eq!(f(-0.6113285415306722, DType::BF16), 0xbf1d);
        assert_eq!(f(1.1645508316087867, DType::F16), 0x3ca9);
        assert_eq!(f(65520.0, DType::F16), 0x7c00);
        assert_eq!(f(65519.99, DType::F16), 0x7bff);
        assert_eq!(f(2f64.powi(-25), DType::F16), 0x0000);
        assert_eq!(f(2f64.powi(-25) * 1.5, DType::F16), 0x0001);
        assert_eq!(f(2f64.powi(-24) * 1.5, DType::F16), 0x0002);
        assert_eq!(f(-0.0, DType::F16), 0x8000);
        assert_eq!(f(1.0 + 2f64.powi(-8), DType::BF16), 0x3f80);
        assert_eq!(f(1.0 + 3.0 * 2f64.powi(-8), DType::BF16), 0x3f82);
        assert_eq!(f(1.0 + 2f64.powi(-8) + 2f64.powi(-40), DType::BF16), 0x3f81);
        // The cast into bfloat16 rounds through float32: ml_dtypes'
        // np.array([1 + 2**-8 + 2**-40]).astype(bfloat16) is 1.0 (0x3f80), one rounding 0x3f81.
        assert_eq!(
            cast_float(1.0 + 2f64.powi(-8) + 2f64.powi(-40), DType::BF16),
            1.0
        );
        assert_eq!(
            cast_float(1.0 + 2f64.powi(-8) + 2f64.powi(-20), DType::BF16),
            1.0078125
        );
        assert_eq!(
            cast_float(1.1645508316087867, DType::F16),
            half::f16::from_bits(0x3ca9).to_f64()
        );
        assert_eq!(f(16_777_217.0, DType::F32), 16_777_216f32.to_bits() as u64);
        assert_eq!(
            f(f64::MIN_POSITIVE / 4.0, DType::F64),
            (f64::MIN_POSITIVE / 4.0).to_bits()
        );
        assert_eq!(round_int(16_777_217, DType::F32), 16_777_216.0);
        assert_eq!(
            round_int((1 << 60) + (1 << 36) + 1, DType::F32),
            ((1u64 << 60) + (1 << 37)) as f64
        );
        // ml_dtypes: np.array([2**32 + 2**24 + 1]).astype(bfloat16) is 2**32 (through float32).
        assert_eq!(
            round_int((1 << 32) + (1 << 24) + 1, DType::BF16),
            4294967296.0
        );
        assert_eq!(
            round_int(u64::MAX as i128, DType::F64),
            18446744073709551616.0
        );
        assert_eq!(round_int(65520, DType::F16), f64::INFINITY);
        assert_eq!(wrap_int(300, DType::U8), 44);
        assert_eq!(wrap_int(200, DType::I8), -56);
        assert_eq!(wrap_int(-1, DType::U64), u64::MAX as i128);
        assert_eq!(trunc_saturate(-1.5, DType::U8), 0);
        assert_eq!(trunc_saturate(1e30, DType::I64), i64::MAX as i128);
        assert_eq!(trunc_saturate(f64::NAN, DType::I32), 0);
        assert_eq!(trunc_saturate(-3.9, DType::I8), -3);
    }

    #[test]
    fn python_slices_match_cpython() {
        // list(range(10))[...] checked in CPython.
        assert_eq!(python_slice(10, Some(1), Some(8), 3), [1, 4, 7]);
        assert_eq!(python_slice(10, Some(-2), Some(1), -3), [8, 5, 2]);
        assert_eq!(python_slice(6, Some(-100), Some(100), 2), [0, 2, 4]);
        assert_eq!(python_slice(4, None, None, -1), [3, 2, 1, 0]);
        assert!(python_slice(6, Some(4), Some(2), 1).is_empty());
        assert!(python_slice(0, None, None, -1).is_empty());
    }

    #[test]
    fn reference_wraps_integers_and_propagates_nan() {
        let a = host_of(DType::U8, &[2], vec![Value::Int(250), Value::Int(16)]);
        let sum = binary(BinaryOp::Add, &a, &a);
        assert_eq!(
            values(&sum).as_slice().unwrap(),
            &[Value::Int(244), Value::Int(32)]
        );
        let prod = binary(BinaryOp::Mul, &a, &a);
        assert_eq!(values(&prod).as_slice().unwrap()[1], Value::Int(0));
        let f = host_of(
            DType::F32,
            &[3],
            vec![Value::Float(1.0), Value::Float(f64::NAN), Value::Float(3.0)],
        );
        let (m, _) = reduce(ReduceOp::Max, &f, None, false);
        assert!(values(&m)
            .iter()
            .all(|v| matches!(v, Value::Float(x) if x.is_nan())));
    }

    #[test]
    fn reference_matmul_drops_vector_axes() {
        let a = host_of(DType::I32, &[2], vec![Value::Int(1), Value::Int(2)]);
        let b = host_of(DType::I32, &[2, 1, 2, 3], (0..12).map(Value::Int).collect());
        let (out, _) = matmul(&a, &b);
        assert_eq!(out.shape(), &[2, 1, 3]);
        assert_eq!(values(&out)[[1, 0, 2]], Value::Int(8 + 2 * 11));
    }
}
