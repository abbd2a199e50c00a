//! Creation: host data in (`from_slice`, `from_host`, `from_array`, `scalar`), fills (`zeros`,
//! `ones`, `full`) and `arange`.

use ndarray::{ArrayD, Axis, IxDyn, ShapeBuilder, Slice};
use tensorbridge_core::{
    with_dtype, Backend, DType, Device, Element, Error, HostArray, Scalar, Tensor,
};

use crate::checker::{Checker, Tol};
use crate::fixtures::{random_host, Dist};
use crate::reference::{bits_value, host_of, values, Value};
use crate::rng::Lcg;

const SHAPES: [&[usize]; 6] = [&[], &[0], &[4], &[2, 3], &[0, 3], &[2, 1, 3]];

/// Creation from host data, fills and `arange` give back exactly the values put in, in the
/// dtype NumPy would choose.
pub fn check_creation<B: Backend>(device: &Device) {
    let mut c = Checker::new("creation");
    let mut rng = Lcg::new(0xC0FFEE);
    for dtype in DType::ALL {
        for shape in SHAPES {
            let h = random_host(dtype, shape, Dist::Full, &mut rng);
            let ctx = format!("{dtype} {shape:?}");
            c.tensor(
                &format!("from_host {ctx}"),
                Tensor::<B>::from_host(h.clone(), device),
                &h,
                &Tol::Exact,
            );
            with_dtype!(dtype, T => unusual_host_layouts::<B, T>(&mut c, &h, device, &ctx));
            with_dtype!(dtype, T => typed_creation::<B, T>(&mut c, &h, device, &ctx));
            check_fills::<B>(&mut c, dtype, shape, device);
        }
        check_arange::<B>(&mut c, dtype, device);
    }
    check_default_dtypes::<B>(&mut c, device);
    check_numpy_arange::<B>(&mut c, device);
    for dtype in crate::checker::unsupported_dtypes() {
        c.error(
            &format!("zeros of declared-unsupported {dtype}"),
            Tensor::<B>::zeros(&[2], dtype, device),
            "Error::UnsupportedDType",
            |e| matches!(e, Error::UnsupportedDType { dtype: d, .. } if *d == dtype),
        );
    }
    c.finish();
}

/// Host arrays that are not plain row-major buffers (transposed, Fortran order, negative strides,
/// a window at an offset into a larger buffer) are taken in their logical order.
fn unusual_host_layouts<B: Backend, T: Element>(
    c: &mut Checker,
    h: &HostArray,
    device: &Device,
    ctx: &str,
) {
    let a: &ArrayD<T> = h.as_typed().expect("fixture has the requested dtype");
    let mut variants: Vec<(&str, ArrayD<T>)> = vec![
        ("transposed", a.clone().reversed_axes()),
        ("Fortran-order", {
            let mut f = ArrayD::from_elem(IxDyn(a.shape()).f(), T::ZERO);
            f.assign(a);
            f
        }),
    ];
    if a.ndim() > 0 {
        let mut inverted = a.clone();
        inverted.invert_axis(Axis(0));
        variants.push(("negative-stride", inverted));
        // Rows 1.. of a buffer with one extra leading row: standard layout at an offset.
        let mut shape = a.shape().to_vec();
        shape[0] += 1;
        let mut taller = ArrayD::from_elem(IxDyn(&shape), T::ONE);
        taller.slice_axis_mut(Axis(0), Slice::from(1..)).assign(a);
        variants.push((
            "offset window",
            taller.slice_axis_move(Axis(0), Slice::from(1..)),
        ));
    }
    for (what, v) in variants {
        let want = HostArray::from(v.clone());
        c.tensor(
            &format!("from_host of a {what} ndarray {ctx}"),
            Tensor::<B>::from_host(v, device),
            &want,
            &Tol::Exact,
        );
    }
}

fn typed_creation<B: Backend, T: Element>(
    c: &mut Checker,
    h: &HostArray,
    device: &Device,
    ctx: &str,
) {
    let a: &ArrayD<T> = h.as_typed().expect("fixture has the requested dtype");
    let data: Vec<T> = a.iter().copied().collect();
    c.tensor(
        &format!("from_slice {ctx}"),
        Tensor::<B>::from_slice(&data, a.shape(), device),
        h,
        &Tol::Exact,
    );
    c.tensor(
        &format!("from_array {ctx}"),
        Tensor::<B>::from_array(&a.view(), device),
        h,
        &Tol::Exact,
    );
    if a.ndim() == 0 {
        c.tensor(
            &format!("scalar {ctx}"),
            Tensor::<B>::scalar(data[0], device),
            h,
            &Tol::Exact,
        );
    }
    let mut extra = data.clone();
    extra.push(T::ONE);
    c.error(
        &format!("from_slice with one element too many {ctx}"),
        Tensor::<B>::from_slice(&extra, a.shape(), device),
        "Error::ElementCount",
        |e| matches!(e, Error::ElementCount { len, .. } if *len == extra.len()),
    );
}

