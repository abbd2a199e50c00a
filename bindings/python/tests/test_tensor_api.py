"""The Tensor object: properties, ``len``, basic indexing (views), Python scalars from one-element
tensors, ``tolist`` and ``repr``."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest
from numpy_reference import ALL_DTYPES, assert_same_array, dtype_id, sample_array

import tensorbridge as tb


def test_properties() -> None:
    t = tb.tensor(np.zeros((2, 3, 4), dtype=np.float32))
    assert t.shape == (2, 3, 4) and isinstance(t.shape, tuple)
    assert t.dtype == np.float32 and isinstance(t.dtype, np.dtype)
    assert t.ndim == 3
    assert t.size == 24
    assert t.itemsize == 4 and t.nbytes == 96
    assert t.backend == "cpu"
    assert t.device == "cpu"
    assert t.is_contiguous and not t.T.is_contiguous


def test_synchronize_waits_for_the_device_and_returns_none() -> None:
    t = tb.arange(6, dtype="float32") * 2
    assert t.synchronize() is None
    assert t.T.synchronize() is None  # views too
    np.testing.assert_array_equal(t.numpy(), np.arange(6, dtype=np.float32) * 2)


def test_properties_of_0d_and_zero_size_tensors() -> None:
    s = tb.tensor(5)
    assert (s.shape, s.ndim, s.size) == ((), 0, 1)
    z = tb.zeros((3, 0))
    assert (z.shape, z.ndim, z.size) == ((3, 0), 2, 0)


def test_tensor_is_immutable() -> None:
    t = tb.tensor([1, 2])
    with pytest.raises(AttributeError):
        t.shape = (1, 2)  # type: ignore[misc]
    with pytest.raises(TypeError):
        t[0] = 5  # type: ignore[index]


def test_len_is_the_first_dimension() -> None:
    assert len(tb.zeros((4, 2))) == 4
    assert len(tb.zeros((0, 2))) == 0
    with pytest.raises(TypeError, match="0-d"):
        len(tb.tensor(1.0))


# ---- indexing ------------------------------------------------------------------------------------

_A = np.arange(60).reshape(3, 4, 5)


@pytest.mark.parametrize(
    "index",
    [
        1,
        -1,
        np.int64(2),
        (1, 2),
        (-1, -2, -3),
        slice(None),
        slice(None, None, 2),
        slice(None, None, -1),
        slice(-1, 0, -2),
        slice(10, -10, -3),
        slice(-100, 100),
        slice(2, 1),
        (slice(None), slice(1, 3), slice(None, None, -2)),
        Ellipsis,
        (Ellipsis, 0),
        (0, Ellipsis),
        (1, Ellipsis, slice(None, None, -1)),
        None,
        (None, 1, None),
        (Ellipsis, None),
        (slice(None, None, 2), None, Ellipsis, 3),
        (),
        slice(None, None, 10**30),
        slice(-(10**30), 10**30),
    ],
    ids=repr,
)
def test_basic_indexing_matches_numpy_and_is_a_view(index: Any) -> None:
    t = tb.tensor(_A)
    v = t[index]
    assert isinstance(v, tb.Tensor)
    expected = np.asarray(_A[index])
    assert_same_array(v.numpy(), expected)
    if expected.size:
        assert np.shares_memory(v.numpy(), t.numpy())


def test_indexing_errors() -> None:
    t = tb.tensor(_A)
    with pytest.raises(IndexError, match="out of bounds"):
        t[3]
    with pytest.raises(IndexError, match="out of bounds"):
        t[0, -5]
    with pytest.raises(IndexError, match="too many indices"):
        t[0, 0, 0, 0]
    with pytest.raises(IndexError, match="ellipsis"):
        t[..., 0, ...]
    with pytest.raises(ValueError, match="step"):
        t[::0]
    # Advanced indexing is NumPy's (a copy); a float index is NumPy's IndexError.
    assert (t[[0, 1]].numpy() == _A[[0, 1]]).all()
    assert t[True].shape == _A[True].shape
    with pytest.raises(IndexError, match="only integers"):
        t[1.5]
    with pytest.raises(IndexError):
        tb.tensor(1.0)[0]


def test_iteration_yields_subtensors() -> None:
    rows = list(tb.tensor([[1, 2], [3, 4]]))
    assert [r.tolist() for r in rows] == [[1, 2], [3, 4]]


# ---- Python scalars ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=dtype_id)
def test_item_and_tolist_match_numpy(dtype: np.dtype[Any]) -> None:
    a = sample_array(np.random.default_rng(3), dtype, (2, 3))
    t = tb.tensor(a)
    expected_list = a.astype(np.float32).tolist() if dtype == ml_dtypes.bfloat16 else a.tolist()
    assert t.tolist() == expected_list
    assert [type(x) for x in t.tolist()[0]] == [type(x) for x in expected_list[0]]
    one = t[1, 2]
    assert one.item() == expected_list[1][2]
    assert type(one.item()) is type(expected_list[1][2])
    assert tb.tensor(a[:1, :1]).item() == expected_list[0][0]


@pytest.mark.parametrize("backend", tb.compiled_backends())
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=dtype_id)
def test_tolist_of_views_matches_numpy_on_every_backend(backend: str, dtype: np.dtype[Any]) -> None:
    # Host memory is read element by element in place; the values and the Python types (bool,
    # int, float) are NumPy's `tolist()`, bfloat16 widened to float as through float32.
    if backend.split(":")[-1] == "candle" and str(dtype) in {"int8", "uint16", "uint64"}:
        pytest.skip(f"candle has no {dtype} dtype")
    a = sample_array(np.random.default_rng(5), dtype, (3, 4))
    t = tb.tensor(a, backend=backend)

    def reference(x: Any) -> Any:
        x = np.asarray(x)
        return (x.astype(np.float32) if dtype == ml_dtypes.bfloat16 else x).tolist()

    views = [
        (t, a),
        (t.T, a.T),
        (t[::-1, ::2], a[::-1, ::2]),
        (t[1], a[1]),
        (t[1, 2], a[1, 2]),
        (t[:0], a[:0]),
        (t[:, :0], a[:, :0]),
        (t[None, :, 1], a[None, :, 1]),
    ]
    for view, expected in views:
        # repr tells True from 1 from 1.0, and nan equals nan.
        assert repr(view.tolist()) == repr(reference(expected))


def test_tolist_of_0d_and_empty() -> None:
    assert tb.tensor(2.5).tolist() == 2.5
    assert tb.zeros((2, 0)).tolist() == [[], []]


@pytest.mark.parametrize("value", [0, 3, -2.5, True, False])
def test_bool_int_float_of_one_element_tensors(value: Any) -> None:
    for t in (tb.tensor(value), tb.tensor([value]), tb.tensor([[value]])):
        v = np.asarray(t).item()  # NumPy 2.4 refuses int() of a non-0-d array; tensors allow it
        assert bool(t) is bool(v)
        assert int(t) == int(v) and type(int(t)) is int
        assert float(t) == float(v) and type(float(t)) is float


@pytest.mark.parametrize("backend", tb.compiled_backends())
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=dtype_id)
def test_item_bool_int_float_of_one_element_views_match_numpy_on_every_backend(
    backend: str, dtype: np.dtype[Any]
) -> None:
    # One element read in place (host memory) or through NumPy: NumPy's `item()` value and type
    # (bfloat16 widened to float as through float32), at an offset, through negative and
    # transposed strides, 0-d, and from an unevaluated lazy expression.
    if backend.split(":")[-1] == "candle" and str(dtype) in {"int8", "uint16", "uint64"}:
        pytest.skip(f"candle has no {dtype} dtype")
    a = sample_array(np.random.default_rng(7), dtype, (3, 4))
    t = tb.tensor(a, backend=backend)
    wide = a.astype(np.float32) if dtype == ml_dtypes.bfloat16 else a
    views = [
        (t[1, 2], wide[1, 2]),
        (t[2:3, 3], wide[2:3, 3]),
        (t.T[1:2, ::-1][:, :1], wide.T[1:2, ::-1][:, :1]),
        (t[::-1][None, 0, 1:2], wide[::-1][None, 0, 1:2]),
        (tb.tensor(a[0, 0], backend=backend), wide[0, 0]),
    ]
    if dtype.kind == "f":
        views.append((t[1:2, 0] * 1, (wide[1:2, 0] * 1).astype(wide.dtype)))  # lazy: a graph
    for view, expected in views:
        want = np.asarray(expected).item()
        # repr tells True from 1 from 1.0, and nan equals nan.
        assert repr(view.item()) == repr(want), (view, expected)
        assert repr(float(view)) == repr(float(want))
        assert bool(view) is bool(want)
        assert int(view) == int(want) and type(int(view)) is int
    if dtype.kind == "f" or dtype == ml_dtypes.bfloat16:
        special = np.array([np.nan, -np.inf, -0.0], dtype=dtype)
        s = tb.tensor(special, backend=backend)
        for i, error in ((0, ValueError), (1, OverflowError), (2, None)):
            want = special[i : i + 1].astype(np.float64).item()
            assert repr(s[i].item()) == repr(want) and repr(float(s[i])) == repr(want)
            assert bool(s[i]) is bool(want)
            if error is None:
                assert int(s[i]) == 0
            else:
                with pytest.raises(error):  # Python's int() of NaN and of an infinity
                    int(s[i])


@pytest.mark.parametrize("shape", [(2,), (0,), (2, 2), (1, 0)])
def test_scalar_conversions_of_other_tensors_are_value_errors(shape: tuple[int, ...]) -> None:
    t = tb.zeros(shape)
    for convert in (bool, int, float, lambda x: x.item()):
        with pytest.raises(ValueError, match=r"element|ambiguous"):
            convert(t)


def test_int_of_nan_is_a_value_error_like_python() -> None:
    with pytest.raises(ValueError, match="NaN"):
        int(tb.tensor(float("nan")))


# ---- repr ------------------------------------------------------------------------------------------


def test_repr_shows_values_like_numpy_plus_metadata() -> None:
    t = tb.tensor([[1, 2], [4, 8]]) * 2
    assert repr(t) == (
        "tb.Tensor([[ 2  4]\n [ 8 16]], shape=(2, 2), dtype=int64, backend=cpu, device=cpu)"
    )
    assert str(t) == repr(t)


@pytest.mark.parametrize(
    ("t", "expected"),
    [
        (tb.tensor(1.5), "tb.Tensor(1.5, shape=(), dtype=float64, backend=cpu, device=cpu)"),
        (
            tb.tensor([True, False]),
            "tb.Tensor([ True False], shape=(2,), dtype=bool, backend=cpu, device=cpu)",
        ),
        (
            tb.tensor([1.5, 2.0], dtype="float32"),
            "tb.Tensor([1.5 2. ], shape=(2,), dtype=float32, backend=cpu, device=cpu)",
        ),
        (
            tb.tensor([1.5, -2.0], dtype="bfloat16"),
            "tb.Tensor([ 1.5 -2. ], shape=(2,), dtype=bfloat16, backend=cpu, device=cpu)",
        ),
        (tb.zeros((0, 2)), "tb.Tensor([], shape=(0, 2), dtype=float64, backend=cpu, device=cpu)"),
    ],
    ids=["0-d", "bool", "float32", "bfloat16", "empty"],
)
def test_repr_of_other_dtypes_and_shapes(t: tb.Tensor, expected: str) -> None:
    assert repr(t) == expected


def test_repr_of_a_large_tensor_is_summarised() -> None:
    r = repr(tb.arange(100_000))
    assert "..." in r and r.endswith("shape=(100000,), dtype=int64, backend=cpu, device=cpu)")


def test_numpy_reduction_functions_dispatch_to_tensor_methods() -> None:
    a = np.arange(12, dtype=np.int32).reshape(3, 4)
    t = tb.tensor(a)
    # np.sum/np.mean/np.max/np.min call t.sum(axis=, dtype=, out=, ...) on non-ndarrays.
    assert_same_array(np.asarray(np.sum(t)), np.asarray(np.sum(a)))
    assert_same_array(
        np.asarray(np.sum(t, axis=1, keepdims=True)), np.sum(a, axis=1, keepdims=True)
    )
    assert_same_array(np.asarray(np.max(t, axis=0)), np.max(a, axis=0))
    assert_same_array(np.asarray(np.min(t)), np.asarray(np.min(a)))
    np.testing.assert_allclose(np.asarray(np.mean(t, axis=0)), np.mean(a, axis=0))
    assert_same_array(np.asarray(t.sum(dtype=np.float32)), np.asarray(a.sum(dtype=np.float32)))
    with pytest.raises(TypeError, match="out="):
        np.sum(t, out=np.zeros(()))


def test_huge_slice_steps_select_one_element() -> None:
    a = np.arange(10)
    t = tb.tensor(a)
    assert_same_array(np.asarray(t[:: 10**30]), a[:: 10**30])
    assert_same_array(np.asarray(t[:: -(10**30)]), a[:: -(10**30)])
    assert_same_array(np.asarray(t[:: 2**62]), a[:: 2**62])
