"""Timing and machine facts for the benchmark (bench.py): no workloads here.

Method: every statement runs through ``timeit`` (GC off) as ``_r = <statement>``. A statement is
checked once against its expected result, warmed up, and timed in one of two ways, chosen by its
warm-up speed: fast statements (< ``BATCH_S`` per call) are timed in batches of calls lasting
about ``BATCH_S`` (the previous result is freed inside the batch, as in a loop that drops it);
slow ones one call per repetition, the result freed outside the timing, so each call pages in
fresh output memory as a real caller does, and those repetitions also record the process's CPU
seconds (all threads) and minor page faults. The repetition count fills ``budget`` seconds per
statement (clamped), and the repetitions of every statement of a group (one workload at one size:
subjects, peers and the limit) run interleaved, round by round, so background load hits them
alike. We report the minimum and the median per call.

Other processes' CPU use, just before and during a run, is measured from /proc/stat: on a busy
machine multi-threaded rows (tensorbridge, torch) lose most, as they need all CPUs.

Noise seen on the 2-vCPU VM this was written on: besides other processes, freed memory is
returned to the hypervisor (virtio-balloon free page reporting), so now and then a fresh output
array costs several times more to page in; it shows as runs of slow repetitions, which the median
absorbs and the minimum ignores.
"""

from __future__ import annotations

import gc
import importlib.metadata
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import timeit
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]

BATCH_S = 0.02  # one timed batch of fast calls lasts about this long (less for tiny budgets)
MIN_REPS_SLOW, MAX_REPS_SLOW = 5, 50
MIN_REPS_FAST, MAX_REPS_FAST = 5, 200

Log = Callable[[str], None]


@dataclass
class Spec:
    """A statement to time, in its own namespace, and what it stands for in the report."""

    library: str  # "tensorbridge", "NumPy", "torch", "TensorFlow", "JAX", "limit"
    target: str  # tensorbridge: "backend@device"; peers and limits: the device ("cpu", "cuda:0")
    role: str  # "subject" (tensorbridge), "peer", "limit"
    stmt: str
    env: dict[str, Any]
    check: Callable[[Any], bool] | None = None
    note: str = ""
    out_bytes: int | None = None  # default: the size of the statement's result


@dataclass
class Row:
    """One measured statement of one group (workload × size)."""

    workload: str
    size: int  # elements of the source tensor
    library: str
    target: str
    role: str
    stmt: str
    out_bytes: int  # bytes of the result (the output written), for throughput
    calls_per_rep: int
    times_s: list[float]  # per call, one entry per repetition, in the order taken
    note: str = ""
    cpu_s: list[float] = field(default_factory=list)  # slow statements only
    minor_faults: list[int] = field(default_factory=list)

    @property
    def key(self) -> str:
        """Identifies the figure across runs (for --compare)."""
        return f"{self.workload}/{self.size}/{self.library}/{self.target}"

    @property
    def device_kind(self) -> str:
        """ "cpu" or "cuda": peers and limits are only compared within one kind."""
        dev = self.target.rsplit("@", 1)[-1]
        return dev.split(":", 1)[0]

    @property
    def reps(self) -> int:
        return len(self.times_s)

    @property
    def min_s(self) -> float:
        return min(self.times_s)

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)

    @property
    def gbps_best(self) -> float:
        return self.out_bytes / self.min_s / 1e9

    @property
    def gbps_median(self) -> float:
        return self.out_bytes / self.median_s / 1e9


def settle() -> None:
    """Frees, and lets other libraries' worker threads (which may spin after an op) go idle."""
    gc.collect()
    time.sleep(0.02)


