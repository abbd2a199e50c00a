"""Tensors cross process boundaries and get copied by value: ``pickle`` (every protocol, out-of-band
buffers), ``copy.copy``/``copy.deepcopy``, on every compiled backend; what a tensor whose
placement this process lacks does when unpickled; and the clients that need it (matplotlib,
Dask's tokenizer)."""

from __future__ import annotations

import copy
import pickle

import ml_dtypes
import numpy as np
import pytest

import tensorbridge as tb
from tensorbridge import _native, _pickling

BACKENDS = tb.compiled_backends()
DTYPES = ["bool", "uint8", "int16", "int64", "uint64", "float16", "bfloat16", "float32", "float64"]


def values(dtype: str) -> np.ndarray:
    np_dtype = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
    return (np.arange(24).reshape(2, 3, 4) % 7).astype(np_dtype)


def tensor_on(backend: str, a: np.ndarray) -> tb.Tensor | None:
    """``a`` on ``backend``, or None after checking the clear error of a backend that lacks the
    dtype (candle has no uint16/32/64, int8/16): the case does not apply there."""
    try:
        return tb.tensor(a, backend=backend)
    except TypeError as e:
        assert "does not support dtype" in str(e)
        return None


def assert_same_tensor(got: tb.Tensor, want: tb.Tensor) -> None:
    assert isinstance(got, tb.Tensor)
    assert (got.backend, got.device, got.dtype, got.shape) == (
        want.backend,
        want.device,
        want.dtype,
        want.shape,
    )
    np.testing.assert_array_equal(got.numpy(), want.numpy())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_pickle_round_trips_by_value_on_every_backend(backend: str, dtype: str) -> None:
    t = tensor_on(backend, values(dtype))
    if t is not None:
        assert_same_tensor(pickle.loads(pickle.dumps(t)), t)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
def test_every_pickle_protocol_keeps_views_values(backend: str, protocol: int) -> None:
    base = tb.tensor(np.arange(60.0).reshape(3, 4, 5), backend=backend)
    for view in [
        base.T,
        base[1:, ::-2, 3],
        base[0, 0, 0],
        base[:, :0],
        base.broadcast_to((2, 3, 4, 5)),
    ]:
        got = pickle.loads(pickle.dumps(view, protocol=protocol))
        assert_same_tensor(got, view)
        np.testing.assert_array_equal(got.numpy(), np.asarray(view))


def test_protocol_5_hands_host_memory_out_of_band_without_a_copy() -> None:
    a = np.arange(1 << 16, dtype=np.float64)
    t = tb.from_numpy(a)
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(t, protocol=5, buffer_callback=buffers.append)
    assert len(data) < 1024, "the values must travel out of band, not inside the pickle"
    assert len(buffers) == 1
    assert np.shares_memory(np.asarray(buffers[0].raw()), a)
    got = pickle.loads(data, buffers=buffers)
    np.testing.assert_array_equal(got.numpy(), a)


def test_unpickled_host_tensor_owns_its_values() -> None:
    a = np.arange(5.0)
    got = pickle.loads(pickle.dumps(tb.from_numpy(a)))
    a[:] = -1
    np.testing.assert_array_equal(got.numpy(), np.arange(5.0))


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b.startswith("lazy:")])
def test_unevaluated_lazy_tensor_pickles_its_value_and_stays_lazy(backend: str) -> None:
    t = (tb.tensor(np.arange(6.0), backend=backend) * 2 + 1).sqrt()
    assert not t.is_evaluated
    got = pickle.loads(pickle.dumps(t))
    assert got.backend == backend
    np.testing.assert_allclose(got.numpy(), np.sqrt(np.arange(6.0) * 2 + 1))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("copier", [copy.copy, copy.deepcopy], ids=["copy", "deepcopy"])
def test_copy_and_deepcopy_give_independent_tensors_on_the_same_placement(
    backend: str, copier
) -> None:
    t = tb.tensor(values("float32"), backend=backend)
    got = copier(t)
    assert got is not t
    assert_same_tensor(got, t)


@pytest.mark.parametrize("copier", [copy.copy, copy.deepcopy], ids=["copy", "deepcopy"])
def test_copies_do_not_share_memory_with_numpy(copier) -> None:
    a = np.arange(6.0)
    t = tb.from_numpy(a)
    got = copier(t)
    a[:] = 7
    np.testing.assert_array_equal(got.numpy(), np.arange(6.0))
    assert not np.shares_memory(got.numpy(), a)