fn filled(dtype: DType, shape: &[usize], v: Value) -> HostArray {
    host_of(dtype, shape, vec![v; shape.iter().product()])
}

fn check_fills<B: Backend>(c: &mut Checker, dtype: DType, shape: &[usize], device: &Device) {
    let ctx = format!("{dtype} {shape:?}");
    c.tensor(
        &format!("zeros {ctx}"),
        Tensor::<B>::zeros(shape, dtype, device),
        &filled(dtype, shape, Value::Int(0)),
        &Tol::Exact,
    );
    c.tensor(
        &format!("ones {ctx}"),
        Tensor::<B>::ones(shape, dtype, device),
        &filled(dtype, shape, Value::Int(1)),
        &Tol::Exact,
    );
    // Floats truncate into integers and any non-zero is true, as `np.full(.., dtype=..)`.
    for s in [
        Scalar::Int(3),
        Scalar::Float(2.5),
        Scalar::Float(-1.75),
        Scalar::Bool(true),
    ] {
        c.tensor(
            &format!("full({s:?}) {ctx}"),
            Tensor::<B>::full(shape, s, Some(dtype), device),
            &filled(dtype, shape, Value::of_scalar(s)),
            &Tol::Exact,
        );
    }
}

/// NumPy's `arange`, restated from `PyArray_ArangeObj` and the dtypes' `fill` functions for the
/// unambiguous ranges below (their quotients are exact): `out[0] = start`, `out[1] = start +
/// step`, `out[i] = out[0] + i * (out[1] - out[0])` in the dtype (f16/bf16 in f32; integers
/// wrap).
fn arange_reference(dtype: DType, start: Scalar, stop: Scalar, step: Scalar) -> HostArray {
    let (s, e, st) = (start.to_f64(), stop.to_f64(), step.to_f64());
    let n = ((e - s) / st).ceil().max(0.0) as usize;
    let first = Value::of_scalar(start);
    let second = match (start, step) {
        (Scalar::Int(a), Scalar::Int(b)) => Value::Int(a + b),
        _ => Value::Float(s + st),
    };
    // The first two values in the dtype, then the fill in the dtype's arithmetic.
    let two = values(&host_of(dtype, &[2], vec![first, second]));
    let (a, b) = (two[[0]], two[[1]]);
    let v = (0..n)
        .map(|i| match (i, a, b) {
            (0, a, _) => a,
            (1, _, b) => b,
            (_, Value::Int(a), Value::Int(b)) => Value::Int(a + i as i128 * (b - a)),
            (_, a, b) if dtype == DType::F64 => {
                Value::Float(a.as_f64() + i as f64 * (b.as_f64() - a.as_f64()))
            }
            (_, a, b) => {
                let (a, b) = (a.as_f64() as f32, b.as_f64() as f32);
                Value::Float((a + i as f32 * (b - a)) as f64)
            }
        })
        .collect();
    host_of(dtype, &[n], v)
}

