//! Streaming (non-temporal) stores for the copies whose destination is far larger than the cache:
//! the tiled transposes and dense copies of `STREAM_MIN_BYTES` and more.

/// Copies `n` bytes out to the destination (a tile row of a transpose, a work item of a large
/// dense copy). On x86-64 the bytes go out as streaming (non-temporal) stores: the destination
/// lines are not read first (a normal store reads each line before writing it, a third of a
/// transpose's memory traffic) and do not evict the source from
/// the cache; the rows of a tile, a power-of-two stride apart, would otherwise also evict each
/// other from L1 and L2. A 16-byte-aligned row of whole 16-byte chunks is streamed in full; any
/// other row (an odd number of u8, u16 or f32 per output row) by whole cache lines, its partial
/// lines at both ends stored normally. Measured (2-core VM, `t.T.numpy(out=o)`, alternating
/// runs, against normal stores for such rows): u8 5000² 7.7–8.4 against 4.5–6.0 GB/s, u16 5657²
/// 6.7–8.2 against 4.1–5.0, f32 3001² 10.6–11.4 against 6.0–7.4, f32 8001² 8.2–9.4 against 5.8–6.1.
///
/// # Safety
/// `src` readable and `dst` writable for `n` bytes, not overlapping; the caller calls
/// [`fence_streaming_stores`] before the destination is handed to another thread.
#[inline(always)]
pub(super) unsafe fn write_out(src: *const u8, dst: *mut u8, n: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_stream_si128};
        if (dst as usize) % 16 == 0 && n % 16 == 0 {
            for k in (0..n).step_by(16) {
                // SAFETY: bytes `k..k + 16` are inside both ranges (caller); `dst + k` is
                // 16-byte aligned as `_mm_stream_si128` requires; SSE2 is x86-64 baseline.
                _mm_stream_si128(
                    dst.add(k) as *mut __m128i,
                    _mm_loadu_si128(src.add(k) as *const __m128i),
                );
            }
            return;
        }
        // A destination row that is not 16-byte aligned (rows of an odd number of u8, u16 or
        // f32): whole cache lines go out as streaming stores, the partial lines at both ends
        // (shared with the neighbouring pieces of the row) as normal ones, so no line is written
        // both ways (a normal store into a line being streamed costs more than either).
        let head = (dst as usize).wrapping_neg() % 64;
        if n >= head + 64 {
            let end = head + (n - head) / 64 * 64;
            // SAFETY: `head < n` bytes, inside both ranges (caller).
            std::ptr::copy_nonoverlapping(src, dst, head);
            for k in (head..end).step_by(16) {
                // SAFETY: bytes `k..k + 16` are inside both ranges (`end <= n`, caller);
                // `dst + k` is 16-byte aligned (`dst + head` is 64-byte aligned) as
                // `_mm_stream_si128` requires.
                _mm_stream_si128(
                    dst.add(k) as *mut __m128i,
                    _mm_loadu_si128(src.add(k) as *const __m128i),
                );
            }
            // SAFETY: bytes `end..n`, inside both ranges (caller).
            std::ptr::copy_nonoverlapping(src.add(end), dst.add(end), n - end);
            return;
        }
    }
    std::ptr::copy_nonoverlapping(src, dst, n);
}

/// Orders the streaming stores [`write_out`] issued before any later store (and so before the
/// copy is reported done to another thread).
#[inline(always)]
pub(super) fn fence_streaming_stores() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `sfence` has no operands and no preconditions.
    unsafe {
        std::arch::x86_64::_mm_sfence()
    };
}
