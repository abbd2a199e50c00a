"""Device-to-host bench of the cuda backend against torch, in one run on one GPU.

1 GiB of float32 on cuda:0, and a 1/8 slice of it (rows: a contiguous window; columns: a strided
view), converted to NumPy by tensorbridge (``t.numpy()``, and ``t.numpy(out=...)`` into a
preallocated array) and by torch (``x.cpu().numpy()``), against a plain pinned copy
(``pinned.copy_(x)`` into ``torch.empty(..., pin_memory=True)``: one cudaMemcpy into page-locked
memory, the bus's practical ceiling). Prints best-of-N times, GB/s and the ratios the goals are
stated in. Needs a GPU, torch (CUDA) and the cuda variant of tensorbridge; exits 0 with a message
when there is no GPU.

    python benches/python/d2h.py [--repeat N]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

ROWS = COLS = 16384  # 16384 * 16384 * 4 B = 1 GiB


def best_of(f: Callable[[], Any], repeat: int, sync: Callable[[], None]) -> float:
    f()  # warm-up: pools, page tables, lazy init
    sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        sync()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_d2h(repeat: int = 5) -> dict[str, float]:
    """Runs the bench; returns seconds per case (best of ``repeat``)."""
    import torch

    import tensorbridge as tb

    sync = torch.cuda.synchronize
    x = torch.arange(ROWS * COLS, dtype=torch.float32, device="cuda:0").reshape(ROWS, COLS)
    t = tb.arange(ROWS * COLS, dtype="float32", backend="candle", device="cuda:0").reshape(
        ROWS, COLS
    )
    if not np.array_equal(
        t[:: ROWS // 7, :: COLS // 5].numpy(), x[:: ROWS // 7, :: COLS // 5].cpu().numpy()
    ):
        raise SystemExit("tensorbridge and torch disagree on the data")
    pinned = torch.empty((ROWS, COLS), dtype=torch.float32, pin_memory=True)
    out = np.empty((ROWS, COLS), dtype=np.float32)
    r8, c8 = ROWS // 8, COLS // 8
    out_rows = np.empty((r8, COLS), dtype=np.float32)
    out_cols = np.empty((ROWS, c8), dtype=np.float32)
    cases: dict[str, Callable[[], Any]] = {
        "pinned copy_ 1 GiB (baseline)": lambda: pinned.copy_(x),
        "torch x.cpu().numpy() 1 GiB": lambda: x.cpu().numpy(),
        "tb t.numpy() 1 GiB": lambda: t.numpy(),
        "tb t.numpy(out=) 1 GiB": lambda: t.numpy(out=out),
        "torch x[:n/8].cpu().numpy()": lambda: x[:r8].cpu().numpy(),
        "tb t[:n/8].numpy()": lambda: t[:r8].numpy(),
        "tb t[:n/8].numpy(out=)": lambda: t[:r8].numpy(out=out_rows),
        "torch x[:, :n/8].cpu().numpy()": lambda: x[:, :c8].cpu().numpy(),
        "tb t[:, :n/8].numpy(out=)": lambda: t[:, :c8].numpy(out=out_cols),
    }
    return {name: best_of(f, repeat, sync) for name, f in cases.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        print("d2h bench skipped: torch is not installed")
        return 0
    if not torch.cuda.is_available():
        print("d2h bench skipped: no CUDA device")
        return 0
    res = bench_d2h(args.repeat)
    gib = float(ROWS * COLS * 4)
    print(f"device: {torch.cuda.get_device_name(0)}; best of {args.repeat}")
    for name, s in res.items():
        size = gib / 8 if "n/8" in name else gib
        print(f"  {name:36s} {s * 1e3:9.2f} ms  {size / s / 1e9:7.2f} GB/s")
    whole = res["tb t.numpy() 1 GiB"]
    print("ratios (same run):")
    print(
        f"  tb t.numpy() vs torch .cpu().numpy(): {res['torch x.cpu().numpy() 1 GiB'] / whole:.2f}x faster"
    )
    print(
        f"  tb t.numpy(out=) vs pinned copy: {res['pinned copy_ 1 GiB (baseline)'] / res['tb t.numpy(out=) 1 GiB']:.2f} of pinned bandwidth"
    )
    print(
        f"  tb t.numpy() vs pinned copy: {res['pinned copy_ 1 GiB (baseline)'] / whole:.2f} of pinned bandwidth"
    )
    print(f"  1/8 row slice costs {res['tb t[:n/8].numpy()'] / whole:.3f} of the whole")
    print(
        f"  1/8 column slice (out=) costs {res['tb t[:, :n/8].numpy(out=)'] / res['tb t.numpy(out=) 1 GiB']:.3f} of the whole"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
