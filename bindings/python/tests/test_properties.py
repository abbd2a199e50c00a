"""Property tests against NumPy: conversion of random views of random arrays of every dtype, and
arithmetic, comparisons, reductions and matmul with NumPy's promotion (NEP 50 included).

Each runs ``TB_HYPOTHESIS_EXAMPLES`` examples (see conftest.py)."""

from __future__ import annotations

import operator
import warnings
from typing import Any

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, note
from numpy_reference import (
    ALL_DTYPES,
    BFLOAT16,
    assert_close,
    assert_same_array,
    assert_values_equal,
    is_float,
)

import tensorbridge as tb

pytestmark = pytest.mark.filterwarnings("error::DeprecationWarning")

dtypes = st.sampled_from(ALL_DTYPES)
shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)


@st.composite
def any_arrays(draw: st.DrawFn) -> np.ndarray:
    """An array of any dtype with arbitrary bits (NaNs with payloads, infinities, -0.0,
    subnormals); bool arrays hold 0 or 1."""
    dtype = draw(dtypes)
    shape = draw(shapes)
    if dtype == np.bool_:
        return draw(hnp.arrays(np.bool_, shape))
    raw = draw(hnp.arrays(np.dtype(f"u{dtype.itemsize}"), shape))
    return raw.view(dtype)


@st.composite
def arrays_and_views(draw: st.DrawFn) -> tuple[np.ndarray, Any, tuple[int, ...]]:
    """An array, a basic index into it (ints, slices with any step, ``...``, ``None``) and an
    axis permutation of the indexed result."""
    a = draw(any_arrays())
    index = draw(hnp.basic_indices(a.shape, allow_newaxis=True, allow_ellipsis=True))
    ndim = np.asarray(a[index]).ndim
    perm = tuple(draw(st.permutations(range(ndim))))
    return a, index, perm


def _strides_of_long_axes(a: np.ndarray) -> tuple[int, ...]:
    """The strides of the axes longer than 1 (a length-1 axis's stride means nothing)."""
    return tuple(s for s, n in zip(a.strides, a.shape) if n > 1)


@given(arrays_and_views())
def test_views_of_any_dtype_convert_bit_exactly_and_zero_copy(
    case: tuple[np.ndarray, Any, tuple[int, ...]],
) -> None:
    a, index, perm = case
    note(f"dtype={a.dtype} shape={a.shape} index={index!r} perm={perm}")
    t = tb.tensor(a)
    base = t.numpy()

    got = t[index].T.numpy()
    assert_same_array(got, np.asarray(a[index].T))
    assert not got.flags.writeable
    if got.size:
        assert np.shares_memory(got, base), "a strided view converts without a copy"

    permuted = t[index].transpose(*perm) if perm else t[index]
    expected = np.asarray(a[index]).transpose(perm)
    assert_same_array(permuted.numpy(), expected)
    copied = permuted.numpy(copy=True)
    assert_same_array(copied, expected)
    assert copied.flags.writeable and copied.flags.c_contiguous
    # NumPy's entry points: the same values; np.array keeps NumPy's order "K" exactly.
    assert_same_array(np.asarray(permuted), expected)
    assert_same_array(np.ascontiguousarray(permuted), np.ascontiguousarray(expected))
    kept = np.array(permuted)
    assert_same_array(kept, expected)
    assert _strides_of_long_axes(kept) == _strides_of_long_axes(np.array(expected)), "order='K'"


@given(arrays_and_views())
def test_from_numpy_views_any_strided_array_without_copying(
    case: tuple[np.ndarray, Any, tuple[int, ...]],
) -> None:
    a, index, perm = case
    view = a[index]
    src = np.asarray(view).transpose(perm)
    t = tb.from_numpy(src)
    assert t.shape == src.shape and t.dtype == src.dtype
    out = t.numpy()
    assert_same_array(out, src)
    if isinstance(view, np.ndarray) and src.size:
        assert np.shares_memory(out, a)


# ---- arithmetic ------------------------------------------------------------------------------------

_SMALL = {"signed": (-20, 21), "unsigned": (0, 41)}


def _values(draw: st.DrawFn, dtype: np.dtype[Any], shape: tuple[int, ...]) -> np.ndarray:
    """Small values every dtype holds exactly, so results depend on the op, not on lossy casts."""
    if dtype == np.bool_:
        return draw(hnp.arrays(np.bool_, shape))
    low, high = _SMALL["unsigned" if dtype.kind == "u" else "signed"]
    ints = draw(hnp.arrays(np.int64, shape, elements=st.integers(low, high - 1)))
    if is_float(dtype):
        return (ints / 4).astype(dtype)
    return ints.astype(dtype)


_BINARY = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "==": operator.eq,
    "<": operator.lt,
    ">": operator.gt,
}


@st.composite
def binary_cases(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, str]:
    shapes_pair = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_side=0, max_side=4))
    a = _values(draw, draw(dtypes), shapes_pair.input_shapes[0])
    b = _values(draw, draw(dtypes), shapes_pair.input_shapes[1])
    return a, b, draw(st.sampled_from(sorted(_BINARY)))


def _numpy_or_error(f: Any, *args: Any) -> Any:
    with np.errstate(all="ignore"):
        try:
            return f(*args)
        except (TypeError, ValueError, OverflowError) as e:
            return e


# NumPy raises OverflowError for an out-of-range Python int (NEP 50); so does tensorbridge, naming
# the value and the dtype.
_EXPECTED_ERROR = {TypeError: TypeError, ValueError: ValueError, OverflowError: OverflowError}


