"""``tb.asnumpy`` under the contract of ``t.numpy()``: tensorbridge tensors of every compiled
backend, NumPy arrays, DLPack producers, ``__array__`` objects, sequences; copies counted on the
``counted:*`` backends; ``tb.transfer_guard`` and the host-memory guard. (Runtimes: see
test_asnumpy_{torch,jax,tensorflow}.py; CUDA and CuPy: test_asnumpy_gpu.py.)"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from numpy_reference import ALL_DTYPES, dtype_id

import tensorbridge as tb
from tensorbridge import _native

BACKENDS = tb.compiled_backends()


def data_ptr(a: np.ndarray[Any, Any]) -> int:
    return int(a.__array_interface__["data"][0])


def values(dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
    a = np.arange(24).reshape(2, 3, 4) % 5
    return (a % 2 == 1) if dtype == np.bool_ else a.astype(dtype)


def layouts(t: tb.Tensor) -> dict[str, tb.Tensor]:
    return {"contiguous": t, "strided": t.T[:, ::2], "0-d": t[1, 2, 3], "zero-size": t[:, :0]}


def reads_in_place(t: tb.Tensor) -> bool:
    """Whether ``t.numpy()`` is a view (the backends whose memory NumPy can read)."""
    return not t.numpy().flags.writeable


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=dtype_id)
def test_tensors_of_every_backend_convert_as_t_numpy_does(
    backend: str, dtype: np.dtype[Any]
) -> None:
    try:
        t = tb.tensor(values(dtype), backend=backend)
    except TypeError:
        # The README's dtype column: candle has no uint16, uint64, int8.
        assert backend.endswith("candle") and dtype.name in {"uint16", "uint64", "int8"}
        return
    for name, v in layouts(t).items():
        a = tb.asnumpy(v)
        ref = v.numpy()
        assert type(a) is np.ndarray and a.dtype == ref.dtype and a.shape == ref.shape, name
        np.testing.assert_array_equal(a, ref)
        assert a.flags.writeable == ref.flags.writeable, name
        if ref.size and not ref.flags.writeable:
            assert data_ptr(a) == data_ptr(ref), name  # the same zero-copy view
        c = tb.asnumpy(v, copy=True)
        assert c.flags.writeable and c.flags.c_contiguous
        np.testing.assert_array_equal(c, ref)
        if not reads_in_place(v):
            with pytest.raises(ValueError, match="copy=False.*device-to-host"):
                tb.asnumpy(v, copy=False)


def test_a_host_tensor_is_converted_with_zero_copies_and_a_cast_with_one() -> None:
    def copies() -> int:
        return int(_native._backend_stats("counted:cpu")["host_copies"])

    if "counted:cpu" not in tb.compiled_backends():
        pytest.skip("this build has no counted backend (make develop has it)")
    t = tb.tensor(np.arange(24, dtype=np.float32).reshape(4, 6), backend="counted:cpu")
    before = copies()
    tb.asnumpy(t)
    tb.asnumpy(t.T[::2], copy=False)
    tb.asnumpy(t, order="C")
    assert copies() == before
    tb.asnumpy(t, dtype=np.float64)
    assert copies() == before + 1
    tb.asnumpy(t, order="F")
    assert copies() == before + 2
    f = tb.asnumpy(t.T, order="K", copy=True)
    assert copies() == before + 3 and f.flags.f_contiguous  # keeps the source's order


def test_lazy_tensors_are_evaluated_by_the_conversion() -> None:
    x = tb.lazy(np.arange(6, dtype=np.float32))
    y = (x * 2 + 1).sqrt()
    a = tb.asnumpy(y)
    np.testing.assert_allclose(a, np.sqrt(np.arange(6, dtype=np.float32) * 2 + 1))
    assert not a.flags.writeable


def test_bf16_tensors_convert_to_f32_in_one_pass() -> None:
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    import ml_dtypes

    t = tb.from_numpy(bits.view(ml_dtypes.bfloat16))
    f = tb.asnumpy(t, dtype="float32")
    np.testing.assert_array_equal(f.view(np.uint32), bits.astype(np.uint32) << 16)


@pytest.mark.parametrize("order", ["K", "A", "C", "F"])
def test_order_follows_numpy(order: str) -> None:
    a = np.arange(24, dtype=np.int16).reshape(4, 6)
    t = tb.from_numpy(a)
    for src, view in ((a, t), (a.T, t.T), (a[:, ::2], t[:, ::2])):
        got = tb.asnumpy(view, order=order)
        want = np.asarray(src, order=order)
        np.testing.assert_array_equal(got, want)
        assert got.flags.c_contiguous == want.flags.c_contiguous
        assert got.flags.f_contiguous == want.flags.f_contiguous
        assert np.shares_memory(got, a) == np.shares_memory(want, a)


# ---- NumPy arrays and other objects -------------------------------------------------------------


def test_numpy_arrays_come_back_as_read_only_views() -> None:
    a = np.arange(6.0)
    v = tb.asnumpy(a)
    assert v is not a and type(v) is np.ndarray and not v.flags.writeable
    assert data_ptr(v) == data_ptr(a) and a.flags.writeable
    assert tb.asnumpy(a, copy=True).flags.writeable
    with pytest.raises(ValueError, match="copy=False.*float64 -> float32"):
        tb.asnumpy(a, dtype=np.float32, copy=False)
    be = np.arange(4, dtype=">i4")
    np.testing.assert_array_equal(tb.asnumpy(be, dtype=np.int64), [0, 1, 2, 3])
    z = np.array([1 + 1j, 2])
    assert tb.asnumpy(z).dtype == np.complex128
    np.testing.assert_array_equal(tb.asnumpy(z, dtype=np.complex64), z.astype(np.complex64))


def test_memmaps_and_subclasses_give_base_class_views(tmp_path: Any) -> None:
    mm = np.memmap(tmp_path / "m", dtype=np.float32, mode="w+", shape=(3, 4))
    mm[:] = 7
    v = tb.asnumpy(mm)
    assert type(v) is np.ndarray and data_ptr(v) == data_ptr(mm) and not v.flags.writeable


def test_sequences_and_scalars_are_new_writable_arrays() -> None:
    a = tb.asnumpy([[1, 2], [4, 8]])
    np.testing.assert_array_equal(a, [[1, 2], [4, 8]])
    assert a.dtype == np.int64 and a.flags.writeable
    assert tb.asnumpy(2.5).shape == ()
    with pytest.raises(ValueError, match="copy=False"):
        tb.asnumpy([1, 2], dtype=np.float32, copy=False)
    with pytest.raises(ValueError, match="ragged|inhomogeneous"):
        tb.asnumpy([[1], [2, 3]])
    with pytest.raises(TypeError, match="cannot convert"):
        tb.asnumpy("text")


def test_buffer_exporters_are_read_in_place() -> None:
    b = bytearray(b"\x01\x02\x03\x04")
    v = tb.asnumpy(memoryview(b))
    assert v.dtype == np.uint8 and not v.flags.writeable
    b[0] = 9
    assert v[0] == 9


class ArrayOnly:
    """An ``__array__`` producer of its own memory (the NumPy 2 protocol)."""

    def __init__(self, a: np.ndarray[Any, Any]) -> None:
        self.a = a

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray[Any, Any]:
        if copy:
            return self.a.copy()
        return self.a if dtype is None else self.a.astype(dtype)


class DLPackOnly:
    """A DLPack producer over NumPy memory (forwards the array API keywords)."""

    def __init__(self, a: np.ndarray[Any, Any]) -> None:
        self.a = a

    def __dlpack__(self, **kw: Any) -> Any:
        return self.a.__dlpack__(**kw)

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)


def test_array_and_dlpack_producers_are_read_in_place() -> None:
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    v = tb.asnumpy(ArrayOnly(a))
    assert data_ptr(v) == data_ptr(a) and not v.flags.writeable
    d = tb.asnumpy(DLPackOnly(a.T))
    assert data_ptr(d) == data_ptr(a) and not d.flags.writeable
    np.testing.assert_array_equal(d, a.T)
    np.testing.assert_array_equal(tb.asnumpy(DLPackOnly(a), dtype=np.float64), a)
    with pytest.raises(ValueError, match="copy=False"):
        tb.asnumpy(DLPackOnly(a), dtype=np.float64, copy=False)


def test_bad_arguments_are_clear_errors() -> None:
    t = tb.tensor([1.0, 2.0])
    with pytest.raises(ValueError, match="order must be"):
        tb.asnumpy(t, order="Z")
    with pytest.raises(ValueError, match="order must be"):
        tb.asnumpy([1], order="Z")
    with pytest.raises(TypeError, match="out must be a numpy.ndarray"):
        tb.asnumpy(t, out=[0, 0])
    with pytest.raises(TypeError):
        tb.asnumpy(t, copy="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="dtype"):
        tb.asnumpy(t, dtype="no-such-dtype")
    with pytest.raises(ValueError, match="copy=False"):
        tb.asnumpy(t, out=np.empty(2), copy=False)
    with pytest.raises(ValueError, match="differs from out's dtype"):
        tb.asnumpy(t, out=np.empty(2), dtype=np.float32)
    with pytest.raises(ValueError, match="out has shape"):
        tb.asnumpy(t, out=np.empty(3))


# ---- guards ---------------------------------------------------------------------------------------

needs_candle = pytest.mark.skipif(
    "candle" not in tb.compiled_backends(), reason="candle backend not compiled in"
)


@pytest.mark.skipif(
    "counted:candle" not in tb.compiled_backends(), reason="no counted:candle backend compiled in"
)
def test_transfer_guard_governs_the_implicit_copy_only(caplog: Any) -> None:
    # counted:candle hides its host memory from NumPy: converting it is a transfer, as from a
    # GPU, which is how CI checks the guard without a GPU.
    t = tb.tensor([1.0, 2.0], backend="counted:candle")
    with tb.transfer_guard("disallow"):
        with pytest.raises(RuntimeError, match="tb.asnumpy.*candle.*copy=True"):
            tb.asnumpy(t)
        np.testing.assert_array_equal(tb.asnumpy(t, copy=True), [1, 2])
        np.testing.assert_array_equal(tb.asnumpy(t, out=np.empty(2)), [1, 2])
        host = tb.tensor([1.0, 2.0])
        assert not tb.asnumpy(host).flags.writeable  # host memory: never a transfer
    with tb.transfer_guard("log"), caplog.at_level(logging.WARNING, logger="tensorbridge"):
        tb.asnumpy(t)
    assert any(
        "implicit device-to-host transfer by tb.asnumpy" in r.message for r in caplog.records
    )


@needs_candle
def test_host_memory_is_checked_before_allocating() -> None:
    huge = tb.zeros(1, backend="candle").broadcast_to((1 << 24, 1 << 24))  # 2 PiB of float64
    with pytest.raises(MemoryError, match="out="):
        tb.asnumpy(huge, copy=True)


def test_host_guard_names_the_memmap_way_out() -> None:
    with pytest.raises(MemoryError, match=r"np\.memmap"):
        _native._asnumpy_host_guard([1 << 40, 1 << 20], 8, "a test tensor")
    _native._asnumpy_host_guard([2, 3], 8, "a small one")


def test_registering_a_fast_path_checks_its_bits_table() -> None:
    class Unregistered:
        pass

    with pytest.raises(TypeError, match=r"bits\['x'\] must be \(same-width dtype, numpy.dtype\)"):
        _native._asnumpy_register_fast(Unregistered, "numpy", bits={"x": (1, 2)})
    with pytest.raises(TypeError):
        _native._asnumpy_register_fast(Unregistered, "numpy", when=[("is_cpu", "yes")])
    with pytest.raises(ValueError, match="need a method"):
        _native._asnumpy_register_fast(Unregistered, "buffer", bits={})
    with pytest.raises(ValueError, match="need a method"):
        _native._asnumpy_register_fast(Unregistered, "buffer", when=[])
    # Neither call registered the type: no "numpy" method is looked for on it.
    assert tb.asnumpy(Unregistered()).dtype == object
