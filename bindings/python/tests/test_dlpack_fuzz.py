"""Fuzzing the DLPack importer (``tb.from_dlpack``) with hand-made producer structs.

Hypothesis builds random ``DLManagedTensorVersioned`` and legacy ``DLManagedTensor`` structs with
ctypes (ndim 0..32, random shapes and strides, byte offsets, dtype codes, device types, versions,
flags, null pointers, deleters) over memory this test owns, wraps each in a PyCapsule and hands it
to ``tb.from_dlpack`` (through a producer object with ``__dlpack__``, a pre-keyword producer, or
the bare capsule). An independent model of the DLPack rules says which structs are valid:

* a valid one is accepted and equals a reference built with ``np.lib.stride_tricks.as_strided``
  over the same bytes (bool: any non-zero byte is True), held in place unless a copy is needed
  (``copy=True``, data misaligned for its dtype, bool bytes other than 0/1), or -- ``copy=False``
  when a copy is needed -- refused with ``BufferError``;
* an invalid one raises ``BufferError`` naming what is wrong, never crashes the process;
* the producer's deleter runs exactly once: at once when the import fails or copies, when the last
  view drops when it holds the memory in place.

"Never reads outside the described memory": the bytes the struct describes are placed flush
against a ``PROT_NONE`` page of an ``mmap``'d arena (below or above them), so a read past them is
a segmentation fault. Each example runs in a worker subprocess; a crash fails the example (and
Hypothesis shrinks it) instead of ending the test run.

Examples: ``TB_DLPACK_FUZZ_EXAMPLES``, else ``TB_HYPOTHESIS_EXAMPLES`` (2000 in ``make test``);
``make fuzz`` runs more.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import pickle
import re
import select
import struct
import subprocess
import sys
import traceback
from typing import Any

import numpy as np
import pytest
from hypothesis import event, given, note, settings
from hypothesis import strategies as st

# ---- the DLPack C ABI, declared independently of the extension ---------------------------------


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", DLDataType),
        ("shape", ctypes.c_void_p),
        ("strides", ctypes.c_void_p),
        ("byte_offset", ctypes.c_uint64),
    ]


class DLManagedTensorVersioned(ctypes.Structure):
    _fields_ = [
        ("major", ctypes.c_uint32),
        ("minor", ctypes.c_uint32),
        ("manager_ctx", ctypes.c_void_p),
        ("deleter", ctypes.c_void_p),
        ("flags", ctypes.c_uint64),
        ("dl_tensor", DLTensor),
    ]


class DLManagedTensor(ctypes.Structure):
    _fields_ = [
        ("dl_tensor", DLTensor),
        ("manager_ctx", ctypes.c_void_p),
        ("deleter", ctypes.c_void_p),
    ]


DELETER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
CAPSULE_DESTRUCTOR = ctypes.CFUNCTYPE(None, ctypes.c_void_p)

# A handle of our own, so these argtypes do not leak into other tests' use of ctypes.pythonapi.
_py = ctypes.PyDLL(None)
_capsule_new = _py.PyCapsule_New
_capsule_new.restype = ctypes.py_object
_capsule_new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
_capsule_name_of_ptr = _py.PyCapsule_GetName
_capsule_name_of_ptr.restype = ctypes.c_char_p
_capsule_name_of_ptr.argtypes = [ctypes.c_void_p]
_capsule_pointer_of_ptr = _py.PyCapsule_GetPointer
_capsule_pointer_of_ptr.restype = ctypes.c_void_p
_capsule_pointer_of_ptr.argtypes = [ctypes.c_void_p, ctypes.c_char_p]

VERSIONED, LEGACY = b"dltensor_versioned", b"dltensor"
KDL_CPU, KDL_CUDA, KDL_CUDA_HOST, KDL_CUDA_MANAGED = 1, 2, 3, 13
READ_ONLY, IS_COPIED = 1, 2
ISIZE_MAX, U64 = 2**63 - 1, 2**64

# (code, bits) -> NumPy dtype of the elements tensorbridge reads (lanes must be 1).
SUPPORTED: dict[tuple[int, int], str] = {
    (6, 8): "bool",
    (1, 8): "uint8",
    (1, 16): "uint16",
    (1, 32): "uint32",
    (1, 64): "uint64",
    (0, 8): "int8",
    (0, 16): "int16",
    (0, 32): "int32",
    (0, 64): "int64",
    (2, 16): "float16",
    (2, 32): "float32",
    (2, 64): "float64",
    (4, 16): "bfloat16",
}

# ---- the memory: an arena between two PROT_NONE pages --------------------------------------------

PAGE = mmap.PAGESIZE
PROT_NONE = 0  # <sys/mman.h>
ARENA_PAGES = 16
ARENA_BYTES = ARENA_PAGES * PAGE
MAX_ELEMENTS = 4096  # elements a valid example's view may have (checked element by element)


class Arena:
    """``ARENA_BYTES`` of read/write memory with an inaccessible page right below and above."""

    def __init__(self) -> None:
        self.map = mmap.mmap(-1, (ARENA_PAGES + 2) * PAGE)
        self.base = ctypes.addressof(ctypes.c_char.from_buffer(self.map))
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        for page in (self.base, self.base + (ARENA_PAGES + 1) * PAGE):
            if libc.mprotect(page, PAGE, PROT_NONE) != 0:
                raise OSError(ctypes.get_errno(), "mprotect")
        self.lo = self.base + PAGE
        self.hi = self.lo + ARENA_BYTES
        self.bytes = np.ctypeslib.as_array((ctypes.c_uint8 * ARENA_BYTES).from_address(self.lo))


# ---- the model: what a case describes and whether it is valid -------------------------------------


def c_strides(shape: list[int]) -> list[int]:
    out, acc = [0] * len(shape), 1
    for i in range(len(shape) - 1, -1, -1):
        out[i] = acc
        acc *= max(shape[i], 1)
    return out


def span(shape: list[int], strides: list[int]) -> tuple[int, int]:
    """(lowest, highest) element offset from element 0 a non-empty view reaches (exact ints)."""
    lo = sum(s * (d - 1) for d, s in zip(shape, strides) if s < 0)
    hi = sum(s * (d - 1) for d, s in zip(shape, strides) if s > 0)
    return lo, hi


def layout(case: dict[str, Any]) -> tuple[list[int], list[int]]:
    shape = case["shape"]
    strides = case["strides"] if case["strides"] is not None else c_strides(shape)
    return shape, strides


def needs_copy(case: dict[str, Any], arena_bytes: np.ndarray[Any, Any] | None) -> bool:
    """Whether a valid, non-empty host import must copy: misaligned data or stray bool bytes
    anywhere in the view's memory from its lowest to its highest element."""
    item = case["bits"] // 8
    shape, strides = layout(case)
    lo, hi = span(shape, strides)
    start = case["data"] + case["byte_offset"] + lo * item
    if start % item:
        return True
    if SUPPORTED[(case["code"], case["bits"])] == "bool" and arena_bytes is not None:
        region = arena_bytes[start - case["arena_lo"] : start - case["arena_lo"] + hi - lo + 1]
        return bool(np.any(region > 1))
    return False


