"""The contract matrix: every compiled backend x every entry point, each case checked against
NumPy's answer (its value, or the type of the exception NumPy raises).

Backends come from ``tb.compiled_backends()``, so a backend compiled in later is covered without
a line here. Entry points: ``tb.tensor``, ``tb.from_numpy``, ``tb.from_dlpack``, ``tb.from_torch``
(torch builds), ``tb.lazy`` (lazy backends), the buffer protocol and ``__array__`` inputs, and
operators and ``tb.*`` functions with foreign operands. A case that cannot apply to a backend (a
dtype it lacks) is an asserted ``TypeError``, never a skip.

Sections (delimited below so each part of the contract can grow on its own):

1. bool data is NumPy bool (any non-zero byte is True, on every ingress);
2. integers are exact (creation from Python ints, Python ints of any size as operands, NEP 50);
3. NumPy scalars and array-likes are operands on every backend (NEP 50: NumPy scalars strong);
4. ``copy=False`` never copies; ``numpy(out=)`` follows ``np.copyto``'s casting rule;
5. ``tb.tensor`` of a Tensor copies;
6. shape arithmetic never wraps; casts and constructors give NumPy's bits;
7. properties (hypothesis): bools of arbitrary bytes, ints at every dtype's edges, NumPy scalars;
8. indexing, object protocols, pandas (cases to come).
"""

from __future__ import annotations

import math
import operator
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy_reference import ALL_DTYPES, BFLOAT16, INT_DTYPES, dtype_id, is_float

import tensorbridge as tb

BACKENDS = tb.compiled_backends()
HAS_TORCH = "torch" in BACKENDS
LAZY_BACKENDS = [b for b in BACKENDS if tb.backend_info()[b]["lazy"]]

# ---- the matrix's vocabulary ---------------------------------------------------------------------

# dtypes a backend cannot hold, by the eager backend it is or wraps (`lazy:candle` and
# `counted:candle` hold what `candle` holds). Every other backend holds all 13.
_LACKS = {"candle": {"int8", "uint16", "uint64"}}


def _base(backend: str) -> str:
    """The eager backend a backend name is or wraps: ``lazy:cpu`` -> ``cpu``."""
    return backend.split(":")[-1]


def lacks(backend: str, *dtypes: Any) -> bool:
    """True when ``backend`` cannot hold one of ``dtypes``."""
    return any(str(np.dtype(d)) in _LACKS.get(_base(backend), set()) for d in dtypes)


class ArrayLike:
    """Anything with ``__array__`` (pandas, xarray, PIL, ... objects look like this to NumPy)."""

    def __init__(self, a: np.ndarray[Any, Any]) -> None:
        self._a = a

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray[Any, Any]:
        return self._a if dtype is None else self._a.astype(dtype)


def _torch_of(a: np.ndarray[Any, Any]) -> Any:
    """A torch tensor over ``a``'s memory (bfloat16 through its bits)."""
    import torch

    if a.dtype == BFLOAT16:
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


# Every way an ndarray becomes a tensor on a given backend.
ENTRIES: dict[str, Callable[[np.ndarray[Any, Any], str], tb.Tensor]] = {
    "tb.tensor": lambda a, b: tb.tensor(a, backend=b),
    "tb.from_numpy": lambda a, b: tb.from_numpy(a).to(backend=b),
    "tb.from_dlpack": lambda a, b: tb.from_dlpack(a, backend=b),
    "buffer": lambda a, b: tb.tensor(memoryview(a), backend=b),
    "__array__": lambda a, b: tb.tensor(ArrayLike(a), backend=b),
    "tb.lazy": lambda a, b: tb.lazy(a, backend=_base(b)),
}
if HAS_TORCH:
    ENTRIES["tb.from_torch"] = lambda a, b: tb.from_torch(_torch_of(a)).to(backend=b)


def entry_applies(entry: str, backend: str, dtype: Any = None) -> bool:
    """``tb.lazy`` makes lazy tensors only; bfloat16 has no buffer-protocol format, and NumPy
    exports no bfloat16 through DLPack."""
    if entry == "tb.lazy":
        return backend in LAZY_BACKENDS
    if entry in ("buffer", "tb.from_dlpack"):
        return dtype is None or np.dtype(dtype) != BFLOAT16
    return True


def make(a: np.ndarray[Any, Any], backend: str, entry: str) -> tb.Tensor:
    """``a`` on ``backend`` through ``entry`` (``tb.tensor`` where ``entry`` cannot make it)."""
    if not entry_applies(entry, backend, a.dtype):
        entry = "tb.tensor"
    return ENTRIES[entry](a, backend)


def backend_entry_params(dtype: Any = None) -> list[Any]:
    return [
        pytest.param(b, e, id=f"{b}-{e}")
        for b in BACKENDS
        for e in ENTRIES
        if entry_applies(e, b, dtype)
    ]


def _builtin_base(exc: type[BaseException]) -> type[BaseException]:
    """The nearest built-in exception class of NumPy's exception (``AxisError`` -> ValueError,
    ``DTypePromotionError`` -> TypeError): the type tensorbridge must raise."""
    return next(c for c in exc.__mro__ if c.__module__ == "builtins")


def outcome(f: Callable[[], Any]) -> tuple[str, Any, str]:
    """``("value", ndarray, backend)`` or ``("raises", exception type, message)``; NumPy's
    warnings (overflow in a cast) are not part of the contract."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            r = f()
            backend = r.backend if isinstance(r, tb.Tensor) else "numpy"
            value = np.asarray(r)  # a lazy tensor computes (and may raise) here
        except Exception as e:  # noqa: BLE001 (the exception type is the result)
            return ("raises", type(e), str(e))
        return ("value", value, backend)


def same_values(got: np.ndarray[Any, Any], want: np.ndarray[Any, Any]) -> bool:
    """Same dtype, shape and values (NaN equal to NaN; the sign of zero counts)."""
    if got.dtype != want.dtype or got.shape != want.shape:
        return False
    if is_float(want.dtype):
        g, w = got.astype(np.float64), want.astype(np.float64)
        return bool(
            np.array_equal(g, w, equal_nan=True) and np.array_equal(np.signbit(g), np.signbit(w))
        )
    return bool(np.array_equal(got, want))


def mismatch(
    got_f: Callable[[], Any],
    want_f: Callable[[], Any],
    backend: str,
    dtypes: tuple[Any, ...] = (),
) -> str | None:
    """None when tensorbridge answers as NumPy does, else what differs. Where ``backend`` lacks
    one of ``dtypes`` the answer must be a TypeError naming that dtype."""
    got = outcome(got_f)
    want = outcome(want_f)
    if lacks(backend, *dtypes):
        missing = [str(np.dtype(d)) for d in dtypes if lacks(backend, d)]
        if got[0] == "raises" and issubclass(got[1], TypeError) and missing[0] in got[2]:
            return None
        if want[0] == "raises" and got[0] == "raises" and issubclass(got[1], want[1]):
            return None  # NumPy's own error on the input comes first: as good
        return f"{backend} lacks {missing}: want a TypeError naming it, got {got[:2]}"
    if want[0] == "raises":
        base = _builtin_base(want[1])
        if got[0] == "raises" and issubclass(got[1], base):
            return None
        return f"NumPy raises {want[1].__name__} ({want[2]}); got {got}"
    if got[0] == "raises":
        return f"NumPy gives {want[1]!r}; got {got[1].__name__}: {got[2]}"
    if got[2] != backend:
        return f"result on {got[2]}, want {backend}"
    if not same_values(got[1], want[1]):
        return f"got {got[1]!r}, NumPy {want[1]!r}"
    return None


def assert_like_numpy(
    cases: list[tuple[str, Callable[[], Any], Callable[[], Any], tuple[Any, ...]]],
    backend: str,
) -> None:
    """Runs every case and reports all that differ from NumPy at once."""
    bad = []
    for name, got_f, want_f, dtypes in cases:
        why = mismatch(got_f, want_f, backend, dtypes)
        if why is not None:
            bad.append(f"{name}: {why}")
    assert not bad, (
        f"{len(bad)} of {len(cases)} cases differ from NumPy on {backend}:\n" + "\n".join(bad)
    )


def test_each_backend_holds_exactly_the_dtypes_the_matrix_expects() -> None:
    # The dtype gaps above are facts about the backends, checked here, so a backend that gains
    # or loses a dtype changes this table and not silently the matrix.
    for b in BACKENDS:
        for d in ALL_DTYPES:
            if lacks(b, d):
                with pytest.raises(TypeError, match=str(d)):
                    tb.zeros(2, dtype=d, backend=b)
            else:
                assert tb.zeros(2, dtype=d, backend=b).dtype == d


# ==== 1. bool data is NumPy bool ==================================================================


def _stray_bools(layout: str) -> np.ndarray[Any, Any]:
    """bool arrays whose bytes are not all 0/1 (NumPy reads any non-zero byte as True)."""
    raw = np.array([0, 1, 3, 200, 255, 2, 0, 128], np.uint8)
    if layout == "1d":
        return raw.view(np.bool_)
    if layout == "2d-strided":
        return np.tile(raw, 3).view(np.bool_).reshape(4, 6)[:, ::2]
    if layout == "0d":
        return np.array(7, np.uint8).view(np.bool_)
    # One stray byte past the first few KiB (checks must read everything, not a prefix).
    long = np.ones(10_000, np.uint8)
    long[-1] = 2
    return long.view(np.bool_)


def _truth(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """NumPy's truth value of each bool byte, as a bool array of 0/1 bytes."""
    return np.asarray(a.view(np.uint8) != 0)


