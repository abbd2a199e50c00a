//! Block transposes of raw elements by width (1, 2, 4 or 8 bytes), the inner loop of the copy
//! kernel's tiled mode when no conversion is involved. On x86-64 a block of `16 / W` × `16 / W`
//! elements is loaded as 16-byte rows, transposed in registers by `log2(16 / W)` rounds of SSE2
//! unpacks (the perfect-shuffle network: round outputs `2m`, `2m + 1` interleave inputs `m` and
//! `m + L/2`), and stored as 16-byte rows: about two instructions per 16 bytes instead of a load and
//! a store per element, so 1- and 2-byte elements move as many bytes per cycle as 4-byte ones.
//! 4- and 8-byte elements take 32-byte rows (8 × 8 and 4 × 4 blocks) where the CPU has AVX
//! (checked at run time): half the instructions per element of the 16-byte network, which is what
//! bounds a transpose whose data sits in the cache (100 × 100 f32: 16,000 instructions with SSE2).
//! 1- and 2-byte elements take two 16-byte-row blocks at once, one per 128-bit lane of 32-byte rows,
//! where the CPU has AVX2 (the 16-byte network's shuffles held them to about half of f32's bytes
//! per second). Elsewhere the same blocks are moved element by element.

use std::cell::RefCell;

use super::stream::{fence_streaming_stores, write_out};
use super::{TILE_ITEM_BYTES, TILE_ITEM_ROWS};

/// Elements per block side for `W`-byte elements.
pub(super) const fn block_len(w: usize) -> usize {
    16 / w
}

/// Transposes a `rows × cols` block of `W`-byte elements: element `(i, j)` is read at byte
/// `src + i * W + j * ss` and written at byte `dst + i * ds + j * W`, i.e. the source is dense
/// along `i`, the destination along `j`. Strides `ss` and `ds` are in bytes and may be negative.
///
/// # Safety
/// Every source position `(i, j)`, `i < rows`, `j < cols`, must be readable and every destination
/// position writable (`W` bytes each, no alignment needed), and the two ranges must not overlap.
pub(super) unsafe fn transpose<const W: usize>(
    src: *const u8,
    ss: isize,
    dst: *mut u8,
    ds: isize,
    rows: usize,
    cols: usize,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if (W == 4 || W == 8) && std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU has AVX (checked just above); the caller's contract is this one.
            return transpose_avx::<W>(src, ss, dst, ds, rows, cols);
        }
        if (W == 1 || W == 2) && std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above); the caller's contract is this one.
            return transpose_avx2::<W>(src, ss, dst, ds, rows, cols);
        }
    }
    transpose_16::<W>(src, ss, dst, ds, rows, cols)
}

/// [`transpose`] by 16-byte rows: `16 / W` × `16 / W` blocks (see [`transpose_blocks`] for the edges).
///
/// # Safety
/// As for [`transpose`].
unsafe fn transpose_16<const W: usize>(
    src: *const u8,
    ss: isize,
    dst: *mut u8,
    ds: isize,
    rows: usize,
    cols: usize,
) {
    transpose_blocks::<W>(
        src,
        ss,
        dst,
        ds,
        rows,
        cols,
        block_len(W),
        block_len(W),
        |s, ss, d, ds| {
            // SAFETY: an `l × l` block inside the caller's range (`transpose_blocks`).
            unsafe { block::<W>(s, ss, d, ds) }
        },
    )
}

/// [`transpose`] by 32-byte rows: 8 × 8 blocks of 4-byte elements, 4 × 4 of 8-byte ones (a
/// 100 × 100 f32 matrix ends with blocks overlapping the ones before them, see
/// [`transpose_blocks`]); a range narrower than one block by [`transpose_16`].
///
/// # Safety
/// As for [`transpose`]; `W` is 4 or 8 and the CPU has AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn transpose_avx<const W: usize>(
    src: *const u8,
    ss: isize,
    dst: *mut u8,
    ds: isize,
    rows: usize,
    cols: usize,
) {
    let l = 32 / W;
    if rows < l || cols < l {
        return transpose_16::<W>(src, ss, dst, ds, rows, cols);
    }
    transpose_blocks::<W>(src, ss, dst, ds, rows, cols, l, l, |s, ss, d, ds| {
        // SAFETY: an `l × l` block inside the caller's range (`transpose_blocks`); AVX is
        // present (this function's contract).
        unsafe { block_avx::<W>(s, ss, d, ds) }
    });
}