def _check_against_numpy(got_f: Any, expected: Any) -> None:
    if isinstance(expected, Exception):
        with pytest.raises(_EXPECTED_ERROR[type(expected)]):
            got_f()
        return
    got = got_f()
    assert isinstance(got, tb.Tensor)
    assert_values_equal(got.numpy(), expected)


@given(binary_cases())
def test_binary_ops_between_tensors_match_numpy(case: tuple[np.ndarray, np.ndarray, str]) -> None:
    a, b, op = case
    note(f"{a.dtype}{a.shape} {op} {b.dtype}{b.shape}")
    f = _BINARY[op]
    expected = _numpy_or_error(f, a, b)
    _check_against_numpy(lambda: f(tb.tensor(a), tb.tensor(b)), expected)


python_scalars = st.one_of(
    st.booleans(),
    st.integers(-300, 300),
    st.sampled_from([0.5, -2.25, 3.0, 0.0]),
)


@given(
    st.sampled_from(ALL_DTYPES),
    shapes,
    python_scalars,
    st.sampled_from(sorted(_BINARY)),
    st.booleans(),
    st.data(),
)
def test_ops_with_python_scalars_follow_nep50(
    dtype: np.dtype[Any], shape: tuple[int, ...], s: Any, op: str, reflected: bool, data: Any
) -> None:
    a = data.draw(_drawn_values(dtype, shape))
    note(f"{dtype}{shape} {op} {s!r} reflected={reflected}")
    f = _BINARY[op]
    args = (s, a) if reflected else (a, s)
    if dtype == BFLOAT16 and isinstance(s, float) and op in ("+", "-", "*", "/"):
        # ml_dtypes' legacy promotion gives float32 here; tensorbridge keeps the weak-scalar rule
        # (NEP 50: a Python float takes the float tensor's dtype), as JAX and PyTorch do.
        ref = (s, a.astype(np.float32)) if reflected else (a.astype(np.float32), s)
        expected = _numpy_or_error(lambda: f(*ref).astype(BFLOAT16))
    else:
        expected = _numpy_or_error(f, *args)
    t = tb.tensor(a)
    targs = (s, t) if reflected else (t, s)
    _check_against_numpy(lambda: f(*targs), expected)


def _drawn_values(dtype: np.dtype[Any], shape: tuple[int, ...]) -> st.SearchStrategy[np.ndarray]:
    return st.composite(lambda draw: _values(draw, dtype, shape))()


@given(st.sampled_from(ALL_DTYPES), shapes, st.data())
def test_negation_matches_numpy(dtype: np.dtype[Any], shape: tuple[int, ...], data: Any) -> None:
    a = data.draw(_drawn_values(dtype, shape))
    expected = _numpy_or_error(operator.neg, a)
    _check_against_numpy(lambda: -tb.tensor(a), expected)


# ---- reductions ----------------------------------------------------------------------------------

_REDUCTIONS = ["sum", "mean", "max", "min"]


@given(
    st.sampled_from(ALL_DTYPES),
    shapes,
    st.sampled_from(_REDUCTIONS),
    st.booleans(),
    st.data(),
)
def test_reductions_match_numpy_dtype_and_values(
    dtype: np.dtype[Any], shape: tuple[int, ...], name: str, keepdims: bool, data: Any
) -> None:
    a = data.draw(_drawn_values(dtype, shape))
    axis = data.draw(st.none() | st.integers(-len(shape), len(shape) - 1)) if shape else None
    note(f"{name}({dtype}{shape}, axis={axis}, keepdims={keepdims})")
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the mean of an empty array is NaN
        try:
            if dtype == BFLOAT16 and name in ("sum", "mean"):
                # ml_dtypes accumulates bfloat16 in bfloat16 (a sum of 1,000 x 1.25 is 512);
                # tensorbridge accumulates in float64 and rounds once: compare with that.
                wide = getattr(np, name)(a.astype(np.float64), axis=axis, keepdims=keepdims)
                expected: Any = np.asarray(wide).astype(BFLOAT16)
            else:
                expected = getattr(np, name)(a, axis=axis, keepdims=keepdims)
        except ValueError as e:
            expected = e
    t = tb.tensor(a)
    for call in (
        lambda: getattr(t, name)(axis, keepdims=keepdims),
        lambda: getattr(tb, name)(t, axis, keepdims),
    ):
        if isinstance(expected, Exception):
            with pytest.raises(ValueError, match="zero-size"):
                call()
            continue
        assert_close(call().numpy(), expected)


# ---- matmul --------------------------------------------------------------------------------------


@st.composite
def matmul_cases(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    shapes_pair = draw(hnp.mutually_broadcastable_shapes(signature=np.matmul.signature, max_side=4))
    a = _values(draw, draw(dtypes), shapes_pair.input_shapes[0])
    b = _values(draw, draw(dtypes), shapes_pair.input_shapes[1])
    return a, b


@given(matmul_cases())
def test_matmul_matches_numpy(case: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = case
    note(f"{a.dtype}{a.shape} @ {b.dtype}{b.shape}")
    got = (tb.tensor(a) @ tb.tensor(b)).numpy()
    if BFLOAT16 in (a.dtype, b.dtype):
        # ml_dtypes' matmul returns float32; tensorbridge keeps the promoted dtype.
        out_dtype = (np.zeros(1, a.dtype) + np.zeros(1, b.dtype)).dtype
        expected = (a.astype(np.float32) @ b.astype(np.float32)).astype(out_dtype)
    else:
        expected = a @ b
    assert_close(got, expected)
