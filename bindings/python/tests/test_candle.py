"""The candle backend from Python: explicit device-to-host copies, ``numpy(out=...)``, the
transfer guard, no-device errors, and the loader's ImportError text.

Without a GPU (CI) the device path runs on ``counted:candle`` (``Counted<Candle, false>``): candle's
CPU storage with its host memory hidden from zero-copy readers, so every conversion takes the same
explicit-copy path as a GPU tensor, and the transfer guard applies to it. ``candle`` itself reads
its CPU storage in place (tested here too). Tests that need a GPU skip with the reason "no CUDA
device".
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

import tensorbridge as tb
from tensorbridge import _loader

pytestmark = pytest.mark.skipif(
    "candle" not in tb.compiled_backends(),
    reason="this build of the extension has no candle backend (cargo feature `candle`)",
)


def _gpu_or_reason() -> str | None:
    """None when cuda:0 opens, else why not."""
    if "candle" not in tb.compiled_backends():
        return "no candle backend in this build"
    try:
        tb.tensor([0.0], backend="candle", device="cuda:0")
    except RuntimeError as e:
        return str(e)
    return None


_NO_GPU = _gpu_or_reason()
needs_gpu = pytest.mark.skipif(_NO_GPU is not None, reason=f"no CUDA device: {_NO_GPU}")


@pytest.fixture(autouse=True)
def _guard_restored():
    yield
    tb.transfer_guard("allow")


# The device path without a GPU: candle's CPU storage, host memory hidden (see the docstring).
DEVICE_STAND_IN = "counted:candle"


def cuda_tensor(data, device: str = "cpu", dtype=None) -> tb.Tensor:
    """A candle tensor on `device`; on "cpu", the device stand-in (`DEVICE_STAND_IN`)."""
    if device != "cpu":
        return tb.tensor(data, dtype=dtype, backend="candle", device=device)
    if DEVICE_STAND_IN not in tb.compiled_backends():
        pytest.skip(f"this build has no {DEVICE_STAND_IN} backend (cargo feature `counted`)")
    return tb.tensor(data, dtype=dtype, backend=DEVICE_STAND_IN, device=device)


# ---- explicit copies ------------------------------------------------------------------------


def test_numpy_copies_out_of_backend_memory_and_np_asarray_too() -> None:
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = cuda_tensor(a)
    assert (t.backend, t.device) == (DEVICE_STAND_IN, "cpu")
    for got in (t.numpy(), np.asarray(t), t.T.numpy().T):
        np.testing.assert_array_equal(got, a)
        assert not np.shares_memory(got, t.numpy())
    assert t.numpy(copy=True).flags.writeable


@pytest.mark.parametrize("dtype", ["bool", "uint8", "int32", "int64", "float16", "float64"])
def test_cpu_storage_is_read_in_place_like_the_cpu_backend(dtype: str) -> None:
    a = (np.arange(24) % 3).astype(dtype).reshape(4, 6)
    t = tb.tensor(a, backend="candle")
    view = t.numpy()
    np.testing.assert_array_equal(view, a)
    assert view.dtype == a.dtype and not view.flags.writeable
    assert np.shares_memory(view, t.numpy())  # the storage itself, not a copy per call
    assert np.shares_memory(t.T.numpy(), view) and np.shares_memory(t[1:, ::-2].numpy(), view)
    np.testing.assert_array_equal(t[1:, ::-2].numpy(), a[1:, ::-2])
    with tb.transfer_guard("disallow"):  # host memory: nothing is transferred
        assert np.shares_memory(np.asarray(t), view)
        assert np.shares_memory(t.numpy(copy=False), view)
        assert np.shares_memory(np.from_dlpack(t), view)
    copied = np.array(t)
    assert copied.flags.writeable and not np.shares_memory(copied, view)
    del t
    np.testing.assert_array_equal(view, a)  # the array's base keeps candle's storage alive


def test_views_convert_to_exactly_their_elements() -> None:
    a = np.arange(60, dtype=np.int64).reshape(5, 12)
    t = cuda_tensor(a)
    np.testing.assert_array_equal(t[1:4, ::-3].numpy(), a[1:4, ::-3])
    np.testing.assert_array_equal(t.T[::2].numpy(), a.T[::2])


def test_copy_false_is_a_value_error_naming_the_device_copy() -> None:
    t = cuda_tensor([1.0, 2.0])
    with pytest.raises(ValueError, match="device-to-host copy"):
        t.numpy(copy=False)
    with pytest.raises(ValueError, match="avoid copy"):
        np.asarray(t, copy=False)


def test_dtypes_candle_lacks_are_type_errors_naming_the_backend() -> None:
    for dt in ("int8", "uint16", "uint64"):
        with pytest.raises(TypeError, match="candle backend"):
            cuda_tensor([1, 2], dtype=dt)


def test_bool_and_half_dtypes_round_trip() -> None:
    np.testing.assert_array_equal(cuda_tensor([True, False]).numpy(), [True, False])
    h = cuda_tensor([0.5, 1.5], dtype="float16").numpy()
    assert h.dtype == np.float16
    np.testing.assert_array_equal(h, [0.5, 1.5])


# ---- out= -------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["cpu", "candle"])
def test_numpy_out_writes_converted_values_into_c_and_f_order_arrays(backend: str) -> None:
    a = np.arange(24, dtype=np.float32).reshape(4, 6)
    t = tb.tensor(a, backend=backend)
    for order in "CF":
        out = np.zeros((4, 6), dtype=np.float64, order=order)
        assert t.numpy(out=out) is out
        np.testing.assert_array_equal(out, a)
    out = np.zeros((6, 4), dtype=np.float32)
    t.T.numpy(out=out)
    np.testing.assert_array_equal(out, a.T)


def test_numpy_out_streams_into_a_memory_mapped_file(tmp_path: Path) -> None:
    a = np.arange(3 * 1024 * 1024, dtype=np.float32).reshape(1024, 3072)
    t = cuda_tensor(a)
    path = tmp_path / "t.f32"
    mm = np.memmap(path, dtype=np.float32, mode="w+", shape=t.shape)
    t.numpy(out=mm)
    mm.flush()
    del mm
    np.testing.assert_array_equal(np.fromfile(path, dtype=np.float32).reshape(a.shape), a)


def test_numpy_out_into_a_strided_window_leaves_the_rest_untouched() -> None:
    big = np.full((6, 8), -1, dtype=np.int32)
    cuda_tensor(np.arange(12, dtype=np.int32).reshape(3, 4)).numpy(out=big[::2, 1::2])
    np.testing.assert_array_equal(big[::2, 1::2], np.arange(12).reshape(3, 4))
    assert (big[1::2] == -1).all() and (big[:, ::2] == -1).all()
    backwards = np.full((3, 4), -1, dtype=np.int32)
    cuda_tensor(np.arange(12, dtype=np.int32).reshape(3, 4)).numpy(out=backwards[::-1, ::-1])
    np.testing.assert_array_equal(backwards, np.arange(12).reshape(3, 4)[::-1, ::-1])


def test_numpy_out_rejects_bad_destinations() -> None:
    t = cuda_tensor(np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        t.numpy(out=np.zeros((3, 2), dtype=np.float32))
    ro = np.zeros((2, 3), dtype=np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        t.numpy(out=ro)
    with pytest.raises(TypeError, match="numpy.ndarray"):
        t.numpy(out=[[0, 0, 0], [0, 0, 0]])  # type: ignore[arg-type]
    overlapping = np.lib.stride_tricks.as_strided(
        np.zeros(3, dtype=np.float32), shape=(2, 3), strides=(0, 4), writeable=True
    )
    with pytest.raises(ValueError, match="same memory"):
        t.numpy(out=overlapping)
    with pytest.raises(ValueError, match="copy="):
        t.numpy(out=np.zeros((2, 3), dtype=np.float32), copy=True)
    with pytest.raises(TypeError, match="unsupported dtype"):
        t.numpy(out=np.zeros((2, 3), dtype=np.complex64))


def test_a_copy_larger_than_free_host_memory_is_a_memory_error_naming_out() -> None:
    avail = _available_bytes()
    # A broadcast view: tiny on the device, twice the host's free memory as an array.
    big = cuda_tensor([1.0]).broadcast_to((2 * avail // 8,))
    with pytest.raises(MemoryError, match=r"out=np\.memmap"):
        big.numpy()


def _available_bytes() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    pytest.skip("no /proc/meminfo MemAvailable on this platform")


# ---- transfer guard ---------------------------------------------------------------------------


def test_transfer_guard_disallow_blocks_implicit_conversion_only() -> None:
    t = cuda_tensor([1.0, 2.0])
    with tb.transfer_guard("disallow"):
        with pytest.raises(RuntimeError, match="Disallowed implicit device-to-host transfer"):
            np.asarray(t)
        with pytest.raises(RuntimeError, match="t.numpy"):
            np.add(t, 1)
        np.testing.assert_array_equal(t.numpy(), [1.0, 2.0])  # explicit: allowed
        np.asarray(tb.tensor([1.0]))  # host memory read in place: nothing is transferred
    np.testing.assert_array_equal(np.asarray(t), [1.0, 2.0])  # restored on exit


def test_transfer_guard_log_warns_and_converts(caplog: pytest.LogCaptureFixture) -> None:
    t = cuda_tensor([[1, 2]], dtype="int32")
    with caplog.at_level(logging.WARNING, logger="tensorbridge"), tb.transfer_guard("log"):
        np.testing.assert_array_equal(np.asarray(t), [[1, 2]])
    assert any("implicit device-to-host transfer" in r.message for r in caplog.records)
    assert "(1, 2)" in caplog.text or "[1, 2]" in caplog.text


def test_transfer_guard_call_sets_the_level_and_nests() -> None:
    assert tb._native._get_transfer_guard() == "allow"
    tb.transfer_guard("log")
    assert tb._native._get_transfer_guard() == "log"
    with tb.transfer_guard("disallow"):
        with tb.transfer_guard("allow"):
            np.asarray(cuda_tensor([1]))
        assert tb._native._get_transfer_guard() == "disallow"
    assert tb._native._get_transfer_guard() == "log"
    with pytest.raises(ValueError, match="'allow', 'log' or 'disallow'"):
        tb.transfer_guard("never")


# ---- devices ------------------------------------------------------------------------------------


@pytest.mark.skipif(_NO_GPU is None, reason="a CUDA device is present: no no-device path to take")
def test_without_a_gpu_cuda_devices_are_runtime_errors_naming_the_reason() -> None:
    for dev in ("cuda:0", "cuda", "cuda:3"):
        with pytest.raises(RuntimeError, match="device unavailable") as e:
            cuda_tensor([1.0], device=dev)
        assert "cuda" in str(e.value).lower()
    with pytest.raises(RuntimeError, match="device unavailable"):
        tb.zeros((2,), backend="candle", device="cuda:0")


def test_malformed_device_names_are_value_errors() -> None:
    with pytest.raises(ValueError, match="unknown device"):
        cuda_tensor([1.0], device="gpu0")


@needs_gpu
def test_gpu_tensor_round_trips_views_and_out() -> None:
    a = np.random.default_rng(0).standard_normal((256, 384)).astype(np.float32)
    t = cuda_tensor(a, device="cuda:0")
    assert t.device == "cuda:0"
    np.testing.assert_array_equal(t.numpy(), a)
    np.testing.assert_array_equal(t[10:200:3, ::-2].numpy(), a[10:200:3, ::-2])
    out = np.empty((384, 256), dtype=np.float64)
    t.T.numpy(out=out)
    np.testing.assert_array_equal(out, a.T)
    np.testing.assert_allclose((t @ t.T).numpy(), a @ a.T, rtol=1e-3, atol=1e-2)


@needs_gpu
def test_gpu_ordinal_past_the_device_count_names_it() -> None:
    with pytest.raises(RuntimeError, match="no such device"):
        cuda_tensor([1.0], device="cuda:64")


@needs_gpu
def test_gpu_implicit_conversion_obeys_the_guard() -> None:
    t = cuda_tensor([1.0], device="cuda:0")
    with tb.transfer_guard("disallow"), pytest.raises(RuntimeError, match="candle:cuda:0"):
        np.asarray(t)


# ---- loader -----------------------------------------------------------------------------------


def test_missing_driver_import_error_says_which_library_and_variant() -> None:
    msg = _loader.explain(ImportError("libcuda.so.1: cannot open shared object file"))
    assert msg is not None and "NVIDIA driver" in msg and "'cuda' variant" in msg
    msg = _loader.explain(ImportError("libcublas.so.13: cannot open shared object file"))
    assert msg is not None and "libcublas.so.13" in msg and "torch" in msg
    assert _loader.explain(ImportError("something else")) is None


# ---- device memory out, zero-copy (GPU bundle) -------------------------------------------------


def _cuda_ptr(t: tb.Tensor) -> int:
    return int(t.__cuda_array_interface__["data"][0])


@needs_gpu
def test_candle_cuda_memory_exports_zero_copy_to_torch_through_dlpack() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    a = np.arange(48, dtype=np.float32).reshape(6, 8)
    t = cuda_tensor(a, device="cuda:0")
    for view, want in ((t, a), (t[1:, ::2], a[1:, ::2]), (t.T, a.T)):
        x = torch.from_dlpack(view)
        assert x.device.type == "cuda"
        assert x.data_ptr() == _cuda_ptr(view)
        np.testing.assert_array_equal(x.cpu().numpy(), want)
    # bfloat16 has no CUDA-array-interface typestr, but DLPack carries it.
    h = cuda_tensor(a, device="cuda:0", dtype="bfloat16")
    assert torch.from_dlpack(h).dtype == torch.bfloat16


@needs_gpu
def test_candle_cuda_memory_exports_zero_copy_to_cupy() -> None:
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed")
    a = np.arange(48, dtype=np.float32).reshape(6, 8)
    t = cuda_tensor(a, device="cuda:0")
    for view, want in ((t, a), (t[::2, 1:], a[::2, 1:])):
        via_cai = cupy.asarray(view)
        via_dlpack = cupy.from_dlpack(view)
        for x in (via_cai, via_dlpack):
            assert int(x.data.ptr) == _cuda_ptr(view)
            np.testing.assert_array_equal(cupy.asnumpy(x), want)


@needs_gpu
def test_candle_cuda_array_interface_describes_views_read_only() -> None:
    t = cuda_tensor(np.arange(12, dtype=np.int32).reshape(3, 4), device="cuda:0")
    cai = t[:, ::2].__cuda_array_interface__
    assert cai["version"] == 3 and cai["typestr"] == "<i4"
    assert cai["shape"] == (3, 2) and cai["strides"] == (16, 8)
    assert cai["data"][1] is True  # read-only