/// [`transpose`] of 1- and 2-byte elements by 32-byte source rows: each block is two
/// `16 / W` × `16 / W` blocks side by side along `i` (16 × 32 bytes, or 8 × 16 elements of 2 bytes),
/// one in each 128-bit lane, transposed by the same unpack network as [`block`] (AVX2 unpacks work
/// within lanes): half the loads and shuffle instructions per byte of the 16-byte kernel, which
/// is what held u8 and u16 transposes to about half of f32's bytes per second. A range narrower
/// than one block goes to [`transpose_16`].
///
/// # Safety
/// As for [`transpose`]; `W` is 1 or 2 and the CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn transpose_avx2<const W: usize>(
    src: *const u8,
    ss: isize,
    dst: *mut u8,
    ds: isize,
    rows: usize,
    cols: usize,
) {
    let (li, lj) = (32 / W, 16 / W);
    if rows < li || cols < lj {
        return transpose_16::<W>(src, ss, dst, ds, rows, cols);
    }
    transpose_blocks::<W>(src, ss, dst, ds, rows, cols, li, lj, |s, ss, d, ds| {
        // SAFETY: an `li × lj` block inside the caller's range (`transpose_blocks`); AVX2 is
        // present (this function's contract).
        unsafe { block_avx2::<W>(s, ss, d, ds) }
    });
}

/// The loops of [`transpose`]: blocks of `li` elements along `i` by `lj` along `j` by `block`
/// (called with the block's source, source stride, destination and destination stride), the last
/// block along each axis shifted back to end at the last element (overlapping the one before it)
/// when the length is not a multiple of the block; element by element when the range is smaller
/// than one block along an axis.
///
/// # Safety
/// As for [`transpose`]; `block` must move exactly one `li × lj` block.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn transpose_blocks<const W: usize>(
    src: *const u8,
    ss: isize,
    dst: *mut u8,
    ds: isize,
    rows: usize,
    cols: usize,
    li: usize,
    lj: usize,
    block: impl Fn(*const u8, isize, *mut u8, isize),
) {
    if rows < li || cols < lj {
        // Smaller than one block along an axis: element by element.
        for j in 0..cols {
            for i in 0..rows {
                // SAFETY: `(i, j)` is inside the caller's range; `W`-byte unaligned moves.
                std::ptr::copy_nonoverlapping(
                    src.add(i * W).offset(j as isize * ss),
                    dst.offset(i as isize * ds).add(j * W),
                    W,
                );
            }
        }
        return;
    }
    // Block starts along each axis: every whole block, then, when the length is not a multiple
    // of the block, one more block ending at the last element. That block overlaps the one
    // before it and writes its shared elements again with the same values (the source is only
    // read and does not overlap the destination), so no edge is left to move element by element.
    let starts = |len: usize, l: usize| {
        (0..len - len % l)
            .step_by(l)
            .chain((len % l != 0).then_some(len - l))
    };
    for j0 in starts(cols, lj) {
        let s = src.offset(j0 as isize * ss);
        let d = dst.add(j0 * W);
        for i0 in starts(rows, li) {
            // The block's rows `i0..i0 + li` and columns `j0..j0 + lj` are inside the caller's
            // `rows × cols` range (`i0 + li <= rows`, `j0 + lj <= cols`).
            block(s.add(i0 * W), ss, d.offset(i0 as isize * ds), ds);
        }
    }
}

