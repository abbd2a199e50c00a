"""The conversion contract: ``t.numpy()``, ``__array__`` with NumPy 2 ``copy`` semantics, zero-copy
read-only views that keep the storage alive, and the dtype mapping (bf16 through ml_dtypes)."""

from __future__ import annotations

import gc
import inspect
import subprocess
import sys
import textwrap
import weakref
from typing import Any

import ml_dtypes
import numpy as np
import pytest
from numpy_reference import ALL_DTYPES, BFLOAT16, assert_same_array, dtype_id, sample_array

import tensorbridge as tb

# NumPy 2 warns (DeprecationWarning) when __array__ lacks the copy keyword: make that a failure.
pytestmark = pytest.mark.filterwarnings("error::DeprecationWarning")


def _tensor(dtype: np.dtype[Any], shape: tuple[int, ...] = (3, 4)) -> tuple[tb.Tensor, np.ndarray]:
    a = sample_array(np.random.default_rng(0), dtype, shape)
    return tb.tensor(a), a


# ---- dtype, shape and values ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=dtype_id)
def test_numpy_returns_an_ndarray_with_the_same_dtype_shape_and_bits(dtype: np.dtype[Any]) -> None:
    t, a = _tensor(dtype)
    assert_same_array(t.numpy(), a)
    assert_same_array(np.asarray(t), a)
    assert_same_array(np.array(t), a)
    assert_same_array(t.numpy(copy=True), a)


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=dtype_id)
def test_tensor_dtype_property_is_the_numpy_dtype(dtype: np.dtype[Any]) -> None:
    t, _ = _tensor(dtype)
    assert isinstance(t.dtype, np.dtype)
    assert t.dtype == dtype
    assert t.numpy().dtype == t.dtype


def test_float16_converts_to_numpy_float16() -> None:
    t = tb.tensor([0.5, 1.5, 65504.0], dtype="float16")
    assert_same_array(t.numpy(), np.array([0.5, 1.5, 65504.0], dtype=np.float16))


def test_bfloat16_converts_to_ml_dtypes_bfloat16_bit_exactly() -> None:
    raw = np.array([0x3FC0, 0x7F80, 0xFF80, 0x7FC1, 0x8000, 0x0001], dtype=np.uint16)
    a = raw.view(ml_dtypes.bfloat16)  # 1.5, inf, -inf, a NaN with payload, -0.0, a subnormal
    t = tb.tensor(a)
    assert t.dtype == BFLOAT16
    out = t.numpy()
    assert out.dtype == np.dtype(ml_dtypes.bfloat16)
    np.testing.assert_array_equal(out.view(np.uint16), raw)


def test_bfloat16_to_float32_in_one_conversion() -> None:
    t = tb.tensor([0.5, 1.5, -2.25], dtype="bfloat16")
    assert_same_array(np.asarray(t, dtype=np.float32), np.array([0.5, 1.5, -2.25], np.float32))
    assert_same_array(t.astype("float32").numpy(), np.array([0.5, 1.5, -2.25], np.float32))


def test_bfloat16_without_ml_dtypes_raises_type_error_naming_both_fixes() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["ml_dtypes"] = None  # makes `import ml_dtypes` fail
        import numpy as np
        import tensorbridge as tb

        t = tb.tensor([1.5, 2.0], dtype="bfloat16")
        for convert in (t.numpy, lambda: np.asarray(t), lambda: t.dtype):
            try:
                convert()
            except TypeError as e:
                msg = str(e)
                assert "pip install ml_dtypes" in msg and 't.astype(' in msg, msg
                assert "float32" in msg, msg
            else:
                raise AssertionError("no TypeError")
        # The ways out work without ml_dtypes.
        assert t.astype("float32").numpy().tolist() == [1.5, 2.0]
        assert np.asarray(t, dtype=np.float32).dtype == np.float32
        assert t.tolist() == [1.5, 2.0] and float(t[0]) == 1.5
        assert "dtype=bfloat16" in repr(t)
        print("ok")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


# ---- zero-copy views -------------------------------------------------------------------------------


def test_two_numpy_calls_share_memory() -> None:
    t = tb.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert np.shares_memory(t.numpy(), t.numpy())
    assert np.shares_memory(np.asarray(t), t.numpy())


