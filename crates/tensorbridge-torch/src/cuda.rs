//! Making libtorch's CUDA half visible, and resolving `cuda:N`.
//!
//! tch links `libtorch_cpu` and `libtorch_cuda` by name, but with the linker's default
//! `--as-needed` the CUDA library, of which no symbol is referenced directly, is dropped: its static
//! initialisers (which register CUDA with the dispatcher) never run and `Cuda::is_available()` is
//! false even on a GPU machine (tch #907, #980). We load it ourselves, once, from the directory the
//! already-loaded `libtorch_cpu.so` came from, before the first CUDA device is resolved. Inside a
//! Python process that imported `torch` it is already loaded and this is a no-op.

use std::ffi::{CStr, CString};
use std::path::PathBuf;
use std::sync::OnceLock;

use tensorbridge_core::{Device, Error, Result};

/// The directory of the loaded `libtorch_cpu.so`, found among the process's loaded objects.
fn libtorch_dir() -> Option<PathBuf> {
    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: the loader passes a valid `dl_phdr_info` for the duration of the callback, and
        // `data` is the `Option<PathBuf>` that `libtorch_dir` handed to `dl_iterate_phdr`.
        unsafe {
            let name = (*info).dlpi_name;
            if name.is_null() {
                return 0;
            }
            let path = CStr::from_ptr(name).to_string_lossy();
            if path.ends_with("/libtorch_cpu.so") {
                let found = &mut *(data as *mut Option<PathBuf>);
                *found = PathBuf::from(path.as_ref()).parent().map(PathBuf::from);
                return 1;
            }
        }
        0
    }
    let mut found: Option<PathBuf> = None;
    // SAFETY: `visit` only reads the entries it is given and writes through `data`, which points
    // to `found` for the whole call.
    unsafe {
        libc::dl_iterate_phdr(
            Some(visit),
            &mut found as *mut Option<PathBuf> as *mut libc::c_void,
        );
    }
    found
}

/// Loads `libtorch_cuda.so` (once). Err names why CUDA cannot work in this process.
pub fn load_libtorch_cuda() -> std::result::Result<(), String> {
    static LOADED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let dir = libtorch_dir().ok_or("libtorch_cpu.so is not loaded in this process")?;
            let lib = dir.join("libtorch_cuda.so");
            if !lib.exists() {
                return Err(format!(
                    "libtorch in {} has no libtorch_cuda.so (a CPU-only build of torch)",
                    dir.display()
                ));
            }
            let c = CString::new(lib.to_string_lossy().as_bytes())
                .map_err(|_| "libtorch path contains a NUL byte".to_string())?;
            // SAFETY: `c` is a valid C string; RTLD_GLOBAL makes the CUDA kernels' registrations
            // visible as if linked. The handle is deliberately never closed (libtorch does not
            // support unloading).
            let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
            if handle.is_null() {
                // SAFETY: dlerror returns a thread-local message or null.
                let msg = unsafe {
                    let e = libc::dlerror();
                    if e.is_null() {
                        "unknown error".to_string()
                    } else {
                        CStr::from_ptr(e).to_string_lossy().into_owned()
                    }
                };
                return Err(format!("loading {} failed: {msg}", lib.display()));
            }
            Ok(())
        })
        .clone()
}

/// True when `libtorch_cuda.so` is mapped into this process.
pub fn libtorch_cuda_loaded() -> bool {
    std::fs::read_to_string("/proc/self/maps")
        .map(|m| m.contains("/libtorch_cuda.so"))
        .unwrap_or(false)
}

/// Number of CUDA devices libtorch sees (0 without a GPU or driver).
pub fn device_count() -> usize {
    if load_libtorch_cuda().is_err() {
        return 0;
    }
    tch::Cuda::device_count().max(0) as usize
}

/// True when libtorch can run on at least one CUDA device.
pub fn is_available() -> bool {
    load_libtorch_cuda().is_ok() && tch::Cuda::is_available()
}

/// Our device as tch's, or `DeviceUnavailable` naming the reason.
pub(crate) fn tch_device(device: &Device) -> Result<tch::Device> {
    match *device {
        Device::Cpu => Ok(tch::Device::Cpu),
        Device::Cuda(i) => {
            load_libtorch_cuda().map_err(|why| {
                Error::DeviceUnavailable(format!("torch backend: {device} is unavailable: {why}"))
            })?;
            let n = device_count();
            if i >= n {
                let seen = match n {
                    0 => "no CUDA device is visible to libtorch (no GPU or no NVIDIA driver)"
                        .to_string(),
                    n => format!("libtorch sees {n} CUDA device(s): cuda:0..cuda:{}", n - 1),
                };
                return Err(Error::DeviceUnavailable(format!(
                    "torch backend: {device} is unavailable: {seen}"
                )));
            }
            Ok(tch::Device::Cuda(i))
        }
    }
}

/// tch's device as ours.
pub(crate) fn our_device(device: tch::Device) -> Result<Device> {
    match device {
        tch::Device::Cpu => Ok(Device::Cpu),
        tch::Device::Cuda(i) => Ok(Device::Cuda(i)),
        other => Err(Error::Unsupported(format!(
            "the torch backend does not handle tensors on {other:?}"
        ))),
    }
}
