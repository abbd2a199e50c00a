//! The registry of backends by name: what each registered backend provides (its name, the devices
//! it accepts, its constructors, and — for deferred backends such as `Lazy<B>` — how to evaluate
//! and inspect its tensors). [`AnyTensor`] and the Python bindings find everything they need
//! here, so they never name a backend.
//!
//! A backend is registered once, with one line, by whoever assembles a build (the `tensorbridge`
//! facade registers every backend compiled in): [`register`]`(BackendEntry::new::<MyBackend>("mine"))`.
//! Names are unique; the order of registration is the order of [`backends`] (and of
//! `tb.compiled_backends()` in Python).
//!
//! ```
//! # use tensorbridge_core::registry::{self, BackendEntry};
//! # use tensorbridge_core::{Backend, Device};
//! # fn demo<B: Backend>() -> tensorbridge_core::Result<()> {
//! let entry = registry::register(BackendEntry::new::<B>("mine"))?;
//! assert_eq!(registry::find("mine")?.name(), "mine");
//! let t = entry.full(&[2], 1i64.into(), None, &Device::Cpu)?;
//! # Ok(()) }
//! ```

use std::any::TypeId;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock, RwLock};

use crate::any::{AnyTensor, DynTensor};
use crate::backend::{Backend, Device, DeviceKind, ExternalMemory};
use crate::dtype::{DType, Scalar};
use crate::error::{Error, Result};
use crate::host::HostArray;
use crate::tensor::Tensor;

/// What a deferred backend (one that records ops and evaluates them later, like `Lazy<B>`) adds
/// to its entry: evaluation and inspection of its tensors. Implemented by the deferred backend's
/// crate; every method receives tensors of that backend.
pub trait DeferredBackend: Send + Sync {
    /// The `TypeId` of the eager backend whose tensors evaluation produces (`B` for `Lazy<B>`);
    /// that backend must be registered too.
    fn target(&self) -> TypeId;
    /// True once the tensor's value exists; computes nothing.
    fn is_evaluated(&self, t: &AnyTensor) -> bool;
    /// A one-line expression of the pending computation.
    fn expression(&self, t: &AnyTensor) -> String;
    /// The graph behind the tensor, one line per node, or Graphviz DOT.
    fn graph(&self, t: &AnyTensor, dot: bool) -> String;
    /// A deferred leaf sharing an eager tensor's storage, when `eager` is a tensor of the target
    /// backend; `Ok(None)` otherwise.
    fn lift(&self, eager: &AnyTensor) -> Result<Option<AnyTensor>>;
    /// The value of a deferred tensor as a tensor of the target backend (evaluated implicitly on
    /// its own device if needed).
    fn evaluate(&self, t: &AnyTensor) -> Result<AnyTensor>;
    /// A session evaluating tensors of this backend on `device` (TF1's `Session`).
    fn new_session(&self, device: &Device) -> Result<Box<dyn DynSession>>;
}

/// A session of a deferred backend: evaluates several tensors together, so a shared subgraph is
/// computed once.
pub trait DynSession: Send + Sync {
    /// The device it evaluates on.
    fn device(&self) -> Device;
    /// Evaluates the fetches (tensors of the session's backend) in place.
    fn run(&self, fetches: &[AnyTensor]) -> Result<()>;
    /// Figures of the last run, by name (e.g. `("fused_kernels", 1)`).
    fn last_run_stats(&self) -> Vec<(&'static str, usize)>;
}

/// The constructors of one backend type, erased (implemented once, generically, below).
trait Constructors: Send + Sync {
    fn make_from_host(&self, data: HostArray, device: &Device) -> Result<Arc<dyn DynTensor>>;
    fn full(
        &self,
        shape: &[usize],
        value: Scalar,
        dtype: Option<DType>,
        device: &Device,
    ) -> Result<Arc<dyn DynTensor>>;
    fn arange(
        &self,
        start: Scalar,
        stop: Scalar,
        step: Scalar,
        dtype: Option<DType>,
        device: &Device,
    ) -> Result<Arc<dyn DynTensor>>;
    /// # Safety
    /// As [`Backend::from_external`].
    unsafe fn make_from_external(
        &self,
        memory: ExternalMemory,
        layout: crate::Layout,
    ) -> Result<Option<Arc<dyn DynTensor>>>;
    fn backend_name(&self) -> &'static str;
}

struct ConstructorsOf<B>(PhantomData<fn() -> B>);

impl<B: Backend> Constructors for ConstructorsOf<B> {
    fn make_from_host(&self, data: HostArray, device: &Device) -> Result<Arc<dyn DynTensor>> {
        Ok(Arc::new(Tensor::<B>::from_host(data, device)?))
    }
    fn full(
        &self,
        shape: &[usize],
        value: Scalar,
        dtype: Option<DType>,
        device: &Device,
    ) -> Result<Arc<dyn DynTensor>> {
        Ok(Arc::new(Tensor::<B>::full(shape, value, dtype, device)?))
    }
    fn arange(
        &self,
        start: Scalar,
        stop: Scalar,
        step: Scalar,
        dtype: Option<DType>,
        device: &Device,
    ) -> Result<Arc<dyn DynTensor>> {
        Ok(Arc::new(Tensor::<B>::arange(
            start, stop, step, dtype, device,
        )?))
    }
    unsafe fn make_from_external(
        &self,
        memory: ExternalMemory,
        layout: crate::Layout,
    ) -> Result<Option<Arc<dyn DynTensor>>> {
        // SAFETY: forwarded; the caller upholds `Backend::from_external`'s contract.
        let Some(storage) = (unsafe { B::from_external(memory) })? else {
            return Ok(None);
        };
        Ok(Some(Arc::new(Tensor::from_storage(
            Arc::new(storage),
            layout,
        )?)))
    }
    fn backend_name(&self) -> &'static str {
        B::NAME
    }
}