def test_from_numpy_shares_memory_with_the_source_both_ways() -> None:
    src = np.arange(12.0).reshape(3, 4)
    t = tb.from_numpy(src)
    out = t.numpy()
    assert np.shares_memory(out, src)
    src[0, 0] = 100.0  # like torch.from_numpy: the tensor sees the source's memory
    assert out[0, 0] == 100.0
    assert t[0, 0].item() == 100.0


def test_from_numpy_of_strided_views_is_zero_copy() -> None:
    src = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    for view in (src.T, src[:, ::2, ::-1], src[::-1, 1:, ::3], np.broadcast_to(src[0, 0], (5, 4))):
        t = tb.from_numpy(view)
        out = t.numpy()
        assert np.shares_memory(out, src)
        assert_same_array(out, view)


def test_tensor_copies_its_input() -> None:
    src = np.arange(6.0)
    t = tb.tensor(src)
    assert not np.shares_memory(t.numpy(), src)
    src[0] = 99.0
    assert t[0].item() == 0.0


@pytest.mark.parametrize(
    "view",
    [
        pytest.param(lambda t: t.T, id="T"),
        pytest.param(lambda t: t.transpose(1, 0, 2), id="transpose"),
        pytest.param(lambda t: t[:, ::2], id="step-slice"),
        pytest.param(lambda t: t[::-1, :, ::-2], id="negative-steps"),
        pytest.param(lambda t: t[1, ..., None], id="int-ellipsis-newaxis"),
        pytest.param(lambda t: t[:, 1:1], id="empty-slice"),
        pytest.param(lambda t: t[0].broadcast_to([5, 3, 4]), id="broadcast_to"),
        pytest.param(lambda t: t.reshape(6, 4), id="reshape"),
        pytest.param(lambda t: t.swapaxes(0, 2).unsqueeze(1), id="swapaxes-unsqueeze"),
    ],
)
def test_strided_views_stay_zero_copy_in_numpy(view: Any) -> None:
    a = np.arange(24.0).reshape(2, 3, 4)
    base = tb.tensor(a)
    v = view(base)
    expected = np.asarray(view(_NumpyLike(a)))
    for out in (v.numpy(), np.asarray(v, copy=False), v.numpy(copy=False)):
        assert_same_array(out, expected)
        assert _effective_strides(out) == _effective_strides(expected)
        if out.size:
            assert np.shares_memory(out, base.numpy())
        assert not out.flags.writeable
    # NumPy's copy=None entry points: the view when it is C-contiguous or broadcast, else one
    # C-contiguous copy by our kernel (what np.ascontiguousarray then returns as it is).
    out = np.asarray(v)
    assert_same_array(out, expected)
    if expected.flags.c_contiguous or 0 in expected.strides:
        assert out.size == 0 or np.shares_memory(out, base.numpy())
        assert not out.flags.writeable
    else:
        assert out.flags.c_contiguous and out.flags.writeable
        assert not np.shares_memory(out, base.numpy())
    # copy=True: NumPy's order "K", as np.array of the same ndarray view.
    out = np.array(v)
    assert_same_array(out, expected)
    assert out.flags.writeable and not np.shares_memory(out, base.numpy())
    long_axes = [i for i, n in enumerate(out.shape) if n > 1]  # a length-1 axis's stride is moot
    assert [out.strides[i] for i in long_axes] == [np.array(expected).strides[i] for i in long_axes]


def _effective_strides(a: np.ndarray) -> tuple[int, ...]:
    """Strides of the axes longer than 1 (NumPy lets the others be anything)."""
    if a.size == 0:
        return ()
    return tuple(s for s, d in zip(a.strides, a.shape) if d > 1)


class _NumpyLike:
    """Applies the tensorbridge view methods used above to an ndarray (the NumPy reference)."""

    def __init__(self, a: np.ndarray) -> None:
        self.a = a

    def __getitem__(self, key: Any) -> Any:
        return _NumpyLike(self.a[key])

    @property
    def T(self) -> Any:  # noqa: N802
        return _NumpyLike(self.a.T)

    def transpose(self, *axes: int) -> Any:
        return _NumpyLike(self.a.transpose(axes))

    def broadcast_to(self, shape: list[int]) -> Any:
        return _NumpyLike(np.broadcast_to(self.a, shape))

    def reshape(self, *shape: int) -> Any:
        return _NumpyLike(self.a.reshape(shape))

    def swapaxes(self, a: int, b: int) -> Any:
        return _NumpyLike(self.a.swapaxes(a, b))

    def unsqueeze(self, axis: int) -> Any:
        return _NumpyLike(np.expand_dims(self.a, axis))

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return self.a


