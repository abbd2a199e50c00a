//! Invalid operations: each must fail with the typed error that names the problem, never panic
//! and never return a value.

use tensorbridge_core::{Backend, DType, Device, Error, Scalar, Tensor};

use crate::checker::Checker;

fn is_unsupported(e: &Error) -> bool {
    matches!(e, Error::Unsupported(_))
}
fn is_shape_mismatch(e: &Error) -> bool {
    matches!(e, Error::ShapeMismatch { .. })
}
fn is_axis_out_of_range(e: &Error) -> bool {
    matches!(e, Error::AxisOutOfRange { .. })
}
fn is_invalid(e: &Error) -> bool {
    matches!(e, Error::InvalidArgument(_))
}

/// Bool `-`, `max`/`min` of nothing, mismatched matmul and broadcast shapes, bad axes and indices,
/// impossible reshapes and a zero `arange` step are typed errors.
pub fn check_errors<B: Backend>(device: &Device) {
    let mut c = Checker::new("errors");
    bool_arithmetic::<B>(&mut c, device);
    for dtype in DType::ALL {
        empty_reductions::<B>(&mut c, dtype, device);
        shape_errors::<B>(&mut c, dtype, device);
    }
    c.error(
        "arange with step 0",
        Tensor::<B>::arange(Scalar::Int(0), Scalar::Int(3), Scalar::Int(0), None, device),
        "Error::InvalidArgument",
        is_invalid,
    );
    c.error(
        "arange with a NaN bound",
        Tensor::<B>::arange(
            Scalar::Float(0.0),
            Scalar::Float(f64::NAN),
            Scalar::Int(1),
            None,
            device,
        ),
        "Error::InvalidArgument",
        is_invalid,
    );
    c.finish();
}

fn bool_arithmetic<B: Backend>(c: &mut Checker, device: &Device) {
    let b = match Tensor::<B>::ones(&[3], DType::Bool, device) {
        Ok(b) => b,
        Err(e) => return c.unexpected("ones(bool)", e),
    };
    let u = "Error::Unsupported (as NumPy)";
    c.error("bool - bool", b.sub(&b), u, is_unsupported);
    c.error("-bool", b.neg(), u, is_unsupported);
    c.error("bool - True", b.sub_scalar(true), u, is_unsupported);
    c.error("True - bool", b.rsub_scalar(true), u, is_unsupported);
    c.error("bool.T - bool", b.t().sub(&b.t()), u, is_unsupported);
}

fn empty_reductions<B: Backend>(c: &mut Checker, dtype: DType, device: &Device) {
    for shape in [&[0][..], &[2, 0], &[0, 3]] {
        let t = match Tensor::<B>::zeros(shape, dtype, device) {
            Ok(t) => t,
            Err(e) => return c.unexpected(&format!("zeros({shape:?}, {dtype})"), e),
        };
        let ctx =
            |op: &str, axis: Option<isize>| format!("{op}(axis={axis:?}) of {dtype} {shape:?}");
        c.error(
            &ctx("max", None),
            t.max(None, false),
            "an error",
            is_invalid,
        );
        c.error(&ctx("min", None), t.min(None, true), "an error", is_invalid);
        // The reduced axis has length 0 and there are outputs to fill.
        if let Some(axis) = (0..shape.len())
            .find(|&a| shape[a] == 0 && shape.iter().enumerate().all(|(i, &d)| i == a || d > 0))
        {
            let axis = Some(axis as isize);
            if shape.len() > 1 {
                c.error(
                    &ctx("max", axis),
                    t.max(axis, false),
                    "an error",
                    is_invalid,
                );
                c.error(
                    &ctx("min", axis),
                    t.min(axis, false),
                    "an error",
                    is_invalid,
                );
            }
        }
    }
}

