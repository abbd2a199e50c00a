//! A small, bounded cache of large freed host buffers, still paged in, for the next output of about
//! the same size.
//!
//! Fresh memory costs a page fault per page on first write, and the kernel zeroes each page before
//! handing it over: for a 64 MiB output that is as much work as the copy or the op itself (a
//! 16M-element f32 `add` spent 40% of its time in `clear_page` here). glibc returns allocations of
//! 32 MiB and more to the system on free, so a loop that makes and drops such tensors pays it every
//! time. Storage a backend frees goes through [`recycle`]; [`take`] hands it back to the next output
//! of the same alignment needing between 8/9 of its size and all of it. At most
//! [`CACHE_MAX_BYTES`] are held, in at most [`CACHE_MAX_ENTRIES`] buffers (a new buffer evicts the
//! oldest ones to fit; one larger than the whole cache is freed as usual), and [`release_cached_buffers`] frees what is held (as `torch.cuda.empty_cache()` does
//! for PyTorch's caching allocator).

use std::alloc::Layout as AllocLayout;
use std::ptr::NonNull;
use std::sync::Mutex;

use crate::dtype::Element;

/// Buffers smaller than this are not cached (the allocator's own free lists serve them well).
pub const CACHE_MIN_BYTES: usize = 4 << 20;
/// The most freed memory the cache holds.
pub const CACHE_MAX_BYTES: usize = 512 << 20;
/// The most buffers the cache holds.
pub const CACHE_MAX_ENTRIES: usize = 16;

/// One freed allocation of the global allocator: `bytes` long, aligned to `align`.
struct Entry {
    ptr: NonNull<u8>,
    bytes: usize,
    align: usize,
}

// SAFETY: an entry is the only owner of its allocation (its `Vec` was forgotten when it was cached),
// so moving it to another thread moves that ownership, like moving the `Vec` would.
unsafe impl Send for Entry {}

/// The cached buffers (see the module docs).
struct Cache {
    /// Oldest first.
    entries: Vec<Entry>,
}

impl Entry {
    /// Returns the allocation to the global allocator; returns its size in bytes.
    fn free(self) -> usize {
        // SAFETY: `self` was allocated by the global allocator (as a `Vec`) with exactly this size
        // and alignment, and nobody else owns it.
        unsafe {
            std::alloc::dealloc(
                self.ptr.as_ptr(),
                AllocLayout::from_size_align_unchecked(self.bytes, self.align),
            )
        };
        self.bytes
    }
}

static CACHE: Mutex<Cache> = Mutex::new(Cache {
    entries: Vec::new(),
});

impl Cache {
    /// Removes and returns a buffer for `n` elements of `D`, if one fits.
    fn take<D: Element>(&mut self, n: usize) -> Option<Vec<D>> {
        let size = std::mem::size_of::<D>();
        let want = n.checked_mul(size)?;
        if want < CACHE_MIN_BYTES {
            return None;
        }
        let i = self.entries.iter().position(|e| {
            e.align == std::mem::align_of::<D>()
                && e.bytes % size == 0
                && e.bytes >= want
                && e.bytes - want <= want / 8
        })?;
        let e = self.entries.swap_remove(i);
        // SAFETY: `e` is a `Vec` allocation forgotten by `put`, of an element type with the same
        // alignment and a capacity of exactly `e.bytes` bytes; `e.bytes` is a multiple of
        // `size_of::<D>()`, so `e.bytes / size` elements of `D` have the same allocation layout.
        // The vector starts empty: none of the old bytes is read as a `D` before being written.
        Some(unsafe { Vec::from_raw_parts(e.ptr.as_ptr() as *mut D, 0, e.bytes / size) })
    }

    /// Keeps `v`'s allocation if it is large enough and no larger than the whole cache, making
    /// room by evicting the oldest buffers (a loop converting tensors of one size then keeps
    /// hitting, whatever it converted before). Returns what is to be freed by the caller, outside
    /// the lock: `v` itself when it is not kept, and the evicted buffers.
    fn put<T: Element>(&mut self, v: Vec<T>) -> (Option<Vec<T>>, Vec<Entry>) {
        let bytes = v.capacity() * std::mem::size_of::<T>();
        if !(CACHE_MIN_BYTES..=CACHE_MAX_BYTES).contains(&bytes) {
            return (Some(v), Vec::new());
        }
        let mut evicted = Vec::new();
        while self.held_bytes() + bytes > CACHE_MAX_BYTES || self.entries.len() >= CACHE_MAX_ENTRIES
        {
            evicted.push(self.entries.remove(0));
        }
        let mut v = std::mem::ManuallyDrop::new(v);
        // A vector of at least CACHE_MIN_BYTES has a real (non-dangling) allocation.
        let Some(ptr) = NonNull::new(v.as_mut_ptr() as *mut u8) else {
            return (Some(std::mem::ManuallyDrop::into_inner(v)), evicted);
        };
        self.entries.push(Entry {
            ptr,
            bytes,
            align: std::mem::align_of::<T>(),
        });
        (None, evicted)
    }

    /// Takes every held buffer out (to be freed by the caller, outside the lock).
    fn drain(&mut self) -> Vec<Entry> {
        std::mem::take(&mut self.entries)
    }

    fn held_bytes(&self) -> usize {
        self.entries.iter().map(|e| e.bytes).sum()
    }
}

