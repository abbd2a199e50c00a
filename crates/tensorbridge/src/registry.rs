//! The backends compiled into this build, registered once: one line per backend. A backend with a
//! deferred (lazy) variant registers both with one [`backend!`] line; adding a backend is its
//! crate, one line here and one cargo feature.
//!
//! Default backend for a device (`tb.tensor(x, device="cuda")` in Python): the first eager
//! backend registered below that accepts the device's kind — `cpu` for host memory; for CUDA,
//! `torch` when compiled in (libtorch's kernels cover all 13 dtypes), else `candle`.

use std::sync::Once;

pub use tensorbridge_core::registry::{
    absent, absent_backends, backends, default_for, entry_by_type, entry_of, find, import_external,
    names, register, retire, BackendEntry, DeferredBackend, DynSession,
};

/// Registers backend `$ty` under `$name` when cargo feature `$feature` is on (and, with the
/// `lazy` feature, `Lazy<$ty>` under `"lazy:" + $name`); otherwise records both names as absent,
/// so asking for them says which feature builds them.
macro_rules! backend {
    ($name:literal, $feature:literal, $ty:ty) => {{
        #[cfg(feature = $feature)]
        {
            register_or_report(BackendEntry::new::<$ty>($name));
            #[cfg(feature = "lazy")]
            register_or_report(tensorbridge_lazy::entry::<$ty>(concat!("lazy:", $name)));
        }
        #[cfg(not(feature = $feature))]
        absent($name, concat!("cargo feature `", $feature, "`"));
        #[cfg(not(all(feature = $feature, feature = "lazy")))]
        absent(
            concat!("lazy:", $name),
            concat!("cargo features `", $feature, "` and `lazy`"),
        );
    }};
}

/// Registration happens once, before any user code runs against the registry; a name clash
/// there is a programming error in this file, reported loudly in debug builds.
fn register_or_report(entry: BackendEntry) {
    let name = entry.name();
    let registered = register(entry);
    debug_assert!(registered.is_ok(), "registering backend '{name}' failed");
}

/// Registers every backend compiled into this build (once; later calls do nothing). Call it
/// before looking backends up by name; [`AnyTensor`](crate::AnyTensor) constructors need their
/// backend registered.
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        backend!("cpu", "cpu", tensorbridge_cpu::Cpu);
        backend!("torch", "torch", tensorbridge_torch::Torch);
        backend!("candle", "candle", tensorbridge_candle::Candle);
        #[cfg(feature = "counted")]
        register_or_report(tensorbridge_counted::entry::<tensorbridge_cpu::Cpu, true>(
            "counted:cpu",
        ));
        #[cfg(all(feature = "counted", feature = "candle"))]
        // Candle's host memory hidden: the device conversion path, testable without a GPU.
        register_or_report(tensorbridge_counted::entry::<
            tensorbridge_candle::Candle,
            false,
        >("counted:candle"));
        retire(
            "cuda",
            "the candle-core backend is backend='candle' (devices 'cpu' and 'cuda:N'); for \
             the default GPU backend pass device='cuda' and no backend",
        );
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use tensorbridge_core::{AnyTensor, Device, HostArray, Scalar};

    #[test]
    fn every_compiled_backend_is_registered_once_in_order() {
        init();
        init();
        let names = names();
        assert_eq!(names.first(), Some(&"cpu"));
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        #[cfg(feature = "lazy")]
        assert!(names.contains(&"lazy:cpu"), "{names:?}");
    }

    #[test]
    fn unknown_and_retired_names_have_clear_errors() {
        init();
        let e = find("tpu").unwrap_err().to_string();
        assert!(
            e.contains("unknown backend 'tpu'") && e.contains("cpu"),
            "{e}"
        );
        let e = find("cuda").unwrap_err().to_string();
        assert!(
            e.contains("backend='candle'") && e.contains("device='cuda'"),
            "{e}"
        );
        for name in ["torch", "candle", "lazy:torch", "lazy:candle"] {
            if names().contains(&name) {
                continue;
            }
            let e = find(name).unwrap_err();
            assert!(
                matches!(e, tensorbridge_core::Error::DeviceUnavailable(_)),
                "{e}"
            );
            assert!(e.to_string().contains("cargo feature"), "{e}");
        }
    }

    #[test]
    fn any_tensor_round_trips_through_ops_and_backends() {
        init();
        let cpu = find("cpu").unwrap();
        let h = HostArray::from(tensorbridge_core::ndarray::arr2(&[[1i64, 2], [4, 8]]).into_dyn());
        let t = AnyTensor::from_host(cpu, h, &Device::Cpu).unwrap();
        let u = t.mul_scalar(Scalar::Int(2)).unwrap().t();
        let back = u.to_host().unwrap().into_typed::<i64>().unwrap();
        assert_eq!(back[[0, 1]], 8);
        for b in backends() {
            let moved = t.to(b, &Device::Cpu).unwrap();
            assert_eq!(moved.backend().name(), b.name());
            let again = moved.to(cpu, &Device::Cpu).unwrap();
            assert_eq!(again.to_host().unwrap(), t.to_host().unwrap());
        }
    }

    #[test]
    fn mixing_backends_is_an_error_naming_both() {
        init();
        let all = backends();
        if all.len() < 2 {
            return;
        }
        let a = all[0]
            .full(&[2], Scalar::Int(1), None, &Device::Cpu)
            .unwrap();
        let b = all[1]
            .full(&[2], Scalar::Int(1), None, &Device::Cpu)
            .unwrap();
        let e = a.add(&b).unwrap_err().to_string();
        assert!(
            e.contains(all[0].name()) && e.contains(all[1].name()),
            "{e}"
        );
    }

    #[test]
    fn the_default_host_backend_is_cpu() {
        init();
        assert_eq!(default_for(&Device::Cpu).unwrap().name(), "cpu");
    }
}
