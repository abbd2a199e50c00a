//! # tensorbridge-counted
//!
//! [`Counted<B>`]: a backend decorator that runs every op on `B` and counts the transfers of
//! element data to the host (the copies a conversion makes). It exists to prove two things:
//!
//! - the plug: a backend written outside the backend crates joins the registry, the Python
//!   bindings and the whole contract with one registration line in the facade
//!   (`crates/tensorbridge/src/registry.rs`) and one cargo feature (`counted`);
//! - the zero-copy claims of the README's conversion contract: the Python tests convert tensors of
//!   `counted:cpu` (host memory, read in place) and `counted:candle` and assert the exact number
//!   of host copies each entry point makes.
//!
//! `counted:candle` is `Counted<Candle, false>`: it hides the host memory of candle's CPU storage
//! from zero-copy readers ([`Backend::host_bytes`] is `None`), so it converts the way device
//! memory does — every host array is a copy, the transfer guard applies, DLPack exports copy —
//! and CI exercises that path on a machine without a GPU. (`candle` itself reads its CPU storage
//! in place.)
//!
//! It owns no kernels and no semantics. The counters are process-wide ([`snapshot`], [`reset`]).

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU64, Ordering};

use ndarray::ArrayViewMutD;
use tensorbridge_core::registry::BackendEntry;
use tensorbridge_core::{
    Backend, BinaryOp, CmpOp, DType, Device, DeviceKind, DeviceMemory, Element, ExternalMemory,
    HostArray, Layout, ReduceOp, Result, Scalar, UnaryOp,
};

/// Storage of `B`, with every host transfer counted. With `HOST_VIEWS = false` the storage's
/// host memory is not exposed for zero-copy reads (it converts like device memory).
pub struct Counted<B: Backend, const HOST_VIEWS: bool = true> {
    inner: B,
}

static HOST_COPIES: AtomicU64 = AtomicU64::new(0);
static HOST_COPY_BYTES: AtomicU64 = AtomicU64::new(0);
static HOST_HANDOVERS: AtomicU64 = AtomicU64::new(0);

/// The counters since the last [`reset`]: `host_copies` (transfers of a view's elements into a
/// new or caller's host buffer: `to_host`, `to_host_into`), `host_copy_bytes` (their output
/// bytes) and `host_handovers` (`into_host`: the storage itself handed to the host, a copy only
/// when the backend's memory is not host memory).
pub fn snapshot() -> Vec<(&'static str, u64)> {
    vec![
        ("host_copies", HOST_COPIES.load(Ordering::SeqCst)),
        ("host_copy_bytes", HOST_COPY_BYTES.load(Ordering::SeqCst)),
        ("host_handovers", HOST_HANDOVERS.load(Ordering::SeqCst)),
    ]
}

/// The registry entry of `Counted<B, HOST_VIEWS>` under `name`, its counters readable as the
/// entry's stats.
pub fn entry<B: Backend, const HOST_VIEWS: bool>(name: &'static str) -> BackendEntry {
    BackendEntry::new::<Counted<B, HOST_VIEWS>>(name).with_stats(snapshot)
}

/// Sets every counter to zero.
pub fn reset() {
    for c in [&HOST_COPIES, &HOST_COPY_BYTES, &HOST_HANDOVERS] {
        c.store(0, Ordering::SeqCst);
    }
}

fn count_copy(layout: &Layout, dtype: DType) {
    HOST_COPIES.fetch_add(1, Ordering::SeqCst);
    let bytes = layout.elem_count().saturating_mul(dtype.size_in_bytes());
    HOST_COPY_BYTES.fetch_add(bytes as u64, Ordering::SeqCst);
}

impl<B: Backend, const HOST_VIEWS: bool> Counted<B, HOST_VIEWS> {
    fn wrap(inner: B) -> Self {
        Counted { inner }
    }
}

impl<B: Backend, const HOST_VIEWS: bool> Backend for Counted<B, HOST_VIEWS> {
    const NAME: &'static str = "counted";
    const DEVICE_KINDS: &'static [DeviceKind] = B::DEVICE_KINDS;

