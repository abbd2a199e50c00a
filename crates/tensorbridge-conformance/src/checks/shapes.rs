//! Shape arithmetic never wraps. A shape whose element count or byte size exceeds `isize::MAX`
//! is `Error::ShapeTooLarge` wherever it is made (NumPy: ValueError "array is too big"); a result
//! that an array could address but the host cannot hold is `Error::TooLarge` before anything is
//! allocated (NumPy: MemoryError). Views of huge shapes within the limit are fine, as in NumPy.

use tensorbridge_core::{Backend, DType, Device, Error, Result, Scalar, Tensor};

use crate::checker::Checker;

fn too_big(e: &Error) -> bool {
    matches!(e, Error::ShapeTooLarge { .. })
}

fn out_of_memory(e: &Error) -> bool {
    matches!(e, Error::TooLarge { .. })
}

/// Every op that makes a shape checks it with exact arithmetic.
pub fn check_shape_overflow<B: Backend>(device: &Device) {
    let mut c = Checker::new("shape overflow");
    if let Err(e) = run::<B>(&mut c, device) {
        c.unexpected("shape overflow setup", e);
    }
    c.finish();
}

fn run<B: Backend>(c: &mut Checker, device: &Device) -> Result<()> {
    let one = Tensor::<B>::full(&[], Scalar::Float(1.0), Some(DType::F64), device)?;
    // np.broadcast_to(1.0, (2**62, 2**62)) and (2**32, 2**31, 2): 2**124 and 2**64 elements
    // wrapped to a size of 0 before.
    for shape in [
        &[1 << 62, 1 << 62][..],
        &[1 << 32, 1 << 31, 2],
        &[1 << 60],
        &[0, 1 << 62, 4],
    ] {
        c.error(
            &format!("broadcast_to({shape:?}) of a float64 scalar"),
            one.broadcast_to(shape),
            "Error::ShapeTooLarge",
            too_big,
        );
    }
    // A view within the limit is fine (np.broadcast_to(np.uint8(1), (2**61, 2))).
    let byte = Tensor::<B>::full(&[], Scalar::Int(1), Some(DType::U8), device)?;
    match byte.broadcast_to(&[1 << 61, 2]) {
        Ok(v) => c.check(
            v.elem_count() == 1 << 62 && v.shape() == [1 << 61, 2],
            "broadcast_to((2**61, 2)) of a uint8 scalar",
            || format!("shape {:?}, {} elements", v.shape(), v.elem_count()),
        ),
        Err(e) => c.unexpected("broadcast_to((2**61, 2)) of a uint8 scalar", e),
    }
    for shape in [
        &[1 << 62, 4][..],
        &[1 << 31, 1 << 31],
        &[0, 1 << 62, 4],
        &[1 << 60],
    ] {
        c.error(
            &format!("zeros({shape:?}, float64)"),
            Tensor::<B>::zeros(shape, DType::F64, device),
            "Error::ShapeTooLarge",
            too_big,
        );
        c.error(
            &format!("full({shape:?}, 1, float64)"),
            Tensor::<B>::full(shape, Scalar::Int(1), Some(DType::F64), device),
            "Error::ShapeTooLarge",
            too_big,
        );
    }
    c.error(
        "arange(2**62) of float64",
        Tensor::<B>::arange(
            Scalar::Int(0),
            Scalar::Int(1 << 62),
            Scalar::Int(1),
            Some(DType::F64),
            device,
        ),
        "Error::ShapeTooLarge",
        too_big,
    );
    // Broadcast operands whose result has 2**80 elements, and results past isize::MAX bytes.
    let col = one.broadcast_to(&[1 << 40, 1])?;
    let row = one.broadcast_to(&[1, 1 << 40])?;
    c.error(
        "(2**40, 1) + (1, 2**40)",
        col.add(&row),
        "Error::ShapeTooLarge",
        too_big,
    );
    c.error(
        "(2**40, 1) == (1, 2**40)",
        col.eq(&row),
        "Error::ShapeTooLarge",
        too_big,
    );
    c.error(
        "(2**40, 1) @ (1, 2**40)",
        col.matmul(&row),
        "Error::ShapeTooLarge",
        too_big,
    );
    let col30 = one.broadcast_to(&[1 << 30, 1])?;
    let row30 = one.broadcast_to(&[1, 1 << 30])?;
    c.error(
        "(2**30, 1) * (1, 2**30) float64",
        col30.mul(&row30),
        "Error::ShapeTooLarge",
        too_big,
    );
    c.error(
        "reshape of 4 elements to (2**62, 2**62)",
        Tensor::<B>::zeros(&[4], DType::F64, device)?.reshape(&[1 << 62, 1 << 62]),
        "a shape error",
        |e| !out_of_memory(e),
    );
    if *device == Device::Cpu {
        // Addressable, but more than any host has: MemoryError, before allocating.
        c.error(
            "zeros((2**57,), float64)",
            Tensor::<B>::zeros(&[1 << 57], DType::F64, device),
            "Error::TooLarge",
            out_of_memory,
        );
        c.error(
            "arange(2**59)",
            Tensor::<B>::arange(
                Scalar::Int(0),
                Scalar::Int(1 << 59),
                Scalar::Int(1),
                None,
                device,
            ),
            "Error::TooLarge",
            out_of_memory,
        );
        let col26 = one.broadcast_to(&[1 << 26, 1])?;
        let row26 = one.broadcast_to(&[1, 1 << 26])?;
        c.error(
            "(2**26, 1) + (1, 2**26)",
            col26.add(&row26),
            "Error::TooLarge",
            out_of_memory,
        );
        let row20 = one.broadcast_to(&[1, 1 << 20])?;
        let col20 = one.broadcast_to(&[1 << 20, 1])?;
        c.error(
            "(2**20, 1) @ (1, 2**20)",
            col20.matmul(&row20),
            "Error::TooLarge",
            out_of_memory,
        );
        let huge = one.broadcast_to(&[1 << 40])?;
        c.error(
            "a (2**40,) view made contiguous",
            huge.contiguous(),
            "Error::TooLarge",
            out_of_memory,
        );
        c.error(
            "a (2**40,) view cast to float32",
            huge.cast(DType::F32),
            "Error::TooLarge",
            out_of_memory,
        );
        c.error(
            "-(a (2**40,) view)",
            huge.neg(),
            "Error::TooLarge",
            out_of_memory,
        );
    }
    Ok(())
}