def verdict(case: dict[str, Any]) -> tuple[str, str]:
    """("ok", "") or ("error", regex of the message): the DLPack rules, written independently of
    the importer. Checked in the importer's order, so that the message names the first failure."""
    if case["versioned"] and case["major"] != 1:
        return "error", r"version \d+\.\d+ is not supported"
    if case["lanes"] != 1 or (case["code"], case["bits"]) not in SUPPORTED:
        return "error", r"dtype \(code \d+, bits \d+, lanes \d+\) is not supported"
    if case["ndim"] < 0:
        return "error", r"ndim -\d+"
    shape = case["shape"]
    if case["ndim"] > 0 and shape is None:
        return "error", "null shape"
    if any(d < 0 for d in shape):
        return "error", r"has shape \["
    item = case["bits"] // 8
    nonzero = int(np.prod([d for d in shape if d], dtype=object)) if shape else 1
    if nonzero * item > ISIZE_MAX:
        # NumPy's rule: the non-zero dimensions' product, in bytes, fits in a signed pointer.
        return "error", "overflows"
    n = 0 if 0 in shape else nonzero
    if n and case["data"] == 0:
        return "error", "null data pointer"
    if n:
        _, strides = layout(case)
        lo, hi = span(shape, strides)
        start = case["data"] + case["byte_offset"]
        if (
            lo < -ISIZE_MAX - 1
            or hi > ISIZE_MAX
            or hi - lo + 1 > ISIZE_MAX
            or (hi - lo + 1) * item > ISIZE_MAX
            or lo * item < -ISIZE_MAX - 1
            or start >= U64
            or start + lo * item < 0
            or start + (hi + 1) * item >= U64
        ):
            return "error", "address space"
    if case["device_type"] not in (KDL_CPU, KDL_CUDA_HOST):
        return "error", "device|cuda"
    if case["copy"] is False and n and needs_copy(case, fill(case)):
        return "error", "copy=False"
    return "ok", ""


