#!/usr/bin/env python3
"""Transposes by element width, per byte: ``t.T`` of a C-contiguous 2-D tensor converted to a
C-contiguous ndarray, for 1-, 2-, 4- and 8-byte elements at the same number of bytes, so that
the kernels for narrow elements can be compared with f32's (the ratio column).

  .venv/bin/python benches/python/transpose_widths.py            # 40 KB, 4 MB, 128 MB
  .venv/bin/python benches/python/transpose_widths.py --mb 256   # one size, in MB (10**6 bytes)

Two ways in: ``t.T.numpy(out=o)`` into a paged-in ``o`` (the kernel and memory, no page faults)
and ``np.ascontiguousarray(t.T)`` (what users write: a new array each call). GB/s counts bytes of
output; each figure is the best of ``--repeat`` calls (a shared machine's load only ever adds
time). Shapes are near-square (an integer square root), so whether output rows are 16-byte
aligned depends on the size, as in real shapes; ``--mb`` picks others.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import numpy as np

import tensorbridge as tb

WIDTHS = (np.uint8, np.uint16, np.float32, np.float64)


def shape_for(nbytes: int, itemsize: int) -> tuple[int, int]:
    """A near-square (rows, cols) of about ``nbytes`` bytes of ``itemsize``-byte elements."""
    side = max(1, math.isqrt(nbytes // itemsize))
    return side, max(1, nbytes // itemsize // side)


def best_seconds(call: Callable[[], object], repeat: int) -> float:
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, action="append", help="output size in MB (repeatable)")
    parser.add_argument("--repeat", type=int, default=0, help="calls per figure (default: by size)")
    parser.add_argument("--backend", default="cpu")
    args = parser.parse_args()
    sizes = [int(mb * 1e6) for mb in (args.mb or [0.04, 4, 128])]
    print(f"backend {args.backend}; GB/s of output, best of the calls; ratio = per byte vs float32")
    print(
        f"{'bytes':>12} {'dtype':>8} {'shape':>14} {'out=':>7} {'ratio':>6} {'np.asc..':>8} {'ratio':>6}"
    )
    for nbytes in sizes:
        repeat = args.repeat or max(5, min(20_000, int(4e8 / nbytes)))
        rows: list[tuple[str, tuple[int, int], float, float]] = []
        for dtype in WIDTHS:
            shape = shape_for(nbytes, np.dtype(dtype).itemsize)
            a = (np.arange(shape[0] * shape[1]) % 251).astype(dtype).reshape(shape)
            t = tb.tensor(a, backend=args.backend)
            out = np.empty(shape[::-1], dtype=dtype)
            t.T.numpy(out=out)  # pages `out` in
            into = a.nbytes / best_seconds(lambda t=t, out=out: t.T.numpy(out=out), repeat) / 1e9
            fresh = a.nbytes / best_seconds(lambda t=t: np.ascontiguousarray(t.T), repeat) / 1e9
            rows.append((np.dtype(dtype).name, shape, into, fresh))
        f32 = next(r for r in rows if r[0] == "float32")
        for name, shape, into, fresh in rows:
            print(
                f"{nbytes:>12,} {name:>8} {f'{shape[0]}x{shape[1]}':>14} {into:>7.2f} "
                f"{into / f32[2]:>6.2f} {fresh:>8.2f} {fresh / f32[3]:>6.2f}"
            )


if __name__ == "__main__":
    main()
