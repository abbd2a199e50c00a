//! The product: the three host transfers (`to_host_array::<T>`, `to_host` / `to_host_as`,
//! `to_host_into`) and `into_host_array`, on every layout and dtype, with their errors.

use ndarray::{ArrayD, ArrayViewMutD, IxDyn, Slice};
use tensorbridge_core::{with_dtype, Backend, DType, Device, Element, Error, HostArray, Tensor};

use crate::checker::{read_back, Checker, Tol};
use crate::fixtures::{fixture, Dist, CASES, LARGE};
use crate::reference;
use crate::rng::Lcg;

/// A non-contiguous window of `buf`: every axis walked backwards, the first one in steps of two,
/// with the axes reversed. `buf` has the reversed shape of the window, its first axis doubled.
fn strided_window<T>(buf: &mut ArrayD<T>) -> ArrayViewMutD<'_, T> {
    buf.slice_each_axis_mut(|ax| Slice::new(0, None, if ax.axis.0 == 0 { -2 } else { -1 }))
        .reversed_axes()
}

/// The shape of the buffer [`strided_window`] cuts a window of `shape` from.
fn window_buffer_shape(shape: &[usize]) -> Vec<usize> {
    let mut buf: Vec<usize> = shape.iter().rev().copied().collect();
    if let Some(first) = buf.first_mut() {
        *first *= 2;
    }
    buf
}

/// `to_host_into` writes exactly the window's elements, converted to `T`, and nothing else.
fn check_into_strided<B: Backend, T: Element>(
    c: &mut Checker,
    ctx: &str,
    t: &Tensor<B>,
    h: &HostArray,
) {
    let ctx = format!("to_host_into::<{}> strided window {ctx}", T::DTYPE);
    let want: ArrayD<T> = reference::cast(h, T::DTYPE)
        .into_typed()
        .expect("cast gives the requested dtype");
    let sentinel = T::from_i128(77);
    let mut buf = ArrayD::from_elem(IxDyn(&window_buffer_shape(t.shape())), sentinel);
    let mut expected = buf.clone();
    strided_window(&mut expected).assign(&want);
    if let Err(e) = t.to_host_into(&mut strided_window(&mut buf)) {
        return c.unexpected(&ctx, e);
    }
    c.host(
        &ctx,
        Ok(HostArray::from(buf)),
        &HostArray::from(expected),
        &Tol::Exact,
    );

    let wrong_shape = if t.shape() == [2] { vec![1] } else { vec![2] };
    let mut wrong = ArrayD::from_elem(IxDyn(&wrong_shape), sentinel);
    c.error(
        &format!("{ctx} into a buffer of shape {wrong_shape:?}"),
        t.to_host_into(&mut wrong.view_mut()),
        "Error::ShapeMismatch",
        |e| matches!(e, Error::ShapeMismatch { .. }),
    );
}

/// Every transfer gives the view's values (only the view's), in the tensor's dtype or the one
/// asked for; a typed read of the wrong dtype is `DTypeMismatch` and a wrongly shaped buffer
/// `ShapeMismatch`.
pub fn check_host_transfers<B: Backend>(device: &Device) {
    let mut c = Checker::new("host transfers");
    let mut rng = Lcg::new(0x70);
    for (i, dtype) in DType::ALL.into_iter().enumerate() {
        for (j, case) in CASES.iter().enumerate() {
            let ctx = format!("{dtype} {}", case.name);
            let (t, h) = match fixture::<B>(case, dtype, Dist::Full, &mut rng, device) {
                Ok(f) => f,
                Err(e) => {
                    c.unexpected(&ctx, e);
                    continue;
                }
            };
            c.host(
                &format!("to_host_array {ctx}"),
                read_back(&t),
                &h,
                &Tol::Exact,
            );
            let other = DType::ALL[(i + j + 1) % DType::ALL.len()];
            c.error(
                &format!("to_host_array::<{other}> of {ctx}"),
                with_dtype!(other, T => t.to_host_array::<T>().map(drop)),
                "Error::DTypeMismatch",
                |e| {
                    matches!(e, Error::DTypeMismatch { actual, requested, .. }
                        if *actual == dtype && *requested == other)
                },
            );
            c.host(&format!("to_host {ctx}"), t.to_host(), &h, &Tol::Exact);
            for to in DType::ALL {
                c.host(
                    &format!("to_host_as({to}) {ctx}"),
                    t.to_host_as(to),
                    &reference::cast(&h, to),
                    &Tol::Exact,
                );
            }
            with_dtype!(dtype, T => {
                c.host(
                    &format!("into_host_array of a shared tensor {ctx}"),
                    t.clone().into_host_array::<T>().map(HostArray::from),
                    &h,
                    &Tol::Exact,
                );
                check_into_strided::<B, T>(&mut c, &ctx, &t, &h);
            });
            check_into_strided::<B, f64>(&mut c, &ctx, &t, &h);
            // A uniquely owned tensor may hand its storage over; the values are the same.
            if let Ok((owned, h)) = fixture::<B>(case, dtype, Dist::Full, &mut rng, device) {
                with_dtype!(dtype, T => c.host(
                    &format!("into_host_array of a unique tensor {ctx}"),
                    owned.into_host_array::<T>().map(HostArray::from),
                    &h,
                    &Tol::Exact,
                ));
            }
        }
    }
    large_transfers::<B>(&mut c, &mut rng, device);
    c.finish();
}

/// The blocked, tiled and parallel copy paths give the same values as the small ones. Copy
/// kernels depend on the element width and on the conversion, so one dtype per width (plus bool
/// and bfloat16, which have their own conversions) keeps this affordable in debug builds.
fn large_transfers<B: Backend>(c: &mut Checker, rng: &mut Lcg, device: &Device) {
    use DType::*;
    for (i, dtype) in [Bool, U8, I16, BF16, F32, I64, F64].into_iter().enumerate() {
        for case in &LARGE {
            let ctx = format!("{dtype} {}", case.name);
            let (t, h) = match fixture::<B>(case, dtype, Dist::Full, rng, device) {
                Ok(f) => f,
                Err(e) => {
                    c.unexpected(&ctx, e);
                    continue;
                }
            };
            c.host(
                &format!("to_host_array {ctx}"),
                read_back(&t),
                &h,
                &Tol::Exact,
            );
            let to = [F32, F64, U8, F32, F16, F32, I32][i];
            c.host(
                &format!("to_host_as({to}) {ctx}"),
                t.to_host_as(to),
                &reference::cast(&h, to),
                &Tol::Exact,
            );
            c.tensor(
                &format!("contiguous() {ctx}"),
                t.contiguous(),
                &h,
                &Tol::Exact,
            );
            with_dtype!(dtype, T => check_into_strided::<B, T>(c, &ctx, &t, &h));
        }
    }
}