# ---- copy semantics (NumPy 2) -----------------------------------------------------------------------


def test_views_are_read_only_and_writing_raises_value_error() -> None:
    t = tb.tensor([1, 2, 3])
    for out in (t.numpy(), np.asarray(t), t.numpy(copy=False), np.asarray(t, copy=False)):
        assert not out.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            out[0] = 7
    assert t.tolist() == [1, 2, 3]


def test_copy_true_gives_a_new_writable_array() -> None:
    t = tb.tensor([[1, 2], [3, 4]])
    for out in (t.numpy(copy=True), np.array(t), np.asarray(t, copy=True), t.__array__(copy=True)):
        assert out.flags.writeable and out.flags.c_contiguous and out.flags.owndata
        assert not np.shares_memory(out, t.numpy())
        out[0, 0] = 99
        assert t[0, 0].item() == 1


def test_copy_true_of_a_strided_view_is_c_contiguous() -> None:
    t = tb.tensor(np.arange(12).reshape(3, 4))[::-1, ::2].T
    out = t.numpy(copy=True)
    assert out.flags.c_contiguous and out.flags.writeable
    assert_same_array(out, np.arange(12).reshape(3, 4)[::-1, ::2].T)


def test_copy_none_copies_only_when_needed() -> None:
    t = tb.tensor([1, 2, 3], dtype="int32")
    same = np.asarray(t, dtype=np.int32)
    assert np.shares_memory(same, t.numpy())
    converted = np.asarray(t, dtype=np.float64)
    assert_same_array(converted, np.array([1.0, 2.0, 3.0]))
    assert converted.flags.writeable


def test_copy_false_never_copies() -> None:
    t = tb.tensor([1.0, 2.0])
    for out in (np.asarray(t, copy=False), np.array(t, copy=False), t.__array__(copy=False)):
        assert np.shares_memory(out, t.numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.complex64, np.dtype(">i8")])
def test_copy_false_raises_value_error_when_a_dtype_conversion_is_needed(dtype: Any) -> None:
    t = tb.tensor([1, 2, 3])
    with pytest.raises(ValueError, match="copy"):
        np.asarray(t, dtype=dtype, copy=False)
    with pytest.raises(ValueError, match="copy"):
        t.__array__(dtype=np.dtype(dtype), copy=False)


def test_dunder_array_converts_to_dtypes_tensorbridge_lacks() -> None:
    t = tb.tensor([1, 2])
    assert_same_array(np.asarray(t, dtype=np.complex64), np.array([1, 2], np.complex64))
    big_endian = np.asarray(t, dtype=">i8")
    assert big_endian.dtype == np.dtype(">i8")
    assert big_endian.tolist() == [1, 2]
    assert t.__array__(np.dtype(">i8")).dtype == np.dtype(">i8")


def test_dunder_array_signature_and_defaults() -> None:
    t = tb.tensor([1.5])
    assert np.shares_memory(t.__array__(), t.numpy())
    assert np.shares_memory(t.__array__(None, None), t.numpy())
    out = t.__array__(np.float16, None)
    assert out.dtype == np.float16


