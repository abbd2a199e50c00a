//! The fused elementwise kernel over host memory: a chain of elementwise ops (with scalars,
//! broadcasting, casts and comparisons) computed in one pass over memory.
//!
//! A [`Program`] is a short list of steps in SSA form. The output is cut into chunks of
//! [`CHUNK`] elements, handed to rayon; for each chunk every step computes its values for the
//! chunk only (a few KiB that stay in cache), reading inputs in place when they are contiguous,
//! as one broadcast value when their strides are all zero, and gathering them otherwise. The last
//! step is written straight into the result. So memory sees each input read once and the output
//! written once, with no full-size temporaries; each step's loop is monomorphised per dtype and
//! op, so it vectorises.
//!
//! Semantics are those of the CPU backend element for element: the same `Element` arithmetic
//! (wrapping integers), the same conversions (`host::convert`) and the same comparisons.

use std::mem::MaybeUninit;

use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;
use tensorbridge_core::host::convert;
use tensorbridge_core::{
    with_dtype, BinaryOp, CmpOp, DType, Element, Error, FloatElement, HostArray, Layout, Result,
    Scalar, UnaryOp,
};

/// Elements per work item: big enough to amortise the per-step dispatch, small enough that a
/// few steps' values stay in L1/L2.
pub(crate) const CHUNK: usize = 4096;

/// One step of a fused program; operands are earlier steps.
#[derive(Clone, Debug)]
pub(crate) enum Step {
    /// Input `i` of the kernel, read through its layout.
    Load(usize),
    /// A constant (a `full` node), converted to the step's dtype.
    Const(Scalar),
    Unary(UnaryOp, usize),
    Binary(BinaryOp, usize, usize),
    Compare(CmpOp, usize, usize),
    /// Conversion of an operand to the step's dtype.
    Cast(usize),
}

/// A fused chain: its steps (each with the dtype it produces); the last one is the result.
#[derive(Clone, Debug, Default)]
pub(crate) struct Program {
    pub steps: Vec<(Step, DType)>,
}

/// An input of the kernel: host bytes of a storage and the view the program reads of it (its
/// shape may differ from the output's; its element count is the same).
pub(crate) struct HostInput<'a> {
    pub bytes: &'a [u8],
    pub dtype: DType,
    pub layout: Layout,
}

fn internal(msg: &str) -> Error {
    Error::Backend {
        backend: "lazy",
        message: format!("fused kernel: {msg}"),
    }
}

/// One step's values for one chunk.
enum Lane<'a, T> {
    /// Read in place from a contiguous input.
    Slice(&'a [T]),
    Owned(Vec<T>),
    /// The same value for every element (a scalar or a zero-stride broadcast).
    Splat(T),
}

impl<T: Copy> Lane<'_, T> {
    fn as_slice(&self) -> Option<&[T]> {
        match self {
            Lane::Slice(s) => Some(s),
            Lane::Owned(v) => Some(v),
            Lane::Splat(_) => None,
        }
    }
}

#[inline(always)]
fn map1<T: Copy, U>(a: &Lane<'_, T>, f: impl Fn(T) -> U) -> Lane<'static, U> {
    match a {
        Lane::Splat(x) => Lane::Splat(f(*x)),
        _ => Lane::Owned(a.as_slice().unwrap_or(&[]).iter().map(|&x| f(x)).collect()),
    }
}

#[inline(always)]
fn map2<T: Copy, U>(
    a: &Lane<'_, T>,
    b: &Lane<'_, T>,
    f: impl Fn(T, T) -> U,
) -> Result<Lane<'static, U>> {
    Ok(match (a, b) {
        (Lane::Splat(x), Lane::Splat(y)) => Lane::Splat(f(*x, *y)),
        (Lane::Splat(x), _) => {
            let x = *x;
            Lane::Owned(
                b.as_slice()
                    .unwrap_or(&[])
                    .iter()
                    .map(|&y| f(x, y))
                    .collect(),
            )
        }
        (_, Lane::Splat(y)) => {
            let y = *y;
            Lane::Owned(
                a.as_slice()
                    .unwrap_or(&[])
                    .iter()
                    .map(|&x| f(x, y))
                    .collect(),
            )
        }
        _ => {
            let (a, b) = (a.as_slice().unwrap_or(&[]), b.as_slice().unwrap_or(&[]));
            if a.len() != b.len() {
                return Err(internal("operand chunks differ in length"));
            }
            Lane::Owned(a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect())
        }
    })
}

