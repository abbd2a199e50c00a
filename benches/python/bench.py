#!/usr/bin/env python3
"""tensorbridge cross-backend benchmark: every compiled backend and device, the peers installed
here (torch, TensorFlow, JAX) doing the same work their own way, and the limits, in one process
and one run.

Workloads (float32 sources of ``size`` elements, 2-D and near-square; see WORKLOADS):

  numpy()      ``t.numpy()`` per call (zero-copy on host memory, one copy from a device)
  asarray      ``np.asarray(t)`` of a contiguous tensor
  transposed   the transposed view to a C-contiguous host array (``t.T.numpy(copy=True)``)
  ascontig T   ``np.ascontiguousarray(t.T)``: the same, as users write it
  sliced       the 1/8 step-slice view ``t[:, ::8]`` to a C-contiguous host array
  numpy copy   ``t.numpy(copy=True)``: our copy kernel, called directly
  array copy   ``np.array(t)``: a new writable array
  f32→f64      ``np.asarray(t, dtype=np.float64)`` of a float32 tensor (a converting copy)
  bf16→f32     ``np.asarray(t, dtype=np.float32)`` of a bfloat16 tensor (one fused pass)
  from NumPy   ``tb.tensor(a, backend=, device=)`` (a copy onto the backend, synchronised)

The user-path rows (``np.array(t)``, ``np.ascontiguousarray(t.T)``, ``np.asarray(t, dtype=)``:
what users write, through NumPy's own entry points) sit beside the direct calls
(``t.numpy(copy=True)``, ``t.T.numpy(copy=True)``); each peer does the same its own idiomatic
way (NumPy on an ndarray, torch ``t.T.contiguous().numpy()``, ``t.double().numpy()``...).

and, for each runtime installed (ASNUMPY_WORKLOADS), ``tb.asnumpy(x)`` of that runtime's own
CPU tensor against the runtime's own fastest conversion of the same tensor:

  asnumpy_<rt>          ``tb.asnumpy(t)`` vs torch ``t.numpy()`` / TF ``t.numpy()`` (a copy) /
                        JAX ``np.asarray(t)``
  asnumpy_bf16_<rt>     ``tb.asnumpy(t, dtype=np.float32)`` of bfloat16 vs the runtime's cast
  asnumpy_strided_torch ``tb.asnumpy(t.T, order="C")`` vs ``t.T.contiguous().numpy()``

Limits, measured in the same run: on the host, ``np.copyto`` of the output bytes into an already
paged-in array (memcpy; for the zero-copy workloads, ``a.view()``, the cost of a new ndarray
object); on CUDA devices, a pinned device→host (host→device for ``from NumPy``) copy by torch.

Every figure is also given as a ratio to the limit and to the fastest peer on the same device
kind, both from the same run (speed ratios: > 1 means faster than the limit / the peer).
Timing method: see harness.py. Output: ``bench-results/<UTC time>.{json,md,png}``.

  make bench          # Rust criterion benches + this script with peers (creates .venv-bench)
  make bench-quick    # smaller sizes, shorter budget: a regression check in < 2 minutes
  python benches/python/bench.py --compare OLD.json NEW.json   # ratios, flags > 10% slower
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

import tensorbridge as tb

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
import report  # noqa: E402
from harness import Log, Row, Spec  # noqa: E402

PEERS = ("torch", "tensorflow", "jax")
FULL_SIZES = (4, 10_000, 1_000_000, 64_000_000)
QUICK_SIZES = (4, 10_000, 1_000_000)


# ---------------------------------------------------------------------------------------------
# what runs where


def devices_of(backend: str, max_cuda: int = 16) -> list[str]:
    """The devices a tensorbridge backend can place a tensor on here: ``cpu`` if it accepts it,
    then ``cuda:0``, ``cuda:1``... while they work. Probing (not a list) picks up any backend
    added later without changes here."""
    found: list[str] = []
    for dev in ["cpu", *(f"cuda:{i}" for i in range(max_cuda))]:
        try:
            tb.zeros(1, dtype="float32", backend=backend, device=dev).synchronize()
        except (RuntimeError, ValueError, TypeError):
            if dev.startswith("cuda"):
                break
            continue
        found.append(dev)
    return found


def tensorbridge_targets() -> list[tuple[str, str]]:
    """(backend, device) for every compiled backend and every device it has here."""
    return [(b, d) for b in tb.compiled_backends() for d in devices_of(b)]


def load_peers(names: list[str], log: Log) -> dict[str, ModuleType]:
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


def torch_cuda(peers: dict[str, ModuleType]) -> ModuleType | None:
    torch = peers.get("torch")
    return torch if torch is not None and torch.cuda.is_available() else None


# ---------------------------------------------------------------------------------------------
# sources and checks


class Sources:
    """The arrays of one size and every library's tensors of them, built once, reused by every
    workload of that size."""

    def __init__(self, size: int, peers: dict[str, ModuleType]) -> None:
        rows = max(1, math.isqrt(size))
        self.shape = (rows, size // rows)
        n = self.shape[0] * self.shape[1]
        self.a = np.arange(n, dtype=np.float32).reshape(self.shape) % np.float32(65_521)
        self.peers = peers
        self._cache: dict[tuple[str, ...], Any] = {}

    def bf16(self) -> np.ndarray[Any, Any]:
        """Finite, normal, varied bfloat16 values (built from bits: no NaN/Inf/subnormals)."""
        return self.cached(("np", "bf16"), lambda: _bf16_values(self.shape))

    def cached(self, key: tuple[str, ...], make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def tb(self, backend: str, device: str, dtype: str = "f32") -> tb.Tensor:
        src = self.a if dtype == "f32" else self.bf16()
        return self.cached(
            ("tb", backend, device, dtype), lambda: tb.tensor(src, backend=backend, device=device)
        )

    def peer(self, name: str, device: str, dtype: str = "f32") -> Any:
        src = self.a if dtype == "f32" else self.bf16()

        def make() -> Any:
            if name == "torch":
                torch = self.peers["torch"]
                t = torch.from_numpy(src.view(np.int16)).view(torch.bfloat16) if dtype != "f32" \
                    else torch.from_numpy(src)  # fmt: skip
                return t if device == "cpu" else t.to(device)
            if name == "tensorflow":
                return self.peers["tensorflow"].constant(src)
            return self.peers["jax"].numpy.asarray(src)

        return self.cached(("peer", name, device, dtype), make)


def _bf16_values(shape: tuple[int, int]) -> np.ndarray[Any, Any]:
    import ml_dtypes

    i = np.arange(shape[0] * shape[1], dtype=np.uint32)
    bits = (0x3C00 + (i % 0x0800)) | ((i & 1) << 15)  # |x| in [2^-7, 2^9), both signs
    return bits.astype(np.uint16).view(ml_dtypes.bfloat16).reshape(shape)


def same_as(expected: np.ndarray[Any, Any], *, writable: bool = False) -> Callable[[Any], bool]:
    def check(r: Any) -> bool:
        a = np.asarray(r)
        good = a.dtype == expected.dtype and a.shape == expected.shape and a.flags.c_contiguous
        good = good and bool(np.array_equal(a, expected))
        return good and (a.flags.writeable or not writable)

    return check


def values_of(expected: np.ndarray[Any, Any]) -> Callable[[Any], bool]:
    """For tensors on any device: the values, read back outside the timing."""

    def check(r: Any) -> bool:
        if hasattr(r, "cpu"):  # torch
            r = r.cpu()
        return bool(np.array_equal(np.asarray(r), expected))

    return check


def _synced(t: Any) -> Any:
    t.synchronize()
    return t


# ---------------------------------------------------------------------------------------------
# workloads


@dataclass(frozen=True)
class Workload:
    """One workload: how each library does it, and which limit bounds it."""

    name: str
    title: str
    per_call: bool  # the figure that matters is time per call (zero-copy), not bandwidth
    limit: str  # "view" (a new ndarray object) or "copy" (memcpy of the output bytes)
    subject: Callable[[Sources, str, str], Spec]
    peers: Callable[[Sources, str], list[Spec]]  # (sources, device kind)
    expected: Callable[[Sources], np.ndarray[Any, Any]]
    # A tb.asnumpy workload: the runtime (peer module) whose tensor is converted; its subject
    # is that runtime's tensor (target "<runtime>@cpu"), not each tensorbridge backend's.
    runtime: str | None = None
    # The subject statement is a NumPy function applied to the tensor (``np.array(t)``...): it
    # reaches us through NumPy's ``__array__`` protocol, whose floor is measured beside it.
    protocol: bool = False


def _peer_specs(
    src: Sources, kind: str, stmts: dict[str, tuple[str, str]], expected: np.ndarray[Any, Any],
    dtype: str = "f32",
) -> list[Spec]:  # fmt: skip
    """Peer statements {library: (cpu statement, cuda statement)}, where the peer is installed
    and (for cuda) has the device."""
    out: list[Spec] = []
    dev = "cpu" if kind == "cpu" else "cuda:0"
    for name, (cpu_stmt, cuda_stmt) in stmts.items():
        if name == "NumPy":
            if kind == "cpu":
                env = {"a": src.a if dtype == "f32" else src.bf16(), "np": np}
                out.append(Spec("NumPy", "cpu", "peer", cpu_stmt, env, same_as(expected)))
            continue
        if name not in src.peers or (kind == "cuda" and (name != "torch" or not cuda_stmt)):
            continue
        if kind == "cuda" and torch_cuda(src.peers) is None:
            continue
        env = {"t": src.peer(name, dev, dtype), "np": np}
        if name == "tensorflow":
            env["tf"] = src.peers["tensorflow"]
        if name == "jax":
            env["jnp"] = src.peers["jax"].numpy
        label = {"torch": "torch", "tensorflow": "TensorFlow", "jax": "JAX"}[name]
        stmt = cpu_stmt if kind == "cpu" else cuda_stmt
        out.append(Spec(label, dev, "peer", stmt, env, same_as(expected)))
    return out


def _to_host(name: str, title: str, stmt: str, per_call: bool, limit: str,
             peer_stmts: dict[str, tuple[str, str]],
             expected: Callable[[Sources], np.ndarray[Any, Any]],
             dtype: str = "f32", writable: bool = False) -> Workload:  # fmt: skip
    protocol = stmt.startswith("np.")

    def subject(src: Sources, backend: str, device: str) -> Spec:
        env = {"t": src.tb(backend, device, dtype), "np": np}
        check = same_as(expected(src), writable=writable)
        return Spec("tensorbridge", f"{backend}@{device}", "subject", stmt, env, check)

    def peers(src: Sources, kind: str) -> list[Spec]:
        return _peer_specs(src, kind, peer_stmts, expected(src), dtype)

    return Workload(name, title, per_call, limit, subject, peers, expected, protocol=protocol)


def _from_numpy() -> Workload:
    def subject(src: Sources, backend: str, device: str) -> Spec:
        stmt = f"sync(tb.tensor(a, backend={backend!r}, device={device!r}))"
        env = {"a": src.a, "tb": tb, "sync": _synced}
        return Spec("tensorbridge", f"{backend}@{device}", "subject", stmt, env,
                    values_of(src.a))  # fmt: skip

    def peers(src: Sources, kind: str) -> list[Spec]:
        a, out = src.a, []
        if kind == "cpu":
            out.append(Spec("NumPy", "cpu", "peer", "np.array(a)", {"a": a, "np": np},
                            values_of(a), "a fresh copy"))  # fmt: skip
        if "torch" in src.peers:
            torch = src.peers["torch"]
            if kind == "cpu":
                env = {"a": a, "torch": torch}
                out.append(Spec("torch", "cpu", "peer", "torch.tensor(a)", env, values_of(a)))
            elif torch_cuda(src.peers) is not None:
                env = {"a": a, "torch": torch, "sync": _torch_synced(torch)}
                stmt = "sync(torch.from_numpy(a).to('cuda:0'))"
                out.append(Spec("torch", "cuda:0", "peer", stmt, env, values_of(a)))
        if kind == "cpu" and "tensorflow" in src.peers:
            env = {"a": a, "tf": src.peers["tensorflow"]}
            out.append(Spec("TensorFlow", "cpu", "peer", "tf.constant(a)", env, values_of(a)))
        if kind == "cpu" and "jax" in src.peers:
            env = {"a": a, "jax": src.peers["jax"]}
            stmt = "jax.device_put(a).block_until_ready()"
            out.append(Spec("JAX", "cpu", "peer", stmt, env, values_of(a)))
        return out

    return Workload("from_numpy", "from NumPy", False, "copy", subject, peers, lambda s: s.a)


def _torch_synced(torch: ModuleType) -> Callable[[Any], Any]:
    def sync(t: Any) -> Any:
        torch.cuda.synchronize()
        return t

    return sync


def _transposed(s: Sources) -> np.ndarray[Any, Any]:
    return s.cached(("expected", "T"), lambda: np.ascontiguousarray(s.a.T))


def _sliced(s: Sources) -> np.ndarray[Any, Any]:
    return s.cached(("expected", "sliced"), lambda: np.ascontiguousarray(s.a[:, ::8]))


def _as_f64(s: Sources) -> np.ndarray[Any, Any]:
    return s.cached(("expected", "f64"), lambda: s.a.astype(np.float64))


def _bf16_as_f32(s: Sources) -> np.ndarray[Any, Any]:
    return s.cached(("expected", "bf16"), lambda: s.bf16().astype(np.float32))


WORKLOADS: list[Workload] = [
    _to_host("numpy", "t.numpy() per call", "t.numpy()", True, "view",
             {"torch": ("t.numpy()", "t.cpu().numpy()"), "tensorflow": ("t.numpy()", ""),
              "jax": ("np.asarray(t)", "")}, lambda s: s.a),
    _to_host("asarray", "np.asarray(t), contiguous", "np.asarray(t)", True, "view",
             {"torch": ("np.asarray(t)", "np.asarray(t.cpu())"),
              "tensorflow": ("np.asarray(t)", ""), "jax": ("np.asarray(t)", "")}, lambda s: s.a),
    _to_host("transposed", "transposed view → contiguous", "t.T.numpy(copy=True)", False, "copy",
             {"NumPy": ("np.ascontiguousarray(a.T)", ""),
              "torch": ("t.T.contiguous().numpy()", "t.T.contiguous().cpu().numpy()"),
              "tensorflow": ("tf.transpose(t).numpy()", ""), "jax": ("np.asarray(t.T)", "")},
             _transposed, writable=True),
    _to_host("ascontiguous_t", "np.ascontiguousarray(t.T)", "np.ascontiguousarray(t.T)", False,
             "copy",
             {"NumPy": ("np.ascontiguousarray(a.T)", ""),
              "torch": ("t.T.contiguous().numpy()", "t.T.contiguous().cpu().numpy()"),
              "tensorflow": ("tf.transpose(t).numpy()", ""), "jax": ("np.asarray(t.T)", "")},
             _transposed, writable=True),
    _to_host("sliced", "[:, ::8] view → contiguous", "t[:, ::8].numpy(copy=True)", False, "copy",
             {"NumPy": ("np.ascontiguousarray(a[:, ::8])", ""),
              "torch": ("t[:, ::8].contiguous().numpy()", "t[:, ::8].contiguous().cpu().numpy()"),
              "tensorflow": ("t[:, ::8].numpy()", ""), "jax": ("np.asarray(t[:, ::8])", "")},
             _sliced, writable=True),
    _to_host("numpy_copy", "t.numpy(copy=True): new writable copy", "t.numpy(copy=True)", False,
             "copy",
             {"NumPy": ("a.copy()", ""), "torch": ("t.clone().numpy()", "t.cpu().numpy()"),
              "tensorflow": ("t.numpy()", ""), "jax": ("np.array(t)", "")},
             lambda s: s.a, writable=True),
    _to_host("array_copy", "np.array(t): new writable copy", "np.array(t)", False, "copy",
             {"NumPy": ("np.array(a)", ""), "torch": ("np.array(t)", "t.cpu().numpy()"),
              "tensorflow": ("np.array(t)", ""), "jax": ("np.array(t)", "")},
             lambda s: s.a, writable=True),
    _to_host("asarray_f64", "np.asarray(t, dtype=np.float64) of f32",
             "np.asarray(t, dtype=np.float64)", False, "copy",
             {"NumPy": ("np.asarray(a, dtype=np.float64)", ""),
              "torch": ("t.double().numpy()", "t.double().cpu().numpy()"),
              "tensorflow": ("tf.cast(t, tf.float64).numpy()", ""),
              # JAX keeps float64 off by default (jax_enable_x64): NumPy converts its array
              "jax": ("np.asarray(t, dtype=np.float64)", "")},
             _as_f64),
    _to_host("bf16_to_f32", "bf16 → f32", "np.asarray(t, dtype=np.float32)", False, "copy",
             {"NumPy": ("a.astype(np.float32)", ""),
              "torch": ("t.float().numpy()", "t.float().cpu().numpy()"),
              "tensorflow": ("tf.cast(t, tf.float32).numpy()", ""),
              "jax": ("np.asarray(t.astype(jnp.float32))", "")},
             _bf16_as_f32, dtype="bf16"),
    _from_numpy(),
]  # fmt: skip


_RUNTIME_LABEL = {"torch": "torch", "tensorflow": "TensorFlow", "jax": "JAX"}


def _asnumpy(runtime: str, name: str, title: str, stmt: str, peer_stmts: dict[str, str],
             expected: Callable[[Sources], np.ndarray[Any, Any]], *, dtype: str = "f32",
             per_call: bool = False, limit: str = "copy") -> Workload:  # fmt: skip
    """``tb.asnumpy`` of a runtime's CPU tensor (``t``) against that runtime's own ways
    (``peer_stmts``: {label: statement}), on the same tensor."""

    def env_of(src: Sources) -> dict[str, Any]:
        env = {"t": src.peer(runtime, "cpu", dtype), "tb": tb, "np": np}
        if runtime == "tensorflow":
            env["tf"] = src.peers["tensorflow"]
        if runtime == "jax":
            env["jnp"] = src.peers["jax"].numpy
        return env

    def subject(src: Sources, backend: str, device: str) -> Spec:
        return Spec("tensorbridge", f"{runtime}@cpu", "subject", stmt, env_of(src),
                    same_as(expected(src)))  # fmt: skip

    def peers(src: Sources, kind: str) -> list[Spec]:
        if kind != "cpu":
            return []
        return [Spec(label, "cpu", "peer", s, env_of(src), same_as(expected(src)))
                for label, s in peer_stmts.items()]  # fmt: skip

    return Workload(name, title, per_call, limit, subject, peers, expected, runtime=runtime)


ASNUMPY_WORKLOADS: list[Workload] = [
    _asnumpy("torch", "asnumpy_torch", "tb.asnumpy(torch CPU tensor)", "tb.asnumpy(t)",
             {"torch": "t.numpy()"}, lambda s: s.a, per_call=True, limit="view"),
    _asnumpy("tensorflow", "asnumpy_tensorflow", "tb.asnumpy(TF CPU tensor)", "tb.asnumpy(t)",
             {"TensorFlow": "t.numpy()"}, lambda s: s.a, per_call=True, limit="view"),
    _asnumpy("jax", "asnumpy_jax", "tb.asnumpy(JAX CPU array)", "tb.asnumpy(t)",
             {"JAX": "np.asarray(t)"}, lambda s: s.a, per_call=True, limit="view"),
    _asnumpy("torch", "asnumpy_bf16_torch", "tb.asnumpy(torch bf16, dtype=f32)",
             "tb.asnumpy(t, dtype=np.float32)", {"torch": "t.float().numpy()"}, _bf16_as_f32,
             dtype="bf16"),
    _asnumpy("tensorflow", "asnumpy_bf16_tensorflow", "tb.asnumpy(TF bf16, dtype=f32)",
             "tb.asnumpy(t, dtype=np.float32)",
             {"TensorFlow": "tf.cast(t, tf.float32).numpy()"}, _bf16_as_f32, dtype="bf16"),
    _asnumpy("jax", "asnumpy_bf16_jax", "tb.asnumpy(JAX bf16, dtype=f32)",
             "tb.asnumpy(t, dtype=np.float32)",
             {"JAX": "np.asarray(t.astype(jnp.float32))",
              "JAX (NumPy cast)": "np.asarray(t, dtype=np.float32)"}, _bf16_as_f32, dtype="bf16"),
    _asnumpy("torch", "asnumpy_strided_torch", "tb.asnumpy(torch t.T, order='C')",
             "tb.asnumpy(t.T, order='C')",
             {"torch": "t.T.contiguous().numpy()",
              "torch (NumPy copy)": "np.ascontiguousarray(t.T.numpy())"}, _transposed),
]  # fmt: skip


def limit_specs(w: Workload, src: Sources, kinds: set[str]) -> list[Spec]:
    """The limits of one workload at one size, for every device kind in the group."""
    out_bytes = int(w.expected(src).nbytes)
    specs: list[Spec] = []
    if "cpu" in kinds and w.protocol:
        specs.append(protocol_floor_spec(w, src, out_bytes))
    if "cpu" in kinds:
        if w.limit == "view":
            env = {"a": src.a}
            note = "floor: a new ndarray object"
            specs.append(Spec("limit", "cpu", "limit", "a.view()", env, None, note, out_bytes))
        else:
            n = out_bytes // 4
            dst, a = np.empty(n, np.float32), np.ones(n, np.float32)
            np.copyto(dst, a)  # page it in
            env = {"dst": dst, "a": a, "np": np}
            note = "host memcpy, preallocated output"
            specs.append(
                Spec("limit", "cpu", "limit", "np.copyto(dst, a)", env, None, note, out_bytes)
            )
    torch = torch_cuda(src.peers)
    if "cuda" in kinds and torch is not None:
        n = max(out_bytes // 4, 1)
        dev = torch.empty(n, dtype=torch.float32, device="cuda:0")
        host = torch.empty(n, dtype=torch.float32, pin_memory=True)
        dst, srcbuf = (dev, host) if w.name == "from_numpy" else (host, dev)
        env = {"dst": dst, "src": srcbuf, "sync": _torch_synced(torch)}
        what = "pinned H2D copy (torch)" if w.name == "from_numpy" else "pinned D2H copy (torch)"
        specs.append(Spec("limit", "cuda:0", "limit", "sync(dst.copy_(src, non_blocking=True))",
                          env, None, what, out_bytes))  # fmt: skip
    return specs


class _FinishedArray:
    """Stands for a tensor in a NumPy call as cheaply as an object that is not an ndarray can:
    ``__array__`` hands back the finished result whatever NumPy asks (``dtype``, ``copy``), and
    ``.T`` is the object itself (the result is already the transposed one)."""

    def __init__(self, result: np.ndarray[Any, Any]) -> None:
        self.result = result
        self.T = self

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray[Any, Any]:
        return self.result


def protocol_floor_spec(w: Workload, src: Sources, out_bytes: int) -> Spec:
    """NumPy's protocol floor of the subject's statement (a NumPy function applied to ``t``):
    the same statement on a :class:`_FinishedArray` of the expected result. That is NumPy's
    dispatch to a foreign object (attribute probes, the ``__array__`` call, the checks of what
    it returned) and nothing else: no copy, no cast. Any object converted through that entry
    point pays at least this; ours minus the floor is what our ``__array__`` itself costs."""
    env = {"t": _FinishedArray(w.expected(src)), "np": np}
    stmt = w.subject(src, "cpu", "cpu").stmt
    note = "NumPy's dispatch to __array__: the statement on a finished result"
    return Spec("protocol floor", "cpu", "floor", stmt, env, None, note, out_bytes)


def run_grid(
    sizes: list[int], workloads: list[Workload], peers: dict[str, ModuleType], budget: float,
    log: Log,
) -> list[Row]:  # fmt: skip
    targets = tensorbridge_targets()
    log(f"tensorbridge targets: {', '.join(f'{b}@{d}' for b, d in targets)}")
    rows: list[Row] = []
    for size in sizes:
        src = Sources(size, peers)
        for w in workloads:
            if w.runtime is not None:
                if w.runtime not in peers:
                    continue  # that runtime is not installed (or not asked for): no row
                specs = [w.subject(src, w.runtime, "cpu"), *w.peers(src, "cpu")]
                specs += limit_specs(w, src, {"cpu"})
                rows += harness.time_group(w.name, size, specs, budget, log)
                continue
            specs = [w.subject(src, b, d) for b, d in targets]
            kinds = {d.split(":")[0] for _, d in targets} | {"cpu"}
            for kind in sorted(kinds):
                specs += w.peers(src, kind)
            specs += limit_specs(w, src, kinds)
            rows += harness.time_group(w.name, size, specs, budget, log)
        del src
        harness.settle()
    return rows


# ---------------------------------------------------------------------------------------------
# command line


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(float(x)) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes: expected numbers like 4,1e4, got {text!r}")
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError("sizes must be positive")
    return sizes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--compare", nargs=2, type=Path, metavar=("OLD", "NEW"),
                   help="compare two result JSON files and exit (1 on any regression)")  # fmt: skip
    p.add_argument("--threshold", type=float, default=0.10,
                   help="--compare: flag figures slower by more than this (default 0.10)")  # fmt: skip
    p.add_argument("--vs-limit", action="store_true",
                   help="--compare: judge each figure relative to its run's limit (cancels a "
                   "machine-wide slowdown on a shared machine)")  # fmt: skip
    p.add_argument("--sizes", type=parse_sizes, help="elements, e.g. 4,1e4 (default: 4,1e4,1e6,"
                   "64e6; with --quick 4,1e4,1e6)")  # fmt: skip
    p.add_argument("--workloads", default=",".join(w.name for w in WORKLOADS + ASNUMPY_WORKLOADS),
                   help="comma-separated subset (default: all: %(default)s)")  # fmt: skip
    p.add_argument("--peers", default=",".join(PEERS),
                   help="peers to try if installed (default %(default)s; '' for none)")  # fmt: skip
    p.add_argument("--budget", type=float, help="seconds per statement (default 1, quick 0.1)")
    p.add_argument("--quick", action="store_true", help="smaller sizes and budget")
    p.add_argument("--wait-idle", type=float, default=0.0, metavar="S",
                   help="wait up to S s for other processes to use < 10%% of the CPUs")  # fmt: skip
    p.add_argument("--out-dir", type=Path, default=harness.REPO / "bench-results",
                   help="where <UTC time>.json/.md/.png go (default %(default)s)")  # fmt: skip
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")
    p.add_argument("--criterion-dir", type=Path,
                   help="also collect criterion results (target/criterion) newer than "
                   "--criterion-since into the JSON and table")  # fmt: skip
    p.add_argument("--criterion-since", type=float, default=0.0, metavar="EPOCH_S")
    args = p.parse_args(argv)

    if args.compare:
        return report.compare(
            args.compare[0], args.compare[1], args.threshold, vs_limit=args.vs_limit
        )

    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {msg}", file=sys.stderr, flush=True)

    by_name = {w.name: w for w in WORKLOADS + ASNUMPY_WORKLOADS}
    unknown = [x for x in args.workloads.split(",") if x and x not in by_name]
    if unknown:
        p.error(f"unknown workloads {unknown}; known: {', '.join(by_name)}")
    workloads = [by_name[x] for x in args.workloads.split(",") if x]
    sizes = args.sizes or list(QUICK_SIZES if args.quick else FULL_SIZES)
    budget = args.budget if args.budget is not None else (0.1 if args.quick else 1.0)

    peers = load_peers([x for x in args.peers.split(",") if x], log)
    peer_versions = {n: (peers[n].__version__ if n in peers else "not installed") for n in PEERS}
    threads: dict[str, Any] = {"tensorbridge (rayon)": os.environ.get("RAYON_NUM_THREADS",
                                                                       "default")}  # fmt: skip
    if "torch" in peers:
        threads["torch"] = peers["torch"].get_num_threads()
    facts = harness.machine_facts(peer_versions, threads)
    facts["tensorbridge_backends"] = tb.compiled_backends()
    facts["background_before"] = harness.wait_for_idle(args.wait_idle, log)
    meter = harness.LoadMeter()
    rows = run_grid(sizes, workloads, peers, budget, log)
    facts["background_during"] = meter.share()
    rust = report.collect_criterion(args.criterion_dir, args.criterion_since)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    facts["utc"] = stamp
    result = report.Result(facts, sizes, budget, time.perf_counter() - started, rows, rust,
                           {w.name: w.title for w in workloads},
                           {w.name for w in workloads if w.per_call})  # fmt: skip
    text = report.markdown(result)
    print(text)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    base = args.out_dir / stamp
    report.write_json(result, base.with_suffix(".json"))
    base.with_suffix(".md").write_text(text + "\n")
    written = [base.with_suffix(".json"), base.with_suffix(".md")]
    if not args.no_plot:
        png = report.plot(result, base.with_suffix(".png"), log)
        if png is not None:
            written.append(png)
    log("wrote " + ", ".join(str(x) for x in written))
    # Again at the end, where a long run's console ends (the report opens with it, rows listed).
    behind, counted = report.behind_best_peer(result.rows)
    log(f"{report.BEHIND_HEADLINE}: {len(behind)} of {counted}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
