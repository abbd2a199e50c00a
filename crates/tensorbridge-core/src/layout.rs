//! [`Layout`]: how a tensor's logical elements sit in its storage. Every view (reshape of contiguous,
//! transpose, permute, slice with steps, broadcast, squeeze, unsqueeze) is arithmetic on this struct,
//! O(ndim), never a copy.

use crate::dtype::DType;
use crate::error::{Error, Result};
use smallvec::SmallVec;

/// Shape, strides (in elements, may be negative or zero) and the offset of element `[0, .., 0]`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Layout {
    shape: SmallVec<[usize; INLINE_AXES]>,
    strides: SmallVec<[isize; INLINE_AXES]>,
    offset: usize,
}

// Not derived: SmallVec's own `clone` pushes element by element (about 180 instructions for two
// axes, a fixed cost of every view); `from_slice` copies the axes of these `Copy` types at once.
impl Clone for Layout {
    fn clone(&self) -> Self {
        Layout {
            shape: SmallVec::from_slice(&self.shape),
            strides: SmallVec::from_slice(&self.strides),
            offset: self.offset,
        }
    }
}

/// Axes a [`Layout`] holds without a heap allocation: making, cloning and dropping the layout of
/// a tensor of up to this many dimensions allocates nothing (a fixed cost of every small op and
/// conversion).
const INLINE_AXES: usize = 4;

/// Row-major strides, in elements, of a contiguous tensor of `shape`.
pub fn contiguous_strides(shape: &[usize]) -> Vec<isize> {
    let mut strides = vec![0isize; shape.len()];
    fill_contiguous_strides(shape, &mut strides);
    strides
}

/// Writes the row-major strides of `shape` into `strides` (of the same length).
pub(crate) fn fill_contiguous_strides(shape: &[usize], strides: &mut [isize]) {
    let mut acc = 1isize;
    for (s, &d) in strides.iter_mut().zip(shape).rev() {
        *s = acc;
        acc = acc.saturating_mul(d.max(1) as isize);
    }
}

/// The element count of `shape`, or `None` when it overflows `usize`.
pub fn checked_elem_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// The size in bytes of an array of `shape` with elements of `dtype` (one byte each when `None`:
/// the element count), or [`Error::ShapeTooLarge`] when it could exceed `isize::MAX` — NumPy's
/// rule for any array, view or not ("array is too big"): the product of the non-zero dimensions
/// times the item size must fit, even when another dimension is zero.
pub fn checked_shape_bytes(
    op: &'static str,
    shape: &[usize],
    dtype: Option<DType>,
) -> Result<usize> {
    let item = dtype.map_or(1, DType::size_in_bytes);
    let largest = shape
        .iter()
        .try_fold(item, |acc, &d| acc.checked_mul(d.max(1)))
        .filter(|&b| b <= isize::MAX as usize);
    match largest {
        None => Err(Error::ShapeTooLarge {
            op,
            shape: shape.to_vec(),
            dtype,
        }),
        Some(_) if shape.contains(&0) => Ok(0),
        Some(b) => Ok(b),
    }
}

/// Normalises a possibly negative axis against `ndim`.
pub fn normalize_axis(op: &'static str, axis: isize, ndim: usize) -> Result<usize> {
    let n = ndim as isize;
    let a = if axis < 0 { axis + n } else { axis };
    if a < 0 || a >= n {
        return Err(Error::AxisOutOfRange { op, axis, ndim });
    }
    Ok(a as usize)
}

/// The NumPy broadcast of two shapes.
pub fn broadcast_shapes(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0usize; n];
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(Error::ShapeMismatch {
                    op,
                    lhs: a.to_vec(),
                    rhs: b.to_vec(),
                })
            }
        };
    }
    Ok(out)
}

impl Layout {
    /// The row-major contiguous layout of `shape`, starting at offset 0.
    pub fn contiguous(shape: &[usize]) -> Self {
        let mut strides = SmallVec::from_elem(0isize, shape.len());
        fill_contiguous_strides(shape, &mut strides);
        Layout {
            shape: SmallVec::from_slice(shape),
            strides,
            offset: 0,
        }
    }

    /// A layout from raw parts. It is not checked against any storage: see [`Layout::check_fits`].
    /// A shape of more than `isize::MAX` elements is [`Error::ShapeTooLarge`].
    pub fn new(shape: Vec<usize>, strides: Vec<isize>, offset: usize) -> Result<Self> {
        Self::check_parts(&shape, &strides)?;
        Ok(Layout {
            shape: SmallVec::from_vec(shape),
            strides: SmallVec::from_vec(strides),
            offset,
        })
    }

