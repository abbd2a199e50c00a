"""Beyond one machine: tensors as Dask arrays (``tb.to_dask``, ``da.from_array``), written to Zarr,
and moved between the processes of a real ``dask.distributed.LocalCluster`` (the out-of-core write
under an address-space limit is ``test_out_of_core.py``).

Device memory is stood in for by ``counted:candle`` (candle's CPU storage with its host memory
hidden from NumPy, so each chunk takes the same explicit-copy path as a GPU tensor), which also
counts those copies. The CUDA cases are in ``test_out_of_core.py`` (the GPU bundle carries it).
"""

from __future__ import annotations

import logging
import operator
import os
import sys
from pathlib import Path

import cloudpickle
import dask
import dask.array as da
import ml_dtypes
import numpy as np
import pytest
import zarr

import tensorbridge as tb
from tensorbridge import _native

BACKENDS = tb.compiled_backends()
EAGER = [b for b in BACKENDS if not b.startswith(("lazy:", "counted:"))]
# Storage NumPy cannot read in place (a GPU's, or counted:candle standing in for one).
COPYING = "counted:candle" if "counted:candle" in BACKENDS else None
needs_counted = pytest.mark.skipif(
    COPYING is None, reason="this build has no counted:candle backend"
)


def values(dtype: str, shape: tuple[int, ...] = (7, 10)) -> np.ndarray:
    np_dtype = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
    return (np.arange(int(np.prod(shape))).reshape(shape) % 13).astype(np_dtype)


def copies(backend: str) -> tuple[int, int]:
    s = _native._backend_stats(backend)
    return int(s["host_copies"]), int(s["host_copy_bytes"])


@pytest.fixture(autouse=True)
def _guard_restored():
    yield
    tb.transfer_guard("allow")


# ---- tb.to_dask ----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["bool", "int64", "float32", "bfloat16"])
def test_to_dask_has_the_tensors_shape_dtype_numpy_meta_and_values(
    backend: str, dtype: str
) -> None:
    a = values(dtype)
    t = tb.tensor(a, backend=backend)
    x = tb.to_dask(t, chunks=(3, 4))
    assert isinstance(x, da.Array)
    assert x.shape == t.shape and x.dtype == t.dtype == a.dtype
    assert type(x._meta) is np.ndarray and x._meta.dtype == a.dtype and x._meta.ndim == 2
    assert x.chunks == ((3, 3, 1), (4, 4, 2))
    got = x.compute(scheduler="sync")
    assert type(got) is np.ndarray and got.dtype == a.dtype
    np.testing.assert_array_equal(got, a)


@pytest.mark.parametrize("backend", BACKENDS)
def test_views_and_zero_d_tensors_chunk_like_numpy(backend: str) -> None:
    a = values("float64", (6, 5, 4))
    t = tb.tensor(a, backend=backend)
    for view, want in [
        (t.T, a.T),
        (t[1:, ::-2, 3], a[1:, ::-2, 3]),
        (t.broadcast_to((3, 6, 5, 4)), np.broadcast_to(a, (3, 6, 5, 4))),
        (t[:, :0], a[:, :0]),
        (t[2, 3, 1], a[2, 3, 1]),
    ]:
        x = tb.to_dask(view, chunks=2)
        np.testing.assert_array_equal(x.compute(scheduler="sync"), want)
        np.testing.assert_allclose((x * 2 + 1).sum().compute(), (want * 2 + 1).sum())


def test_auto_chunks_follow_dasks_chunk_size() -> None:
    t = tb.zeros((4096, 1024), dtype="float32")  # 16 MiB
    with dask.config.set({"array.chunk-size": "4MiB"}):
        x = tb.to_dask(t)
    assert max(x.chunks[0]) * max(x.chunks[1]) * 4 <= 4 << 20
    assert x.npartitions >= 4


def test_host_chunks_are_zero_copy_views_of_the_tensor() -> None:
    a = values("float32", (8, 6))
    x = tb.to_dask(tb.from_numpy(a), chunks=(4, 3))
    (block,) = dask.get(x.__dask_graph__(), [(x.name, 1, 1)])
    assert np.shares_memory(block, a) and not block.flags.writeable
    np.testing.assert_array_equal(block, a[4:, 3:])


@needs_counted
def test_device_memory_converts_one_chunk_per_copy_never_the_whole() -> None:
    a = values("float32", (64, 48))
    t = tb.tensor(a, backend=COPYING)
    before = copies(COPYING)
    x = tb.to_dask(t, chunks=(16, 24))
    assert copies(COPYING) == before, "making the graph must not read the values"
    np.testing.assert_array_equal(x.blocks[1, 1].compute(scheduler="sync"), a[16:32, 24:])
    n, nbytes = copies(COPYING)
    assert (n - before[0], nbytes - before[1]) == (1, 16 * 24 * 4)
    np.testing.assert_array_equal(x.compute(scheduler="sync"), a)
    n2, nbytes2 = copies(COPYING)
    assert (n2 - n, nbytes2 - nbytes) == (x.npartitions, a.nbytes)


