"""Allocation failure is a MemoryError, never an abort: every path a user can reach that allocates
a tensor-sized host buffer (creation, copies, casts, ops, transposes, matmul, lazy evaluation,
``tb.tensor`` of large data, conversions to NumPy and DLPack, moves between backends) is run in a
real subprocess whose address space is capped with ``prlimit --as`` below what the call needs.

The child warms every path up on tiny inputs first (libraries loaded, thread pools started), then
caps itself at its measured peak plus ``MARGIN`` and runs each path on inputs that are tiny in
memory (broadcast views) but whose results need ``REQUEST`` bytes. Under the cap the kernel refuses
the mapping, so the allocator's failure is what is tested (the guard's RAM and container checks
have their own tests in Rust: ``crates/tensorbridge-core/src/memory_guard.rs``).

Public Python API only.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import pytest
import tensorbridge as tb

GIB = 2**30
MARGIN = 1 * GIB
REQUEST = 3 * GIB

CHILD = textwrap.dedent(
    """
    import json, os, subprocess, sys
    import numpy as np
    import tensorbridge as tb

    backend, margin = sys.argv[1], int(sys.argv[2])
    compiled = tb.compiled_backends()
    others = [b for b in compiled if b != backend and b != "lazy:cpu"]

    def paths(nbytes):
        # Shapes whose float64 result needs `nbytes` (float32: 2x the rows, bool: 8x).
        cols = 2**14 if nbytes > 2**20 else 4
        rows = max(1, nbytes // (8 * cols))
        m = int((nbytes / 8) ** 0.5) + 1

        def row(dtype="float64", b=backend):
            return tb.zeros((1, cols), dtype=dtype, backend=b, device="cpu")

        def big(k=1, dtype="float64", b=backend):
            return row(dtype, b).broadcast_to((k * rows, cols))

        host = np.broadcast_to(np.zeros(1), (rows, cols))
        p = {
            "zeros": lambda: tb.zeros((rows, cols), backend=backend, device="cpu"),
            "full": lambda: tb.full((rows, cols), 1.5, backend=backend, device="cpu"),
            "contiguous copy of a broadcast view": lambda: big().contiguous(),
            "numpy(copy=True)": lambda: big().numpy(copy=True),
            "np.asarray with a dtype": lambda: np.asarray(big(2), dtype=np.float32),
            "astype float32": lambda: big(2).astype("float32"),
            "astype int8": lambda: big(8).astype("int8"),
            "add scalar": lambda: big() + 1,
            "multiply tensors": lambda: big() * big(),
            "exp": lambda: tb.exp(big()),
            "compare": lambda: big(8) == 0,
            "transpose then copy": lambda: big().T.contiguous(),
            "op on a transpose": lambda: big().T - 1,
            "reshape that must copy": lambda: big().T.reshape(-1),
            "matmul": lambda: tb.matmul(
                tb.ones((m, 1), backend=backend, device="cpu"),
                tb.ones((1, m), backend=backend, device="cpu"),
            ),
            "reduction with dtype= (casts first)": lambda: big(1, "float32").sum(
                axis=0, dtype="float64"
            ),
            "tb.tensor of large data": lambda: tb.tensor(host, backend=backend, device="cpu"),
            "tb.tensor with a cast": lambda: tb.tensor(
                np.broadcast_to(np.zeros(1, np.float32), (rows, cols)),
                dtype="float64",
                backend=backend,
                device="cpu",
            ),
            "DLPack export to the host, copied": lambda: big().__dlpack__(
                max_version=(1, 0), dl_device=(1, 0), copy=True
            ),
        }
        for other in others:
            p[f"to {other}"] = lambda o=other: big().to(backend=o, device="cpu")
        if backend == "cpu" and "lazy:cpu" in compiled:
            lazy_row = lambda: tb.lazy(row())
            p["lazy: numpy() evaluates"] = lambda: (
                lazy_row().broadcast_to((rows, cols)) * 2 + 1
            ).numpy()
            p["lazy: Session.run"] = lambda: tb.Session().run(
                lazy_row().broadcast_to((rows, cols)) + 1
            )
            p["lazy: eval of a transpose"] = lambda: (
                lazy_row().broadcast_to((rows, cols)).T - 1
            ).eval(session=tb.Session())
        return p

    def rss():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    # Warm-up: every path once on tiny inputs (libraries, thread pools, arenas).
    # A path this backend does not support at all (candle has no int8) is left out.
    supported = {}
    for name, fn in paths(64).items():
        try:
            fn()
            supported[name] = True
        except (TypeError, RuntimeError) as e:
            print(json.dumps({"unsupported": name, "message": str(e)[:200]}), flush=True)
    peak = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmPeak:"):
                peak = int(line.split()[1]) * 1024
    cap = peak + margin
    subprocess.run(["prlimit", f"--pid={os.getpid()}", f"--as={cap}"], check=True)
    print(json.dumps({"cap": cap}), flush=True)
    for name, fn in paths(int(sys.argv[3])).items():
        if name not in supported:
            continue
        print(json.dumps({"start": name}), flush=True)
        before = rss()
        try:
            r = fn()
            # A backend may return a view (torch's zeros is an expanded scalar): no allocation.
            outcome, msg = "returned", rss() - before
            del r
        except MemoryError as e:
            outcome, msg = "MemoryError", str(e)
        except Exception as e:
            outcome, msg = type(e).__name__, str(e)[:300]
        print(json.dumps({"path": name, "outcome": outcome, "message": msg}), flush=True)
    """
)


def _run_capped(backend: str) -> tuple[subprocess.CompletedProcess[str], list[dict[str, object]]]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, backend, str(MARGIN), str(REQUEST)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    return proc, lines


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prlimit and /proc are Linux")
@pytest.mark.skipif(shutil.which("prlimit") is None, reason="prlimit (util-linux) not installed")
@pytest.mark.parametrize("backend", [b for b in tb.compiled_backends() if b != "lazy:cpu"])
def test_every_allocation_path_is_a_memory_error_under_an_address_space_cap(backend: str) -> None:
    proc, lines = _run_capped(backend)
    started = [x["start"] for x in lines if "start" in x]
    results = {x["path"]: x for x in lines if "path" in x}
    crashed = [s for s in started if s not in results]
    assert proc.returncode == 0 and not crashed, (
        f"the child died (exit {proc.returncode}) in path {crashed}: {proc.stderr[-2000:]}"
    )
    caps = [x["cap"] for x in lines if "cap" in x]
    assert caps, proc.stderr[-2000:]
    assert results, proc.stderr[-2000:]
    # A call may return without error only when it allocated nothing (a view).
    wrong = {
        name: (r["outcome"], r["message"])
        for name, r in results.items()
        if r["outcome"] != "MemoryError"
        and not (r["outcome"] == "returned" and int(r["message"]) < 64 << 20)
    }
    assert not wrong, f"not a MemoryError under a cap of {caps[0]} bytes: {wrong}"
    # tensorbridge's own refusals name the shape, the bytes and the limit (NumPy's own
    # allocation failures, e.g. numpy(copy=True), keep NumPy's message).
    ours = [r["message"] for r in results.values() if "too large" in str(r["message"])]
    assert ours, results
    limits = ("allocator refused", "host RAM has", "container's memory limit")
    for msg in ours:
        assert "bytes" in str(msg) and any(x in str(msg) for x in limits), msg
