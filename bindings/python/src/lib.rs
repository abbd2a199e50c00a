//! # tensorbridge Python bindings (`tensorbridge._native`)
//!
//! One `Tensor` class over [`tensorbridge::AnyTensor`] (every registered backend), and one NumPy
//! conversion contract for all of them: `t.numpy()`, `np.asarray(t)` and `np.array(t)` give a
//! read-only zero-copy view where the data is host memory and a single copy otherwise;
//! `copy=True` gives a writable independent array; `copy=False` fails when a copy is unavoidable
//! (NumPy 2 semantics). Nothing here names a backend: backends are found by name in the registry
//! (`tensorbridge::registry`), and what differs between them is asked through the core.
//!
//! Laid out by concern: this file only registers the module; `args.rs` parses arguments;
//! `tensor/` is the `Tensor` class (methods by topic); `construction.rs` the module's
//! constructors; `interop/` NumPy, DLPack and the CUDA array interface;
//! `session.rs` lazy evaluation; `transfer_guard.rs` `tb.transfer_guard`; `errors.rs` the one
//! mapping of errors (and panics) to exceptions. The Python-level API (`tb.tensor`, `tb.zeros`,
//! ...) is `tensorbridge/__init__.py`.

mod args;
mod construction;
mod errors;
mod interop;
mod session;
mod tensor;
mod transfer_guard;

use pyo3::prelude::*;

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    tensorbridge::registry::init();
    m.add_class::<tensor::PyTensor>()?;
    tensor::fastcall::install(m.py())?;
    m.add_class::<session::PySession>()?;
    m.add_function(wrap_pyfunction!(construction::_from_numpy, m)?)?;
    m.add_function(wrap_pyfunction!(construction::from_numpy, m)?)?;
    m.add_function(wrap_pyfunction!(construction::_tensor_of_ndarray, m)?)?;
    m.add_function(wrap_pyfunction!(construction::tensor, m)?)?;
    m.add_function(wrap_pyfunction!(construction::_native_array, m)?)?;
    m.add_function(wrap_pyfunction!(construction::_from_dlpack, m)?)?;
    m.add_function(wrap_pyfunction!(construction::_copy, m)?)?;
    m.add_function(wrap_pyfunction!(construction::_dtype_name, m)?)?;
    m.add_function(wrap_pyfunction!(construction::_full, m)?)?;
    m.add_function(wrap_pyfunction!(construction::_arange, m)?)?;
    m.add_function(wrap_pyfunction!(construction::_compiled_backends, m)?)?;
    m.add_function(wrap_pyfunction!(construction::_backend_info, m)?)?;
    m.add_function(wrap_pyfunction!(construction::_default_backend, m)?)?;
    m.add_function(wrap_pyfunction!(construction::_backend_stats, m)?)?;
    m.add_function(wrap_pyfunction!(construction::_absent_backends, m)?)?;
    m.add_function(wrap_pyfunction!(transfer_guard::_set_transfer_guard, m)?)?;
    m.add_function(wrap_pyfunction!(transfer_guard::_get_transfer_guard, m)?)?;
    m.add_function(wrap_pyfunction!(interop::asnumpy::asnumpy, m)?)?;
    m.add_function(wrap_pyfunction!(interop::numpy::release_cached_buffers, m)?)?;
    m.add_function(wrap_pyfunction!(interop::numpy::cached_buffer_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(interop::asnumpy::_asnumpy_tensor, m)?)?;
    m.add_function(wrap_pyfunction!(interop::asnumpy::_asnumpy_array, m)?)?;
    m.add_function(wrap_pyfunction!(
        interop::asnumpy::_asnumpy_register_fast,
        m
    )?)?;
    m.add_function(wrap_pyfunction!(
        interop::asnumpy::_asnumpy_set_fallback,
        m
    )?)?;
    m.add_function(wrap_pyfunction!(
        interop::asnumpy::_asnumpy_transfer_guard,
        m
    )?)?;
    m.add_function(wrap_pyfunction!(interop::asnumpy::_asnumpy_host_guard, m)?)?;
    m.add_function(wrap_pyfunction!(interop::asnumpy::_readonly, m)?)?;
    m.add("BF16_NEEDS_ML_DTYPES", interop::numpy::BF16_NEEDS_ML_DTYPES)?;
    Ok(())
}
