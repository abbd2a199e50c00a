"""What the tests compare against: every tensorbridge dtype as a NumPy dtype, sample arrays whose
values every dtype holds exactly, and bit-exact or dtype-aware tolerant equality with NumPy."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np

BFLOAT16 = np.dtype(ml_dtypes.bfloat16)

# The 13 dtypes, in tensorbridge's order (DType::ALL).
ALL_DTYPES: list[np.dtype[Any]] = [
    np.dtype(np.bool_),
    np.dtype(np.uint8),
    np.dtype(np.uint16),
    np.dtype(np.uint32),
    np.dtype(np.uint64),
    np.dtype(np.int8),
    np.dtype(np.int16),
    np.dtype(np.int32),
    np.dtype(np.int64),
    np.dtype(np.float16),
    BFLOAT16,
    np.dtype(np.float32),
    np.dtype(np.float64),
]


def is_float(dtype: np.dtype[Any]) -> bool:
    """True for the four float dtypes (bfloat16 has kind 'V' in NumPy)."""
    return dtype.kind == "f" or dtype == BFLOAT16


FLOAT_DTYPES = [d for d in ALL_DTYPES if is_float(d)]
INT_DTYPES = [d for d in ALL_DTYPES if d.kind in "iu"]

# Relative tolerance for results whose accumulation order differs from NumPy's.
_RTOL = {2: 2e-2, 4: 1e-5, 8: 1e-12}


def dtype_id(dtype: np.dtype[Any]) -> str:
    """A readable pytest id."""
    return str(dtype)


def bits(a: Any) -> np.ndarray[Any, Any]:
    """The array's raw bits as unsigned integers (so NaN payloads and -0.0 compare exactly)."""
    a = np.asarray(a)
    return a.view(np.dtype(f"u{a.dtype.itemsize}"))


def assert_same_array(got: Any, expected: Any) -> None:
    """``got`` is an ndarray with ``expected``'s dtype, shape and bits."""
    assert isinstance(got, np.ndarray), type(got)
    expected = np.asarray(expected)
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    np.testing.assert_array_equal(bits(got), bits(expected))


def assert_values_equal(got: Any, expected: Any) -> None:
    """Same dtype and shape, equal values (NaN equal to NaN, -0.0 equal to 0.0)."""
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    if is_float(got.dtype):
        assert np.array_equal(got.astype(np.float64), expected.astype(np.float64), equal_nan=True)
    else:
        assert np.array_equal(got, expected)


def assert_close(got: Any, expected: Any) -> None:
    """Same dtype and shape; floats equal within the dtype's tolerance, others exactly."""
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    if not is_float(got.dtype):
        np.testing.assert_array_equal(got, expected)
        return
    rtol = _RTOL[got.dtype.itemsize]
    np.testing.assert_allclose(
        got.astype(np.float64), expected.astype(np.float64), rtol=rtol, atol=rtol, equal_nan=True
    )


def sample_array(
    rng: np.random.Generator, dtype: np.dtype[Any], shape: tuple[int, ...], signed: bool = True
) -> np.ndarray[Any, Any]:
    """Values in [-50, 50] (or [0, 100] for unsigned dtypes and ``signed=False``) that every dtype
    holds exactly: integers for the integer dtypes, quarters for the floats, both for bool."""
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    low, high = (-50, 51) if signed and dtype.kind != "u" else (0, 101)
    ints = rng.integers(low, high, size=shape)
    if is_float(dtype):
        return (ints / 4).astype(dtype)
    return ints.astype(dtype)
