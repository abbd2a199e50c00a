//! A tensor crossing a process boundary or being copied: `pickle` by value, `copy.copy` and
//! `copy.deepcopy`, and the token Dask names a graph's source by (`__dask_tokenize__`).
//!
//! A pickle holds the values as a NumPy array (the host view itself for host memory, so protocol
//! 5 hands its buffer out of band without a copy; one device-to-host copy for device memory),
//! plus the backend's and device's names. Unpickling puts the values on that same backend and
//! device, or fails with a RuntimeError naming what this process lacks (`tensorbridge._pickling`),
//! never silently somewhere else.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use pyo3::prelude::*;
use tensorbridge::AnyTensor;

use super::{bytes_of, PyTensor};
use crate::errors::run_guarded;

/// The next serial number `__dask_tokenize__` hands out.
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(0);

/// A random number fixed for the process, so tokens drawn in two processes (a client and a
/// worker) never coincide.
fn process_nonce() -> u64 {
    static NONCE: OnceLock<u64> = OnceLock::new();
    *NONCE.get_or_init(|| {
        let mut h = RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish()
    })
}

/// A new tensor with its own storage holding `t`'s values, on `t`'s backend and device (one copy
/// through the host: the trait has no device-side copy that is guaranteed not to share).
fn copy_of(py: Python<'_>, t: &AnyTensor) -> PyResult<PyTensor> {
    let out = run_guarded(py, bytes_of(t), || {
        AnyTensor::from_host(t.backend(), t.to_host()?, &t.device())
    })?;
    Ok(PyTensor::wrap(out))
}

#[pymethods]
impl PyTensor {
    /// Pickles by value: `(tensorbridge._pickling.rebuild, (values, backend, device))`, the
    /// values a NumPy array (for host memory the zero-copy view; for device memory one copy to
    /// the host, whole: pickling needs every byte). A lazy tensor is evaluated first and comes
    /// back as an evaluated leaf of its lazy backend. bfloat16 values travel as
    /// `ml_dtypes.bfloat16` arrays, so both sides need ml_dtypes.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let t = &slf.get().inner;
        let values = Self::to_numpy(slf, None, None)?;
        let rebuild = py.import("tensorbridge._pickling")?.getattr("rebuild")?;
        let args = (values, t.backend().name(), t.device().to_string());
        (rebuild, args).into_pyobject(py).map(Bound::into_any)
    }

    /// `copy.copy(t)`: as NumPy's, a new tensor with its own memory holding the same values, on
    /// the same backend and device (later writes to memory `t` shares with NumPy or another
    /// DLPack producer do not show through the copy).
    fn __copy__(&self, py: Python<'_>) -> PyResult<PyTensor> {
        copy_of(py, &self.inner)
    }

    /// `copy.deepcopy(t)`: the same as `copy.copy` (a tensor holds no Python objects).
    fn __deepcopy__(&self, py: Python<'_>, _memo: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        copy_of(py, &self.inner)
    }

    /// Dask's name for this tensor as the source of a graph (`dask.base.tokenize(t)`,
    /// `da.from_array(t)`): this object's identity, fixed for its lifetime and never reused in
    /// the process, so Dask does not hash (or pickle, twice) the values to name the graph. Two
    /// tensor objects get two tokens even over the same memory.
    fn __dask_tokenize__(&self) -> String {
        let serial = *self
            .serial
            .get_or_init(|| NEXT_SERIAL.fetch_add(1, Ordering::Relaxed));
        format!("tensorbridge.Tensor-{:016x}-{serial}", process_nonce())
    }
}
