//! The device → host path of the CUDA backend, all of it in this file.
//!
//! 1. **View-sized.** A view is made contiguous on the device first ([`contiguous_view`]): a
//!    contiguous view is a zero-cost narrow of the storage; any other (transposed, stepped,
//!    broadcast, negative steps) is gathered by candle's strided-copy kernel into a buffer of the
//!    view's size. Only the view's elements then cross the bus — candle's own `to_vec` copies the
//!    whole storage even for a one-element view.
//! 2. **Pinned, chunked, double-buffered, pooled.** The contiguous bytes are copied in chunks of
//!    [`CHUNK_BYTES`] into two page-locked staging buffers (`cuMemHostAlloc` with the portable flag
//!    only: write-combined memory, which cudarc's `alloc_pinned` returns, is very slow for the CPU
//!    to read). While the DMA engine fills one buffer on the device's stream, the CPU drains the
//!    other into the destination (converting dtype on the way, with the core's parallel copy
//!    kernel). The buffers return to a per-process pool, so repeated transfers allocate nothing.
//! 3. **Into the caller's memory.** [`to_host_into`] writes chunk by chunk into any `ndarray`
//!    view the caller owns: a memory-mapped file converts a tensor larger than host RAM. Only
//!    [`to_host`] allocates, and first checks that the array fits in the host's available memory.
//!
//! Candle's CPU device takes none of this: its storage is read in place
//! ([`Backend::host_bytes`](tensorbridge_core::Backend::host_bytes)) and copied by the core's
//! parallel kernel straight from the storage slice (`cpu_to_host`, `cpu_copy_into`). The chunk
//! loop also accepts a CPU tensor (no staging needed), which is how its unit tests drive the
//! chunking and the destination writer without a GPU.

use std::mem::MaybeUninit;

use candle_core::{Storage, Tensor as CTensor};
use ndarray::{ArrayD, ArrayViewMutD, IxDyn};
use tensorbridge_core::host::{contiguous_view_mut, copy_into, copy_into_contiguous};
use tensorbridge_core::memory_guard::try_filled;
use tensorbridge_core::{with_dtype, DType, Element, Error, HostArray, Layout, Result};

use crate::{with_candle_type, Candle, OrCandle};

/// Bytes per staging buffer (two are in flight per transfer). Large enough that the per-chunk
/// launch and synchronisation overhead is under 1 % at PCIe 5 speeds, small enough that the first
/// chunk's latency is not noticed.
pub const CHUNK_BYTES: usize = 16 << 20;

/// The view `layout` selects from the flat storage `data`, as a contiguous candle tensor of the
/// view's shape, made on the storage's device. Reads only the view's elements.
pub fn contiguous_view(data: &CTensor, layout: &Layout) -> Result<CTensor> {
    layout.check_fits(data.elem_count())?;
    let shape = layout.shape().to_vec();
    let n = layout.elem_count();
    if !layout.is_contiguous() {
        // A broadcast view can be far larger than its storage: refuse a copy that cannot be
        // allocated before candle tries (its host allocations abort on failure).
        let dtype = crate::dtype_of_candle(data.dtype())?;
        let on_host = matches!(data.device().location(), candle_core::DeviceLocation::Cpu);
        tensorbridge_core::host::new_array_guard("contiguous", &shape, dtype, on_host)?;
    }
    if n == 0 {
        return CTensor::zeros(shape, data.dtype(), data.device()).or_candle();
    }
    if layout.is_contiguous() {
        return data
            .narrow(0, layout.offset(), n)
            .or_candle()?
            .reshape(shape)
            .or_candle();
    }
    // candle layouts have no negative strides: read those axes from their low end (a positive
    // stride from the lowest address), then reverse them on the device.
    let (forward, flipped) = layout.with_nonnegative_strides();
    let strides: Vec<usize> = forward.strides().iter().map(|s| s.unsigned_abs()).collect();
    let src = candle_core::Layout::new(shape.clone().into(), strides, forward.offset());
    let gathered = strided_copy(data, &src)?;
    if flipped.is_empty() {
        return Ok(gathered);
    }
    gathered.flip(&flipped).or_candle()
}

