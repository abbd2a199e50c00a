//! `torch.Tensor` → torch-backend tensor without a copy (feature `torch`).
//!
//! The torch tensor's memory is wrapped in place and the Python object is kept as the storage's
//! owner, so PyTorch's caching allocator cannot reuse it while we read it. Everything about the
//! tensor is read from the object itself (never from caller-supplied pointers), so this cannot be
//! misused from Python to read arbitrary memory.

use std::any::Any;
use std::sync::Arc;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use tensorbridge::torch::Torch;
use tensorbridge::{AnyTensor, DType, Device, Layout, Tensor};

use crate::errors::IntoPyResult;
use crate::PyTensor;

/// Shares a `torch.Tensor`'s memory (detached; made contiguous by torch first when it is not).
#[pyfunction]
pub fn _from_torch(py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
    let torch = py.import("torch")?;
    if !x.is_instance(&torch.getattr("Tensor")?)? {
        return Err(PyTypeError::new_err(format!(
            "expected a torch.Tensor, got {}",
            x.get_type().name()?
        )));
    }
    if !x.getattr("layout")?.eq(torch.getattr("strided")?)? {
        return Err(PyTypeError::new_err(
            "only dense (strided) torch tensors can be shared; call .to_dense() first",
        ));
    }
    // A value, not a graph node: conversion never fails because of autograd.
    let mut x = x.call_method0("detach")?;
    if x.call_method0("is_conj")?.extract::<bool>()? || x.call_method0("is_neg")?.extract()? {
        x = x
            .call_method0("resolve_conj")?
            .call_method0("resolve_neg")?;
    }
    if !x.call_method0("is_contiguous")?.extract::<bool>()? {
        x = x.call_method0("contiguous")?;
    }
    let name = x.getattr("dtype")?.str()?.to_string();
    let dtype: DType = name
        .strip_prefix("torch.")
        .unwrap_or(&name)
        .parse()
        .map_err(|_| PyTypeError::new_err(format!("tensorbridge has no dtype for {name}")))?;
    let device: Device = x.getattr("device")?.str()?.to_string().parse().py(py)?;
    let shape: Vec<usize> = x.getattr("shape")?.extract()?;
    let numel: usize = x.call_method0("numel")?.extract()?;
    let ptr: usize = x.call_method0("data_ptr")?.extract()?;
    let owner: Arc<dyn Any + Send + Sync> = Arc::new(x.unbind());
    // SAFETY: `ptr` is the data pointer of a contiguous, dense torch tensor of `numel` elements of
    // `dtype` (torch's uint16/32/64 and bfloat16 have our layouts) on `device`, read from the
    // object just now; `owner` holds that very tensor object, so its storage stays allocated as
    // long as our storage lives. Writes made later through PyTorch are visible (documented, like
    // `torch.from_numpy`).
    let storage =
        unsafe { Torch::from_raw(ptr as *const u8, numel, dtype, &device, owner) }.py(py)?;
    let t = Tensor::from_storage(Arc::new(storage), Layout::contiguous(&shape)).py(py)?;
    Ok(PyTensor::wrap(AnyTensor::Torch(t)))
}