    /// [`Layout::new`] from borrowed parts (no vectors to build first).
    pub fn from_parts(shape: &[usize], strides: &[isize], offset: usize) -> Result<Self> {
        Self::check_parts(shape, strides)?;
        Ok(Layout {
            shape: SmallVec::from_slice(shape),
            strides: SmallVec::from_slice(strides),
            offset,
        })
    }

    /// What [`Layout::new`] requires of its parts: one stride per axis, at most `isize::MAX`
    /// elements.
    fn check_parts(shape: &[usize], strides: &[isize]) -> Result<()> {
        if shape.len() != strides.len() {
            return Err(Error::InvalidArgument(format!(
                "layout: shape {shape:?} and strides {strides:?} differ in length"
            )));
        }
        checked_shape_bytes("layout", shape, None).map(|_| ())
    }

    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Strides in elements, one per dimension.
    pub fn strides(&self) -> &[isize] {
        &self.strides
    }

    /// Storage index of element `[0, .., 0]`.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// Number of logical elements. Every constructor that can grow a shape checks that this
    /// fits `isize` ([`checked_shape_bytes`]); [`Layout::contiguous`] of an unchecked shape
    /// saturates instead of wrapping.
    pub fn elem_count(&self) -> usize {
        // One pass: a zero anywhere wins over an overflow before it.
        let mut n = Some(1usize);
        for &d in &self.shape {
            if d == 0 {
                return 0;
            }
            n = n.and_then(|n| n.checked_mul(d));
        }
        n.unwrap_or(usize::MAX)
    }

    /// True when the elements are row-major and dense (size-1 dimensions may have any stride).
    pub fn is_contiguous(&self) -> bool {
        is_c_contiguous(&self.shape, &self.strides)
    }

    /// The lowest and one-past-highest storage index this layout touches (`None` if it has no elements).
    pub fn storage_span(&self) -> Option<(usize, usize)> {
        if self.elem_count() == 0 {
            return None;
        }
        let mut lo = self.offset as isize;
        let mut hi = self.offset as isize;
        for (&d, &s) in self.shape.iter().zip(&self.strides) {
            let reach = s * (d as isize - 1);
            if reach < 0 {
                lo += reach;
            } else {
                hi += reach;
            }
        }
        Some((lo as usize, hi as usize + 1))
    }

    /// Checks that every element lies inside a storage of `len` elements.
    ///
    /// Backends call this before any raw-pointer access; it is what makes those accesses sound.
    pub fn check_fits(&self, len: usize) -> Result<()> {
        let mut lo = self.offset as i128;
        let mut hi = self.offset as i128;
        for (&d, &s) in self.shape.iter().zip(&self.strides) {
            // No elements: nothing is read.
            if d == 0 {
                return Ok(());
            }
            let reach = s as i128 * (d as i128 - 1);
            if reach < 0 {
                lo += reach;
            } else {
                hi += reach;
            }
        }
        if lo < 0 || hi >= len as i128 {
            return Err(Error::InvalidArgument(format!(
                "layout {self:?} reaches outside a storage of {len} elements"
            )));
        }
        Ok(())
    }

    /// Storage index of the element at `index` (one entry per dimension, in range).
    pub fn storage_index(&self, index: &[usize]) -> usize {
        let mut at = self.offset as isize;
        for (&i, &s) in index.iter().zip(&self.strides) {
            at += i as isize * s;
        }
        at as usize
    }

    /// Reshape without copying; `None` when the strides cannot express it (the caller copies then).
    /// One `-1` dimension is inferred. Errors when the element counts differ.
    pub fn reshape(&self, shape: &[isize]) -> Result<Option<Layout>> {
        let shape = infer_shape(self.elem_count(), shape)?;
        if self.is_contiguous() {
            let mut l = Layout::contiguous(&shape);
            l.offset = self.offset;
            return Ok(Some(l));
        }
        Ok(self.reshape_strided(&shape))
    }

