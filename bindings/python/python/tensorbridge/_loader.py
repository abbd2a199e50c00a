"""Loading the native extension on any machine, with an ImportError that says what is missing.

The ``cuda`` variant of the extension links the NVIDIA driver library (``libcuda.so.1``) and the
CUDA 13 runtime libraries (cudart, cuBLAS, cuRAND, NVRTC): the dynamic loader must find all of
them before ``import tensorbridge`` can succeed, although nothing uses them until the first CUDA
request. Two fallbacks make the package import anywhere, as PyTorch's CUDA wheels do:

* **No NVIDIA driver** (``libcuda.so.1`` cannot be loaded: a laptop, CI, a container without the
  GPU runtime): the package ships a no-device stand-in, ``_stub/libcuda.so.1``, generated from
  ``cuda.h`` by ``scripts/cuda-stub.py``. Every driver entry point in it returns
  ``CUDA_ERROR_NO_DEVICE``, and ``cuGetErrorString`` says that the NVIDIA driver was not found, so
  the import succeeds and the first CUDA request is a ``RuntimeError`` naming the missing driver.
  It is loaded only after ``dlopen("libcuda.so.1")`` failed, so a real driver always wins; once the
  stub is loaded, anything in the process that asks for ``libcuda.so.1`` gets it (the dynamic
  loader matches the soname), which changes nothing on a machine that has no driver.
  Why a stub and not a lazily loaded driver: the driver is linked by cudarc (``dynamic-linking``,
  a ``DT_NEEDED`` entry) through candle, so the extension cannot load without *a* libcuda.so.1;
  splitting the CUDA backend into a second extension module would duplicate the Tensor type.
* **CUDA runtime libraries not on the loader's path**: they are loaded from where pip puts them
  (``site-packages/nvidia/cu13/lib``, installed with ``torch`` cu130 or ``cuda-toolkit``).

Variants without the CUDA backend need neither and never take these paths.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import sys
from types import ModuleType

# In dependency order: cuBLAS needs cuBLASLt.
CUDA_RUNTIME_LIBS = (
    "libcudart.so.13",
    "libcublasLt.so.13",
    "libcublas.so.13",
    "libcurand.so.10",
    "libnvrtc.so.13",
)
DRIVER_LIB = "libcuda.so.1"
# The no-device stand-in for the driver, shipped by the cuda variants only (absent otherwise).
DRIVER_STUB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_stub", DRIVER_LIB)

_driver_stub_loaded = False


def explain(error: BaseException) -> str | None:
    """The message for an import failure of the native extension caused by a missing CUDA
    library, or None when the failure is something else."""
    text = str(error)
    if DRIVER_LIB in text:
        return (
            "tensorbridge was built with the CUDA backend (the 'cuda' variant), which needs the "
            f"NVIDIA driver library {DRIVER_LIB}, and it was not found (nor the package's "
            f"no-device stand-in {DRIVER_STUB}): install the NVIDIA driver, "
            f"or install the CPU variant of tensorbridge. ({text})"
        )
    missing = [lib for lib in CUDA_RUNTIME_LIBS if lib in text]
    if missing:
        return (
            "tensorbridge was built with the CUDA backend (the 'cuda' variant), which needs the "
            f"CUDA 13 runtime library {missing[0]}, and it was not found: pip install "
            "'torch==2.11.0' (cu130 build) or "
            "'cuda-toolkit[cudart,cublas,curand,nvrtc]==13.0.2'. "
            f"({text})"
        )
    return None


def _pip_cuda_lib_dirs() -> list[str]:
    return [
        d
        for d in (os.path.join(p, "nvidia", "cu13", "lib") for p in sys.path if p)
        if os.path.isdir(d)
    ]


def _preload_cuda_runtime() -> bool:
    """Loads the CUDA runtime libraries from the first pip-installed ``nvidia/cu13/lib`` that
    has them all (globally, so the extension's dependencies resolve to them)."""
    for d in _pip_cuda_lib_dirs():
        paths = [os.path.join(d, lib) for lib in CUDA_RUNTIME_LIBS]
        if all(os.path.exists(p) for p in paths):
            for p in paths:
                ctypes.CDLL(p, mode=ctypes.RTLD_GLOBAL)
            return True
    return False


def _load_driver_stub() -> bool:
    """Loads the packaged no-device ``libcuda.so.1`` if, and only if, the machine's own cannot be
    loaded; True when the stub is now loaded."""
    global _driver_stub_loaded
    if not os.path.exists(DRIVER_STUB):
        return False
    try:
        ctypes.CDLL(DRIVER_LIB)
    except OSError:
        pass
    else:
        return False  # a driver is there: the import failed for another reason, say so
    # Loaded under its soname, so the extension's DT_NEEDED entry resolves to it; global, so
    # later dlopen("libcuda.so.1") calls (libtorch's) see the same library.
    ctypes.CDLL(DRIVER_STUB, mode=ctypes.RTLD_GLOBAL)
    _driver_stub_loaded = True
    return True


def driver_stub_loaded() -> bool:
    """True when this process uses the package's no-device ``libcuda.so.1`` stand-in (no NVIDIA
    driver was found)."""
    return _driver_stub_loaded


def driver_library() -> str | None:
    """The path of the ``libcuda`` loaded into this process (the NVIDIA driver's, or a
    no-device stand-in), or None when none is loaded. Linux only (reads /proc/self/maps)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                path = line.split(maxsplit=5)[-1].strip()
                if os.path.basename(path).startswith("libcuda.so"):
                    return path
    except OSError:
        return None
    return None


def load_native() -> ModuleType:
    """Imports ``tensorbridge._native``; for the cuda variant, falls back to the packaged
    no-device driver and to pip's CUDA runtime libraries (each tried once) when the dynamic loader
    does not find them, and explains what is still missing."""
    tried: set[str] = set()
    while True:
        try:
            return importlib.import_module("tensorbridge._native")
        except ImportError as e:
            text = str(e)
            if DRIVER_LIB in text and "driver" not in tried:
                tried.add("driver")
                if _load_driver_stub():
                    continue
            elif any(lib in text for lib in CUDA_RUNTIME_LIBS) and "runtime" not in tried:
                tried.add("runtime")
                if _preload_cuda_runtime():
                    continue
            why = explain(e)
            if why is None:
                raise
            raise ImportError(why) from e