/// `np.arange` results on NumPy 2.4 (bfloat16: ml_dtypes 0.6), as bits.
#[allow(clippy::type_complexity)]
fn numpy_aranges() -> Vec<(Scalar, Scalar, Scalar, DType, &'static [u64])> {
    use DType::*;
    use Scalar::{Float, Int};
    vec![
        (
            Float(1.0),
            Float(2.0),
            Float(0.1),
            F64,
            &[
                0x3ff0000000000000,
                0x3ff199999999999a,
                0x3ff3333333333334,
                0x3ff4ccccccccccce,
                0x3ff6666666666668,
                0x3ff8000000000002,
                0x3ff999999999999c,
                0x3ffb333333333336,
                0x3ffcccccccccccd0,
                0x3ffe66666666666a,
            ],
        ),
        (
            Int(1),
            Int(2),
            Float(0.1),
            F32,
            &[
                0x3f800000, 0x3f8ccccd, 0x3f99999a, 0x3fa66667, 0x3fb33334, 0x3fc00001, 0x3fccccce,
                0x3fd9999b, 0x3fe66668, 0x3ff33335,
            ],
        ),
        (
            Int(1),
            Int(2),
            Float(0.1),
            F16,
            &[
                0x3c00, 0x3c66, 0x3ccc, 0x3d32, 0x3d98, 0x3dfe, 0x3e64, 0x3eca, 0x3f30, 0x3f96,
            ],
        ),
        (
            Int(1),
            Int(2),
            Float(0.1),
            BF16,
            &[
                0x3f80, 0x3f8d, 0x3f9a, 0x3fa7, 0x3fb4, 0x3fc1, 0x3fce, 0x3fdb, 0x3fe8, 0x3ff5,
            ],
        ),
        (
            Float(-3.0),
            Float(3.0),
            Float(0.7),
            F64,
            &[
                0xc008000000000000,
                0xc002666666666666,
                0xbff9999999999998,
                0xbfecccccccccccc8,
                0xbfc9999999999980,
                0x3fe0000000000008,
                0x3ff3333333333338,
                0x3ffe66666666666c,
                0x4004ccccccccccd0,
            ],
        ),
        (
            Float(-3.0),
            Float(3.0),
            Float(0.7),
            F32,
            &[
                0xc0400000, 0xc0133333, 0xbfcccccc, 0xbf666664, 0xbe4cccc0, 0x3f000004, 0x3f99999c,
                0x3ff33338, 0x40266668,
            ],
        ),
        (
            Int(10),
            Int(0),
            Float(-1.3),
            F32,
            &[
                0x41200000, 0x410b3333, 0x40eccccc, 0x40c33332, 0x40999998, 0x405ffffc, 0x400cccc8,
                0x3f666650,
            ],
        ),
        (
            Float(0.0),
            Float(1.0),
            Float(0.1),
            F16,
            &[
                0x0, 0x2e66, 0x3266, 0x34cc, 0x3666, 0x3800, 0x38cc, 0x3999, 0x3a66, 0x3b33,
            ],
        ),
    ]
}

/// Integer aranges NumPy 2.4 gives: wrapping fills, values at uint64's top, float bounds.
fn numpy_int_aranges() -> Vec<(Scalar, Scalar, Scalar, DType, Vec<i128>)> {
    use DType::*;
    use Scalar::{Float, Int};
    let p = 1i128 << 63;
    vec![
        (Int(0), Int(300), Int(100), I8, vec![0, 100, -56]),
        (
            Int(p - 3),
            Int(p + 2),
            Int(1),
            U64,
            (p - 3..p + 2).collect(),
        ),
        (Float(0.5), Int(3), Int(1), I32, vec![0, 1, 2]),
        (Int(-5), Int(5), Int(4), I16, vec![-5, -1, 3]),
    ]
}

fn check_arange<B: Backend>(c: &mut Checker, dtype: DType, device: &Device) {
    let mut ranges = vec![
        (Scalar::Int(0), Scalar::Int(10), Scalar::Int(3)),
        (Scalar::Int(5), Scalar::Int(5), Scalar::Int(1)),
        (Scalar::Int(7), Scalar::Int(2), Scalar::Int(1)),
    ];
    if dtype == DType::Bool {
        ranges = vec![(Scalar::Int(0), Scalar::Int(2), Scalar::Int(1))];
    }
    if matches!(dtype.kind(), tensorbridge_core::DTypeKind::Signed) || dtype.is_float() {
        ranges.push((Scalar::Int(4), Scalar::Int(-5), Scalar::Int(-2)));
    }
    if dtype.is_float() {
        ranges.push((Scalar::Float(0.5), Scalar::Float(3.0), Scalar::Float(0.75)));
        ranges.push((
            Scalar::Float(-1.0),
            Scalar::Float(1.0),
            Scalar::Float(0.125),
        ));
    }
    for (start, stop, step) in ranges {
        let want = arange_reference(dtype, start, stop, step);
        c.tensor(
            &format!("arange({start:?}, {stop:?}, {step:?}) {dtype}"),
            Tensor::<B>::arange(start, stop, step, Some(dtype), device),
            &want,
            &Tol::Exact,
        );
    }
}

