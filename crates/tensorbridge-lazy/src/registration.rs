//! `Lazy<B>` in the backend registry: [`entry`] makes the registry entry of a lazy backend over
//! `B`, with the hooks that let type-erased code ([`AnyTensor`], the Python bindings) evaluate
//! and inspect lazy tensors, lift eager tensors of `B`, and open sessions — without naming `B`.

use std::any::TypeId;
use std::marker::PhantomData;

use tensorbridge_core::registry::{BackendEntry, DeferredBackend, DynSession};
use tensorbridge_core::{AnyTensor, Backend, DType, Device, Error, Result, Tensor};

use crate::{Lazy, LazyTensor, Session};

/// The registry entry of `Lazy<B>` under `name` (by convention `"lazy:<name of B>"`). `B` must be
/// registered too (evaluation hands out tensors of `B`).
///
/// ```text
/// registry::register(tensorbridge_lazy::entry::<Cpu>("lazy:cpu"))?;
/// ```
pub fn entry<B: Backend>(name: &'static str) -> BackendEntry {
    BackendEntry::new::<Lazy<B>>(name).with_deferred(Box::new(LazyHooks::<B> {
        name,
        _backend: PhantomData,
    }))
}

struct LazyHooks<B> {
    name: &'static str,
    _backend: PhantomData<fn() -> B>,
}

impl<B: Backend> LazyHooks<B> {
    fn lazy<'t>(&self, t: &'t AnyTensor) -> Result<&'t Tensor<Lazy<B>>> {
        t.downcast_ref::<Lazy<B>>().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "a tensor of backend '{}' is not a '{}' tensor",
                t.backend().name(),
                self.name
            ))
        })
    }
}

impl<B: Backend> DeferredBackend for LazyHooks<B> {
    fn target(&self) -> TypeId {
        TypeId::of::<B>()
    }
    fn is_evaluated(&self, t: &AnyTensor) -> bool {
        self.lazy(t).map(|l| l.is_evaluated()).unwrap_or(true)
    }
    fn expression(&self, t: &AnyTensor) -> String {
        self.lazy(t).map(|l| l.expression()).unwrap_or_default()
    }
    fn graph(&self, t: &AnyTensor, dot: bool) -> String {
        match self.lazy(t) {
            Ok(l) if dot => l.graph_dot(),
            Ok(l) => l.graph(),
            Err(e) => e.to_string(),
        }
    }
    fn lift(&self, eager: &AnyTensor) -> Result<Option<AnyTensor>> {
        match eager.downcast_ref::<B>() {
            Some(t) => Ok(Some(AnyTensor::new(Lazy::lift(t)?)?)),
            None => Ok(None),
        }
    }
    fn evaluate(&self, t: &AnyTensor) -> Result<AnyTensor> {
        let l = self.lazy(t)?;
        let session = Session::<B>::new(l.device());
        AnyTensor::new(l.eval(&session)?)
    }
    fn new_session(&self, device: &Device) -> Result<Box<dyn DynSession>> {
        // Fails now, as the eager backend would, when `B` has no such device.
        Lazy::<B>::check_device(device, DType::F32)?;
        Ok(Box::new(ErasedSession {
            name: self.name,
            session: Session::<B>::new(*device),
        }))
    }
}

struct ErasedSession<B: Backend> {
    name: &'static str,
    session: Session<B>,
}

impl<B: Backend> DynSession for ErasedSession<B> {
    fn device(&self) -> Device {
        self.session.device()
    }
    fn run(&self, fetches: &[AnyTensor]) -> Result<()> {
        let lazies = fetches
            .iter()
            .enumerate()
            .map(|(i, t)| {
                t.downcast_ref::<Lazy<B>>().ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "fetch {i} is a tensor of backend '{}'; this session evaluates '{}' \
                         tensors (an eager tensor has its values already: use t.numpy())",
                        t.backend().name(),
                        self.name
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        self.session.run(&lazies).map(drop)
    }
    fn last_run_stats(&self) -> Vec<(&'static str, usize)> {
        let s = self.session.last_run_stats();
        vec![
            ("nodes", s.nodes),
            ("cse_merged", s.cse_merged),
            ("kernels", s.kernels),
            ("fused_kernels", s.fused_kernels),
            ("fused_ops", s.fused_ops),
            ("peak_live_values", s.peak_live_values),
        ]
    }
}
