//! `tb.transfer_guard`: what an *implicit* conversion out of backend-owned memory may do, as in
//! JAX. `np.asarray(t)`, `np.add(t, 1)` and every other path through `__array__` are implicit;
//! `t.numpy()` is the explicit spelling and is never guarded. The guard applies to tensors whose
//! storage NumPy cannot read in place: device memory (CUDA), and the `counted:candle` test
//! decorator's (candle's CPU storage with its host memory hidden), which is how CI tests it
//! without a GPU.

use std::sync::atomic::{AtomicU8, Ordering};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use tensorbridge::AnyTensor;

/// The levels, in the order of the stored byte.
const LEVELS: [&str; 3] = ["allow", "log", "disallow"];

static LEVEL: AtomicU8 = AtomicU8::new(0);

fn parse(level: &str) -> PyResult<u8> {
    LEVELS
        .iter()
        .position(|&l| l == level)
        .map(|i| i as u8)
        .ok_or_else(|| {
            PyValueError::new_err(format!(
                "transfer_guard level must be 'allow', 'log' or 'disallow', got {level:?}"
            ))
        })
}

/// Sets the process-wide level and returns the previous one.
#[pyfunction]
pub fn _set_transfer_guard(level: &str) -> PyResult<&'static str> {
    let new = parse(level)?;
    Ok(LEVELS[LEVEL.swap(new, Ordering::SeqCst) as usize])
}

/// The current level.
#[pyfunction]
pub fn _get_transfer_guard() -> &'static str {
    LEVELS[LEVEL.load(Ordering::SeqCst) as usize]
}

/// Applies the guard to an implicit conversion of `t` (a no-op for host-readable storage).
pub fn check_implicit(py: Python<'_>, t: &AnyTensor) -> PyResult<()> {
    // The level first: at the default ("allow") nothing is asked of the tensor. Asking where its
    // memory is goes through the backend (candle takes its storage's read lock), and this runs on
    // every `__array__` call: a 4-element `np.array(t)` of a candle tensor spent about 10% of its
    // own instructions here.
    let level = LEVEL.load(Ordering::SeqCst);
    if level == 0 || t.host_bytes().is_some() {
        return Ok(());
    }
    let what = format!(
        "implicit device-to-host transfer of a {} tensor of shape {:?} ({} bytes) through \
         __array__",
        t.placement(),
        t.shape(),
        t.elem_count() * t.dtype().size_in_bytes()
    );
    if level == 1 {
        let logger = py
            .import("logging")?
            .call_method1("getLogger", ("tensorbridge",))?;
        logger.call_method1("warning", (format!("tensorbridge: {what}"),))?;
        return Ok(());
    }
    Err(PyRuntimeError::new_err(format!(
        "Disallowed {what}: tb.transfer_guard is 'disallow'; convert explicitly with t.numpy()"
    )))
}