    fn device(&self) -> Device {
        self.inner.device()
    }
    fn dtype(&self) -> DType {
        self.inner.dtype()
    }
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
    fn from_host(device: &Device, data: HostArray) -> Result<Self> {
        B::from_host(device, data).map(Self::wrap)
    }
    fn full(device: &Device, len: usize, dtype: DType, value: Scalar) -> Result<Self> {
        B::full(device, len, dtype, value).map(Self::wrap)
    }
    fn unary(&self, layout: &Layout, op: UnaryOp) -> Result<Self> {
        self.inner.unary(layout, op).map(Self::wrap)
    }
    fn binary(&self, layout: &Layout, rhs: &Self, rl: &Layout, op: BinaryOp) -> Result<Self> {
        self.inner
            .binary(layout, &rhs.inner, rl, op)
            .map(Self::wrap)
    }
    fn compare(&self, layout: &Layout, rhs: &Self, rl: &Layout, op: CmpOp) -> Result<Self> {
        self.inner
            .compare(layout, &rhs.inner, rl, op)
            .map(Self::wrap)
    }
    fn matmul(&self, layout: &Layout, rhs: &Self, rl: &Layout) -> Result<Self> {
        self.inner.matmul(layout, &rhs.inner, rl).map(Self::wrap)
    }
    fn reduce(&self, l: &Layout, op: ReduceOp, axis: Option<usize>, dt: DType) -> Result<Self> {
        self.inner.reduce(l, op, axis, dt).map(Self::wrap)
    }
    fn cast(&self, layout: &Layout, dtype: DType) -> Result<Self> {
        self.inner.cast(layout, dtype).map(Self::wrap)
    }
    fn contiguous(&self, layout: &Layout) -> Result<Self> {
        self.inner.contiguous(layout).map(Self::wrap)
    }
    fn to_host(&self, layout: &Layout, dtype: DType) -> Result<HostArray> {
        count_copy(layout, dtype);
        self.inner.to_host(layout, dtype)
    }
    fn into_host(self, layout: &Layout, dtype: DType) -> Result<HostArray> {
        HOST_HANDOVERS.fetch_add(1, Ordering::SeqCst);
        self.inner.into_host(layout, dtype)
    }
    fn to_host_into<T: Element>(&self, l: &Layout, out: &mut ArrayViewMutD<'_, T>) -> Result<()> {
        count_copy(l, T::DTYPE);
        self.inner.to_host_into(l, out)
    }
    fn to_host_into_contiguous<T: Element>(
        &self,
        l: &Layout,
        out: &mut [MaybeUninit<T>],
    ) -> Result<()> {
        count_copy(l, T::DTYPE);
        self.inner.to_host_into_contiguous(l, out)
    }
    fn host_bytes(&self) -> Option<&[u8]> {
        if HOST_VIEWS {
            self.inner.host_bytes()
        } else {
            None
        }
    }
    fn device_memory(&self) -> Option<DeviceMemory> {
        self.inner.device_memory()
    }
    unsafe fn from_external(memory: ExternalMemory) -> Result<Option<Self>> {
        // SAFETY: forwarded; the caller upholds `from_external`'s contract.
        Ok(unsafe { B::from_external(memory) }?.map(Self::wrap))
    }
    fn synchronize(&self) -> Result<()> {
        self.inner.synchronize()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tensorbridge_core::Tensor;
    use tensorbridge_cpu::Cpu;

    /// The counters are process-wide: tests that copy run one at a time.
    static COUNTERS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn host_transfers_are_counted_and_zero_copy_reads_are_not() {
        let _one_at_a_time = COUNTERS.lock().unwrap_or_else(|e| e.into_inner());
        reset();
        let t = Tensor::<Counted<Cpu>>::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2], &Device::Cpu)
            .unwrap();
        assert!(t.host_view::<f32>().is_ok());
        assert_eq!(snapshot()[0], ("host_copies", 0));
        let a = t.t().to_host_array::<f32>().unwrap();
        assert_eq!(a[[0, 1]], 3.0);
        assert_eq!(snapshot()[0], ("host_copies", 1));
        assert_eq!(snapshot()[1], ("host_copy_bytes", 16));
    }

    #[test]
    fn hidden_host_memory_converts_by_copy_with_the_same_values() {
        let _one_at_a_time = COUNTERS.lock().unwrap_or_else(|e| e.into_inner());
        let data = [1.0f32, 2.0, 3.0, 4.0];
        let t = Tensor::<Counted<Cpu, false>>::from_slice(&data, &[2, 2], &Device::Cpu).unwrap();
        assert!(t.storage().host_bytes().is_none());
        assert!(t.host_view::<f32>().is_err());
        let shown = Tensor::<Counted<Cpu>>::from_slice(&data, &[2, 2], &Device::Cpu).unwrap();
        assert!(shown.storage().host_bytes().is_some());
        let a = t.t().to_host_array::<f32>().unwrap();
        assert_eq!(a, shown.t().to_host_array::<f32>().unwrap());
    }
}