def test_numpy_and_dunder_array_take_arguments_as_python_functions_do() -> None:
    # Both methods parse their own arguments (one vectorcall, no pyo3 parsing): keyword names
    # are matched by identity with the interned names, or by value; None is "not given".
    t = tb.tensor([1.0, 2.0])
    built = {"".join(["co", "py"]): True}  # a keyword name that is not the interned string
    assert t.numpy(**built).flags.writeable
    assert t.__array__(**{"".join(["dt", "ype"]): np.float16}).dtype == np.float16
    assert not t.numpy(copy=None, out=None, casting=None).flags.writeable
    assert t.numpy(copy=np.True_).flags.writeable  # NumPy bools, as before
    out = np.zeros(2, np.float32)
    assert t.numpy(out=out, casting="unsafe") is out and out.tolist() == [1.0, 2.0]
    assert t.__array__(None, True).flags.writeable
    assert t.__array__(np.dtype(np.int32), copy=None).dtype == np.int32
    for call, message in [
        (lambda: t.numpy(True), r"numpy\(\) takes no positional arguments but 1 were given"),
        (lambda: t.numpy(copyy=True), r"numpy\(\) got an unexpected keyword argument 'copyy'"),
        (lambda: t.numpy(copy="yes"), r"numpy\(\) argument 'copy'"),
        (lambda: t.numpy(copy=1), r"numpy\(\) argument 'copy'"),
        (lambda: t.numpy(out=out, casting=1), r"numpy\(\) argument 'casting'"),
        (
            lambda: t.__array__(None, None, None),
            r"__array__\(\) takes from 0 to 2 positional arguments but 3 were given",
        ),
        (lambda: t.__array__(None, dtype=None), r"multiple values for argument 'dtype'"),
        (lambda: t.__array__(copy="no"), r"__array__\(\) argument 'copy'"),
        (lambda: tb.Tensor.numpy(np.zeros(2)), r"numpy.*Tensor"),
        (lambda: tb.Tensor.__array__(None), r"__array__.*Tensor"),
    ]:
        with pytest.raises(TypeError, match=message):
            call()
    # What `inspect` and stub checkers read, and the docstrings, as for every other method.
    assert tb.Tensor.numpy.__text_signature__ == "($self, *, copy=None, out=None, casting=None)"
    assert tb.Tensor.__array__.__text_signature__ == "($self, dtype=None, copy=None)"
    assert list(inspect.signature(tb.Tensor.numpy).parameters) == ["self", "copy", "out", "casting"]
    assert "zero-copy" in (tb.Tensor.numpy.__doc__ or "")
    assert "conversion protocol" in (tb.Tensor.__array__.__doc__ or "")


def test_numpy_functions_and_ufuncs_return_ndarrays() -> None:
    t = tb.tensor([[1, 2], [4, 8]])
    out = np.add(t, 1)
    assert type(out) is np.ndarray
    assert_same_array(out, np.array([[2, 3], [5, 9]]))
    assert type(np.multiply(t, t)) is np.ndarray
    assert_same_array(np.concatenate([t, t]), np.array([[1, 2], [4, 8]] * 2))
    assert_same_array(np.asarray([t, t]), np.array([[[1, 2], [4, 8]]] * 2))


def test_operators_with_an_ndarray_on_either_side_return_tensors() -> None:
    # As with torch.Tensor: NumPy defers its operators to the tensor's (__array_priority__),
    # so `ndarray + t` is `t.__radd__(ndarray)`, a tensor on t's backend, like `t + ndarray`.
    t = tb.tensor([1, 2], dtype="int16")
    for got in (np.array([1, 2]) + t, t + np.array([1, 2]), np.int64(1) * t, [1, 2] + t):
        assert isinstance(got, tb.Tensor) and got.backend == t.backend
        assert got.dtype == np.int64
    assert isinstance(np.array([1, 2]) == t, tb.Tensor)
    assert_same_array((np.array([3, 4]) - t).numpy(), np.array([2, 2]))


def test_numpy_copy_keyword_only() -> None:
    t = tb.tensor([1])
    with pytest.raises(TypeError):
        t.numpy(True)  # type: ignore[misc]


# ---- lifetime ------------------------------------------------------------------------------------------


def test_view_keeps_storage_alive_after_the_tensor_is_gone() -> None:
    t = tb.tensor(np.arange(1000.0).reshape(10, 100))[::2, ::-3]
    expected = np.arange(1000.0).reshape(10, 100)[::2, ::-3]
    out = t.numpy()
    del t
    gc.collect()
    _churn()
    assert_same_array(out, expected)


def test_from_numpy_keeps_the_source_alive_through_tensor_and_views() -> None:
    src = np.arange(100, dtype=np.int64)
    src_ref = weakref.ref(src)
    t = tb.from_numpy(src)
    del src
    gc.collect()
    assert src_ref() is not None
    out = t.T[::-1].numpy()
    del t
    gc.collect()
    _churn()
    assert src_ref() is not None
    assert_same_array(out, np.arange(100)[::-1])
    del out
    gc.collect()
    assert src_ref() is None, "the source array is released with the last view"


