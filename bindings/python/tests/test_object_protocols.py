"""The Python object protocols, with NumPy's answers, on every compiled backend: indexing (basic
and advanced, checked against NumPy on the same key), slice bounds, iteration, ``in``,
``operator.index`` and ``format``."""

from __future__ import annotations

import operator
import re
from typing import Any

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tensorbridge as tb

BACKENDS = tb.compiled_backends()
# dtypes a backend does not have: creating a tensor of one is a TypeError naming the backend.
LACKS = {"candle": {"uint16", "uint64", "int8"}}
INT_DTYPES = ["uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64"]
ALL_DTYPES = ["bool", *INT_DTYPES, "float16", "bfloat16", "float32", "float64"]


def lacks(backend: str, dtype: str) -> bool:
    return dtype in LACKS.get(backend.split(":")[-1], set())


def on(backend: str, a: Any) -> tb.Tensor | None:
    """``a`` on ``backend``, or None after asserting the TypeError of a dtype it lacks."""
    a = np.asarray(a)
    if lacks(backend, a.dtype.name):
        with pytest.raises(TypeError, match=a.dtype.name):
            tb.tensor(a, backend=backend)
        return None
    return tb.tensor(a, backend=backend)


def same(got: Any, want: np.ndarray[Any, Any], t: tb.Tensor) -> None:
    """``got`` is a tensor on ``t``'s backend and device holding exactly ``want``."""
    assert isinstance(got, tb.Tensor), type(got)
    assert (got.backend, got.device) == (t.backend, t.device)
    assert got.dtype == want.dtype
    assert got.shape == want.shape
    np.testing.assert_array_equal(got.numpy(), want)


def outcome(f: Any) -> tuple[str, Any]:
    try:
        return "ok", f()
    except (IndexError, TypeError, ValueError) as e:
        return type(e).__name__, e


# ---- advanced indexing ----------------------------------------------------------------------

A = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
KEYS: list[Any] = [
    [1, 0],
    [[0, 1], [1, 1]],
    np.array([0, 1]),
    np.array([-1, 0, -2]),
    (slice(None), [2, 0]),
    (1, [2, 0]),
    ([0, 1], slice(None), [3, 0]),  # advanced items apart: their axes go first (NumPy's rule)
    (slice(None), [0, 2], [1, 3]),  # adjacent: they stay in place
    (Ellipsis, [0, 3]),
    (None, [1, 0]),
    ([1], None, slice(None, None, -1), 0),
    (np.array([[0], [1]]), np.array([0, 2])),  # broadcast index arrays
    A > 10,
    A[:, :, 0] > 3,
    (slice(None), np.array([True, False, True])),
    np.array([True, False]),
    True,
    False,
    np.True_,
    (0, True),
    (Ellipsis, False),
    [],
    (1, slice(None), []),
    np.array([], dtype=np.int64),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("key", KEYS, ids=repr)
def test_advanced_indexing_is_numpys_copy_on_the_tensors_backend(backend: str, key: Any) -> None:
    t = tb.tensor(A, backend=backend)
    same(t[key], A[key], t)


@pytest.mark.parametrize("backend", BACKENDS)
def test_tensors_as_indices_mask_and_integer(backend: str) -> None:
    a = np.array([[1, 5, 2], [7, 3, 9]], dtype=np.int32)
    t = tb.tensor(a, backend=backend)
    same(t[t > 2], a[a > 2], t)
    same(t[tb.tensor([1, 0, 1], backend=backend)], a[np.array([1, 0, 1])], t)
    same(t[:, tb.tensor([2, 0])], a[:, [2, 0]], t)  # the index on another backend: fine
    same(t[tb.tensor([[True], [False]])[:, 0]], a[np.array([True, False])], t)
    same(t[tb.tensor(True)], a[np.array(True)], t)
    # A 0-d integer tensor is an integer: basic indexing, a view.
    same(t[tb.tensor(1)], a[np.array(1)], t)
    same(t[1, tb.tensor(-1, dtype="int8")], a[1, np.array(-1)], t)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_result_of_advanced_indexing_is_a_copy(backend: str) -> None:
    a = np.arange(6.0)
    t = tb.from_numpy(a) if backend == "cpu" else tb.tensor(a, backend=backend)
    picked = t[[4, 1]]
    mask = t[t > 3]
    a[:] = -1  # on cpu, t shares a's memory: the results must not
    np.testing.assert_array_equal(picked.numpy(), [4.0, 1.0])
    np.testing.assert_array_equal(mask.numpy(), [4.0, 5.0])
    # Basic indexing stays a view (visible through t on cpu).
    if backend == "cpu":
        assert t[1:3].numpy().tolist() == [-1.0, -1.0]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_advanced_indexing_keeps_every_dtype(backend: str, dtype: str) -> None:
    a = np.array([[0, 1, 2], [3, 0, 5]]).astype(
        ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype
    )
    t = on(backend, a)
    if t is None:
        return
    same(t[[1, 0], [2, 2]], a[[1, 0], [2, 2]], t)
    same(t[a > 0], a[a > 0], t)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "key",
    [
        [3],
        np.array([-4]),
        [0.0],
        np.array([1.5]),
        2.0,
        np.float32(1),
        "a",
        (0, 0, 0, 0),
        np.array([True, False, True]),  # wrong mask length
        ([0, 1], [0, 1, 2]),  # index arrays that do not broadcast
        (Ellipsis, Ellipsis),
        (slice(None), slice(None), [1]),
        object(),
        1j,
    ],
    ids=repr,
)
def test_bad_keys_raise_numpys_exception_type(backend: str, key: Any) -> None:
    a = np.arange(6.0).reshape(3, 2)[:2]
    t = tb.tensor(a, backend=backend)
    want, err = outcome(lambda: a[key])
    assert want != "ok", f"NumPy accepts {key!r}"
    with pytest.raises(type(err)):
        t[key]


