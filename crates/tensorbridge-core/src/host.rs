//! Host-side machinery every backend shares: [`HostArray`], the strided → dense copy kernel
//! (cache-blocked, parallel for large tensors, fused with dtype conversion), and safe `ndarray` views
//! of strided storage.
//!
//! Every backend ends its device → host path here: it brings the bytes it must move into host memory
//! (or already has them there) and lets this module lay them out.

use std::mem::MaybeUninit;

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, Axis, IxDyn, ShapeBuilder};

use crate::dtype::{cast_element, DType, Element};
use crate::error::{Error, Result};
use smallvec::SmallVec;

use crate::layout::{checked_shape_bytes, fill_contiguous_strides, Layout};

/// Per-axis data of one copy, on the stack up to this many axes: a copy's plan is made on every
/// call, and its heap allocations cost more than copying a few hundred elements (a 20 × 13
/// strided f32 copy spent a quarter of its instructions in malloc and free).
type Axes<T> = SmallVec<[T; 6]>;

/// The row-major (C) strides of `shape`, in elements, without a heap allocation for up to six
/// axes.
fn c_strides(shape: &[usize]) -> Axes<isize> {
    let mut strides = Axes::from_elem(0isize, shape.len());
    fill_contiguous_strides(shape, &mut strides);
    strides
}

mod cache;
mod parallel;
mod stream;
mod transpose;

pub use cache::{cached_bytes, recycle, release_cached_buffers, CACHE_MIN_BYTES};
pub use parallel::{for_each_chunk_mut, pool_threads};

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

