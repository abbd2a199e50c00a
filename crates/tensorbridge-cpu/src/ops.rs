//! The CPU backend's ops: one generic function per op over strided `ndarray` views; the dtype
//! dispatch happens once, in `lib.rs`.

use std::mem::MaybeUninit;

use ndarray::{ArrayViewD, ArrayViewMutD, Axis, IxDyn, Zip};
use tensorbridge_core::host::{convert, strided_view};
use tensorbridge_core::{
    BinaryOp, CmpOp, DType, Element, Error, Layout, ReduceOp, Result, UnaryOp,
};

use tensorbridge_core::memory_guard::try_alloc;

use crate::{Cpu, CpuElement};

/// Fills a new contiguous buffer of `shape` through `fill`, which must write every element.
fn build<U: CpuElement>(
    op: &'static str,
    shape: &[usize],
    fill: impl FnOnce(ArrayViewMutD<'_, MaybeUninit<U>>),
) -> Result<Cpu> {
    let n: usize = shape.iter().product();
    let mut v = try_alloc::<U>(op, shape)?;
    let spare = &mut v.spare_capacity_mut()[..n];
    let out = ArrayViewMutD::from_shape(IxDyn(shape), spare)
        .map_err(|e| Error::InvalidArgument(format!("{op}: {e}")))?;
    fill(out);
    // SAFETY: `fill` is a `Zip::for_each` over `out`, which visits each of its `n` elements
    // exactly once and writes it; so the first `n` elements are initialised.
    unsafe { v.set_len(n) };
    Ok(Cpu::from_vec(v))
}

pub(crate) fn unary<T: CpuElement>(data: &[T], layout: &Layout, op: UnaryOp) -> Result<Cpu> {
    let a = strided_view(data, layout)?;
    let f: fn(T) -> T = match op {
        UnaryOp::Neg => Element::neg,
        UnaryOp::Abs => Element::abs,
        _ => T::transcendental(op).ok_or(Error::UnsupportedDType {
            op: "exp/log/sqrt",
            dtype: T::DTYPE,
        })?,
    };
    build::<T>("unary", layout.shape(), |out| {
        Zip::from(out).and(&a).for_each(|o, &x| {
            o.write(f(x));
        })
    })
}

pub(crate) fn binary<T: CpuElement>(
    lhs: &[T],
    ll: &Layout,
    rhs: &[T],
    rl: &Layout,
    op: BinaryOp,
) -> Result<Cpu> {
    let (a, b) = (strided_view(lhs, ll)?, strided_view(rhs, rl)?);
    check_same_shape(&a, &b, "binary")?;
    let f: fn(T, T) -> T = match op {
        BinaryOp::Add => Element::add,
        BinaryOp::Sub => Element::sub,
        BinaryOp::Mul => Element::mul,
        BinaryOp::Div => Element::div,
    };
    build::<T>("binary", ll.shape(), |out| {
        Zip::from(out).and(&a).and(&b).for_each(|o, &x, &y| {
            o.write(f(x, y));
        })
    })
}

pub(crate) fn compare<T: CpuElement>(
    lhs: &[T],
    ll: &Layout,
    rhs: &[T],
    rl: &Layout,
    op: CmpOp,
) -> Result<Cpu> {
    let (a, b) = (strided_view(lhs, ll)?, strided_view(rhs, rl)?);
    check_same_shape(&a, &b, "compare")?;
    let f: fn(&T, &T) -> bool = match op {
        CmpOp::Eq => PartialEq::eq,
        CmpOp::Lt => PartialOrd::lt,
        CmpOp::Gt => PartialOrd::gt,
    };
    build::<bool>("compare", ll.shape(), |out| {
        Zip::from(out).and(&a).and(&b).for_each(|o, x, y| {
            o.write(f(x, y));
        })
    })
}

fn check_same_shape<T>(
    a: &ArrayViewD<'_, T>,
    b: &ArrayViewD<'_, T>,
    op: &'static str,
) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(Error::ShapeMismatch {
            op,
            lhs: a.shape().to_vec(),
            rhs: b.shape().to_vec(),
        });
    }
    Ok(())
}

/// `[b.., m, k] @ [b.., k, n]`: f32/f64 through `ndarray`'s blocked GEMM, f16/bf16 computed in
/// f32 and rounded once, integers and bool with the dtype's own (wrapping / logical) arithmetic.
pub(crate) fn matmul<T: CpuElement>(lhs: &[T], ll: &Layout, rhs: &[T], rl: &Layout) -> Result<Cpu> {
    let nd = ll.ndim();
    if nd < 2 || rl.ndim() != nd || ll.shape()[..nd - 2] != rl.shape()[..nd - 2] {
        return Err(Error::ShapeMismatch {
            op: "matmul",
            lhs: ll.shape().to_vec(),
            rhs: rl.shape().to_vec(),
        });
    }
    let (m, k, n) = (ll.shape()[nd - 2], ll.shape()[nd - 1], rl.shape()[nd - 1]);
    if rl.shape()[nd - 2] != k {
        return Err(Error::ShapeMismatch {
            op: "matmul",
            lhs: ll.shape().to_vec(),
            rhs: rl.shape().to_vec(),
        });
    }
    let batch: Vec<usize> = ll.shape()[..nd - 2].to_vec();
    let mut out_shape = batch.clone();
    out_shape.extend([m, n]);
    let mut out = try_alloc::<T>("matmul", &out_shape)?;
    let batches: usize = batch.iter().product();
    for bi in 0..batches {
        let (la, lb) = (select_batch(ll, &batch, bi)?, select_batch(rl, &batch, bi)?);
        let (a, b) = (strided_view(lhs, &la)?, strided_view(rhs, &lb)?);
        let a = a.into_dimensionality::<ndarray::Ix2>().map_err(shape_err)?;
        let b = b.into_dimensionality::<ndarray::Ix2>().map_err(shape_err)?;
        matmul_2d(a, b, &mut out)?;
    }
    Ok(Cpu::from_vec(out))
}

