"""Ops against NumPy: promotion for every dtype pair, NEP 50 weak Python scalars, true division,
reductions, matmul, views, casts and ``to``. Floats compare with a dtype-aware tolerance where the
accumulation order differs from NumPy's."""

from __future__ import annotations

import operator
import warnings
from typing import Any

import numpy as np
import pytest
from numpy_reference import (
    ALL_DTYPES,
    BFLOAT16,
    FLOAT_DTYPES,
    assert_close,
    assert_same_array,
    assert_values_equal,
    dtype_id,
    is_float,
    sample_array,
)

import tensorbridge as tb

_ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}
_CMP = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@pytest.mark.parametrize("lhs", ALL_DTYPES, ids=dtype_id)
def test_binary_ops_promote_like_numpy_for_every_dtype_pair(lhs: np.dtype[Any]) -> None:
    rng = np.random.default_rng(1)
    a = sample_array(rng, lhs, (3, 4), signed=False)
    for rhs in ALL_DTYPES:
        b = sample_array(rng, rhs, (4,), signed=False)
        for name, f in {**_ARITH, **_CMP}.items():
            with np.errstate(all="ignore"):
                try:
                    expected = f(a, b)
                except TypeError:  # bool - bool, as NumPy
                    with pytest.raises(TypeError):
                        f(tb.tensor(a), tb.tensor(b))
                    continue
            got = f(tb.tensor(a), tb.tensor(b)).numpy()
            assert got.dtype == expected.dtype, (lhs, name, rhs)
            assert_values_equal(got, expected)


@pytest.mark.parametrize("name", sorted(_CMP))
def test_comparisons_with_nan_match_numpy(name: str) -> None:
    a = np.array([np.nan, 1.0, 2.0, np.nan])
    b = np.array([np.nan, np.nan, 2.0, 1.0])
    f = _CMP[name]
    assert_same_array(f(tb.tensor(a), tb.tensor(b)).numpy(), f(a, b))
    assert_same_array(f(tb.tensor(a), 1.0).numpy(), f(a, 1.0))
    assert_same_array(f(2, tb.tensor(a)).numpy(), f(2, a))


@pytest.mark.parametrize(
    ("dtype", "scalar", "op", "expected_dtype"),
    [
        ("uint8", 1, "+", "uint8"),
        ("uint8", 255, "*", "uint8"),
        ("int8", -128, "-", "int8"),
        ("int8", 1.5, "*", "float64"),
        ("int32", 2, "/", "float64"),
        ("uint8", -1, "/", "float64"),
        ("float32", 1.5, "+", "float32"),
        ("float16", 2, "/", "float16"),
        ("bfloat16", 3, "*", "bfloat16"),
        ("bool", 1, "+", "int64"),
        ("bool", 1.5, "*", "float64"),
        ("bool", True, "+", "bool"),
        ("uint64", 2**64 - 1, "+", "uint64"),
    ],
)
def test_python_scalars_are_weak_nep50(
    dtype: str, scalar: Any, op: str, expected_dtype: str
) -> None:
    a = np.array([1, 2, 3]).astype(tb.tensor([0], dtype=dtype).dtype)
    t = tb.tensor(a)
    for got in (_ARITH[op](t, scalar), _ARITH[op](scalar, t)):
        assert got.dtype == tb.tensor([0], dtype=expected_dtype).dtype
    if dtype != "bfloat16":
        with np.errstate(all="ignore"):
            assert_values_equal(_ARITH[op](t, scalar).numpy(), _ARITH[op](a, scalar))
            assert_values_equal(_ARITH[op](scalar, t).numpy(), _ARITH[op](scalar, a))


@pytest.mark.parametrize(("dtype", "scalar"), [("uint8", 300), ("uint8", -1), ("int8", 128)])
def test_out_of_range_python_int_is_numpys_overflow_error_naming_value_and_dtype(
    dtype: str, scalar: int
) -> None:
    t = tb.tensor([1, 2], dtype=dtype)
    with pytest.raises(OverflowError, match=rf"Python integer {scalar} out of bounds for {dtype}"):
        t + scalar
    with pytest.raises(OverflowError, match=rf"{scalar}.*{dtype}"):
        scalar * t


def test_comparisons_with_out_of_range_python_ints_are_exact() -> None:
    t = tb.tensor([0, 255], dtype="uint8")
    assert (t < 300).tolist() == [True, True]
    assert (t == -1).tolist() == [False, False]
    assert (t > -1).tolist() == [True, True]