/// candle's strided-copy kernel over `src` (non-negative strides) into new contiguous storage.
fn strided_copy(data: &CTensor, src: &candle_core::Layout) -> Result<CTensor> {
    use candle_core::backend::{BackendDevice, BackendStorage};
    let shape = src.shape().clone();
    let (storage, _) = data.storage_and_layout();
    let out = match &*storage {
        Storage::Cpu(s) => {
            let mut dst = s.device().zeros_impl(&shape, s.dtype()).or_candle()?;
            s.copy_strided_src(&mut dst, 0, src).or_candle()?;
            Storage::Cpu(dst)
        }
        Storage::Cuda(s) => {
            let mut dst = s.device().zeros_impl(&shape, s.dtype()).or_candle()?;
            s.copy_strided_src(&mut dst, 0, src).or_candle()?;
            Storage::Cuda(dst)
        }
        Storage::Metal(_) => return Err(not_ours()),
    };
    Ok(CTensor::from_storage(
        out,
        shape,
        candle_core::op::BackpropOp::none(),
        false,
    ))
}

fn not_ours() -> Error {
    Error::Backend {
        backend: "candle",
        message: "storage on a candle device this backend does not use".into(),
    }
}

/// A new host array of `dtype` holding the view's values. Fails with [`Error::TooLarge`] (naming
/// the bytes requested and the limit hit: RAM or the container's) before allocating when it does
/// not fit in the host memory available now (see [`tensorbridge_core::memory_guard`]).
pub fn to_host(s: &Candle, layout: &Layout, dtype: DType) -> Result<HostArray> {
    if let Some(done) = cpu_to_host(s.candle(), layout, dtype) {
        return done;
    }
    with_dtype!(dtype, T => {
        let v = try_filled::<T>("to_host", layout.shape(), T::default())?;
        let mut a = ArrayD::<T>::from_shape_vec(IxDyn(layout.shape()), v)
            .map_err(|e| Error::InvalidArgument(format!("to_host: {e}")))?;
        to_host_into(s, layout, &mut a.view_mut())?;
        Ok(HostArray::from(a))
    })
}

/// Copies the view's values into `out` (same shape, any strides), converting to `T`, chunk by
/// chunk: host memory use beyond `out` is two staging buffers.
pub fn to_host_into<T: Element>(
    s: &Candle,
    layout: &Layout,
    out: &mut ArrayViewMutD<'_, T>,
) -> Result<()> {
    if out.shape() != layout.shape() {
        return Err(Error::ShapeMismatch {
            op: "to_host_into",
            lhs: layout.shape().to_vec(),
            rhs: out.shape().to_vec(),
        });
    }
    if let Some(done) = cpu_copy_into(s.candle(), layout, out) {
        return done;
    }
    let x = contiguous_view(s.candle(), layout)?;
    copy_contiguous(&x, out, CHUNK_BYTES)
}

/// [`to_host_into`] for a C-contiguous destination of exactly the view's elements (possibly
/// uninitialised): CPU storage goes through the core's contiguous copy, device storage through
/// the chunked path of [`to_host_into`] into a view of `out`.
pub fn to_host_into_contiguous<T: Element>(
    s: &Candle,
    layout: &Layout,
    out: &mut [MaybeUninit<T>],
) -> Result<()> {
    let data = s.candle();
    if let Some(done) = with_cpu_slice(data, |c, start, end| {
        with_candle_type!(data.dtype(), S => {
            let src = &c.as_slice::<S>().or_candle()?[start..end];
            copy_into_contiguous(src, layout, out)
        })
    }) {
        return done;
    }
    // SAFETY: `to_host_into` writes every element of the view and reads none.
    let mut view = unsafe { contiguous_view_mut(layout.shape(), out)? };
    to_host_into(s, layout, &mut view)
}

/// The flat CPU storage slice of `data` (a contiguous candle tensor), passed to `f` under
/// candle's read lock; `None` for storage on a device.
fn with_cpu_slice<R>(
    data: &CTensor,
    f: impl FnOnce(&candle_core::CpuStorage, usize, usize) -> Result<R>,
) -> Option<Result<R>> {
    let (storage, l) = data.storage_and_layout();
    let Storage::Cpu(c) = &*storage else {
        return None;
    };
    let Some((start, end)) = l.contiguous_offsets() else {
        return Some(Err(Error::Backend {
            backend: "candle",
            message: "storage tensor is not contiguous".into(),
        }));
    };
    Some(f(c, start, end))
}