fn shape_err(e: ndarray::ShapeError) -> Error {
    Error::InvalidArgument(format!("matmul: {e}"))
}

/// The 2-D layout of batch `index` (row-major over the batch shape).
fn select_batch(l: &Layout, batch: &[usize], mut index: usize) -> Result<Layout> {
    let mut idx = vec![0usize; batch.len()];
    for (i, &d) in batch.iter().enumerate().rev() {
        idx[i] = index % d;
        index /= d;
    }
    let mut l = l.clone();
    for &i in &idx {
        l = l.select(0, i as isize)?;
    }
    Ok(l)
}

fn matmul_2d<T: CpuElement>(
    a: ndarray::ArrayView2<'_, T>,
    b: ndarray::ArrayView2<'_, T>,
    out: &mut Vec<T>,
) -> Result<()> {
    let (m, n) = (a.nrows(), b.ncols());
    match T::DTYPE {
        DType::F64 => gemm_in::<T, f64>(a, b, out)?,
        DType::F32 | DType::F16 | DType::BF16 => gemm_in::<T, f32>(a, b, out)?,
        _ => {
            let start = out.len();
            out.resize(start + m * n, T::ZERO);
            let c = &mut out[start..];
            for i in 0..m {
                let row = &mut c[i * n..(i + 1) * n];
                for (p, &x) in a.row(i).iter().enumerate() {
                    for (o, &y) in row.iter_mut().zip(b.row(p).iter()) {
                        *o = o.add(x.mul(y));
                    }
                }
            }
        }
    }
    Ok(())
}

/// `a @ b` computed in `F` by ndarray's blocked GEMM and appended to `out` rounded to `T`. Every
/// temporary goes through the memory guard, so a product too large for the host is an error,
/// not an abort.
fn gemm_in<T: CpuElement, F: Element + ndarray::LinalgScalar>(
    a: ndarray::ArrayView2<'_, T>,
    b: ndarray::ArrayView2<'_, T>,
    out: &mut Vec<T>,
) -> Result<()> {
    let widen = |x: ndarray::ArrayView2<'_, T>| -> Result<ndarray::Array2<F>> {
        let mut v = try_alloc::<F>("matmul", x.shape())?;
        v.extend(x.iter().map(|&e| convert::<T, F>(e)));
        ndarray::Array2::from_shape_vec(x.raw_dim(), v).map_err(shape_err)
    };
    let (a, b) = (widen(a)?, widen(b)?);
    let (m, n) = (a.nrows(), b.ncols());
    let c = tensorbridge_core::memory_guard::try_filled::<F>("matmul", &[m, n], F::zero())?;
    let mut c = ndarray::Array2::from_shape_vec((m, n), c).map_err(shape_err)?;
    ndarray::linalg::general_mat_mul(F::one(), &a, &b, F::zero(), &mut c);
    out.extend(c.iter().map(|&x| convert::<F, T>(x)));
    Ok(())
}

/// Reductions: floats accumulate in f64 and round once; integers accumulate in the output dtype
/// (int64/uint64, wrapping as NumPy); max/min propagate NaN.
pub(crate) fn reduce<T: CpuElement, O: CpuElement>(
    data: &[T],
    layout: &Layout,
    op: ReduceOp,
    axis: Option<usize>,
) -> Result<Cpu> {
    let a = strided_view(data, layout)?;
    let fold = |lane: ndarray::ArrayViewD<'_, T>| -> O { reduce_lane::<T, O>(lane, op) };
    match axis {
        None => Ok(Cpu::from_vec(vec![fold(a.view())])),
        Some(ax) => {
            let mut out_shape = layout.shape().to_vec();
            out_shape.remove(ax);
            let lanes = a.lanes(Axis(ax));
            build::<O>("reduce", &out_shape, |out| {
                Zip::from(out).and(lanes).for_each(|o, lane| {
                    o.write(fold(lane.into_dyn()));
                })
            })
        }
    }
}

fn reduce_lane<T: CpuElement, O: CpuElement>(lane: ArrayViewD<'_, T>, op: ReduceOp) -> O {
    let n = lane.len();
    match op {
        ReduceOp::Sum | ReduceOp::Mean if O::DTYPE.is_float() => {
            // Fold from +0.0 like NumPy (`Iterator::sum` of floats starts at -0.0, so an empty
            // sum would be -0.0).
            let s: f64 = lane.iter().fold(0.0, |acc, &x| acc + x.to_f64());
            let v = if op == ReduceOp::Mean {
                s / n as f64
            } else {
                s
            };
            O::from_f64(v)
        }
        ReduceOp::Sum | ReduceOp::Mean => lane
            .iter()
            .fold(O::ZERO, |acc, &x| acc.add(convert::<T, O>(x))),
        ReduceOp::Max | ReduceOp::Min => {
            let mut it = lane.iter().copied();
            let first = it.next().unwrap_or(T::ZERO);
            let r = if op == ReduceOp::Max {
                it.fold(first, Element::max_nan)
            } else {
                it.fold(first, Element::min_nan)
            };
            convert::<T, O>(r)
        }
    }
}
