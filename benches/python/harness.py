#!/usr/bin/env python3
"""tensorbridge -> NumPy conversion benchmark, against NumPy and (where installed) torch,
TensorFlow and JAX, all in one process and one run.

Cases (each with its goal, judged on the median, against a reference measured in the same run):

(a) ``t.numpy()`` of a 4-element float32 tensor: the per-call cost of a zero-copy export.
    Goal: time <= 0.65x torch ``t.numpy()``.
(b) The transposed view of an 8192x8192 float32 tensor to a C-contiguous host array. The subject
    is ``t.T.numpy(copy=True)`` (the same path as ``np.array(t.T)``): our strided -> dense copy
    kernel. ``np.ascontiguousarray(t.T)`` is *not* the subject: ``t.T`` exports as a zero-copy
    strided view, so NumPy makes that copy with its own loop; it is shown for information.
    Goals: >= 5x NumPy ``np.ascontiguousarray(a.T)`` and >= 2x torch ``t.T.contiguous()``.
(c) ``np.array(t)`` of a dense 256 MiB float32 tensor (NumPy calls ``__array__(copy=True)``).
    Goal: >= 0.75x ``np.copyto(dst, a)`` into a preallocated, already paged-in array (the memcpy
    limit; the subject must also page in fresh output memory).
(d) bfloat16 -> float32 of 256 MiB of output, ``np.asarray(t, dtype=np.float32)`` (one fused
    cast-and-copy pass). Goal: >= 3x torch ``t.float().numpy()``.

Method: every statement runs through ``timeit`` (GC off) as ``_r = <statement>``. Small cases
time batches of calls (~20 ms; the previous result is freed inside the batch, as in a loop that
drops it); big cases time one call per repetition and free the result outside the timing, so each
call pages in fresh output memory, as a real caller does. Each statement is checked and warmed up,
its repetition count is chosen to fill ``--budget`` seconds (7..50 for big rows), and then the
repetitions of all statements of a case run interleaved, round by round, so background load hits
subject and references alike. We report the minimum and the median per call; throughput is GB/s
(1e9 bytes) of *output* written. The JSON also keeps every repetition's time, CPU seconds (all
threads) and minor page faults. Other processes' CPU use just before and during the run is
measured from /proc/stat and printed (``--wait-idle S`` waits for a quiet machine first): on a
busy machine the multi-threaded rows (tensorbridge, torch) lose most, as they need both CPUs.
Sources are shared where a library can view NumPy memory (``tb.from_numpy``,
``torch.from_numpy``), so NumPy, tensorbridge and torch read the very same pages; TensorFlow and
JAX hold their own copies. Each result is checked against NumPy once, outside the timing.

Noise seen on the 2-vCPU VM this was written on: besides other processes, freed memory is
returned to the hypervisor (virtio-balloon free page reporting), so now and then a fresh output
array costs several times more to page in, with the same number of guest page faults; it shows
as runs of slow repetitions, which the median absorbs and the minimum ignores.

Environment: this machine sets ``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE``, which slow NumPy's BLAS;
no case here calls BLAS (copies and casts only), so the script leaves them alone and reports them.

Run (NumPy only, the dev venv):   .venv/bin/python benches/python/conversion.py
With peers (see requirements-bench.txt next to this file):
    python3 -m venv .venv-bench
    .venv-bench/bin/pip install -r benches/python/requirements-bench.txt
    VIRTUAL_ENV=$PWD/.venv-bench .venv/bin/maturin develop --release -m bindings/python/Cargo.toml
    .venv-bench/bin/python benches/python/conversion.py --json bench.json
(``maturin develop`` installs tensorbridge editable in both venvs, so they share one extension
module and ``make develop`` rebuilds it for both.)
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import importlib.util
import json
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

import tensorbridge as tb

PEERS = ("torch", "tensorflow", "jax")
REPO = Path(__file__).resolve().parents[2]

MIN_REPS_BIG, MAX_REPS_BIG = 7, 50
MIN_REPS_SMALL, MAX_REPS_SMALL = 10, 200
SMALL_BATCH_S = 0.02  # one timed batch of small calls lasts about this long


@dataclass
class Row:
    """One measured statement."""

    case: str
    library: str
    stmt: str
    role: str  # "subject" (tensorbridge, judged), "reference" (a goal's yardstick), "info"
    out_bytes: int | None  # None: per-call cost only (no throughput)
    calls_per_rep: int
    times_s: list[float]  # per call, one entry per repetition, in the order taken
    note: str = ""
    # Per repetition (big cases): the process's CPU seconds (all threads; freeing the result
    # included) and minor page faults (fresh output memory: one per 4 KiB page, or per 2 MiB
    # transparent huge page), for telling page-fault and thread effects apart.
    cpu_s: list[float] = field(default_factory=list)
    minor_faults: list[int] = field(default_factory=list)

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
    def gbps_best(self) -> float | None:
        return None if self.out_bytes is None else self.out_bytes / self.min_s / 1e9

    @property
    def gbps_median(self) -> float | None:
        return None if self.out_bytes is None else self.out_bytes / self.median_s / 1e9


@dataclass
class Goal:
    """One goal: the subject's speed relative to a reference row of the same case."""

    case: str
    text: str
    subject: Row
    reference: Row | None
    target: float  # minimum speed ratio (reference time / subject time)
    missing: str = ""
    ratio_median: float | None = field(init=False, default=None)
    ratio_best: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.reference is not None:
            self.ratio_median = self.reference.median_s / self.subject.median_s
            self.ratio_best = self.reference.min_s / self.subject.min_s

    @property
    def met(self) -> bool | None:
        return None if self.ratio_median is None else self.ratio_median >= self.target