/// [`transpose`] of a block of any size: straight into the destination, unless its row stride
/// maps the rows of a tile onto at most 4 of L1's 64 cache sets (a multiple of 1 KiB, as in a
/// 1024² or 8192² transpose), where the tile's destination lines would evict each other before
/// they are filled: then through a buffer ([`transpose_tiled`]). Measured on f32 transposes (2-core
/// VM, minimum of many calls): direct 1.6 against 2.5 µs at 100², 0.20 against 0.26 ms at 1000²;
/// buffered 0.40 against 0.49 ms at 1024². `stream` (a block of an output too large for the cache,
/// see `STREAM_MIN_BYTES`) also takes the buffer, for its streaming stores.
///
/// # Safety
/// As for [`transpose`].
pub(super) unsafe fn transpose_any<const W: usize>(
    src: *const u8,
    ss: isize,
    dst: *mut u8,
    ds: isize,
    rows: usize,
    cols: usize,
    stream: bool,
) {
    if rows > block_len(W) && (stream || ds.unsigned_abs() % 1024 == 0) {
        transpose_tiled::<W>(src, ss, dst, ds, rows, cols)
    } else {
        transpose::<W>(src, ss, dst, ds, rows, cols)
    }
}

/// Bytes between the rows of a tile in the buffer beyond the row itself: rows 2 KiB apart map onto
/// 2 of L1's 64 cache sets, and the rows one block writes (16 or 32 for 1- and 2-byte elements)
/// evict each other before they are filled; one more cache line spreads them over the sets.
/// Measured (2-core VM, `t.T.numpy(out=o)`, alternating runs, 64 against 0): u8 8000² 6.1–7.1
/// against 4.8 GB/s, f32 4000² 8.3–8.4 against 6.9–7.7 GB/s.
const TILE_ROW_PAD: usize = 64;
/// Bytes of a tile buffer: [`TILE_ITEM_ROWS`] rows of [`TILE_ITEM_BYTES`]` / TILE_ITEM_ROWS` bytes,
/// each followed by [`TILE_ROW_PAD`].
const TILE_BUFFER_BYTES: usize = TILE_ITEM_BYTES + TILE_ITEM_ROWS * TILE_ROW_PAD;