    /// NumPy's no-copy reshape for strided layouts: groups of old dimensions that are mutually
    /// contiguous map onto groups of new dimensions.
    fn reshape_strided(&self, new_shape: &[usize]) -> Option<Layout> {
        let old: Vec<(usize, isize)> = self
            .shape
            .iter()
            .zip(&self.strides)
            .filter(|(&d, _)| d != 1)
            .map(|(&d, &s)| (d, s))
            .collect();
        let mut new_strides: SmallVec<[isize; INLINE_AXES]> =
            SmallVec::from_elem(0isize, new_shape.len());
        let (mut oi, mut ni) = (0usize, 0usize);
        while oi < old.len() && ni < new_shape.len() {
            let (mut op, mut np) = (old[oi].0, new_shape[ni]);
            let (ostart, nstart) = (oi, ni);
            while op != np {
                if op < np {
                    oi += 1;
                    op *= old.get(oi)?.0;
                } else {
                    ni += 1;
                    np *= *new_shape.get(ni)?;
                }
            }
            for k in ostart..oi {
                if old[k].1 != old[k + 1].1 * old[k + 1].0 as isize {
                    return None;
                }
            }
            new_strides[ni] = old[oi].1;
            for k in (nstart..ni).rev() {
                new_strides[k] = new_strides[k + 1] * new_shape[k + 1] as isize;
            }
            oi += 1;
            ni += 1;
        }
        // Trailing size-1 dimensions of the new shape get a harmless unit stride.
        for s in new_strides.iter_mut().skip(ni) {
            *s = 1;
        }
        Some(Layout {
            shape: SmallVec::from_slice(new_shape),
            strides: new_strides,
            offset: self.offset,
        })
    }

    /// Swaps two axes.
    pub fn transpose(&self, a: isize, b: isize) -> Result<Layout> {
        let a = normalize_axis("transpose", a, self.ndim())?;
        let b = normalize_axis("transpose", b, self.ndim())?;
        let mut l = self.clone();
        l.shape.swap(a, b);
        l.strides.swap(a, b);
        Ok(l)
    }

    /// Reverses all axes (NumPy's `.T`).
    pub fn reversed_axes(&self) -> Layout {
        let mut l = self.clone();
        l.shape.reverse();
        l.strides.reverse();
        l
    }

    /// Reorders axes: new axis `i` is old axis `perm[i]`.
    pub fn permute(&self, perm: &[isize]) -> Result<Layout> {
        let n = self.ndim();
        if perm.len() != n {
            return Err(Error::InvalidArgument(format!(
                "permute: {} axes given for a tensor of {n} dimensions",
                perm.len()
            )));
        }
        let mut seen = vec![false; n];
        let mut l = Layout {
            shape: SmallVec::with_capacity(n),
            strides: SmallVec::with_capacity(n),
            offset: self.offset,
        };
        for &p in perm {
            let p = normalize_axis("permute", p, n)?;
            if std::mem::replace(&mut seen[p], true) {
                return Err(Error::InvalidArgument(format!(
                    "permute: axis {p} repeated in {perm:?}"
                )));
            }
            l.shape.push(self.shape[p]);
            l.strides.push(self.strides[p]);
        }
        Ok(l)
    }

    /// Python-style slice of one axis (`start:stop:step`, negative values count from the end).
    pub fn slice(
        &self,
        axis: isize,
        start: Option<isize>,
        stop: Option<isize>,
        step: isize,
    ) -> Result<Layout> {
        let axis = normalize_axis("slice", axis, self.ndim())?;
        if step == 0 {
            return Err(Error::InvalidArgument("slice step cannot be zero".into()));
        }
        let (first, len) = slice_indices(self.shape[axis], start, stop, step);
        let mut l = self.clone();
        if len > 0 {
            l.offset = (self.offset as isize + first * self.strides[axis]) as usize;
        }
        l.shape[axis] = len;
        // A step beyond the axis selects at most one element; its stride then never moves.
        let step = if len <= 1 { step.signum() } else { step };
        l.strides[axis] = self.strides[axis].checked_mul(step).ok_or_else(|| {
            Error::InvalidArgument(format!("slice step {step} overflows the stride"))
        })?;
        Ok(l)
    }

    /// Selects index `index` of `axis`, dropping that axis.
    pub fn select(&self, axis: usize, index: isize) -> Result<Layout> {
        let size = *self.shape.get(axis).ok_or(Error::AxisOutOfRange {
            op: "index",
            axis: axis as isize,
            ndim: self.ndim(),
        })?;
        let i = if index < 0 {
            index + size as isize
        } else {
            index
        };
        if i < 0 || i >= size as isize {
            return Err(Error::IndexOutOfRange { index, axis, size });
        }
        let mut l = self.clone();
        l.offset = (self.offset as isize + i * self.strides[axis]) as usize;
        l.shape.remove(axis);
        l.strides.remove(axis);
        Ok(l)
    }