fn binary<T: Element>(op: BinaryOp, a: &Lane<'_, T>, b: &Lane<'_, T>) -> Result<Lane<'static, T>> {
    // One closure per op, so each loop is monomorphised and vectorises.
    match op {
        BinaryOp::Add => map2(a, b, |x: T, y: T| x.add(y)),
        BinaryOp::Sub => map2(a, b, |x: T, y: T| x.sub(y)),
        BinaryOp::Mul => map2(a, b, |x: T, y: T| x.mul(y)),
        BinaryOp::Div => map2(a, b, |x: T, y: T| x.div(y)),
    }
}

fn compare<T: Element>(op: CmpOp, a: &Lane<'_, T>, b: &Lane<'_, T>) -> Result<Lane<'static, bool>> {
    match op {
        CmpOp::Eq => map2(a, b, |x: T, y: T| x == y),
        CmpOp::Lt => map2(a, b, |x: T, y: T| x < y),
        CmpOp::Gt => map2(a, b, |x: T, y: T| x > y),
    }
}

/// Reads elements `start .. start + len` (row-major over `layout`'s shape) of a view.
fn load_view<'a, T: Copy>(data: &'a [T], layout: &Layout, start: usize, len: usize) -> Lane<'a, T> {
    if len == 0 {
        return Lane::Owned(Vec::new());
    }
    if layout.is_contiguous() {
        let from = layout.offset() + start;
        return Lane::Slice(&data[from..from + len]);
    }
    if layout.strides().iter().all(|&s| s == 0) {
        return Lane::Splat(data[layout.offset()]);
    }
    let (shape, strides) = (layout.shape(), layout.strides());
    let last = shape.len() - 1;
    // The multi-index of `start`, and its storage position.
    let mut idx = vec![0usize; shape.len()];
    let mut rest = start;
    for k in (0..shape.len()).rev() {
        idx[k] = rest % shape[k];
        rest /= shape[k];
    }
    let mut pos = layout.offset() as isize
        + idx
            .iter()
            .zip(strides)
            .map(|(&i, &s)| i as isize * s)
            .sum::<isize>();
    let (inner, step) = (shape[last], strides[last]);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let run = (inner - idx[last]).min(len - out.len());
        out.extend((0..run as isize).map(|j| data[(pos + j * step) as usize]));
        idx[last] += run;
        pos += run as isize * step;
        if idx[last] == inner {
            // Carry into the outer axes.
            idx[last] = 0;
            pos -= inner as isize * step;
            for k in (0..last).rev() {
                idx[k] += 1;
                pos += strides[k];
                if idx[k] < shape[k] {
                    break;
                }
                pos -= shape[k] as isize * strides[k];
                idx[k] = 0;
            }
        }
    }
    Lane::Owned(out)
}