@pytest.mark.skipif("counted:candle" not in BACKENDS, reason="no counted:candle in this build")
def test_advanced_indexing_of_backend_memory_obeys_the_transfer_guard() -> None:
    """Memory NumPy cannot read in place (a GPU's; without one, counted:candle's, which hides its
    host memory): advanced indexing copies it to the host for NumPy, an implicit transfer that
    ``tb.transfer_guard`` governs."""
    t = tb.tensor(np.arange(6.0), backend="counted:candle")
    try:
        with tb.transfer_guard("disallow"):
            assert t[1:4:2].shape == (2,)  # basic indexing: a view on the device, no transfer
            with pytest.raises(RuntimeError, match="advanced indexing"):
                t[[0, 1]]
            with pytest.raises(RuntimeError, match="advanced indexing"):
                t[t > 2]
    finally:
        tb.transfer_guard("allow")
    same(t[[5, 0]], np.array([5.0, 0.0]), t)


# Every key a NumPy user might write, compared with NumPy: items drawn per axis (integers in and
# out of range, slices with any bounds and steps, integer arrays of one shared shape, bool masks),
# with None and ... inserted anywhere.
def _keys(shape: tuple[int, ...]) -> st.SearchStrategy[Any]:
    index_shape = st.sampled_from([(), (2,), (1, 3), (0,)])

    def item(n: int, ishape: tuple[int, ...]) -> st.SearchStrategy[Any]:
        size = int(np.prod(ishape))
        bound = st.none() | st.integers(-n - 2, n + 2)
        step = st.sampled_from([None, -3, -2, -1, 1, 2, 3])
        return st.one_of(
            st.integers(-n - 1, n),
            st.builds(slice, bound, bound, step),
            st.lists(st.integers(-n, max(n - 1, 0)), min_size=0, max_size=3),
            st.lists(st.integers(-n, max(n - 1, 0)), min_size=size, max_size=size).map(
                lambda v: np.array(v, dtype=np.int64).reshape(ishape)
            ),
            st.lists(st.booleans(), min_size=n, max_size=n).map(np.array),
            st.booleans(),
        )

    @st.composite
    def key(draw: Any) -> Any:
        ishape = draw(index_shape)
        items = [draw(item(n, ishape)) for n in shape[: draw(st.integers(0, len(shape)))]]
        for extra in draw(st.lists(st.sampled_from([None, Ellipsis]), max_size=2)):
            items.insert(draw(st.integers(0, len(items))), extra)
        if len(items) == 1 and draw(st.booleans()):
            return items[0]
        return tuple(items)

    return key()