fn shape_errors<B: Backend>(c: &mut Checker, dtype: DType, device: &Device) {
    let make = |shape: &[usize]| Tensor::<B>::zeros(shape, dtype, device);
    if let Err(e) = make(&[]) {
        return c.unexpected(&format!("zeros of {dtype}"), e);
    }
    let (a23, a4, a32, a3, s) = match (
        make(&[2, 3]),
        make(&[4]),
        make(&[3, 2]),
        make(&[3]),
        make(&[]),
    ) {
        (Ok(a), Ok(b), Ok(c), Ok(d), Ok(e)) => (a, b, c, d, e),
        _ => return c.fail(&format!("zeros of {dtype}"), "creation failed"),
    };
    let ctx = |what: &str| format!("{what} ({dtype})");
    let shape = "Error::ShapeMismatch";
    let axis = "Error::AxisOutOfRange";
    let invalid = "Error::InvalidArgument";

    c.error(&ctx("[2,3] + [4]"), a23.add(&a4), shape, is_shape_mismatch);
    c.error(
        &ctx("[2,3] * [3,2]"),
        a23.mul(&a32),
        shape,
        is_shape_mismatch,
    );
    c.error(&ctx("[2,3] == [4]"), a23.eq(&a4), shape, is_shape_mismatch);
    c.error(
        &ctx("[2,3] @ [4]"),
        a23.matmul(&a4),
        shape,
        is_shape_mismatch,
    );
    c.error(
        &ctx("[2,3] @ [2,3]"),
        a23.matmul(&a23),
        shape,
        is_shape_mismatch,
    );
    c.error(&ctx("[3] @ [4]"), a3.matmul(&a4), shape, is_shape_mismatch);
    if let (Ok(l), Ok(r)) = (make(&[2, 2, 3]), make(&[3, 3, 2])) {
        c.error(
            &ctx("batch [2] @ batch [3]"),
            l.matmul(&r),
            shape,
            is_shape_mismatch,
        );
    }
    c.error(&ctx("0-d @ [3]"), s.matmul(&a3), invalid, is_invalid);
    c.error(&ctx("[3] @ 0-d"), a3.matmul(&s), invalid, is_invalid);

    c.error(
        &ctx("sum(axis=2) of 2-d"),
        a23.sum(Some(2), false),
        axis,
        is_axis_out_of_range,
    );
    c.error(
        &ctx("mean(axis=-3) of 2-d"),
        a23.mean(Some(-3), true),
        axis,
        is_axis_out_of_range,
    );
    c.error(
        &ctx("max(axis=5) of 2-d"),
        a23.max(Some(5), false),
        axis,
        is_axis_out_of_range,
    );
    c.error(
        &ctx("min(axis=0) of 0-d"),
        s.min(Some(0), false),
        axis,
        is_axis_out_of_range,
    );
    c.error(
        &ctx("transpose(0, 2) of 2-d"),
        a23.transpose(0, 2),
        axis,
        is_axis_out_of_range,
    );
    c.error(
        &ctx("permute([0]) of 2-d"),
        a23.permute(&[0]),
        invalid,
        is_invalid,
    );
    c.error(
        &ctx("permute([1, -1]) of 2-d"),
        a23.permute(&[1, -1]),
        invalid,
        is_invalid,
    );
    c.error(
        &ctx("permute([0, 2]) of 2-d"),
        a23.permute(&[0, 2]),
        axis,
        is_axis_out_of_range,
    );
    c.error(
        &ctx("select(2, 0) of 2-d"),
        a23.select(2, 0),
        axis,
        is_axis_out_of_range,
    );
    c.error(
        &ctx("select(0, 2) of [2,3]"),
        a23.select(0, 2),
        "Error::IndexOutOfRange",
        |e| {
            matches!(
                e,
                Error::IndexOutOfRange {
                    index: 2,
                    axis: 0,
                    size: 2
                }
            )
        },
    );
    c.error(
        &ctx("select(1, -4) of [2,3]"),
        a23.select(1, -4),
        "Error::IndexOutOfRange",
        |e| matches!(e, Error::IndexOutOfRange { .. }),
    );
    c.error(
        &ctx("squeeze(1) of [2,3]"),
        a23.squeeze(Some(1)),
        invalid,
        is_invalid,
    );
    c.error(
        &ctx("unsqueeze(3) of 2-d"),
        a23.unsqueeze(3),
        axis,
        is_axis_out_of_range,
    );
    c.error(
        &ctx("slice step 0"),
        a23.slice(0, None, None, 0),
        invalid,
        is_invalid,
    );
    c.error(
        &ctx("slice(axis=2) of 2-d"),
        a23.slice(2, None, None, 1),
        axis,
        is_axis_out_of_range,
    );
    c.error(
        &ctx("reshape [2,3] to [4,2]"),
        a23.reshape(&[4, 2]),
        "Error::ElementCount",
        |e| matches!(e, Error::ElementCount { .. }),
    );
    c.error(
        &ctx("reshape of .T to [5,-1]"),
        a23.t().reshape(&[5, -1]),
        "Error::ElementCount",
        |e| matches!(e, Error::ElementCount { .. }),
    );
    c.error(
        &ctx("reshape [-1,-1]"),
        a23.reshape(&[-1, -1]),
        invalid,
        is_invalid,
    );
    c.error(
        &ctx("broadcast_to [2,3] -> [3]"),
        a23.broadcast_to(&[3]),
        shape,
        is_shape_mismatch,
    );
    c.error(
        &ctx("broadcast_to [2,3] -> [2,4]"),
        a23.broadcast_to(&[2, 4]),
        shape,
        is_shape_mismatch,
    );
    c.error(
        &ctx("broadcast_to [4] -> [2,3]"),
        a4.broadcast_to(&[2, 3]),
        shape,
        is_shape_mismatch,
    );
}