thread_local! {
    /// The calling thread's tile buffer (capacity [`TILE_BUFFER_BYTES`], 8-byte aligned).
    static TILE_BUFFER: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with the calling thread's tile buffer: [`TILE_BUFFER_BYTES`] writable bytes, aligned
/// to 8, uninitialised (or holding an earlier tile), kept for the thread's next tiled copy. Tile
/// buffers are too large for the stack of every thread a caller may convert on (Python allows
/// 32 KiB thread stacks), and allocating one per call would fault its pages in on every work
/// item. A thread whose locals are being torn down, or a call while the buffer is borrowed, gets
/// a buffer of its own.
pub(super) fn with_tile_buffer<R>(f: impl FnOnce(*mut u8) -> R) -> R {
    const WORDS: usize = TILE_BUFFER_BYTES / 8;
    let mut f = Some(f);
    let held = TILE_BUFFER.try_with(|cell| {
        let mut buffer = cell.try_borrow_mut().ok()?;
        // Only written through the pointer, inside the capacity; the length stays 0.
        buffer.reserve(WORDS);
        let f = f.take()?;
        Some(f(buffer.as_mut_ptr().cast()))
    });
    if let Ok(Some(r)) = held {
        return r;
    }
    let mut own: Vec<u64> = Vec::with_capacity(WORDS);
    match f.take() {
        Some(f) => f(own.as_mut_ptr().cast()),
        None => unreachable!("the tile buffer closure ran but returned nothing"),
    }
}

/// [`transpose`] of a large block, one tile at a time through a buffer: each tile is transposed
/// into the buffer, then its rows are copied out whole. Every source and destination cache line is
/// then touched in one go, however the strides map onto cache sets (a power-of-two destination
/// stride would otherwise make the tile's rows evict each other). A tile is [`TILE_ITEM_ROWS`]
/// elements along `i` by [`TILE_ITEM_BYTES`]` / (TILE_ITEM_ROWS * W)` along `j`: one whole tiled
/// work item of the copy kernel (see there for why its runs are long).
///
/// The buffer ([`TILE_BUFFER_BYTES`], 528 KiB: the tile's rows [`TILE_ROW_PAD`] apart beyond
/// their length) is the calling thread's ([`with_tile_buffer`]).
///
/// # Safety
/// As for [`transpose`].
pub(super) unsafe fn transpose_tiled<const W: usize>(
    src: *const u8,
    ss: isize,
    dst: *mut u8,
    ds: isize,
    rows: usize,
    cols: usize,
) {
    let (tile_rows, tile_cols) = (TILE_ITEM_ROWS, TILE_ITEM_BYTES / (TILE_ITEM_ROWS * W));
    let bs = (tile_cols * W + TILE_ROW_PAD) as isize;
    with_tile_buffer(|b| {
        for j0 in (0..cols).step_by(tile_cols) {
            let c = tile_cols.min(cols - j0);
            for i0 in (0..rows).step_by(tile_rows) {
                let r = tile_rows.min(rows - i0);
                // SAFETY: the tile `i0..i0 + r` × `j0..j0 + c` is inside the caller's range; the
                // buffer holds `TILE_BUFFER_BYTES`: `tile_rows` rows of `tile_cols` `W`-byte
                // elements, `bs` bytes apart.
                unsafe {
                    transpose::<W>(src.add(i0 * W).offset(j0 as isize * ss), ss, b, bs, r, c)
                };
                for i in 0..r {
                    // SAFETY: buffer row `i` was written in full (`c` elements) just above; the
                    // destination row `i0 + i`, columns `j0..j0 + c`, is writable (caller).
                    unsafe {
                        write_out(
                            b.offset(i as isize * bs),
                            dst.offset((i0 + i) as isize * ds).add(j0 * W),
                            c * W,
                        )
                    };
                }
            }
        }
    });
    fence_streaming_stores();
}

/// One `l × l` block (`l = 16 / W`): rows `j` of the source (`src + j * ss`, `l` elements dense)
/// become columns of the destination (`dst + i * ds`, `l` elements dense).
///
/// # Safety
/// As for [`transpose`] on an `l × l` range.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn block<const W: usize>(src: *const u8, ss: isize, dst: *mut u8, ds: isize) {
    use std::arch::x86_64::{
        __m128i, _mm_loadu_si128, _mm_setzero_si128, _mm_storeu_si128, _mm_unpackhi_epi16,
        _mm_unpackhi_epi32, _mm_unpackhi_epi64, _mm_unpackhi_epi8, _mm_unpacklo_epi16,
        _mm_unpacklo_epi32, _mm_unpacklo_epi64, _mm_unpacklo_epi8,
    };
    let l = block_len(W);
    // SSE2 is part of the x86-64 baseline, so these intrinsics are always available.
    let mut x = [_mm_setzero_si128(); 16];
    for (k, v) in x.iter_mut().enumerate().take(l) {
        // SAFETY: row `k < l` of the block is readable for 16 bytes (caller); unaligned load.
        *v = _mm_loadu_si128(src.offset(k as isize * ss) as *const __m128i);
    }
    let mut width = 1;
    while width < l {
        let mut y = [_mm_setzero_si128(); 16];
        for m in 0..l / 2 {
            let (a, b) = (x[m], x[m + l / 2]);
            let (lo, hi) = match W {
                1 => (_mm_unpacklo_epi8(a, b), _mm_unpackhi_epi8(a, b)),
                2 => (_mm_unpacklo_epi16(a, b), _mm_unpackhi_epi16(a, b)),
                4 => (_mm_unpacklo_epi32(a, b), _mm_unpackhi_epi32(a, b)),
                _ => (_mm_unpacklo_epi64(a, b), _mm_unpackhi_epi64(a, b)),
            };
            y[2 * m] = lo;
            y[2 * m + 1] = hi;
        }
        x = y;
        width *= 2;
    }
    for (m, v) in x.iter().enumerate().take(l) {
        // SAFETY: destination row `m < l` of the block is writable for 16 bytes (caller).
        _mm_storeu_si128(dst.offset(m as isize * ds) as *mut __m128i, *v);
    }
}

