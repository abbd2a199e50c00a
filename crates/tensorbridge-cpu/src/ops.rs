//! The CPU backend's ops: one generic function per op over strided `ndarray` views; the dtype
//! dispatch happens once, in `lib.rs`.
//!
//! Elementwise ops (`unary`, `binary`, `compare`) share [`map1`] / [`map2`]: the element function
//! is a generic parameter (a fn item or closure, never a fn pointer), so it inlines and the dense
//! loops vectorise; dense and broadcast-scalar operands take flat slice loops, everything else an
//! `ndarray::Zip` over the strided views; large outputs are filled by the rayon pool in chunks,
//! which also spreads the first-touch page faults of the fresh output over the threads.

use std::mem::MaybeUninit;

use ndarray::{ArrayViewD, ArrayViewMutD, Axis, IxDyn, Zip};
use tensorbridge_core::host::{convert, for_each_chunk_mut, strided_view};
use tensorbridge_core::{
    BinaryOp, CmpOp, DType, Element, Error, Layout, ReduceOp, Result, UnaryOp,
};

use tensorbridge_core::memory_guard::try_alloc;

use crate::{try_vec, Cpu, CpuElement};

/// Elementwise ops on fewer elements run on the calling thread (a rayon dispatch costs a few µs).
const PARALLEL_MIN_ELEMS: usize = 1 << 16;
/// Elements per parallel work item of an elementwise op (128 KiB of f32: a few per thread even at
/// the parallel threshold, and enough to amortise a task).
const CHUNK: usize = 1 << 15;

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
    // SAFETY: every caller's `fill` is a `Zip::for_each`/`par_for_each` over `out` or
    // `fill_flat` over its slice, each of which visits each of its `n` elements exactly once and
    // writes it; so the first `n` elements are initialised.
    unsafe { v.set_len(n) };
    Ok(Cpu::from_vec(v))
}

/// Calls `body(start, chunk)` for consecutive chunks of `out` covering it exactly once: on the
/// calling thread for small outputs, shared with the pool threads for large ones (the caller
/// works too, and never waits for a pool thread that has not started).
fn fill_flat<U: Send>(
    out: &mut [MaybeUninit<U>],
    body: impl Fn(usize, &mut [MaybeUninit<U>]) + Sync + Send,
) {
    if out.len() < PARALLEL_MIN_ELEMS {
        body(0, out);
    } else {
        for_each_chunk_mut(out, CHUNK, &body);
    }
}

/// How an operand's elements are laid out, for the flat fast paths.
enum Operand<'a, T> {
    /// Row-major dense: element `i` of the result reads `s[i]`.
    Dense(&'a [T]),
    /// One value broadcast to every element (all strides of non-trivial axes are 0).
    Splat(T),
    /// Anything else: read through a strided view.
    Strided,
}

fn operand<'a, T: Copy>(data: &'a [T], layout: &Layout) -> Operand<'a, T> {
    let n = layout.elem_count();
    if n == 0 {
        return Operand::Strided;
    }
    if layout.is_contiguous() {
        if let Some(s) = data.get(layout.offset()..layout.offset() + n) {
            return Operand::Dense(s);
        }
    }
    let splat = layout
        .shape()
        .iter()
        .zip(layout.strides())
        .all(|(&d, &s)| d == 1 || s == 0);
    match data.get(layout.offset()) {
        Some(&v) if splat => Operand::Splat(v),
        _ => Operand::Strided,
    }
}

/// `f` of every element of the `layout` view of `data`, as a new contiguous buffer.
fn map1<T: CpuElement, U: CpuElement>(
    op: &'static str,
    data: &[T],
    layout: &Layout,
    f: impl Fn(T) -> U + Sync + Send + Copy,
) -> Result<Cpu> {
    match operand(data, layout) {
        Operand::Dense(a) => flat::<U>(op, layout.shape(), |start, out| {
            for (o, &x) in out.iter_mut().zip(&a[start..]) {
                o.write(f(x));
            }
        }),
        Operand::Splat(x) => {
            let v = f(x);
            flat::<U>(op, layout.shape(), |_, out| {
                for o in out {
                    o.write(v);
                }
            })
        }
        Operand::Strided => {
            let a = strided_view(data, layout)?;
            build::<U>(op, layout.shape(), |out| {
                let z = Zip::from(out).and(&a);
                if a.len() < PARALLEL_MIN_ELEMS {
                    z.for_each(|o, &x| {
                        o.write(f(x));
                    })
                } else {
                    z.par_for_each(|o, &x| {
                        o.write(f(x));
                    })
                }
            })
        }
    }
}