/// Ties an element type to its [`Col`] variant and its kernel-side operations.
trait Kernel: Element {
    fn wrap(l: Lane<'_, Self>) -> Col<'_>;
    fn lane<'c, 'a>(c: &'c Col<'a>) -> Result<&'c Lane<'a, Self>>;
    fn load<'a>(input: &HostInput<'a>, start: usize, len: usize) -> Result<Lane<'a, Self>>;
    fn unary(op: UnaryOp, a: &Lane<'_, Self>) -> Result<Lane<'static, Self>>;
}

macro_rules! cols {
    ($($t:ty => $v:ident : $load:ident $math:ident),* $(,)?) => {
        /// One step's values for one chunk, of any dtype.
        enum Col<'a> { $($v(Lane<'a, $t>),)* }

        $(impl Kernel for $t {
            fn wrap(l: Lane<'_, Self>) -> Col<'_> { Col::$v(l) }
            fn lane<'c, 'a>(c: &'c Col<'a>) -> Result<&'c Lane<'a, Self>> {
                match c { Col::$v(l) => Ok(l), _ => Err(internal("operand dtype")) }
            }
            fn load<'a>(input: &HostInput<'a>, start: usize, len: usize) -> Result<Lane<'a, Self>> {
                cols!(@load $load input, start, len)
            }
            fn unary(op: UnaryOp, a: &Lane<'_, Self>) -> Result<Lane<'static, Self>> {
                cols!(@unary $math op, a)
            }
        })*
    };
    (@load pod $input:ident, $start:ident, $len:ident) => {{
        let data: &[Self] = bytemuck::try_cast_slice($input.bytes)
            .map_err(|e| internal(&format!("input storage: {e}")))?;
        Ok(load_view(data, &$input.layout, $start, $len))
    }};
    (@load bool $input:ident, $start:ident, $len:ident) => {{
        // bool storage holds the bytes 0 and 1; read them as u8.
        Ok(match load_view($input.bytes, &$input.layout, $start, $len) {
            Lane::Splat(b) => Lane::Splat(b != 0),
            l => Lane::Owned(l.as_slice().unwrap_or(&[]).iter().map(|&b| b != 0).collect()),
        })
    }};
    (@unary float $op:ident, $a:ident) => {
        Ok(match $op {
            UnaryOp::Neg => map1($a, |x: Self| Element::neg(x)),
            UnaryOp::Abs => map1($a, |x: Self| Element::abs(x)),
            UnaryOp::Exp => map1($a, |x: Self| FloatElement::exp(x)),
            UnaryOp::Log => map1($a, |x: Self| FloatElement::ln(x)),
            UnaryOp::Sqrt => map1($a, |x: Self| FloatElement::sqrt(x)),
        })
    };
    (@unary exact $op:ident, $a:ident) => {
        match $op {
            UnaryOp::Neg => Ok(map1($a, |x: Self| Element::neg(x))),
            UnaryOp::Abs => Ok(map1($a, |x: Self| Element::abs(x))),
            _ => Err(Error::UnsupportedDType { op: "exp/log/sqrt", dtype: Self::DTYPE }),
        }
    };
}

cols!(
    bool => Bool: bool exact, u8 => U8: pod exact, u16 => U16: pod exact,
    u32 => U32: pod exact, u64 => U64: pod exact, i8 => I8: pod exact, i16 => I16: pod exact,
    i32 => I32: pod exact, i64 => I64: pod exact, half::f16 => F16: pod float,
    half::bf16 => BF16: pod float, f32 => F32: pod float, f64 => F64: pod float,
);

impl Program {
    /// The dtype of step `i`.
    fn dtype(&self, i: usize) -> Result<DType> {
        self.steps
            .get(i)
            .map(|s| s.1)
            .ok_or_else(|| internal("operand index"))
    }

