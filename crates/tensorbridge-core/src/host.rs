//! Host-side machinery every backend shares: [`HostArray`], the strided → dense copy kernel
//! (cache-blocked, parallel for large tensors, fused with dtype conversion), and safe `ndarray` views
//! of strided storage.
//!
//! Every backend ends its device → host path here: it brings the bytes it must move into host memory
//! (or already has them there) and lets this module lay them out.

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, Axis, IxDyn, ShapeBuilder};

use crate::dtype::{cast_element, DType, Element};
use crate::error::{Error, Result};
use crate::layout::{checked_elem_count, contiguous_strides, Layout};

/// A dtype-erased, owned, C-contiguous-or-not host array: one `ndarray::ArrayD` per dtype.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)]
pub enum HostArray {
    Bool(ArrayD<bool>),
    U8(ArrayD<u8>),
    U16(ArrayD<u16>),
    U32(ArrayD<u32>),
    U64(ArrayD<u64>),
    I8(ArrayD<i8>),
    I16(ArrayD<i16>),
    I32(ArrayD<i32>),
    I64(ArrayD<i64>),
    F16(ArrayD<half::f16>),
    BF16(ArrayD<half::bf16>),
    F32(ArrayD<f32>),
    F64(ArrayD<f64>),
}

/// Calls `$body` with `$a` bound to the typed array inside a [`HostArray`].
#[macro_export]
macro_rules! with_host_array {
    ($h:expr, $a:ident => $body:expr) => {
        match $h {
            $crate::HostArray::Bool($a) => $body,
            $crate::HostArray::U8($a) => $body,
            $crate::HostArray::U16($a) => $body,
            $crate::HostArray::U32($a) => $body,
            $crate::HostArray::U64($a) => $body,
            $crate::HostArray::I8($a) => $body,
            $crate::HostArray::I16($a) => $body,
            $crate::HostArray::I32($a) => $body,
            $crate::HostArray::I64($a) => $body,
            $crate::HostArray::F16($a) => $body,
            $crate::HostArray::BF16($a) => $body,
            $crate::HostArray::F32($a) => $body,
            $crate::HostArray::F64($a) => $body,
        }
    };
}

impl HostArray {
    /// The element type.
    pub fn dtype(&self) -> DType {
        crate::with_host_array!(self, a => element_dtype(a))
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        crate::with_host_array!(self, a => a.shape())
    }

    /// The typed array, or [`Error::DTypeMismatch`].
    pub fn into_typed<T: Element>(self) -> Result<ArrayD<T>> {
        let actual = self.dtype();
        T::unwrap_host(self).map_err(|_| Error::DTypeMismatch {
            op: "HostArray::into_typed",
            actual,
            requested: T::DTYPE,
        })
    }

    /// A borrowed typed array, or `None` when the dtype differs.
    pub fn as_typed<T: Element>(&self) -> Option<&ArrayD<T>> {
        T::host_ref(self)
    }
}

fn element_dtype<T: Element>(_: &ArrayD<T>) -> DType {
    T::DTYPE
}

impl<T: Element> From<ArrayD<T>> for HostArray {
    fn from(a: ArrayD<T>) -> Self {
        T::wrap_host(a)
    }
}

/// Converts one element, with fast paths the compiler resolves statically per instantiation
/// (identity, bf16 → f32). Used by every kernel so conversion fuses into the copy loop.
#[inline(always)]
pub fn convert<S: Element, D: Element>(v: S) -> D {
    if S::DTYPE == D::DTYPE {
        // SAFETY: `Element` is sealed with exactly one Rust type per dtype, so equal dtypes mean
        // `S` and `D` are the same type and a bitwise copy is the value itself.
        return unsafe { std::mem::transmute_copy::<S, D>(&v) };
    }
    if S::DTYPE == DType::BF16 && D::DTYPE == DType::F32 {
        // SAFETY: S is bf16 (2 bytes, u16 bits) and D is f32, by the dtype checks above.
        let bits: u16 = unsafe { std::mem::transmute_copy::<S, u16>(&v) };
        let f = f32::from_bits((bits as u32) << 16);
        return unsafe { std::mem::transmute_copy::<f32, D>(&f) };
    }
    cast_element::<S, D>(v)
}

