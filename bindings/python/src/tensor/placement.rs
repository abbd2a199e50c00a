//! Where a tensor lives: explicit moves between backends and devices, and waiting for a device.

use pyo3::prelude::*;
use tensorbridge::registry;
use tensorbridge::Device;

use super::{bytes_of, PyTensor};
use crate::args::parse_device;
use crate::errors::{run_guarded, IntoPyResult};

#[pymethods]
impl PyTensor {
    /// The same values on another backend and/or device (a copy when either differs; nothing
    /// moves between a lazy backend and the eager one it records for). `backend=None` keeps the
    /// backend, `device=None` the device.
    #[pyo3(signature = (backend=None, device=None))]
    fn to(
        &self,
        py: Python<'_>,
        backend: Option<&str>,
        device: Option<&str>,
    ) -> PyResult<PyTensor> {
        let entry = match backend {
            None => self.inner.backend(),
            Some(b) => registry::find(b).py(py)?,
        };
        let dev = match device {
            None => self.inner.device(),
            Some(d) => parse_device(py, d)?,
        };
        let t = &self.inner;
        Ok(PyTensor::wrap(run_guarded(py, bytes_of(t), || {
            t.to(entry, &dev)
        })?))
    }

    /// A contiguous tensor with the same values (self when already contiguous).
    fn contiguous(&self, py: Python<'_>) -> PyResult<PyTensor> {
        let t = &self.inner;
        Ok(PyTensor::wrap(run_guarded(py, bytes_of(t), || {
            t.contiguous()
        })?))
    }

    /// Blocks until every operation queued on this tensor's device has finished (a no-op on
    /// synchronous backends such as `cpu`); benchmarks call it to time asynchronous devices.
    fn synchronize(&self, py: Python<'_>) -> PyResult<()> {
        let t = &self.inner;
        // Waiting on a device (or evaluating a graph) can take long: let other threads run.
        let wait = if t.device() == Device::Cpu && !t.is_deferred() {
            0
        } else {
            usize::MAX
        };
        run_guarded(py, wait, || t.synchronize())
    }
}