/// One registered backend: its name, the devices it accepts, its constructors and (for deferred
/// backends) its evaluation hooks.
pub struct BackendEntry {
    name: &'static str,
    type_id: TypeId,
    type_name: &'static str,
    device_kinds: &'static [DeviceKind],
    constructors: Box<dyn Constructors>,
    deferred: Option<Box<dyn DeferredBackend>>,
    stats: Option<StatsSource>,
}

/// A backend's source of figures about itself, by name.
pub type StatsSource = fn() -> Vec<(&'static str, u64)>;

impl fmt::Debug for BackendEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendEntry")
            .field("name", &self.name)
            .field("type", &self.type_name)
            .field("device_kinds", &self.device_kinds)
            .field("deferred", &self.deferred.is_some())
            .finish()
    }
}

impl fmt::Display for BackendEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl BackendEntry {
    /// The entry of backend `B` under `name` (the name users write: `"cpu"`, `"lazy:torch"`).
    pub fn new<B: Backend>(name: &'static str) -> Self {
        BackendEntry {
            name,
            type_id: TypeId::of::<B>(),
            type_name: std::any::type_name::<B>(),
            device_kinds: B::DEVICE_KINDS,
            constructors: Box::new(ConstructorsOf::<B>(PhantomData)),
            deferred: None,
            stats: None,
        }
    }

    /// Gives the backend a source of figures about itself (counters, pool sizes), read with
    /// [`BackendEntry::stats`] (in Python: `tb._native._backend_stats(name)`).
    pub fn with_stats(mut self, stats: StatsSource) -> Self {
        self.stats = Some(stats);
        self
    }

    /// The backend's figures about itself, when it has any.
    pub fn stats(&self) -> Option<Vec<(&'static str, u64)>> {
        self.stats.map(|f| f())
    }

    /// Marks the backend as deferred, with its evaluation hooks.
    pub fn with_deferred(mut self, hooks: Box<dyn DeferredBackend>) -> Self {
        self.deferred = Some(hooks);
        self
    }