/// A borrowed `ndarray` view of the elements `layout` selects from `data` (negative and zero strides
/// included). Fails when the layout reaches outside `data`.
pub fn strided_view<'a, T>(data: &'a [T], layout: &Layout) -> Result<ArrayViewD<'a, T>> {
    layout.check_fits(data.len())?;
    let shape = layout.shape();
    if layout.elem_count() == 0 {
        return Ok(ArrayViewD::from_shape(IxDyn(shape), &[])
            .map_err(|e| Error::InvalidArgument(format!("empty view of shape {shape:?}: {e}")))?);
    }
    // ndarray wants non-negative strides from the lowest address; flip the negative axes after.
    let (lo, _) = layout.storage_span().unwrap_or((0, 0));
    let abs: Vec<usize> = layout.strides().iter().map(|s| s.unsigned_abs()).collect();
    // SAFETY: `check_fits` proved every element index lies in `lo..data.len()`, so every pointer
    // the view forms from `data[lo]` along the absolute strides is inside `data`, which is borrowed
    // (shared, so not mutably aliased) for 'a. Strides are non-negative as ndarray requires.
    let mut view = unsafe {
        ArrayViewD::from_shape_ptr(IxDyn(shape).strides(IxDyn(&abs)), data.as_ptr().add(lo))
    };
    for (axis, &s) in layout.strides().iter().enumerate() {
        if s < 0 {
            view.invert_axis(Axis(axis));
        }
    }
    Ok(view)
}

/// Copies the elements `layout` selects from `src` into a new C-contiguous array, converting to `D`.
/// The destination is written once, never zero-filled first.
pub fn to_contiguous<S: Element, D: Element>(src: &[S], layout: &Layout) -> Result<ArrayD<D>> {
    layout.check_fits(src.len())?;
    let n = layout.elem_count();
    let mut out: Vec<D> = Vec::new();
    out.try_reserve_exact(n).map_err(|_| Error::TooLarge {
        op: "to_host",
        shape: layout.shape().to_vec(),
        dtype: D::DTYPE,
        bytes: n as u128 * D::DTYPE.size_in_bytes() as u128,
        limit: isize::MAX as u128,
    })?;
    let dst_strides = contiguous_strides(layout.shape());
    // SAFETY: `out` has capacity for `n` elements; the kernel writes each of the `n` positions of the
    // contiguous destination layout exactly once (every index of the shape is visited once), and
    // only then is the length set. `check_fits` proved every source read is inside `src`.
    unsafe {
        copy_kernel(src, layout, out.as_mut_ptr(), &dst_strides);
        out.set_len(n);
    }
    ArrayD::from_shape_vec(IxDyn(layout.shape()), out)
        .map_err(|e| Error::InvalidArgument(format!("to_host: {e}")))
}

/// Copies the elements `layout` selects from `src` into `dst` (any strides), converting to `D`.
pub fn copy_into<S: Element, D: Element>(
    src: &[S],
    layout: &Layout,
    dst: &mut ArrayViewMutD<'_, D>,
) -> Result<()> {
    if dst.shape() != layout.shape() {
        return Err(Error::ShapeMismatch {
            op: "to_host_into",
            lhs: layout.shape().to_vec(),
            rhs: dst.shape().to_vec(),
        });
    }
    layout.check_fits(src.len())?;
    let dst_strides: Vec<isize> = dst.strides().to_vec();
    // SAFETY: `dst` is a valid mutable view of the same shape: every element position it describes
    // is writable and, being an ndarray mutable view, no two positions alias. `check_fits` proved
    // every source read is inside `src`.
    unsafe { copy_kernel(src, layout, dst.as_mut_ptr(), &dst_strides) };
    Ok(())
}

/// Below this many elements a copy runs on the calling thread only.
const PARALLEL_MIN_ELEMS: usize = 1 << 18;
/// Tile edge for copies whose source and destination are contiguous along different axes.
const TILE: usize = 32;

struct SendPtr<T>(*mut T);
// SAFETY: the kernel hands each worker a disjoint set of destination positions, so sharing the base
// pointer across threads never lets two threads write the same element.
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

