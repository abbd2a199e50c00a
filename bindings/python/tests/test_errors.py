"""Bad inputs raise TypeError / ValueError / IndexError / MemoryError / RuntimeError (or, for a
Python int out of a dtype's range, NumPy's OverflowError) naming the problem (shape, dtype,
backend), and a Rust panic never reaches Python."""

from __future__ import annotations

import math

from typing import Any

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

import tensorbridge as tb

CONTRACT_ERRORS = (TypeError, ValueError, IndexError, MemoryError, RuntimeError, OverflowError)


# ---- construction --------------------------------------------------------------------------------


def test_ragged_lists_are_a_value_error() -> None:
    with pytest.raises(ValueError, match="ragged"):
        tb.tensor([[1, 2], [3]])
    with pytest.raises(ValueError, match="ragged"):
        tb.tensor([1, [2, 3]])


@pytest.mark.parametrize("dtype", ["float128", "foo", "complex64", "", object, 3, complex])
def test_unknown_dtypes_are_a_type_error_naming_them(dtype: Any) -> None:
    with pytest.raises(TypeError, match="dtype") as info:
        tb.tensor([1, 2], dtype=dtype)
    if isinstance(dtype, str) and dtype:
        assert dtype in str(info.value)
    with pytest.raises(TypeError, match="dtype"):
        tb.zeros(2).astype(dtype)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ("abc", "str"),
        (b"abc", "bytes"),
        (None, "NoneType"),
        ({1: 2}, "dict"),
        ({1, 2}, "set"),
        (object(), "object"),
        ([1, "a"], "<U"),
        ([None], "object"),
        ([1j], "complex128"),
        (np.array(["2020-01-01"], dtype="M8[D]"), "datetime64"),
        ([2**70], "too large"),
    ],
    ids=lambda x: type(x).__name__ if not isinstance(x, str) else x,
)
def test_unsupported_data_is_a_type_error_naming_it(data: Any, named: str) -> None:
    with pytest.raises(TypeError, match=named):
        tb.tensor(data)


def test_from_numpy_needs_an_ndarray_of_a_supported_dtype() -> None:
    with pytest.raises(TypeError, match="numpy.ndarray.*list"):
        tb.from_numpy([1, 2])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="complex128"):
        tb.from_numpy(np.array([1j]))
    with pytest.raises(TypeError, match="<U1"):
        tb.from_numpy(np.array(["a"]))
    for convert in (tb.from_numpy, tb.tensor):
        with pytest.raises(TypeError, match="cannot convert object data.*bool, integer and float"):
            convert(np.array([1, None]))
        if np.dtype(np.longdouble).itemsize > 8:
            with pytest.raises(TypeError, match=f"unsupported dtype {np.dtype(np.longdouble)}"):
                convert(np.zeros(2, np.longdouble))
    # ndarray subclasses are ndarrays.
    m = np.ma.masked_array(np.arange(3.0), mask=[0, 1, 0])
    assert tb.from_numpy(m).tolist() == [0.0, 1.0, 2.0]


def test_negative_dimensions_are_a_value_error() -> None:
    with pytest.raises(ValueError, match="negative"):
        tb.zeros((2, -1))


@pytest.mark.parametrize("shape", [(2**62, 4), (2**31, 2**31), (2**40, 2**30)])
def test_shapes_beyond_isize_bytes_are_a_value_error_naming_shape_and_dtype(
    shape: tuple[int, ...],
) -> None:
    # NumPy: np.zeros(shape) raises ValueError "array is too big" for these.
    with pytest.raises(ValueError, match=r"too big") as info:
        tb.zeros(shape)
    assert "float64" in str(info.value) and str(shape[0]) in str(info.value)
    # In int8 the same shape may be addressable: then it is NumPy's MemoryError (it does not fit
    # the memory available), not a ValueError.
    addressable = math.prod(shape) <= 2**63 - 1
    with pytest.raises(MemoryError if addressable else ValueError, match="int8"):
        tb.full(shape, 1, dtype="int8")