    /// NumPy `broadcast_to`: new leading axes and size-1 axes get stride 0. A target of more than
    /// `isize::MAX` elements is [`Error::ShapeTooLarge`] (the tensor-level op also checks bytes).
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Layout> {
        let err = || Error::ShapeMismatch {
            op: "broadcast_to",
            lhs: self.shape.to_vec(),
            rhs: shape.to_vec(),
        };
        if shape.len() < self.ndim() {
            return Err(err());
        }
        checked_shape_bytes("broadcast_to", shape, None)?;
        let extra = shape.len() - self.ndim();
        let mut strides = SmallVec::from_elem(0isize, shape.len());
        for (i, &d) in shape.iter().enumerate().skip(extra) {
            let (od, os) = (self.shape[i - extra], self.strides[i - extra]);
            strides[i] = match od {
                x if x == d => os,
                1 => 0,
                _ => return Err(err()),
            };
        }
        Ok(Layout {
            shape: SmallVec::from_slice(shape),
            strides,
            offset: self.offset,
        })
    }

    /// Removes size-1 axes: all of them, or the one given (an error if it is not size 1).
    pub fn squeeze(&self, axis: Option<isize>) -> Result<Layout> {
        let mut l = self.clone();
        match axis {
            None => {
                let keep: Vec<bool> = self.shape.iter().map(|&d| d != 1).collect();
                l.shape = filter_by(&self.shape, &keep);
                l.strides = filter_by(&self.strides, &keep);
            }
            Some(a) => {
                let a = normalize_axis("squeeze", a, self.ndim())?;
                if self.shape[a] != 1 {
                    return Err(Error::InvalidArgument(format!(
                        "squeeze: cannot select an axis to squeeze out which has size {} (shape {:?}, axis {a})",
                        self.shape[a], self.shape
                    )));
                }
                l.shape.remove(a);
                l.strides.remove(a);
            }
        }
        Ok(l)
    }

    /// Inserts a size-1 axis at `axis` (in `-(ndim+1)..=ndim`).
    pub fn unsqueeze(&self, axis: isize) -> Result<Layout> {
        let a = normalize_axis("unsqueeze", axis, self.ndim() + 1)?;
        let mut l = self.clone();
        let stride = if a < self.ndim() {
            self.strides[a] * self.shape[a] as isize
        } else {
            1
        };
        l.shape.insert(a, 1);
        l.strides.insert(a, stride);
        Ok(l)
    }
}

fn filter_by<T: Copy>(v: &[T], keep: &[bool]) -> SmallVec<[T; INLINE_AXES]> {
    v.iter()
        .zip(keep)
        .filter(|(_, &k)| k)
        .map(|(&x, _)| x)
        .collect()
}

/// Resolves one `-1` in a requested shape against an element count.
pub fn infer_shape(count: usize, shape: &[isize]) -> Result<Vec<usize>> {
    let mut infer = None;
    let mut known = 1usize;
    for (i, &d) in shape.iter().enumerate() {
        match d {
            -1 if infer.is_none() => infer = Some(i),
            -1 => {
                return Err(Error::InvalidArgument(
                    "reshape: can only specify one unknown dimension".into(),
                ))
            }
            d if d < 0 => {
                return Err(Error::InvalidArgument(format!(
                    "reshape: negative dimension {d} in {shape:?}"
                )))
            }
            d => {
                known = known.checked_mul(d as usize).ok_or_else(|| {
                    Error::InvalidArgument(format!("reshape: shape {shape:?} overflows"))
                })?
            }
        }
    }
    let mismatch = || Error::ElementCount {
        op: "reshape",
        len: count,
        shape: shape.iter().map(|&d| d.max(0) as usize).collect(),
        expected: known,
    };
    let mut out: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
    match infer {
        Some(i) => {
            if known == 0 || count % known != 0 {
                return Err(mismatch());
            }
            out[i] = count / known;
        }
        None if known != count => return Err(mismatch()),
        None => {}
    }
    Ok(out)
}