/// [`to_host`] on candle's CPU device: the core's parallel blocked kernel reads the view straight
/// from the storage into a new buffer (uninitialised until written), instead of candle's
/// single-threaded strided gather into zeroed memory, then a second copy.
fn cpu_to_host(data: &CTensor, layout: &Layout, dtype: DType) -> Option<Result<HostArray>> {
    with_cpu_slice(data, |c, start, end| {
        with_candle_type!(data.dtype(), S => {
            let src = &c.as_slice::<S>().or_candle()?[start..end];
            with_dtype!(dtype, T => Ok(HostArray::from(
                tensorbridge_core::host::to_contiguous::<S, T>(src, layout)?
            )))
        })
    })
}

/// [`to_host_into`] on candle's CPU device: one pass of the core's kernel from the storage.
fn cpu_copy_into<T: Element>(
    data: &CTensor,
    layout: &Layout,
    out: &mut ArrayViewMutD<'_, T>,
) -> Option<Result<()>> {
    with_cpu_slice(data, |c, start, end| {
        with_candle_type!(data.dtype(), S => {
            let src = &c.as_slice::<S>().or_candle()?[start..end];
            copy_into(src, layout, out)
        })
    })
}

/// Moves the contiguous tensor `x` into `out` in chunks of `chunk_bytes`.
pub(crate) fn copy_contiguous<T: Element>(
    x: &CTensor,
    out: &mut ArrayViewMutD<'_, T>,
    chunk_bytes: usize,
) -> Result<()> {
    let n = x.elem_count();
    if n == 0 {
        return Ok(());
    }
    let (storage, l) = x.storage_and_layout();
    let (start, end) = l.contiguous_offsets().ok_or_else(|| Error::Backend {
        backend: "candle",
        message: "transfer source is not contiguous".into(),
    })?;
    let mut sink = Sink::new(out)?;
    match &*storage {
        Storage::Cpu(c) => with_candle_type!(x.dtype(), S => {
            let src = &c.as_slice::<S>().or_candle()?[start..end];
            let per = (chunk_bytes / std::mem::size_of::<S>()).max(1);
            for chunk in src.chunks(per) {
                sink.write(chunk)?;
            }
            Ok(())
        }),
        #[cfg(feature = "cuda")]
        Storage::Cuda(c) => pinned::copy(c, start, n, &mut sink, chunk_bytes),
        #[cfg(not(feature = "cuda"))]
        Storage::Cuda(_) => Err(not_ours()),
        Storage::Metal(_) => Err(not_ours()),
    }
}