@needs_counted
def test_dask_from_array_takes_a_tensor_directly_without_reading_it() -> None:
    a = values("int32", (9, 8))
    t = tb.tensor(a, backend=COPYING)
    before = copies(COPYING)
    x = da.from_array(t, chunks=(4, 4))
    assert copies(COPYING) == before
    assert x.shape == (9, 8) and x.dtype == np.int32
    np.testing.assert_array_equal(x.compute(scheduler="sync"), a)
    np.testing.assert_array_equal(x[2:7, 1].compute(scheduler="sync"), a[2:7, 1])


@needs_counted
def test_to_dask_is_explicit_and_from_array_implicit_for_the_transfer_guard() -> None:
    t = tb.tensor(values("float32"), backend=COPYING)
    with tb.transfer_guard("disallow"):
        np.testing.assert_array_equal(tb.to_dask(t, 4).compute(scheduler="sync"), values("float32"))
        with pytest.raises(RuntimeError, match="Disallowed implicit device-to-host"):
            da.from_array(t, chunks=4).compute(scheduler="sync")


def test_to_dask_rejects_what_is_not_a_tensor() -> None:
    with pytest.raises(TypeError, match="tb.to_dask expects a tensorbridge.Tensor, got ndarray"):
        tb.to_dask(np.ones(3))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        tb.to_dask(tb.ones((4, 4)), chunks=(2, 2, 2))


@pytest.mark.parametrize("backend", EAGER)
def test_to_zarr_writes_every_chunk_and_reads_back_equal(backend: str, tmp_path: Path) -> None:
    a = values("float32", (50, 30))
    store = str(tmp_path / "t.zarr")
    tb.to_dask(tb.tensor(a, backend=backend), chunks=(16, 16)).to_zarr(store)
    z = zarr.open_array(store, mode="r")
    assert z.shape == a.shape and z.dtype == a.dtype and z.chunks == (16, 16)
    np.testing.assert_array_equal(z[...], a)


# ---- a real distributed engine -------------------------------------------------------------------

# Functions the workers run, shipped by value (the workers cannot import this test module).
cloudpickle.register_pickle_by_value(sys.modules[__name__])

PIPELINE_BACKEND = "torch" if "torch" in BACKENDS else "cpu"


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            memory_limit="4GiB",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster, timeout=60) as c,
    ):
        c.wait_for_workers(2, timeout=60)
        yield c


def _where_and_double(t: tb.Tensor) -> tuple[int, tb.Tensor]:
    return os.getpid(), t * 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_tensors_travel_to_worker_processes_and_back_by_value(client, backend: str) -> None:
    a = values("float32", (5, 6))
    t = tb.tensor(a, backend=backend)
    pid, doubled = client.submit(_where_and_double, t, pure=False).result(timeout=60)
    assert pid != os.getpid()
    assert isinstance(doubled, tb.Tensor)
    assert (doubled.backend, doubled.device, doubled.dtype) == (backend, "cpu", a.dtype)
    np.testing.assert_array_equal(doubled.numpy(), a * 2)
    scattered = client.scatter(t)
    total = client.submit(tb.sum, scattered, 0).result(timeout=60)
    assert total.backend == backend
    np.testing.assert_array_equal(total.numpy(), a.sum(axis=0))
    both = client.gather(
        [
            client.submit(operator.add, scattered, 1, workers=[w])
            for w in client.scheduler_info()["workers"]
        ]
    )
    for b in both:
        np.testing.assert_array_equal(b.numpy(), a + 1)


def _block_sum_of_squares(block: np.ndarray) -> np.ndarray:
    # On a worker: the block becomes a tensor, is reduced there, and leaves as NumPy.
    t = tb.tensor(block, backend=PIPELINE_BACKEND)
    assert t.backend == PIPELINE_BACKEND
    return (t * t).sum(axis=0, keepdims=True).numpy()


def test_map_blocks_pipeline_reduces_tensors_on_the_workers(client) -> None:
    a = np.random.default_rng(7).standard_normal((96, 40))
    x = da.from_array(a, chunks=(24, 40))
    partial = x.map_blocks(_block_sum_of_squares, chunks=(1, 40), dtype=np.float64)
    got = client.compute(partial.sum(axis=0)).result(timeout=60)
    assert type(got) is np.ndarray
    np.testing.assert_allclose(got, (a * a).sum(axis=0), rtol=1e-12)


@pytest.mark.parametrize("backend", EAGER)
def test_to_dask_chunks_convert_on_the_workers(client, backend: str) -> None:
    a = values("float64", (40, 30))
    x = tb.to_dask(tb.tensor(a, backend=backend), chunks=(10, 15))
    got = client.compute((x * 3).sum(axis=1)).result(timeout=60)
    np.testing.assert_array_equal(got, (a * 3).sum(axis=1))