/// One block of 32-byte rows: 8 × 8 elements of 4 bytes, or 4 × 4 of 8 bytes. Source row `k`
/// (`src + k * ss`) becomes destination column `k` (`dst + m * ds`, element `k`). Unpacks and
/// shuffles move bits unchanged (no floating-point operation runs on them).
///
/// # Safety
/// As for [`transpose`] on an `l × l` range (`l = 32 / W`); `W` is 4 or 8; the CPU has AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
#[inline]
unsafe fn block_avx<const W: usize>(src: *const u8, ss: isize, dst: *mut u8, ds: isize) {
    use std::arch::x86_64::{
        _mm256_loadu_pd, _mm256_loadu_ps, _mm256_permute2f128_pd, _mm256_permute2f128_ps,
        _mm256_setzero_pd, _mm256_setzero_ps, _mm256_shuffle_ps, _mm256_storeu_pd,
        _mm256_storeu_ps, _mm256_unpackhi_pd, _mm256_unpackhi_ps, _mm256_unpacklo_pd,
        _mm256_unpacklo_ps,
    };
    if W == 4 {
        let mut r = [_mm256_setzero_ps(); 8];
        for (k, v) in r.iter_mut().enumerate() {
            // SAFETY: source row `k < 8` is readable for 32 bytes (caller); unaligned load.
            *v = unsafe { _mm256_loadu_ps(src.offset(k as isize * ss) as *const f32) };
        }
        // Pairs of rows interleaved: t[0] = r0[0] r1[0] r0[1] r1[1] | r0[4] r1[4] r0[5] r1[5], ...
        let mut t = [_mm256_setzero_ps(); 8];
        for p in 0..4 {
            t[2 * p] = _mm256_unpacklo_ps(r[2 * p], r[2 * p + 1]);
            t[2 * p + 1] = _mm256_unpackhi_ps(r[2 * p], r[2 * p + 1]);
        }
        // Quads: u[0] = r0[0] r1[0] r2[0] r3[0] | r0[4] r1[4] r2[4] r3[4], ...
        let mut u = [_mm256_setzero_ps(); 8];
        for q in [0, 4] {
            u[q] = _mm256_shuffle_ps(t[q], t[q + 2], 0x44);
            u[q + 1] = _mm256_shuffle_ps(t[q], t[q + 2], 0xEE);
            u[q + 2] = _mm256_shuffle_ps(t[q + 1], t[q + 3], 0x44);
            u[q + 3] = _mm256_shuffle_ps(t[q + 1], t[q + 3], 0xEE);
        }
        // 128-bit halves joined: column m of the block, rows 0..8.
        for m in 0..4 {
            let (lo, hi) = (
                _mm256_permute2f128_ps(u[m], u[m + 4], 0x20),
                _mm256_permute2f128_ps(u[m], u[m + 4], 0x31),
            );
            // SAFETY: destination rows `m` and `m + 4` (< 8) are writable for 32 bytes (caller).
            unsafe {
                _mm256_storeu_ps(dst.offset(m as isize * ds) as *mut f32, lo);
                _mm256_storeu_ps(dst.offset((m + 4) as isize * ds) as *mut f32, hi);
            }
        }
    } else {
        let mut r = [_mm256_setzero_pd(); 4];
        for (k, v) in r.iter_mut().enumerate() {
            // SAFETY: source row `k < 4` is readable for 32 bytes (caller); unaligned load.
            *v = unsafe { _mm256_loadu_pd(src.offset(k as isize * ss) as *const f64) };
        }
        // t[0] = r0[0] r1[0] | r0[2] r1[2], t[1] = r0[1] r1[1] | r0[3] r1[3], ...
        let t = [
            _mm256_unpacklo_pd(r[0], r[1]),
            _mm256_unpackhi_pd(r[0], r[1]),
            _mm256_unpacklo_pd(r[2], r[3]),
            _mm256_unpackhi_pd(r[2], r[3]),
        ];
        for m in 0..2 {
            let (lo, hi) = (
                _mm256_permute2f128_pd(t[m], t[m + 2], 0x20),
                _mm256_permute2f128_pd(t[m], t[m + 2], 0x31),
            );
            // SAFETY: destination rows `m` and `m + 2` (< 4) are writable for 32 bytes (caller).
            unsafe {
                _mm256_storeu_pd(dst.offset(m as isize * ds) as *mut f64, lo);
                _mm256_storeu_pd(dst.offset((m + 2) as isize * ds) as *mut f64, hi);
            }
        }
    }
}