@pytest.mark.parametrize("shape", [(2**57,), (2**50, 2**5)])
def test_huge_tensors_are_a_memory_error_naming_shape_and_dtype(shape: tuple[int, ...]) -> None:
    # Addressable but beyond any host's memory: NumPy raises MemoryError.
    with pytest.raises(MemoryError, match=r"too large") as info:
        tb.zeros(shape)
    assert "float64" in str(info.value) and str(shape[0]) in str(info.value)
    with pytest.raises(MemoryError, match="int8"):
        tb.full(shape, 1, dtype="int8")


def test_arange_with_zero_step_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="step"):
        tb.arange(0, 10, 0)
    with pytest.raises(ValueError, match="finite"):
        tb.arange(0, float("inf"))


# ---- backends and devices --------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3"])
def test_a_gpu_device_on_the_cpu_backend_is_a_runtime_error(device: str) -> None:
    with pytest.raises(RuntimeError, match="cuda"):
        tb.tensor([1, 2], device=device)
    with pytest.raises(RuntimeError, match="cuda"):
        tb.zeros(3, device=device)
    with pytest.raises(RuntimeError, match="cuda"):
        tb.tensor([1, 2]).to(device=device)


@pytest.mark.parametrize("backend", ["torch", "candle", "lazy:cpu", "lazy:torch", "lazy:candle"])
def test_a_backend_not_compiled_in_says_so(backend: str) -> None:
    if backend in tb.compiled_backends():
        pytest.skip(f"this build has the {backend} backend compiled in")
    for make in (
        lambda: tb.tensor([1], backend=backend),
        lambda: tb.ones(2, backend=backend),
        lambda: tb.tensor([1]).to(backend=backend),
    ):
        with pytest.raises(RuntimeError, match=f"'{backend}' is not compiled"):
            make()


def test_the_retired_cuda_backend_name_names_its_replacements() -> None:
    for make in (
        lambda: tb.tensor([1], backend="cuda"),
        lambda: tb.zeros(2, backend="cuda"),
        lambda: tb.tensor([1]).to(backend="cuda"),
    ):
        with pytest.raises(ValueError, match="backend='candle'.*device='cuda'"):
            make()


def test_an_unknown_backend_or_device_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        tb.tensor([1], backend="tpu")
    with pytest.raises((ValueError, RuntimeError), match="gpu9"):
        tb.tensor([1], device="gpu9")


# ---- ops -------------------------------------------------------------------------------------------


def test_shape_mismatch_names_both_shapes_dtypes_and_backend() -> None:
    with pytest.raises(ValueError) as info:
        tb.tensor([1, 2]) + tb.tensor([1, 2, 3])
    msg = str(info.value)
    assert "(2,)" in msg and "(3,)" in msg
    assert "int64" in msg and "cpu" in msg


@pytest.mark.parametrize(
    "op",
    [
        lambda a, b: a - b,
        lambda a, b: a * b,
        lambda a, b: a / b,
        lambda a, b: a == b,
        lambda a, b: a < b,
        lambda a, b: a > b,
    ],
)
def test_every_binary_op_reports_a_shape_mismatch(op: Any) -> None:
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4,\)"):
        op(tb.zeros((2, 3)), tb.zeros(4))


def test_matmul_errors() -> None:
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2,\)"):
        tb.zeros((2, 3)) @ tb.zeros(2)
    with pytest.raises(ValueError, match="dimension"):
        tb.zeros(3) @ 2
    with pytest.raises(ValueError, match="dimension"):
        tb.matmul(tb.tensor(1.0), tb.zeros(3))


def test_bool_subtraction_and_negation_are_type_errors_like_numpy() -> None:
    with pytest.raises(TypeError, match="bool"):
        tb.tensor([True]) - tb.tensor([False])
    with pytest.raises(TypeError, match="bool"):
        -tb.tensor([True])


