#!/usr/bin/env python3
"""NumPy's (and torch's, when installed) figures for the workloads of the Rust criterion bench
``benches/cpu_kernels.rs``, same shapes and dtypes, printed beside tensorbridge's criterion
medians with tensorbridge's speed as a multiple of the best peer's.

  .venv/bin/python benches/python/numpy_reference.py --cargo   # runs the Rust bench too
  .venv/bin/python benches/python/numpy_reference.py           # peers + last criterion results

With ``--cargo`` each workload is measured in Rust (criterion, that one benchmark) and then by the
peers straight away, ``--rounds`` times, and each side keeps its best median: on a shared machine
the load changes within minutes, so only figures taken close together compare.

Times are medians over samples of repeated calls (each sample >= the budget / samples); GB/s
counts bytes of output written, as the Rust bench does. Each call's result is dropped before the
next, in both. Peers run single-threaded (NumPy) or with torch's default threads.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

SIZES = (10_000, 1_000_000, 64_000_000)
QUICK_SIZES = (10_000, 1_000_000)
OPS_SHAPE = (4096, 4096)
FROM_SLICE_ELEMS = 64 * 2**20 // 4


def shape_of(n: int) -> tuple[int, int]:
    rows = max(1, math.isqrt(n))
    return rows, n // rows


def timeit(fn: Callable[[], Any], budget: float, samples: int = 10) -> float:
    """Median seconds per call of `fn` over `samples` samples of `number` calls each."""
    fn()  # warm up (and page in what stays)
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-9)
    number = max(1, int(budget / samples / one))
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    times.sort()
    return times[len(times) // 2]


def cases(
    sizes: tuple[int, ...], torch: Any, ml_dtypes: Any
) -> list[tuple[str, int, int, dict[str, Callable[[], Any]]]]:
    """(criterion group, criterion id, output bytes, {peer: statement}) for every workload."""
    out: list[tuple[str, int, int, dict[str, Callable[[], Any]]]] = []
    n = OPS_SHAPE[0] * OPS_SHAPE[1]
    a = (np.arange(n, dtype=np.float32) % np.float32(4093)).reshape(OPS_SHAPE)
    b = (np.arange(n, dtype=np.float32) % np.float32(127) + np.float32(0.5)).reshape(OPS_SHAPE)
    one = np.float32(1.0)
    ops: dict[str, dict[str, Callable[[], Any]]] = {
        "add": {"NumPy": lambda: np.add(a, b)},
        "mul": {"NumPy": lambda: np.multiply(a, b)},
        "add_scalar": {"NumPy": lambda: a + one},
    }
    if torch is not None:
        ta, tb_ = torch.from_numpy(a), torch.from_numpy(b)
        ops["add"]["torch"] = lambda: torch.add(ta, tb_)
        ops["mul"]["torch"] = lambda: torch.mul(ta, tb_)
        ops["add_scalar"]["torch"] = lambda: ta + 1.0
    for name, peers in ops.items():
        out.append((f"ops_16M_f32/{name}", 0, n * 4, peers))

    src = np.arange(FROM_SLICE_ELEMS, dtype=np.float32)
    peers = {"NumPy": lambda: np.array(src)}
    if torch is not None:
        peers["torch"] = lambda: torch.tensor(src)
    out.append(("from_slice_64MiB_f32/tensorbridge_from_slice", 0, src.nbytes, peers))

    for size in sizes:
        shape = shape_of(size)
        f = (np.arange(shape[0] * shape[1], dtype=np.float32) % np.float32(65_521)).reshape(shape)
        sliced = f[:, ::8]
        peers = {"NumPy": lambda v=sliced: np.ascontiguousarray(v)}
        if torch is not None:
            peers["torch"] = lambda v=torch.from_numpy(f)[:, ::8]: v.contiguous()
        out.append(("copy_slice_1_8_f32/tensorbridge", size, sliced.size * 4, peers))
        for dtype, name in ((np.float32, "f32"), (np.uint16, "u16"), (np.uint8, "u8")):
            x = f.astype(dtype)
            peers = {"NumPy": lambda x=x: np.ascontiguousarray(x.T)}
            if torch is not None:
                peers["torch"] = lambda t=torch.from_numpy(x): t.T.contiguous()
            out.append((f"copy_transposed_{name}/tensorbridge", size, x.nbytes, peers))
        if ml_dtypes is not None:
            h = f.astype(ml_dtypes.bfloat16)
            peers = {"NumPy": lambda h=h: h.astype(np.float32)}
            if torch is not None:
                th = torch.from_numpy(h.view(np.uint16)).view(torch.bfloat16)
                peers["torch"] = lambda th=th: th.float()
            out.append(("copy_bf16_to_f32/tensorbridge", size, h.size * 4, peers))
    return out


def criterion_median(root: Path, group_fn: str, size: int) -> float | None:
    """tensorbridge's median seconds from criterion's last run of `group/function[/size]`."""
    path = root / group_fn / (str(size) if size else "") / "new" / "estimates.json"
    if not path.exists():
        return None
    est = json.loads(path.read_text())
    return float(est["median"]["point_estimate"]) * 1e-9


def run_rust(repo: Path, group_fn: str, size: int, quick: bool) -> None:
    """Runs the one criterion benchmark `group/function[/size]` of the Rust bench."""
    name = f"{group_fn}/{size}" if size else group_fn
    cmd = ["cargo", "bench", "-q", "-p", "tensorbridge-cpu", "--bench", "cpu_kernels"]
    cmd += ["--", "--exact", name]
    env = dict(os.environ, TB_BENCH_QUICK="1" if quick else "")
    subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True)


def cargo_target_dir(repo: Path) -> Path:
    if os.environ.get("CARGO_TARGET_DIR"):
        return Path(os.environ["CARGO_TARGET_DIR"])
    meta = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(json.loads(meta.stdout)["target_directory"])


def fmt_time(s: float | None) -> str:
    if s is None:
        return "—"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= scale:
            return f"{s / scale:.2f} {unit}"
    return f"{s * 1e9:.0f} ns"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cargo", action="store_true", help="run the Rust bench beside each peer")
    p.add_argument("--rounds", type=int, default=2, help="with --cargo: best median of N rounds")
    p.add_argument("--quick", action="store_true", help="no 64e6 sizes, short budgets (also Rust)")
    p.add_argument("--sizes", default="", help="comma-separated element counts (copy cases)")
    p.add_argument("--budget", type=float, default=1.0, help="seconds per statement")
    p.add_argument("--no-torch", action="store_true", help="NumPy only")
    p.add_argument("--criterion-dir", type=Path, help="default: <cargo target dir>/criterion")
    args = p.parse_args(argv)
    repo = Path(__file__).resolve().parents[2]
    sizes = tuple(int(s) for s in args.sizes.split(",") if s) or (
        QUICK_SIZES if args.quick else SIZES
    )
    budget = min(args.budget, 0.3) if args.quick else args.budget
    print(f"load average before: {os.getloadavg()}, {os.cpu_count()} logical CPUs", flush=True)
    crit = args.criterion_dir or cargo_target_dir(repo) / "criterion"
    if args.cargo:
        print("building the Rust bench...", flush=True)
        build = ["cargo", "bench", "-q", "-p", "tensorbridge-cpu", "--bench", "cpu_kernels"]
        subprocess.run([*build, "--no-run"], cwd=repo, check=True)
    torch = ml_dtypes = None
    if not args.no_torch:
        try:
            import torch  # type: ignore[no-redef]
        except ImportError:
            torch = None
    try:
        import ml_dtypes  # type: ignore[no-redef]
    except ImportError:
        ml_dtypes = None
    header = "| workload | elements | tensorbridge | NumPy | torch | GB/s (tb) | × best peer |"
    print(header)
    print("|---" * 7 + "|")
    for group_fn, size, nbytes, peers in cases(sizes, torch, ml_dtypes):
        times: dict[str, float] = {}
        ours = None
        for _ in range(args.rounds if args.cargo else 1):
            if args.cargo:
                run_rust(repo, group_fn, size, args.quick)
                t = criterion_median(crit, group_fn, size)
                ours = t if ours is None or (t is not None and t < ours) else ours
            for name, fn in peers.items():
                times[name] = min(times.get(name, math.inf), timeit(fn, budget))
        if not args.cargo:
            ours = criterion_median(crit, group_fn, size)
        best = min(times.values())
        ratio = f"{best / ours:.2f}×" if ours else "—"
        gbs = f"{nbytes / ours / 1e9:.2f}" if ours else "—"
        elems = f"{size:,}" if size else f"{nbytes // 4:,}"
        print(
            f"| {group_fn} | {elems} | {fmt_time(ours)} | {fmt_time(times.get('NumPy'))} "
            f"| {fmt_time(times.get('torch'))} | {gbs} | {ratio} |",
            flush=True,
        )
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