/// The loop plan for one copy: dimensions merged where both sides are contiguous, then either
/// rows (both sides dense along the last axis), tiles (dense along different axes), or a gather.
struct Plan {
    shape: Vec<usize>,
    src: Vec<isize>,
    dst: Vec<isize>,
    /// Axis tiled against the last one (`Some` in tiled mode).
    tile_axis: Option<usize>,
}

impl Plan {
    fn new(shape: &[usize], src: &[isize], dst: &[isize]) -> Plan {
        // Drop size-1 axes, then merge neighbours that are contiguous on both sides.
        let mut dims: Vec<(usize, isize, isize)> = shape
            .iter()
            .zip(src.iter().zip(dst))
            .filter(|(&d, _)| d != 1)
            .map(|(&d, (&s, &t))| (d, s, t))
            .collect();
        let mut merged: Vec<(usize, isize, isize)> = Vec::with_capacity(dims.len());
        for (d, s, t) in dims.drain(..) {
            if let Some(last) = merged.last_mut() {
                if last.1 == s * d as isize && last.2 == t * d as isize {
                    *last = (last.0 * d, s, t);
                    continue;
                }
            }
            merged.push((d, s, t));
        }
        if merged.is_empty() {
            merged.push((1, 1, 1));
        }
        let shape: Vec<usize> = merged.iter().map(|m| m.0).collect();
        let src: Vec<isize> = merged.iter().map(|m| m.1).collect();
        let dst: Vec<isize> = merged.iter().map(|m| m.2).collect();
        let last = shape.len() - 1;
        let tile_axis = if src[last] == 1 {
            None
        } else {
            (0..last)
                .filter(|&a| src[a].unsigned_abs() < src[last].unsigned_abs() && shape[a] > 1)
                .min_by_key(|&a| src[a].unsigned_abs())
        };
        Plan {
            shape,
            src,
            dst,
            tile_axis,
        }
    }

    /// Work items: one per (outer index × tile row) in tiled mode, one per row otherwise.
    fn work_items(&self) -> usize {
        let last = self.shape.len() - 1;
        let mut n = 1usize;
        for (a, &d) in self.shape[..last].iter().enumerate() {
            n *= match self.tile_axis {
                Some(t) if t == a => d.div_ceil(TILE),
                _ => d,
            };
        }
        n
    }

    /// Source and destination offsets of work item `item`, and the tile row's start index.
    fn item_origin(&self, mut item: usize) -> (isize, isize, usize) {
        let last = self.shape.len() - 1;
        let (mut so, mut dof, mut tile_start) = (0isize, 0isize, 0usize);
        for a in (0..last).rev() {
            let d = match self.tile_axis {
                Some(t) if t == a => self.shape[a].div_ceil(TILE),
                _ => self.shape[a],
            };
            let i = item % d;
            item /= d;
            if self.tile_axis == Some(a) {
                tile_start = i * TILE;
            } else {
                so += i as isize * self.src[a];
                dof += i as isize * self.dst[a];
            }
        }
        (so, dof, tile_start)
    }
}

/// The copy kernel behind every host transfer.
///
/// # Safety
/// `layout` must fit `src` (see [`Layout::check_fits`]); `dst` with `dst_strides` must address
/// `layout.elem_count()` distinct writable positions of type `D` (one per index of the shape).
unsafe fn copy_kernel<S: Element, D: Element>(
    src: &[S],
    layout: &Layout,
    dst: *mut D,
    dst_strides: &[isize],
) {
    let n = layout.elem_count();
    if n == 0 {
        return;
    }
    let plan = Plan::new(layout.shape(), layout.strides(), dst_strides);
    // SAFETY: `check_fits` (caller contract) proved `offset` is inside `src`.
    let src_base = src.as_ptr().add(layout.offset());
    let items = plan.work_items();
    let run = |range: std::ops::Range<usize>, dst: &SendPtr<D>| {
        for item in range {
            // SAFETY: each item writes only its own rows/tiles; items partition the index space.
            run_item(&plan, item, src_base, dst.0);
        }
    };
    let dst = SendPtr(dst);
    if n < PARALLEL_MIN_ELEMS || items < 2 || rayon::current_num_threads() < 2 {
        run(0..items, &dst);
        return;
    }
    let chunks = (rayon::current_num_threads() * 4).min(items);
    let per = items.div_ceil(chunks);
    let src_base = SendPtr(src_base as *mut S);
    let src_ref = &src_base;
    rayon::scope(|s| {
        for c in 0..chunks {
            let dst = &dst;
            let plan = &plan;
            s.spawn(move |_| {
                let start = c * per;
                let end = (start + per).min(items);
                for item in start..end {
                    // SAFETY: disjoint item ranges per task; see `SendPtr`.
                    unsafe { run_item(plan, item, src_ref.0 as *const S, dst.0) };
                }
            });
        }
    });
}