def test_numpy_scalars_are_strong() -> None:
    t = tb.tensor([1, 2], dtype="int8")
    assert (t + np.int64(1)).dtype == np.int64
    assert (t * np.float32(2)).dtype == np.float32
    assert (np.float64(2) * tb.tensor([1], dtype="float32")).dtype == np.float64


def test_integer_true_division_gives_float64_with_inf_and_nan_like_numpy() -> None:
    a = np.array([1, 0, -1], dtype=np.int32)
    with np.errstate(all="ignore"):
        expected = a / np.array([0, 0, 0], dtype=np.int32)
    got = (tb.tensor(a) / tb.tensor([0, 0, 0], dtype="int32")).numpy()
    assert_values_equal(got, expected)
    assert (tb.tensor([3]) / tb.tensor([2])).item() == 1.5


def test_integer_arithmetic_wraps_like_numpy() -> None:
    a = np.array([250, 5], dtype=np.uint8)
    assert_same_array((tb.tensor(a) + 10).numpy(), a + 10)
    assert_same_array((tb.tensor(a) - tb.tensor(a) * 2).numpy(), a - a * 2)
    assert_same_array((-tb.tensor(a)).numpy(), -a)


def test_unary_negative_and_absolute() -> None:
    a = np.array([[-1.5, 2.0], [0.0, -0.0]])
    assert_same_array((-tb.tensor(a)).numpy(), -a)
    assert_same_array(tb.negative(a).numpy(), -a)
    assert_same_array(abs(tb.tensor(a)).numpy(), np.abs(a))
    assert_same_array(tb.absolute(a).numpy(), np.abs(a))
    with pytest.raises(TypeError, match="bool"):
        -tb.tensor([True])


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("name", ["exp", "log", "sqrt"])
def test_float_functions_compute_in_numpys_float_result_type(
    dtype: np.dtype[Any], name: str
) -> None:
    a = (np.arange(1, 7) % 4 + 1).astype(dtype).reshape(2, 3)
    if dtype == BFLOAT16:
        expected = getattr(np, name)(a.astype(np.float32)).astype(BFLOAT16)
    else:
        expected = getattr(np, name)(a)
    assert_close(getattr(tb, name)(tb.tensor(a)).numpy(), expected)
    assert_close(getattr(tb.tensor(a), name)().numpy(), expected)


# ---- functions and methods -------------------------------------------------------------------------


def test_function_forms_match_operators_and_numpy() -> None:
    a = np.array([[1, 2], [3, 4]], dtype=np.int16)
    b = np.array([10, 20], dtype=np.int16)
    assert_same_array(tb.add(a, b).numpy(), np.add(a, b))
    assert_same_array(tb.subtract(a, b).numpy(), np.subtract(a, b))
    assert_same_array(tb.multiply(a, b).numpy(), np.multiply(a, b))
    assert_same_array(tb.divide(a, b).numpy(), np.divide(a, b))
    assert_same_array(tb.matmul(a, a).numpy(), np.matmul(a, a))
    assert_same_array(tb.add([1, 2], [3, 4]).numpy(), np.add([1, 2], [3, 4]))
    assert_same_array(tb.add(tb.tensor(a), 1).numpy(), np.add(a, 1))


def test_function_forms_keep_python_scalars_weak_on_either_side() -> None:
    a = np.array([1, 2], dtype=np.int8)
    for tb_f, np_f in [
        (tb.add, np.add),
        (tb.subtract, np.subtract),
        (tb.multiply, np.multiply),
        (tb.divide, np.divide),
    ]:
        assert_same_array(tb_f(3, a).numpy(), np_f(3, a))
        assert_same_array(tb_f(a, 3).numpy(), np_f(a, 3))
        assert_same_array(tb_f(3, tb.tensor(a)).numpy(), np_f(3, a))


# ---- reductions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "sum_dtype", "mean_dtype"),
    [
        ("bool", "int64", "float64"),
        ("int8", "int64", "float64"),
        ("int32", "int64", "float64"),
        ("uint8", "uint64", "float64"),
        ("uint32", "uint64", "float64"),
        ("float16", "float16", "float16"),
        ("float32", "float32", "float32"),
    ],
)
def test_sum_and_mean_result_dtypes(dtype: str, sum_dtype: str, mean_dtype: str) -> None:
    a = np.arange(12).reshape(3, 4).astype(dtype)
    t = tb.tensor(a)
    assert t.sum().dtype == np.dtype(sum_dtype) == np.sum(a).dtype
    assert t.mean().dtype == np.dtype(mean_dtype) == np.mean(a).dtype
    assert_close(t.sum(axis=0).numpy(), a.sum(axis=0))
    assert_close(tb.mean(t, axis=-1).numpy(), a.mean(axis=-1))


