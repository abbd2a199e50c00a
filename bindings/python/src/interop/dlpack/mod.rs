//! DLPack both ways: `Tensor.__dlpack__` / `__dlpack_device__` (export) and `tb.from_dlpack`
//! (import), with the array API standard's semantics.
//!
//! Export hands out a capsule named `dltensor_versioned` (DLPack ≥ 1.0, when the consumer passes
//! `max_version >= (1, 0)`) or `dltensor` (legacy). Our tensors are immutable, so a zero-copy
//! export is flagged `READ_ONLY`; the legacy struct cannot say so, hence a legacy export needs
//! `copy=True` (NumPy's rule). The capsule destructor calls the deleter only while the capsule
//! still has its unconsumed name; a consumer renames it to `used_dltensor[_versioned]` and owns the
//! tensor from then on. Our deleter takes the GIL (the exported tensor may hold Python objects,
//! e.g. a NumPy array it was imported from) and leaks instead when the interpreter is finalizing.
//!
//! Laid out as the C ABI (`ffi.rs`), export (`export.rs`) and import (`import.rs`). Both
//! directions work on every backend through the core: export reads a view's memory with
//! `AnyTensor::view_memory` (host or device), import hands foreign memory to the backend registry
//! (`BackendEntry::from_external`).

pub mod export;
pub mod ffi;
pub mod import;

use pyo3::prelude::*;
use pyo3::types::PyTuple;
use tensorbridge::AnyTensor;

/// `__dlpack_device__`: `(device_type, device_id)`.
pub fn device_tuple<'py>(py: Python<'py>, t: &AnyTensor) -> PyResult<Bound<'py, PyTuple>> {
    let d = ffi::dl_device(&t.device());
    PyTuple::new(py, [i64::from(d.device_type.0), i64::from(d.device_id)])
}
