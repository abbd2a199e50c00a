"""The GIL is released around large copies and casts: threads converting at the same time get
correct results, and another Python thread runs while one thread copies."""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from numpy_reference import assert_same_array

import tensorbridge as tb


def test_threads_converting_concurrently_get_correct_results() -> None:
    bases = [np.arange(256 * 256, dtype=np.float64).reshape(256, 256) * (i + 1) for i in range(4)]
    tensors = [tb.tensor(b) for b in bases]

    def convert(i: int) -> None:
        t, b = tensors[i % 4], bases[i % 4]
        view, expected = t.T[::-1, ::2], b.T[::-1, ::2]
        for _ in range(10):
            assert_same_array(view.numpy(copy=True), expected)
            assert_same_array(np.asarray(view, dtype=np.float32), expected.astype(np.float32))
            assert_same_array(view.astype("int32").numpy(), expected.astype(np.int32))
            assert_same_array(np.asarray(view), expected)
            assert_same_array((view * 2).numpy(), expected * 2)

    with ThreadPoolExecutor(max_workers=8) as pool:
        for f in [pool.submit(convert, i) for i in range(16)]:
            f.result()


def test_threads_sharing_one_tensor_and_its_views() -> None:
    t = tb.tensor(np.arange(100_000, dtype=np.int64))
    expected = np.arange(100_000, dtype=np.int64)

    def convert(step: int) -> None:
        for _ in range(20):
            assert_same_array(t[::step].numpy(copy=True), expected[::step])
            assert_same_array(np.asarray(t[::-step], dtype=np.float64), expected[::-step] * 1.0)
            assert t[::step].sum().item() == expected[::step].sum()

    with ThreadPoolExecutor(max_workers=4) as pool:
        for f in [pool.submit(convert, s) for s in (1, 2, 3, 7)]:
            f.result()


def test_another_python_thread_runs_during_a_large_copy() -> None:
    big = tb.arange(4096 * 4096, dtype="float64").reshape(4096, 4096).T  # 128 MiB, transposed
    in_copy = threading.Event()
    done = threading.Event()
    seen_during_copy: list[float] = []

    def spin() -> None:
        # Pure Python: it can only run while the copying thread does not hold the GIL.
        while not done.is_set():
            if in_copy.is_set():
                seen_during_copy.append(time.perf_counter())
            time.sleep(0)  # hands the GIL straight back to a waiting thread

    # Without a released GIL the spinner could only run in a switch slice (1 ms here) just before
    # or after the call; demand progress well inside it.
    margin = 0.005
    windows: list[tuple[float, float]] = []
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(0.001)
    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        for _ in range(5):
            in_copy.set()
            start = time.perf_counter()
            out = big.numpy(copy=True)
            end = time.perf_counter()
            in_copy.clear()
            windows.append((start, end))
            assert out[5, 7] == 7 * 4096 + 5
    finally:
        done.set()
        spinner.join()
        sys.setswitchinterval(old_interval)
    long_enough = [(s, e) for s, e in windows if e - s > 4 * margin]
    if not long_enough:
        pytest.skip(f"copies took {max(e - s for s, e in windows):.4f}s, too fast to observe")
    inside = [t for s, e in long_enough for t in seen_during_copy if s + margin < t < e - margin]
    assert inside, f"no Python thread ran during {len(long_enough)} copies: the GIL was held"