    /// Every step's values for elements `start .. start + len`; the last is the result.
    fn run_chunk<'a>(
        &self,
        inputs: &[HostInput<'a>],
        start: usize,
        len: usize,
    ) -> Result<Vec<Col<'a>>> {
        let mut cols: Vec<Col<'a>> = Vec::with_capacity(self.steps.len());
        for (step, dtype) in &self.steps {
            let col = match *step {
                Step::Load(i) => {
                    let input = inputs.get(i).ok_or_else(|| internal("input index"))?;
                    with_dtype!(input.dtype, T => T::wrap(T::load(input, start, len)?))
                }
                Step::Const(v) => {
                    with_dtype!(*dtype, T => T::wrap(Lane::Splat(v.to_element::<T>())))
                }
                Step::Unary(op, a) => {
                    let a = cols.get(a).ok_or_else(|| internal("operand index"))?;
                    with_dtype!(*dtype, T => T::wrap(T::unary(op, T::lane(a)?)?))
                }
                Step::Binary(op, a, b) => {
                    let (a, b) = (operand(&cols, a)?, operand(&cols, b)?);
                    with_dtype!(*dtype, T => T::wrap(binary(op, T::lane(a)?, T::lane(b)?)?))
                }
                Step::Compare(op, a, b) => {
                    let src = self.dtype(a)?;
                    let (a, b) = (operand(&cols, a)?, operand(&cols, b)?);
                    with_dtype!(src, T => Col::Bool(compare(op, T::lane(a)?, T::lane(b)?)?))
                }
                Step::Cast(a) => {
                    let src = self.dtype(a)?;
                    let a = operand(&cols, a)?;
                    with_dtype!(src, S => with_dtype!(*dtype, D => {
                        D::wrap(map1(S::lane(a)?, convert::<S, D>))
                    }))
                }
            };
            cols.push(col);
        }
        Ok(cols)
    }

    /// Runs the program over `len` elements into a new host array of `shape`.
    pub(crate) fn run(&self, inputs: &[HostInput<'_>], shape: &[usize]) -> Result<HostArray> {
        let (_, out_dtype) = self
            .steps
            .last()
            .cloned()
            .ok_or_else(|| internal("empty program"))?;
        with_dtype!(out_dtype, D => self.run_typed::<D>(inputs, shape))
    }

    fn run_typed<D: Kernel>(&self, inputs: &[HostInput<'_>], shape: &[usize]) -> Result<HostArray> {
        let n: usize = shape.iter().product();
        let mut v = tensorbridge_core::memory_guard::try_alloc::<D>("fused kernel", shape)?;
        let spare = &mut v.spare_capacity_mut()[..n];
        let chunk = |c: usize, out: &mut [MaybeUninit<D>]| {
            let cols = self.run_chunk(inputs, c * CHUNK, out.len())?;
            let last = cols.last().ok_or_else(|| internal("empty program"))?;
            write_out(D::lane(last)?, out)
        };
        if n <= CHUNK || tensorbridge_core::host::pool_threads() <= 1 {
            // One chunk, or no pool: on the calling thread, without a round trip through rayon.
            for (c, out) in spare.chunks_mut(CHUNK).enumerate() {
                chunk(c, out)?;
            }
        } else {
            spare
                .par_chunks_mut(CHUNK)
                .enumerate()
                .try_for_each(|(c, out)| chunk(c, out))?;
        }
        // SAFETY: both paths returned Ok, so every chunk of `spare` (which together cover all `n`
        // elements exactly once) went through `write_out`, which writes each element of its chunk
        // or fails; hence the first `n` elements are initialised.
        unsafe { v.set_len(n) };
        let a = ArrayD::from_shape_vec(IxDyn(shape), v)
            .map_err(|e| internal(&format!("result shape: {e}")))?;
        Ok(HostArray::from(a))
    }
}

fn operand<'c, 'a>(cols: &'c [Col<'a>], i: usize) -> Result<&'c Col<'a>> {
    cols.get(i).ok_or_else(|| internal("operand index"))
}

/// Writes a chunk's result; fails (writing nothing further) if its length is not the chunk's.
fn write_out<T: Copy>(lane: &Lane<'_, T>, out: &mut [MaybeUninit<T>]) -> Result<()> {
    match lane {
        Lane::Splat(x) => out.iter_mut().for_each(|o| {
            o.write(*x);
        }),
        _ => {
            let s = lane.as_slice().unwrap_or(&[]);
            if s.len() != out.len() {
                return Err(internal("result chunk length"));
            }
            out.iter_mut().zip(s).for_each(|(o, &x)| {
                o.write(x);
            });
        }
    }
    Ok(())
}