# ---------------------------------------------------------------------------------------------
# timing


def _settle() -> None:
    """Frees, and lets other libraries' worker threads (which may spin after an op) go idle."""
    gc.collect()
    time.sleep(0.05)


@dataclass
class Spec:
    """A statement to time, in its own namespace."""

    library: str
    stmt: str
    env: dict[str, Any]
    role: str = "info"
    check: Callable[[Any], bool] | None = None
    note: str = ""


def run_case(
    case: str, specs: list[Spec], out_bytes: int | None, budget: float, log: Callable[[str], None]
) -> list[Row]:
    """Checks, warms up and times every statement of a case, interleaved.

    Repetitions run in rounds (one timing of each statement per round, until each has its count)
    so that whatever else the machine does hits the subject and its references alike.
    """
    big = out_bytes is not None
    timers: list[timeit.Timer] = []
    numbers: list[int] = []
    reps: list[int] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. NumPy 2's __array__(copy=) deprecation for peers
        for s in specs:
            if s.check is not None:
                result = eval(s.stmt, s.env)  # noqa: S307 - our own statement strings
                ok = s.check(result)
                del result
                if not ok:
                    raise AssertionError(f"case {case}: {s.library} `{s.stmt}` gave a wrong result")
            timer = timeit.Timer(f"_r = {s.stmt}", globals=s.env)
            _settle()
            if big:
                # Warm-up (the first call may pay one-time costs: JIT, first touch of a source),
                # then the repetitions that fill the budget at the better of two calls' speed.
                per_call = min(timer.timeit(1), timer.timeit(1))
                number = 1
                n = int(budget / max(per_call, 1e-9))
                n = max(MIN_REPS_BIG, min(MAX_REPS_BIG, n))
            else:
                number = 1
                while True:  # warm-up while finding a batch size that lasts SMALL_BATCH_S
                    took = timer.timeit(number)
                    if took >= SMALL_BATCH_S / 2:
                        break
                    number *= 2
                number = max(1, int(number * SMALL_BATCH_S / took))
                n = max(MIN_REPS_SMALL, min(MAX_REPS_SMALL, int(budget / SMALL_BATCH_S)))
            timers.append(timer)
            numbers.append(number)
            reps.append(n)
        rows = [Row(case, s.library, s.stmt, s.role, out_bytes, n, [], s.note) for s, n in
                zip(specs, numbers)]  # fmt: skip
        for r in range(max(reps)):
            for i, timer in enumerate(timers):
                if r >= reps[i]:
                    continue
                if not big:
                    rows[i].times_s.append(timer.timeit(numbers[i]) / numbers[i])
                    continue
                time.sleep(0.005)  # let peers' spinning worker threads park
                u0 = resource.getrusage(resource.RUSAGE_SELF)
                rows[i].times_s.append(timer.timeit(1))
                u1 = resource.getrusage(resource.RUSAGE_SELF)
                rows[i].cpu_s.append(u1.ru_utime + u1.ru_stime - u0.ru_utime - u0.ru_stime)
                rows[i].minor_faults.append(u1.ru_minflt - u0.ru_minflt)
    for row in rows:
        gb = "" if row.gbps_median is None else f" {row.gbps_median:6.2f} GB/s"
        log(
            f"  {case} {row.library:<12} {row.stmt:<38} min {fmt_time(row.min_s):>9} "
            f"median {fmt_time(row.median_s):>9}{gb}"
        )
    return rows


