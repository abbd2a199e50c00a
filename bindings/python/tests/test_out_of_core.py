"""Out of core: ``tb.to_dask(t, chunks).to_zarr(store)`` writes a tensor that does not fit in the
memory the process has left, chunk by chunk, with peak RSS bounded by a few chunks.

A child process imports everything and makes its tensors, then the parent caps its address space
(``prlimit(2)``, what ``prlimit --as`` sets) at what it has mapped plus a headroom far smaller than
each tensor; under that cap ``np.array(t)`` must be a MemoryError and the write must succeed. Peak
RSS is the kernel's high-water mark, reset per tensor (``/proc/self/clear_refs``).

Here (no GPU): the tensors are broadcast views of one row, so they exist without their bytes ever
being allocated; on ``cpu``, ``torch`` and ``candle`` each chunk is a zero-copy view of host
memory, on ``counted:candle`` (candle's CPU storage with its host memory hidden, the stand-in for
device memory) each chunk is one copy: the device path.
On a GPU (the bundle of ``scripts/gpu-check``) the tensors are real, dense, on ``cuda:0``, and each
chunk is one device-to-host copy. Needs only dask and zarr (no distributed), so the GPU bundle can
carry it.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import zarr

import tensorbridge as tb

BACKENDS = tb.compiled_backends()

CHILD = textwrap.dedent(
    """
    import json, sys, threading
    import numpy as np, dask, zarr
    import tensorbridge as tb

    # The cap below counts every thread stack that Dask, Zarr's executors and asyncio reserve
    # (8 MiB each by default): keep them small, so the headroom measures conversions, not threads.
    threading.stack_size(2 << 20)

    store, rows, cols, chunk_rows, targets = sys.argv[1], *map(int, sys.argv[2:5]), sys.argv[5:]
    dask.config.set(scheduler="threads", num_workers=2)
    zarr.config.set({"threading.max_workers": 2})
    row = np.arange(cols, dtype=np.float32) % 251

    def make(backend, device):
        if device == "cpu":  # a view: `rows * cols` elements over the memory of one row
            return tb.tensor(row, backend=backend).broadcast_to((rows, cols))
        # dense device memory (made before the cap: a CUDA context reserves address space)
        t = tb.zeros((rows, cols), dtype="float32", backend=backend, device=device)
        t = t + tb.tensor(row, backend=backend, device=device)
        t.synchronize()
        return t

    def status_kib(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1])

    tensors = {target: make(*target.split("@")) for target in targets}
    print(json.dumps({"vm_kib": status_kib("VmSize:")}), flush=True)
    sys.stdin.readline()  # the parent caps the address space now
    for target, t in tensors.items():
        try:
            np.array(t)
            materialise = "succeeded"
        except MemoryError:
            materialise = "MemoryError"
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # VmHWM starts again from the current RSS
        rss_before = status_kib("VmRSS:")
        tb.to_dask(t, chunks=(chunk_rows, cols)).to_zarr(f"{store}/{target.replace(':', '_')}")
        print(json.dumps({"target": target, "materialise": materialise,
                          "rss_before_kib": rss_before, "peak_rss_kib": status_kib("VmHWM:")}),
              flush=True)
    """
)

ROWS, COLS, CHUNK_ROWS = 2048, 1 << 16, 32  # 512 MiB of float32 in 8 MiB chunks
# Address space the child may add after the cap: less than half the tensor, enough for the thread
# stacks that Dask, Zarr's codec executor and asyncio start (2 MiB each in the child). 192 MiB with
# 8 MiB stacks left the third target's threads a few MiB and failed now and then.
HEADROOM = 240 << 20


def write_under_cap(tmp_path: Path, targets: list[str]) -> list[dict]:
    """Runs the child for ``targets`` (``backend@device``); its reports, checked."""
    env = dict(os.environ, MALLOC_ARENA_MAX="2", OMP_NUM_THREADS="1")
    args = [str(tmp_path), str(ROWS), str(COLS), str(CHUNK_ROWS), *targets]
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stdout is not None and child.stderr is not None
        ready = json.loads(child.stdout.readline() or "{}")
        assert "vm_kib" in ready, child.stderr.read()
        cap = ready["vm_kib"] * 1024 + HEADROOM
        resource.prlimit(child.pid, resource.RLIMIT_AS, (cap, cap))
        out, err = child.communicate("go\n", timeout=240)
    finally:
        child.kill()
    assert child.returncode == 0, err
    reports = [json.loads(line) for line in out.strip().splitlines()]
    assert [r["target"] for r in reports] == targets

    logical, chunk = ROWS * COLS * 4, CHUNK_ROWS * COLS * 4
    assert logical > 2 * HEADROOM
    row = np.arange(COLS, dtype=np.float32) % 251
    for r in reports:
        target = r["target"]
        assert r["materialise"] == "MemoryError", f"{target}: the cap must not fit the tensor"
        growth = (r["peak_rss_kib"] - r["rss_before_kib"]) * 1024
        assert growth < 10 * chunk, f"{target}: peak RSS grew {growth >> 20} MiB, chunks 8 MiB"
        z = zarr.open_array(str(tmp_path / target.replace(":", "_")), mode="r")
        assert z.shape == (ROWS, COLS) and z.dtype == np.float32 and z.chunks == (CHUNK_ROWS, COLS)
        assert z.nchunks_initialized == z.nchunks == ROWS // CHUNK_ROWS
        for i in [0, 1, ROWS // 2 + 7, ROWS - 1]:
            np.testing.assert_array_equal(z[i], row, err_msg=f"{target} row {i}")
    return reports


def test_a_tensor_larger_than_the_memory_left_goes_to_zarr_chunk_by_chunk(tmp_path: Path) -> None:
    # Host memory read in place (cpu, torch, candle) and memory that needs a copy per chunk
    # (counted:candle, the device path).
    targets = [f"{b}@cpu" for b in ["cpu", "torch", "candle", "counted:candle"] if b in BACKENDS]
    write_under_cap(tmp_path, targets)


def _gpu_targets() -> list[str]:
    found = []
    for b in ["torch", "candle"]:
        if b not in BACKENDS:
            continue
        try:
            tb.zeros(1, backend=b, device="cuda:0")
        except RuntimeError:
            continue
        found.append(f"{b}@cuda:0")
    return found


GPU_TARGETS = _gpu_targets()
# The GPU check (scripts/gpu-check run) sets TB_REQUIRE_GPU: there a missing GPU fails these tests.
needs_gpu = pytest.mark.skipif(
    not GPU_TARGETS and not os.environ.get("TB_REQUIRE_GPU"),
    reason="no CUDA device (or no CUDA backend)",
)


@needs_gpu
def test_a_gpu_tensor_larger_than_the_host_memory_left_goes_to_zarr(tmp_path: Path) -> None:
    assert GPU_TARGETS, "TB_REQUIRE_GPU is set but no backend opens cuda:0"
    write_under_cap(tmp_path, GPU_TARGETS)


@needs_gpu
@pytest.mark.parametrize("target", GPU_TARGETS)
def test_gpu_chunks_are_one_copy_each_of_their_own_elements(target: str) -> None:
    backend, device = target.split("@")
    a = np.random.default_rng(3).standard_normal((300, 200)).astype(np.float32)
    t = tb.tensor(a, backend=backend, device=device)
    x = tb.to_dask(t, chunks=(64, 50))
    np.testing.assert_array_equal(x.compute(scheduler="threads"), a)
    np.testing.assert_array_equal(tb.to_dask(t.T[::2], chunks=32).compute(), a.T[::2])