/// Python's `slice.indices` + length: the first index and the number of elements.
pub fn slice_indices(
    size: usize,
    start: Option<isize>,
    stop: Option<isize>,
    step: isize,
) -> (isize, usize) {
    let n = size as isize;
    let clamp = |v: isize, lo: isize, hi: isize| v.max(lo).min(hi);
    let norm = |v: isize| if v < 0 { v.saturating_add(n) } else { v };
    let (start, stop) = if step > 0 {
        (
            start.map_or(0, |s| clamp(norm(s), 0, n)),
            stop.map_or(n, |s| clamp(norm(s), 0, n)),
        )
    } else {
        (
            start.map_or(n - 1, |s| clamp(norm(s), -1, n - 1)),
            stop.map_or(-1, |s| clamp(norm(s), -1, n - 1)),
        )
    };
    // `1 + (span - 1) / |step|` rounds up without overflowing for a step near isize::MAX (or
    // isize::MIN): `span` is at most the axis length.
    let span = if step > 0 { stop - start } else { start - stop };
    let len = if span > 0 {
        1 + (span - 1) as usize / step.unsigned_abs()
    } else {
        0
    };
    (start, len)
}

/// True when element `strides` walk `shape` densely in C order (axes of length 1 may have any
/// stride; a shape with no elements is contiguous).
pub(crate) fn is_c_contiguous(shape: &[usize], strides: &[isize]) -> bool {
    let mut expected = 1isize;
    for (&d, &s) in shape.iter().zip(strides).rev() {
        if d == 0 {
            return true;
        }
        if d != 1 && s != expected {
            return false;
        }
        expected *= d as isize;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_strides_are_row_major() {
        assert_eq!(contiguous_strides(&[2, 3, 4]), vec![12, 4, 1]);
        assert!(Layout::contiguous(&[2, 3]).is_contiguous());
        assert!(!Layout::contiguous(&[2, 3]).reversed_axes().is_contiguous());
    }

    #[test]
    fn slice_indices_match_python() {
        // list(range(10))[a:b:c] lengths and first elements, checked against CPython.
        assert_eq!(slice_indices(10, None, None, 1), (0, 10));
        assert_eq!(slice_indices(10, Some(2), Some(8), 3), (2, 2));
        assert_eq!(slice_indices(10, None, None, -1), (9, 10));
        assert_eq!(slice_indices(10, Some(-3), None, -2), (7, 4));
        assert_eq!(slice_indices(10, Some(20), Some(30), 1).1, 0);
        assert_eq!(slice_indices(0, None, None, -1).1, 0);
        assert_eq!(slice_indices(5, Some(-100), Some(100), 2), (0, 3));
    }

    #[test]
    fn huge_step_selects_one_element_without_overflow() {
        let l = Layout::contiguous(&[4, 5])
            .slice(1, None, None, isize::MAX)
            .unwrap();
        assert_eq!((l.shape()[1], l.strides()[1]), (1, 1));
        let l = Layout::contiguous(&[4, 5])
            .slice(0, None, None, isize::MIN + 1)
            .unwrap();
        assert_eq!((l.shape()[0], l.offset()), (1, 15));
    }

    #[test]
    fn negative_step_slice_points_at_last_element() {
        let l = Layout::contiguous(&[4]).slice(0, None, None, -1).unwrap();
        assert_eq!((l.offset(), l.strides()[0], l.shape()[0]), (3, -1, 4));
        assert_eq!(l.storage_span(), Some((0, 4)));
        l.check_fits(4).unwrap();
        assert!(l.check_fits(3).is_err());
    }

    #[test]
    fn broadcast_gives_zero_strides_and_rejects_mismatch() {
        let l = Layout::contiguous(&[3, 1])
            .broadcast_to(&[2, 3, 4])
            .unwrap();
        assert_eq!(l.strides(), &[0, 1, 0]);
        assert!(Layout::contiguous(&[3]).broadcast_to(&[4]).is_err());
        assert_eq!(
            broadcast_shapes("t", &[2, 1, 3], &[4, 1]).unwrap(),
            vec![2, 4, 3]
        );
        assert!(broadcast_shapes("t", &[2], &[3]).is_err());
    }

    #[test]
    fn reshape_of_transposed_view_copies_unless_strides_allow() {
        let t = Layout::contiguous(&[4, 6]).reversed_axes();
        assert_eq!(t.reshape(&[24]).unwrap(), None);
        // Splitting one axis of a strided view is expressible.
        let s = Layout::contiguous(&[4, 6])
            .slice(1, None, None, 2)
            .unwrap()
            .reshape(&[2, 2, 3])
            .unwrap()
            .unwrap();
        assert_eq!(s.strides(), &[12, 6, 2]);
        assert!(Layout::contiguous(&[4, 6]).reshape(&[5, -1]).is_err());
        assert_eq!(
            Layout::contiguous(&[4, 6])
                .reshape(&[-1, 3])
                .unwrap()
                .unwrap()
                .shape(),
            &[8, 3]
        );
    }

    #[test]
    fn squeeze_unsqueeze_select_permute() {
        let l = Layout::contiguous(&[1, 3, 1]);
        assert_eq!(l.squeeze(None).unwrap().shape(), &[3]);
        assert!(l.squeeze(Some(1)).is_err());
        assert_eq!(l.unsqueeze(-1).unwrap().shape(), &[1, 3, 1, 1]);
        let p = Layout::contiguous(&[2, 3, 4]).permute(&[2, 0, 1]).unwrap();
        assert_eq!(p.strides(), &[1, 12, 4]);
        assert!(Layout::contiguous(&[2, 3]).permute(&[0, 0]).is_err());
        let s = Layout::contiguous(&[2, 3]).select(0, -1).unwrap();
        assert_eq!((s.offset(), s.shape()), (3, &[3usize][..]));
        assert!(Layout::contiguous(&[2, 3]).select(0, 2).is_err());
    }
}

/// The memory a strided view reaches, for views of memory someone else owns (a NumPy array, a
/// DLPack tensor), described from its first element: `shape` and element `strides` (negative and
/// zero strides allowed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StridedSpan {
    /// Offset of the lowest element the view reaches from its first element, in elements (≤ 0;
    /// 0 for an empty view).
    pub lowest: isize,
    /// Elements from the lowest to the highest reached one (0 for an empty view).
    pub len: usize,
    /// The view as a layout over a storage of `len` elements that starts at the lowest element.
    pub layout: Layout,
}