@st.composite
def _array_and_key(draw: Any) -> tuple[np.ndarray[Any, Any], Any]:
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=0, max_size=3)))
    a = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    return a, draw(_keys(shape))


def _as_tensor(k: Any) -> Any:
    return tb.tensor(k) if isinstance(k, np.ndarray) else k


# A quarter of the suite's example count: drawing keys is the slow part (~10 ms each here).
@settings(max_examples=max(50, settings.default.max_examples // 4))
@given(backend=st.sampled_from(BACKENDS), case=_array_and_key(), via_tensors=st.booleans())
def test_any_key_gives_numpys_answer_or_numpys_exception(
    backend: str, case: tuple[np.ndarray[Any, Any], Any], via_tensors: bool
) -> None:
    a, key = case
    t = tb.tensor(a, backend=backend)
    tkey = key
    if via_tensors:  # the same key with its arrays as tensors
        tkey = tuple(map(_as_tensor, key)) if isinstance(key, tuple) else _as_tensor(key)
    kind, want = outcome(lambda: a[key])
    if kind != "ok":
        with pytest.raises(type(want)):
            t[tkey]
        return
    same(t[tkey], np.asarray(want), t)


# ---- slice bounds and integers ---------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "key",
    [
        slice(2.0, None),
        slice(None, 2.0),
        slice(None, None, 2.0),
        slice(np.float64(1), None),
        slice("1", None),
        slice(None, np.array([1])),
    ],
    ids=repr,
)
def test_slice_bounds_that_are_not_integers_raise_typeerror(backend: str, key: slice) -> None:
    a = np.arange(5.0)
    with pytest.raises(TypeError) as numpys:
        a[key]
    # NumPy's message too ("slice indices must be integers or None or have an __index__
    # method", or the bound's own __index__ error).
    with pytest.raises(TypeError, match=re.escape(str(numpys.value))):
        tb.tensor(a, backend=backend)[key]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "key",
    [
        slice(np.int64(1), np.uint8(4)),
        slice(True, None),
        slice(None, None, np.int32(-2)),
        slice(np.array(1), None),
        slice(tb.tensor(1), tb.tensor(-1, dtype="int8")),
        slice(-(2**70), 2**70),
        np.int16(-1),
        (np.uint64(1),),
        np.int64(-5),
        np.uint8(4),
        (np.intp(2), None),
        tb.tensor(2, dtype="uint8"),
    ],
    ids=repr,
)
def test_index_objects_are_accepted_as_numpy_does(backend: str, key: Any) -> None:
    a = np.arange(5.0)
    t = tb.tensor(a, backend=backend)
    np_key = (
        slice(
            *(
                np.asarray(v) if isinstance(v, tb.Tensor) else v
                for v in (key.start, key.stop, key.step)
            )
        )
        if isinstance(key, slice)
        else key
    )
    if isinstance(np_key, tb.Tensor):
        np_key = np.asarray(np_key)
    same(t[key], np.asarray(a[np_key]), t)


@pytest.mark.parametrize("backend", BACKENDS)
def test_numpy_integer_indices_out_of_range_are_index_errors(backend: str) -> None:
    # As for Python ints: IndexError, also for a 0-d integer array and one index too many.
    a = np.arange(5.0)
    t = tb.tensor(a, backend=backend)
    for key in (np.int64(5), np.int8(-6), np.uint64(9), np.array(7), (np.int32(0), 1)):
        with pytest.raises(IndexError):
            a[key]
        with pytest.raises(IndexError):
            t[key]