def test_unsupported_operands_are_a_type_error() -> None:
    t = tb.tensor([1, 2])
    for other in ("a", None, object(), {1: 2}):
        with pytest.raises(TypeError):
            t + other
    with pytest.raises(OverflowError, match="out of bounds for int64"):
        t + 2**200


def test_reduction_and_view_errors() -> None:
    t = tb.zeros((2, 3))
    with pytest.raises(IndexError, match="axis 2"):
        t.sum(axis=2)
    with pytest.raises(ValueError, match="axis -3"):  # AxisError is both
        t.max(axis=-3)
    with pytest.raises(ValueError, match=r"6 elements.*\[4\]"):
        t.reshape(4)
    with pytest.raises(ValueError, match="one unknown"):
        t.reshape(-1, -1)
    with pytest.raises(ValueError, match="axes"):
        t.transpose(0)
    with pytest.raises(ValueError, match="repeated"):
        t.transpose(1, 1)
    with pytest.raises(ValueError, match=r"\[2, 3\].*\[4, 3\]"):
        t.broadcast_to([4, 3])
    with pytest.raises(ValueError, match="size 3"):
        t.squeeze(1)


# ---- no panic reaches Python -------------------------------------------------------------------------

# Integers are small or hopelessly large, never in between: a junk shape must not allocate
# gigabytes that the machine happens to have.
_ints = st.one_of(st.integers(-5, 16), st.integers(2**62, 2**70), st.integers(-(2**70), -(2**62)))
_junk = st.one_of(
    st.none(),
    st.booleans(),
    _ints,
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
    st.lists(_ints, max_size=4),
    st.tuples(_ints, st.integers(-5, 5)),
    st.slices(10),
    st.builds(slice, _ints, _ints, _ints),
    st.just(Ellipsis),
)

_CALLS = [
    lambda t, x: t[x],
    lambda t, x: t[x, x],
    lambda t, x: t.reshape(x),
    lambda t, x: t.transpose(x),
    lambda t, x: t.sum(x),
    lambda t, x: t.max(x, keepdims=True),
    lambda t, x: t.broadcast_to(x),
    lambda t, x: t.squeeze(x),
    lambda t, x: t.unsqueeze(x),
    lambda t, x: t.swapaxes(x, 0),
    lambda t, x: t.astype(x),
    lambda t, x: t.to(x),
    lambda t, x: t + x,
    lambda t, x: x / t,
    lambda t, x: t @ x,
    lambda t, x: t < x,
    lambda t, x: t.numpy(copy=x),
    lambda t, x: t.numpy(out=x),
    lambda t, x: t.numpy(out=np.zeros(t.shape), casting=x),
    lambda t, x: t.__array__(x),
    lambda t, x: t.__array__(x, x),
    lambda t, x: t.__array__(copy=x),
    lambda t, x: t.__array__(x, None),
    lambda t, x: tb.tensor(x),
    lambda t, x: tb.zeros(x),
    lambda t, x: tb.full(x, 1),
    lambda t, x: tb.full((2,), x),
    lambda t, x: tb.arange(x),
    lambda t, x: tb.tensor([1.0], dtype=x),
    lambda t, x: tb.tensor([1.0], backend=x),
    lambda t, x: tb.tensor([1.0], device=x),
]


@given(st.sampled_from(range(len(_CALLS))), _junk, st.sampled_from([(), (0,), (3,), (2, 3)]))
def test_junk_arguments_raise_contract_errors_never_a_panic(
    call: int, junk: Any, shape: tuple[int, ...]
) -> None:
    t = tb.zeros(shape)
    try:
        _CALLS[call](t, junk)
    except CONTRACT_ERRORS:
        pass
    except BaseException as e:  # a pyo3 PanicException derives from BaseException
        raise AssertionError(f"{type(e).__module__}.{type(e).__name__}: {e}") from e