impl StridedSpan {
    /// The span of a view, with checked arithmetic: a shape whose reach overflows is an error
    /// naming it, never a wrapped (and so wrong) span.
    pub fn of(shape: &[usize], strides: &[isize]) -> Result<Self> {
        if shape.len() != strides.len() {
            return Err(Error::InvalidArgument(format!(
                "shape {shape:?} and strides {strides:?} have different lengths"
            )));
        }
        let overflow = || {
            Error::InvalidArgument(format!(
                "a view of shape {shape:?} with strides {strides:?} reaches past the address space"
            ))
        };
        if shape.contains(&0) {
            return Ok(StridedSpan {
                lowest: 0,
                len: 0,
                layout: Layout::from_parts(shape, strides, 0)?,
            });
        }
        let (mut lo, mut hi) = (0isize, 0isize);
        for (&dim, &s) in shape.iter().zip(strides) {
            let steps = isize::try_from(dim - 1).map_err(|_| overflow())?;
            let reach = s.checked_mul(steps).ok_or_else(overflow)?;
            if reach < 0 {
                lo = lo.checked_add(reach).ok_or_else(overflow)?;
            } else {
                hi = hi.checked_add(reach).ok_or_else(overflow)?;
            }
        }
        let len = hi
            .checked_sub(lo)
            .and_then(|d| d.checked_add(1))
            .and_then(|d| usize::try_from(d).ok())
            .ok_or_else(overflow)?;
        Ok(StridedSpan {
            lowest: lo,
            len,
            layout: Layout::from_parts(shape, strides, lo.unsigned_abs())?,
        })
    }
}

impl Layout {
    /// The same view read from its lowest element with non-negative strides, and the axes that
    /// reading reverses: flip those back to get the view. Libraries without negative strides
    /// (libtorch's `as_strided`, candle's layouts, `ndarray` views over a pointer) express any
    /// view this way.
    ///
    /// ```
    /// # use tensorbridge_core::Layout;
    /// let l = Layout::contiguous(&[2, 3]).slice(1, None, None, -1).unwrap();
    /// let (forward, flip) = l.with_nonnegative_strides();
    /// assert_eq!((forward.offset(), forward.strides()), (0, &[3isize, 1][..]));
    /// assert_eq!(flip, vec![1]);
    /// ```
    pub fn with_nonnegative_strides(&self) -> (Layout, Vec<usize>) {
        let mut offset = self.offset as isize;
        let mut strides = SmallVec::with_capacity(self.strides.len());
        let mut flipped = Vec::new();
        for (axis, (&d, &s)) in self.shape.iter().zip(&self.strides).enumerate() {
            if s < 0 && d > 1 {
                offset += s * (d as isize - 1);
                flipped.push(axis);
            }
            strides.push(s.abs());
        }
        let forward = Layout {
            shape: self.shape.clone(),
            strides,
            offset: offset.max(0) as usize,
        };
        (forward, flipped)
    }
}