# ---------------------------------------------------------------------------------------------
# cases


def is_host_array(dtype: Any, shape: tuple[int, ...]) -> Callable[[Any], bool]:
    def check(r: Any) -> bool:
        a = np.asarray(r)
        return a.dtype == dtype and a.shape == shape

    return check


def same_as(expected: np.ndarray[Any, Any], *, writable: bool = False) -> Callable[[Any], bool]:
    def check(r: Any) -> bool:
        a = np.asarray(r)
        good = a.dtype == expected.dtype and a.shape == expected.shape and a.flags.c_contiguous
        good = good and bool(np.array_equal(a, expected))
        return good and (a.flags.writeable or not writable)

    return check


def case_small(
    peers: dict[str, ModuleType], budget: float, log: Callable[[str], None]
) -> list[Row]:
    a = np.arange(4, dtype=np.float32)
    t = tb.tensor(a)
    specs = [
        Spec("tensorbridge", "t.numpy()", {"t": t}, "subject", same_as(a)),
        Spec("tensorbridge", "np.asarray(t)", {"t": t, "np": np}, "info", same_as(a)),
        Spec("NumPy", "a.view()", {"a": a}, "info", same_as(a), "floor: a new ndarray object"),
    ]
    if "torch" in peers:
        torch = peers["torch"]
        specs.append(Spec("torch", "t.numpy()", {"t": torch.tensor(a)}, "reference", same_as(a)))
    if "tensorflow" in peers:
        tf = peers["tensorflow"]
        specs.append(Spec("TensorFlow", "t.numpy()", {"t": tf.constant(a)}, "info", same_as(a)))
    if "jax" in peers:
        jnp = peers["jax"].numpy
        env = {"t": jnp.asarray(a), "np": np}
        specs.append(Spec("JAX", "np.asarray(t)", env, "info", same_as(a)))
    rows = run_case("a", specs, None, budget, log)
    _settle()
    return rows


