"""The torch backend (libtorch through tch) under the same conversion contract as every backend,
plus what PyTorch users fight: bf16, requires_grad, CUDA tensors, zero-copy sharing.

These run in CI (the test extension is built with the torch feature and torch==2.11.0 is in the
test venv); GPU cases skip with the reason when libtorch sees no CUDA device.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
from typing import Any

import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy_reference import ALL_DTYPES, dtype_id

import tensorbridge as tb

pytestmark = pytest.mark.skipif(
    "torch" not in tb.compiled_backends(), reason="extension built without the torch backend"
)

NO_GPU = not torch.cuda.is_available()
NEEDS_GPU = pytest.mark.skipif(NO_GPU, reason="no CUDA device visible to torch on this machine")

TORCH_OF = {
    "bool": torch.bool,
    "uint8": torch.uint8,
    "uint16": torch.uint16,
    "uint32": torch.uint32,
    "uint64": torch.uint64,
    "int8": torch.int8,
    "int16": torch.int16,
    "int32": torch.int32,
    "int64": torch.int64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}


def _values(dtype: np.dtype[Any], shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
    n = int(np.prod(shape))
    raw = np.random.default_rng(7).integers(0, 256, size=n * dtype.itemsize, dtype=np.uint8)
    a = raw.view(dtype).reshape(shape)
    return a if dtype.kind != "b" else (raw[:n] & 1).astype(bool).reshape(shape)


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("shape", [(), (0,), (3, 0), (1,), (5, 7)], ids=str)
def test_every_dtype_round_trips_bit_exactly(dtype: np.dtype[Any], shape: tuple[int, ...]) -> None:
    a = _values(dtype, shape)  # every bit pattern, NaN payloads included
    t = tb.tensor(a, backend="torch")
    assert (t.backend, t.device, t.dtype, t.shape) == ("torch", "cpu", dtype.name, shape)
    back = t.numpy()
    assert back.dtype == dtype and back.shape == shape
    assert back.tobytes() == a.tobytes()


@given(
    st.sampled_from(ALL_DTYPES),
    hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
    st.data(),
)
def test_views_convert_like_numpy_views(
    dtype: np.dtype[Any], shape: tuple[int, ...], data: st.DataObject
) -> None:
    # Any bit pattern of the dtype (drawn as unsigned integers of its width; bool as 0/1).
    bits = np.dtype(f"u{dtype.itemsize}")
    a = data.draw(hnp.arrays(bits, shape)).view(dtype) if dtype.kind != "b" else None
    if a is None:
        a = data.draw(hnp.arrays(np.bool_, shape))
    t = tb.tensor(a, backend="torch")
    if a.ndim:
        axis = data.draw(st.integers(0, a.ndim - 1))
        step = data.draw(st.sampled_from([1, 2, -1, -2]))
        sl = tuple(slice(None, None, step) if i == axis else slice(None) for i in range(a.ndim))
        a, t = a[sl].T, t[sl].T
    got = np.asarray(t)
    assert got.dtype == a.dtype and got.shape == a.shape
    assert got.tobytes() == np.ascontiguousarray(a).tobytes()


def test_numpy_of_a_contiguous_cpu_tensor_is_a_zero_copy_read_only_view() -> None:
    x = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    t = tb.from_torch(x)
    a = t.numpy()
    assert a.ctypes.data == x.data_ptr()  # torch's memory, no copy anywhere
    assert not a.flags.writeable
    assert a.base is t
    # Strided views stay views.
    v = t.T.numpy()
    assert v.ctypes.data == x.data_ptr() and v.strides == (4, 16)
    assert t[:, ::2].numpy().ctypes.data == x.data_ptr()
    # NumPy's entry points get a C-contiguous array: one copy by our kernel for a strided view.
    c_order = np.ascontiguousarray(t.T)
    assert c_order.ctypes.data != x.data_ptr() and c_order.flags.c_contiguous
    np.testing.assert_array_equal(c_order, x.numpy().T)
    # copy=True: a new writable array; copy=False where a copy is needed: ValueError.
    c = t.numpy(copy=True)
    assert c.flags.writeable and c.ctypes.data != x.data_ptr()
    with pytest.raises(ValueError):
        np.asarray(t, dtype=np.float64, copy=False)


def test_from_torch_shares_memory_and_keeps_the_torch_tensor_alive() -> None:
    x = torch.arange(1000, dtype=torch.int64)
    t = tb.from_torch(x)
    x[0] = -5  # in-place writes through PyTorch are visible, as with tb.from_numpy
    assert t.numpy()[0] == -5
    copied = tb.tensor(x, backend="torch")
    x[1] = -6
    assert copied.numpy()[1] == 1  # tb.tensor copies
    del x
    gc.collect()
    torch.empty(1000, dtype=torch.int64).fill_(123)  # would reuse freed memory
    assert t.numpy()[999] == 999


def test_tensors_that_require_grad_are_converted_detached_without_error() -> None:
    w = torch.linspace(0, 1, 5, requires_grad=True)
    y = w * 2
    with pytest.raises(RuntimeError, match="requires grad"):
        y.numpy()  # torch's own refusal
    for t in (tb.from_torch(y), tb.tensor(y, backend="torch"), tb.tensor(y)):
        np.testing.assert_array_equal(t.numpy(), y.detach().numpy())
    assert y.requires_grad  # the source is untouched


def test_bf16_is_bf16_both_ways_bit_exactly() -> None:
    bits = torch.arange(-32768, 32768, dtype=torch.int32).to(torch.int16)
    x = bits.view(torch.bfloat16)  # every bf16 bit pattern
    with pytest.raises(TypeError, match="BFloat16"):
        x.numpy()  # torch's own refusal (pytorch #110285)
    for t in (tb.from_torch(x), tb.tensor(x, backend="torch"), tb.tensor(x)):
        a = t.numpy()
        assert a.dtype == ml_dtypes.bfloat16
        assert np.array_equal(a.view(np.int16), bits.numpy())
    # NumPy bf16 -> torch backend -> back, and the f32 conversion in one pass.
    a = np.array([1.0, -2.5, 3.0e38, 1.0e-39, np.inf], dtype=ml_dtypes.bfloat16)
    t = tb.tensor(a, backend="torch")
    assert t.numpy().tobytes() == a.tobytes()
    np.testing.assert_array_equal(np.asarray(t, dtype=np.float32), a.astype(np.float32))


def test_torch_unsigned_dtypes_share_their_bits() -> None:
    x = torch.tensor([0, 1, 2**63, 2**64 - 1], dtype=torch.uint64)
    t = tb.from_torch(x)
    assert t.dtype == "uint64"
    np.testing.assert_array_equal(t.numpy(), np.array([0, 1, 2**63, 2**64 - 1], dtype=np.uint64))
    assert t.max().item() == 2**64 - 1


def test_ops_agree_with_the_cpu_backend() -> None:
    a = np.arange(24, dtype=np.float32).reshape(4, 6) / 7
    c, t = tb.tensor(a), tb.tensor(a, backend="torch")
    for f in (
        lambda x: x + 1,
        lambda x: x * x.T.T,
        lambda x: (x > 1.5),
        lambda x: x.astype("int8"),
    ):
        np.testing.assert_array_equal(np.asarray(f(t)), np.asarray(f(c)))
    # Accumulations: libtorch sums in float32 pairwise, the cpu backend in float64 (1 ulp apart).
    np.testing.assert_allclose(np.asarray(t.sum(axis=0)), np.asarray(c.sum(axis=0)), rtol=2**-23)
    np.testing.assert_allclose(np.asarray(t @ t.T), np.asarray(c @ c.T), rtol=2**-23)
    np.testing.assert_array_equal(np.add(t, 1), a + 1)  # NumPy ufuncs convert implicitly


def test_moving_between_backends_is_explicit() -> None:
    c = tb.tensor([1.0, 2.0])
    t = c.to(backend="torch")
    assert t.backend == "torch"
    with pytest.raises(ValueError, match=r"\.to\("):
        c + t
    np.testing.assert_array_equal((c + t.to(backend="cpu")).numpy(), [2.0, 4.0])


def test_a_cuda_device_without_a_gpu_is_a_clear_runtime_error() -> None:
    if not NO_GPU:
        pytest.skip("this machine has a GPU; the no-device path cannot happen")
    for dev in ("cuda", "cuda:0", "cuda:3"):
        with pytest.raises(RuntimeError, match=r"cuda:\d is unavailable"):
            tb.tensor([1.0], backend="torch", device=dev)


def test_from_torch_rejects_what_it_cannot_share() -> None:
    with pytest.raises(TypeError, match="torch.Tensor"):
        tb.from_torch(np.zeros(3))
    with pytest.raises(TypeError, match="no dtype"):
        tb.from_torch(torch.zeros(2, dtype=torch.complex64))
    with pytest.raises(TypeError, match="dense"):
        tb.from_torch(torch.zeros(3, 3).to_sparse())


def test_export_import_loop_does_not_leak() -> None:
    def rss() -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    x = torch.ones(4096, dtype=torch.float64)  # 32 KiB: a leak of one per iteration is 160 MB

    def once() -> None:
        t = tb.from_torch(x)
        t.numpy().sum()
        (t + 1).numpy(copy=True)

    for _ in range(500):
        once()
    before = rss()
    for _ in range(5000):
        once()
    assert rss() - before < 16 * 2**20


def _run(code: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_without_torch_installed_import_fails_naming_the_required_torch() -> None:
    r = _run(
        """
        import sys
        sys.modules["torch"] = None  # as if torch were not installed
        import tensorbridge
        """
    )
    assert r.returncode != 0
    assert "ImportError" in r.stderr and "torch==2.11.0" in r.stderr, r.stderr


def test_a_different_torch_version_is_refused_at_import() -> None:
    r = _run(
        """
        import torch
        torch.__version__ = "2.10.0+cu128"
        import tensorbridge
        """
    )
    assert r.returncode != 0
    assert "torch==2.11.0" in r.stderr and "found torch 2.10.0" in r.stderr, r.stderr


@NEEDS_GPU
def test_cuda_tensors_convert_with_one_explicit_copy() -> None:
    x = torch.arange(4096, dtype=torch.float32, device="cuda").reshape(64, 64)
    t = tb.from_torch(x)
    assert t.device == "cuda:0"
    np.testing.assert_array_equal(t.numpy(), x.cpu().numpy())
    np.testing.assert_array_equal(np.asarray(t[8:16].T), x[8:16].T.cpu().numpy())
    with pytest.raises(ValueError):
        t.numpy(copy=False)
    b = tb.tensor(np.ones((3, 3), ml_dtypes.bfloat16), backend="torch", device="cuda:0")
    assert b.numpy().dtype == ml_dtypes.bfloat16


@NEEDS_GPU
def test_cuda_interop_dlpack_both_ways_and_cuda_array_interface() -> None:
    x = torch.arange(64, dtype=torch.float32, device="cuda").reshape(8, 8)
    t = tb.from_torch(x)
    y = torch.from_dlpack(t)  # versioned capsule, zero-copy on the GPU
    assert y.device.type == "cuda" and y.data_ptr() == x.data_ptr()
    back = tb.from_dlpack(x.T)  # CUDA memory -> the torch backend, zero-copy
    assert back.backend == "torch" and back.device == "cuda:0"
    np.testing.assert_array_equal(back.numpy(), x.T.cpu().numpy())
    cai = t.T.__cuda_array_interface__
    assert cai["version"] == 3 and cai["data"] == (x.data_ptr(), True)
    assert cai["strides"] == (4, 32) and cai["typestr"] == "<f4"


def test_cpu_tensors_have_no_cuda_array_interface() -> None:
    t = tb.tensor([1.0], backend="torch")
    assert not hasattr(t, "__cuda_array_interface__")
    # Host torch storage exports through DLPack zero-copy like any host tensor.
    y = torch.from_dlpack(t)
    assert y.data_ptr() == t.numpy().ctypes.data