_LAYOUTS = ["1d", "2d-strided", "0d", "long"]


@pytest.mark.parametrize("layout", _LAYOUTS)
@pytest.mark.parametrize(("backend", "entry"), backend_entry_params(np.bool_))
def test_bool_ingress_normalises_any_non_zero_byte_to_true(
    backend: str, entry: str, layout: str
) -> None:
    a = _stray_bools(layout)
    before = a.view(np.uint8).copy()
    truth = _truth(a)
    t = ENTRIES[entry](a, backend)
    assert (t.backend, t.dtype, t.shape) == (backend, np.bool_, a.shape)
    out = t.numpy()
    assert (out.view(np.uint8) <= 1).all(), "a bool byte other than 0/1 reached the tensor"
    np.testing.assert_array_equal(out, truth)
    cases: list[tuple[str, Callable[[], Any], Callable[[], Any], tuple[Any, ...]]] = [
        ("astype(float32)", lambda: t.astype("float32"), lambda: truth.astype(np.float32), ()),
        ("astype(int64)", lambda: t.astype("int64"), lambda: truth.astype(np.int64), ()),
        ("astype(uint8)", lambda: t.astype("uint8"), lambda: truth.astype(np.uint8), ()),
        ("sum()", lambda: t.sum(), lambda: truth.sum(), ()),
        ("t == True", lambda: t == True, lambda: truth == True, ()),  # noqa: E712
        ("t != False", lambda: t != False, lambda: truth != False, ()),  # noqa: E712
        ("t + t", lambda: t + t, lambda: truth + truth, ()),
        ("t * 2", lambda: t * 2, lambda: truth * 2, ()),
        (
            "t == tensor(truth)",
            lambda: t == tb.tensor(truth, backend=backend),
            lambda: truth == truth,
            (),
        ),
        ("max()", lambda: t.max(), lambda: truth.max(), ()),
        ("min()", lambda: t.min(), lambda: truth.min(), ()),
    ]
    if a.ndim == 1:
        cases.append(("t[1:].min()", lambda: t[1:].min(), lambda: truth[1:].min(), ()))
        cases.append(("t[2:4].min()", lambda: t[2:4].min(), lambda: truth[2:4].min(), ()))
    assert_like_numpy(cases, backend)
    # The caller's memory is never normalised in place.
    np.testing.assert_array_equal(a.view(np.uint8), before)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bool_arrays_as_operands_are_numpy_bools(backend: str) -> None:
    a = _stray_bools("1d")
    truth = _truth(a)
    ones = np.ones(a.shape, np.int64)
    t = tb.tensor(ones, backend=backend)
    tt = tb.tensor(truth, backend=backend)
    assert_like_numpy(
        [
            ("int64 + stray bools", lambda: t + a, lambda: ones + truth, ()),
            ("stray bools + int64", lambda: a + t, lambda: truth + ones, ()),
            ("bool == stray bools", lambda: tt == a, lambda: truth == truth, ()),
            ("tb.add(stray, t)", lambda: tb.add(a, t), lambda: truth + ones, ()),
            ("tb.multiply(t, stray)", lambda: tb.multiply(t, a), lambda: ones * truth, ()),
        ],
        backend,
    )


def test_canonical_bools_stay_zero_copy_and_stray_ones_are_copied_once() -> None:
    ok = np.array([True, False, True])
    assert np.shares_memory(tb.from_numpy(ok).numpy(), ok)
    assert np.shares_memory(tb.from_dlpack(ok).numpy(), ok)
    stray = _stray_bools("1d")
    for t in (tb.from_numpy(stray), tb.from_dlpack(stray)):
        assert not np.shares_memory(t.numpy(), stray)
        np.testing.assert_array_equal(t.numpy(), _truth(stray))


# ==== 2. integers are exact =======================================================================

_U64 = np.uint64


def _creation_cases(
    backend: str,
) -> list[tuple[str, Callable[[], Any], Callable[[], Any], tuple[Any, ...]]]:
    b = backend
    cases: list[tuple[str, Callable[[], Any], Callable[[], Any], tuple[Any, ...]]] = []

    def tensor_case(name: str, data: Any, dtype: Any) -> None:
        dts = (dtype,) if dtype is not None else (np.asarray(data).dtype,)
        cases.append(
            (
                f"tb.tensor({name})",
                lambda: tb.tensor(data, dtype=dtype, backend=b),
                lambda: np.array(data, dtype=dtype),
                dts,
            )
        )
        if b in LAZY_BACKENDS:
            cases.append(
                (
                    f"tb.lazy({name})",
                    lambda: tb.lazy(data, dtype=dtype, backend=_base(b)),
                    lambda: np.array(data, dtype=dtype),
                    dts,
                )
            )

    tensor_case("uint64 edges", [2**63 - 1, 2**53 + 1, 2**64 - 1], "uint64")
    tensor_case("uint64 max-1", [2**64 - 2, 0], "uint64")
    tensor_case("int64 edges", [-(2**63), -(2**53) - 1, 2**63 - 1], "int64")
    tensor_case("int64 2**53+1", 2**53 + 1, "int64")
    tensor_case("uint64 scalar", 2**64 - 1, "uint64")
    tensor_case("inferred uint64", [2**63, 1], None)
    tensor_case("uint8 300", [300], "uint8")
    tensor_case("int8 -129", [1, -129], "int8")
    tensor_case("uint64 -1", [-1], "uint64")
    tensor_case("float and int into uint64", [1.5, 2**64 - 1], "uint64")
    tensor_case("NaN into int32", [float("nan")], "int32")
    tensor_case("1e10 into int32", [1e10], "int32")
    tensor_case("ints into bool", [0, 2, -1], "bool")
    tensor_case("2**64 into float32", [2**64], "float32")
    tensor_case("2**70 into float64", [2**70, 3], "float64")
    tensor_case("2**24+1 into float32", [2**24 + 1], "float32")
    tensor_case("nested uint32", [[2**32 - 1], [0]], "uint32")

    def full_case(name: str, fill: Any, dtype: Any) -> None:
        dts = (dtype,) if dtype is not None else (np.asarray(fill).dtype,)
        cases.append(
            (
                f"tb.full({name})",
                lambda: tb.full((2,), fill, dtype=dtype, backend=b),
                lambda: np.full((2,), fill, dtype=dtype),
                dts,
            )
        )

    full_case("2**64-1 uint64", 2**64 - 1, "uint64")
    full_case("2**63+1 inferred", 2**63 + 1, None)
    full_case("int64 min", -(2**63), "int64")
    full_case("2**53+1 int64", 2**53 + 1, "int64")
    full_case("300 uint8", 300, "uint8")
    full_case("-1 uint8", -1, "uint8")
    full_case("2**70 float64", 2**70, "float64")
    full_case("2**200 float32", 2**200, "float32")
    full_case("2**1100 float64", 2**1100, "float64")
    return cases


