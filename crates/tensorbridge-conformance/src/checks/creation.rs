//! Creation: host data in (`from_slice`, `from_host`, `from_array`, `scalar`), fills (`zeros`,
//! `ones`, `full`) and `arange`.

use ndarray::{ArrayD, Axis, IxDyn, ShapeBuilder, Slice};
use tensorbridge_core::{
    with_dtype, Backend, DType, Device, Element, Error, HostArray, Scalar, Tensor,
};

use crate::checker::{Checker, Tol};
use crate::fixtures::{random_host, Dist};
use crate::reference::{host_of, Value};
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

/// NumPy's `arange` length, `ceil((stop - start) / step)`, with values `start + i * step`.
fn arange_reference(dtype: DType, start: f64, stop: f64, step: f64) -> HostArray {
    let n = ((stop - start) / step).ceil().max(0.0) as usize;
    let v = (0..n)
        .map(|i| Value::Float(start + i as f64 * step))
        .collect();
    host_of(dtype, &[n], v)
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
        let want = arange_reference(dtype, start.to_f64(), stop.to_f64(), step.to_f64());
        c.tensor(
            &format!("arange({start:?}, {stop:?}, {step:?}) {dtype}"),
            Tensor::<B>::arange(start, stop, step, Some(dtype), device),
            &want,
            &Tol::Exact,
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