    /// The name users write.
    pub fn name(&self) -> &'static str {
        self.name
    }
    /// The Rust type of the backend's storage.
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }
    /// The kinds of device the backend accepts (as compiled).
    pub fn device_kinds(&self) -> &'static [DeviceKind] {
        self.device_kinds
    }
    /// True when the backend accepts devices of `kind`.
    pub fn accepts(&self, kind: DeviceKind) -> bool {
        self.device_kinds.contains(&kind)
    }
    /// The evaluation hooks of a deferred backend; `None` for eager ones.
    pub fn deferred(&self) -> Option<&dyn DeferredBackend> {
        self.deferred.as_deref()
    }
    /// True when this entry is the backend type `B`.
    pub fn is<B: Backend>(&self) -> bool {
        self.type_id == TypeId::of::<B>()
    }

    /// [`Error::DeviceUnavailable`] naming the backend's devices when it has no device of
    /// `device`'s kind.
    pub fn check_device(&self, device: &Device) -> Result<()> {
        if self.accepts(device.kind()) {
            return Ok(());
        }
        let kinds: Vec<String> = self.device_kinds.iter().map(|k| k.to_string()).collect();
        Err(Error::DeviceUnavailable(format!(
            "backend '{}' has no device {device} (its devices: {}){}",
            self.name,
            kinds.join(", "),
            match device.kind() {
                DeviceKind::Cuda => {
                    let gpu: Vec<&str> = backends()
                        .into_iter()
                        .filter(|b| b.accepts(DeviceKind::Cuda))
                        .map(|b| b.name)
                        .collect();
                    if gpu.is_empty() {
                        "; no backend with CUDA devices is compiled into this build".to_string()
                    } else {
                        format!("; backends with CUDA devices: {}", gpu.join(", "))
                    }
                }
                DeviceKind::Cpu => String::new(),
            }
        )))
    }

    fn wrap(&'static self, t: Arc<dyn DynTensor>) -> AnyTensor {
        AnyTensor::from_parts(t, self)
    }

    /// A tensor holding host data (moved in) on `device`.
    pub fn tensor_from_host(&'static self, data: HostArray, device: &Device) -> Result<AnyTensor> {
        self.check_device(device)?;
        Ok(self.wrap(self.constructors.make_from_host(data, device)?))
    }
    /// `shape` filled with `value` converted to `dtype` (default: the scalar's dtype).
    pub fn full(
        &'static self,
        shape: &[usize],
        value: Scalar,
        dtype: Option<DType>,
        device: &Device,
    ) -> Result<AnyTensor> {
        self.check_device(device)?;
        Ok(self.wrap(self.constructors.full(shape, value, dtype, device)?))
    }
    /// NumPy `arange(start, stop, step)`.
    pub fn arange(
        &'static self,
        start: Scalar,
        stop: Scalar,
        step: Scalar,
        dtype: Option<DType>,
        device: &Device,
    ) -> Result<AnyTensor> {
        self.check_device(device)?;
        Ok(self.wrap(self.constructors.arange(start, stop, step, dtype, device)?))
    }
    /// A tensor viewing `memory` in place with `layout` (zero-copy), or `Ok(None)` when the
    /// backend cannot hold that memory without a copy.
    ///
    /// # Safety
    /// As [`Backend::from_external`]; `layout` must lie inside the `memory.len` elements (it is
    /// checked, too).
    pub unsafe fn tensor_from_external(
        &'static self,
        memory: ExternalMemory,
        layout: crate::Layout,
    ) -> Result<Option<AnyTensor>> {
        self.check_device(&memory.device)?;
        // SAFETY: forwarded; the caller upholds the contract.
        let t = unsafe { self.constructors.make_from_external(memory, layout) }?;
        Ok(t.map(|t| self.wrap(t)))
    }
    /// The backend's own short name (`Backend::NAME`), for messages.
    pub fn backend_name(&self) -> &'static str {
        self.constructors.backend_name()
    }
}

/// The global registry, in registration order.
static REGISTRY: RwLock<Vec<&'static BackendEntry>> = RwLock::new(Vec::new());
/// Names that once meant a backend, with what to use instead.
static RETIRED: RwLock<Vec<(&'static str, &'static str)>> = RwLock::new(Vec::new());
/// Backends this build knows of but was built without, with how to get them.
static ABSENT: RwLock<Vec<(&'static str, &'static str)>> = RwLock::new(Vec::new());

fn read() -> Vec<&'static BackendEntry> {
    REGISTRY.read().map(|r| r.clone()).unwrap_or_default()
}

/// The first registered entry (registration order) for which `pred` holds, looked up under the
/// read lock without copying the list ([`read`] allocates): the lookups every conversion makes.
/// `pred` must not touch the registry.
fn first_where(pred: impl Fn(&BackendEntry) -> bool) -> Option<&'static BackendEntry> {
    REGISTRY.read().ok()?.iter().copied().find(|e| pred(e))
}

/// Registers a backend and returns its entry (for the process' lifetime). Registering the same
/// name twice is an error, unless it is the same backend type again (then the first entry is
/// returned, so registration is idempotent).
pub fn register(entry: BackendEntry) -> Result<&'static BackendEntry> {
    let mut r = REGISTRY
        .write()
        .map_err(|_| Error::InvalidArgument("the backend registry is poisoned".into()))?;
    if let Some(existing) = r.iter().find(|e| e.name == entry.name) {
        if existing.type_id == entry.type_id {
            return Ok(existing);
        }
        return Err(Error::InvalidArgument(format!(
            "backend name '{}' is already registered (by {})",
            entry.name, existing.type_name
        )));
    }
    let leaked: &'static BackendEntry = Box::leak(Box::new(entry));
    r.push(leaked);
    Ok(leaked)
}

/// Records that `name` no longer names a backend; [`find`] then fails with `advice`.
pub fn retire(name: &'static str, advice: &'static str) {
    if let Ok(mut r) = RETIRED.write() {
        if !r.iter().any(|(n, _)| *n == name) {
            r.push((name, advice));
        }
    }
}