def case_transpose(
    peers: dict[str, ModuleType], n: int, budget: float, log: Callable[[str], None]
) -> list[Row]:
    a = np.arange(n * n, dtype=np.float32).reshape(n, n)
    dst = np.empty_like(a)
    np.copyto(dst, a)  # page it in
    expected = np.ascontiguousarray(a.T)
    t = tb.from_numpy(a)
    specs = [
        Spec("tensorbridge", "t.T.numpy(copy=True)", {"t": t}, "subject", same_as(expected, writable=True)),
        Spec("tensorbridge", "np.array(t.T)", {"t": t, "np": np}, "info", same_as(expected),
             "same path as numpy(copy=True)"),
        Spec("tensorbridge", "np.ascontiguousarray(t.T)", {"t": t, "np": np}, "info",
             same_as(expected), "NumPy copies our zero-copy strided view"),
        Spec("NumPy", "np.ascontiguousarray(a.T)", {"a": a, "np": np}, "reference",
             same_as(expected)),
        Spec("NumPy", "np.copyto(dst, a)", {"a": a, "dst": dst, "np": np}, "info", None,
             "memcpy limit, preallocated output"),
    ]  # fmt: skip
    if "torch" in peers:
        torch = peers["torch"]
        env = {"t": torch.from_numpy(a)}
        specs.append(Spec("torch", "t.T.contiguous().numpy()", env, "reference", same_as(expected)))
    if "tensorflow" in peers:
        tf = peers["tensorflow"]
        env = {"t": tf.constant(a), "tf": tf}
        specs.append(Spec("TensorFlow", "tf.transpose(t).numpy()", env, "info", same_as(expected)))
    if "jax" in peers:
        jnp = peers["jax"].numpy
        env = {"t": jnp.asarray(a), "np": np}
        specs.append(Spec("JAX", "np.asarray(t.T)", env, "info", same_as(expected)))
    del expected
    rows = run_case("b", specs, a.nbytes, budget, log)
    del specs, t, a, dst
    _settle()
    return rows


def case_dense(
    peers: dict[str, ModuleType], elems: int, budget: float, log: Callable[[str], None]
) -> list[Row]:
    a = np.arange(elems, dtype=np.float32)
    dst = np.empty_like(a)
    np.copyto(dst, a)  # page it in
    t = tb.from_numpy(a)
    specs = [
        Spec("tensorbridge", "np.array(t)", {"t": t, "np": np}, "subject", same_as(a, writable=True)),
        Spec("tensorbridge", "t.numpy(copy=True)", {"t": t}, "info", same_as(a, writable=True)),
        Spec("NumPy", "np.copyto(dst, a)", {"a": a, "dst": dst, "np": np}, "reference", None,
             "memcpy limit, preallocated output"),
        Spec("NumPy", "np.array(a)", {"a": a, "np": np}, "info", same_as(a),
             "fresh output, as the subject"),
    ]  # fmt: skip
    if "torch" in peers:
        env = {"t": peers["torch"].from_numpy(a), "np": np}
        specs.append(Spec("torch", "np.array(t)", env, "info", same_as(a)))
    if "tensorflow" in peers:
        env = {"t": peers["tensorflow"].constant(a), "np": np}
        specs.append(Spec("TensorFlow", "np.array(t)", env, "info", same_as(a)))
    if "jax" in peers:
        env = {"t": peers["jax"].numpy.asarray(a), "np": np}
        specs.append(Spec("JAX", "np.array(t)", env, "info", same_as(a)))
    rows = run_case("c", specs, a.nbytes, budget, log)
    del specs, t, a, dst
    _settle()
    return rows


def bf16_source(elems: int) -> np.ndarray[Any, Any]:
    """Finite, normal, varied bfloat16 values (built from bits: fast, no NaN/Inf/subnormals)."""
    import ml_dtypes

    i = np.arange(elems, dtype=np.uint32)
    bits = (0x3C00 + (i % 0x0800)) | ((i & 1) << 15)  # |x| in [2^-7, 2^9), both signs
    return bits.astype(np.uint16).view(ml_dtypes.bfloat16)