/// Two `l × l` blocks (`l = 16 / W`) side by side along `i`, one per 128-bit lane: source rows
/// `k < l` (`src + k * ss`, `2 l` elements dense) become destination columns `k` of rows `m`
/// (low lane) and `l + m` (high lane), `m < l`. Unpacks move bits unchanged.
///
/// # Safety
/// As for [`transpose`] on a `2 l × l` range; `W` is 1 or 2; the CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn block_avx2<const W: usize>(src: *const u8, ss: isize, dst: *mut u8, ds: isize) {
    use std::arch::x86_64::{
        __m128i, __m256i, _mm256_castsi256_si128, _mm256_extracti128_si256, _mm256_loadu_si256,
        _mm256_setzero_si256, _mm256_unpackhi_epi16, _mm256_unpackhi_epi8, _mm256_unpacklo_epi16,
        _mm256_unpacklo_epi8, _mm_storeu_si128,
    };
    let l = block_len(W);
    let mut x = [_mm256_setzero_si256(); 16];
    for (k, v) in x.iter_mut().enumerate().take(l) {
        // SAFETY: source row `k < l` is readable for `2 l` elements, 32 bytes (caller); unaligned.
        *v = unsafe { _mm256_loadu_si256(src.offset(k as isize * ss) as *const __m256i) };
    }
    // The perfect-shuffle network of `block`, in both lanes at once.
    let mut width = 1;
    while width < l {
        let mut y = [_mm256_setzero_si256(); 16];
        for m in 0..l / 2 {
            let (a, b) = (x[m], x[m + l / 2]);
            let (lo, hi) = match W {
                1 => (_mm256_unpacklo_epi8(a, b), _mm256_unpackhi_epi8(a, b)),
                _ => (_mm256_unpacklo_epi16(a, b), _mm256_unpackhi_epi16(a, b)),
            };
            y[2 * m] = lo;
            y[2 * m + 1] = hi;
        }
        x = y;
        width *= 2;
    }
    for (m, v) in x.iter().enumerate().take(l) {
        // SAFETY: destination rows `m` and `l + m` (< 2 l) are writable for `l` elements,
        // 16 bytes (caller); unaligned stores.
        unsafe {
            _mm_storeu_si128(
                dst.offset(m as isize * ds) as *mut __m128i,
                _mm256_castsi256_si128(*v),
            );
            _mm_storeu_si128(
                dst.offset((l + m) as isize * ds) as *mut __m128i,
                _mm256_extracti128_si256::<1>(*v),
            );
        }
    }
}