/// Copies one work item of `plan`.
///
/// # Safety
/// As for [`copy_kernel`]; `src` points at the layout's element `[0, .., 0]`.
#[inline]
unsafe fn run_item<S: Element, D: Element>(plan: &Plan, item: usize, src: *const S, dst: *mut D) {
    let last = plan.shape.len() - 1;
    let (so, dof, tile_start) = plan.item_origin(item);
    let (len, ss, ds) = (plan.shape[last], plan.src[last], plan.dst[last]);
    let (src, dst) = (src.offset(so), dst.offset(dof));
    match plan.tile_axis {
        None => {
            if ss == 1 && ds == 1 {
                let s = std::slice::from_raw_parts(src, len);
                let d = std::slice::from_raw_parts_mut(dst, len);
                for (o, &i) in d.iter_mut().zip(s) {
                    *o = convert(i);
                }
            } else {
                for j in 0..len as isize {
                    *dst.offset(j * ds) = convert(*src.offset(j * ss));
                }
            }
        }
        Some(t) => {
            let (ts, td) = (plan.src[t], plan.dst[t]);
            let rows = (plan.shape[t] - tile_start).min(TILE);
            let (src, dst) = (
                src.offset(tile_start as isize * ts),
                dst.offset(tile_start as isize * td),
            );
            let mut j0 = 0usize;
            while j0 < len {
                let cols = (len - j0).min(TILE);
                for i in 0..rows as isize {
                    let (s_row, d_row) = (src.offset(i * ts), dst.offset(i * td));
                    for j in j0 as isize..(j0 + cols) as isize {
                        *d_row.offset(j * ds) = convert(*s_row.offset(j * ss));
                    }
                }
                j0 += cols;
            }
        }
    }
}

