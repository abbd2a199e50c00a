"""``tb.asnumpy`` of device memory: torch CUDA tensors, CuPy arrays and JAX GPU arrays, read
through DLPack by the tensorbridge backend for CUDA and copied to the host once (cast on the
device, streamed into ``out=``), under ``tb.transfer_guard`` and the host-memory guard.

These need a CUDA device: they run in the GPU bundle (``scripts/gpu-check``, which sets
``TB_REQUIRE_GPU=1`` so that a missing device fails instead of skipping). In CI they skip with
the reason.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest
import torch

import tensorbridge as tb

REQUIRE_GPU = os.environ.get("TB_REQUIRE_GPU") == "1"
HAS_CUDA = torch.cuda.is_available()
if REQUIRE_GPU and not HAS_CUDA:
    raise RuntimeError("TB_REQUIRE_GPU=1 but torch sees no CUDA device")
pytestmark = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device visible to torch here")

DTYPES = [
    torch.bool, torch.uint8, torch.uint16, torch.uint32, torch.uint64, torch.int8, torch.int16,
    torch.int32, torch.int64, torch.float16, torch.bfloat16, torch.float32, torch.float64,
    torch.complex64, torch.complex128,
]  # fmt: skip


def cuda_source(dtype: torch.dtype, layout: str) -> torch.Tensor:
    base = (torch.arange(2 * 3 * 8, dtype=torch.float64) % 7).reshape(2, 3, 8) * 0.5
    if dtype == torch.bool:
        x = base.to(torch.int64) % 2 == 1
    elif dtype.is_complex:
        x = torch.complex(base, -base).to(dtype)
    else:
        x = base.to(dtype)
    x = x.to("cuda:0")
    return {"contiguous": x, "strided": x.transpose(0, 2)[::3, :, 1:], "0-d": x[1, 2, 5],
            "zero-size": x[:, :0]}[layout]  # fmt: skip


def raw(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The bytes of the values in C order (exact comparison for every dtype, NaN payloads too)."""
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8)


def host_reference(x: torch.Tensor) -> np.ndarray[Any, Any]:
    y = x.cpu()
    if y.dtype == torch.bfloat16:
        return y.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return y.numpy()


@pytest.mark.parametrize("layout", ["contiguous", "strided", "0-d", "zero-size"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_torch_cuda_tensors_are_copied_once_to_a_writable_array(
    dtype: torch.dtype, layout: str
) -> None:
    x = cuda_source(dtype, layout)
    a = tb.asnumpy(x)
    ref = host_reference(x)
    assert type(a) is np.ndarray and a.dtype == ref.dtype and a.shape == ref.shape
    assert a.flags.writeable and a.flags.c_contiguous
    np.testing.assert_array_equal(raw(a), raw(ref))
    with pytest.raises(ValueError, match="copy=False.*cuda:0"):
        tb.asnumpy(x, copy=False)


def test_torch_cuda_bf16_to_f32_is_cast_on_the_device_and_bit_exact() -> None:
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    x = torch.from_numpy(bits.view(np.int16)).view(torch.bfloat16).to("cuda:0")
    f = tb.asnumpy(x.reshape(256, 256).T, dtype=np.float32)
    want = (bits.astype(np.uint32) << 16).view(np.float32).reshape(256, 256).T
    np.testing.assert_array_equal(f.view(np.uint32), np.ascontiguousarray(want).view(np.uint32))


def test_torch_cuda_autograd_and_conjugate_tensors() -> None:
    w = torch.linspace(0, 1, 5, device="cuda:0", requires_grad=True)
    np.testing.assert_array_equal(tb.asnumpy(w * 2), (w * 2).detach().cpu().numpy())
    z = torch.tensor([1 + 2j, 3 - 1j], device="cuda:0").conj()
    np.testing.assert_array_equal(tb.asnumpy(z), np.array([1 - 2j, 3 + 1j], np.complex64))


def test_torch_cuda_into_a_memmap_is_streamed(tmp_path: Path) -> None:
    x = torch.randn(1024, 1024, device="cuda:0").to(torch.bfloat16)
    mm = np.memmap(tmp_path / "x", dtype=np.float32, mode="w+", shape=(1024, 1024))
    assert tb.asnumpy(x.T, out=mm) is mm
    np.testing.assert_array_equal(mm, x.T.float().cpu().numpy())


def test_transfer_guard_on_cuda_tensors() -> None:
    x = torch.ones(4, device="cuda:0")
    with tb.transfer_guard("disallow"):
        with pytest.raises(RuntimeError, match=r"tb.asnumpy.*torch\.Tensor on cuda:0.*copy=True"):
            tb.asnumpy(x)
        np.testing.assert_array_equal(tb.asnumpy(x, copy=True), np.ones(4, np.float32))


def test_host_memory_guard_before_a_device_copy() -> None:
    x = torch.zeros(1, device="cuda:0").expand(1 << 24, 1 << 24)  # a 1 PiB view of one element
    with pytest.raises(MemoryError, match="out="):
        tb.asnumpy(x)


needs_cupy = pytest.mark.skipif(
    importlib.util.find_spec("cupy") is None, reason="cupy is not installed here"
)


@needs_cupy
@pytest.mark.parametrize("dtype", [np.bool_, np.uint8, np.int16, np.int64, np.float16,
                                   np.float32, np.float64, np.complex64])  # fmt: skip
def test_cupy_arrays(dtype: Any) -> None:
    import cupy

    host = (np.arange(48) % 5).reshape(6, 8).astype(dtype)
    x = cupy.asarray(host)
    for view, want in ((x, host), (x.T[::2], host.T[::2]), (x[2, 3], host[2, 3])):
        a = tb.asnumpy(view)
        assert a.flags.writeable and a.dtype == host.dtype
        np.testing.assert_array_equal(a, want)
        np.testing.assert_array_equal(a, cupy.asnumpy(view))
    if np.dtype(dtype).kind in "iuf":
        np.testing.assert_array_equal(tb.asnumpy(x, dtype=np.float64), host.astype(np.float64))
    with pytest.raises(ValueError, match="copy=False.*cupy"):
        tb.asnumpy(x, copy=False)
    out = np.empty((6, 8), dtype)
    assert tb.asnumpy(x, out=out) is out
    np.testing.assert_array_equal(out, host)


def _jax_gpu() -> Any:
    if importlib.util.find_spec("jax") is None:
        return None
    import jax

    try:
        return jax.devices("gpu")[0]
    except RuntimeError:
        return None


@pytest.mark.skipif(_jax_gpu() is None, reason="no JAX GPU backend here")
def test_jax_gpu_arrays() -> None:
    import jax
    import jax.numpy as jnp

    host = np.arange(24, dtype=np.float32).reshape(4, 6)
    x = jax.device_put(jnp.asarray(host), _jax_gpu())
    a = tb.asnumpy(x)
    assert a.flags.writeable
    np.testing.assert_array_equal(a, host)
    b = tb.asnumpy(x.astype(jnp.bfloat16), dtype=np.float32)
    np.testing.assert_array_equal(b, host.astype(ml_dtypes.bfloat16).astype(np.float32))