@pytest.mark.parametrize("backend", BACKENDS)
def test_integer_indices_beyond_int64_raise_numpys_exception(backend: str) -> None:
    # NumPy reads an index through C `unsigned long`: from 2**63 to 2**64 - 1 that is an
    # OverflowError, further out an IndexError. The message names the index the caller passed.
    a = np.arange(6.0).reshape(2, 3)
    t = tb.tensor(a, backend=backend)
    cases = [
        (2**63, OverflowError),
        (np.uint64(2**63), OverflowError),
        (np.uint64(2**64 - 1), OverflowError),
        ((0, 2**64 - 1), OverflowError),
        (2**64, IndexError),
        (-(2**63) - 1, IndexError),
        (2**70, IndexError),
        ((1, -(2**70)), IndexError),
    ]
    for key, error in cases:
        with pytest.raises(error):
            a[key]
        with pytest.raises(error) as raised:
            t[key]
        shown = key[-1] if isinstance(key, tuple) else key
        assert str(int(shown)) in str(raised.value)


# ---- iteration, in, operator.index, format ---------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_iteration_runs_over_the_first_axis_yielding_tensors(backend: str) -> None:
    a = np.arange(12, dtype=np.int32).reshape(3, 2, 2)
    t = tb.tensor(a, backend=backend)
    rows = list(t)
    assert len(rows) == 3
    for row, want in zip(rows, a, strict=True):
        same(row, want, t)
    items = [x for x in tb.tensor([1.5, 2.5], backend=backend)]
    assert [x.shape for x in items] == [(), ()]
    assert [float(x) for x in items] == [1.5, 2.5]
    assert list(tb.tensor(np.zeros((0, 3)), backend=backend)) == []
    assert operator.length_hint(iter(t)) == 3
    with pytest.raises(TypeError, match="0-d"):
        iter(tb.tensor(1.0, backend=backend))
    with pytest.raises(TypeError):
        list(tb.tensor(1.0, backend=backend))


@pytest.mark.parametrize("backend", BACKENDS)
def test_in_is_numpys_any_of_equal(backend: str) -> None:
    a = np.array([[1.0, 2.0], [3.0, np.nan]])
    t = tb.tensor(a, backend=backend)
    for v in (1, 2.0, 4, np.nan, True, np.float32(3), [3.0, 5.0], [0.0, 0.0], "x"):
        assert (v in t) == (v in a), v
    assert (1 in tb.tensor(np.zeros((0,)), backend=backend)) is False
    assert (tb.tensor([1.0, 2.0], backend=backend) in t) is True


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_operator_index_is_for_0d_integer_tensors(backend: str, dtype: str) -> None:
    a = np.array(2).astype(ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype)
    t = on(backend, a)
    if t is None:
        return
    if dtype in INT_DTYPES:
        assert operator.index(t) == operator.index(a) == 2
        assert type(operator.index(t)) is int
        assert ["a", "b", "c"][t] == "c"
        assert list(range(t)) == [0, 1]
    else:
        with pytest.raises(TypeError):
            operator.index(a)
        with pytest.raises(TypeError, match="integer scalar"):
            operator.index(t)
    with pytest.raises(TypeError):
        operator.index(on(backend, a.reshape(1)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_format_of_a_0d_tensor_is_its_numpy_scalars(backend: str, dtype: str) -> None:
    np_dtype = ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype
    a = np.array([[2.718281828, 0.0], [1.0, 3.0]]).astype(np_dtype)
    t = on(backend, a)
    if t is None:
        return
    specs = ["", ">8", "^9"]
    specs += ["d", "x", "+05d"] if dtype in INT_DTYPES else []
    specs += [".2f", "e", "g", ".3%", "10.4f"] if dtype.startswith(("float", "bfloat")) else []
    for spec in specs:
        assert format(t[0, 0], spec) == format(a[0, 0], spec), spec
        assert f"{t[1, 1]:{spec}}" == f"{a[1, 1]:{spec}}", spec
    assert format(t, "") == str(t)
    with pytest.raises(TypeError, match="unsupported format string"):
        format(t, ".2f")