/// Bytes of host memory a new array of `shape` × `dtype` needs, or [`Error::TooLarge`] when that
/// overflows or exceeds `limit`.
pub fn host_bytes_guard(
    op: &'static str,
    shape: &[usize],
    dtype: DType,
    limit: u128,
) -> Result<usize> {
    let too_large = |bytes: u128| Error::TooLarge {
        op,
        shape: shape.to_vec(),
        dtype,
        bytes,
        limit,
    };
    let n = checked_elem_count(shape).ok_or_else(|| too_large(u128::MAX))?;
    let bytes = n as u128 * dtype.size_in_bytes() as u128;
    if bytes > limit || bytes > isize::MAX as u128 {
        return Err(too_large(bytes));
    }
    Ok(bytes as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::bf16;
    use ndarray::{Array, ShapeBuilder};

    fn iota(n: usize) -> Vec<i32> {
        (0..n as i32).collect()
    }

    #[test]
    fn transposed_copy_matches_ndarray_for_tile_edges() {
        for (r, c) in [(1, 1), (31, 33), (64, 64), (65, 7), (3, 100)] {
            let data = iota(r * c);
            let layout = Layout::contiguous(&[r, c]).reversed_axes();
            let got: ArrayD<i32> = to_contiguous(&data, &layout).unwrap();
            let want = Array::from_shape_vec((r, c), data.clone())
                .unwrap()
                .reversed_axes();
            assert_eq!(
                got,
                want.into_dyn().as_standard_layout().to_owned(),
                "{r}x{c}"
            );
        }
    }

    #[test]
    fn negative_and_zero_strides_copy_correctly() {
        let data = iota(24);
        let l = Layout::contiguous(&[4, 6])
            .slice(1, None, None, -2)
            .unwrap()
            .slice(0, Some(3), Some(0), -1)
            .unwrap();
        let got: ArrayD<i32> = to_contiguous(&data, &l).unwrap();
        // Python: np.arange(24).reshape(4, 6)[3:0:-1, ::-2]
        let want = vec![23, 21, 19, 17, 15, 13, 11, 9, 7];
        assert_eq!(got.shape(), &[3, 3]);
        assert_eq!(got.as_slice().unwrap(), &want[..]);
        let b = Layout::contiguous(&[3]).broadcast_to(&[2, 3]).unwrap();
        let got: ArrayD<i32> = to_contiguous(&data[..3], &b).unwrap();
        assert_eq!(got.as_slice().unwrap(), &[0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn large_parallel_copy_visits_every_element_once() {
        let (r, c) = (700, 900); // > PARALLEL_MIN_ELEMS, not a multiple of the tile
        let data = iota(r * c);
        let layout = Layout::contiguous(&[r, c]).reversed_axes();
        let got: ArrayD<i32> = to_contiguous(&data, &layout).unwrap();
        for i in 0..c {
            for j in 0..r {
                assert_eq!(got[[i, j]], (j * c + i) as i32);
            }
        }
    }

    #[test]
    fn copy_into_strided_destination_and_shape_mismatch() {
        let data = iota(6);
        let layout = Layout::contiguous(&[2, 3]);
        let mut out = Array::<i64, _>::zeros((3, 2).f()); // Fortran-order destination
        let mut v = out.view_mut().into_dyn().reversed_axes();
        copy_into(&data, &layout, &mut v).unwrap();
        assert_eq!(
            out,
            Array::from_shape_vec((3, 2), vec![0i64, 3, 1, 4, 2, 5]).unwrap()
        );
        let mut wrong = Array::<i32, _>::zeros(IxDyn(&[3, 2]));
        assert!(copy_into(&data, &layout, &mut wrong.view_mut()).is_err());
    }

    #[test]
    fn bf16_to_f32_is_exact() {
        let vals: Vec<bf16> = [1.0f32, -2.5, 3.0e38, f32::INFINITY, 1.0e-40]
            .iter()
            .map(|&v| bf16::from_f32(v))
            .collect();
        let got: ArrayD<f32> = to_contiguous(&vals, &Layout::contiguous(&[5])).unwrap();
        for (g, v) in got.iter().zip(&vals) {
            assert_eq!(g.to_bits(), v.to_f32().to_bits());
        }
    }

    #[test]
    fn out_of_bounds_layout_is_an_error_not_a_read() {
        let data = iota(4);
        let l = Layout::new(vec![5], vec![1], 0).unwrap();
        assert!(to_contiguous::<i32, i32>(&data, &l).is_err());
        assert!(strided_view(&data, &l).is_err());
    }

    #[test]
    fn strided_view_flips_negative_axes() {
        let data = iota(6);
        let l = Layout::contiguous(&[2, 3])
            .slice(1, None, None, -1)
            .unwrap();
        let v = strided_view(&data, &l).unwrap();
        assert_eq!(v[[0, 0]], 2);
        assert_eq!(v[[1, 2]], 3);
    }

    #[test]
    fn host_array_typed_round_trip() {
        let a = ArrayD::<f32>::zeros(IxDyn(&[2, 2]));
        let h = HostArray::from(a.clone());
        assert_eq!(h.dtype(), DType::F32);
        assert_eq!(h.as_typed::<f32>(), Some(&a));
        assert!(h.clone().into_typed::<f64>().is_err());
        assert_eq!(h.into_typed::<f32>().unwrap(), a);
    }

    #[test]
    fn size_guard_rejects_overflow() {
        assert!(host_bytes_guard("t", &[usize::MAX, 2], DType::F32, u128::MAX).is_err());
        assert!(host_bytes_guard("t", &[1024], DType::F64, 100).is_err());
        assert_eq!(host_bytes_guard("t", &[4], DType::F64, 100).unwrap(), 32);
    }
}
