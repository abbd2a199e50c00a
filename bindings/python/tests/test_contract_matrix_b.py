"""Contract matrix, issue 11 part B (items 6, 9): every compiled backend × every entry point,
each case checked against NumPy on the same data (or NumPy's exception type).

Cases: iteration over the first axis, pandas, ``format``, ``operator.index``, ``in``, advanced
and basic indexing, slice bounds. (To be folded into the last section of
``test_contract_matrix.py``, whose parametrisation this mirrors.)
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

import tensorbridge as tb

BACKENDS = tb.compiled_backends()


class ArrayLike:
    """Anything with ``__array__`` (pandas, xarray, PIL, ... objects look like this to NumPy)."""

    def __init__(self, a: np.ndarray[Any, Any]) -> None:
        self._a = a

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray[Any, Any]:
        return self._a if dtype is None else self._a.astype(dtype)


def _via_torch(a: np.ndarray[Any, Any], backend: str) -> tb.Tensor:
    import torch

    return tb.from_torch(torch.from_numpy(a.copy())).to(backend=backend)


# Every way an ndarray becomes a tensor on a given backend: the entry points of
# test_contract_matrix.py (same names), plus "view", a strided view reaching the same values.
ENTRIES: dict[str, Callable[[np.ndarray[Any, Any], str], tb.Tensor]] = {
    "tb.tensor": lambda a, b: tb.tensor(a, backend=b),
    "tb.from_numpy": lambda a, b: tb.from_numpy(a).to(backend=b),
    "tb.from_dlpack": lambda a, b: tb.from_dlpack(a, backend=b),
    "buffer": lambda a, b: tb.tensor(memoryview(a), backend=b),
    "__array__": lambda a, b: tb.tensor(ArrayLike(a), backend=b),
    "tb.lazy": lambda a, b: tb.lazy(a, backend=b.split(":")[-1]),
    "view": lambda a, b: tb.tensor(a.T.copy(), backend=b).T,
}
if "torch" in BACKENDS:
    ENTRIES["tb.from_torch"] = _via_torch
LAZY_BACKENDS = [b for b in BACKENDS if tb.backend_info()[b]["lazy"]]

# tb.lazy makes lazy tensors only.
MATRIX = [
    pytest.param(b, e, id=f"{b}-{e}")
    for b in BACKENDS
    for e in ENTRIES
    if e != "tb.lazy" or b in LAZY_BACKENDS
]


def make(backend: str, entry: str, a: np.ndarray[Any, Any]) -> tb.Tensor:
    t = ENTRIES[entry](a, backend)
    assert t.backend == backend
    return t


def check(got: Any, want: Any, t: tb.Tensor) -> None:
    want = np.asarray(want)
    assert isinstance(got, tb.Tensor)
    assert (got.backend, got.device, got.dtype, got.shape) == (
        t.backend,
        t.device,
        want.dtype,
        want.shape,
    )
    np.testing.assert_array_equal(got.numpy(), want)


A = np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 5


@pytest.mark.parametrize(("backend", "entry"), MATRIX)
def test_iteration_list_and_pandas(backend: str, entry: str) -> None:
    t = make(backend, entry, A)
    rows = list(t)
    assert len(rows) == len(A)
    for row, want in zip(rows, A, strict=True):
        check(row, want, t)
    with pytest.raises(TypeError):
        iter(t[0, 0, 0])
    m = t[1]
    pd.testing.assert_frame_equal(pd.DataFrame(m), pd.DataFrame(A[1]))
    pd.testing.assert_series_equal(pd.Series(m[0]), pd.Series(A[1, 0]))


@pytest.mark.parametrize(("backend", "entry"), MATRIX)
def test_format_index_and_in(backend: str, entry: str) -> None:
    t = make(backend, entry, A)
    assert format(t[0, 1, 2], ".2f") == format(A[0, 1, 2], ".2f")
    assert f"{t[1, 2, 3]}" == f"{A[1, 2, 3]}"
    with pytest.raises(TypeError):
        format(t, ".2f")
    i = make(backend, entry, np.array(2, dtype=np.int32))
    assert operator.index(i) == 2 and [0, 10, 20][i] == 20
    with pytest.raises(TypeError):
        operator.index(t[0, 0, 0])
    assert (3.0 in t) == (3.0 in A) and (100.0 in t) == (100.0 in A)


KEYS: list[Any] = [
    A > 2,
    np.array([1, 0]),
    [1, 0],
    (slice(None), [2, 0], slice(1, None)),
    ([0, 1], slice(None), [3, 0]),
    (1, Ellipsis, np.array([True, False, True, True])),
    (None, 0, [0, 0]),
    True,
]


@pytest.mark.parametrize(("backend", "entry"), MATRIX)
@pytest.mark.parametrize("key", KEYS, ids=lambda k: type(k).__name__)
def test_advanced_indexing(backend: str, entry: str, key: Any) -> None:
    t = make(backend, entry, A)
    check(t[key], A[key], t)


@pytest.mark.parametrize(("backend", "entry"), MATRIX)
def test_tensor_indices_and_bad_bounds(backend: str, entry: str) -> None:
    t = make(backend, entry, A)
    check(t[t > 2], A[A > 2], t)
    check(t[:, make(backend, entry, np.array([2, 0]))], A[:, [2, 0]], t)
    check(t[make(backend, entry, np.array(1))], A[1], t)
    for key in (slice(2.0, None), slice(None, 2.0), slice(None, None, 2.0)):
        with pytest.raises(TypeError):
            A[key]
        with pytest.raises(TypeError):
            t[key]
    for key in (2.0, [0.5], (0, "x")):
        with pytest.raises(IndexError):
            A[key]
        with pytest.raises(IndexError):
            t[key]