def test_reductions_keepdims_and_the_keepdim_alias() -> None:
    a = np.arange(24.0).reshape(2, 3, 4)
    t = tb.tensor(a)
    for name in ("sum", "mean", "max", "min"):
        expected = getattr(np, name)(a, axis=1, keepdims=True)
        assert_close(getattr(t, name)(axis=1, keepdims=True).numpy(), expected)
        assert_close(getattr(t, name)(1, keepdim=True).numpy(), expected)
        assert_close(getattr(tb, name)(t, axis=1, keepdims=True).numpy(), expected)
        assert_close(getattr(t, name)(keepdims=True).numpy(), getattr(np, name)(a, keepdims=True))


@pytest.mark.parametrize("backend", tb.compiled_backends())
def test_reductions_over_a_tuple_of_axes_match_numpy_on_every_backend(backend: str) -> None:
    """NumPy's ``axis=(a, b, ...)``, through the method, ``np.sum(t, axis=...)`` (which calls
    it) and ``tb.sum``: values, dtype and shape as NumPy's, keepdims, negative and unordered axes,
    ``()`` (nothing reduced, the reduction's dtype) and all axes; NumPy's errors for a repeated,
    out-of-range, bool or list axis."""
    for dtype in ("int32", "float32"):
        a = np.arange(24).reshape(2, 3, 4).astype(dtype)
        t = tb.tensor(a, backend=backend)
        for axes in [(0, 2), (2, 0), (-1, 0), (1, 2), (0, 1, 2), (1,), ()]:
            for keepdims in (False, True):
                for name in ("sum", "mean", "max", "min"):
                    expected = getattr(a, name)(axis=axes, keepdims=keepdims)
                    got = getattr(t, name)(axis=axes, keepdims=keepdims).numpy()
                    assert_same_array(got, expected)
        # NumPy's function calls the tensor's method, so the result is a tensor (as for torch).
        assert_same_array(np.sum(t, axis=(0, 2)).numpy(), a.sum(axis=(0, 2)))
        assert_same_array(
            tb.mean(t, axis=(2, 1), keepdims=True).numpy(), a.mean((2, 1), keepdims=True)
        )
        with pytest.raises(ValueError, match="duplicate value in 'axis'"):
            t.sum(axis=(0, -3))
        with pytest.raises(np.exceptions.AxisError):
            t.max(axis=(0, 3))
        for bad in (True, (0, True), [0, 1]):
            with pytest.raises(TypeError):
                t.sum(axis=bad)
            with pytest.raises(TypeError):
                a.sum(axis=bad)
    with pytest.raises(ValueError, match="zero-size"):
        tb.zeros((0, 3), backend=backend).max(axis=(0, 1))
    assert_same_array(
        tb.zeros((2, 0, 3), backend=backend).sum(axis=(1, 2)).numpy(),
        np.zeros((2, 0, 3)).sum(axis=(1, 2)),
    )


def test_sum_of_ints_wraps_in_int64_like_numpy() -> None:
    a = np.array([2**62, 2**62, 2**62], dtype=np.int64)
    assert_same_array(tb.tensor(a).sum().numpy(), np.sum(a))


def test_max_and_min_propagate_nan() -> None:
    a = np.array([[1.0, np.nan, 3.0], [4.0, 5.0, 6.0]])
    for name in ("max", "min"):
        assert_values_equal(getattr(tb.tensor(a), name)().numpy(), getattr(np, name)(a))
        assert_values_equal(getattr(tb.tensor(a), name)(1).numpy(), getattr(np, name)(a, 1))


def test_empty_reductions_like_numpy() -> None:
    assert_same_array(tb.zeros((0, 3)).sum(axis=0).numpy(), np.zeros((0, 3)).sum(axis=0))
    assert_same_array(tb.zeros(0).sum().numpy(), np.zeros(0).sum())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert_values_equal(tb.zeros(0).mean().numpy(), np.zeros(0).mean())
    for name in ("max", "min"):
        with pytest.raises(ValueError, match="zero-size"):
            getattr(tb.zeros((0, 3)), name)()
        with pytest.raises(ValueError, match="zero-size"):
            getattr(tb.zeros((0, 3)), name)(axis=0)
        assert getattr(tb.zeros((3, 0)), name)(axis=0).shape == (0,)