def case_bf16(
    peers: dict[str, ModuleType], elems: int, budget: float, log: Callable[[str], None]
) -> list[Row]:
    a = bf16_source(elems)
    expected = a.astype(np.float32)
    t = tb.from_numpy(a)
    specs = [
        Spec("tensorbridge", "np.asarray(t, dtype=np.float32)", {"t": t, "np": np}, "subject",
             same_as(expected)),
        Spec("NumPy", "a.astype(np.float32)", {"a": a, "np": np}, "info", same_as(expected),
             "ml_dtypes cast"),
    ]  # fmt: skip
    if "torch" in peers:
        torch = peers["torch"]
        env = {"t": torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)}
        specs.append(Spec("torch", "t.float().numpy()", env, "reference", same_as(expected)))
    if "tensorflow" in peers:
        tf = peers["tensorflow"]
        env = {"t": tf.constant(a), "tf": tf}
        specs.append(
            Spec("TensorFlow", "tf.cast(t, tf.float32).numpy()", env, "info", same_as(expected))
        )
    if "jax" in peers:
        jnp = peers["jax"].numpy
        env = {"t": jnp.asarray(a), "jnp": jnp, "np": np}
        specs.append(
            Spec("JAX", "np.asarray(t.astype(jnp.float32))", env, "info", same_as(expected))
        )
    del expected
    rows = run_case("d", specs, elems * 4, budget, log)
    del specs, t, a
    _settle()
    return rows


def pick(rows: list[Row], case: str, library: str, role: str) -> Row | None:
    for r in rows:
        if r.case == case and r.library == library and r.role == role:
            return r
    return None


def goals(rows: list[Row]) -> list[Goal]:
    out: list[Goal] = []

    def add(case: str, text: str, ref_lib: str, target: float) -> None:
        subject = pick(rows, case, "tensorbridge", "subject")
        if subject is None:
            return
        ref = pick(rows, case, ref_lib, "reference")
        missing = "" if ref is not None else f"{ref_lib} not installed"
        out.append(Goal(case, text, subject, ref, target, missing))

    add("a", "t.numpy() time <= 0.65x torch t.numpy()", "torch", 1 / 0.65)
    add("b", ">= 5x NumPy np.ascontiguousarray(a.T)", "NumPy", 5.0)
    add("b", ">= 2x torch t.T.contiguous()", "torch", 2.0)
    add("c", ">= 0.75x np.copyto into preallocated (memcpy)", "NumPy", 0.75)
    add("d", ">= 3x torch t.float().numpy()", "torch", 3.0)
    return out


# ---------------------------------------------------------------------------------------------
# machine facts and output


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


