"""Constructors: ``tb.tensor`` infers dtypes as NumPy does, ``tb.from_numpy`` shares memory, and
``zeros/ones/full/arange`` match their NumPy namesakes."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest
from numpy_reference import ALL_DTYPES, BFLOAT16, assert_same_array, dtype_id

import tensorbridge as tb


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(3, id="int"),
        pytest.param(2.5, id="float"),
        pytest.param(True, id="bool"),
        pytest.param([1, 2, 3], id="int-list"),
        pytest.param([1, 2.5], id="mixed-list"),
        pytest.param([[True, False], [False, True]], id="bool-nested"),
        pytest.param([[1, 2], [3, 4], [5, 6]], id="nested"),
        pytest.param([], id="empty-list"),
        pytest.param([[], []], id="empty-nested"),
        pytest.param([2**63], id="uint64-sized-int"),
        pytest.param([-(2**63)], id="int64-min"),
        pytest.param(np.float32(1.5), id="numpy-scalar"),
        pytest.param(np.arange(6, dtype=np.int16).reshape(2, 3), id="ndarray"),
        pytest.param(np.arange(6.0).reshape(2, 3).T[::-1], id="strided-ndarray"),
        pytest.param(np.array([1, 2], dtype=">i4"), id="big-endian"),
        pytest.param(range(4), id="range"),
        pytest.param((1.0, 2.0), id="tuple"),
    ],
)
def test_tensor_infers_dtype_and_values_like_numpy(data: Any) -> None:
    expected = np.asarray(data)
    if not expected.dtype.isnative:
        expected = expected.astype(expected.dtype.newbyteorder("="))
    t = tb.tensor(data)
    assert t.shape == expected.shape
    assert t.dtype == expected.dtype
    assert_same_array(t.numpy(), expected)


def test_python_int_infers_int64_and_float_infers_float64() -> None:
    assert tb.tensor(1).dtype == np.int64
    assert tb.tensor([1.0]).dtype == np.float64
    assert tb.tensor([True]).dtype == np.bool_


def test_tensor_accepts_any_object_with_dunder_array() -> None:
    class ArrayLike:
        def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
            return np.arange(4, dtype=np.uint8).reshape(2, 2)

    t = tb.tensor(ArrayLike())
    assert_same_array(t.numpy(), np.arange(4, dtype=np.uint8).reshape(2, 2))


def test_tensor_of_a_tensor_and_of_a_bfloat16_array() -> None:
    a = np.array([1.5, -2.0], dtype=ml_dtypes.bfloat16)
    t = tb.tensor(a)
    assert t.dtype == BFLOAT16
    assert tb.tensor(t).tolist() == [1.5, -2.0]
    assert tb.tensor(t, dtype="float32").dtype == np.float32


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=dtype_id)
def test_tensor_dtype_argument_casts_like_astype(dtype: np.dtype[Any]) -> None:
    data = [[0, 1, 2], [3, 4, 5]]
    expected = np.array(data).astype(dtype)
    for spelling in (str(dtype), dtype, dtype.type):
        assert_same_array(tb.tensor(data, dtype=spelling).numpy(), expected)


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("f32", np.float32),
        ("bf16", BFLOAT16),
        ("<i4", np.int32),
        (int, np.int64),
        (float, np.float64),
        (bool, np.bool_),
        (np.dtype(">f8"), np.float64),
        (tb.float16, np.float16),
        (tb.bool_, np.bool_),
    ],
)
def test_dtype_spellings(spelling: Any, expected: Any) -> None:
    assert tb.tensor([1], dtype=spelling).dtype == np.dtype(expected)


def test_from_numpy_is_zero_copy() -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = tb.from_numpy(a)
    assert np.shares_memory(t.numpy(), a)
    assert t.dtype == np.float32 and t.shape == (2, 3)


def test_from_numpy_copies_arrays_it_cannot_view() -> None:
    raw = np.zeros(8 * 4 + 1, dtype=np.uint8)
    misaligned = raw[1:].view(np.int64)  # data pointer not 8-byte aligned
    misaligned[:] = [1, 2, 3, 4]
    assert misaligned.ctypes.data % 8 != 0
    assert tb.from_numpy(misaligned).tolist() == [1, 2, 3, 4]

    record = np.zeros(3, dtype=[("a", "u1"), ("b", "<i8")])
    record["b"] = [7, 8, 9]
    assert tb.from_numpy(record["b"]).tolist() == [7, 8, 9]  # strides of 9 bytes

    swapped = np.array([1, 2], dtype=">i4")
    t = tb.from_numpy(swapped)
    assert t.dtype == np.int32 and t.tolist() == [1, 2]


def test_zeros_and_ones_default_to_float64() -> None:
    assert_same_array(tb.zeros((2, 3)).numpy(), np.zeros((2, 3)))
    assert_same_array(tb.ones(4).numpy(), np.ones(4))
    assert_same_array(tb.zeros(()).numpy(), np.zeros(()))
    assert_same_array(tb.zeros((0, 3)).numpy(), np.zeros((0, 3)))


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=dtype_id)
def test_zeros_ones_full_of_every_dtype(dtype: np.dtype[Any]) -> None:
    assert_same_array(tb.zeros((2, 2), dtype=dtype).numpy(), np.zeros((2, 2), dtype=dtype))
    assert_same_array(tb.ones([3], dtype=dtype).numpy(), np.ones([3], dtype=dtype))
    assert_same_array(tb.full((2,), 1, dtype=dtype).numpy(), np.full((2,), 1, dtype=dtype))


@pytest.mark.parametrize(
    "fill", [7, -2.5, True, np.float32(1.5), np.int8(-3), np.uint16(9), 2**63, np.float16(0.5)]
)
def test_full_infers_dtype_from_the_fill_value_like_numpy(fill: Any) -> None:
    assert_same_array(tb.full((2, 3), fill).numpy(), np.full((2, 3), fill))


@pytest.mark.parametrize(
    "args",
    [(5,), (2, 7), (7, 2, -2), (0.0, 1.0, 0.25), (1, 2.5, 0.5), (0,), (5, 0), (-3, 3)],
)
def test_arange_matches_numpy(args: tuple[Any, ...]) -> None:
    assert_same_array(tb.arange(*args).numpy(), np.arange(*args))


def test_arange_with_dtype() -> None:
    assert_same_array(tb.arange(4, dtype="float32").numpy(), np.arange(4, dtype=np.float32))
    assert_same_array(tb.arange(1, 4, dtype=np.uint8).numpy(), np.arange(1, 4, dtype=np.uint8))


def _misaligned(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """`a`'s values in memory one byte past an aligned address (misaligned for itemsize > 1):
    NumPy makes a fresh aligned copy first, which is then copied onto the backend."""
    raw = np.zeros(a.nbytes + 1, np.uint8)
    out = raw[1:].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


_VIEWS = {
    "contiguous": lambda a: a,
    "misaligned": _misaligned,
    "empty": lambda a: a[:, :0],
    "0-d": lambda a: a[1, 2, ...],
    "transposed": lambda a: a.T,
    "negative-steps": lambda a: a[::-1, ::-2],
    "sliced": lambda a: a[1:, 2:5],
    "broadcast": lambda a: np.broadcast_to(a[0], a.shape),
    "fortran": np.asfortranarray,
}


@pytest.mark.parametrize("view", list(_VIEWS), ids=list(_VIEWS))
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("backend", tb.compiled_backends())
def test_tensor_of_any_ndarray_view_is_an_independent_copy(
    backend: str, dtype: np.dtype[Any], view: str
) -> None:
    # `tb.tensor(ndarray)` copies straight from the array's memory, whatever its strides: the
    # values are `np.array(a)`'s, and a later write to the array does not show in the tensor.
    base = (np.arange(4 * 7) % 5).reshape(4, 7).astype(dtype)
    a = _VIEWS[view](base)
    expected = np.array(a)
    if backend.split(":")[-1] == "candle" and str(dtype) in {"int8", "uint16", "uint64"}:
        with pytest.raises(TypeError, match=f"does not support dtype {dtype}"):
            tb.tensor(a, backend=backend)
        return
    t = tb.tensor(a, backend=backend)
    base[...] = np.zeros((), dtype)
    if a.flags.writeable:
        a[...] = np.zeros((), dtype)
    assert (t.backend, t.device) == (backend, "cpu")
    assert t.shape == expected.shape
    assert_same_array(t.numpy(), expected)


_CASTS = [
    ("float32", "float64"),
    ("float64", "bfloat16"),
    ("int64", "float16"),
    ("float32", "int32"),
    ("uint8", "bool"),
    ("bool", "float32"),
]


def _cast_case(cast: tuple[str, str]) -> tuple[np.dtype[Any], np.dtype[Any], np.ndarray[Any, Any]]:
    """The source and target NumPy dtypes of a `_CASTS` pair (`"bfloat16"` is ml_dtypes'),
    and a 4 x 7 array of the source dtype holding small integers (0..4, exact in every dtype)."""
    source, target = (np.dtype(BFLOAT16) if d == "bfloat16" else np.dtype(d) for d in cast)
    return source, target, (np.arange(4 * 7) % 5).reshape(4, 7).astype(source)


@pytest.mark.parametrize("view", list(_VIEWS), ids=list(_VIEWS))
@pytest.mark.parametrize("cast", _CASTS, ids=[f"{a}-{b}" for a, b in _CASTS])
@pytest.mark.parametrize("backend", tb.compiled_backends())
def test_tensor_of_any_ndarray_view_with_a_dtype_is_a_cast_copy(
    backend: str, cast: tuple[str, str], view: str
) -> None:
    # `tb.tensor(ndarray, dtype=d)` converts from the array's memory straight into the
    # backend's storage (one pass, any strides): `a.astype(d)`'s values, on the asked backend,
    # independent of the array.
    source, target, base = _cast_case(cast)
    a = _VIEWS[view](base)
    expected = np.array(a).astype(target)
    t = tb.tensor(a, dtype=cast[1], backend=backend)
    base[...] = np.zeros((), source)
    if a.flags.writeable:
        a[...] = np.zeros((), source)
    assert (t.backend, t.device, t.dtype) == (backend, "cpu", target)
    assert_same_array(t.numpy(), expected)


_TENSOR_VIEWS = {
    "whole": lambda t: t,
    "transposed": lambda t: t.T,
    "negative-steps": lambda t: t[::-1, ::-2],
    "sliced": lambda t: t[1:, 2:5],
    "unevaluated": lambda t: t + t,
}


@pytest.mark.parametrize("view", list(_TENSOR_VIEWS), ids=list(_TENSOR_VIEWS))
@pytest.mark.parametrize("cast", _CASTS, ids=[f"{a}-{b}" for a, b in _CASTS])
@pytest.mark.parametrize("backend", tb.compiled_backends())
def test_tensor_of_a_tensor_view_with_a_dtype_is_a_cast_copy(
    backend: str, cast: tuple[str, str], view: str
) -> None:
    # `tb.tensor(t, dtype=d)`: converted on the way to the host (one pass), onto `t`'s backend
    # or the one asked for; `t.astype(d)`'s values, NumPy's `a.astype(d)` for the same view.
    _, target, a = _cast_case(cast)
    t = _TENSOR_VIEWS[view](tb.tensor(a, backend=backend))
    expected = np.array(_TENSOR_VIEWS[view](a)).astype(target)
    for onto in (None, "cpu"):
        got = tb.tensor(t, dtype=cast[1], backend=onto)
        assert (got.backend, got.dtype) == (onto or backend, target)
        assert_same_array(got.numpy(), expected)


@pytest.mark.parametrize("backend", tb.compiled_backends())
def test_tensor_answers_alike_for_every_kind_of_data_and_placement_spelling(backend: str) -> None:
    # `tb.tensor` answers an exact ndarray with `str` placement natively and hands everything
    # else (subclasses, lists, Tensors, `str` subclasses such as np.str_) to the Python path:
    # the same values, dtype and placement either way.
    class Sub(np.ndarray):  # type: ignore[type-arg]
        pass

    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    data: list[Any] = [a, a.view(Sub), a.tolist(), tb.tensor(a, backend=backend), a.T.T]
    for d in data:
        for spelling in (backend, np.str_(backend)):
            for device in (None, "cpu", np.str_("cpu")):
                t = tb.tensor(d, dtype="float32", backend=spelling, device=device)
                assert (type(t), t.backend, t.device) == (tb.Tensor, backend, "cpu")
                assert_same_array(t.numpy(), a)
    for d in (a, a.tolist()):
        with pytest.raises(TypeError, match="backend must be a str .* got int"):
            tb.tensor(d, backend=3)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="device must be a str .* got int"):
            tb.tensor(d, device=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown backend"):
        tb.tensor(a, backend="no-such-backend")


def test_astype_none_is_float64_as_in_numpy() -> None:
    a = np.arange(3, dtype=np.int8)
    assert a.astype(None).dtype == np.float64  # NumPy's rule: np.dtype(None) is float64
    got = tb.tensor(a).astype(None)
    assert got.dtype == np.float64 and got.tolist() == [0.0, 1.0, 2.0]


def test_a_byte_order_in_a_dtype_names_the_same_native_dtype() -> None:
    t = tb.tensor([1.5, -2.0], dtype="float32")
    for spelling in (">f8", "<f8", "=f8", np.dtype(">f8")):
        got = t.astype(spelling)
        assert got.dtype == np.float64 and got.tolist() == [1.5, -2.0]
    assert tb.zeros((2,), dtype=">i4").dtype == np.int32


@pytest.mark.parametrize("backend", tb.compiled_backends())
def test_python_ints_beyond_64_bits_convert_into_bfloat16_as_into_float32(backend: str) -> None:
    # NumPy converts them into float16/float32 (through float64); ml_dtypes refuses them for
    # bfloat16 (TypeError), tb.full takes them: tb.tensor does too, with the core's rounding.
    data = [2**64, -(2**70), 1.5]
    want = np.array(data, dtype=np.float64).astype(BFLOAT16)
    got = tb.tensor(data, dtype="bfloat16", backend=backend).numpy()
    np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16))
    scalar = tb.tensor(2**64, dtype="bfloat16", backend=backend)
    full = tb.full((), 2**64, dtype="bfloat16", backend=backend)
    assert scalar.item() == full.item() == float(np.float64(2**64).astype(BFLOAT16))
    # Python data that is not numbers by itself converts as into float32 (NumPy's rules).
    for data in ([1.5, "1"], [1, None]):
        want = np.array(data, dtype=np.float32).astype(np.float64)
        for dtype in ("float32", "bfloat16"):
            got = tb.tensor(data, dtype=dtype, backend=backend).numpy().astype(np.float64)
            np.testing.assert_array_equal(got, want, err_msg=f"{data} {dtype}")
    for dtype in ("float32", "bfloat16"):
        with pytest.raises(ValueError, match="could not convert"):
            tb.tensor([2**64, "x"], dtype=dtype, backend=backend)


@pytest.mark.parametrize("backend", tb.compiled_backends())
def test_full_keeps_the_bits_of_a_nan_numpy_scalar(backend: str) -> None:
    # np.full casts the scalar itself: a signalling float32 NaN stays signalling, a float16 NaN's
    # payload shifts into float32 unchanged (a Python float in between would quiet them).
    cases = [
        (np.array([0x7F800002], np.uint32).view(np.float32)[0], "float32"),
        (np.array([0x7C01], np.uint16).view(np.float16)[0], "float32"),
        (np.array([0xFD55], np.uint16).view(np.float16)[0], "float64"),
        (np.array([0x7F82], np.uint16).view(BFLOAT16)[0], "bfloat16"),
        (np.array([0x7F82], np.uint16).view(BFLOAT16)[0], "float16"),
    ]
    for value, dtype in cases:
        want = np.full((2, 3), value, dtype=BFLOAT16 if dtype == "bfloat16" else dtype)
        got = tb.full((2, 3), value, dtype=dtype, backend=backend).numpy()
        uint = {2: np.uint16, 4: np.uint32, 8: np.uint64}[want.itemsize]
        assert got.shape == (2, 3)
        np.testing.assert_array_equal(got.view(uint), want.view(uint), err_msg=f"{value!r}")
