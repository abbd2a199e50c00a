//! Work sharing for the host kernels: the calling thread and whichever rayon pool threads start
//! in time claim chunks of the work from a shared counter.
//!
//! Unlike a rayon scope or parallel iterator called from outside the pool, the caller works
//! instead of blocking, and it never waits for a pool thread that has not started: on a busy
//! machine a worker can take milliseconds to be scheduled, and a 100 µs copy would otherwise wait
//! for it just so it can find nothing left. The caller only waits for chunks a worker has claimed
//! and is running. A worker that starts after the work is done claims nothing and returns.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};

/// Threads the host kernels may use, the caller included: rayon's global pool size, or 1 when the
/// pool cannot start (no thread can be created now: an address-space or process-count limit).
/// rayon panics on every use of a global pool it failed to build; the kernels then run on the
/// calling thread instead, for the rest of the process.
pub fn pool_threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| {
        // Ok, or the pool was already built (by another crate or the application): either way
        // asking its size is then safe. Any other error leaves no pool.
        match rayon::ThreadPoolBuilder::new().build_global() {
            Ok(()) => rayon::current_num_threads(),
            Err(_) => std::panic::catch_unwind(rayon::current_num_threads).unwrap_or(1),
        }
    })
}

/// The work function with its lifetime erased, so late workers may hold it after the caller has
/// returned. It is only called for a claimed chunk, and every claimed chunk finishes before
/// [`run_chunks`] returns (see there).
struct WorkPtr(*const (dyn Fn(Range<usize>) + Sync + 'static));

// SAFETY: the pointee is `Sync`, so calling it from several threads is fine; the pointer is only
// dereferenced while the caller of `run_chunks` keeps it alive (see `Shared::claim_and_run`).
unsafe impl Send for WorkPtr {}
// SAFETY: as above.
unsafe impl Sync for WorkPtr {}

struct Shared {
    /// Start of the next unclaimed chunk (only grows; `>= items` once all are claimed).
    next: AtomicUsize,
    /// Threads between announcing a claim and finishing its chunk (or failing to claim one).
    active: AtomicUsize,
    items: usize,
    chunk: usize,
    work: WorkPtr,
}

impl Shared {
    /// Claims and runs chunks until none is left.
    ///
    /// # Safety
    /// `self.work` must be alive for every chunk this claims. `run_chunks` guarantees it: it
    /// returns only once `next >= items` (no claim can succeed after) and `active == 0` (every
    /// thread that claimed has finished), and a thread counts itself in `active` before claiming.
    unsafe fn claim_and_run(&self) {
        /// Leaves `active` when dropped, also when the work unwinds.
        struct Active<'a>(&'a AtomicUsize);
        impl Drop for Active<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, SeqCst);
            }
        }
        loop {
            self.active.fetch_add(1, SeqCst);
            let _active = Active(&self.active);
            let start = self.next.fetch_add(self.chunk, SeqCst);
            if start >= self.items {
                return;
            }
            // SAFETY: the claim succeeded, so the caller of `run_chunks` is still waiting
            // (function contract) and the work function it lent is alive.
            (*self.work.0)(start..(start + self.chunk).min(self.items));
        }
    }

    /// Stops further claims and waits until no thread runs a chunk.
    fn finish(&self) {
        self.next.fetch_max(self.items, SeqCst);
        let mut spins = 0u32;
        while self.active.load(SeqCst) != 0 {
            if spins < 64 {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// Waits for the workers when dropped, also while unwinding: no worker may run `work` after
/// `run_chunks` has left, whichever way it leaves.
struct Finish<'a>(&'a Shared);

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// Calls `work` on consecutive ranges of at most `chunk` items covering `0..items` exactly once,
/// on the calling thread and on up to [`pool_threads`]` - 1` pool threads that start
/// while work is left; returns when every range is done.
pub(crate) fn run_chunks(items: usize, chunk: usize, work: &(dyn Fn(Range<usize>) + Sync)) {
    let chunk = chunk.max(1);
    let helpers = pool_threads()
        .saturating_sub(1)
        .min(items.div_ceil(chunk).saturating_sub(1));
    if helpers == 0 {
        work(0..items);
        return;
    }
    // SAFETY: only the lifetime changes (same fat-pointer layout). The pointer outlives the
    // borrow, but is dereferenced only inside `claim_and_run` for claimed chunks, and `Finish`
    // below makes this function wait for all of those before `work` can go away.
    let work: *const (dyn Fn(Range<usize>) + Sync + 'static) = unsafe {
        std::mem::transmute::<
            *const (dyn Fn(Range<usize>) + Sync + '_),
            *const (dyn Fn(Range<usize>) + Sync + 'static),
        >(work)
    };
    let shared = Arc::new(Shared {
        next: AtomicUsize::new(0),
        active: AtomicUsize::new(0),
        items,
        chunk,
        work: WorkPtr(work),
    });
    for _ in 0..helpers {
        let s = Arc::clone(&shared);
        // SAFETY: see `claim_and_run`; this thread's `Finish` keeps the work alive long enough.
        rayon::spawn(move || unsafe { s.claim_and_run() });
    }
    let finish = Finish(&shared);
    // SAFETY: as above, on the calling thread.
    unsafe { shared.claim_and_run() };
    drop(finish);
}

/// Calls `work(start, chunk)` on consecutive chunks of `out` of `chunk` elements (the last may be
/// shorter), each exactly once, `start` being the chunk's index in `out`; in parallel as
/// [`run_chunks`] (the calling thread works too and never waits for a pool thread to start).
pub fn for_each_chunk_mut<T: Send>(
    out: &mut [T],
    chunk: usize,
    work: &(dyn Fn(usize, &mut [T]) + Sync),
) {
    struct Base<T>(*mut T);
    // SAFETY: chunks are disjoint (each range is claimed once), so threads never share an element.
    unsafe impl<T: Send> Sync for Base<T> {}
    let chunk = chunk.max(1);
    let len = out.len();
    let base = Base(out.as_mut_ptr());
    let base = &base;
    run_chunks(len.div_ceil(chunk), 1, &move |range| {
        for c in range {
            let start = c * chunk;
            let n = chunk.min(len - start);
            // SAFETY: `start..start + n` is inside `out` (c < ceil(len / chunk)), chunk `c` is
            // handed out once, and `out` is mutably borrowed for this whole call.
            let piece = unsafe { std::slice::from_raw_parts_mut(base.0.add(start), n) };
            work(start, piece);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn every_range_runs_once_whatever_the_sizes() {
        for (items, chunk) in [(0, 3), (1, 1), (5, 2), (1000, 7), (100_000, 64), (10, 100)] {
            let seen: Vec<AtomicU64> = (0..items).map(|_| AtomicU64::new(0)).collect();
            run_chunks(items, chunk, &|r: Range<usize>| {
                assert!(r.len() <= chunk.max(1) && r.end <= items);
                for i in r {
                    seen[i].fetch_add(1, SeqCst);
                }
            });
            assert!(seen.iter().all(|s| s.load(SeqCst) == 1), "{items}/{chunk}");
        }
    }

    #[test]
    fn mutable_chunks_cover_the_slice() {
        let mut v = vec![0u32; 100_003];
        for_each_chunk_mut(&mut v, 1000, &|start, c: &mut [u32]| {
            for (k, x) in c.iter_mut().enumerate() {
                *x += (start + k) as u32 + 1;
            }
        });
        assert!(v.iter().enumerate().all(|(i, &x)| x == i as u32 + 1));
    }

    #[test]
    fn a_panic_in_work_leaves_no_worker_running_it() {
        let runs = AtomicU64::new(0);
        let caller = std::thread::current().id();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_chunks(10_000, 1, &|_: Range<usize>| {
                runs.fetch_add(1, SeqCst);
                // Only the calling thread panics (a panic on a pool thread aborts the process),
                // after giving the workers time to be busy.
                if std::thread::current().id() == caller {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    panic!("boom");
                }
            });
        }));
        assert!(caught.is_err());
        // Once run_chunks has unwound, no worker touches `runs` (it would be a use after free
        // in real use): the count is final.
        let after = runs.load(SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(runs.load(SeqCst), after);
        assert!(after >= 1);
    }
}