# ---- matmul --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lhs", "rhs"),
    [
        ((3,), (3,)),
        ((2, 3), (3,)),
        ((3,), (3, 4)),
        ((2, 3), (3, 4)),
        ((5, 2, 3), (3, 4)),
        ((2, 1, 2, 3), (4, 3, 2)),
        ((0, 3), (3, 2)),
        ((2, 0), (0, 3)),
    ],
)
@pytest.mark.parametrize("dtype", ["int8", "int64", "uint16", "float32", "float64", "bool"])
def test_matmul_matches_numpy(lhs: tuple[int, ...], rhs: tuple[int, ...], dtype: str) -> None:
    rng = np.random.default_rng(2)
    a = sample_array(rng, np.dtype(dtype), lhs)
    b = sample_array(rng, np.dtype(dtype), rhs)
    assert_close((tb.tensor(a) @ tb.tensor(b)).numpy(), a @ b)
    assert_close(tb.matmul(a, b).numpy(), np.matmul(a, b))


def test_matmul_of_transposed_views() -> None:
    a = np.arange(12.0).reshape(3, 4)
    t = tb.tensor(a)
    assert_close((t.T @ t).numpy(), a.T @ a)
    assert_close((t[::-1, ::2] @ t[:2].T[::2]).numpy(), a[::-1, ::2] @ a[:2].T[::2])


# ---- views, casts, to --------------------------------------------------------------------------------


def test_reshape_and_transpose_functions_and_methods() -> None:
    a = np.arange(24).reshape(2, 3, 4)
    t = tb.tensor(a)
    assert_same_array(tb.reshape(t, (4, -1)).numpy(), np.reshape(a, (4, -1)))
    assert_same_array(tb.reshape(a, 24).numpy(), np.reshape(a, 24))
    assert_same_array(t.reshape(6, 4).numpy(), a.reshape(6, 4))
    assert_same_array(t.reshape((6, -1)).numpy(), a.reshape((6, -1)))
    assert_same_array(tb.transpose(t).numpy(), np.transpose(a))
    assert_same_array(tb.transpose(t, (2, 0, 1)).numpy(), np.transpose(a, (2, 0, 1)))
    assert_same_array(t.transpose(1, 2, 0).numpy(), a.transpose(1, 2, 0))
    assert_same_array(t.transpose().numpy(), a.transpose())
    assert_same_array(t.T.reshape(-1).numpy(), a.T.reshape(-1))  # not a view: one copy
    assert_same_array(t.permute(2, 1, 0).numpy(), a.transpose(2, 1, 0))
    assert_same_array(t.squeeze().numpy(), a.squeeze())
    assert_same_array(t[:, :1].squeeze(1).numpy(), a[:, :1].squeeze(1))


@pytest.mark.parametrize("src", ALL_DTYPES, ids=dtype_id)
def test_astype_matches_numpy_for_every_dtype_pair(src: np.dtype[Any]) -> None:
    # Values every dtype converts without undefined behaviour: 0..100 with fractions for floats.
    a = (np.arange(12).reshape(3, 4) * (2.25 if is_float(src) else 9)).astype(src)
    t = tb.tensor(a)
    for dst in ALL_DTYPES:
        expected = (
            a.astype(dst)
            if BFLOAT16 not in (src, dst) or src == dst
            else (a.astype(np.float64).astype(dst))
        )
        assert_values_equal(t.astype(dst).numpy(), expected)
        assert_values_equal(np.asarray(t, dtype=dst), expected)
        assert_values_equal(t.T.astype(dst).numpy(), expected.T)


def test_astype_to_the_same_dtype_shares_storage() -> None:
    t = tb.tensor([1.0, 2.0])
    assert np.shares_memory(t.astype("float64").numpy(), t.numpy())


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_float_casts_keep_special_values(dtype: np.dtype[Any]) -> None:
    a = np.array([np.inf, -np.inf, np.nan, -0.0, 0.0, 1.5], dtype=np.float32)
    expected = a.astype(dtype)
    got = tb.tensor(a).astype(dtype).numpy()
    assert_values_equal(got, expected)
    assert np.signbit(got[3])


def test_to_same_backend_and_device_keeps_values_and_memory() -> None:
    t = tb.tensor([[1, 2], [3, 4]])
    for moved in (t.to(), t.to(backend="cpu"), t.to(device="cpu"), t.to("cpu", "cpu")):
        assert moved.backend == "cpu" and moved.device == "cpu"
        assert_same_array(moved.numpy(), t.numpy())
        assert np.shares_memory(moved.numpy(), t.numpy())
    assert tb.tensor(t, backend="cpu", device="cpu").tolist() == [[1, 2], [3, 4]]


def test_compiled_backends_lists_cpu() -> None:
    assert "cpu" in tb.compiled_backends()
