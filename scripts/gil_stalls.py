"""Where tensorbridge holds the GIL across heavy work: a spinning Python thread measures its
longest stall during each call, as a fraction of the call's duration (1.0: blocked throughout; a
few percent: the GIL was released). Public API only; ~64 MiB per case.

    .venv/bin/python scripts/gil_stalls.py
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable

import numpy as np
import tensorbridge as tb

N = 16 * 2**20  # float32 elements: 64 MiB


def stall(make: Callable[[], Callable[[], Any]]) -> tuple[float, float]:
    """(longest stall of a spinning thread / call duration, call duration in s), best of 3, each
    on fresh operands from `make`."""
    best = (2.0, 0.0)
    for _ in range(3):
        fn = make()
        stop = threading.Event()
        gaps: list[float] = []

        def spin() -> None:
            last = time.perf_counter()
            worst = 0.0
            while not stop.is_set():
                now = time.perf_counter()
                worst = max(worst, now - last)
                last = now
            gaps.append(worst)

        th = threading.Thread(target=spin)
        th.start()
        time.sleep(0.02)
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        stop.set()
        th.join()
        best = min(best, (min(gaps[0], dt) / dt, dt))
    return best


def lazy_sum() -> Any:
    return (tb.lazy(np.ones(N, np.float32)) * 2 + 1).sum()


def lazy_map() -> Any:
    return tb.lazy(np.ones(N, np.float32)) * 2 + 1


CASES: dict[str, Callable[[], Callable[[], Any]]] = {
    "lazy reduction: t.numpy()": lambda: lazy_sum().numpy,
    "lazy reduction: np.asarray(t)": lambda: (lambda t=lazy_sum(): np.asarray(t)),
    "lazy reduction: Session.run": lambda: (lambda t=lazy_sum(): tb.Session().run(t)),
    "lazy elementwise: memoryview(t)": lambda: (lambda t=lazy_map(): memoryview(t)),
    "lazy elementwise: np.from_dlpack(t)": lambda: (
        lambda t=lazy_map(): np.from_dlpack(t)
    ),
    "lazy elementwise: t.numpy() (control)": lambda: lazy_map().numpy,
    "tb.arange(16M)": lambda: (lambda: tb.arange(N, dtype="float32")),
    "broadcast add of two 16 KB inputs": lambda: (
        lambda a=tb.ones((4000, 1), dtype="float32"),
        b=tb.ones((1, 4000), dtype="float32"): a + b
    ),
    "compare: small == big": lambda: (
        lambda a=tb.zeros(1, dtype="float32"), b=tb.ones(N, dtype="float32"): a == b
    ),
    "eager add (control)": lambda: (lambda a=tb.ones(N, dtype="float32"): a + 1),
}


def main() -> None:
    print(f"{'case':45} {'stall/call':>10} {'call ms':>8}")
    for name, make in CASES.items():
        frac, dt = stall(make)
        print(f"{name:45} {frac:10.2f} {dt * 1e3:8.1f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