def test_deepcopy_of_a_container_copies_each_tensor_once() -> None:
    t = tb.tensor([1.0, 2.0])
    box = {"a": t, "b": [t, t]}
    got = copy.deepcopy(box)
    assert got["a"] is got["b"][0] is got["b"][1]
    assert got["a"] is not t
    np.testing.assert_array_equal(got["a"].numpy(), [1.0, 2.0])


class _Forged:
    """A pickle of a tensor from elsewhere: ``values`` on ``backend``/``device``."""

    def __init__(self, values: np.ndarray, backend: str, device: str) -> None:
        self.args = (values, backend, device)

    def __reduce__(self):
        return (_pickling.rebuild, self.args)


def test_the_reduce_names_the_stable_reconstructor_and_the_placement() -> None:
    t = tb.tensor([[1.0, 2.0]])[:, ::-1]
    fn, (vals, backend, device) = t.__reduce__()
    assert fn is _pickling.rebuild
    assert (backend, device) == ("cpu", "cpu")
    np.testing.assert_array_equal(vals, [[2.0, 1.0]])


def test_a_backend_this_build_lacks_is_a_runtime_error_naming_it() -> None:
    data = pickle.dumps(_Forged(np.ones(2), "xyz", "cpu"))
    with pytest.raises(RuntimeError, match=r"backend 'xyz' on device 'cpu'.*t\.to\(backend='cpu'"):
        pickle.loads(data)


def _cuda_backends() -> list[str]:
    return [b for b, info in tb.backend_info().items() if "cuda:N" in info["devices"]]


def _gpu_or_reason() -> str | None:
    """None when some backend opens cuda:0, else why not."""
    if not _cuda_backends():
        return "no backend with CUDA devices in this build"
    try:
        tb.tensor([0.0], device="cuda:0")
    except RuntimeError as e:
        return str(e)
    return None


_NO_GPU = _gpu_or_reason()
needs_gpu = pytest.mark.skipif(_NO_GPU is not None, reason=f"no CUDA device: {_NO_GPU}")


@pytest.mark.skipif(
    _NO_GPU is None or not _cuda_backends(),
    reason="needs a CUDA backend on a machine without a GPU",
)
@pytest.mark.parametrize("backend", _cuda_backends())
def test_a_cuda_tensor_unpickled_without_a_gpu_is_a_runtime_error(backend: str) -> None:
    data = pickle.dumps(_Forged(np.ones(2, np.float32), backend, "cuda:0"))
    with pytest.raises(RuntimeError, match=rf"backend '{backend}' on device 'cuda:0'"):
        pickle.loads(data)


@needs_gpu
@pytest.mark.parametrize("backend", _cuda_backends())
def test_a_cuda_tensor_pickles_its_host_copy_and_comes_back_on_the_gpu(backend: str) -> None:
    a = np.arange(48, dtype=np.float32).reshape(6, 8)
    t = tb.tensor(a, backend=backend, device="cuda:0")
    for view in [t, t.T, t[1:, ::-3]]:
        got = pickle.loads(pickle.dumps(view, protocol=5))
        assert (got.backend, got.device) == (backend, "cuda:0")
        np.testing.assert_array_equal(got.numpy(), np.asarray(view))
    got = copy.deepcopy(t)
    assert (got.backend, got.device) == (backend, "cuda:0")
    np.testing.assert_array_equal(got.numpy(), a)


# ---- clients -------------------------------------------------------------------------------------


def test_matplotlib_plots_a_tensor() -> None:
    matplotlib = pytest.importorskip("matplotlib", reason="matplotlib is pinned in requirements")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure()
    try:
        (line,) = plt.plot(tb.tensor([1.0, 2.0, 3.0]))
        np.testing.assert_array_equal(line.get_ydata(), [1.0, 2.0, 3.0])
        fig.canvas.draw()
    finally:
        plt.close(fig)


def test_dask_tokens_name_the_object_without_reading_its_values() -> None:
    # dask is pinned in requirements-dev.txt; the GPU bundle, which also runs this file, has it too.
    tokenize = pytest.importorskip("dask.base", reason="needs dask").tokenize

    # counted:candle counts every host copy of its values (the device path); any backend works.
    backend = "counted:candle" if "counted:candle" in BACKENDS else "cpu"
    t = tb.tensor(np.arange(4.0), backend=backend)
    before = dict(_native._backend_stats(backend))
    assert tokenize(t) == tokenize(t)
    assert tokenize(t) != tokenize(tb.tensor(np.arange(4.0), backend=backend))
    assert tokenize(t) != tokenize(t[:])
    assert dict(_native._backend_stats(backend)) == before
    assert t.__dask_tokenize__() != pickle.loads(pickle.dumps(t)).__dask_tokenize__()