/// Records that backend `name` exists but is not compiled into this build; [`find`] then fails
/// with [`Error::DeviceUnavailable`] saying so and how to get it (`how`, e.g. "cargo feature
/// `torch`").
pub fn absent(name: &'static str, how: &'static str) {
    if let Ok(mut r) = ABSENT.write() {
        if !r.iter().any(|(n, _)| *n == name) {
            r.push((name, how));
        }
    }
}

/// The backends this build knows of but was built without, with how to get each.
pub fn absent_backends() -> Vec<(&'static str, &'static str)> {
    ABSENT.read().map(|r| r.clone()).unwrap_or_default()
}

/// Every registered backend, in registration order.
pub fn backends() -> Vec<&'static BackendEntry> {
    read()
}

/// The names of the registered backends, in registration order.
pub fn names() -> Vec<&'static str> {
    read().iter().map(|e| e.name).collect()
}

/// The backend registered under `name` (surrounding whitespace ignored); an error naming the
/// registered ones otherwise.
pub fn find(name: &str) -> Result<&'static BackendEntry> {
    let name = name.trim();
    if let Some(e) = first_where(|e| e.name == name) {
        return Ok(e);
    }
    let all = read();
    let registered = all.iter().map(|e| e.name).collect::<Vec<_>>().join(", ");
    if let Some((_, advice)) = RETIRED
        .read()
        .ok()
        .and_then(|r| r.iter().find(|(n, _)| *n == name).copied())
    {
        return Err(Error::InvalidArgument(format!(
            "backend '{name}' no longer exists: {advice} (backends in this build: {registered})"
        )));
    }
    if let Some((_, how)) = ABSENT
        .read()
        .ok()
        .and_then(|r| r.iter().find(|(n, _)| *n == name).copied())
    {
        return Err(Error::DeviceUnavailable(format!(
            "backend '{name}' is not compiled into this build of tensorbridge (compiled: \
             {registered}); build with {how} to use it"
        )));
    }
    Err(Error::InvalidArgument(format!(
        "unknown backend '{name}'; backends in this build: {registered}"
    )))
}

/// The entry of backend type `B`, if registered.
pub fn entry_of<B: Backend>() -> Option<&'static BackendEntry> {
    entry_by_type(TypeId::of::<B>())
}

/// The entry registered for the backend type with this `TypeId`.
pub fn entry_by_type(type_id: TypeId) -> Option<&'static BackendEntry> {
    first_where(|e| e.type_id == type_id)
}

/// [`default_for`]'s answers once found, by device kind (CPU, CUDA).
static DEFAULT_FOR: [OnceLock<&'static BackendEntry>; 2] = [OnceLock::new(), OnceLock::new()];

/// The default backend for `device`: the first registered eager backend accepting its kind
/// (`cpu` for host memory; for CUDA, the first backend with CUDA devices in registration order).
pub fn default_for(device: &Device) -> Result<&'static BackendEntry> {
    // Every conversion asks, some several times; the answer is found under the lock once per
    // device kind and kept. It cannot change: entries are only ever appended, so the first one
    // that matches stays the first.
    let kept = &DEFAULT_FOR[match device.kind() {
        DeviceKind::Cpu => 0,
        DeviceKind::Cuda => 1,
    }];
    if let Some(entry) = kept.get() {
        return Ok(entry);
    }
    let found = first_where(|e| e.deferred.is_none() && e.accepts(device.kind()));
    if let Some(entry) = found {
        return Ok(kept.get_or_init(|| entry));
    }
    found.ok_or_else(|| {
        Error::DeviceUnavailable(format!(
            "no backend with {} devices is compiled into this build (backends: {})",
            device.kind(),
            names().join(", ")
        ))
    })
}

/// Wraps memory someone else owns as a tensor of the first registered eager backend that can hold
/// it in place (registration order), or `Ok(None)` when none can (the caller copies).
///
/// # Safety
/// As [`Backend::from_external`]; `layout` must lie inside the `memory.len` elements (checked).
pub unsafe fn import_external(
    memory: ExternalMemory,
    layout: crate::Layout,
) -> Result<Option<AnyTensor>> {
    for e in read() {
        if e.deferred.is_some() || !e.accepts(memory.device.kind()) {
            continue;
        }
        // SAFETY: forwarded; the caller upholds the contract.
        if let Some(t) = unsafe { e.tensor_from_external(memory.clone(), layout.clone()) }? {
            return Ok(Some(t));
        }
    }
    Ok(None)
}
