//! Device → host for the torch backend, in one place.
//!
//! - CPU storage is host memory: the core's cache-blocked kernel reads the view in place and
//!   converts on the way (one pass; it beats libtorch's `contiguous` on transposes, see the README
//!   benchmarks). Python's zero-copy `.numpy()` does not come here at all: it reads
//!   [`Backend::host_bytes`](tensorbridge_core::Backend::host_bytes).
//! - CUDA storage: the view is made contiguous and converted on the device, so only the view's
//!   elements, in the requested dtype, cross the bus, in one copy straight into the destination
//!   (never a zero-filled buffer first: tch's `Vec::try_from` does both).

use std::mem::MaybeUninit;

use ndarray::{ArrayD, ArrayViewMutD, IxDyn};
use tch::Tensor as TchTensor;
use tensorbridge_core::host::{
    check_contiguous_len, copy_into, copy_into_contiguous, to_contiguous,
};
use tensorbridge_core::memory_guard::try_alloc;
use tensorbridge_core::{with_dtype, DType, Element, Error, HostArray, Layout, Result};

use crate::kinds::{self, storage_kind, OrTch};
use crate::Torch;

/// The view's elements as a new host array of `dtype`.
pub(crate) fn to_host(s: &Torch, layout: &Layout, dtype: DType) -> Result<HostArray> {
    with_dtype!(dtype, D => Ok(HostArray::from(to_host_typed::<D>(s, layout)?)))
}

fn to_host_typed<D: Element>(s: &Torch, layout: &Layout) -> Result<ArrayD<D>> {
    if let Some(out) = with_dtype!(s.dtype, S => s
        .host_slice::<S>()
        .map(|src| to_contiguous::<S, D>(src, layout)))
    {
        return out;
    }
    let n = layout.elem_count();
    // The host buffer first, through the memory guard (RAM and container limits): a view far
    // larger than the host fails here, before any device work.
    let mut v = try_alloc::<D>("to_host", layout.shape())?;
    let src = device_view_as(s, layout, D::DTYPE)?;
    // SAFETY: `v` has capacity for `n` elements of `D`, and `copy_from_device` writes all `n` of
    // them (or fails, and then `set_len` is never reached).
    unsafe {
        copy_from_device(&src, v.as_mut_ptr() as *mut u8, n, D::DTYPE)?;
        v.set_len(n);
    }
    ArrayD::from_shape_vec(IxDyn(layout.shape()), v)
        .map_err(|e| Error::InvalidArgument(format!("to_host: {e}")))
}

/// The view converted to `dtype` on the device, contiguous.
fn device_view_as(s: &Torch, layout: &Layout, dtype: DType) -> Result<TchTensor> {
    let v = s.view(layout)?;
    let v = if dtype == s.dtype {
        v
    } else {
        kinds::cast(&v, s.dtype, dtype)?
    };
    v.f_contiguous().or_tch()
}

/// Copies the contiguous device tensor `src` (`n` elements of `dtype`'s storage kind) into host
/// memory at `dst`.
///
/// # Safety
/// `dst` must be valid for writes of `n` elements of `dtype`, aligned for it.
unsafe fn copy_from_device(src: &TchTensor, dst: *mut u8, n: usize, dtype: DType) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    // SAFETY: the caller guarantees `dst` holds `n` writable, aligned elements of `dtype`; the
    // host tensor only lives inside this function, while `dst` is valid.
    let mut host = unsafe {
        TchTensor::f_from_blob(
            dst,
            &[n as i64],
            &[1],
            storage_kind(dtype),
            tch::Device::Cpu,
        )
        .or_tch()?
    };
    // A blocking copy (non_blocking = false): the data is on the host when this returns.
    host.f_copy_(&src.f_reshape([n as i64]).or_tch()?).or_tch()
}

/// Copies the view into a caller's buffer of the same shape, converting to `T`.
pub(crate) fn to_host_into<T: Element>(
    s: &Torch,
    layout: &Layout,
    out: &mut ArrayViewMutD<'_, T>,
) -> Result<()> {
    if out.shape() != layout.shape() {
        return Err(Error::ShapeMismatch {
            op: "to_host_into",
            lhs: layout.shape().to_vec(),
            rhs: out.shape().to_vec(),
        });
    }
    if let Some(done) = with_dtype!(s.dtype, S => s
        .host_slice::<S>()
        .map(|src| copy_into(src, layout, out)))
    {
        return done;
    }
    let n = layout.elem_count();
    if out.is_standard_layout() {
        if let Some(dst) = out.as_slice_mut() {
            let src = device_view_as(s, layout, T::DTYPE)?;
            // SAFETY: `dst` is the caller's buffer of exactly `n` elements of `T`.
            return unsafe { copy_from_device(&src, dst.as_mut_ptr() as *mut u8, n, T::DTYPE) };
        }
    }
    // A strided destination: one device copy to the host, then the core's strided copy.
    let host = to_host_typed::<T>(s, layout)?;
    let flat = host
        .as_slice()
        .ok_or_else(|| Error::InvalidArgument("to_host_into: non-contiguous staging".into()))?;
    copy_into(flat, &Layout::contiguous(layout.shape()), out)
}

/// [`to_host_into`] for a C-contiguous destination of exactly the view's elements (possibly
/// uninitialised): host storage goes through the core's contiguous copy, device storage is one
/// device-to-host copy straight into `out`.
pub(crate) fn to_host_into_contiguous<T: Element>(
    s: &Torch,
    layout: &Layout,
    out: &mut [MaybeUninit<T>],
) -> Result<()> {
    if let Some(done) = with_dtype!(s.dtype, S => s
        .host_slice::<S>()
        .map(|src| copy_into_contiguous(src, layout, out)))
    {
        return done;
    }
    let n = layout.elem_count();
    check_contiguous_len(layout.shape(), n, out.len())?;
    let src = device_view_as(s, layout, T::DTYPE)?;
    // SAFETY: `out` is the caller's buffer of exactly `n` elements of `T` (checked above); the
    // device copy writes all of them and reads none.
    unsafe { copy_from_device(&src, out.as_mut_ptr() as *mut u8, n, T::DTYPE) }
}
