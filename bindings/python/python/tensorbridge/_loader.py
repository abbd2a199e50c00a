"""Loading the native extension, with an ImportError that says what is missing.

The ``cuda`` variant of the extension links the NVIDIA driver library (``libcuda.so.1``) and the
CUDA 13 runtime libraries (cudart, cuBLAS, cuRAND, NVRTC). The driver must come from the machine.
The runtime libraries are found where pip puts them (``site-packages/nvidia/cu13/lib``, installed
with ``torch`` cu130 or ``cuda-toolkit``): when the dynamic loader does not find them on its own,
they are loaded from there before importing the extension again.
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


def explain(error: BaseException) -> str | None:
    """The message for an import failure of the native extension caused by a missing CUDA
    library, or None when the failure is something else."""
    text = str(error)
    if DRIVER_LIB in text:
        return (
            "tensorbridge was built with the CUDA backend (the 'cuda' variant), which needs the "
            f"NVIDIA driver library {DRIVER_LIB}, and it was not found: install the NVIDIA driver, "
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


def load_native() -> ModuleType:
    """Imports ``tensorbridge._native``, explaining a missing CUDA library."""
    try:
        return importlib.import_module("tensorbridge._native")
    except ImportError as e:
        why = explain(e)
        if why is None:
            raise
        if DRIVER_LIB not in str(e) and _preload_cuda_runtime():
            try:
                return importlib.import_module("tensorbridge._native")
            except ImportError as again:
                raise ImportError(explain(again) or str(again)) from again
        raise ImportError(why) from e