/// The elements of `a` in row-major (C) order as a `Vec`: the array's own buffer, without a
/// copy, when `a` is in standard layout and starts at the buffer's first element (what
/// `ndarray`'s constructors and [`to_contiguous`] make); otherwise one copy. How backends whose
/// storage is a flat `Vec` take a host array.
pub fn into_row_major_vec<T: Clone>(a: ArrayD<T>) -> Vec<T> {
    let a = if a.is_standard_layout() {
        a
    } else {
        a.as_standard_layout().into_owned()
    };
    let n = a.len();
    match a.into_raw_vec_and_offset() {
        (v, Some(0) | None) if v.len() == n => v,
        (v, Some(off)) => v[off..off + n].to_vec(),
        (_, None) => Vec::new(),
    }
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

/// A dtype-erased mutable view of a caller's host buffer: one `ndarray::ArrayViewMutD` per dtype
/// (the destination of [`AnyTensor::to_host_into`]).
#[allow(missing_docs)]
pub enum HostViewMut<'a> {
    Bool(ArrayViewMutD<'a, bool>),
    U8(ArrayViewMutD<'a, u8>),
    U16(ArrayViewMutD<'a, u16>),
    U32(ArrayViewMutD<'a, u32>),
    U64(ArrayViewMutD<'a, u64>),
    I8(ArrayViewMutD<'a, i8>),
    I16(ArrayViewMutD<'a, i16>),
    I32(ArrayViewMutD<'a, i32>),
    I64(ArrayViewMutD<'a, i64>),
    F16(ArrayViewMutD<'a, half::f16>),
    BF16(ArrayViewMutD<'a, half::bf16>),
    F32(ArrayViewMutD<'a, f32>),
    F64(ArrayViewMutD<'a, f64>),
}

/// Calls `$body` with `$v` bound to the typed view inside a [`HostViewMut`].
#[macro_export]
macro_rules! with_host_view_mut {
    ($h:expr, $v:ident => $body:expr) => {
        match $h {
            $crate::host::HostViewMut::Bool($v) => $body,
            $crate::host::HostViewMut::U8($v) => $body,
            $crate::host::HostViewMut::U16($v) => $body,
            $crate::host::HostViewMut::U32($v) => $body,
            $crate::host::HostViewMut::U64($v) => $body,
            $crate::host::HostViewMut::I8($v) => $body,
            $crate::host::HostViewMut::I16($v) => $body,
            $crate::host::HostViewMut::I32($v) => $body,
            $crate::host::HostViewMut::I64($v) => $body,
            $crate::host::HostViewMut::F16($v) => $body,
            $crate::host::HostViewMut::BF16($v) => $body,
            $crate::host::HostViewMut::F32($v) => $body,
            $crate::host::HostViewMut::F64($v) => $body,
        }
    };
}

impl<'a, T: Element> From<ArrayViewMutD<'a, T>> for HostViewMut<'a> {
    fn from(v: ArrayViewMutD<'a, T>) -> Self {
        T::wrap_view_mut(v)
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
        // SAFETY: D is f32 (checked above), so this copies an f32 into an f32.
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
        return ArrayViewD::from_shape(IxDyn(shape), &[])
            .map_err(|e| Error::InvalidArgument(format!("empty view of shape {shape:?}: {e}")));
    }
    // ndarray wants non-negative strides from the lowest address; flip the negative axes after.
    let (forward, flipped) = layout.with_nonnegative_strides();
    let lo = forward.offset();
    let abs: Vec<usize> = forward.strides().iter().map(|s| s.unsigned_abs()).collect();
    // SAFETY: `check_fits` proved every element index lies in `lo..data.len()`, so every pointer
    // the view forms from `data[lo]` along the absolute strides is inside `data`, which is borrowed
    // (shared, so not mutably aliased) for 'a. Strides are non-negative as ndarray requires.
    let mut view = unsafe {
        ArrayViewD::from_shape_ptr(IxDyn(shape).strides(IxDyn(&abs)), data.as_ptr().add(lo))
    };
    for axis in flipped {
        view.invert_axis(Axis(axis));
    }
    Ok(view)
}

/// Copies the elements `layout` selects from `src` into a new C-contiguous array, converting to `D`.
/// The destination is written once, never zero-filled first.
pub fn to_contiguous<S: Element, D: Element>(src: &[S], layout: &Layout) -> Result<ArrayD<D>> {
    layout.check_fits(src.len())?;
    let n = layout.elem_count();
    let mut out = alloc_output::<D>("to_host", layout.shape(), n)?;
    // SAFETY: `out` has capacity for `n` elements. Both branches write each of the `n` positions of
    // the contiguous destination exactly once (the short path one run of `n`, the kernel every index
    // of the shape once), and only then is the length set. `check_fits` proved every source read is
    // inside `src`; for a contiguous layout that is `src[offset..offset + n]`.
    unsafe {
        if n <= ROW_BLOCK && layout.is_contiguous() {
            // Small dense copies skip planning: this is most of the cost of a tiny `to_host`.
            copy_run(src.as_ptr().add(layout.offset()), 1, out.as_mut_ptr(), 1, n);
        } else {
            copy_kernel(src, layout, out.as_mut_ptr(), &c_strides(layout.shape()));
        }
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
    let dst_ptr = dst.as_mut_ptr();
    // SAFETY: `dst` is a valid mutable view of the same shape: every element position it describes
    // is writable and, being an ndarray mutable view, no two positions alias. `check_fits` proved
    // every source read is inside `src`.
    unsafe { copy_kernel(src, layout, dst_ptr, dst.strides()) };
    Ok(())
}

/// The length check of every
/// [`Backend::to_host_into_contiguous`](crate::Backend::to_host_into_contiguous) implementation:
/// a C-order output of `len` elements for a view of `shape` (`elem_count` elements, computed once
/// by the caller) is [`Error::ShapeMismatch`] unless the two are equal, with the buffer's length
/// reported as a 1-d shape.
#[inline]
pub fn check_contiguous_len(shape: &[usize], elem_count: usize, len: usize) -> Result<()> {
    if len == elem_count {
        return Ok(());
    }
    Err(Error::ShapeMismatch {
        op: "to_host_into_contiguous",
        lhs: shape.to_vec(),
        rhs: vec![len],
    })
}

/// Copies the elements `layout` selects from `src` into `dst` in C order, converting to `D`:
/// what [`copy_into`] does for a C-contiguous destination, without an `ndarray` view around it
/// (building that view cost a 4-element `t.numpy(copy=True)` about a tenth of its time).
///
/// `dst` holds exactly `layout.elem_count()` elements and may be uninitialised: every element is
/// written once and none is read. Errors: [`Error::ShapeMismatch`] when `dst` has another length
/// (its length is reported as a 1-d shape), [`Error::InvalidArgument`] when `layout` reaches
/// outside `src`.
pub fn copy_into_contiguous<S: Element, D: Element>(
    src: &[S],
    layout: &Layout,
    dst: &mut [MaybeUninit<D>],
) -> Result<()> {
    let n = layout.elem_count();
    check_contiguous_len(layout.shape(), n, dst.len())?;
    if n == 0 {
        return Ok(());
    }
    let out = dst.as_mut_ptr().cast::<D>();
    let traffic = n.saturating_mul(std::mem::size_of::<S>() + std::mem::size_of::<D>());
    if traffic < PARALLEL_MIN_BYTES && layout.is_contiguous() {
        // Dense and too small to share out: one run, no plan, no strides (what `copy_kernel`
        // would also do, after building the destination's strides).
        let start = layout.offset();
        let run = start
            .checked_add(n)
            .and_then(|end| src.get(start..end))
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "layout {layout:?} reaches outside a storage of {} elements",
                    src.len()
                ))
            })?;
        // SAFETY: `run` is `n` readable elements of `S`; `out` is `dst`'s `n` writable positions
        // (uninitialised `D`s are only written); a `&[S]` and a `&mut [MaybeUninit<D>]` never
        // overlap.
        unsafe { copy_run(run.as_ptr(), 1, out, 1, n) };
        return Ok(());
    }
    layout.check_fits(src.len())?;
    if walks_shape_directly::<S, D>(layout, n, Some(1)) {
        // What `copy_kernel` would do for these (walk the shape, no plan), with the destination
        // written in order instead of through C strides it would first have to make: a 2 × 2
        // transpose or a small step-slice is mostly this fixed cost.
        // SAFETY: `check_fits` proved every source read is inside `src`, starting from `offset`;
        // `out` is `dst`'s `n` writable positions (its length was checked), written in C order,
        // each once.
        unsafe { copy_small_c_order(src.as_ptr().add(layout.offset()), layout, out) };
        return Ok(());
    }
    let strides = c_strides(layout.shape());
    // SAFETY: `check_fits` proved every source read is inside `src`; `out` with C strides
    // addresses the `n` distinct positions of `dst` (its length was checked), each written once.
    unsafe { copy_kernel(src, layout, out, &strides) };
    Ok(())
}

/// [`copy_small`] into a C-contiguous destination: the runs along the last axis are written one
/// after the other from `dst` on.
///
/// # Safety
/// `layout` has at most [`SMALL_COPY_NDIM`] axes and at least one element, every source
/// position it selects from `src` (the element `[0, .., 0]`) is readable, and `dst` has
/// `layout.elem_count()` writable positions.
unsafe fn copy_small_c_order<S: Element, D: Element>(src: *const S, layout: &Layout, dst: *mut D) {
    let (shape, ss) = (layout.shape(), layout.strides());
    let Some(last) = shape.len().checked_sub(1) else {
        dst.write(convert(*src));
        return;
    };
    let (run, step) = (shape[last], ss[last]);
    let mut dst = dst;
    // Zero destination strides: the runs come in C order, so each one starts where the last ended.
    for_each_row(shape, ss, &[0; SMALL_COPY_NDIM], |so, _| {
        copy_run(src.offset(so), step, dst, 1, run);
        dst = dst.add(run);
    });
}

/// A C-contiguous mutable `ndarray` view of `shape` over `dst`, for a backend whose copy into a
/// strided destination ([`Backend::to_host_into`](crate::Backend::to_host_into)) also serves
/// [`Backend::to_host_into_contiguous`](crate::Backend::to_host_into_contiguous).
/// [`Error::ShapeMismatch`] when `dst` does not hold exactly the shape's element count.
///
/// # Safety
/// `dst` may be uninitialised: the caller reads no element through the view that it has not
/// written through it first (a copy that writes every element and reads none is fine).
pub unsafe fn contiguous_view_mut<'a, D: Element>(
    shape: &[usize],
    dst: &'a mut [MaybeUninit<D>],
) -> Result<ArrayViewMutD<'a, D>> {
    let n = checked_shape_bytes("to_host_into_contiguous", shape, None)?;
    check_contiguous_len(shape, n, dst.len())?;
    // SAFETY: `dst` is `n` writable, aligned positions of `D` borrowed for `'a`, exactly the C
    // order view of `shape` (checked above); reads of unwritten elements are excluded by this
    // function's contract.
    Ok(unsafe { ArrayViewMutD::from_shape_ptr(IxDyn(shape), dst.as_mut_ptr().cast::<D>()) })
}

/// An empty vector with room for `n` elements of `D` (the output of `op`, of `shape`; capacity `n`,
/// or up to `n + n / 8` when a cached buffer is reused), or [`Error::TooLarge`]. Every kernel that
/// writes a fresh output takes its buffer from here.
///
/// Large buffers ask Linux for transparent huge pages (as NumPy does for arrays of 4 MiB and more):
/// the first write to fresh memory faults every page in, and with 4 KiB pages that fault handling,
/// not the copy, is what bounds a large `to_host` (about 2.7 GB/s here, against about 12 GB/s with
/// huge pages). Writing the buffer from several threads spreads those faults over them too, and
/// large buffers freed by a backend ([`recycle`]) are handed out again, already paged in.
pub fn alloc_output<D: Element>(op: &'static str, shape: &[usize], n: usize) -> Result<Vec<D>> {
    if let Some(v) = cache::take::<D>(n) {
        return Ok(v);
    }
    // The memory guard: RAM and container limits, and an allocator refusal, are errors.
    let mut out = crate::memory_guard::try_alloc::<D>(op, shape)?;
    advise_huge_pages(&mut out);
    Ok(out)
}

/// Buffers of at least this many bytes are advised to use huge pages (NumPy's threshold).
const HUGE_PAGE_MIN_BYTES: usize = 4 << 20;

#[cfg(target_os = "linux")]
fn advise_huge_pages<T>(buf: &mut Vec<T>) {
    let bytes = buf.capacity() * std::mem::size_of::<T>();
    if bytes < HUGE_PAGE_MIN_BYTES {
        return;
    }
    // SAFETY: `sysconf` only reads a system constant.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        p if p > 0 => p as usize,
        _ => return,
    };
    let begin = buf.as_mut_ptr() as usize;
    let (start, end) = (begin.next_multiple_of(page), (begin + bytes) / page * page);
    if end <= start {
        return;
    }
    // SAFETY: `start..end` are whole pages inside the allocation `buf` owns. MADV_HUGEPAGE only
    // changes how the kernel backs those pages (never their contents, mapping or validity), and a
    // failure just leaves the default backing, so the result is ignored.
    unsafe {
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages<T>(_: &mut Vec<T>) {}

/// A copy that moves fewer bytes than this (output written plus source cache lines read) runs on
/// the calling thread only: waking the pool costs a few µs.
const PARALLEL_MIN_BYTES: usize = 2 << 20;
/// Elements in one work item: long rows (every merged dense copy is one row) are cut into blocks
/// of this size, short rows are grouped into items of about this size, tiled items cover about
/// this many elements, so work spreads evenly over threads and per-item costs stay negligible.
const ROW_BLOCK: usize = 1 << 16;
/// Tile edge for copies that convert while they transpose (`copy_tiles`' own loop; the tile
/// buffer is then 4 to 32 KiB, inside L1). Tiled work items are a whole number of these tiles.
const TILE: usize = 64;
/// Rows (along the tiled axis) of one tiled work item, and of one tile of a plain transpose
/// (`transpose::transpose_tiled`).
const TILE_ITEM_ROWS: usize = 256;
/// Bytes of output in one tiled work item: its columns (along the last axis) are
/// `TILE_ITEM_BYTES / (TILE_ITEM_ROWS * size_of::<D>())`, 2 KiB of each output row (512 f32). Past
/// the last-level cache a transpose is bound by how much of each DRAM burst and prefetch stream it
/// uses, so every source and destination run of an item is long: 256 elements along the tiled
/// axis, 2 KiB along the last one. A plain transpose through the tile buffer moves a whole item as
/// one tile. Measured here (2-vCPU Xeon model 207, minimum of 10 `copy_into` of an 8000² transpose
/// into a paged-in array): f32 53 ms with these items against 112 ms with the 64² tiles and
/// 256 × 256 items used before (u8 19 against 21 ms, u16 31 against 100 ms, f64 99 against
/// 139 ms); at 8192² f32 58 against 109 ms, at 4096² f32 14 against 28 ms.
const TILE_ITEM_BYTES: usize = 512 << 10;

/// Transposes whose output is at least this large write it through a tile buffer with streaming
/// stores (`transpose::transpose_tiled`), whatever their strides: a normal store first reads the
/// line it writes (a third of the memory traffic) and the output evicts the source from the cache.
/// Below it the output stays in the cache (4 MiB of L2 here), and streaming it out costs more than
/// it saves. Measured here (2-core VM, 300 MiB L3 shared with other guests; medians of
/// `t.T.numpy(out=o)` into a paged-in `o`, GB/s of output, threshold 16 MiB against the 96 MiB
/// used before, same build, alternating runs): f32 2500² (24 MiB) 8.8–9.0 against 5.0–6.1, 3000²
/// (34 MiB) 9.2–9.4 against 3.0–3.9, 4000² (61 MiB) 7.2–7.4 against 1.9–2.5, 5000² (95 MiB)
/// 8.1–8.4 against 2.8–2.9; f64 2000² (31 MiB) 7.9–8.9 against 2.4–3.1; u8 6000² (34 MiB) 6.0–6.1
/// against 2.5–2.6; u16 3000² (17 MiB) 7.8–8.1 against 3.9–4.2. Streaming below it lost: u8
/// 3000² (8.6 MiB) 4.6 against 6.3, u16 2000² (7.6 MiB) 6.4 against 8.5.
///
/// Dense copies of the same dtype from this size on stream their output too (as glibc's memcpy
/// does for copies of the order of the last-level cache): `np.array(t)` of 256 MB into a recycled,
/// paged-in buffer, took
/// 12.7–13.1 ms with streaming stores against 19.6–19.8 ms without (the memcpy limit, `np.copyto`
/// into a paged-in array, 15.6 ms; `benches/python/bench.py --sizes 64e6 --workloads array_copy`).
const STREAM_MIN_BYTES: usize = 16 << 20;

struct SendPtr<T>(*mut T);
// SAFETY: the kernel hands each worker a disjoint set of destination positions, so sharing the base
// pointer across threads never lets two threads write the same element; the source is only read.
unsafe impl<T> Send for SendPtr<T> {}
// SAFETY: as for Send: shared access only hands out the pointer; writes go to disjoint elements.
unsafe impl<T> Sync for SendPtr<T> {}

/// One axis of a copy: its length and its strides (in elements) on both sides.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Dim {
    len: usize,
    src: isize,
    dst: isize,
}

/// One axis of the grid of work items: the axis is cut into blocks of `block` elements.
#[derive(Clone, Copy, Debug)]
struct GridAxis {
    dim: Dim,
    block: usize,
}

impl GridAxis {
    fn count(&self) -> usize {
        self.dim.len.div_ceil(self.block)
    }
    /// Elements of block `i` (the last block may be short).
    fn extent(&self, i: usize) -> usize {
        self.block.min(self.dim.len - i * self.block)
    }
}

/// The loop plan for one copy: axes merged where both sides are contiguous, then a grid of work
/// items over them. Each item is a run along the last axis, or a block of runs along the last
/// axis and `row_axis`: row by row (rows mode: both sides dense along the last axis, or no better
/// axis to walk; short rows are grouped so an item is never tiny), or in tiles (tiled mode: the
/// source and the destination are dense along different axes, as in a transpose).
#[derive(Debug)]
struct Plan {
    grid: Axes<GridAxis>,
    /// The grid axis whose block gives the rows of each item.
    row_axis: Option<usize>,
    /// Items are walked in tiles of `row_axis` × the last axis.
    tiled: bool,
    /// Tiles are written out with streaming stores (a large output; see [`STREAM_MIN_BYTES`]).
    stream: bool,
}

impl Plan {
    fn new(shape: &[usize], src: &[isize], dst: &[isize], dst_elem_bytes: usize) -> Plan {
        let dims = merge_dims(shape, src, dst);
        let last = dims.len() - 1;
        let mut grid: Axes<GridAxis> = dims.iter().map(|&dim| GridAxis { dim, block: 1 }).collect();
        if let Some(t) = pick_tile_axis(&dims) {
            grid[t].block = TILE_ITEM_ROWS;
            let rows = TILE_ITEM_ROWS.min(dims[t].len);
            grid[last].block =
                (TILE_ITEM_BYTES / (rows * dst_elem_bytes.max(1))).next_multiple_of(TILE);
            return Plan {
                grid,
                row_axis: Some(t),
                tiled: true,
                stream: false,
            };
        }
        grid[last].block = ROW_BLOCK;
        let cols = dims[last].len;
        if last == 0 || cols >= ROW_BLOCK {
            return Plan {
                grid,
                row_axis: None,
                tiled: false,
                stream: false,
            };
        }
        grid[last - 1].block = (ROW_BLOCK / cols).clamp(1, dims[last - 1].len);
        Plan {
            grid,
            row_axis: Some(last - 1),
            tiled: false,
            stream: false,
        }
    }

    /// Bytes a copy of `n` elements moves: the output written plus the source cache lines read
    /// (a strided run touches a whole line per element once its stride passes a line).
    fn traffic<S, D>(&self, n: usize) -> usize {
        let (s, d) = (std::mem::size_of::<S>(), std::mem::size_of::<D>());
        let last = self.grid[self.grid.len() - 1].dim;
        let read = if self.tiled {
            s
        } else {
            (last.src.unsigned_abs() * s).clamp(s, 64)
        };
        n.saturating_mul(read + d)
    }

    fn items(&self) -> usize {
        self.grid.iter().map(GridAxis::count).product()
    }

    /// The grid index of item `item` (row-major over the grid).
    fn grid_index(&self, mut item: usize) -> Axes<usize> {
        let mut index = Axes::from_elem(0, self.grid.len());
        for (i, g) in index.iter_mut().zip(&self.grid).rev() {
            *i = item % g.count();
            item /= g.count();
        }
        index
    }

    /// Steps `index` to the next item, row-major.
    fn advance(&self, index: &mut [usize]) {
        for (i, g) in index.iter_mut().zip(&self.grid).rev() {
            *i += 1;
            if *i < g.count() {
                return;
            }
            *i = 0;
        }
    }

    /// Copies items `items`, in order.
    ///
    /// # Safety
    /// As for [`copy_kernel`]; `src` and `dst` point at the element `[0, .., 0]` of each side.
    unsafe fn run_items<S: Element, D: Element>(
        &self,
        items: std::ops::Range<usize>,
        src: *const S,
        dst: *mut D,
    ) {
        let last = self.grid.len() - 1;
        let mut index = self.grid_index(items.start);
        for _ in items {
            let (mut so, mut dof) = (0isize, 0isize);
            for (g, &i) in self.grid.iter().zip(&index) {
                let at = (i * g.block) as isize;
                so += at * g.dim.src;
                dof += at * g.dim.dst;
            }
            let (s, d) = (src.offset(so), dst.offset(dof));
            let col = Dim {
                len: self.grid[last].extent(index[last]),
                ..self.grid[last].dim
            };
            let Some(r) = self.row_axis else {
                if self.stream && S::DTYPE == D::DTYPE && col.src == 1 && col.dst == 1 {
                    // A large dense copy: the destination goes out as streaming stores, as a
                    // large memcpy's does (a normal store reads each line first: a third more
                    // traffic).
                    // SAFETY: equal dtypes are one type; `col.len` dense elements on both sides
                    // are inside their ranges (caller); the ranges do not overlap (the source is
                    // read-only storage). The fence after the loop orders the stores.
                    let bytes = col.len * std::mem::size_of::<D>();
                    stream::write_out(s as *const u8, d as *mut u8, bytes);
                } else {
                    copy_run(s, col.src, d, col.dst, col.len);
                }
                self.advance(&mut index);
                continue;
            };
            let row = Dim {
                len: self.grid[r].extent(index[r]),
                ..self.grid[r].dim
            };
            if !self.tiled {
                for k in 0..row.len as isize {
                    copy_run(
                        s.offset(k * row.src),
                        col.src,
                        d.offset(k * row.dst),
                        col.dst,
                        col.len,
                    );
                }
            } else if row.src.unsigned_abs() <= col.src.unsigned_abs() {
                // Read along whichever axis the source is denser on, write along the other.
                copy_tiles(s, d, row, col, self.stream);
            } else {
                copy_tiles(s, d, col, row, self.stream);
            }
            self.advance(&mut index);
        }
        if self.stream {
            stream::fence_streaming_stores();
        }
    }
}

/// Drops size-1 axes and merges neighbours that are contiguous with each other on both sides.
/// Always returns at least one axis (a 0-d copy is one element).
fn merge_dims(shape: &[usize], src: &[isize], dst: &[isize]) -> Axes<Dim> {
    let mut merged: Axes<Dim> = Axes::new();
    for ((&len, &s), &d) in shape.iter().zip(src).zip(dst) {
        if len == 1 {
            continue;
        }
        match merged.last_mut() {
            Some(prev) if prev.src == s * len as isize && prev.dst == d * len as isize => {
                *prev = Dim {
                    len: prev.len * len,
                    src: s,
                    dst: d,
                };
            }
            _ => merged.push(Dim {
                len,
                src: s,
                dst: d,
            }),
        }
    }
    if merged.is_empty() {
        merged.push(Dim {
            len: 1,
            src: 1,
            dst: 1,
        });
    }
    merged
}

/// The outer axis to tile against the last one, when the last axis is not dense on both sides:
/// the axis with the smallest stride, below the last axis's, on the side where the last axis is
/// sparse. `None` keeps rows mode.
fn pick_tile_axis(dims: &[Dim]) -> Option<usize> {
    let last = dims.len() - 1;
    let denser_than_last = |side: fn(&Dim) -> usize| {
        (0..last)
            .filter(|&a| dims[a].len > 1 && side(&dims[a]) < side(&dims[last]))
            .min_by_key(|&a| side(&dims[a]))
    };
    let src_side = |d: &Dim| d.src.unsigned_abs();
    let dst_side = |d: &Dim| d.dst.unsigned_abs();
    if src_side(&dims[last]) > 1 {
        if let Some(a) = denser_than_last(src_side) {
            return Some(a);
        }
    }
    if dst_side(&dims[last]) > 1 {
        return denser_than_last(dst_side);
    }
    None
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
    // SAFETY: `check_fits` (caller contract) proved `offset` is inside `src`.
    let src = src.as_ptr().add(layout.offset());
    let traffic = n.saturating_mul(std::mem::size_of::<S>() + std::mem::size_of::<D>());
    if traffic < PARALLEL_MIN_BYTES
        && layout.is_contiguous()
        && crate::layout::is_c_contiguous(layout.shape(), dst_strides)
    {
        // Dense on both sides in the same order and too small to share out: the plan would be one
        // run on this thread, so skip making it (its allocations cost about as much as
        // copying 10,000 f32).
        copy_run(src, 1, dst, 1, n);
        return;
    }
    if walks_shape_directly::<S, D>(layout, n, dst_strides.last().copied()) {
        copy_small(src, layout.shape(), layout.strides(), dst, dst_strides);
        return;
    }
    let mut plan = Plan::new(
        layout.shape(),
        layout.strides(),
        dst_strides,
        std::mem::size_of::<D>(),
    );
    plan.stream = n.saturating_mul(std::mem::size_of::<D>()) >= STREAM_MIN_BYTES;
    let items = plan.items();
    if plan.traffic::<S, D>(n) < PARALLEL_MIN_BYTES || items < 2 {
        plan.run_items(0..items, src, dst);
        return;
    }
    // Items are claimed one at a time by the calling thread and the pool threads that start in
    // time (see `parallel`): a worker that wakes late, or shares a core, only takes fewer items,
    // and page faults that make some items dearer than others even out.
    let (src, dst) = (SendPtr(src as *mut S), SendPtr(dst));
    let (src, dst) = (&src, &dst);
    parallel::run_chunks(items, 1, &move |range| {
        // SAFETY: each item is handed out once and items partition the index space, so no two
        // threads write the same position (see `SendPtr`); the pointers are valid for the whole
        // copy per this function's contract, and `run_chunks` returns only after every item.
        unsafe { plan.run_items(range, src.0 as *const S, dst.0) };
    });
}

/// True for a copy that walks its shape directly, one run along the last axis at a time, with no
/// plan ([`copy_small`], or [`copy_small_c_order`] into a C-contiguous destination): a small one
/// (at most [`SMALL_COPY_ELEMS`] elements), or one that [`gathers_within_lines`]. Both
/// [`copy_into_contiguous`] and [`copy_kernel`] decide with this, so they agree on which copies
/// take that path. `n` and `dst_last_stride` are as for [`gathers_within_lines`].
fn walks_shape_directly<S, D>(layout: &Layout, n: usize, dst_last_stride: Option<isize>) -> bool {
    layout.ndim() <= SMALL_COPY_NDIM
        && (n <= SMALL_COPY_ELEMS || gathers_within_lines::<S, D>(layout, n, dst_last_stride))
}

/// True for a copy that the plan would run on this thread in rows along the last axis, with
/// nothing to gain from tiles: the destination dense along the last axis, the source's elements
/// along it less than a cache line apart (a step-slice such as `t[:, ::8]`), and too little
/// traffic to share out (counted as [`Plan::traffic`] counts it). Such a copy walks the shape
/// directly, as a small one does: planning it cost more than copying a few hundred elements
/// (a 20 × 13 f32 copy of `t[:, ::8]`: 601 ns planned, 351 ns for 19 × 13 unplanned).
///
/// `n` is `layout.elem_count()`; `dst_last_stride` the destination's element stride along the
/// last axis (`None` for a 0-d copy).
fn gathers_within_lines<S, D>(layout: &Layout, n: usize, dst_last_stride: Option<isize>) -> bool {
    let (s, d) = (std::mem::size_of::<S>(), std::mem::size_of::<D>());
    let (Some(&src_last), Some(1)) = (layout.strides().last(), dst_last_stride) else {
        return false;
    };
    let read = (src_last.unsigned_abs().saturating_mul(s)).clamp(s, 64);
    layout.ndim() <= SMALL_COPY_NDIM && read < 64 && n.saturating_mul(read + d) < PARALLEL_MIN_BYTES
}

/// Copies of at most this many elements (and axes) walk the shape directly: planning them would
/// cost more than the copy (a 2 × 2 transpose took 210 ns planned, against 80 ns for a dense copy).
const SMALL_COPY_ELEMS: usize = 256;
const SMALL_COPY_NDIM: usize = 8;

/// Copies every index of `shape` (at most [`SMALL_COPY_NDIM`] axes, at least one element) with
/// the given element strides on each side, one run along the last axis at a time.
///
/// # Safety
/// As for [`copy_kernel`], with `src` and `dst` at the element `[0, .., 0]` of each side.
unsafe fn copy_small<S: Element, D: Element>(
    src: *const S,
    shape: &[usize],
    ss: &[isize],
    dst: *mut D,
    ds: &[isize],
) {
    let Some(last) = shape.len().checked_sub(1) else {
        dst.write(convert(*src));
        return;
    };
    let (run, src_step, dst_step) = (shape[last], ss[last], ds[last]);
    for_each_row(shape, ss, ds, |so, dof| {
        copy_run(src.offset(so), src_step, dst.offset(dof), dst_step, run);
    });
}

/// Calls `visit(src_offset, dst_offset)` once for each run along the last axis of `shape`, in C
/// order, with the run's first element in each side's element strides (`ss`, `ds`): the outer
/// axes are stepped like an odometer, so nothing is multiplied per run. One walker for
/// [`copy_small`] and [`copy_small_c_order`].
///
/// `shape` has 1 to [`SMALL_COPY_NDIM`] axes and at least one element (more axes panic); `ss`
/// and `ds` have at least as many entries as `shape`.
#[inline(always)]
fn for_each_row(shape: &[usize], ss: &[isize], ds: &[isize], mut visit: impl FnMut(isize, isize)) {
    let Some(last) = shape.len().checked_sub(1) else {
        return;
    };
    let mut index = [0usize; SMALL_COPY_NDIM];
    let (mut so, mut dof) = (0isize, 0isize);
    loop {
        visit(so, dof);
        // Step the outer axes like an odometer; done when axis 0 wraps.
        let mut axis = last;
        loop {
            if axis == 0 {
                return;
            }
            axis -= 1;
            index[axis] += 1;
            so += ss[axis];
            dof += ds[axis];
            if index[axis] < shape[axis] {
                break;
            }
            so -= ss[axis] * shape[axis] as isize;
            dof -= ds[axis] * shape[axis] as isize;
            index[axis] = 0;
        }
    }
}

/// Copies `len` elements along one axis with strides `ss` (source) and `ds` (destination).
///
/// # Safety
/// Every `src.offset(j * ss)` must be readable and every `dst.offset(j * ds)` writable, `j < len`.
#[inline]
unsafe fn copy_run<S: Element, D: Element>(
    src: *const S,
    ss: isize,
    dst: *mut D,
    ds: isize,
    len: usize,
) {
    match (ss, ds) {
        (1, 1) if S::DTYPE == D::DTYPE => {
            // SAFETY: equal dtypes mean equal types (`Element` is sealed, one type per dtype); the
            // ranges are valid per the contract and cannot overlap (one is read-only storage).
            std::ptr::copy_nonoverlapping(src as *const D, dst, len)
        }
        (1, 1) => {
            #[cfg(target_arch = "x86_64")]
            if len >= CONVERT_AVX2_MIN_ELEMS && std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: AVX2 is present (checked); the ranges are as this function's contract.
                return convert_run_avx2(src, dst, len);
            }
            convert_run(src, dst, len)
        }
        (_, 1) => {
            for j in 0..len {
                dst.add(j).write(convert(*src.offset(j as isize * ss)));
            }
        }
        _ => {
            for j in 0..len as isize {
                dst.offset(j * ds).write(convert(*src.offset(j * ss)));
            }
        }
    }
}

/// Dense runs at least this long are converted with AVX2 where the CPU has it (the build targets
/// baseline x86-64, whose SSE2 loop converts half as many elements per instruction). Shorter
/// runs are not worth the feature check.
#[cfg(target_arch = "x86_64")]
const CONVERT_AVX2_MIN_ELEMS: usize = 64;

/// Converts `len` dense elements: a plain slice-to-slice loop, which the compiler vectorises
/// (bf16 → f32 is a shift, see [`convert`]).
///
/// # Safety
/// `src` has `len` readable elements and `dst` `len` writable positions, not overlapping.
#[inline(always)]
unsafe fn convert_run<S: Element, D: Element>(src: *const S, dst: *mut D, len: usize) {
    let s = std::slice::from_raw_parts(src, len);
    for (j, &v) in s.iter().enumerate() {
        dst.add(j).write(convert(v));
    }
}

/// [`convert_run`] compiled for AVX2 (eight f32 lanes per instruction instead of four).
///
/// # Safety
/// As for [`convert_run`], and the CPU supports AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn convert_run_avx2<S: Element, D: Element>(src: *const S, dst: *mut D, len: usize) {
    convert_run(src, dst, len)
}

/// Copies a `read.len × write.len` block, one `TILE × TILE` tile at a time through an on-stack
/// buffer: the source is read along `read` (its denser axis), the destination written along
/// `write`. Each source run and each destination run is touched once, in full, so power-of-two
/// strides cannot make a tile's cache lines evict each other before they are used up.
///
/// # Safety
/// Every source and destination position of the block must be readable and writable, as for
/// [`copy_run`] along each axis.
unsafe fn copy_tiles<S: Element, D: Element>(
    src: *const S,
    dst: *mut D,
    read: Dim,
    write: Dim,
    stream: bool,
) {
    if S::DTYPE == D::DTYPE && read.src == 1 && write.dst == 1 {
        // A plain transpose (no conversion, each side dense along its own axis): move the bits
        // in register blocks.
        let w = std::mem::size_of::<D>();
        let (s, d) = (src as *const u8, dst as *mut u8);
        let (ss, ds) = (write.src * w as isize, read.dst * w as isize);
        // SAFETY: equal dtypes mean equal types, so the bytes move unchanged; positions `(i, j)`
        // of the block are `src + i + j * write.src` and `dst + i * read.dst + j` elements, as
        // `transpose` addresses them in bytes, all valid per this function's contract.
        match w {
            1 => return transpose::transpose_any::<1>(s, ss, d, ds, read.len, write.len, stream),
            2 => return transpose::transpose_any::<2>(s, ss, d, ds, read.len, write.len, stream),
            4 => return transpose::transpose_any::<4>(s, ss, d, ds, read.len, write.len, stream),
            8 => return transpose::transpose_any::<8>(s, ss, d, ds, read.len, write.len, stream),
            _ => {}
        }
    }
    // The tile lives in the thread's heap buffer: 32 KiB of f64 on the stack overflowed threads
    // with small stacks (Python allows 32 KiB).
    const { assert!(TILE * TILE * 8 <= TILE_ITEM_BYTES && std::mem::align_of::<D>() <= 8) };
    transpose::with_tile_buffer(|b| {
        // SAFETY: the buffer has `TILE_ITEM_BYTES` bytes aligned to 8, room for `TILE * TILE`
        // elements of `D` (at most 8 bytes and 8-aligned, asserted above); `MaybeUninit` needs
        // no initialisation, and only this call uses the buffer until it returns.
        let buf = unsafe {
            std::slice::from_raw_parts_mut(b.cast::<std::mem::MaybeUninit<D>>(), TILE * TILE)
        };
        for j0 in (0..write.len).step_by(TILE) {
            let cols = TILE.min(write.len - j0);
            for i0 in (0..read.len).step_by(TILE) {
                let rows = TILE.min(read.len - i0);
                let base = src.offset(i0 as isize * read.src + j0 as isize * write.src);
                for j in 0..cols {
                    let s = base.offset(j as isize * write.src);
                    let row = &mut buf[j * TILE..j * TILE + rows];
                    if read.src == 1 {
                        for (slot, &v) in row.iter_mut().zip(std::slice::from_raw_parts(s, rows)) {
                            slot.write(convert(v));
                        }
                    } else {
                        for (i, slot) in row.iter_mut().enumerate() {
                            slot.write(convert(*s.offset(i as isize * read.src)));
                        }
                    }
                }
                let base = dst.offset(i0 as isize * read.dst + j0 as isize * write.dst);
                for i in 0..rows {
                    let d = base.offset(i as isize * read.dst);
                    for j in 0..cols {
                        // SAFETY: the loop above initialised `buf[j * TILE + i]` for every
                        // `j < cols`, `i < rows` of this tile.
                        let v = buf[j * TILE + i].assume_init();
                        d.offset(j as isize * write.dst).write(v);
                    }
                }
            }
        }
    });
}

/// The checks for a new result of `shape` × `dtype` (every op that makes one calls this before
/// allocating): [`Error::ShapeTooLarge`] beyond `isize::MAX` bytes (NumPy's ValueError) and, for a
/// result in host memory, the [`memory_guard`](crate::memory_guard) checks against the memory
/// available now ([`Error::TooLarge`], NumPy's MemoryError). Returns the size in bytes.
pub fn new_array_guard(
    op: &'static str,
    shape: &[usize],
    dtype: DType,
    in_host_memory: bool,
) -> Result<usize> {
    let bytes = checked_shape_bytes(op, shape, Some(dtype))?;
    if in_host_memory {
        crate::memory_guard::check_host_bytes(op, shape, dtype, bytes)?;
    }
    Ok(bytes)
}

// ---- bool bytes ---------------------------------------------------------------------------------

/// True when every byte is 0 or 1: the only bit patterns a Rust `bool` may have. Any other byte in
/// memory read as `bool` is undefined behaviour, so every ingress of foreign or raw memory as bool
/// checks with this first (NumPy, PyTorch and DLPack producers allow any non-zero byte as True:
/// `np.array([0, 3], np.uint8).view(np.bool_)`).
///
/// One pass, OR-reducing chunks so the compiler vectorises it; it stops at the first chunk with a
/// stray byte.
pub fn bool_bytes_are_canonical(bytes: &[u8]) -> bool {
    const CHUNK: usize = 4096;
    bytes
        .chunks(CHUNK)
        .all(|c| c.iter().fold(0u8, |acc, &b| acc | b) <= 1)
}

/// NumPy's truth value of each byte (`!= 0`), as bools: the normalising copy for memory that
/// [`bool_bytes_are_canonical`] rejected.
pub fn bools_from_bytes(bytes: &[u8]) -> Vec<bool> {
    bytes.iter().map(|&b| b != 0).collect()
}

/// Bytes read as bools: borrowed in place when they are all 0 or 1, else one normalised copy.
pub fn bool_slice_from_bytes(bytes: &[u8]) -> std::borrow::Cow<'_, [bool]> {
    if bool_bytes_are_canonical(bytes) {
        // SAFETY: every byte is 0 or 1 (checked just above), the two valid bit patterns of
        // `bool`, which has the size and alignment of `u8`; the slice borrows `bytes`.
        let b = unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<bool>(), bytes.len()) };
        std::borrow::Cow::Borrowed(b)
    } else {
        std::borrow::Cow::Owned(bools_from_bytes(bytes))
    }
}

/// A C-order host array of `dtype` and `shape` from the elements' native-endian bytes (copied;
/// any alignment). Bool bytes are normalised (any non-zero byte is true), so foreign bool memory
/// can never become a `bool` with another bit pattern.
pub fn host_array_from_bytes(dtype: DType, shape: &[usize], bytes: &[u8]) -> Result<HostArray> {
    let n = checked_shape_bytes("from bytes", shape, Some(dtype))? / dtype.size_in_bytes();
    if bytes.len() != n * dtype.size_in_bytes() {
        return Err(Error::ElementCount {
            op: "from bytes",
            len: bytes.len() / dtype.size_in_bytes(),
            shape: shape.to_vec(),
            expected: n,
        });
    }
    let typed =
        crate::with_dtype!(dtype, T => HostArray::from(typed_from_bytes::<T>(shape, bytes)?));
    Ok(typed)
}

fn typed_from_bytes<T: Element>(shape: &[usize], bytes: &[u8]) -> Result<ArrayD<T>> {
    let v: Vec<T> = if T::DTYPE == DType::Bool {
        bytes
            .iter()
            .map(|&b| T::from_i128((b != 0) as i128))
            .collect()
    } else {
        let size = std::mem::size_of::<T>();
        let mut v: Vec<T> = Vec::with_capacity(bytes.len() / size);
        // SAFETY: `v` has room for `bytes.len()` bytes of `T`s; the regions do not overlap; every
        // non-bool element type is plain data for which every bit pattern is valid; the length is
        // set after the bytes are written.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), v.as_mut_ptr().cast::<u8>(), bytes.len());
            v.set_len(bytes.len() / size);
        }
        v
    };
    ArrayD::from_shape_vec(IxDyn(shape), v)
        .map_err(|e| Error::InvalidArgument(format!("from bytes: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::bf16;
    use ndarray::{Array, ShapeBuilder};

    /// Dense conversion runs (the AVX2 loop from `CONVERT_AVX2_MIN_ELEMS` elements where the
    /// CPU has it, the baseline loop below) give what converting one element at a time gives,
    /// at lengths around the threshold and with special values (NaN, infinities, -0, values
    /// that round or saturate).
    #[test]
    fn dense_conversion_runs_match_the_scalar_conversion() {
        fn check<S: Element, D: Element>(src: &[S]) {
            for len in [1, 63, 64, 65, 257, src.len()] {
                let mut out = vec![MaybeUninit::<D>::uninit(); len];
                // SAFETY: `len` elements of `src` are read and `len` positions of `out` written.
                unsafe { copy_run(src.as_ptr(), 1, out.as_mut_ptr().cast::<D>(), 1, len) };
                for (j, o) in out.iter().enumerate() {
                    // SAFETY: every position was written by `copy_run`.
                    let got = unsafe { o.assume_init() };
                    let want: D = convert(src[j]);
                    // Compared as bits: NaN payloads and -0 included.
                    assert_eq!(
                        got.to_f64().to_bits(),
                        want.to_f64().to_bits(),
                        "{:?} -> {:?} at {j} of {len}",
                        S::DTYPE,
                        D::DTYPE
                    );
                }
            }
        }
        let specials = [
            f32::NAN,
            -f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            1e30,
            -1e-30,
        ];
        let f: Vec<f32> = (0..1000)
            .map(|i| {
                specials
                    .get(i % 50)
                    .copied()
                    .unwrap_or(i as f32 * 0.37 - 150.0)
            })
            .collect();
        let b: Vec<bf16> = f.iter().map(|&x| bf16::from_f32(x)).collect();
        check::<bf16, f32>(&b);
        check::<bf16, f64>(&b);
        check::<f32, f64>(&f);
        check::<f32, bf16>(&f);
        check::<f32, i32>(&f);
        check::<f32, u8>(&f);
        let i: Vec<i64> = (0..1000).map(|k| (k - 500) * 0x0123_4567_89ab).collect();
        check::<i64, f32>(&i);
        check::<i64, i16>(&i);
    }

    fn iota(n: usize) -> Vec<i32> {
        (0..n as i32).collect()
    }

    #[test]
    fn into_row_major_vec_takes_the_buffer_or_copies_in_c_order() {
        // Standard layout from the buffer's start: the buffer itself, not a copy.
        let a = Array::from_shape_vec(IxDyn(&[2, 3]), iota(6)).unwrap();
        let start = a.as_ptr();
        let v = into_row_major_vec(a);
        assert_eq!(v, iota(6));
        assert_eq!(v.as_ptr(), start);
        // Fortran order, a transpose, an offset slice, a negative step, empty: C-order values.
        let f = Array::from_shape_vec(IxDyn(&[2, 3]).f(), iota(6)).unwrap();
        assert_eq!(into_row_major_vec(f), vec![0, 2, 4, 1, 3, 5]);
        let t = Array::from_shape_vec(IxDyn(&[2, 3]), iota(6))
            .unwrap()
            .reversed_axes();
        assert_eq!(into_row_major_vec(t), vec![0, 3, 1, 4, 2, 5]);
        let mut s = Array::from_shape_vec(IxDyn(&[3, 2]), iota(6)).unwrap();
        s.slice_collapse(ndarray::s![1.., ..]);
        assert_eq!(into_row_major_vec(s), vec![2, 3, 4, 5]);
        let mut r = Array::from_shape_vec(IxDyn(&[4]), iota(4)).unwrap();
        r.invert_axis(ndarray::Axis(0));
        assert_eq!(into_row_major_vec(r), vec![3, 2, 1, 0]);
        let e = Array::from_shape_vec(IxDyn(&[0, 3]), Vec::<i32>::new()).unwrap();
        assert!(into_row_major_vec(e).is_empty());
    }

    #[test]
    fn transposed_copy_matches_ndarray_for_tile_edges() {
        for (r, c) in [(1, 1), (31, 33), (64, 64), (65, 7), (3, 100), (129, 63)] {
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

    /// Checks `to_contiguous` and `copy_into` (C- and F-order destinations) against ndarray's view
    /// of the same layout, element by element, with the conversion applied by the reference too.
    fn assert_copies_match<S: Element, D: Element>(data: &[S], layout: &Layout) {
        let view = strided_view(data, layout).unwrap();
        let want: ArrayD<D> = view.map(|&v| convert::<S, D>(v));
        let got: ArrayD<D> = to_contiguous(data, layout).unwrap();
        assert!(got.is_standard_layout());
        assert_eq!(got, want, "to_contiguous of {layout:?}");
        let mut c = ArrayD::<D>::default(IxDyn(layout.shape()));
        copy_into(data, layout, &mut c.view_mut()).unwrap();
        assert_eq!(c, want, "copy_into C-order of {layout:?}");
        let mut f = ArrayD::<D>::default(IxDyn(layout.shape()).f());
        copy_into(data, layout, &mut f.view_mut()).unwrap();
        assert_eq!(f, want, "copy_into F-order of {layout:?}");
    }

    #[test]
    fn tiles_cover_partial_edges_around_the_tile_size() {
        for (r, c) in [
            (TILE - 1, TILE + 1),
            (TILE, TILE),
            (2 * TILE + 3, 5),
            (5, 2 * TILE + 3),
            (1, 3 * TILE),
            (3 * TILE, 2),
            (97, 131),
        ] {
            let data = iota(r * c);
            assert_copies_match::<i32, i32>(&data, &Layout::contiguous(&[r, c]).reversed_axes());
        }
    }

    #[test]
    fn odd_permutations_and_converting_copies_match_ndarray() {
        let data = iota(3 * 5 * 7 * 11);
        let base = Layout::contiguous(&[3, 5, 7, 11]);
        for perm in [[3, 2, 1, 0], [0, 3, 1, 2], [2, 0, 3, 1], [1, 0, 2, 3]] {
            let l = base.permute(&perm).unwrap();
            assert_copies_match::<i32, i32>(&data, &l);
            assert_copies_match::<i32, f64>(&data, &l);
            assert_copies_match::<i32, i8>(&data, &l);
        }
        let halves: Vec<bf16> = data.iter().map(|&v| bf16::from_f32(v as f32)).collect();
        assert_copies_match::<bf16, f32>(&halves, &base.permute(&[3, 1, 0, 2]).unwrap());
    }

    #[test]
    fn negative_strides_in_tiled_and_row_modes() {
        let (r, c) = (150, 77);
        let data = iota(r * c);
        let flipped = Layout::contiguous(&[r, c])
            .slice(0, None, None, -1)
            .unwrap()
            .slice(1, None, None, -3)
            .unwrap();
        assert_copies_match::<i32, i32>(&data, &flipped);
        assert_copies_match::<i32, i32>(&data, &flipped.reversed_axes());
        let reversed = Layout::contiguous(&[r * c])
            .slice(0, None, None, -1)
            .unwrap();
        assert_copies_match::<i32, i64>(&data, &reversed);
    }

    #[test]
    fn zero_d_and_zero_size_layouts() {
        let data = iota(6);
        let scalar = Layout::contiguous(&[2, 3])
            .select(0, 1)
            .unwrap()
            .select(0, 2)
            .unwrap();
        let got: ArrayD<i32> = to_contiguous(&data, &scalar).unwrap();
        assert_eq!(got.shape(), &[] as &[usize]);
        assert_eq!(got[IxDyn(&[])], 5);
        assert_copies_match::<i32, f32>(&data, &scalar);
        for shape in [[0, 3], [3, 0]] {
            let l = Layout::contiguous(&shape);
            let got: ArrayD<i32> = to_contiguous::<i32, i32>(&[], &l).unwrap();
            assert_eq!(got.shape(), &shape);
            assert_copies_match::<i32, i32>(&data, &l.reversed_axes());
        }
        let empty_slice = Layout::contiguous(&[2, 3])
            .slice(1, Some(2), Some(1), 1)
            .unwrap();
        assert_copies_match::<i32, u8>(&data, &empty_slice);
    }

    #[test]
    fn parallel_split_covers_every_mode_exactly_once() {
        // Every case moves more than PARALLEL_MIN_BYTES and splits into many items; the dense one is
        // larger than HUGE_PAGE_MIN_BYTES, so its buffer also takes the huge-page advice.
        let (r, c) = (1031, 1283);
        let data = iota(r * c);
        let base = Layout::contiguous(&[r, c]);
        assert!(r * c * 8 >= PARALLEL_MIN_BYTES && r * c * 4 >= HUGE_PAGE_MIN_BYTES);
        assert_copies_match::<i32, i32>(&data, &base);
        assert_copies_match::<i32, f32>(&data, &base);
        assert_copies_match::<i32, i32>(&data, &base.reversed_axes());
        assert_copies_match::<i32, i32>(&data, &base.slice(1, Some(1), None, 3).unwrap());
        let one_row = Layout::contiguous(&[r * c])
            .slice(0, None, None, 2)
            .unwrap();
        assert_copies_match::<i32, i64>(&data, &one_row);
        let bcast = Layout::contiguous(&[c]).broadcast_to(&[r, c]).unwrap();
        assert_copies_match::<i32, i32>(&data[..c], &bcast);
        assert_copies_match::<i32, i32>(&data[..c], &bcast.reversed_axes());
    }

    #[test]
    fn plan_merges_dense_axes_and_tiles_only_transposes() {
        let plan = |l: &Layout| Plan::new(l.shape(), l.strides(), &c_strides(l.shape()), 4);
        let dense = plan(&Layout::contiguous(&[4, 1, 6, 8]));
        assert_eq!(dense.grid.len(), 1, "dense axes merge into one run");
        assert_eq!((dense.row_axis, dense.tiled), (None, false));
        let stepped = plan(
            &Layout::contiguous(&[64, 64])
                .slice(1, None, None, 8)
                .unwrap(),
        );
        assert_eq!((stepped.grid.len(), stepped.row_axis), (1, None));
        let t = plan(
            &Layout::contiguous(&[5, 300, 200])
                .permute(&[0, 2, 1])
                .unwrap(),
        );
        assert_eq!((t.row_axis, t.tiled), (Some(1), true));
        // Items partition the elements: their extents add up to the element count.
        let total: usize = (0..t.items())
            .map(|item| {
                let index = t.grid_index(item);
                t.grid
                    .iter()
                    .zip(&index)
                    .map(|(g, &i)| g.extent(i))
                    .product::<usize>()
            })
            .sum();
        assert_eq!(total, 5 * 300 * 200);
    }

    #[test]
    fn register_block_transposes_of_every_width_match_ndarray() {
        // Same-dtype tiled copies take the block-transpose path for 1-, 2-, 4- and 8-byte
        // elements: shapes around the block (16 / W) and tile sizes, permuted 3-d views, flipped
        // axes, and an F-order destination (which is dense along the other axis: scalar path).
        fn all_widths(shape: &[usize], l: &Layout) {
            let n: usize = shape.iter().product();
            let bytes: Vec<u8> = (0..n).map(|i| (i * 37 % 251) as u8).collect();
            assert_copies_match::<u8, u8>(&bytes, l);
            let flags: Vec<bool> = bytes.iter().map(|b| b % 3 == 0).collect();
            assert_copies_match::<bool, bool>(&flags, l);
            let halves: Vec<bf16> = (0..n).map(|i| bf16::from_f32(i as f32 - 7.5)).collect();
            assert_copies_match::<bf16, bf16>(&halves, l);
            let words: Vec<u16> = (0..n).map(|i| (i * 7919) as u16).collect();
            assert_copies_match::<u16, u16>(&words, l);
            assert_copies_match::<i32, i32>(&iota(n), l);
            let wide: Vec<f64> = (0..n).map(|i| i as f64 * 0.5 - 3.0).collect();
            assert_copies_match::<f64, f64>(&wide, l);
        }
        for (r, c) in [
            (1, 17),
            (15, 17),
            (16, 16),
            (33, 65),
            (64, 64),
            (70, 129),
            (130, 3),
        ] {
            let base = Layout::contiguous(&[r, c]);
            all_widths(&[r, c], &base.reversed_axes());
            let flipped = base.slice(0, None, None, -1).unwrap().reversed_axes();
            all_widths(&[r, c], &flipped);
        }
        let base = Layout::contiguous(&[3, 40, 21]);
        for perm in [[0, 2, 1], [2, 1, 0], [1, 2, 0]] {
            all_widths(&[3, 40, 21], &base.permute(&perm).unwrap());
        }
        // Destination rows 1 KiB apart (or a multiple) take the buffered tiles.
        for (r, c) in [(1024, 3), (512, 70), (256, 70), (128, 130)] {
            all_widths(&[r, c], &Layout::contiguous(&[r, c]).reversed_axes());
        }
    }

    #[test]
    fn streamed_dense_copies_write_every_byte_at_any_alignment() {
        // Dense copies of STREAM_MIN_BYTES and more stream every whole destination line; the
        // partial lines at the ends of each work item are stored normally. Destinations starting
        // 0..3 bytes past an aligned address, sources 0..2 elements into their storage.
        let n = STREAM_MIN_BYTES + 77;
        let src: Vec<u8> = (0..n + 2).map(|i| (i * 7 + i / 251) as u8).collect();
        for src_offset in 0..3 {
            let layout = Layout::new(vec![n], vec![1], src_offset).unwrap();
            for dst_offset in [0, 1, 3] {
                let mut out = vec![MaybeUninit::new(0xEEu8); n + 4];
                copy_into_contiguous(&src, &layout, &mut out[dst_offset..dst_offset + n]).unwrap();
                // SAFETY: initialised with a sentinel, then partly overwritten.
                let got: Vec<u8> = out.iter().map(|x| unsafe { x.assume_init() }).collect();
                assert!(got[..dst_offset].iter().all(|&b| b == 0xEE));
                assert!(got[dst_offset + n..].iter().all(|&b| b == 0xEE));
                assert!(
                    got[dst_offset..dst_offset + n] == src[src_offset..src_offset + n],
                    "src +{src_offset}, dst +{dst_offset}"
                );
            }
        }
        // f32, through `to_contiguous` (the recycled-buffer path of large conversions).
        let m = STREAM_MIN_BYTES / 4 + 5;
        let floats: Vec<f32> = (0..m + 1).map(|i| i as f32).collect();
        let layout = Layout::new(vec![m], vec![1], 1).unwrap();
        let got: ArrayD<f32> = to_contiguous(&floats, &layout).unwrap();
        assert!(got.as_slice().unwrap() == &floats[1..]);
    }

    #[test]
    fn streamed_tiles_of_any_stride_match_elementwise() {
        // Outputs of STREAM_MIN_BYTES and more go through the tile buffer and streaming stores
        // whatever their strides: that path on small blocks, with destination rows 16-byte
        // aligned (every byte streamed) or not (whole lines streamed, the partial ones at the
        // ends stored normally), none a multiple of 1 KiB apart.
        fn check<T: Element>(rows: usize, cols: usize, make: impl Fn(usize) -> T) {
            let src: Vec<T> = (0..rows * cols).map(&make).collect();
            let mut dst: Vec<T> = vec![make(0); rows * cols];
            // The transpose: out[j][i] = src[i][j], `cols × rows`, both C-ordered.
            let read = Dim {
                len: cols,
                src: 1,
                dst: rows as isize,
            };
            let write = Dim {
                len: rows,
                src: cols as isize,
                dst: 1,
            };
            // SAFETY: every position `(i, j)`, `i < rows`, `j < cols`, is inside `src` and,
            // transposed, inside `dst`; the two vectors do not overlap.
            unsafe { copy_tiles(src.as_ptr(), dst.as_mut_ptr(), read, write, true) };
            for i in 0..rows {
                for j in 0..cols {
                    assert!(
                        dst[j * rows + i] == src[i * cols + j],
                        "{rows}x{cols} ({i},{j})"
                    );
                }
            }
        }
        for (r, c) in [(300, 250), (301, 250), (TILE + 3, 3 * TILE), (1000, 70)] {
            check::<u8>(r, c, |k| (k * 31 % 251) as u8);
            check::<u16>(r, c, |k| (k * 7919) as u16);
            check::<f32>(r, c, |k| k as f32 * 0.25);
            check::<f64>(r, c, |k| k as f64 - 0.5);
        }
    }

    #[test]
    fn small_copies_of_any_rank_match_ndarray() {
        // Below SMALL_COPY_ELEMS the shape is walked directly (up to SMALL_COPY_NDIM axes), above
        // either limit through a plan; both sides of each limit, permuted and flipped.
        let data = iota(600);
        for shape in [
            vec![256],
            vec![257],
            vec![16, 16],
            vec![15, 18],
            vec![2, 3, 2, 5],
            vec![2, 1, 2, 1, 2, 1, 2, 2],
            vec![2, 1, 2, 1, 2, 1, 2, 1, 2],
        ] {
            let base = Layout::contiguous(&shape);
            assert_copies_match::<i32, i32>(&data, &base);
            assert_copies_match::<i32, i32>(&data, &base.reversed_axes());
            assert_copies_match::<i32, f32>(&data, &base.slice(0, None, None, -1).unwrap());
        }
    }

    #[test]
    fn short_rows_are_grouped_into_few_items() {
        let l = Layout::contiguous(&[100, 100])
            .slice(1, None, None, 8)
            .unwrap();
        let plan = Plan::new(l.shape(), l.strides(), &c_strides(l.shape()), 4);
        assert_eq!((plan.row_axis, plan.tiled), (Some(0), false));
        assert_eq!(plan.items(), 1, "100 rows of 13 elements are one item");
        assert_copies_match::<i32, i32>(&iota(100 * 100), &l);
        assert_copies_match::<i32, f64>(&iota(100 * 100), &l);
        // Rows of a large copy are grouped but still split into several items, over threads:
        // 3000 rows of 43 elements read at a stride of 28 bytes.
        let big = Layout::contiguous(&[3000, 300])
            .slice(1, None, None, 7)
            .unwrap();
        let plan = Plan::new(big.shape(), big.strides(), &c_strides(big.shape()), 4);
        assert_eq!(plan.row_axis, Some(0));
        assert!(plan.items() >= 2, "{plan:?}");
        assert!(plan.traffic::<i32, i32>(big.elem_count()) >= PARALLEL_MIN_BYTES);
        assert_copies_match::<i32, i32>(&iota(3000 * 300), &big);
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
        let (r, c) = (700, 900); // > PARALLEL_MIN_BYTES, not a multiple of the tile
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

    /// `copy_into_contiguous` into a buffer of sentinels: every element written, in C order, with
    /// `to_contiguous`'s values.
    fn check_copy_into_contiguous<S: Element, D: Element>(src: &[S], layout: &Layout, sentinel: D) {
        let want: ArrayD<D> = to_contiguous(src, layout).unwrap();
        let mut out = vec![MaybeUninit::new(sentinel); layout.elem_count()];
        copy_into_contiguous(src, layout, &mut out).unwrap();
        // SAFETY: initialised with the sentinel, then overwritten.
        let got: Vec<D> = out.iter().map(|x| unsafe { x.assume_init() }).collect();
        assert_eq!(got, want.iter().copied().collect::<Vec<D>>(), "{layout:?}");
    }

    #[test]
    fn copy_into_contiguous_writes_every_element_in_c_order() {
        let data = iota(7 * 11 + 3);
        let dense = Layout::new(vec![7, 11], vec![11, 1], 3).unwrap();
        let layouts = [
            dense.clone(),
            dense.reversed_axes(),
            Layout::new(vec![7, 4], vec![11, 3], 1).unwrap(),
            Layout::new(vec![6], vec![-5], 40).unwrap(),
            Layout::new(vec![3, 4], vec![0, 1], 2).unwrap(),
            Layout::contiguous(&[0, 5]),
            Layout::contiguous(&[]),
        ];
        for l in &layouts {
            check_copy_into_contiguous::<i32, i32>(&data, l, -1);
            check_copy_into_contiguous::<i32, f64>(&data, l, -1.0);
            check_copy_into_contiguous::<i32, u8>(&data, l, 0xAB);
        }
        // Large enough for the planned, parallel kernel (dense and transposed).
        let big = iota(1024 * 1024);
        let whole = Layout::contiguous(&[1024, 1024]);
        assert!(whole.elem_count() * 8 >= PARALLEL_MIN_BYTES);
        check_copy_into_contiguous::<i32, i32>(&big, &whole, -1);
        check_copy_into_contiguous::<i32, i32>(&big, &whole.reversed_axes(), -1);
        // Step-slices past the small-copy bound that gather within cache lines, unplanned
        // (`t[:, ::8]`, `t[::-1, ::3]` of 300 × 100, a 3-d `[:, ::2, ::-4]`), and one whose source
        // elements are a cache line apart, which the plan copies.
        let grid = Layout::contiguous(&[300, 100]);
        let cube = Layout::contiguous(&[30, 10, 100]);
        let stepped = [
            (grid.slice(1, None, None, 8).unwrap(), true),
            (
                grid.slice(0, None, None, -1)
                    .unwrap()
                    .slice(1, None, None, 3)
                    .unwrap(),
                true,
            ),
            (
                cube.slice(1, None, None, 2)
                    .unwrap()
                    .slice(2, None, None, -4)
                    .unwrap(),
                true,
            ),
            (grid.slice(1, None, None, 16).unwrap(), false),
        ];
        for (l, unplanned) in &stepped {
            assert!(l.elem_count() > SMALL_COPY_ELEMS);
            assert_eq!(
                gathers_within_lines::<i32, i32>(l, l.elem_count(), Some(1)),
                *unplanned
            );
            check_copy_into_contiguous::<i32, i32>(&big, l, -1);
            check_copy_into_contiguous::<i32, f64>(&big, l, -1.0);
            // Against the layout's own arithmetic too (`to_contiguous` shares the kernel).
            let want: Vec<i32> = ndarray::indices(l.shape())
                .into_iter()
                .map(|ix| {
                    let at = ndarray::Dimension::slice(&ix)
                        .iter()
                        .zip(l.strides())
                        .fold(l.offset() as isize, |acc, (&i, &st)| acc + i as isize * st);
                    big[at as usize]
                })
                .collect();
            assert_eq!(
                to_contiguous::<i32, i32>(&big, l)
                    .unwrap()
                    .into_raw_vec_and_offset()
                    .0,
                want
            );
        }
    }

    #[test]
    fn copy_into_contiguous_refuses_a_wrong_length_or_a_layout_outside_the_source() {
        let data = iota(6);
        let mut short = vec![MaybeUninit::<i32>::uninit(); 5];
        assert!(matches!(
            copy_into_contiguous(&data, &Layout::contiguous(&[2, 3]), &mut short),
            Err(Error::ShapeMismatch { .. })
        ));
        let mut out = vec![MaybeUninit::<i32>::uninit(); 6];
        // Dense but past the end (the one-run path) and strided past the end (the kernel path).
        let past_end = Layout::new(vec![6], vec![1], 1).unwrap();
        let strided = Layout::new(vec![3, 2], vec![2, 2], 0).unwrap();
        for l in [past_end, strided] {
            assert!(matches!(
                copy_into_contiguous(&data, &l, &mut out),
                Err(Error::InvalidArgument(_))
            ));
        }
    }

    #[test]
    fn contiguous_view_mut_is_the_c_order_view_of_the_buffer() {
        let mut buf = vec![MaybeUninit::<i32>::uninit(); 6];
        let transposed = Layout::contiguous(&[2, 3]).reversed_axes();
        // SAFETY: the view is only written (`copy_into` reads no destination element).
        let mut view = unsafe { contiguous_view_mut(&[3, 2], &mut buf) }.unwrap();
        copy_into(&iota(6), &transposed, &mut view).unwrap();
        // SAFETY: `copy_into` wrote every element.
        let got: Vec<i32> = buf.iter().map(|x| unsafe { x.assume_init() }).collect();
        assert_eq!(got, vec![0, 3, 1, 4, 2, 5]);
        // SAFETY: both calls are refused, so there is no view to read through.
        let short = unsafe { contiguous_view_mut(&[2, 3], &mut buf[..5]) };
        assert!(matches!(short, Err(Error::ShapeMismatch { .. })));
        // SAFETY: as above.
        let overflowing = unsafe { contiguous_view_mut(&[usize::MAX, 3], &mut buf) };
        assert!(matches!(overflowing, Err(Error::ShapeTooLarge { .. })));
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
    fn bool_bytes_are_canonical_only_for_zeros_and_ones() {
        assert!(bool_bytes_are_canonical(&[]));
        assert!(bool_bytes_are_canonical(&[0, 1, 1, 0]));
        assert!(!bool_bytes_are_canonical(&[0, 1, 3]));
        assert!(!bool_bytes_are_canonical(&[200]));
        // A stray byte past the first chunk is found too.
        let mut long = vec![1u8; 10_000];
        assert!(bool_bytes_are_canonical(&long));
        long[9_999] = 2;
        assert!(!bool_bytes_are_canonical(&long));
    }
}