def result_bytes(r: Any) -> int:
    """Bytes of a statement's result as a host array (its size if it is a tensor of any kind)."""
    nbytes = getattr(r, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    return int(np.asarray(r).nbytes)


def time_group(workload: str, size: int, specs: list[Spec], budget: float, log: Log) -> list[Row]:
    """Checks, warms up and times every statement of one group, interleaved round by round."""
    batch_s = min(BATCH_S, max(budget / 10, 1e-4))
    timers: list[timeit.Timer] = []
    numbers: list[int] = []
    reps: list[int] = []
    rows: list[Row] = []
    settle()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. NumPy 2's __array__(copy=) deprecation for peers
        for s in specs:
            result = eval(s.stmt, s.env)  # noqa: S307 - our own statement strings
            if s.check is not None and not s.check(result):
                raise AssertionError(
                    f"{workload} size {size}: {s.library} {s.target} `{s.stmt}` gave a wrong result"
                )
            out_bytes = s.out_bytes if s.out_bytes is not None else result_bytes(result)
            del result
            timer = timeit.Timer(f"_r = {s.stmt}", globals=s.env)
            # Warm-up (the first calls may pay one-time costs: JIT, first touch of a source).
            per_call = min(timer.timeit(1), timer.timeit(1))
            if per_call >= batch_s:
                number = 1
                n = max(MIN_REPS_SLOW, min(MAX_REPS_SLOW, int(budget / per_call)))
            else:
                number = 1
                while True:  # find a batch size that lasts about batch_s
                    took = timer.timeit(number)
                    if took >= batch_s / 2:
                        break
                    number *= 2
                number = max(1, int(number * batch_s / took))
                n = max(MIN_REPS_FAST, min(MAX_REPS_FAST, int(budget / batch_s)))
            timers.append(timer)
            numbers.append(number)
            reps.append(n)
            rows.append(
                Row(workload, size, s.library, s.target, s.role, s.stmt, out_bytes, number, [],
                    s.note)
            )  # fmt: skip
        for r in range(max(reps, default=0)):
            for i, timer in enumerate(timers):
                if r >= reps[i]:
                    continue
                if numbers[i] > 1:
                    rows[i].times_s.append(timer.timeit(numbers[i]) / numbers[i])
                    continue
                time.sleep(0.002)  # let peers' spinning worker threads park
                u0 = resource.getrusage(resource.RUSAGE_SELF)
                rows[i].times_s.append(timer.timeit(1))
                u1 = resource.getrusage(resource.RUSAGE_SELF)
                rows[i].cpu_s.append(u1.ru_utime + u1.ru_stime - u0.ru_utime - u0.ru_stime)
                rows[i].minor_faults.append(u1.ru_minflt - u0.ru_minflt)
    for row in rows:
        log(
            f"  {workload:<12} {size:>9} {row.library:<12} {row.target:<10} {row.stmt:<44} "
            f"min {fmt_time(row.min_s):>9} median {fmt_time(row.median_s):>9} "
            f"{row.gbps_median:8.2f} GB/s"
        )
    settle()
    return rows


# ---------------------------------------------------------------------------------------------
# machine facts and load


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _cpu_busy_s() -> float | None:
    """CPU-seconds all processes have spent busy since boot (from /proc/stat), or None."""
    fields = _read("/proc/stat").split("\n", 1)[0].split()
    if len(fields) < 5 or fields[0] != "cpu":
        return None
    ticks = [int(x) for x in fields[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class LoadMeter:
    """Share of the machine's CPUs that *other* processes kept busy since it started."""

    def __init__(self) -> None:
        self.b0, self.o0, self.t0 = _cpu_busy_s(), _own_cpu_s(), time.perf_counter()

    def share(self) -> float | None:
        b1, o1, t1 = _cpu_busy_s(), _own_cpu_s(), time.perf_counter()
        if self.b0 is None or b1 is None or t1 <= self.t0:
            return None
        other = max(0.0, (b1 - self.b0) - (o1 - self.o0))
        return round(other / ((t1 - self.t0) * (os.cpu_count() or 1)), 3)


def wait_for_idle(max_wait_s: float, log: Log) -> float | None:
    """Measures other processes' load over 1 s, repeating while it is >= 10% (up to max_wait_s).

    Returns the last share measured (None where /proc/stat is unreadable).
    """
    waited = 0.0
    while True:
        meter = LoadMeter()
        time.sleep(1.0)
        share = meter.share()
        waited += 1.0
        if share is None or share < 0.1 or waited >= max_wait_s:
            return share
        log(f"other processes use {pct(share)} of the CPUs; waiting (--wait-idle)")


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_facts(peer_versions: dict[str, str], threads: dict[str, Any]) -> dict[str, Any]:
    cpu: dict[str, str] = {}
    for line in _read("/proc/cpuinfo").splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "cpu family", "model") and key not in cpu:
            cpu[key] = value.strip()
    meminfo = _read("/proc/meminfo").split()
    mem_gib = int(meminfo[1]) / 2**20 if len(meminfo) > 1 else None
    commit = _git("rev-parse", "--short=12", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    versions |= {d: _version(d) for d in ("ml_dtypes", "tensorbridge", "matplotlib")}
    versions |= peer_versions
    return {
        "cpu": cpu.get("model name", platform.processor() or "unknown"),
        "cpu_family_model": f"family {cpu.get('cpu family', '?')} model {cpu.get('model', '?')}",
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": round(mem_gib, 1) if mem_gib else None,
        "transparent_hugepage": _read("/sys/kernel/mm/transparent_hugepage/enabled").strip(),
        "kernel": platform.release(),
        "python_executable": sys.executable,
        "versions": versions,
        "threads": threads,
        "git_commit": commit + (" (dirty tree)" if dirty else ""),
        "env": {k: v for k, v in sorted(os.environ.items()) if k.startswith(("OPENBLAS_", "OMP_"))},
    }


def fmt_time(s: float) -> str:
    if s < 1e-6:
        return f"{s * 1e9:.0f} ns"
    if s < 1e-3:
        return f"{s * 1e6:.2f} µs"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


def pct(x: float | None) -> str:
    return "unknown" if x is None else f"{100 * x:.0f}%"