@pytest.mark.parametrize("backend", BACKENDS)
def test_creation_from_python_ints_is_exact(backend: str) -> None:
    assert_like_numpy(_creation_cases(backend), backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_arange_of_python_ints_is_exact(backend: str) -> None:
    cases: list[tuple[str, Callable[[], Any], Callable[[], Any], tuple[Any, ...]]] = []
    for name, args, dtype in [
        ("uint64 top", (2**64 - 4, 2**64 - 1), "uint64"),
        ("uint64 2**63", (2**63 - 3, 2**63 + 2), "uint64"),
        ("int64 2**53", (2**53, 2**53 + 5), "int64"),
        ("int64 bottom", (-(2**63), -(2**63) + 3), "int64"),
    ]:
        cases.append(
            (
                f"tb.arange({name})",
                lambda args=args, dtype=dtype: tb.arange(*args, dtype=dtype, backend=backend),
                lambda args=args, dtype=dtype: np.arange(*args, dtype=dtype),
                (dtype,),
            )
        )
    assert_like_numpy(cases, backend)


def _int_edges(dtype: np.dtype[Any]) -> list[int]:
    """Python ints at and around the edges of ``dtype`` (int64's for bool), and far beyond."""
    info = np.iinfo(np.int64 if dtype == np.bool_ else dtype)
    lo, hi = int(info.min), int(info.max)
    near = [lo - 1, lo, lo + 1, hi - 1, hi, hi + 1, 0, 1, -1]
    far = [
        2**63,
        -(2**63) - 1,
        2**64 - 1,
        2**64,
        -(2**64),
        2**127,
        -(2**127) - 1,
        2**200,
        -(2**200),
    ]
    return sorted(set(near + far))


def _edge_array(dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
    if dtype == np.bool_:
        return np.array([True, False])
    info = np.iinfo(dtype)
    return np.array([info.min, info.min + 1, 0, info.max - 1, info.max], dtype=dtype)


_CMP = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


def show_int(v: int) -> str:
    """A Python int as a test id: ``2**200``, ``-(2**64)-1``, or its digits when short."""
    if abs(v) < 2**32:
        return str(v)
    k = abs(v).bit_length() - 1
    rest = abs(v) - 2**k
    if rest > 2**16:  # not near a power of two: the top bit and the rest
        k += 1
        rest = abs(v) - 2**k
    body = f"2**{k}" + (f"{rest:+d}" if rest else "")
    return body if v > 0 else f"-({body})"


def _scalar_op_cases(
    t: tb.Tensor, a: np.ndarray[Any, Any], scalars: list[Any], ops: dict[str, Any]
) -> list[tuple[str, Callable[[], Any], Callable[[], Any], tuple[Any, ...]]]:
    cases: list[tuple[str, Callable[[], Any], Callable[[], Any], tuple[Any, ...]]] = []
    for v in scalars:
        shown = show_int(v) if isinstance(v, int) else repr(v)
        for name, f in ops.items():
            cases.append(
                (f"t {name} {shown}", lambda f=f, v=v: f(t, v), lambda f=f, v=v: f(a, v), ())
            )
            cases.append(
                (f"{shown} {name} t", lambda f=f, v=v: f(v, t), lambda f=f, v=v: f(v, a), ())
            )
    return cases


_INT_OPERAND_DTYPES = [np.dtype(np.bool_), *INT_DTYPES]
_WIDE = (np.dtype(np.int64), np.dtype(np.uint64))


def _int_edge_check(backend: str, dtype: np.dtype[Any], ops: dict[str, Any]) -> None:
    a = _edge_array(dtype)
    if lacks(backend, dtype):
        with pytest.raises(TypeError, match=str(dtype)):
            tb.tensor(a, backend=backend)
        return
    t = tb.tensor(a, backend=backend)
    assert_like_numpy(_scalar_op_cases(t, a, _int_edges(dtype), ops), backend)


@pytest.mark.parametrize("dtype", _INT_OPERAND_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("backend", BACKENDS)
def test_python_int_arithmetic_at_the_dtype_edges_answers_as_numpy(
    backend: str, dtype: np.dtype[Any]
) -> None:
    _int_edge_check(backend, dtype, _ARITH)


@pytest.mark.parametrize(
    ("backend", "dtype"),
    [
        pytest.param(
            b,
            d,
            id=f"{b}-{d}",
        )
        for b in BACKENDS
        for d in _INT_OPERAND_DTYPES
    ],
)
def test_python_int_comparisons_at_the_dtype_edges_are_exact(
    backend: str, dtype: np.dtype[Any]
) -> None:
    _int_edge_check(backend, dtype, _CMP)


@pytest.mark.parametrize(
    "backend",
    BACKENDS,
)
def test_uint64_comparisons_with_python_ints_are_exact(backend: str) -> None:
    a = np.array([2**63 - 1, 2**63, 2**63 + 1, 2**64 - 1], np.uint64)
    if lacks(backend, a.dtype):
        with pytest.raises(TypeError, match="uint64"):
            tb.tensor(a, backend=backend)
        return
    t = tb.tensor(a, backend=backend)
    scalars = [2**63 - 1, 2**63, 2**63 + 1, 2**64 - 2, 2**64 - 1, 2**64]
    assert_like_numpy(_scalar_op_cases(t, a, scalars, _CMP), backend)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "bfloat16"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_python_ints_with_float_tensors_take_the_float_value(backend: str, dtype: str) -> None:
    a = np.array([1.0, -2.0, 65504.0], dtype=np.dtype(BFLOAT16 if dtype == "bfloat16" else dtype))
    t = tb.tensor(a, backend=backend)
    scalars = [3, -7, 2**20, 2**24 + 1, 2**63 - 1]
    if dtype != "bfloat16":
        # ml_dtypes' bfloat16 refuses ints beyond int64 (TypeError "expected number"); every
        # NumPy float takes their float value, and tensorbridge does so for bfloat16 too.
        scalars += [2**64, 2**200, 2**1100, -(2**1100)]
    assert_like_numpy(_scalar_op_cases(t, a, scalars, {**_CMP, "+": operator.add}), backend)


# ==== 3. NumPy scalars and array-likes are operands on every backend ==============================


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_issue_examples_of_numpy_scalar_operands(backend: str) -> None:
    b = backend
    f32 = np.ones(2, np.float32)
    cases: list[tuple[str, Callable[[], Any], Callable[[], Any], tuple[Any, ...]]] = [
        (
            "float32 * np.float64(2)",
            lambda: tb.ones(2, dtype="float32", backend=b) * np.float64(2),
            lambda: f32 * np.float64(2),
            (),
        ),
        (
            "np.float64(2) * float32",
            lambda: np.float64(2) * tb.ones(2, dtype="float32", backend=b),
            lambda: np.float64(2) * f32,
            (),
        ),
        (
            "[0.1] float32 == np.float64(0.1)",
            lambda: tb.tensor([0.1], dtype="float32", backend=b) == np.float64(0.1),
            lambda: np.array([0.1], np.float32) == np.float64(0.1),
            (),
        ),
        (
            "float16 + np.float64(1)",
            lambda: tb.tensor([1.0], dtype="float16", backend=b) + np.float64(1),
            lambda: np.array([1.0], np.float16) + np.float64(1),
            (),
        ),
        (
            "int16 + np.int16(3)",
            lambda: tb.tensor([3], dtype="int16", backend=b) + np.int16(3),
            lambda: np.array([3], np.int16) + np.int16(3),
            (),
        ),
        (
            "tb.add(int16, np.int16(3))",
            lambda: tb.add(tb.tensor([3], dtype="int16", backend=b), np.int16(3)),
            lambda: np.add(np.array([3], np.int16), np.int16(3)),
            (),
        ),
        (
            "float64 == np.array",
            lambda: tb.tensor([1.0, 2.0], backend=b) == np.array([1.0, 2.0]),
            lambda: np.array([1.0, 2.0]) == np.array([1.0, 2.0]),
            (),
        ),
        (
            "tb.tensor(3) == np.int64(3)",
            lambda: tb.tensor(3, backend=b) == np.int64(3),
            lambda: np.array(3) == np.int64(3),
            (),
        ),
        (
            "int64 + [3]",
            lambda: tb.tensor([1, 2], backend=b) + [3],
            lambda: np.array([1, 2]) + [3],
            (),
        ),
        (
            "tb.add(int64, [3])",
            lambda: tb.add(tb.tensor([1, 2], backend=b), [3]),
            lambda: np.add(np.array([1, 2]), [3]),
            (),
        ),
        (
            "uint8 + np.int64(300)",
            lambda: tb.tensor([3], dtype="uint8", backend=b) + np.int64(300),
            lambda: np.array([3], np.uint8) + np.int64(300),
            (),
        ),
        (
            "int8 + np.uint8(200)",
            lambda: tb.tensor([3], dtype="int8", backend=b) + np.uint8(200),
            lambda: np.array([3], np.int8) + np.uint8(200),
            ("int8",),
        ),
    ]
    assert_like_numpy(cases, backend)


def _scalar_of(dtype: np.dtype[Any], value: int) -> Any:
    return dtype.type(value)


_OPERATOR_FORMS: dict[str, tuple[Callable[[Any, Any], Any], Callable[[Any, Any], Any]]] = {
    # name: (tensorbridge form, NumPy form)
    "a + s": (operator.add, operator.add),
    "s + a": (lambda a, s: s + a, lambda a, s: s + a),
    "a * s": (operator.mul, operator.mul),
    "s - a": (lambda a, s: s - a, lambda a, s: s - a),
    "a / s": (operator.truediv, operator.truediv),
    "a == s": (operator.eq, operator.eq),
    "s < a": (lambda a, s: s < a, lambda a, s: s < a),
    "tb.add(a, s)": (tb.add, np.add),
    "tb.subtract(s, a)": (lambda a, s: tb.subtract(s, a), lambda a, s: np.subtract(s, a)),
    "tb.multiply(s, a)": (lambda a, s: tb.multiply(s, a), lambda a, s: np.multiply(s, a)),
}


_FLOAT_DTYPES = [d for d in ALL_DTYPES if is_float(d)]


@pytest.mark.parametrize("dtype", _FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("backend", BACKENDS)
def test_nans_made_by_arithmetic_have_numpys_sign_on_every_backend(
    backend: str, dtype: np.dtype[Any]
) -> None:
    # 0 / 0, inf - inf, 0 * inf from non-NaN operands: NumPy's NaN carries the sign the
    # hardware gives it (negative on x86), for bfloat16 too (ml_dtypes computes in float32 and
    # keeps the sign). libtorch's bfloat16 kernels rounded every NaN to the positive one. The
    # operands come as tensors, NumPy scalars (strong) and bool tensors promoted by the scalar.
    if lacks(backend, dtype):
        return  # asserted by test_each_backend_holds_exactly_the_dtypes_the_matrix_expects
    zero, inf = np.array([0.0, -0.0], dtype), np.array([np.inf, -np.inf], dtype)
    t0, tinf = tb.tensor(zero, backend=backend), tb.tensor(inf, backend=backend)
    s0 = dtype.type(0.0)
    f = np.array([False, False])
    tf = tb.tensor(f, backend=backend)
    cases: list[tuple[str, Callable[[], Any], Callable[[], Any], tuple[Any, ...]]] = [
        ("0 / 0", lambda: t0 / t0, lambda: zero / zero, ()),
        ("inf - inf", lambda: tinf - tinf, lambda: inf - inf, ()),
        ("inf + -inf", lambda: tinf + tinf[::-1], lambda: inf + inf[::-1], ()),
        ("0 * inf", lambda: t0 * tinf, lambda: zero * inf, ()),
        ("0 / NumPy scalar 0", lambda: t0 / s0, lambda: zero / s0, ()),
        ("NumPy scalar 0 / 0", lambda: s0 / t0, lambda: s0 / zero, ()),
        ("False / NumPy scalar 0", lambda: tf / s0, lambda: f / s0, (np.bool_,)),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_like_numpy(cases, backend)


@pytest.mark.parametrize("dtype", _FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("backend", BACKENDS)
def test_nans_of_unary_ops_and_max_min_have_numpys_sign_on_every_backend(
    backend: str, dtype: np.dtype[Any]
) -> None:
    # sqrt/log of a number below zero: the machine's invalid-operation NaN (negative on x86),
    # where libtorch wrote the positive one. -x and abs(x) of a NaN set its sign, where torch's
    # bfloat16 kept it; torch's bfloat16 exp/log/sqrt of +NaN wrote 0xffff (negative).
    # max/min of a lane holding a NaN return that NaN, where torch and candle wrote +NaN.
    # NumPy's own max/min return the input's NaN or +NaN depending on its loop and where the
    # NaN sits ([1, -nan, 2].max() is -nan, [-nan, 6, 7].max() is +nan, and its float32/float64
    # SIMD loops over long lanes give +nan), so the axis cases check the rule against NumPy's
    # values with the input's NaN put where NumPy has a NaN.
    if lacks(backend, dtype):
        return  # asserted by test_each_backend_holds_exactly_the_dtypes_the_matrix_expects
    below = np.array([-1.0, -np.inf, -0.0, 0.0, 4.0], dtype)
    nans = np.array([np.nan, -np.nan, 1.0], dtype)
    pos_nan = np.array([np.nan, 0.0], dtype)
    # One NaN per row and per column: which of two NaNs NumPy returns depends on its loop.
    lanes = np.array([[1.0, -np.nan, 2.0], [3.0, 4.0, 5.0], [-np.nan, 6.0, 7.0]], dtype)
    tb_below, tb_nans = tb.tensor(below, backend=backend), tb.tensor(nans, backend=backend)
    tb_pos, tb_lanes = tb.tensor(pos_nan, backend=backend), tb.tensor(lanes, backend=backend)

    def input_nan(r: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        return np.where(np.isnan(r), -dtype.type(np.nan), r).astype(dtype)

    cases: list[tuple[str, Callable[[], Any], Callable[[], Any], tuple[Any, ...]]] = [
        ("sqrt(x < 0)", lambda: tb_below.sqrt(), lambda: np.sqrt(below), ()),
        ("log(x < 0)", lambda: tb_below.log(), lambda: np.log(below), ()),
        ("-nan", lambda: -tb_nans, lambda: -nans, ()),
        ("abs(nan)", lambda: abs(tb_nans), lambda: abs(nans), ()),
        ("sqrt(nan)", lambda: tb_nans.sqrt(), lambda: np.sqrt(nans), ()),
        ("exp(+nan)", lambda: tb_pos.exp(), lambda: np.exp(pos_nan), ()),
        ("log(+nan)", lambda: tb_pos.log(), lambda: np.log(pos_nan), ()),
        ("sqrt(+nan)", lambda: tb_pos.sqrt(), lambda: np.sqrt(pos_nan), ()),
        ("max()", lambda: tb_lanes[0].max(), lambda: lanes[0].max(), ()),
        ("min()", lambda: tb_lanes[0].min(), lambda: lanes[0].min(), ()),
        ("max(axis=0)", lambda: tb_lanes.max(axis=0), lambda: input_nan(lanes.max(axis=0)), ()),
        ("min(axis=0)", lambda: tb_lanes.min(axis=0), lambda: input_nan(lanes.min(axis=0)), ()),
        ("max(axis=1)", lambda: tb_lanes.max(axis=1), lambda: input_nan(lanes.max(axis=1)), ()),
        (
            "T.min(axis=0)",
            lambda: tb_lanes.T.min(axis=0),
            lambda: input_nan(lanes.T.min(axis=0)),
            (),
        ),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_like_numpy(cases, backend)
        # A long lane with one -NaN: its max/min is that NaN on every backend (the rule above;
        # NumPy's float16/bfloat16 loops agree, its float32/float64 SIMD loops give +NaN).
        # exp/log of -NaN keep its sign, as IEEE 754 propagation and C's libm do (NumPy's
        # float32 SIMD exp/log give +NaN instead).
        long = np.arange(10_000).astype(dtype)
        long[7_000] = -dtype.type(np.nan)
        t_long = tb.tensor(long, backend=backend)
        neg_nan = np.array(-np.nan, dtype)
        for name, got in [
            ("max() of a long lane", t_long.max()),
            ("min() of a long lane", t_long.min()),
            ("max(axis=0) of 100 x 100", t_long.reshape(100, 100).max(axis=0)[0]),
            ("exp(-nan)", tb_nans.exp()[1]),
            ("log(-nan)", tb_nans.log()[1]),
        ]:
            assert same_values(np.asarray(got), neg_nan), f"{name} on {backend}: {got!r}"


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("backend", BACKENDS)
def test_numpy_scalars_are_strong_operands_on_every_backend(
    backend: str, dtype: np.dtype[Any]
) -> None:
    a = np.array([0, 1, 2]).astype(dtype)
    if lacks(backend, dtype):
        with pytest.raises(TypeError, match=str(dtype)):
            tb.tensor(a, backend=backend)
        return
    t = tb.tensor(a, backend=backend)
    cases: list[tuple[str, Callable[[], Any], Callable[[], Any], tuple[Any, ...]]] = []
    for sd in ALL_DTYPES:
        s = _scalar_of(sd, 1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                result = np.result_type(a, np.asarray(s))
            except TypeError:
                result = None
        dtypes = (sd,) if result is None else (sd, result)
        for name, (ours, theirs) in _OPERATOR_FORMS.items():
            cases.append(
                (
                    f"{name} with s = {sd}(1)",
                    lambda ours=ours, s=s: ours(t, s),
                    lambda theirs=theirs, s=s: theirs(a, s),
                    dtypes,
                )
            )
    assert_like_numpy(cases, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_array_likes_are_operands_of_operators_and_functions_alike(backend: str) -> None:
    a = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    t = tb.tensor(a, backend=backend)
    others: dict[str, Any] = {
        "list": [10, 20],
        "tuple": (10.5, 20.5),
        "nested list": [[1], [2]],
        "float64 ndarray": np.array([0.5, 0.25]),
        "int8 ndarray": np.array([1, 2], np.int8),
        "0-d float64": np.array(2.0),
        "__array__": ArrayLike(np.array([1.0, 2.0])),
        "bool list": [True, False],
    }
    cases: list[tuple[str, Callable[[], Any], Callable[[], Any], tuple[Any, ...]]] = []
    for name, x in others.items():
        ref = np.asarray(x)
        dtypes = (ref.dtype,)
        cases += [
            (f"t + {name}", lambda x=x: t + x, lambda ref=ref: a + ref, dtypes),
            (f"{name} - t", lambda x=x: x - t, lambda ref=ref: ref - a, dtypes),
            (f"t == {name}", lambda x=x: t == x, lambda ref=ref: a == ref, dtypes),
            (f"{name} < t", lambda x=x: x < t, lambda ref=ref: ref < a, dtypes),
            (f"tb.add(t, {name})", lambda x=x: tb.add(t, x), lambda ref=ref: a + ref, dtypes),
            (
                f"tb.divide({name}, t)",
                lambda x=x: tb.divide(x, t),
                lambda ref=ref: ref / a,
                dtypes,
            ),
        ]
    eye = np.eye(2)
    cases += [
        ("t @ ndarray", lambda: t @ eye, lambda: a @ eye, ()),
        ("ndarray @ t", lambda: eye @ t, lambda: eye @ a, ()),
        ("tb.matmul(t, ndarray)", lambda: tb.matmul(t, eye), lambda: a @ eye, ()),
        (
            "tb.matmul(list, t)",
            lambda: tb.matmul([1.0, 0.0], t),
            lambda: np.array([1.0, 0.0]) @ a,
            (),
        ),
    ]
    assert_like_numpy(cases, backend)


@pytest.mark.parametrize("backend", LAZY_BACKENDS)
def test_a_lazy_graph_reads_a_foreign_operand_as_it_was_when_recorded(backend: str) -> None:
    x = np.array([1.0, 2.0])
    t = tb.tensor([10.0, 20.0], backend=backend)
    r = t + x
    x[0] = 100.0  # NumPy's `r` is computed now; the graph must not see this write
    np.testing.assert_array_equal(r.numpy(), [11.0, 22.0])


def test_operands_that_are_no_numbers_are_refused() -> None:
    t = tb.tensor([1, 2])
    for bad in ("ab", None, object(), {"a": 1}):
        with pytest.raises(TypeError):
            t + bad
        with pytest.raises(TypeError):
            tb.add(t, bad)
    with pytest.raises(TypeError, match="object"):
        t + [2**70, 1]  # NumPy makes an object array of it


# ==== 4. copy=False never copies; out= follows np.copyto's casting ================================


@pytest.mark.parametrize("backend", BACKENDS)
def test_from_dlpack_copy_false_never_copies(backend: str) -> None:
    misaligned = np.zeros(17, np.uint8)[1:].view(np.float64)
    stray = _stray_bools("1d")
    for x, why in ((misaligned, "misaligned"), (stray, "bool bytes")):
        with pytest.raises(BufferError, match=why):
            tb.from_dlpack(x, copy=False, backend=backend)
        got = tb.from_dlpack(x, backend=backend)  # copy=None: one copy where needed
        want = _truth(x) if x.dtype == np.bool_ else x
        np.testing.assert_array_equal(got.numpy(), want)
    for x in (np.arange(4.0), np.zeros((0, 3)), np.array(True)):
        try:
            t = tb.from_dlpack(x, copy=False, backend=backend)
        except BufferError:
            # Only a backend that cannot hold host memory in place may refuse; then it always
            # copies, also for copy=None.
            assert not np.shares_memory(tb.from_dlpack(x, backend=backend).numpy(), x)
            continue
        assert t.backend == backend
        if x.size:
            assert np.shares_memory(t.numpy(), x), "copy=False returned a copy"


@pytest.mark.skipif(not HAS_TORCH, reason="this build of the extension has no torch backend")
@pytest.mark.parametrize("backend", BACKENDS)
def test_from_dlpack_copy_false_of_torch_memory_never_copies(backend: str) -> None:
    import torch

    x = torch.arange(6.0).reshape(2, 3)[:, ::2]
    try:
        t = tb.from_dlpack(x, copy=False, backend=backend)
    except BufferError:
        assert not np.shares_memory(tb.from_dlpack(x, backend=backend).numpy(), x.numpy())
        return
    assert np.shares_memory(t.numpy(), x.numpy()), "copy=False returned a copy"


@pytest.mark.parametrize("backend", BACKENDS)
def test_exports_with_copy_false_never_copy(backend: str) -> None:
    t = tb.tensor(np.arange(6.0).reshape(2, 3), backend=backend)[:, ::2]
    zero_copy = np.shares_memory(t.numpy(), t.numpy())
    exports = {
        "np.from_dlpack": lambda: np.from_dlpack(t, copy=False),
        "tb.from_dlpack": lambda: tb.from_dlpack(t, copy=False).numpy(),
        "__dlpack__ capsule": lambda: np.from_dlpack(
            _Capsule(t.__dlpack__(copy=False, max_version=(1, 0)))
        ),
    }
    for name, export in exports.items():
        if zero_copy:
            assert np.shares_memory(export(), t.numpy()), name
        else:
            with pytest.raises(BufferError):
                export()


@pytest.mark.parametrize("backend", BACKENDS)
def test_dlpack_exports_of_cpu_tensors_work_on_every_backend(backend: str) -> None:
    # copy=None: the memory itself where the backend can share it, else one host copy (candle's
    # CPU storage), as np.asarray does; never a BufferError for a CPU tensor.
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = tb.tensor(a, backend=backend)
    for view, expected in ((t, a), (t.T, a.T), (t[:, ::2], a[:, ::2])):
        np.testing.assert_array_equal(np.from_dlpack(view), expected)
        np.testing.assert_array_equal(np.from_dlpack(view, device="cpu"), expected)
        np.testing.assert_array_equal(tb.from_dlpack(view).numpy(), expected)
        capsule = view.__dlpack__(max_version=(1, 0), dl_device=(1, 0))
        np.testing.assert_array_equal(np.from_dlpack(_Capsule(capsule)), expected)
        if HAS_TORCH:
            import torch

            np.testing.assert_array_equal(torch.from_dlpack(view).numpy(), expected)


class _Capsule:
    """A DLPack producer that hands out one prepared capsule (NumPy's from_dlpack wants an
    object with __dlpack__)."""

    def __init__(self, capsule: Any) -> None:
        self._capsule = capsule

    def __dlpack__(self, **_: Any) -> Any:
        return self._capsule

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_numpy_copy_false_never_copies(backend: str) -> None:
    t = tb.tensor([1.0, 2.0, 3.0], backend=backend)
    zero_copy = np.shares_memory(t.numpy(), t.numpy())
    for convert in (lambda: t.numpy(copy=False), lambda: np.asarray(t, copy=False)):
        if zero_copy:
            assert np.shares_memory(convert(), t.numpy())
        else:
            with pytest.raises(ValueError, match="copy"):
                convert()
    with pytest.raises(ValueError, match="copy"):
        np.asarray(t, dtype=np.float32, copy=False)
    with pytest.raises(ValueError, match="copy"):
        np.asarray(t, dtype=np.complex128, copy=False)


_CASTINGS = [None, "no", "safe", "same_kind", "unsafe"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_numpy_out_follows_copyto_casting(backend: str) -> None:
    cases: list[tuple[str, Callable[[], Any], Callable[[], Any], tuple[Any, ...]]] = []
    for src in ALL_DTYPES:
        a = np.array([0, 1, 2]).astype(src)
        if lacks(backend, src):
            continue  # the tensor cannot exist; test_each_backend_holds_... asserts the error
        t = tb.tensor(a, backend=backend)
        for dst in ALL_DTYPES:
            for casting in _CASTINGS:
                kw = {} if casting is None else {"casting": casting}

                def ours(dst: Any = dst, kw: dict[str, Any] = kw, t: tb.Tensor = t) -> Any:
                    out = np.full(3, 7, dtype=dst)
                    got = t.numpy(out=out, **kw)
                    assert got is out
                    return out

                def theirs(dst: Any = dst, a: Any = a, kw: dict[str, Any] = kw) -> Any:
                    out = np.full(3, 7, dtype=dst)
                    np.copyto(out, a, **kw)
                    return out

                cases.append((f"{src} into {dst} casting={casting}", ours, theirs, ()))
    bad = []
    for name, ours, theirs, _ in cases:
        got, want = outcome(ours), outcome(theirs)
        if want[0] == "raises":
            if got[0] != "raises" or not issubclass(got[1], _builtin_base(want[1])):
                bad.append(f"{name}: NumPy raises {want[1].__name__}, got {got[:2]}")
        elif got[0] == "raises" or not same_values(got[1], want[1]):
            bad.append(f"{name}: got {got[:2]}, NumPy {want[1]!r}")
    assert not bad, "\n".join(bad)
    with pytest.raises(ValueError):
        tb.ones(3, backend=backend).numpy(out=np.empty(3), casting="sideways")
    with pytest.raises(ValueError, match="out="):
        tb.ones(3, backend=backend).numpy(casting="unsafe")


# ==== 5. tb.tensor of a Tensor copies =============================================================


@pytest.mark.parametrize("backend", BACKENDS)
def test_tensor_of_a_tensor_copies_memory_shared_with_numpy(backend: str) -> None:
    src = np.arange(4.0)
    shared = tb.from_numpy(src)
    copies = [
        tb.tensor(shared, backend=backend),
        tb.tensor(shared, dtype="float32", backend=backend),
        tb.tensor(shared.to(backend=backend)),
        tb.tensor(shared.to(backend=backend), dtype="int32"),
    ]
    src[0] = 99.0
    assert shared[0].item() == 99.0  # from_numpy shares, as documented
    for c in copies:
        assert c.backend == backend
        assert c[0].item() == 0.0, "tb.tensor of a tensor shares memory"
        assert c.tolist() == [0, 1, 2, 3]


@pytest.mark.skipif(not HAS_TORCH, reason="this build of the extension has no torch backend")
def test_tensor_of_a_tensor_copies_memory_shared_with_torch() -> None:
    import torch

    x = torch.arange(3.0)
    t = tb.from_torch(x)
    u = tb.tensor(t)
    x[0] = 42.0
    assert t[0].item() == 42.0 and u[0].item() == 0.0
    assert u.backend == "torch"


# ==== 6. shapes never wrap; casts and constructors give NumPy's bits ==============================


@pytest.mark.parametrize("backend", BACKENDS)
def test_shape_arithmetic_never_wraps(backend: str) -> None:
    b = backend
    huge = [(2**62, 2**62), (2**32, 2**31, 2), (2**31, 2**31, 2, 0)]
    cases: list[tuple[str, Callable[[], Any], Callable[[], Any], tuple[Any, ...]]] = []
    for shape in huge[:2]:
        cases.append(
            (
                f"broadcast_to{shape}",
                lambda s=shape: tb.tensor(1.0, backend=b).broadcast_to(s),
                lambda s=shape: np.broadcast_to(np.float64(1.0), s),
                (),
            )
        )
    for shape in huge:
        cases.append(
            (
                f"zeros{shape}",
                lambda s=shape: tb.zeros(s, backend=b),
                lambda s=shape: np.zeros(s),
                (),
            )
        )
        cases.append(
            (
                f"full{shape}",
                lambda s=shape: tb.full(s, 1, dtype="uint8", backend=b),
                lambda s=shape: np.full(s, 1, dtype=np.uint8),
                (),
            )
        )
    cases += [
        (
            "reshape(2**62, 2**62, 0) of empty",
            lambda: tb.zeros(0, backend=b).reshape(2**62, 2**62, 0),
            lambda: np.zeros(0).reshape(2**62, 2**62, 0),
            (),
        ),
        (
            "broadcast (2**32, 1) + (1, 2**32)",
            lambda: tb.tensor(1.0, backend=b).broadcast_to((2**32, 1))
            + tb.tensor(1.0, backend=b).broadcast_to((1, 2**32)),
            lambda: np.broadcast_to(1.0, (2**32, 1)) + np.broadcast_to(1.0, (1, 2**32)),
            (),
        ),
        (
            "tensor of nested empty lists",
            lambda: tb.tensor([[[]] * 3] * 2, backend=b),
            lambda: np.array([[[]] * 3] * 2),
            (),
        ),
    ]
    assert_like_numpy(cases, backend)


def _halfway_inputs(rng: np.random.Generator) -> np.ndarray[Any, Any]:
    """float64s that stress a conversion to 16-bit floats: random normals of every scale,
    exact midpoints between neighbouring float16 and bfloat16 values, and their float64
    neighbours."""
    normals = rng.standard_normal(2000) * np.exp2(rng.integers(-30, 30, 2000))
    k = rng.integers(0, 0x7BFF, 500).astype(np.uint16)  # below float16's largest finite
    h_lo = k.view(np.float16).astype(np.float64)
    h_hi = (k + 1).view(np.float16).astype(np.float64)
    b16 = rng.integers(0, 0x7F7F, 500).astype(np.uint32)  # below bfloat16's largest finite
    b_lo = (b16 << 16).view(np.float32).astype(np.float64)
    b_hi = ((b16 + 1) << 16).view(np.float32).astype(np.float64)
    mids = np.concatenate([(h_lo + h_hi) / 2, (b_lo + b_hi) / 2])
    mids = np.concatenate([mids, np.nextafter(mids, np.inf), np.nextafter(mids, -np.inf)])
    special = np.array([-0.6113285415306722, 1.1645508316087867, 0.0, -0.0, np.inf, -np.inf])
    return np.concatenate([normals, mids, -mids, special])


@pytest.mark.parametrize("backend", BACKENDS)
def test_casts_to_16_bit_floats_round_like_numpy(backend: str) -> None:
    """float64 -> float16 is NumPy's ``astype`` (one rounding), float64 -> bfloat16 ml_dtypes'
    (through float32), through every entry point that converts float64 data."""
    x = _halfway_inputs(np.random.default_rng(11))
    t = tb.tensor(x, backend=backend)
    bad = []
    for dtype in (np.dtype(np.float16), np.dtype(BFLOAT16)):
        with np.errstate(over="ignore"):  # beyond float16's range: inf, as the cast must give
            want = x.astype(dtype).view(np.uint16)
        name = str(dtype)
        out = np.empty(x.shape, dtype)
        t.numpy(out=out)
        with np.errstate(over="ignore"):  # NumPy's own warning for Python data into float16
            from_list = tb.tensor(x.tolist(), dtype=name, backend=backend).numpy()
        got = {
            "astype": t.astype(name).numpy(),
            "tensor(ndarray, dtype=)": tb.tensor(x, dtype=name, backend=backend).numpy(),
            "tensor(list, dtype=)": from_list,
            "np.asarray(t, dtype=)": np.asarray(t, dtype=dtype),
            "numpy(out=)": out,
        }
        for entry, g in got.items():
            wrong = np.flatnonzero(g.view(np.uint16) != want)
            if wrong.size:
                i = wrong[0]
                bad.append(
                    f"{entry} into {name}: {wrong.size} of {x.size} differ, e.g. {x[i]!r} -> "
                    f"{g.view(np.uint16)[i]:#06x}, want {want[i]:#06x}"
                )
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bfloat16_from_float64_next_to_a_midpoint_is_ml_dtypes_value(backend: str) -> None:
    """1 + 2**-8 + 2**-30 is just above the midpoint of bfloat16's 1.0 and 1.0078125: rounded once
    it is 1.0078125, but float32 rounds it to the midpoint and bfloat16 then to even, 1.0, which is
    ml_dtypes' (and PyTorch's) answer."""
    x = np.array([1 + 2**-8 + 2**-30, -(1 + 2**-8 + 2**-30), 1 + 2**-8 + 2**-20])
    want = np.array([1.0, -1.0, 1.0078125])
    np.testing.assert_array_equal(x.astype(BFLOAT16).astype(np.float64), want)  # ml_dtypes
    got = {
        "astype": tb.tensor(x, backend=backend).astype("bfloat16").numpy(),
        "tensor(list, dtype=)": tb.tensor(x.tolist(), dtype="bfloat16", backend=backend).numpy(),
        "full": np.concatenate(
            [tb.full((1,), v, dtype="bfloat16", backend=backend).numpy() for v in x.tolist()]
        ),
        # A weak Python float takes the tensor's dtype (PyTorch's answer; ml_dtypes promotes
        # bfloat16 + float to float32): the same rounding.
        "zeros + float": np.concatenate(
            [(tb.zeros((1,), dtype="bfloat16", backend=backend) + v).numpy() for v in x.tolist()]
        ),
    }
    for entry, g in got.items():
        np.testing.assert_array_equal(g.astype(np.float64), want, err_msg=entry)


def _nan_patterns(dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
    """NaNs of a float dtype: quiet and signalling, both signs, all-ones and random payloads."""
    bits = {
        2: [0x7E00, 0xFE00, 0x7C01, 0xFC01, 0x7FFF, 0xFD55, 0x7D00],
        4: [0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001, 0x7FFFFFFF, 0x7FA12345, 0xFFA12345],
        8: [0x7FF8000000000000, 0xFFF8000000000000, 0x7FF0000000000001, 0x7FFFFFFFFFFFFFFF,
            0xFFF4000000000001, 0x7FF123456789ABCD],
    }[dtype.itemsize]  # fmt: skip
    if dtype == np.dtype(BFLOAT16):
        bits = [0x7FC0, 0xFFC0, 0x7F81, 0xFF81, 0x7FFF, 0xFFA5, 0x7FA5]
    uint = {2: np.uint16, 4: np.uint32, 8: np.uint64}[dtype.itemsize]
    # 70 elements: libtorch's vectorised casts start at 16 (they gave all-ones bits there).
    return np.resize(np.array(bits, dtype=uint), 70).view(dtype)


def _bits(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return a.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


@pytest.mark.parametrize("backend", BACKENDS)
def test_float_casts_give_numpys_nan_bits_on_every_backend(backend: str) -> None:
    """A NaN cast between float dtypes has the bits NumPy's ``astype`` gives it (ml_dtypes' for
    bfloat16: the quiet NaN 0x7fc0 with its sign), so ``np.signbit`` and the payload of a cast NaN
    are NumPy's on every backend and through every entry point (libtorch's own cast made
    positive NaNs all-ones, i.e. negative, into bfloat16 from 16 elements on)."""
    floats = [np.dtype(np.float16), np.dtype(BFLOAT16), np.dtype(np.float32), np.dtype(np.float64)]
    bad = []
    for src in floats:
        x = _nan_patterns(src)
        t = tb.tensor(x, backend=backend)
        for dst in floats:
            if dst == src:
                continue
            with np.errstate(invalid="ignore"):
                want = _bits(x.astype(dst))
            out = np.empty(x.shape, dst)
            t.numpy(out=out, casting="unsafe")
            got = {
                "astype": t.astype(str(dst)).numpy(),
                "astype of a reversed view": t[::-1].astype(str(dst)).numpy()[::-1],
                "tensor(ndarray, dtype=)": tb.tensor(x, dtype=str(dst), backend=backend).numpy(),
                "np.asarray(t, dtype=)": np.asarray(t, dtype=dst),
                "numpy(out=)": out,
            }
            for entry, g in got.items():
                wrong = np.flatnonzero(_bits(g) != want)
                if wrong.size:
                    i = wrong[0]
                    bad.append(
                        f"{entry} {src} -> {dst}: {wrong.size} of {x.size} differ, e.g. "
                        f"{_bits(x)[i]:#x} -> {_bits(g)[i]:#x}, NumPy gives {want[i]:#x}"
                    )
    # Python's NaNs (a list, a scalar) with their signs.
    nans = [math.nan, -math.nan]
    for dst in (np.dtype(np.float16), np.dtype(BFLOAT16)):
        want = _bits(np.array(nans, dtype=dst))
        for entry, g in {
            "tensor(list, dtype=)": tb.tensor(nans, dtype=str(dst), backend=backend).numpy(),
            "full": np.concatenate(
                [tb.full((1,), v, dtype=str(dst), backend=backend).numpy() for v in nans]
            ),
        }.items():
            if not np.array_equal(_bits(g), want):
                bad.append(f"{entry} {nans} -> {dst}: {_bits(g)}, NumPy gives {want}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("backend", BACKENDS)
def test_tolist_of_float16_nans_has_numpys_bits(backend: str) -> None:
    """``tolist`` widens float16 to Python floats as NumPy does: a NaN's payload shifts in
    unchanged (signalling NaNs stay signalling), bit for bit ``ndarray.tolist()``."""
    a = _nan_patterns(np.dtype(np.float16))[:7]
    got = np.array(tb.tensor(a, backend=backend).tolist(), dtype=np.float64)
    want = np.array(a.tolist(), dtype=np.float64)
    np.testing.assert_array_equal(_bits(got), _bits(want))


@pytest.mark.parametrize("backend", BACKENDS)
def test_float_sums_and_means_accumulate_in_float64_on_every_backend(backend: str) -> None:
    """Sums of bfloat16/float16/float32 add in float64 and round once into the dtype on every
    backend (NumPy's float64 sum of the same values, cast): accumulating in the input precision
    loses the small terms (ml_dtypes' bfloat16 sum of [256] + [1] * 7 is 256), and how much
    depended on the backend and on the view's layout."""
    cases = [
        (BFLOAT16, [256.0] + [1.0] * 7),
        (BFLOAT16, [256.0] + [1.0] * 999),
        (np.float16, [2048.0] + [1.0] * 8),
        (np.float32, [2.0**25] + [1.0] * 2**18),
    ]
    for dtype, values in cases:
        a = np.array(values, dtype=dtype)
        t = tb.tensor(a, backend=backend)
        for view, av in ((t, a), (t[::-1], a[::-1])):
            want_sum = np.sum(av.astype(np.float64)).astype(dtype)
            want_mean = np.mean(av.astype(np.float64)).astype(dtype)
            got_sum, got_mean = view.sum().numpy(), view.mean().numpy()
            assert got_sum.dtype == np.dtype(dtype)
            assert got_sum.item() == want_sum.item(), (dtype, len(values), backend)
            assert got_mean.item() == want_mean.item(), (dtype, len(values), backend)
        rows = a[: len(a) // 8 * 8].reshape(8, -1)
        want_rows = np.sum(rows.astype(np.float64), axis=1).astype(dtype)
        got_rows = tb.tensor(rows, backend=backend).sum(axis=1).numpy()
        np.testing.assert_array_equal(got_rows.astype(np.float64), want_rows.astype(np.float64))


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_sqrt_is_correctly_rounded_on_every_backend(backend: str) -> None:
    """NumPy's float32 sqrt is correctly rounded; libtorch's own is not (the torch backend goes
    through float64)."""
    x = (np.arange(1 << 14, dtype=np.float64) * 7919 % 1000) / 37.0 + 0.01
    a = x.astype(np.float32)
    got = tb.tensor(a, backend=backend).sqrt().numpy()
    np.testing.assert_array_equal(got.view(np.uint32), np.sqrt(a).view(np.uint32))


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_float16_pattern_round_trips_and_widens_exactly(backend: str) -> None:
    patterns = np.arange(2**16, dtype=np.uint32).astype(np.uint16)
    h = patterns.view(np.float16)
    t = tb.tensor(h.astype(np.float64), backend=backend)
    back = t.astype("float16").numpy().view(np.uint16)
    finite = ~np.isnan(h)
    np.testing.assert_array_equal(back[finite], patterns[finite])
    assert np.isnan(back.view(np.float16)[~finite]).all()
    widened = tb.tensor(h, backend=backend).astype("float32").numpy()
    np.testing.assert_array_equal(widened[finite], h[finite].astype(np.float32))
    bf = tb.tensor(patterns.view(BFLOAT16), backend=backend).astype("float64").numpy()
    with np.errstate(invalid="ignore"):  # ml_dtypes warns on its NaN patterns
        ref = patterns.view(BFLOAT16).astype(np.float64)
    np.testing.assert_array_equal(np.isnan(bf), np.isnan(ref))
    np.testing.assert_array_equal(bf[~np.isnan(ref)], ref[~np.isnan(ref)])


@pytest.mark.parametrize(
    "args",
    [
        (1, 2, 0.1),
        (0, 1, 0.1),
        (-3, 3, 0.3),
        (0.5, 10.25, 0.75),
        (1, 2, 0.1, "float32"),
    ],
    ids=str,
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_arange_gives_numpys_bits(backend: str, args: tuple[Any, ...]) -> None:
    dtype = args[3] if len(args) > 3 else None
    assert_like_numpy(
        [
            (
                f"arange{args}",
                lambda: tb.arange(*args[:3], dtype=dtype, backend=backend),
                lambda: np.arange(*args[:3], dtype=dtype),
                (),
            )
        ],
        backend,
    )


# ==== 7. properties: every backend against NumPy on generated inputs ==============================


# Each example draws its backend: over TB_HYPOTHESIS_EXAMPLES examples every backend is
# compared with NumPy many times, at an eighth of the cost of running each example on all.
_backends = st.sampled_from(BACKENDS)


@given(
    data=st.lists(st.integers(0, 255), min_size=1, max_size=40),
    step=st.integers(1, 3),
    entry=st.sampled_from(sorted(ENTRIES)),
    backend=_backends,
)
def test_property_bool_arrays_of_any_bytes_are_numpy_bools(
    data: list[int], step: int, entry: str, backend: str
) -> None:
    a = np.array(data, np.uint8).view(np.bool_)[::step]
    truth = _truth(a)
    t = make(a, backend, entry)
    assert (t.numpy().view(np.uint8) <= 1).all()
    assert_like_numpy(
        [
            ("sum", lambda: t.sum(), lambda: truth.sum(), ()),
            ("astype(int8)", lambda: t.astype("int8"), lambda: truth.astype(np.int8), ("int8",)),
            ("== True", lambda: t == True, lambda: truth == True, ()),  # noqa: E712
            ("min", lambda: t.min(), lambda: truth.min(), ()),
            ("+ 1", lambda: t + 1, lambda: truth + 1, ()),
        ],
        backend,
    )


def _edge_ints(draw: st.DrawFn, dtype: np.dtype[Any]) -> int:
    info = np.iinfo(np.int64 if dtype == np.bool_ else dtype)
    lo, hi = int(info.min), int(info.max)
    return draw(
        st.one_of(
            st.sampled_from(_int_edges(dtype)),
            st.integers(lo - 3, lo + 3),
            st.integers(hi - 3, hi + 3),
            st.integers(-(2**130), 2**130),
        )
    )


@st.composite
def _int_operand_case(
    draw: st.DrawFn, dtypes: list[np.dtype[Any]], ops: list[str]
) -> tuple[np.ndarray[Any, Any], int, str, bool]:
    dtype = draw(st.sampled_from(dtypes))
    return (
        _edge_array(dtype),
        _edge_ints(draw, dtype),
        draw(st.sampled_from(ops)),
        draw(st.booleans()),
    )


def _int_property(
    case: tuple[np.ndarray[Any, Any], int, str, bool], backend: str, entry: str
) -> None:
    a, v, op, reflected = case
    f = {**_CMP, **_ARITH}[op]
    if lacks(backend, a.dtype):
        return  # asserted by test_python_int_arithmetic_at_the_dtype_edges_answers_as_numpy
    t = make(a, backend, entry)
    if reflected:
        why = mismatch(lambda: f(v, t), lambda: f(v, a), backend)
    else:
        why = mismatch(lambda: f(t, v), lambda: f(a, v), backend)
    assert why is None, f"{'v op t' if reflected else 't op v'}, op {op}, v={v}: {why}"


_NARROW = [d for d in _INT_OPERAND_DTYPES if d not in _WIDE]


_entries = st.sampled_from(sorted(ENTRIES))


@given(
    case=_int_operand_case(_INT_OPERAND_DTYPES, sorted(_ARITH)),
    backend=_backends,
    entry=_entries,
)
def test_property_python_int_arithmetic_at_every_dtypes_edges_answers_as_numpy(
    case: tuple[np.ndarray[Any, Any], int, str, bool], backend: str, entry: str
) -> None:
    _int_property(case, backend, entry)


@given(case=_int_operand_case(_NARROW, sorted(_CMP)), backend=_backends, entry=_entries)
def test_property_python_int_comparisons_at_every_dtypes_edges_are_exact(
    case: tuple[np.ndarray[Any, Any], int, str, bool], backend: str, entry: str
) -> None:
    _int_property(case, backend, entry)


@given(case=_int_operand_case(list(_WIDE), sorted(_CMP)), backend=_backends, entry=_entries)
def test_property_python_int_comparisons_at_int64_and_uint64_edges_are_exact(
    case: tuple[np.ndarray[Any, Any], int, str, bool], backend: str, entry: str
) -> None:
    _int_property(case, backend, entry)


@st.composite
def _numpy_scalar_case(draw: st.DrawFn) -> tuple[np.ndarray[Any, Any], Any, str]:
    dtype = draw(st.sampled_from(ALL_DTYPES))
    sdtype = draw(st.sampled_from(ALL_DTYPES))
    a = np.array(draw(st.lists(st.integers(0, 100), min_size=1, max_size=4))).astype(dtype)
    if is_float(sdtype):
        value: Any = draw(st.floats(-1e3, 1e3, allow_nan=False, width=16))
    else:
        value = draw(st.integers(0, 100))
    op = draw(st.sampled_from(["+", "*", "/", "==", "<", ">="]))
    return a, sdtype.type(value), op


@given(case=_numpy_scalar_case(), reflected=st.booleans(), backend=_backends, entry=_entries)
def test_property_numpy_scalars_are_strong_on_every_backend(
    case: tuple[np.ndarray[Any, Any], Any, str], reflected: bool, backend: str, entry: str
) -> None:
    a, s, op = case
    f = {**_CMP, **_ARITH}[op]
    sdtype = np.asarray(s).dtype
    if lacks(backend, a.dtype):
        return  # asserted by test_numpy_scalars_are_strong_operands_on_every_backend
    t = make(a, backend, entry)
    if reflected:
        why = mismatch(lambda: f(s, t), lambda: f(s, a), backend, (sdtype,))
    else:
        why = mismatch(lambda: f(t, s), lambda: f(a, s), backend, (sdtype,))
    assert why is None, f"{a.dtype} {op} {sdtype}({s}), reflected={reflected}: {why}"


# ==== 8. indexing, object protocols, pandas =======================================================
# (cases to come: advanced indexing, __format__, __index__/__contains__, slice bounds, iteration,
# pandas; see the issue's items 6 and 9)