def background_load(seconds: float) -> float | None:
    """Share of the machine's CPUs busy with *other* processes over the next ``seconds``."""
    b0, o0, t0 = _cpu_busy_s(), _own_cpu_s(), time.perf_counter()
    time.sleep(seconds)
    b1, o1, t1 = _cpu_busy_s(), _own_cpu_s(), time.perf_counter()
    if b0 is None or b1 is None:
        return None
    return max(0.0, (b1 - b0) - (o1 - o0)) / ((t1 - t0) * (os.cpu_count() or 1))


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def machine_facts(peers: dict[str, ModuleType]) -> dict[str, Any]:
    cpu: dict[str, str] = {}
    for line in _read("/proc/cpuinfo").splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "cpu family", "model", "stepping") and key not in cpu:
            cpu[key] = value.strip()
    meminfo = _read("/proc/meminfo").split()
    mem_gib = int(meminfo[1]) / 2**20 if len(meminfo) > 1 else None
    thp = _read("/sys/kernel/mm/transparent_hugepage/enabled").strip()
    commit = _git("rev-parse", "--short=12", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    versions: dict[str, str] = {"python": platform.python_version(), "numpy": np.__version__}
    for dist in ("ml_dtypes", "tensorbridge"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    for name in PEERS:
        versions[name] = peers[name].__version__ if name in peers else "not installed"
    if "jax" in peers:
        versions["jaxlib"] = importlib.metadata.version("jaxlib")
    threads: dict[str, Any] = {
        "tensorbridge (rayon)": os.environ.get("RAYON_NUM_THREADS", "default")
    }
    if "torch" in peers:
        threads["torch"] = peers["torch"].get_num_threads()
    return {
        "cpu": cpu.get("model name", platform.processor() or "unknown"),
        "cpu_family_model": f"family {cpu.get('cpu family', '?')} model {cpu.get('model', '?')}",
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": round(mem_gib, 1) if mem_gib else None,
        "transparent_hugepage": thp,
        "kernel": platform.release(),
        "python_executable": sys.executable,
        "versions": versions,
        "tensorbridge_backends": tb.compiled_backends(),
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


def _pct(x: float | None) -> str:
    return "unknown" if x is None else f"{100 * x:.0f}%"


def fmt_ratio(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}×"


CASE_TITLES = {
    "a": "(a) 4-elem f32 per call",
    "b": "(b) f32 transpose → host",
    "c": "(c) dense f32 → new array",
    "d": "(d) bf16 → f32",
}


def markdown(rows: list[Row], gs: list[Goal], facts: dict[str, Any], sizes: dict[str, str]) -> str:
    v = facts["versions"]
    lines = [
        "# tensorbridge conversion benchmark",
        "",
        f"- CPU: {facts['cpu']} ({facts['cpu_family_model']}), {facts['usable_cpus']} usable of "
        f"{facts['logical_cpus']} logical CPUs, {facts['memory_gib']} GiB RAM, "
        f"THP `{facts['transparent_hugepage']}`, kernel {facts['kernel']}",
        "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"- Threads: {facts['threads']}",
        f"- tensorbridge commit {facts['git_commit'] or 'unknown'}, "
        f"backends {facts['tensorbridge_backends']}",
        f"- Other processes' CPU use (share of all CPUs): {_pct(facts.get('background_before'))} "
        f"just before, {_pct(facts.get('background_during'))} during the run"
        + (
            " — a busy machine: medians are noisy"
            if (facts.get("background_during") or 0) > 0.1
            else ""
        ),
        f"- Env: {facts['env'] or 'no OPENBLAS_*/OMP_* set'} (no case calls BLAS)",
        "- Sizes: " + ", ".join(f"({k}) {s}" for k, s in sizes.items()),
        "- Times are per call; GB/s = 1e9 bytes of *output* per second; 'speed vs ref' = the "
        "case's reference time / this row's time (median).",
        "",
        "| Case | Library | Statement | Role | Calls×reps | Min | Median | GB/s best | "
        "GB/s median | Speed vs ref |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case in CASE_TITLES:
        case_rows = [r for r in rows if r.case == case]
        ref = next((r for r in case_rows if r.role == "reference"), None)
        for r in case_rows:
            gb = "—" if r.gbps_best is None else f"{r.gbps_best:.2f}"
            gm = "—" if r.gbps_median is None else f"{r.gbps_median:.2f}"
            vs = fmt_ratio(ref.median_s / r.median_s) if ref is not None else "—"
            stmt = f"`{r.stmt}`" + (f" ({r.note})" if r.note else "")
            lines.append(
                f"| {CASE_TITLES[case]} | {r.library} | {stmt} | {r.role} | "
                f"{r.calls_per_rep}×{r.reps} | {fmt_time(r.min_s)} | {fmt_time(r.median_s)} | "
                f"{gb} | {gm} | {vs} |"
            )
    lines += [
        "",
        "| Goal | Subject | Reference | Speed ratio (median) | (best) | Target | Met |",
        "|---|---|---|---|---|---|---|",
    ]
    for g in gs:
        against = f"{g.reference.library} `{g.reference.stmt}`" if g.reference else g.missing
        met = "n/a" if g.met is None else ("**yes**" if g.met else "**no**")
        extra = ""
        if g.case == "a" and g.ratio_median:
            extra = f" (time ratio {1 / g.ratio_median:.2f})"
        lines.append(
            f"| ({g.case}) {g.text} | `{g.subject.stmt}` | {against} | "
            f"{fmt_ratio(g.ratio_median)}{extra} | {fmt_ratio(g.ratio_best)} | "
            f"≥ {g.target:.2f}× | {met} |"
        )
    return "\n".join(lines)


def load_peers(names: list[str], log: Callable[[str], None]) -> dict[str, ModuleType]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    peers: dict[str, ModuleType] = {}
    for name in names:
        if importlib.util.find_spec(name) is None:
            log(f"peer {name}: not installed, skipped")
            continue
        t0 = time.perf_counter()
        module = importlib.import_module(name)
        if name == "jax":
            importlib.import_module("jax.numpy")  # makes `module.numpy` available
        peers[name] = module
        log(f"peer {name} {module.__version__}: imported in {time.perf_counter() - t0:.1f} s")
    return peers


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", type=Path, help="also write the results as JSON to this path")
    p.add_argument(
        "--peers",
        default=",".join(PEERS),
        help="comma-separated peers to try (default: %(default)s; '' for NumPy only)",
    )
    p.add_argument("--cases", default="abcd", help="which cases to run (default: %(default)s)")
    p.add_argument("--budget", type=float, default=1.0, help="seconds per big row (default 1)")
    p.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="S",
        help="wait up to S seconds for other processes to use < 10%% of the CPUs before starting",
    )
    p.add_argument("--quick", action="store_true", help="1/16 sizes, for a smoke test")
    args = p.parse_args(argv)

    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {msg}", file=sys.stderr, flush=True)

    peers = load_peers([x for x in args.peers.split(",") if x], log)
    n = 2048 if args.quick else 8192
    elems = (1 << 22) if args.quick else (1 << 26)
    mib = elems * 4 / 2**20
    sizes = {
        "a": "4 × f32",
        "b": f"{n}×{n} f32 = {n * n * 4 / 2**20:.0f} MiB",
        "c": f"{elems} f32 = {mib:.0f} MiB",
        "d": f"{elems} bf16 → f32 = {mib:.0f} MiB out",
    }
    facts = machine_facts(peers)
    waited = 0.0
    while True:
        before = background_load(1.0)
        waited += 1.0
        if before is None or before < 0.1 or waited >= args.wait_idle:
            break
        log(f"other processes use {_pct(before)} of the CPUs; waiting (--wait-idle)")
    facts["background_before"] = None if before is None else round(before, 3)
    b0, o0, t_run = _cpu_busy_s(), _own_cpu_s(), time.perf_counter()
    rows: list[Row] = []
    if "a" in args.cases:
        rows += case_small(peers, args.budget * 0.3, log)
    if "b" in args.cases:
        rows += case_transpose(peers, n, args.budget, log)
    if "c" in args.cases:
        rows += case_dense(peers, elems, args.budget, log)
    if "d" in args.cases:
        rows += case_bf16(peers, elems, args.budget, log)
    gs = goals(rows)
    b1, o1 = _cpu_busy_s(), _own_cpu_s()
    if b0 is not None and b1 is not None:
        wall = time.perf_counter() - t_run
        other = max(0.0, (b1 - b0) - (o1 - o0))
        facts["background_during"] = round(other / (wall * (os.cpu_count() or 1)), 3)
    elapsed = time.perf_counter() - started
    print(markdown(rows, gs, facts, sizes))
    print(f"\nTotal wall time {elapsed:.0f} s.")
    if args.json:
        payload = {
            "facts": facts,
            "sizes": sizes,
            "wall_s": elapsed,
            "rows": [
                asdict(r)
                | {
                    "reps": r.reps,
                    "min_s": r.min_s,
                    "median_s": r.median_s,
                    "gbps_best": r.gbps_best,
                    "gbps_median": r.gbps_median,
                }
                for r in rows
            ],
            "goals": [
                {
                    "case": g.case,
                    "goal": g.text,
                    "subject": g.subject.stmt,
                    "reference": None if g.reference is None else g.reference.stmt,
                    "reference_library": None if g.reference is None else g.reference.library,
                    "target_speed_ratio": g.target,
                    "speed_ratio_median": g.ratio_median,
                    "speed_ratio_best": g.ratio_best,
                    "met": g.met,
                    "missing": g.missing or None,
                }
                for g in gs
            ],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