def test_tensor_is_released_when_its_last_view_is_gone() -> None:
    t = tb.tensor([1.0, 2.0, 3.0])
    ref = weakref.ref(t)
    out = np.asarray(t)
    del t
    gc.collect()
    assert ref() is not None
    # A tensor has no buffer protocol: NumPy calls __array__, whose view's base is the tensor.
    assert out.base is ref()
    assert t_numpy_base_is_the_tensor()
    del out
    gc.collect()
    assert ref() is None


def t_numpy_base_is_the_tensor() -> bool:
    t = tb.tensor([1.0, 2.0])
    return t.numpy().base is t


def _churn() -> None:
    """Allocates and frees memory so a dangling pointer would read reused memory."""
    for _ in range(20):
        junk = [np.full(1000, -1.0) for _ in range(50)]
        del junk


def _rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_100k_numpy_calls_keep_memory_flat() -> None:
    t = tb.tensor(np.arange(10_000.0)).reshape(100, 100).T
    for _ in range(1_000):  # warm up allocator pools and caches
        t.numpy()
        np.asarray(t)
    gc.collect()
    before = _rss_bytes()
    for _ in range(100_000):
        t.numpy()
    for _ in range(100_000):
        np.asarray(t)
    gc.collect()
    grown = _rss_bytes() - before
    assert grown < 20 * 2**20, f"RSS grew by {grown / 2**20:.1f} MiB over 200,000 conversions"


@pytest.mark.parametrize("backend", tb.compiled_backends())
def test_large_copies_reuse_one_cached_buffer_and_never_pile_up(backend: str) -> None:
    # 40 MB: above the 32 MiB from which copies go through the core's output cache.
    t = tb.tensor(np.ones((2500, 4000), np.float32), backend=backend)
    tb.release_cached_buffers()
    held = []
    for _ in range(4):
        out = np.array(t)
        assert out.flags.writeable and out[-1, -1] == 1
        del out
        gc.collect()
        held.append(tb.cached_buffer_bytes())
    # Host-memory backends hand the buffer back and take it again: the figure stays; backends
    # with their own host allocation (candle) never add to it.
    assert held == [held[0]] * 4 and held[0] <= t.nbytes + t.nbytes // 8, held
    assert tb.release_cached_buffers() == held[0]
    assert tb.cached_buffer_bytes() == 0


@pytest.mark.parametrize("backend", tb.compiled_backends())
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=dtype_id)
# Copies below 32 MiB are written into uninitialised NumPy arrays (memory the allocator hands back
# from earlier arrays, so an element left unwritten shows as a wrong value): n × 3 elements is
# 3 KiB for 1-byte dtypes and 6 to 24 KiB for the others, 100,000 × 3 up to 2.4 MiB (copies of
# 2 MiB and more run on several threads).
@pytest.mark.parametrize("n", [1023, 1025, 100_000])
def test_copies_into_uninitialised_arrays_are_exact_and_not_cached(
    backend: str, dtype: np.dtype[Any], n: int
) -> None:
    if backend.split(":")[-1] == "candle" and str(dtype) in {"int8", "uint16", "uint64"}:
        pytest.skip(f"candle has no {dtype} dtype")
    a = sample_array(np.random.default_rng(n), dtype, (n, 3))
    t = tb.tensor(a, backend=backend)
    tb.release_cached_buffers()
    for got, want in (
        (np.array(t), np.array(a)),
        (t.numpy(copy=True), a.copy()),
        (np.ascontiguousarray(t.T), np.ascontiguousarray(a.T)),
        (np.ascontiguousarray(t[::-2, ::2]), np.ascontiguousarray(a[::-2, ::2])),
        (np.array(t, dtype=np.float64), np.array(a, dtype=np.float64)),
    ):
        assert_same_array(got, want)
        assert got.flags.writeable and got.flags.c_contiguous
        got.fill(0)  # the copy is the caller's: writing it leaves the tensor as it was
    assert_same_array(t.numpy(), a)
    del got
    gc.collect()
    # Under 32 MiB nothing is kept for reuse: the allocator's own free lists serve these sizes.
    assert tb.cached_buffer_bytes() == 0