/// A cached, already paged-in buffer with room for `n` elements of `D` (empty, capacity `n` to
/// `n + n / 8`), if one is held; `None` for outputs under [`CACHE_MIN_BYTES`].
pub(crate) fn take<D: Element>(n: usize) -> Option<Vec<D>> {
    // Small outputs, the common case, never take the lock (it is a fixed cost of every tensor).
    if n.checked_mul(std::mem::size_of::<D>())? < CACHE_MIN_BYTES {
        return None;
    }
    CACHE.lock().ok()?.take(n)
}

/// Gives a vector's memory to the cache for a later output of about the same size, or frees it
/// when it is small or the cache is full. Backends call this when storage they allocated is freed.
pub fn recycle<T: Element>(v: Vec<T>) {
    // Small buffers, the common case, go straight back to the allocator without taking the lock.
    if v.capacity().saturating_mul(std::mem::size_of::<T>()) < CACHE_MIN_BYTES {
        return;
    }
    let (rejected, evicted) = match CACHE.lock() {
        Ok(mut c) => c.put(v),
        Err(_) => (Some(v), Vec::new()),
    };
    // Outside the lock: returning memory to the system takes a while.
    drop(rejected);
    evicted.into_iter().for_each(|e| {
        e.free();
    });
}

/// Frees every buffer the cache holds and returns how many bytes that was.
pub fn release_cached_buffers() -> usize {
    let held = CACHE.lock().map(|mut c| c.drain()).unwrap_or_default();
    held.into_iter().map(Entry::free).sum()
}

/// Bytes of freed memory the cache holds now.
pub fn cached_bytes() -> usize {
    CACHE.lock().map(|c| c.held_bytes()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn a_recycled_buffer_comes_back_for_a_fitting_request_only() {
        // A private cache: the global one is shared with every test running in parallel.
        let mut c = Cache {
            entries: Vec::new(),
        };
        let v: Vec<f32> = Vec::with_capacity(2 * MIB); // 8 MiB
        let ptr = v.as_ptr() as usize;
        assert!(c.put(v).0.is_none());
        assert_eq!(c.held_bytes(), 8 * MIB);
        // Wrong alignment, too large, or much smaller: not handed out.
        assert!(c.take::<u8>(8 * MIB).is_none());
        assert!(c.take::<f64>(MIB + 1).is_none());
        assert!(c.take::<f32>(MIB).is_none());
        // Same alignment, another type, within 1/8: the same memory, empty.
        let got = c.take::<i32>(2 * MIB - 1000).unwrap();
        assert_eq!((got.as_ptr() as usize, got.len()), (ptr, 0));
        assert_eq!(got.capacity(), 2 * MIB);
        assert_eq!(c.held_bytes(), 0);
        // Written and read as usual, then freed normally.
        let mut got = got;
        got.resize(2 * MIB - 1000, 7);
        assert_eq!(got[2 * MIB - 1001], 7);
    }

    #[test]
    fn small_buffers_are_freed_and_the_oldest_make_room_for_new_ones() {
        let mut c = Cache {
            entries: Vec::new(),
        };
        let (kept, evicted) = c.put(vec![0u8; 1000]);
        assert!(
            kept.is_some() && evicted.is_empty(),
            "small buffers are not kept"
        );
        assert!(c.take::<u8>(1000).is_none(), "small requests never hit");
        let too_big = Vec::<u8>::with_capacity(CACHE_MAX_BYTES + 1);
        assert!(c.put(too_big).0.is_some(), "larger than the cache: freed");
        let mut first = 0;
        for k in 0..CACHE_MAX_BYTES / (64 * MIB) {
            let v = Vec::<u64>::with_capacity(8 * MIB);
            if k == 0 {
                first = v.as_ptr() as usize;
            }
            let (kept, evicted) = c.put(v);
            assert!(kept.is_none() && evicted.is_empty());
        }
        assert_eq!(c.held_bytes(), CACHE_MAX_BYTES);
        // Full: a new buffer evicts the oldest one and is kept.
        let (kept, evicted) = c.put(Vec::<u64>::with_capacity(8 * MIB));
        assert!(kept.is_none());
        assert_eq!(evicted.len(), 1);
        assert_eq!(evicted[0].ptr.as_ptr() as usize, first);
        assert_eq!(
            evicted.into_iter().map(Entry::free).sum::<usize>(),
            64 * MIB
        );
        assert_eq!(c.held_bytes(), CACHE_MAX_BYTES);
        assert_eq!(
            c.drain().into_iter().map(Entry::free).sum::<usize>(),
            CACHE_MAX_BYTES
        );
        // The entry bound evicts the same way.
        for _ in 0..CACHE_MAX_ENTRIES {
            assert!(c.put(Vec::<u16>::with_capacity(2 * MIB)).1.is_empty());
        }
        let (kept, evicted) = c.put(Vec::<u16>::with_capacity(2 * MIB));
        assert!(kept.is_none() && evicted.len() == 1, "entry bound");
        evicted.into_iter().for_each(|e| {
            e.free();
        });
        assert_eq!(
            c.drain().into_iter().map(Entry::free).sum::<usize>(),
            CACHE_MAX_ENTRIES * 4 * MIB
        );
    }

    #[test]
    fn global_cache_round_trip_and_release() {
        recycle(Vec::<i64>::with_capacity(MIB + 3)); // 8 MiB + 24 bytes
        let _ = take::<i64>(MIB); // may or may not hit: other tests share the cache
        release_cached_buffers();
        assert_eq!(cached_bytes(), 0);
    }
}