/// The destination of a transfer, written in row-major order of its shape, one chunk at a time.
pub(crate) enum Sink<'o, T> {
    /// A C-contiguous destination: each chunk is one parallel converting copy.
    Dense { dst: &'o mut [T], pos: usize },
    /// Any other strides (an F-order array, a strided memmap view): element by element.
    Strided(ndarray::iter::IterMut<'o, T, IxDyn>),
}

impl<'o, T: Element> Sink<'o, T> {
    pub(crate) fn new(out: &'o mut ArrayViewMutD<'_, T>) -> Result<Self> {
        Ok(if out.is_standard_layout() {
            let dst = out.as_slice_mut().ok_or_else(|| overflow(0))?;
            Sink::Dense { dst, pos: 0 }
        } else {
            Sink::Strided(out.iter_mut())
        })
    }

    /// Appends `src` (converted to `T`) after what was written so far.
    pub(crate) fn write<S: Element>(&mut self, src: &[S]) -> Result<()> {
        match self {
            Sink::Dense { dst, pos } => {
                let end = *pos + src.len();
                let Some(part) = dst.get_mut(*pos..end) else {
                    return Err(overflow(end));
                };
                let mut view = ArrayViewMutD::from_shape(IxDyn(&[src.len()]), part)
                    .map_err(|e| Error::InvalidArgument(format!("to_host_into: {e}")))?;
                copy_into(src, &Layout::contiguous(&[src.len()]), &mut view)?;
                *pos = end;
                Ok(())
            }
            Sink::Strided(it) => {
                for &v in src {
                    let Some(slot) = it.next() else {
                        return Err(overflow(usize::MAX));
                    };
                    *slot = tensorbridge_core::host::convert::<S, T>(v);
                }
                Ok(())
            }
        }
    }
}

fn overflow(end: usize) -> Error {
    Error::Backend {
        backend: "candle",
        message: format!("transfer wrote past the destination (to element {end})"),
    }
}

#[cfg(feature = "cuda")]
pub use pinned::PinnedHostBuffer;

/// Page-locked staging and the double-buffered copy loop (CUDA builds only).
#[cfg(feature = "cuda")]
mod pinned {
    use std::sync::{Arc, Mutex};

    use candle_core::backend::BackendStorage;
    use candle_core::CudaStorage;
    use cudarc::driver::{result, sys, CudaContext, CudaStream, DevicePtr};
    use tensorbridge_core::{Element, Error, Result, Tensor};

    use super::Sink;
    use crate::{with_candle_type, Candle, OrCandle};

    fn driver_err(what: &str, e: result::DriverError) -> Error {
        Error::Backend {
            backend: "candle",
            message: format!("{what}: {e}"),
        }
    }

    /// A page-locked host buffer from `cuMemHostAlloc(CU_MEMHOSTALLOC_PORTABLE)` — deliberately
    /// not write-combined, because the CPU reads it right after the DMA.
    pub struct PinnedHostBuffer {
        ptr: *mut u8,
        bytes: usize,
        ctx: Arc<CudaContext>,
    }

    // SAFETY: the buffer is plain host memory owned by this value alone; the context handle is
    // thread-safe (cudarc's CudaContext is Send + Sync). Moving it between threads moves ownership.
    unsafe impl Send for PinnedHostBuffer {}

    impl PinnedHostBuffer {
        /// Allocates `bytes` of page-locked host memory registered with `ctx`.
        pub fn new(ctx: &Arc<CudaContext>, bytes: usize) -> Result<Self> {
            ctx.bind_to_thread()
                .map_err(|e| driver_err("binding the CUDA context", e))?;
            // SAFETY: cuMemHostAlloc with a non-zero size and valid flags; the pointer is owned by
            // the returned value and freed exactly once in Drop.
            let ptr = unsafe {
                result::malloc_host(bytes.max(1), sys::CU_MEMHOSTALLOC_PORTABLE)
                    .map_err(|e| driver_err("cuMemHostAlloc", e))?
            };
            Ok(PinnedHostBuffer {
                ptr: ptr as *mut u8,
                bytes: bytes.max(1),
                ctx: ctx.clone(),
            })
        }

        /// Size in bytes.
        pub fn len(&self) -> usize {
            self.bytes
        }

        /// Never true: a buffer has at least one byte.
        pub fn is_empty(&self) -> bool {
            false
        }

        /// The baseline the benchmark compares against: one blocking `cuMemcpyDtoH` of the
        /// tensor's whole (contiguous) storage into this buffer. Returns the bytes copied.
        pub fn copy_storage_from(&mut self, t: &Tensor<Candle>) -> Result<usize> {
            let (storage, _) = t.storage().candle().storage_and_layout();
            let candle_core::Storage::Cuda(c) = &*storage else {
                return Err(Error::DeviceUnavailable(
                    "the pinned baseline needs a tensor on a CUDA device".into(),
                ));
            };
            with_candle_type!(c.dtype(), S => {
                let slice = c.as_cuda_slice::<S>().or_candle()?;
                let stream = c.device.cuda_stream();
                let bytes = slice.len() * std::mem::size_of::<S>();
                if bytes > self.bytes {
                    return Err(Error::InvalidArgument(format!(
                        "pinned buffer of {} bytes is smaller than the storage ({bytes} bytes)",
                        self.bytes
                    )));
                }
                let (src, _sync) = slice.device_ptr(&stream);
                stream.synchronize().map_err(|e| driver_err("stream synchronize", e))?;
                // SAFETY: `src` is a live device allocation of `bytes` bytes (the slice is
                // borrowed for this call), `self.ptr` is page-locked host memory of at least
                // `bytes` bytes owned by self, and the call blocks until the copy is done.
                unsafe { sys::cuMemcpyDtoH_v2(self.ptr as *mut _, src, bytes) }
                    .result()
                    .map_err(|e| driver_err("cuMemcpyDtoH", e))?;
                Ok(bytes)
            })
        }
    }

    impl Drop for PinnedHostBuffer {
        fn drop(&mut self) {
            let _ = self.ctx.bind_to_thread();
            // SAFETY: `ptr` came from cuMemHostAlloc and is freed once, here; no copy into it is
            // in flight (the staging guard synchronises the stream before buffers come back).
            let _ = unsafe { result::free_host(self.ptr as *mut _) };
        }
    }

    /// Idle staging buffers by device ordinal, reused across transfers.
    static POOL: Mutex<Vec<(usize, PinnedHostBuffer)>> = Mutex::new(Vec::new());
    /// Buffers kept per process; a transfer uses two.
    const POOL_MAX: usize = 4;

    /// Two staging buffers lent from the pool; on drop (success or error) the stream is
    /// synchronised so no DMA still targets them, then they go back.
    struct Staging<'s> {
        ordinal: usize,
        stream: &'s CudaStream,
        bufs: Vec<PinnedHostBuffer>,
    }

    impl<'s> Staging<'s> {
        fn lend(stream: &'s CudaStream, bytes: usize) -> Result<Self> {
            let ctx = stream.context();
            let ordinal = ctx.ordinal();
            let mut bufs = Vec::with_capacity(2);
            if let Ok(mut pool) = POOL.lock() {
                while bufs.len() < 2 {
                    let Some(i) = pool
                        .iter()
                        .position(|(o, b)| *o == ordinal && b.bytes >= bytes)
                    else {
                        break;
                    };
                    bufs.push(pool.swap_remove(i).1);
                }
            }
            while bufs.len() < 2 {
                bufs.push(PinnedHostBuffer::new(ctx, bytes)?);
            }
            Ok(Staging {
                ordinal,
                stream,
                bufs,
            })
        }
    }

    impl Drop for Staging<'_> {
        fn drop(&mut self) {
            // A failed synchronise means the context is broken: free the buffers rather than
            // pool memory a DMA might still write.
            if self.stream.synchronize().is_err() {
                return;
            }
            if let Ok(mut pool) = POOL.lock() {
                for b in self.bufs.drain(..) {
                    if pool.len() < POOL_MAX {
                        pool.push((self.ordinal, b));
                    }
                }
            }
        }
    }

    /// A CUDA event without timing, destroyed on drop.
    struct Event(sys::CUevent);

    impl Event {
        fn new() -> Result<Self> {
            result::event::create(sys::CUevent_flags::CU_EVENT_DISABLE_TIMING)
                .map(Event)
                .map_err(|e| driver_err("cuEventCreate", e))
        }
        fn record(&self, stream: &CudaStream) -> Result<()> {
            // SAFETY: both handles are live (the event is owned, the stream borrowed).
            unsafe { result::event::record(self.0, stream.cu_stream()) }
                .map_err(|e| driver_err("cuEventRecord", e))
        }
        fn wait(&self) -> Result<()> {
            // SAFETY: the event is live and was recorded.
            unsafe { result::event::synchronize(self.0) }
                .map_err(|e| driver_err("cuEventSynchronize", e))
        }
    }

    impl Drop for Event {
        fn drop(&mut self) {
            // SAFETY: created by cuEventCreate, destroyed once.
            let _ = unsafe { result::event::destroy(self.0) };
        }
    }

    /// Copies elements `start..start + n` of `c` into `sink` through two pinned buffers.
    pub(super) fn copy<T: Element>(
        c: &CudaStorage,
        start: usize,
        n: usize,
        sink: &mut Sink<'_, T>,
        chunk_bytes: usize,
    ) -> Result<()> {
        with_candle_type!(c.dtype(), S => {
            let elem = std::mem::size_of::<S>();
            let per = (chunk_bytes / elem).max(1);
            let slice = c.as_cuda_slice::<S>().or_candle()?;
            let stream = c.device.cuda_stream();
            stream
                .context()
                .bind_to_thread()
                .map_err(|e| driver_err("binding the CUDA context", e))?;
            let (base, _sync) = slice.device_ptr(&stream);
            let staging = Staging::lend(&stream, per * elem)?;
            let events = [Event::new()?, Event::new()?];
            let chunks: Vec<(usize, usize)> =
                (0..n).step_by(per).map(|o| (o, per.min(n - o))).collect();
            // Drains chunk `i` from its buffer once its event says the DMA is done.
            let drain = |i: usize, sink: &mut Sink<'_, T>| -> Result<()> {
                let b = i % 2;
                events[b].wait()?;
                // SAFETY: the buffer holds `chunks[i].1` elements of S just written by the DMA
                // that `events[b]` follows (waited on above); it is aligned (page-aligned
                // allocation) and no copy into it is in flight until the next enqueue, which
                // happens after this shared borrow ends.
                let data = unsafe {
                    std::slice::from_raw_parts(staging.bufs[b].ptr as *const S, chunks[i].1)
                };
                sink.write(data)
            };
            for (i, &(off, len)) in chunks.iter().enumerate() {
                let b = i % 2;
                // SAFETY: source range `start + off .. + len` lies inside the slice (start + n
                // <= slice.len(), checked by the caller's layout); the destination buffer holds
                // at least `per * elem >= len * elem` bytes and was drained (chunk i - 2) before
                // this enqueue; the copy is ordered on the stream that produced the data.
                unsafe {
                    sys::cuMemcpyDtoHAsync_v2(
                        staging.bufs[b].ptr as *mut _,
                        base + ((start + off) * elem) as u64,
                        len * elem,
                        stream.cu_stream(),
                    )
                }
                .result()
                .map_err(|e| driver_err("cuMemcpyDtoHAsync", e))?;
                events[b].record(&stream)?;
                if i > 0 {
                    drain(i - 1, sink)?;
                }
            }
            if !chunks.is_empty() {
                drain(chunks.len() - 1, sink)?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::ShapeBuilder;
    use tensorbridge_core::{Device, Tensor};

    fn iota(n: usize) -> Tensor<Candle> {
        let v: Vec<f32> = (0..n).map(|i| i as f32).collect();
        Tensor::<Candle>::from_slice(&v, &[n], &Device::Cpu).unwrap()
    }

    #[test]
    fn views_are_gathered_to_their_own_size_on_the_device() {
        let t = iota(24).reshape(&[4, 6]).unwrap();
        let v = t.slice(1, Some(5), Some(0), -2).unwrap().t();
        let x = contiguous_view(v.storage().candle(), v.layout()).unwrap();
        assert_eq!(x.dims(), &[3, 4]);
        assert_eq!(x.elem_count(), 12, "only the view's elements");
        let want = v.to_host_array::<f32>().unwrap();
        let got: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(want.iter().copied().collect::<Vec<_>>(), got);
    }

    #[test]
    fn chunked_copy_converts_into_c_and_f_order_destinations() {
        let t = iota(1000).reshape(&[25, 40]).unwrap();
        let x = contiguous_view(t.storage().candle(), t.layout()).unwrap();
        let want = t.to_host_array::<f32>().unwrap().mapv(|v| v as f64);
        // 3 elements per chunk: a last partial chunk and many boundaries.
        let mut c = ArrayD::<f64>::zeros(IxDyn(&[25, 40]));
        copy_contiguous(&x, &mut c.view_mut(), 12).unwrap();
        assert_eq!(c, want);
        let mut f = ArrayD::<f64>::zeros(IxDyn(&[25, 40]).f());
        copy_contiguous(&x, &mut f.view_mut(), 12).unwrap();
        assert_eq!(f, want);
    }

    #[test]
    fn to_host_into_streams_into_a_file_backed_destination() {
        // A memory-mapped file is what `t.numpy(out=np.memmap(...))` hands in; here a plain
        // slice stands for it: the destination is written in place, nothing else is allocated.
        let t = iota(4096).reshape(&[64, 64]).unwrap().t();
        let mut buf = vec![0i32; 4096];
        let mut out = ArrayViewMutD::from_shape(IxDyn(&[64, 64]), &mut buf[..]).unwrap();
        t.to_host_into(&mut out).unwrap();
        assert_eq!(buf[1], 64);
        assert_eq!(buf[64], 1);
    }

    #[test]
    fn a_destination_of_another_shape_is_a_shape_mismatch() {
        let t = iota(6).reshape(&[2, 3]).unwrap();
        let mut a = ArrayD::<f32>::zeros(IxDyn(&[3, 2]));
        let e = t.to_host_into(&mut a.view_mut()).unwrap_err();
        assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    }

    #[test]
    fn to_host_refuses_an_array_larger_than_available_memory() {
        let avail = tensorbridge_core::memory_guard::HostMemory::probe()
            .available()
            .expect("MemAvailable is readable here");
        // A broadcast view is tiny on the device but twice the available memory on the host.
        let n = (2 * avail / 4) as usize;
        let t = iota(1).broadcast_to(&[n]).unwrap();
        match t.to_host().unwrap_err() {
            Error::TooLarge {
                bytes,
                limit,
                shape,
                ..
            } => {
                let room = limit.available().expect("a RAM or container figure");
                assert!(
                    bytes > room as u128 && room <= avail * 2,
                    "{bytes} vs {limit}"
                );
                assert_eq!(shape, vec![n], "the view's shape");
            }
            e => panic!("expected TooLarge, got {e}"),
        }
    }
}