@pytest.mark.parametrize("backend", tb.compiled_backends())
# Transposed outputs of 16 MiB and more go out through the tile buffers with streaming stores: a
# shape of odd sides gives output rows that are not 16-byte aligned (u8, u16, f32), whose whole
# cache lines are streamed and the partial lines at both ends stored normally; an even one
# aligned rows streamed in full. 1- and 2-byte elements take the AVX2 blocks where the CPU has them.
@pytest.mark.parametrize(
    "dtype, shape",
    [
        (np.uint8, (4099, 4101)),
        (np.uint8, (4096, 4608)),
        (np.uint16, (2901, 2903)),
        (np.float32, (2053, 2051)),
    ],
    ids=["u8-odd", "u8-even", "u16-odd", "f32-odd"],
)
def test_streamed_transposes_of_any_row_alignment_are_exact(
    backend: str, dtype: Any, shape: tuple[int, int]
) -> None:
    if backend.split(":")[-1] == "candle" and np.dtype(dtype) == np.uint16:
        pytest.skip("candle has no uint16 dtype")
    a = (np.arange(shape[0] * shape[1], dtype=np.uint64) * 2654435761 % 65521).astype(dtype)
    a = a.reshape(shape)
    assert a.nbytes >= 16 << 20
    t = tb.tensor(a, backend=backend)
    assert_same_array(np.ascontiguousarray(t.T), np.ascontiguousarray(a.T))
    out = np.full(shape[::-1], 7, dtype=dtype)
    assert_same_array(t.T.numpy(out=out), np.ascontiguousarray(a.T))
    assert_same_array(t[:, 1:].T.numpy(copy=True), np.ascontiguousarray(a[:, 1:].T))


@pytest.mark.parametrize("backend", tb.compiled_backends())
# Dense copies of 16 MiB and more stream their output (whole cache lines as non-temporal stores,
# the partial lines at each work item's ends stored normally). Odd byte counts and a source one
# element in give every alignment of source and destination; 17 MB goes into a fresh NumPy
# array, 40 MB through the core's output cache (from 32 MiB).
@pytest.mark.parametrize(
    "dtype, n",
    [(np.uint8, 17_000_003), (np.float32, 4_250_001), (np.float64, 5_000_003)],
    ids=["u8-17MB", "f32-17MB", "f64-40MB"],
)
def test_streamed_dense_copies_are_exact(backend: str, dtype: Any, n: int) -> None:
    a = (np.arange(n, dtype=np.uint64) * 2654435761 % 65521).astype(dtype)
    assert a.nbytes >= 16 << 20
    t = tb.tensor(a, backend=backend)
    assert_same_array(np.array(t), np.array(a))
    assert_same_array(t.numpy(copy=True), a.copy())
    assert_same_array(np.copy(t[1:]), np.copy(a[1:]))
    assert_same_array(t[3:].numpy(copy=True), a[3:].copy())
    tb.release_cached_buffers()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
def test_large_copies_run_on_a_thread_with_the_smallest_stack(dtype: Any) -> None:
    # Tiled copies of 1024² (through the tile buffers: output rows a multiple of 1 KiB apart)
    # run partly on the calling thread, plain transposes and converting ones (64² tiles of the
    # output dtype). Their buffers are on the heap: a thread with the smallest stack Python
    # allows (32 KiB) converts them (a 32 KiB f64 tile on the stack crashed it).
    import threading

    a = (np.arange(1024 * 1024) % 251).astype(dtype).reshape(1024, 1024)
    t = tb.tensor(a)
    results: dict[str, np.ndarray[Any, Any]] = {}

    def convert() -> None:
        results["transpose"] = np.ascontiguousarray(t.T)
        results["cast"] = np.asarray(t.T, dtype=np.float64)
        results["cast-contiguous"] = np.asarray(t[:, :1000], dtype=np.float64)

    previous = threading.stack_size(32 << 10)
    try:
        worker = threading.Thread(target=convert)
        worker.start()
        worker.join()
    finally:
        threading.stack_size(previous)
    np.testing.assert_array_equal(results["transpose"], a.T)
    np.testing.assert_array_equal(results["cast"], a.T.astype(np.float64))
    np.testing.assert_array_equal(results["cast-contiguous"], a[:, :1000].astype(np.float64))


def _shares_with(a: np.ndarray[Any, Any], backend: str) -> Any:
    """A tensor of `backend` over `a`'s own memory."""
    if backend == "torch":
        import torch

        return tb.from_torch(torch.from_numpy(a))
    return tb.from_numpy(a)