# ---- the strategy --------------------------------------------------------------------------------

INVALID_KINDS = [
    "version",
    "dtype",
    "ndim",
    "null_shape",
    "negative_dim",
    "too_big",
    "reach",
    "bytes_reach",
    "address_wrap",
    "null_data",
    "device",
]


def dims(draw: st.DrawFn, ndim: int) -> list[int]:
    """Mostly 1s and small sides, at most MAX_ELEMENTS elements; one in eight shapes empty."""
    shape, n = [], 1
    for _ in range(ndim):
        d = draw(st.sampled_from([1, 1, 1, 2, 3, 5]) if ndim > 4 else st.integers(1, 6))
        if n * d > MAX_ELEMENTS:
            d = 1
        n *= d
        shape.append(d)
    if shape and draw(st.integers(0, 7)) == 0:
        shape[draw(st.integers(0, ndim - 1))] = 0
    return shape


@st.composite
def cases(draw: st.DrawFn, has_cuda_device: bool) -> dict[str, Any]:
    kind = draw(st.sampled_from(["valid"] * len(INVALID_KINDS) + INVALID_KINDS))
    versioned = draw(st.booleans())
    code, bits = draw(st.sampled_from(sorted(SUPPORTED)))
    item = bits // 8
    ndim = draw(st.integers(0, 32) | st.integers(0, 3))
    shape = dims(draw, ndim)
    strides: list[int] | None
    if ndim and draw(st.booleans()):
        strides = None
    else:
        strides = []
        for d in shape:
            if d <= 1:  # never stepped: any stride, huge ones included
                strides.append(draw(st.integers(-(2**63), 2**63 - 1) | st.integers(-9, 9)))
            else:
                strides.append(draw(st.integers(-9, 9)))
    case: dict[str, Any] = {
        "kind": kind,
        "versioned": versioned,
        "major": 1,
        "minor": draw(st.integers(0, 2**32 - 1) | st.just(3)),
        "flags": draw(st.sampled_from([0, READ_ONLY, IS_COPIED, READ_ONLY | IS_COPIED]))
        | draw(st.sampled_from([0, 0, 1 << 7, 1 << 63])),
        "code": code,
        "bits": bits,
        "lanes": 1,
        "ndim": ndim,
        "shape": shape,
        "strides": strides,
        "device_type": draw(st.sampled_from([KDL_CPU, KDL_CPU, KDL_CPU, KDL_CUDA_HOST])),
        "device_id": draw(st.sampled_from([0, 0, 1, -1])),
        "copy": draw(st.sampled_from([None, None, True, False])),
        "producer": draw(st.sampled_from(["keywords", "keywords", "pre-keyword", "capsule"])),
        "null_deleter": draw(st.integers(0, 9)) == 0,
        "fill": draw(st.sampled_from(["random", "bits01"])),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }
    # Place the bytes the view reaches flush against the guard page below or above them.
    sh, sd = layout(case)
    n = int(np.prod(sh, dtype=object)) if sh else 1
    lo, hi = span(sh, sd) if n else (0, 0)
    nbytes = (hi - lo + 1) * item if n else 0
    if nbytes > ARENA_BYTES - item:
        case["strides"] = None if ndim else strides
        sh, sd = layout(case)
        lo, hi = span(sh, sd)
        nbytes = (hi - lo + 1) * item
    case["place"] = draw(st.sampled_from(["below", "above"]))
    case["misalign"] = draw(st.sampled_from([0, 0, 0, 1, item - 1, item // 2]))
    case["lo_hi"] = (lo, hi)
    case["data"] = 0
    case["byte_offset"] = draw(st.sampled_from([0, 0, 64, 4096, 12345]))
    if n or draw(st.booleans()):
        case["data"] = -1  # filled in from the arena's address by the worker
    invalid_fields(draw, case, kind, has_cuda_device)
    return case


def invalid_fields(draw: st.DrawFn, case: dict[str, Any], kind: str, has_cuda: bool) -> None:
    """Makes one field of a valid case invalid (and keeps the memory it describes ours)."""
    item = case["bits"] // 8
    if kind == "version":
        case["versioned"] = True
        case["major"] = draw(st.sampled_from([0, 2, 3, 2**32 - 1]) | st.integers(2, 2**32 - 1))
    elif kind == "dtype":
        code = draw(st.integers(0, 255) | st.sampled_from([0, 1, 2, 4, 5, 6, 7]))
        bits = draw(st.integers(0, 255) | st.sampled_from([1, 4, 8, 16, 32, 64, 128]))
        lanes = draw(st.integers(0, 2**16 - 1) | st.sampled_from([0, 1, 1, 1, 2, 4]))
        if lanes == 1 and (code, bits) in SUPPORTED:
            lanes = 2
        case.update(code=code, bits=bits, lanes=lanes)
    elif kind == "ndim":
        case["ndim"] = draw(st.integers(-(2**31), -1))
    elif kind == "null_shape":
        case["ndim"] = max(case["ndim"], 1)
        case["shape"] = None
    elif kind == "negative_dim":
        shape = case["shape"] or [1]
        shape[draw(st.integers(0, len(shape) - 1))] = draw(st.integers(-(2**63), -1))
        case.update(shape=shape, ndim=len(shape), strides=None)
    elif kind == "too_big":
        # The non-zero sides' product in bytes passes isize::MAX (maybe with a zero side too).
        huge = draw(st.lists(st.integers(2, 2**63 - 1), min_size=2, max_size=4))
        if int(np.prod(huge, dtype=object)) * item <= ISIZE_MAX:
            huge[0] = 2**63 - 1
        shape = list(draw(st.permutations(huge + ([0] if draw(st.booleans()) else []))))
        case.update(shape=shape, ndim=len(shape), strides=None)
    elif kind == "reach":
        # Elements two or more apart whose distance overflows an isize.
        s = draw(st.integers(2**62, 2**63 - 1))
        d = draw(st.integers(3, 5))
        case.update(shape=[d], ndim=1, strides=[s if draw(st.booleans()) else -s])
    elif kind == "bytes_reach":
        # Distance in elements fits an isize, in bytes it does not (items of 2+ bytes).
        case.update(code=1, bits=64)
        s = draw(st.integers(2**60 + 1, 2**62))
        case.update(shape=[2], ndim=1, strides=[s if draw(st.booleans()) else -s])
    elif kind == "address_wrap":
        case["data"] = draw(st.integers(U64 - 4096, U64 - 1))
        case["byte_offset"] = draw(st.integers(U64 - case["data"], U64 - 1))
        if draw(st.booleans()):  # or: the lowest element below address 0
            case["data"], case["byte_offset"] = -1, 0
            case.update(shape=[2], ndim=1, strides=[-draw(st.integers(2**57, 2**60)) // item])
        case["shape"] = [max(d, 1) for d in case["shape"]]
    elif kind == "null_data":
        case["shape"] = [max(d, 1) for d in case["shape"]]
        case["data"] = 0
    elif kind == "device":
        held = {KDL_CPU, KDL_CUDA_HOST} | ({KDL_CUDA, KDL_CUDA_MANAGED} if has_cuda else set())
        t = draw(st.integers(0, 2**31 - 1) | st.sampled_from([0, 2, 4, 7, 8, 9, 10, 13, 14, 17]))
        case["device_type"] = 4 if t in held else t
        case["device_id"] = draw(st.sampled_from([0, 1, -1]))
        if has_cuda and case["device_type"] in (KDL_CUDA, KDL_CUDA_MANAGED):
            case["device_id"] = -1  # a CUDA device that cannot exist


# ---- the worker: runs cases in its own process ---------------------------------------------------


class Producer:
    def __init__(self, capsule: Any, device: tuple[int, int]) -> None:
        self.capsule, self.device, self.calls = capsule, device, []

    def __dlpack__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        return self.capsule

    def __dlpack_device__(self) -> tuple[int, int]:
        return self.device


class PreKeywordProducer(Producer):
    def __dlpack__(self, stream: Any = None) -> Any:  # type: ignore[override]
        self.calls.append({"stream": stream})
        return self.capsule


@CAPSULE_DESTRUCTOR
def _capsule_destructor(capsule: int) -> None:
    """NumPy's convention: an unconsumed capsule calls the deleter of the tensor it holds."""
    name = _capsule_name_of_ptr(capsule)
    if name in (VERSIONED, LEGACY):
        addr = _capsule_pointer_of_ptr(capsule, name)
        kind = DLManagedTensorVersioned if name == VERSIONED else DLManagedTensor
        deleter = kind.from_address(addr).deleter
        if deleter:
            DELETER(deleter)(addr)


def resolve(case: dict[str, Any], arena_lo: int) -> dict[str, Any]:
    """Fills in the data pointer (-1 in a drawn case): element 0 placed so that the bytes the
    view reaches lie flush against a guard page (below: from the arena's start plus `misalign`;
    above: ending at the arena's end)."""
    case = dict(case, arena_lo=arena_lo)
    if case["data"] != -1:
        return case
    item = max(case["bits"] // 8, 1)
    if case["kind"] == "address_wrap":  # element 0 at the arena's start, the lowest below 0
        case["data"] = arena_lo
        return case
    lo, hi = case["lo_hi"]
    if case["place"] == "above" and not case["misalign"]:
        start = arena_lo + ARENA_BYTES - (hi - lo + 1) * item
    else:
        start = arena_lo + case["misalign"]
    first = start - lo * item
    case["data"] = first - min(case["byte_offset"], first)
    case["byte_offset"] = first - case["data"]
    return case


def fill(case: dict[str, Any]) -> np.ndarray[Any, Any]:
    """The arena's bytes for a case."""
    rng = np.random.default_rng(case["seed"])
    high = 2 if case["fill"] == "bits01" else 256
    return rng.integers(0, high, ARENA_BYTES, dtype=np.uint8)


def reference(case: dict[str, Any], arena_bytes: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The view a valid non-empty struct describes, read from the arena's bytes with
    ``as_strided``, as unsigned ints of the item's size (bool: 0/1)."""
    item = case["bits"] // 8
    shape, strides = layout(case)
    strides = [s if d > 1 else 0 for d, s in zip(shape, strides)]  # a side of 1 is never stepped
    raw = arena_bytes[case["data"] + case["byte_offset"] - case["arena_lo"] :]
    units = np.lib.stride_tricks.as_strided(
        raw, shape=(*shape, item), strides=(*(s * item for s in strides), 1)
    )
    out = np.ascontiguousarray(units)
    if SUPPORTED[(case["code"], case["bits"])] == "bool":
        return (out[..., 0] != 0).astype(np.uint8)
    return out.view(f"<u{item}")[..., 0]


def run_case(case: dict[str, Any], arena: Arena, tb: Any) -> dict[str, Any]:
    """Builds the struct and its capsule over the arena, imports it, and reports what happened."""
    arena.bytes[:] = fill(case)
    deleted = [0]

    def on_delete(_: int) -> None:
        deleted[0] += 1

    deleter = DELETER(on_delete)
    ndim = case["ndim"]
    shape = None
    if case["shape"] is not None:
        shape = (ctypes.c_int64 * max(len(case["shape"]), 1))(*case["shape"])
    strides = None
    if case["strides"] is not None and ndim > 0:
        strides = (ctypes.c_int64 * ndim)(*case["strides"])
    dl = DLTensor(
        data=case["data"] or None,
        device=DLDevice(case["device_type"], case["device_id"]),
        ndim=ndim,
        dtype=DLDataType(case["code"], case["bits"], case["lanes"]),
        shape=ctypes.addressof(shape) if shape is not None else None,
        strides=ctypes.addressof(strides) if strides is not None else None,
        byte_offset=case["byte_offset"],
    )
    del_ptr = None if case["null_deleter"] else ctypes.cast(deleter, ctypes.c_void_p).value
    m: ctypes.Structure
    if case["versioned"]:
        m = DLManagedTensorVersioned(
            major=case["major"], minor=case["minor"], deleter=del_ptr, flags=case["flags"]
        )
        m.dl_tensor = dl
        name = VERSIONED
    else:
        m = DLManagedTensor(dl_tensor=dl, deleter=del_ptr)
        name = LEGACY
    destructor = ctypes.cast(_capsule_destructor, ctypes.c_void_p).value
    capsule = _capsule_new(ctypes.addressof(m), name, destructor)
    device = (case["device_type"], case["device_id"])
    producer = {"keywords": Producer, "pre-keyword": PreKeywordProducer}.get(case["producer"])
    x = producer(capsule, device) if producer else capsule
    out: dict[str, Any] = {}
    kwargs = {} if case["copy"] is None else {"copy": case["copy"]}
    try:
        t = tb.from_dlpack(x, **kwargs)
    except Exception as e:  # noqa: BLE001 (the parent checks the class)
        out["error"] = (type(e).__name__, str(e))
        t = None
    out["consumed"] = _capsule_name_of_ptr(id(capsule)) == b"used_" + name
    out["deleted_after_call"] = deleted[0]
    out["calls"] = getattr(x, "calls", None)
    if t is not None:
        out["shape"], out["dtype"] = tuple(t.shape), t.dtype.name
        if case["check_values"]:
            a = t.numpy()
            out["ptr"] = a.__array_interface__["data"][0] if a.size else None
            item = case["bits"] // 8
            got = a.view(np.uint8) if a.dtype == np.bool_ else a.view(f"<u{item}")
            if a.size:
                want = reference(case, arena.bytes)
                out["values_equal"] = got.shape == want.shape and np.array_equal(got, want)
            else:
                out["values_equal"] = a.shape == tuple(case["shape"])
            del a, got
        del t  # no cycles: reference counting releases it (gc.collect() costs ~30 ms here)
        out["deleted_after_drop"] = deleted[0]
    del x, capsule
    out["deleted_final"] = deleted[0]
    return out


def worker_main() -> None:
    """Announces its arena's address, then reads pickled cases from stdin and answers with
    pickled outcomes on the original stdout (anything else printed goes to stderr)."""
    import tensorbridge as tb

    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    arena = Arena()
    channel.write(struct.pack("<Q", arena.lo))
    channel.flush()
    stdin = sys.stdin.buffer
    while header := stdin.read(8):
        (size,) = struct.unpack("<Q", header)
        case = pickle.loads(stdin.read(size))
        try:
            outcome = run_case(case, arena, tb)
        except Exception:  # noqa: BLE001 (a bug of this test: the parent shows it)
            outcome = {"worker_error": traceback.format_exc()}
        body = pickle.dumps(outcome)
        channel.write(struct.pack("<Q", len(body)) + body)
        channel.flush()


class Worker:
    """The worker process, started again after a crash or a hang."""

    TIMEOUT = 60.0

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.arena_lo = 0

    def start(self) -> int:
        """Starts the worker when none runs; its arena's address."""
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            (self.arena_lo,) = struct.unpack("<Q", self._read(8))
        return self.arena_lo

    def run(self, case: dict[str, Any]) -> dict[str, Any]:
        proc = self.proc
        assert proc is not None and proc.stdin is not None
        body = pickle.dumps(case)
        try:
            proc.stdin.write(struct.pack("<Q", len(body)) + body)
            proc.stdin.flush()
        except BrokenPipeError:
            pass  # it died: _read says how
        (size,) = struct.unpack("<Q", self._read(8))
        outcome: dict[str, Any] = pickle.loads(self._read(size))
        return outcome

    def _read(self, n: int) -> bytes:
        proc = self.proc
        assert proc is not None and proc.stdout is not None
        fd, chunks, got = proc.stdout.fileno(), [], 0
        while got < n:
            ready, _, _ = select.select([fd], [], [], self.TIMEOUT)
            chunk = os.read(fd, n - got) if ready else b""
            if not chunk:
                if not ready:
                    proc.kill()
                rc = proc.wait()
                self.proc = None
                why = f"killed by signal {-rc}" if rc < 0 else f"exit status {rc}"
                raise AssertionError(f"the importing process died ({why}) or hung on this case")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


# ---- the test ------------------------------------------------------------------------------------


def _in_hypothesis() -> bool:
    from hypothesis.control import _current_build_context

    return _current_build_context.value is not None


def _note(text: str) -> None:
    """Hypothesis's note inside a Hypothesis test; nothing for the plain regression examples."""
    if _in_hypothesis():
        note(text)


def _event(text: str) -> None:
    if _in_hypothesis():
        event(text)


def check(drawn: dict[str, Any]) -> None:
    case = resolve(drawn, WORKER.start())
    status, message = verdict(case)
    case["check_values"] = status == "ok"
    _note(f"case: {case}")
    _note(f"model: {status} {message!r}")
    out = WORKER.run(case)
    assert "worker_error" not in out, out.get("worker_error")
    _note(f"outcome: {out}")
    once = 0 if case["null_deleter"] else 1
    # The deleter runs exactly once in the end (never, when the producer gave none).
    assert out["deleted_final"] == once, "the deleter did not run exactly once"
    _event(f"{status}: {message or case['kind']}")
    if status == "error":
        assert "error" in out, f"accepted an invalid struct (the model: {message})"
        cls, msg = out["error"]
        if case["device_type"] in (KDL_CUDA, KDL_CUDA_MANAGED) and not CUDA_BACKENDS:
            assert cls in ("BufferError", "RuntimeError"), out["error"]
        else:
            assert cls == "BufferError", out["error"]
        assert re.search(message, msg), f"{msg!r} does not say {message!r}"
        # A failed import either left the capsule (and deleter) to its destructor, or consumed
        # it and released the producer's memory before raising.
        assert out["deleted_after_call"] == (once if out["consumed"] else 0)
        return
    assert "error" not in out, f"refused a valid struct: {out['error']}"
    assert out["consumed"], "the capsule was not renamed used_..."
    assert out["shape"] == tuple(case["shape"])
    assert out["dtype"] == SUPPORTED[(case["code"], case["bits"])]
    assert out["values_equal"], "the values differ from the as_strided reference"
    empty = 0 in case["shape"]
    # copy=True copies, unless the producer says its tensor is a copy already (IS_COPIED).
    copies = case["copy"] is True and not (case["versioned"] and case["flags"] & IS_COPIED)
    if not empty and not copies and not needs_copy(case, fill(case)):
        _event("held in place")
        assert out["ptr"] == case["data"] + case["byte_offset"], "not held in place"
        assert out["deleted_after_call"] == 0, "released while a view holds the memory"
        assert out["deleted_after_drop"] == once
    else:
        _event("empty" if empty else "copied")
        lo = case["arena_lo"]
        assert out["ptr"] is None or not lo <= out["ptr"] < lo + ARENA_BYTES, "not a copy"
        assert out["deleted_after_call"] == once, "a copy must release the producer at once"
    if case["producer"] == "keywords":
        (call,) = out["calls"]
        want = {"max_version": (1, 1)} | ({} if case["copy"] is None else {"copy": case["copy"]})
        assert call == want, call


if __name__ == "__main__":
    worker_main()
else:
    import tensorbridge as tb

    def _has_cuda_device() -> bool:
        try:
            tb.zeros((1,), device="cuda:0")
        except RuntimeError:
            return False
        return True

    # Only when no CUDA device is visible may a struct claim CUDA memory over host memory (it is
    # refused then); with one, the importer would hand our host pointer to CUDA.
    HAS_CUDA_DEVICE = _has_cuda_device()
    CUDA_BACKENDS = any("cuda:N" in v["devices"] for v in tb.backend_info().values())
    EXAMPLES = int(
        os.environ.get("TB_DLPACK_FUZZ_EXAMPLES", os.environ.get("TB_HYPOTHESIS_EXAMPLES", "200"))
    )
    WORKER = Worker()

    @pytest.fixture(scope="module", autouse=True)
    def _close_worker() -> Any:
        yield
        WORKER.close()

    @settings(max_examples=EXAMPLES, deadline=None)
    @given(cases(HAS_CUDA_DEVICE))
    def test_dlpack_importer_accepts_exactly_the_valid_structs(case: dict[str, Any]) -> None:
        check(case)

    # ---- regressions: what the fuzz found ------------------------------------------------------

    def case_of(**fields: Any) -> dict[str, Any]:
        """A valid one-dimensional uint8 case over the arena, with `fields` changed."""
        case: dict[str, Any] = {
            "kind": "regression",
            "versioned": True,
            "major": 1,
            "minor": 1,
            "flags": 0,
            "code": 1,
            "bits": 8,
            "lanes": 1,
            "ndim": 1,
            "shape": [4],
            "strides": None,
            "device_type": KDL_CPU,
            "device_id": 0,
            "copy": None,
            "producer": "keywords",
            "null_deleter": False,
            "fill": "random",
            "seed": 0,
            "place": "below",
            "misalign": 0,
            "data": -1,
            "byte_offset": 0,
        }
        case.update(fields)
        case["ndim"] = len(case["shape"])
        case["lo_hi"] = (0, 0)
        return case

    @pytest.mark.parametrize(
        "case",
        [
            # 2 uint64 elements 2**60 + 1 apart: the distance fits an isize in elements, not in
            # bytes. Was accepted; copy=True then read the second element at a wrapped address
            # (SIGSEGV).
            case_of(bits=64, shape=[2], strides=[-(2**60) - 1], copy=True),
            case_of(bits=64, shape=[2], strides=[2**61], copy=None),
            # data + byte_offset wraps around the address space (to address 8): was accepted, and
            # a bool view read address 8 (SIGSEGV).
            case_of(code=6, data=2**64 - 8, byte_offset=16),
            # 2**62 elements of 8 bytes: the element count fits a usize, the bytes do not.
            case_of(bits=64, shape=[2**61, 2]),
            # A zero side after two huge ones: was accepted ([0, ...]) or refused ([..., 0])
            # depending on the order; NumPy refuses both.
            case_of(shape=[0, 2**40, 2**40]),
            # Strides whose reach overflows: was ValueError after consuming the capsule; now
            # BufferError before, like every other malformed struct.
            case_of(shape=[3], strides=[-(2**62)]),
        ],
        ids=[
            "bytes-reach-copy",
            "bytes-reach",
            "address-wraps",
            "bytes-overflow",
            "zero-side-first",
            "reach-overflow",
        ],
    )
    def test_importer_regression(case: dict[str, Any]) -> None:
        check(case)
