"""Concurrency soak: 8 threads for ``TB_SOAK_SECONDS`` (15 s in ``make test``, 60 s in ``make soak``)
mix creation, ops, views, conversions, DLPack export/import, lazy sessions and ``transfer_guard``
changes on every compiled backend. Tensors go into a pool shared by all threads and are dropped by
whichever thread evicts them. Every result is compared exactly with NumPy's (small integers, so
float arithmetic is exact); the run must end without a crash or a deadlock, and the resident
memory must not grow between the end of the warm-up and the end of the run.

Public Python API only.
"""

from __future__ import annotations

import faulthandler
import gc
import logging
import os
import random
import sys
import threading
import time
import traceback
from typing import Any, Callable

import numpy as np
import pytest
import tensorbridge as tb

SECONDS = float(os.environ.get("TB_SOAK_SECONDS", "15"))
THREADS = 8
POOL = 48
DTYPES = ["float32", "float64", "int64"]
BACKENDS = [b for b in tb.compiled_backends() if b != "lazy:cpu"]
# Allowed growth of the resident set between the warm-up and the end (allocator caches settle).
RSS_SLACK = 48 << 20


def _rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Pool:
    """(tensor, the NumPy array it must equal) pairs shared by every thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[tuple[Any, np.ndarray]] = []

    def put(self, item: tuple[Any, np.ndarray], rng: random.Random) -> None:
        with self.lock:
            if len(self.items) >= POOL:
                # The evicted tensor is dropped here, usually not on the thread that made it.
                self.items[rng.randrange(len(self.items))] = item
            else:
                self.items.append(item)

    def take(self, rng: random.Random) -> tuple[Any, np.ndarray] | None:
        with self.lock:
            return rng.choice(self.items) if self.items else None


def _same(got: Any, want: np.ndarray) -> None:
    g = np.asarray(got)
    assert g.shape == want.shape and g.dtype == want.dtype, (
        g.shape,
        g.dtype,
        want.shape,
        want.dtype,
    )
    assert np.array_equal(g, want), (g, want)


def _implicit(t: Any) -> np.ndarray | None:
    """``np.asarray(t)``: may be refused while another thread holds the guard at 'disallow'."""
    try:
        return np.asarray(t)
    except RuntimeError as e:
        assert "transfer" in str(e), e
        return None


def _actions(pool: Pool, rng: random.Random) -> list[tuple[str, Callable[[], None]]]:
    def create() -> None:
        shape = tuple(rng.randint(1, 6) for _ in range(rng.randint(1, 3)))
        d = np.array([rng.randint(-20, 20) for _ in range(int(np.prod(shape)))]).reshape(shape)
        d = d.astype(rng.choice(DTYPES))
        t = tb.tensor(d, backend=rng.choice(BACKENDS), device="cpu")
        _same(t.numpy(), d)
        pool.put((t, d), rng)

    def ops() -> None:
        if (p := pool.take(rng)) is None:
            return
        t, d = p
        _same((t * 2 - 1).numpy(), d * d.dtype.type(2) - d.dtype.type(1))
        _same((t + t).numpy(), d + d)
        _same(t.sum(axis=0).numpy(), d.sum(axis=0))
        _same(t.max().numpy(), np.asarray(d.max()))
        _same(tb.absolute(t).numpy(), np.abs(d))

    def views() -> None:
        if (p := pool.take(rng)) is None:
            return
        t, d = p
        _same(t.T.numpy(), d.T)
        _same(t[::-1].numpy(), d[::-1])
        _same(t.reshape(-1).numpy(), d.reshape(-1))
        _same(t.T.contiguous().numpy(), np.ascontiguousarray(d.T))
        b = t.unsqueeze(0).broadcast_to((2, *d.shape))
        _same(b.numpy(), np.broadcast_to(d, (2, *d.shape)))
        pool.put((t.T, d.T), rng)

    def conversions() -> None:
        if (p := pool.take(rng)) is None:
            return
        t, d = p
        _same(t.numpy(copy=True), d)
        _same(t.astype("float64").numpy(), d.astype(np.float64))
        other = rng.choice(BACKENDS)
        moved = t.to(backend=other, device="cpu")
        _same(moved.numpy(), d)
        assert t.tolist() == d.tolist()
        if (a := _implicit(t)) is not None:
            _same(a, d)

    def dlpack() -> None:
        if (p := pool.take(rng)) is None:
            return
        t, d = p
        try:
            a = np.from_dlpack(t)
        except BufferError:
            # Storage NumPy cannot read in place (candle's): the explicit host copy.
            a = np.from_dlpack(t, device="cpu", copy=True)
        _same(a, d)
        back = tb.from_dlpack(np.ascontiguousarray(d))
        _same(back.numpy(), d)
        pool.put((back, d), rng)

    def lazy() -> None:
        if (p := pool.take(rng)) is None:
            return
        _, d = p
        x = tb.lazy(d)
        y = (x * 3 + 1).T - x.T
        with tb.Session() as s:
            got = s.run(y)
        _same(got, (d * d.dtype.type(3) + d.dtype.type(1)).T - d.T)
        _same((x + 1).sum(axis=0).numpy(), (d + d.dtype.type(1)).sum(axis=0))

    def guard() -> None:
        level = rng.choice(["allow", "log", "disallow"])
        with tb.transfer_guard(level):
            if (p := pool.take(rng)) is not None:
                t, d = p
                if (a := _implicit(t)) is not None:
                    _same(a, d)

    return [
        ("create", create),
        ("ops", ops),
        ("views", views),
        ("conversions", conversions),
        ("dlpack", dlpack),
        ("lazy", lazy),
        ("guard", guard),
    ]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads VmRSS from /proc")
def test_eight_threads_mixing_everything_stay_exact_live_and_flat() -> None:
    log = logging.getLogger("tensorbridge")
    # 'log' level warnings from 8 threads: not kept by pytest's log capture, which would grow.
    saved = (log.propagate, log.handlers[:])
    log.propagate, log.handlers = False, [logging.NullHandler()]
    pool = Pool()
    errors: list[str] = []
    counts: dict[str, int] = {}
    counts_lock = threading.Lock()
    start = time.monotonic()
    deadline = start + SECONDS
    warm = start + SECONDS * 0.3
    rss_after_warmup: list[int] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        actions = _actions(pool, rng)
        mine: dict[str, int] = {}
        while time.monotonic() < deadline and not errors:
            name, act = rng.choice(actions)
            try:
                act()
            except Exception:
                errors.append(f"{name}: {traceback.format_exc()}")
            mine[name] = mine.get(name, 0) + 1
        with counts_lock:
            for k, v in mine.items():
                counts[k] = counts.get(k, 0) + v

    def sampler() -> None:
        time.sleep(max(0.0, warm - time.monotonic()))
        gc.collect()
        rss_after_warmup.append(_rss())

    try:
        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(THREADS)]
        threads.append(threading.Thread(target=sampler, daemon=True))
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=max(1.0, deadline - time.monotonic()) + 120)
        stuck = [th.name for th in threads if th.is_alive()]
        if stuck:
            faulthandler.dump_traceback(all_threads=True)
        assert not stuck, f"threads still running 120 s after the deadline (deadlock?): {stuck}"
        assert not errors, "\n".join(errors[:3])
        gc.collect()
        end = _rss()  # the pool still full, as when the warm-up sample was taken
    finally:
        tb.transfer_guard("allow")
        log.propagate, log.handlers = saved
    total = sum(counts.values())
    print(
        f"soak: {total} actions in {SECONDS:.0f} s on {BACKENDS}: {counts}; "
        f"RSS {rss_after_warmup[0] >> 20} -> {end >> 20} MiB"
    )
    assert set(counts) == {name for name, _ in _actions(Pool(), random.Random(0))}, counts
    assert end - rss_after_warmup[0] < RSS_SLACK, (
        f"RSS grew from {rss_after_warmup[0] >> 20} to {end >> 20} MiB"
    )