@pytest.mark.parametrize("backend", [b for b in ("cpu", "torch") if b in tb.compiled_backends()])
@pytest.mark.parametrize("n", [4, 300, 1025])
def test_out_sharing_memory_with_the_tensor_gets_numpys_values(backend: str, n: int) -> None:
    # `out=` that overlaps the tensor's own memory: the values are read before any is written,
    # as np.copyto does (writing in place while reading gave wrong values, silently).
    a = np.arange(n * n, dtype=np.float32).reshape(n, n)
    expected = a.T.copy()
    out = _shares_with(a, backend).T.numpy(out=a)
    assert out is a
    np.testing.assert_array_equal(a, expected)
    b = np.arange(n * n, dtype=np.float64).reshape(n, n)
    shifted = b[:-1].copy()
    _shares_with(b, backend)[:-1].numpy(out=b[1:])
    np.testing.assert_array_equal(b[1:], shifted)
    c = np.arange(n * n, dtype=np.float32).reshape(n, n)
    expected = c.T.copy()
    tb.asnumpy(c.T, out=c)
    np.testing.assert_array_equal(c, expected)


@pytest.mark.parametrize("backend", tb.compiled_backends())
def test_out_running_backwards_gets_np_copytos_values(backend: str) -> None:
    # `out=` with negative strides, which np.copyto accepts (it was a ValueError), with and
    # without a cast; the rest of the buffer is left as it was.
    x = np.arange(60, dtype=np.float32).reshape(6, 10)
    t = tb.tensor(x, backend=backend)
    for window in (np.s_[::-1, :], np.s_[:, ::-2], np.s_[::-2, ::-1], np.s_[::-1, 3:8]):
        for dtype in (np.float32, np.float64):
            want = np.full((6, 10), -7, dtype=dtype)
            np.copyto(want[window], x[window])
            got = np.full((6, 10), -7, dtype=dtype)
            out = got[window]
            assert t[window].numpy(out=out) is out
            np.testing.assert_array_equal(got, want, err_msg=f"{window} {dtype}")
    if backend in ("cpu", "torch"):
        # Written backwards while the tensor reads the same memory forwards: staged first.
        y = np.arange(12, dtype=np.float32)
        expected = y[::-1].copy()
        _shares_with(y, backend).numpy(out=y[::-1])
        np.testing.assert_array_equal(y, expected)
    # Two elements of `out` in the same memory: NumPy's result would depend on its write order.
    broadcast = np.lib.stride_tricks.as_strided(
        np.zeros(10, dtype=np.float32), shape=(6, 10), strides=(0, 4), writeable=True
    )
    with pytest.raises(ValueError, match="same memory"):
        t.numpy(out=broadcast)


@pytest.mark.parametrize("backend", tb.compiled_backends())
def test_np_array_of_a_permuted_view_keeps_numpys_order_k_on_every_backend(backend: str) -> None:
    # `np.array(view)` (copy=True: NumPy's order "K") of views whose memory order is not C:
    # the values, strides and flags of `np.array` of the same ndarray view, in a new writable
    # array, also with a dtype (one fused cast) and for one to four permuted axes.
    a = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    t = tb.tensor(a, backend=backend)
    views = [
        (lambda x: x.T, "T"),
        (lambda x: x.transpose(0, 2, 1, 3), "swap middle"),
        (lambda x: x.transpose(3, 1, 0, 2), "scattered"),
        (lambda x: x[:, ::2].transpose(1, 0, 3, 2), "sliced then permuted"),
        (lambda x: x[1, :, ::-1].T, "reversed then T"),
        (lambda x: x.reshape(6, 20).T, "2-d T"),
    ]
    for view, name in views:
        for dtype in (None, np.float64):
            want = np.array(view(a), dtype=dtype)
            got = np.array(view(t), dtype=dtype)
            assert_same_array(got, want)
            assert got.strides == want.strides, name
            assert got.flags.f_contiguous == want.flags.f_contiguous, name
            assert got.flags.writeable, name
            assert not np.shares_memory(got, a), name
            got[(0,) * got.ndim] = -1  # its own memory: the tensor is unchanged
            assert view(t).numpy()[(0,) * got.ndim] == view(a)[(0,) * got.ndim], name