/// One `l × l` block, element by element (targets without the SSE2 path).
///
/// # Safety
/// As for [`transpose`] on an `l × l` range.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
unsafe fn block<const W: usize>(src: *const u8, ss: isize, dst: *mut u8, ds: isize) {
    let l = block_len(W);
    for j in 0..l {
        for i in 0..l {
            // SAFETY: `(i, j)` is inside the block (caller).
            std::ptr::copy_nonoverlapping(
                src.add(i * W).offset(j as isize * ss),
                dst.offset(i as isize * ds).add(j * W),
                W,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Transposes a `rows × cols` region of a `u64` matrix viewed as `W`-byte elements (with a
    /// border, so reads or writes outside the region would show) and checks every byte.
    fn check<const W: usize>(rows: usize, cols: usize, flip_src: bool) {
        check_with::<W>(rows, cols, flip_src, transpose::<W>);
        check_with::<W>(rows, cols, flip_src, transpose_tiled::<W>);
        // The 16-byte kernel, which `transpose` skips on AVX (4- and 8-byte elements) and AVX2
        // (1- and 2-byte elements) CPUs.
        check_with::<W>(rows, cols, flip_src, transpose_16::<W>);
        #[cfg(target_arch = "x86_64")]
        if (W == 4 || W == 8) && std::arch::is_x86_feature_detected!("avx") {
            check_with::<W>(rows, cols, flip_src, avx::<W>);
        }
        #[cfg(target_arch = "x86_64")]
        if (W == 1 || W == 2) && std::arch::is_x86_feature_detected!("avx2") {
            check_with::<W>(rows, cols, flip_src, avx2::<W>);
        }
    }

    /// [`transpose_avx2`] as a plain `unsafe fn` (callers check for AVX2 first).
    #[cfg(target_arch = "x86_64")]
    unsafe fn avx2<const W: usize>(
        src: *const u8,
        ss: isize,
        dst: *mut u8,
        ds: isize,
        rows: usize,
        cols: usize,
    ) {
        transpose_avx2::<W>(src, ss, dst, ds, rows, cols)
    }

    /// [`transpose_avx`] as a plain `unsafe fn` (callers check for AVX first).
    #[cfg(target_arch = "x86_64")]
    unsafe fn avx<const W: usize>(
        src: *const u8,
        ss: isize,
        dst: *mut u8,
        ds: isize,
        rows: usize,
        cols: usize,
    ) {
        transpose_avx::<W>(src, ss, dst, ds, rows, cols)
    }

    type Kernel = unsafe fn(*const u8, isize, *mut u8, isize, usize, usize);

    fn check_with<const W: usize>(rows: usize, cols: usize, flip_src: bool, kernel: Kernel) {
        // Source: `cols` rows of `rows + 3` elements (dense along i); a 2-element border.
        let sstride = rows + 3;
        let src: Vec<u8> = (0..(cols + 4) * sstride * W)
            .map(|b| (b * 7 + 3) as u8)
            .collect();
        let dstride = cols + 5;
        let mut dst = vec![0xEEu8; (rows + 4) * dstride * W];
        let (s0, ss) = if flip_src {
            // Last source row first: negative source stride.
            ((2 + cols - 1) * sstride * W + W, -((sstride * W) as isize))
        } else {
            (2 * sstride * W + W, (sstride * W) as isize)
        };
        let d0 = 2 * dstride * W + 2 * W;
        // SAFETY: every position of the region lies inside `src` / `dst` (borders included above).
        unsafe {
            kernel(
                src.as_ptr().add(s0),
                ss,
                dst.as_mut_ptr().add(d0),
                (dstride * W) as isize,
                rows,
                cols,
            )
        };
        for i in 0..rows + 4 {
            for jj in 0..dstride {
                let at = i * dstride * W + jj * W;
                let got = &dst[at..at + W];
                let inside = (2..rows + 2).contains(&i) && (2..cols + 2).contains(&jj);
                if inside {
                    let (i, j) = (i - 2, jj - 2);
                    let from = (s0 as isize + (i * W) as isize + j as isize * ss) as usize;
                    assert_eq!(got, &src[from..from + W], "W={W} {rows}x{cols} ({i},{j})");
                } else {
                    assert!(
                        got.iter().all(|&b| b == 0xEE),
                        "W={W} wrote outside at {i},{jj}"
                    );
                }
            }
        }
    }

    /// [`transpose_tiled`] into a 16-byte-aligned destination whose rows are whole 16-byte chunks:
    /// the streaming-store path of [`write_out`] (the test above mostly takes the plain one).
    fn check_aligned<const W: usize>(rows: usize, cols: usize) {
        let src: Vec<u8> = (0..cols * rows * W).map(|b| (b * 13 + 5) as u8).collect();
        let row_bytes = (cols * W).next_multiple_of(16) + 16;
        let mut dst = vec![0u128; rows * row_bytes / 16 + 1];
        let base = dst.as_mut_ptr() as *mut u8;
        // SAFETY: source `(i, j)` is byte `i * W + j * rows * W` of `src` (`cols` rows of `rows`
        // elements); destination `(i, j)` is byte `i * row_bytes + j * W` of `dst`, inside its
        // `rows * row_bytes` bytes. `base` is 16-byte aligned (a `u128` vector) and so is every row.
        unsafe {
            transpose_tiled::<W>(
                src.as_ptr(),
                (rows * W) as isize,
                base,
                row_bytes as isize,
                rows,
                cols,
            )
        };
        // SAFETY: `dst` is `rows * row_bytes + 16` initialised bytes.
        let out = unsafe { std::slice::from_raw_parts(base, rows * row_bytes) };
        for i in 0..rows {
            for j in 0..cols {
                let (s, d) = (i * W + j * rows * W, i * row_bytes + j * W);
                assert_eq!(
                    &out[d..d + W],
                    &src[s..s + W],
                    "W={W} {rows}x{cols} ({i},{j})"
                );
            }
            let pad = &out[i * row_bytes + cols * W..(i + 1) * row_bytes];
            assert!(pad.iter().all(|&b| b == 0), "W={W} wrote past row {i}");
        }
    }

    /// Elements along `j` of one tile of [`transpose_tiled`] for `W`-byte elements.
    const fn tile_cols(w: usize) -> usize {
        TILE_ITEM_BYTES / (TILE_ITEM_ROWS * w)
    }

    #[test]
    fn streaming_stores_write_exactly_the_tile_rows() {
        // More than one tile along each axis, with partial tiles at the ends.
        const R: usize = TILE_ITEM_ROWS;
        check_aligned::<1>(R * 2 + 3, tile_cols(1) + 16);
        check_aligned::<2>(R + 5, tile_cols(2) * 2);
        check_aligned::<4>(R * 2, tile_cols(4) + 4);
        check_aligned::<8>(R + 1, tile_cols(8) * 2 + 2);
    }

    #[test]
    fn tiled_transpose_while_the_thread_buffer_is_borrowed_uses_its_own() {
        let (rows, cols) = (TILE_ITEM_ROWS + 7, tile_cols(4) + 9);
        let src: Vec<u32> = (0..(rows * cols) as u32).collect();
        let mut out = vec![0u32; rows * cols];
        TILE_BUFFER.with(|held| {
            let _held = held.borrow_mut();
            // SAFETY: source `(i, j)` is element `i + j * rows` of `src`, destination `(i, j)`
            // element `i * cols + j` of `out`: all inside their `rows * cols` elements.
            unsafe {
                transpose_tiled::<4>(
                    src.as_ptr() as *const u8,
                    (rows * 4) as isize,
                    out.as_mut_ptr() as *mut u8,
                    (cols * 4) as isize,
                    rows,
                    cols,
                )
            };
        });
        for i in 0..rows {
            for j in 0..cols {
                assert_eq!(out[i * cols + j], src[i + j * rows], "({i},{j})");
            }
        }
    }

    #[test]
    fn every_width_and_edge_matches_elementwise_transpose_direct_and_tiled() {
        let sizes = [
            (0, 3),
            (3, 0),
            (1, 1),
            (2, 2),
            (5, 7),
            (4, 4),
            (8, 8),
            (9, 8),
            (16, 16),
            (17, 33),
            (32, 16),
            (31, 17),
            (33, 15),
            (40, 18),
            (96, 48),
            (64, 65),
            (2 * TILE_ITEM_ROWS + 3, 70),
            (TILE_ITEM_ROWS, tile_cols(1) + 1),
        ];
        for (r, c) in sizes {
            for flip in [false, true] {
                check::<1>(r, c, flip);
                check::<2>(r, c, flip);
                check::<4>(r, c, flip);
                check::<8>(r, c, flip);
            }
        }
    }
}
