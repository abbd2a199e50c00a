#!/usr/bin/env python3
"""Out-of-core write of a tensor to Zarr: ``tb.to_dask(t, chunks).to_zarr(store)`` (Dask's threaded
scheduler, chunk by chunk) against ``zarr.array(np.asarray(t), store=store, chunks=chunks)`` (the
whole tensor as one NumPy array first), in the same run, on the same data, chunks and codecs.

Each figure comes from its own child process (so peak RSS is that variant's alone): throughput
is the tensor's bytes over the wall time of the write; "peak RSS added" is the child's peak
resident memory during the write (the kernel's high-water mark, reset once the tensor exists)
minus what it held then, so the tensor's own storage is not counted. Backends: ``cpu`` (host
memory: ``np.asarray`` is a zero-copy view), ``counted:candle`` (candle's CPU storage with its
host memory hidden, the stand-in for device memory without a GPU: ``np.asarray`` copies the whole
tensor, the path of every device tensor) and, where a GPU is present, the CUDA backends.

  make bench-zarr                                  # this script alone, in the dev venv
  python benches/python/out_of_core.py             # 2 GiB, 64 MiB chunks
  python benches/python/out_of_core.py --gib 0.05  # a quick look

Output: a Markdown table on stdout and ``bench-results/<UTC time>-out-of-core.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

CHILD = r"""
import json, sys, time
import numpy as np
import dask, zarr
import tensorbridge as tb

variant, backend, device, store, rows, cols, chunk_rows = sys.argv[1:8]
rows, cols, chunk_rows = int(rows), int(cols), int(chunk_rows)
dask.config.set(scheduler="threads")

def status_kib(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])

a = np.arange(rows * cols, dtype=np.float32).reshape(rows, cols) % np.float32(65_521)
t = tb.tensor(a, backend=backend, device=device)
t.synchronize()
del a
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak (VmHWM) starts again from what the process holds now
before = status_kib("VmRSS:")
start = time.perf_counter()
if variant == "to_dask":
    tb.to_dask(t, chunks=(chunk_rows, cols)).to_zarr(store)
else:
    zarr.array(np.asarray(t), store=store, chunks=(chunk_rows, cols))
seconds = time.perf_counter() - start
peak = status_kib("VmHWM:")
z = zarr.open_array(store, mode="r")
ok = z.shape == t.shape and z.nchunks_initialized == z.nchunks
ok = ok and bool(np.array_equal(z[rows - 1], t[rows - 1].numpy()))
print(json.dumps({"seconds": seconds, "rss_before_kib": before, "peak_rss_kib": peak, "ok": ok}))
"""

VARIANTS = {
    "to_dask": "tb.to_dask(t, chunks).to_zarr(store)",
    "asarray": "zarr.array(np.asarray(t), store=store, chunks=chunks)",
}


def targets(only: list[str] | None = None) -> list[tuple[str, str]]:
    """(backend, device) pairs to measure: cpu, the device stand-in ``counted:candle``, the CUDA
    backends that find a GPU; only those whose backend is in ``only`` when given."""
    import tensorbridge as tb

    out = [("cpu", "cpu")]
    if "counted:candle" in tb.compiled_backends():
        out.append(("counted:candle", "cpu"))
    for backend in ("torch", "candle"):
        if backend not in tb.compiled_backends():
            continue
        try:
            tb.zeros(1, backend=backend, device="cuda:0")
        except RuntimeError:
            continue
        out.append((backend, "cuda:0"))
    return [(b, d) for b, d in out if only is None or b in only]


def run_one(
    variant: str, backend: str, device: str, rows: int, cols: int, chunk_rows: int
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tb-zarr-") as tmp:
        store = str(Path(tmp) / "t.zarr")
        args = [variant, backend, device, store, str(rows), str(cols), str(chunk_rows)]
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, *args], capture_output=True, text=True, timeout=900
        )
    if proc.returncode != 0:
        raise RuntimeError(f"{variant} on {backend}@{device} failed:\n{proc.stderr[-3000:]}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    nbytes = rows * cols * 4
    return {
        "variant": variant,
        "statement": VARIANTS[variant],
        "backend": backend,
        "device": device,
        "bytes": nbytes,
        "chunk_bytes": chunk_rows * cols * 4,
        "seconds": r["seconds"],
        "gb_per_s": nbytes / r["seconds"] / 1e9,
        "peak_rss_added_mib": (r["peak_rss_kib"] - r["rss_before_kib"]) / 1024,
        "verified": r["ok"],
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| backend@device | statement | GB/s | peak RSS added | chunk |",
        "|---|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['backend']}@{r['device']} | `{r['statement']}` | {r['gb_per_s']:.2f} | "
            f"{r['peak_rss_added_mib']:.0f} MiB | {r['chunk_bytes'] >> 20} MiB |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--gib", type=float, default=2.0, help="tensor size in GiB (default 2)")
    p.add_argument("--chunk-mib", type=float, default=64.0, help="chunk size in MiB (default 64)")
    p.add_argument("--cols", type=int, default=1 << 14, help="columns (default 16384)")
    p.add_argument("--backends", help="comma-separated subset, e.g. cpu (default: all found)")
    p.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parents[2] / "bench-results",
                   help="where <UTC time>-out-of-core.json/.md go (default %(default)s)")  # fmt: skip
    args = p.parse_args(argv)
    row_bytes = args.cols * 4
    rows = max(1, int(args.gib * (1 << 30)) // row_bytes)
    chunk_rows = max(1, min(rows, int(args.chunk_mib * (1 << 20)) // row_bytes))
    load = os.getloadavg()[0]
    print(
        f"{rows}x{args.cols} float32 ({rows * row_bytes / (1 << 30):.2f} GiB), chunks of "
        f"{chunk_rows} rows; load average {load:.1f} on {os.cpu_count()} CPUs",
        file=sys.stderr,
    )
    results = []
    only = args.backends.split(",") if args.backends else None
    for backend, device in targets(only):
        for variant in VARIANTS:
            r = run_one(variant, backend, device, rows, args.cols, chunk_rows)
            if not r["verified"]:
                raise RuntimeError(f"{variant} on {backend}@{device}: the store does not match")
            results.append(r)
            print(f"  {backend}@{device} {variant}: {r['gb_per_s']:.2f} GB/s, "
                  f"+{r['peak_rss_added_mib']:.0f} MiB", file=sys.stderr)  # fmt: skip
    table = markdown(results)
    print(table)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    base = args.out_dir / f"{stamp}-out-of-core"
    facts = {"utc": stamp, "load_average": load, "logical_cpus": os.cpu_count()}
    base.with_suffix(".json").write_text(json.dumps({"facts": facts, "rows": results}, indent=1))
    base.with_suffix(".md").write_text(table + "\n")
    print(f"wrote {base}.json, {base}.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