/// `arange` equals NumPy's bit for bit (NumPy computes `start + i * delta` with
/// `delta = (start + step) - start` in the dtype, not `start + i * step` in f64), and its errors
/// are NumPy's.
fn check_numpy_arange<B: Backend>(c: &mut Checker, device: &Device) {
    for (start, stop, step, dtype, bits) in numpy_aranges() {
        let v = bits
            .iter()
            .map(|&b| Value::Float(bits_value(b, dtype)))
            .collect();
        c.tensor(
            &format!("arange({start:?}, {stop:?}, {step:?}) {dtype} is NumPy's"),
            Tensor::<B>::arange(start, stop, step, Some(dtype), device),
            &host_of(dtype, &[bits.len()], v),
            &Tol::Exact,
        );
    }
    for (start, stop, step, dtype, want) in numpy_int_aranges() {
        let n = want.len();
        c.tensor(
            &format!("arange({start:?}, {stop:?}, {step:?}) {dtype} is NumPy's"),
            Tensor::<B>::arange(start, stop, step, Some(dtype), device),
            &host_of(dtype, &[n], want.into_iter().map(Value::Int).collect()),
            &Tol::Exact,
        );
    }
    let p = 1i128 << 63;
    c.tensor(
        "arange(2**63, 2**63 + 3) is float64, as NumPy",
        Tensor::<B>::arange(
            Scalar::Int(p),
            Scalar::Int(p + 3),
            Scalar::Int(1),
            None,
            device,
        ),
        &host_of(DType::F64, &[3], vec![Value::Float(p as f64); 3]),
        &Tol::Exact,
    );
    c.error(
        "arange(250, 270, 10, uint8): 260 does not fit",
        Tensor::<B>::arange(
            Scalar::Int(250),
            Scalar::Int(270),
            Scalar::Int(10),
            Some(DType::U8),
            device,
        ),
        "Error::IntegerOutOfBounds",
        |e| {
            matches!(
                e,
                Error::IntegerOutOfBounds {
                    value: 260,
                    dtype: DType::U8
                }
            )
        },
    );
    c.error(
        "arange(3, bool) has more than two values",
        Tensor::<B>::arange(
            Scalar::Int(0),
            Scalar::Int(3),
            Scalar::Int(1),
            Some(DType::Bool),
            device,
        ),
        "Error::Unsupported",
        |e| matches!(e, Error::Unsupported(_)),
    );
    c.error(
        "arange(0, 2**62) is too big",
        Tensor::<B>::arange(
            Scalar::Int(0),
            Scalar::Int(1 << 62),
            Scalar::Int(1),
            None,
            device,
        ),
        "Error::ShapeTooLarge",
        |e| matches!(e, Error::ShapeTooLarge { .. }),
    );
    for (stop, step) in [
        (Scalar::Float(f64::INFINITY), Scalar::Int(1)),
        (Scalar::Int(3), Scalar::Int(0)),
    ] {
        c.error(
            &format!("arange(0, {stop:?}, {step:?})"),
            Tensor::<B>::arange(Scalar::Int(0), stop, step, None, device),
            "Error::InvalidArgument",
            |e| matches!(e, Error::InvalidArgument(_)),
        );
    }
}

/// Without a dtype, Python ints give int64, floats float64 and bools bool (as NumPy).
fn check_default_dtypes<B: Backend>(c: &mut Checker, device: &Device) {
    for (s, dtype) in [
        (Scalar::Int(7), DType::I64),
        (Scalar::Float(0.25), DType::F64),
        (Scalar::Bool(true), DType::Bool),
    ] {
        c.tensor(
            &format!("full({s:?}) without a dtype"),
            Tensor::<B>::full(&[2], s, None, device),
            &filled(dtype, &[2], Value::of_scalar(s)),
            &Tol::Exact,
        );
    }
    // np.arange(0, 10, 3) and np.arange(0.0, 1, 0.25)
    let ints = host_of(DType::I64, &[4], [0, 3, 6, 9].map(Value::Int).to_vec());
    c.tensor(
        "arange of ints is int64",
        Tensor::<B>::arange(
            Scalar::Int(0),
            Scalar::Int(10),
            Scalar::Int(3),
            None,
            device,
        ),
        &ints,
        &Tol::Exact,
    );
    let floats = host_of(
        DType::F64,
        &[4],
        [0.0, 0.25, 0.5, 0.75].map(Value::Float).to_vec(),
    );
    c.tensor(
        "arange with a float is float64",
        Tensor::<B>::arange(
            Scalar::Float(0.0),
            Scalar::Int(1),
            Scalar::Float(0.25),
            None,
            device,
        ),
        &floats,
        &Tol::Exact,
    );
}