/// `f(lhs, rhs)` elementwise over two views of the same shape, as a new contiguous buffer.
fn map2<T: CpuElement, U: CpuElement>(
    op: &'static str,
    lhs: &[T],
    ll: &Layout,
    rhs: &[T],
    rl: &Layout,
    f: impl Fn(T, T) -> U + Sync + Send + Copy,
) -> Result<Cpu> {
    if ll.shape() != rl.shape() {
        return Err(Error::ShapeMismatch {
            op,
            lhs: ll.shape().to_vec(),
            rhs: rl.shape().to_vec(),
        });
    }
    let shape = ll.shape();
    match (operand(lhs, ll), operand(rhs, rl)) {
        (Operand::Dense(a), Operand::Dense(b)) => flat::<U>(op, shape, |start, out| {
            let (a, b) = (&a[start..start + out.len()], &b[start..start + out.len()]);
            for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                o.write(f(x, y));
            }
        }),
        (Operand::Dense(a), Operand::Splat(y)) => flat::<U>(op, shape, |start, out| {
            for (o, &x) in out.iter_mut().zip(&a[start..]) {
                o.write(f(x, y));
            }
        }),
        (Operand::Splat(x), Operand::Dense(b)) => flat::<U>(op, shape, |start, out| {
            for (o, &y) in out.iter_mut().zip(&b[start..]) {
                o.write(f(x, y));
            }
        }),
        _ => {
            let (a, b) = (strided_view(lhs, ll)?, strided_view(rhs, rl)?);
            build::<U>(op, shape, |out| {
                let z = Zip::from(out).and(&a).and(&b);
                if a.len() < PARALLEL_MIN_ELEMS {
                    z.for_each(|o, &x, &y| {
                        o.write(f(x, y));
                    })
                } else {
                    z.par_for_each(|o, &x, &y| {
                        o.write(f(x, y));
                    })
                }
            })
        }
    }
}

/// A new contiguous buffer of `shape` filled chunk by chunk by `body(start, chunk)`, which must
/// write every element of its chunk.
fn flat<U: CpuElement>(
    op: &'static str,
    shape: &[usize],
    body: impl Fn(usize, &mut [MaybeUninit<U>]) + Sync + Send,
) -> Result<Cpu> {
    let n: usize = shape.iter().product();
    let mut v = try_vec::<U>(op, shape, n)?;
    fill_flat(&mut v.spare_capacity_mut()[..n], body);
    // SAFETY: `fill_flat` hands `body` chunks that cover the first `n` elements exactly once, and
    // every `body` of this module writes each element of its chunk (its loops zip the chunk with
    // an operand slice at least as long: `operand` returns `Dense` only for `n` elements).
    unsafe { v.set_len(n) };
    Ok(Cpu::from_vec(v))
}

pub(crate) fn unary<T: CpuElement>(data: &[T], layout: &Layout, op: UnaryOp) -> Result<Cpu> {
    match op {
        UnaryOp::Neg => map1("unary", data, layout, <T as Element>::neg),
        UnaryOp::Abs => map1("unary", data, layout, <T as Element>::abs),
        _ => {
            let f = T::transcendental(op).ok_or(Error::UnsupportedDType {
                op: "exp/log/sqrt",
                dtype: T::DTYPE,
            })?;
            map1("unary", data, layout, f)
        }
    }
}

pub(crate) fn binary<T: CpuElement>(
    lhs: &[T],
    ll: &Layout,
    rhs: &[T],
    rl: &Layout,
    op: BinaryOp,
) -> Result<Cpu> {
    match op {
        BinaryOp::Add => map2("binary", lhs, ll, rhs, rl, <T as Element>::add),
        BinaryOp::Sub => map2("binary", lhs, ll, rhs, rl, <T as Element>::sub),
        BinaryOp::Mul => map2("binary", lhs, ll, rhs, rl, <T as Element>::mul),
        BinaryOp::Div => map2("binary", lhs, ll, rhs, rl, <T as Element>::div),
    }
}

pub(crate) fn compare<T: CpuElement>(
    lhs: &[T],
    ll: &Layout,
    rhs: &[T],
    rl: &Layout,
    op: CmpOp,
) -> Result<Cpu> {
    match op {
        CmpOp::Eq => map2("compare", lhs, ll, rhs, rl, |x: T, y: T| x == y),
        CmpOp::Lt => map2("compare", lhs, ll, rhs, rl, |x: T, y: T| x < y),
        CmpOp::Gt => map2("compare", lhs, ll, rhs, rl, |x: T, y: T| x > y),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use half::bf16;

    /// `[r, c]` views of a buffer of `r * c + 1` elements, one per operand kind of `map1`/`map2`:
    /// dense at offset 0 and 1, a transposed (strided) view, a broadcast scalar, a flipped view.
    fn views(r: usize, c: usize) -> Vec<(&'static str, Layout)> {
        let s = vec![r, c];
        vec![
            ("dense", Layout::contiguous(&s)),
            (
                "dense+1",
                Layout::new(s.clone(), vec![c as isize, 1], 1).unwrap(),
            ),
            ("transposed", Layout::contiguous(&[c, r]).reversed_axes()),
            ("splat", Layout::new(s.clone(), vec![0, 0], 3).unwrap()),
            (
                "flipped",
                Layout::contiguous(&s).slice(1, None, None, -1).unwrap(),
            ),
        ]
    }

    /// The logical elements of a view, row-major.
    fn elems<T: Copy>(data: &[T], l: &Layout) -> Vec<T> {
        strided_view(data, l).unwrap().iter().copied().collect()
    }

    fn check_binary<T: CpuElement>(
        a: &[T],
        b: &[T],
        r: usize,
        c: usize,
        op: BinaryOp,
        f: fn(T, T) -> T,
    ) {
        for (na, la) in views(r, c) {
            for (nb, lb) in views(r, c) {
                let got = binary(a, &la, b, &lb, op).unwrap();
                let want: Vec<T> = elems(a, &la)
                    .into_iter()
                    .zip(elems(b, &lb))
                    .map(|(x, y)| f(x, y))
                    .collect();
                let got = got.as_slice::<T>().unwrap();
                assert!(
                    got.len() == want.len()
                        && got
                            .iter()
                            .zip(&want)
                            .all(|(g, w)| g.to_f64().to_bits() == w.to_f64().to_bits()),
                    "{op:?} {} {na} {nb} {r}x{c}",
                    T::DTYPE
                );
            }
        }
    }

    #[test]
    fn every_operand_kind_matches_an_elementwise_reference_serial_and_parallel() {
        // 3 × 5 runs on the calling thread; 517 × 301 (above PARALLEL_MIN_ELEMS, not a multiple
        // of CHUNK) in parallel chunks, the strided cases through `par_for_each`.
        for (r, c) in [(3, 5), (517, 301)] {
            let n = r * c + 1;
            let a: Vec<i32> = (0..n as i32)
                .map(|i| i.wrapping_mul(-1_640_531_535) >> 9)
                .collect();
            let b: Vec<i32> = (0..n as i32).map(|i| (i % 97) - 48).collect();
            check_binary(&a, &b, r, c, BinaryOp::Add, Element::add);
            check_binary(&a, &b, r, c, BinaryOp::Sub, Element::sub);
            check_binary(&a, &b, r, c, BinaryOp::Div, Element::div);
            let fa: Vec<f32> = a.iter().map(|&x| x as f32 * 0.25).collect();
            let fb: Vec<f32> = b.iter().map(|&x| x as f32).collect();
            check_binary(&fa, &fb, r, c, BinaryOp::Mul, Element::mul);
            check_binary(&fa, &fb, r, c, BinaryOp::Div, Element::div);
            let ha: Vec<bf16> = fa.iter().map(|&x| bf16::from_f32(x)).collect();
            let hb: Vec<bf16> = fb.iter().map(|&x| bf16::from_f32(x)).collect();
            check_binary(&ha, &hb, r, c, BinaryOp::Add, Element::add);
            let ba: Vec<bool> = b.iter().map(|&x| x > 0).collect();
            let bb: Vec<bool> = a.iter().map(|&x| x % 2 == 0).collect();
            check_binary(&ba, &bb, r, c, BinaryOp::Mul, Element::mul);

            for (name, l) in views(r, c) {
                let got = unary(&fa, &l, UnaryOp::Neg).unwrap();
                let want: Vec<f32> = elems(&fa, &l).iter().map(|&x| -x).collect();
                assert_eq!(got.as_slice::<f32>().unwrap(), &want[..], "neg {name}");
                let got = unary(&fa, &l, UnaryOp::Sqrt).unwrap();
                let want: Vec<u32> = elems(&fa, &l).iter().map(|&x| x.sqrt().to_bits()).collect();
                let got: Vec<u32> = got
                    .as_slice::<f32>()
                    .unwrap()
                    .iter()
                    .map(|x| x.to_bits())
                    .collect();
                assert_eq!(got, want, "sqrt {name}");
                let got = unary(&a, &l, UnaryOp::Abs).unwrap();
                let want: Vec<i32> = elems(&a, &l).iter().map(|&x| x.wrapping_abs()).collect();
                assert_eq!(got.as_slice::<i32>().unwrap(), &want[..], "abs {name}");
                for (nb, lb) in views(r, c) {
                    let got = compare(&a, &l, &b, &lb, CmpOp::Lt).unwrap();
                    let want: Vec<bool> = elems(&a, &l)
                        .iter()
                        .zip(elems(&b, &lb))
                        .map(|(&x, y)| x < y)
                        .collect();
                    assert_eq!(got.as_slice::<bool>().unwrap(), &want[..], "lt {name} {nb}");
                }
            }
        }
    }

    #[test]
    fn outputs_in_recycled_buffers_hold_only_their_own_values() {
        use tensorbridge_core::{Device, Tensor};
        // 5 MiB outputs: freed storage goes to the core's buffer cache and the next output of
        // that size (any 4-byte dtype) is written over the old bytes.
        let n = 5 << 18;
        let a = Tensor::<Cpu>::from_slice(&vec![3.0f32; n], &[n], &Device::Cpu).unwrap();
        let b = Tensor::<Cpu>::from_slice(&vec![0.5f32; n], &[n], &Device::Cpu).unwrap();
        for round in 0..3 {
            let sum = a.add(&b).unwrap();
            assert!(
                sum.host_view::<f32>().unwrap().iter().all(|&x| x == 3.5),
                "{round}"
            );
            drop(sum);
            let cmp = a.lt(&b).unwrap(); // 1-byte outputs: another alignment class
            assert!(
                cmp.host_view::<bool>().unwrap().iter().all(|&x| !x),
                "{round}"
            );
            drop(cmp);
            let ints = a.cast(DType::I32).unwrap();
            assert!(
                ints.host_view::<i32>().unwrap().iter().all(|&x| x == 3),
                "{round}"
            );
        }
    }

    #[test]
    fn empty_and_mismatched_operands() {
        let e = Layout::contiguous(&[0, 3]);
        let got = binary::<f32>(&[], &e, &[], &e, BinaryOp::Add).unwrap();
        assert_eq!(got.as_slice::<f32>().unwrap().len(), 0);
        let got = unary::<f32>(&[], &e, UnaryOp::Neg).unwrap();
        assert_eq!(got.as_slice::<f32>().unwrap().len(), 0);
        let (a, b) = (Layout::contiguous(&[2, 3]), Layout::contiguous(&[3, 2]));
        let e = binary(&[1i8; 6], &a, &[1i8; 6], &b, BinaryOp::Add);
        assert!(matches!(e, Err(Error::ShapeMismatch { .. })));
        // A layout reaching past the storage is an error, not a read.
        let long = Layout::contiguous(&[7]);
        assert!(binary(&[1u8; 6], &long, &[1u8; 7], &long, BinaryOp::Add).is_err());
        assert!(unary(&[1u8; 6], &long, UnaryOp::Neg).is_err());
    }
}
