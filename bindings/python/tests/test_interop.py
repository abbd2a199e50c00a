"""Interop against real consumers and producers: DLPack with NumPy, PyTorch and JAX, the buffer
protocol, and ``__cuda_array_interface__`` on CPU tensors. Each exchange checks values, dtype,
shape, whether memory is shared (data pointers) or copied (IS_COPIED), and writeability."""

from __future__ import annotations

import ctypes
import gc
import inspect
import subprocess
import sys
import weakref
from typing import Any

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import tensorbridge as tb

jax.config.update("jax_enable_x64", True)  # keep 64-bit dtypes 64-bit in JAX

DTYPES = [
    "bool",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "int8",
    "int16",
    "int32",
    "int64",
    "float16",
    "bfloat16",
    "float32",
    "float64",
]
KDL_CPU, KDL_CUDA = 1, 2
READ_ONLY, IS_COPIED = 1, 2


def sample(dtype: str, shape: tuple[int, ...] = (3, 4)) -> tb.Tensor:
    n = int(np.prod(shape))
    values = np.arange(n) % 2 if dtype == "bool" else (np.arange(n) * 3) % 100
    return tb.tensor(values.reshape(shape), dtype=dtype)


def host_values(t: tb.Tensor) -> np.ndarray[Any, Any]:
    return np.asarray(t.astype("float64") if t.dtype.name == "bfloat16" else t)


def ptr(t: tb.Tensor) -> int:
    return int(t.numpy().__array_interface__["data"][0]) if t.size else 0


# ---- the DLPack structs, declared independently of the extension (ctypes) ---------------------


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class DLManagedTensorVersioned(ctypes.Structure):
    pass


DELETER = ctypes.CFUNCTYPE(None, ctypes.POINTER(DLManagedTensorVersioned))
DLManagedTensorVersioned._fields_ = [
    ("major", ctypes.c_uint32),
    ("minor", ctypes.c_uint32),
    ("manager_ctx", ctypes.c_void_p),
    ("deleter", DELETER),
    ("flags", ctypes.c_uint64),
    ("dl_tensor", DLTensor),
]

_api = ctypes.pythonapi
_api.PyCapsule_GetPointer.restype = ctypes.c_void_p
_api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_api.PyCapsule_GetName.restype = ctypes.c_char_p
_api.PyCapsule_GetName.argtypes = [ctypes.py_object]
_api.PyCapsule_New.restype = ctypes.py_object
_api.PyCapsule_New.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
VERSIONED_NAME = b"dltensor_versioned"


def managed(capsule: Any) -> DLManagedTensorVersioned:
    addr = _api.PyCapsule_GetPointer(capsule, VERSIONED_NAME)
    return DLManagedTensorVersioned.from_address(addr)


class FakeProducer:
    """A DLPack 1.x producer written with ctypes: counts deleter calls."""

    def __init__(
        self,
        array: np.ndarray[Any, Any],
        *,
        device: int = KDL_CPU,
        dtype: tuple[int, int] | None = None,
        major: int = 1,
        strides: list[int] | None = None,
        byte_offset: int = 0,
    ) -> None:
        self.array = array
        self.deleted = 0
        self.shape = (ctypes.c_int64 * max(array.ndim, 1))(*array.shape)
        self.strides = None
        if strides is not None:
            self.strides = (ctypes.c_int64 * max(array.ndim, 1))(*strides)
        code = {"b": 6, "u": 1, "i": 0, "f": 2, "c": 5}[array.dtype.kind]
        code, bits = dtype or (code, array.dtype.itemsize * 8)
        self.deleter = DELETER(self._delete)
        self.m = DLManagedTensorVersioned(
            major=major,
            minor=0,
            deleter=self.deleter,
            flags=0,
            dl_tensor=DLTensor(
                data=array.ctypes.data,
                device=DLDevice(device, 0),
                ndim=array.ndim,
                dtype=DLDataType(code, bits, 1),
                shape=self.shape,
                strides=self.strides,
                byte_offset=byte_offset,
            ),
        )

    def _delete(self, _p: Any) -> None:
        self.deleted += 1

    def capsule(self) -> Any:
        # No capsule destructor: the test owns the struct and checks the deleter count itself.
        return _api.PyCapsule_New(ctypes.addressof(self.m), VERSIONED_NAME, None)


# ---- export: __dlpack__ -----------------------------------------------------------------------


def test_dlpack_parameters_are_keyword_only() -> None:
    params = inspect.signature(tb.Tensor.__dlpack__).parameters
    assert list(params) == ["self", "stream", "max_version", "dl_device", "copy"]
    assert all(p.kind is p.KEYWORD_ONLY for n, p in params.items() if n != "self")
    assert all(p.default is None for n, p in params.items() if n != "self")


def test_dlpack_device_of_a_cpu_tensor() -> None:
    assert tb.tensor([1.0]).__dlpack_device__() == (KDL_CPU, 0)


def test_versioned_export_is_zero_copy_and_flagged_read_only() -> None:
    t = sample("float32")
    cap = t.__dlpack__(max_version=(1, 0))
    assert _api.PyCapsule_GetName(cap) == VERSIONED_NAME
    m = managed(cap)
    assert (m.major, m.flags) == (1, READ_ONLY)
    assert m.dl_tensor.data == ptr(t)
    assert (m.dl_tensor.dtype.code, m.dl_tensor.dtype.bits, m.dl_tensor.dtype.lanes) == (2, 32, 1)
    assert [m.dl_tensor.shape[i] for i in range(2)] == [3, 4]
    assert [m.dl_tensor.strides[i] for i in range(2)] == [4, 1]


def test_copy_true_exports_fresh_memory_flagged_is_copied() -> None:
    t = sample("int32")
    m = managed(cap := t.__dlpack__(max_version=(1, 0), copy=True))
    assert m.flags == IS_COPIED and m.dl_tensor.data != ptr(t)
    out = np.from_dlpack(cap_holder(cap))
    np.testing.assert_array_equal(out, np.asarray(t))
    assert out.flags.writeable, "a producer copy belongs to the consumer"


def cap_holder(cap: Any) -> Any:
    """np.from_dlpack wants an object with __dlpack__; hand it a prepared capsule."""

    class Holder:
        def __dlpack__(self, **_: Any) -> Any:
            return cap

        def __dlpack_device__(self) -> tuple[int, int]:
            return (KDL_CPU, 0)

    return Holder()


def test_legacy_export_copies_and_never_shares_read_only_memory() -> None:
    t = sample("float64")
    for cap in (t.__dlpack__(), t.__dlpack__(copy=True)):
        assert _api.PyCapsule_GetName(cap) == b"dltensor"
        np.testing.assert_array_equal(tb.from_dlpack(cap).numpy(), t.numpy())
    # The copy is the consumer's: writing through it leaves the tensor as it was.
    x = torch.utils.dlpack.from_dlpack(t.__dlpack__())
    x += 1
    np.testing.assert_array_equal(t.numpy(), sample("float64").numpy())
    with pytest.raises(BufferError, match="read-only"):
        t.__dlpack__(max_version=(0, 8), copy=False)
    with pytest.raises(BufferError, match="read-only"):
        t.__dlpack__(copy=False)


def test_stream_must_be_none_on_cpu() -> None:
    t = sample("float32")
    for stream in (1, 2, -1, 0, 12345):
        with pytest.raises(BufferError, match="stream must be None"):
            t.__dlpack__(stream=stream, max_version=(1, 0))
    t.__dlpack__(stream=None, max_version=(1, 0))


def test_cuda_stream_rules_are_checked_against_the_requested_device() -> None:
    """The stream belongs to the capsule's device: for kDLCUDA, 0 is ambiguous (ValueError); the
    valid values pass the check and the export then fails only because this tensor is on the
    CPU. The same checks serve CUDA tensors on the torch/cuda backends."""
    t = sample("float32")
    with pytest.raises(ValueError, match="ambiguous"):
        t.__dlpack__(stream=0, max_version=(1, 0), dl_device=(KDL_CUDA, 0))
    with pytest.raises(ValueError, match="not valid"):
        t.__dlpack__(stream=-2, max_version=(1, 0), dl_device=(KDL_CUDA, 0))
    for ok in (None, 1, 2, -1, 0x7F00_0000):
        with pytest.raises(BufferError, match="cannot export"):
            t.__dlpack__(stream=ok, max_version=(1, 0), dl_device=(KDL_CUDA, 0))
    with pytest.raises(BufferError, match="stream must be None"):
        t.__dlpack__(stream=1, max_version=(1, 0), dl_device=(KDL_CPU, 0))

    class AttrStream:
        __cuda_stream__ = 0x7F00_0000

    class MethodStream:
        def __cuda_stream__(self) -> int:
            return 0

    # Objects with __cuda_stream__ (torch.cuda.Stream, CuPy streams) are read as their handle.
    with pytest.raises(BufferError, match="cannot export"):
        t.__dlpack__(stream=AttrStream(), max_version=(1, 0), dl_device=(KDL_CUDA, 0))
    with pytest.raises(ValueError, match="ambiguous"):
        t.__dlpack__(stream=MethodStream(), max_version=(1, 0), dl_device=(KDL_CUDA, 0))
    with pytest.raises(TypeError, match="__cuda_stream__"):
        t.__dlpack__(stream="s", max_version=(1, 0), dl_device=(KDL_CUDA, 0))


def test_dl_device_is_honoured() -> None:
    t = sample("float32")
    assert managed(t.__dlpack__(max_version=(1, 0), dl_device=(KDL_CPU, 0))).flags == READ_ONLY
    for bad in [(KDL_CUDA, 0), (KDL_CPU, 1), (13, 0)]:
        with pytest.raises(BufferError, match="cannot export"):
            t.__dlpack__(max_version=(1, 0), dl_device=bad)
    m = managed(t.__dlpack__(max_version=(1, 0), dl_device=(KDL_CPU, 0), copy=False))
    assert m.dl_tensor.data == ptr(t)


def test_export_keeps_refcount_and_releases_the_storage_with_the_capsule() -> None:
    src = np.arange(1000.0)
    src_ref = weakref.ref(src)
    t = tb.from_numpy(src)
    del src
    before = sys.getrefcount(t)
    cap = t.__dlpack__(max_version=(1, 0))
    assert sys.getrefcount(t) == before, "the capsule holds the storage, not the Python object"
    del t
    gc.collect()
    assert src_ref() is not None, "an unconsumed capsule keeps the memory alive"
    del cap
    gc.collect()
    assert src_ref() is None, "the capsule destructor ran our deleter"


def test_a_consumed_capsule_is_not_freed_twice_and_cannot_be_reused() -> None:
    t = sample("int64")
    cap = t.__dlpack__(max_version=(1, 0))
    u = tb.from_dlpack(cap)
    assert _api.PyCapsule_GetName(cap) == b"used_dltensor_versioned"
    with pytest.raises(ValueError, match="already consumed"):
        tb.from_dlpack(cap)
    del cap
    gc.collect()
    np.testing.assert_array_equal(u.numpy(), t.numpy())
    assert ptr(u) == ptr(t)


# ---- NumPy as consumer ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [d for d in DTYPES if d != "bfloat16"])
def test_numpy_from_dlpack_is_zero_copy_read_only(dtype: str) -> None:
    t = sample(dtype)
    out = np.from_dlpack(t)
    assert out.dtype == np.dtype(dtype) and out.shape == t.shape
    np.testing.assert_array_equal(out, np.asarray(t))
    assert out.ctypes.data == ptr(t)
    assert not out.flags.writeable


def test_numpy_does_not_read_bfloat16_dlpack() -> None:
    with pytest.raises(RuntimeError, match="Unsupported dtype"):
        np.from_dlpack(sample("bfloat16"))


def test_numpy_from_dlpack_copy_true_is_writable() -> None:
    t = sample("float32")
    out = np.from_dlpack(t, copy=True)
    assert out.flags.writeable and out.ctypes.data != ptr(t)
    np.testing.assert_array_equal(out, np.asarray(t))


@pytest.mark.parametrize(
    "view",
    [
        lambda t: t.T,
        lambda t: t[::2, 1:],
        lambda t: t[:, 1],
        lambda t: t[::-1],
        lambda t: t.reshape(4, 3, 2)[:, :1, :],  # size-1 dim
        lambda t: t[0, 0],  # 0-d
        lambda t: t[:, :0],  # zero-size
        lambda t: t[:1].broadcast_to((5, 1, 6)),  # zero strides
    ],
)
def test_numpy_from_dlpack_of_views(view: Any) -> None:
    t = view(sample("int16", (4, 6)))
    out = np.from_dlpack(t)
    ref = t.numpy()  # the zero-copy view (np.asarray copies non-C-contiguous views)
    assert out.shape == ref.shape and out.strides == ref.strides
    np.testing.assert_array_equal(out, ref)
    if t.size:
        assert out.ctypes.data == ptr(t)


def test_numpy_from_dlpack_with_device_cpu_shares() -> None:
    t = sample("float32")
    assert np.from_dlpack(t, device="cpu").ctypes.data == ptr(t)


# ---- PyTorch as consumer ----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_from_dlpack_is_zero_copy(dtype: str) -> None:
    t = sample(dtype)
    x = torch.from_dlpack(t)
    assert str(x.dtype) == f"torch.{dtype}" and tuple(x.shape) == t.shape
    assert x.data_ptr() == ptr(t)
    np.testing.assert_array_equal(x.to(torch.float64).numpy(), host_values(t).astype(np.float64))


def test_torch_from_dlpack_of_a_transposed_view() -> None:
    t = sample("float32", (3, 5)).T
    x = torch.from_dlpack(t)
    assert x.stride() == (1, 5) and x.data_ptr() == ptr(t)
    np.testing.assert_array_equal(x.numpy(), np.asarray(t))


# ---- JAX as consumer (legacy capsules only) ---------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_jax_from_dlpack_with_default_arguments_reads_a_copy(dtype: str) -> None:
    """JAX asks for a legacy capsule and passes no copy=: the array API lets the producer copy
    then, so jnp.from_dlpack(t) and jax.dlpack.from_dlpack(t) work as written."""
    t = sample(dtype)
    for arr in (jnp.from_dlpack(t), jax.dlpack.from_dlpack(t)):
        assert arr.dtype == (ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype))
        np.testing.assert_array_equal(
            np.asarray(arr.astype(jnp.float64)), host_values(t).astype(np.float64)
        )


class LegacyCopy:
    """What a user hands a legacy-only consumer: ask the tensor for a copy in a legacy capsule."""

    def __init__(self, t: tb.Tensor) -> None:
        self.t = t

    def __dlpack_device__(self) -> tuple[int, int]:
        return self.t.__dlpack_device__()

    def __dlpack__(self, *, stream: Any = None) -> Any:
        return self.t.__dlpack__(stream=stream, copy=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_jax_reads_a_legacy_copy_capsule(dtype: str) -> None:
    t = sample(dtype)
    x = jax.dlpack.from_dlpack(LegacyCopy(t))
    y = jnp.from_dlpack(LegacyCopy(t))
    want = host_values(t).astype(np.float64)
    for arr in (x, y):
        assert arr.dtype == (ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype))
        assert arr.shape == t.shape
        np.testing.assert_array_equal(np.asarray(arr.astype(jnp.float64)), want)


# ---- no buffer protocol: buffer consumers take t.numpy() ---------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_tensor_has_no_buffer_protocol_and_t_numpy_is_the_zero_copy_buffer(dtype: str) -> None:
    # NumPy tries PEP 3118 before __array__; without it, np.array(t) reaches our kernels.
    t = sample(dtype)
    with pytest.raises(TypeError, match="bytes-like"):
        memoryview(t)
    if dtype == "bfloat16":
        return  # bf16 has no PEP 3118 format: memoryview(t.numpy()) is NumPy's own refusal
    m = memoryview(t.numpy())
    assert m.readonly and m.shape == t.shape and m.itemsize == t.itemsize
    assert np.dtype(m.format) == np.dtype(dtype)
    assert np.frombuffer(m, dtype=dtype).ctypes.data == ptr(t), "zero-copy"


def test_the_buffer_of_a_strided_view_has_byte_strides_and_bytes_gathers_in_c_order() -> None:
    t = sample("int32", (4, 6))[::2, ::-3]
    m = memoryview(t.numpy())
    assert m.strides == t.numpy().strides and m.shape == t.shape
    assert m.tolist() == t.tolist()
    assert not m.c_contiguous
    assert bytes(t) == np.ascontiguousarray(t.numpy()).tobytes(), "C order, as bytes(ndarray)"
    assert bytes(sample("uint8", (2, 2))) == bytes([0, 3, 6, 9])
    assert bytes(sample("int32", (4, 6)).T) == sample("int32", (4, 6)).numpy().T.tobytes()


def test_c_buffer_requests_on_a_tensor_are_a_type_error() -> None:
    b = PyBuffer()
    with pytest.raises(TypeError):
        _api.PyObject_GetBuffer(sample("int64", (2, 3)), ctypes.byref(b), PYBUF_ND)


class PyBuffer(ctypes.Structure):
    _fields_ = [
        ("buf", ctypes.c_void_p),
        ("obj", ctypes.c_void_p),
        ("len", ctypes.c_ssize_t),
        ("itemsize", ctypes.c_ssize_t),
        ("readonly", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("format", ctypes.c_char_p),
        ("shape", ctypes.POINTER(ctypes.c_ssize_t)),
        ("strides", ctypes.POINTER(ctypes.c_ssize_t)),
        ("suboffsets", ctypes.c_void_p),
        ("internal", ctypes.c_void_p),
    ]


_api.PyObject_GetBuffer.argtypes = [ctypes.py_object, ctypes.POINTER(PyBuffer), ctypes.c_int]
PYBUF_ND = 0x8


def test_bfloat16_converts_through_array_to_ml_dtypes() -> None:
    t = sample("bfloat16")
    out = np.asarray(t)
    assert out.dtype == ml_dtypes.bfloat16 and not out.flags.writeable
    assert out.base is t, "the __array__ path: the tensor itself is the base"


def test_numpy_asarray_still_gives_a_read_only_zero_copy_view() -> None:
    t = sample("float32")
    ref = weakref.ref(t)
    out = np.asarray(t)
    assert not out.flags.writeable and out.ctypes.data == ptr(t)
    del t
    gc.collect()
    assert ref() is not None, "the array's base keeps the tensor alive"
    np.testing.assert_array_equal(out, (np.arange(12) * 3 % 100).reshape(3, 4))
    del out
    gc.collect()
    assert ref() is None


def test_cuda_array_interface_is_absent_on_cpu_tensors() -> None:
    t = sample("float32")
    assert not hasattr(t, "__cuda_array_interface__")
    with pytest.raises(AttributeError, match="not a CUDA device"):
        _ = t.__cuda_array_interface__


# ---- import: tb.from_dlpack -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [d for d in DTYPES if d != "bfloat16"])
def test_from_dlpack_numpy_is_zero_copy(dtype: str) -> None:
    a = np.asarray(sample(dtype)).copy()
    t = tb.from_dlpack(a)
    assert t.dtype == a.dtype and t.shape == a.shape and ptr(t) == a.ctypes.data
    np.testing.assert_array_equal(np.asarray(t), a)
    a[0, 0] = 1  # shared memory, as torch.from_numpy
    assert np.asarray(t)[0, 0] == 1


def test_from_dlpack_read_only_numpy_is_accepted_zero_copy() -> None:
    a = np.arange(6.0)
    a.flags.writeable = False
    t = tb.from_dlpack(a)
    assert ptr(t) == a.ctypes.data


def test_from_dlpack_keeps_the_producer_alive_and_releases_it_once() -> None:
    a = np.arange(100.0)
    a_ref = weakref.ref(a)
    t = tb.from_dlpack(a)[10:20]
    del a
    gc.collect()
    assert a_ref() is not None
    np.testing.assert_array_equal(t.numpy(), np.arange(10.0, 20.0))
    del t
    gc.collect()
    assert a_ref() is None


@pytest.mark.parametrize("dtype", DTYPES)
def test_from_dlpack_torch_is_zero_copy(dtype: str) -> None:
    src = torch.from_dlpack(sample(dtype)).clone()
    t = tb.from_dlpack(src)
    assert t.dtype.name == dtype and t.shape == tuple(src.shape)
    assert ptr(t) == src.data_ptr()
    np.testing.assert_array_equal(host_values(t), src.to(torch.float64).numpy())


def test_from_dlpack_torch_strided_view_and_lifetime() -> None:
    src = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    view = src[::2, 1:].T
    want = view.numpy().copy()
    t = tb.from_dlpack(view)
    assert ptr(t) == view.data_ptr()
    del src, view  # torch's capsule holds the storage itself, not the Python object
    gc.collect()
    for _ in range(20):
        junk = [torch.full((1000,), -1.0) for _ in range(50)]
        del junk
    np.testing.assert_array_equal(np.asarray(t), want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_from_dlpack_jax_is_zero_copy(dtype: str) -> None:
    src = jnp.asarray(host_values(sample(dtype))).astype(
        ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype
    )
    t = tb.from_dlpack(src)
    assert t.dtype.name == dtype and t.shape == src.shape
    assert ptr(t) == src.unsafe_buffer_pointer()
    np.testing.assert_array_equal(host_values(t), np.asarray(src.astype(jnp.float64)))


def test_from_dlpack_copy_true_copies_and_releases_the_producer_at_once() -> None:
    a = np.arange(10.0)
    a_ref = weakref.ref(a)
    t = tb.from_dlpack(a, copy=True)
    assert ptr(t) != a.ctypes.data
    del a
    gc.collect()
    assert a_ref() is None
    np.testing.assert_array_equal(t.numpy(), np.arange(10.0))


def test_from_dlpack_copy_false_shares() -> None:
    a = np.arange(10.0)
    assert ptr(tb.from_dlpack(a, copy=False)) == a.ctypes.data


def test_from_dlpack_of_a_tensor_shares_its_memory() -> None:
    t = sample("uint16")
    u = tb.from_dlpack(t)
    assert ptr(u) == ptr(t) and u.dtype == t.dtype


def test_from_dlpack_rejects_objects_without_dlpack() -> None:
    with pytest.raises(TypeError, match="__dlpack__"):
        tb.from_dlpack([1, 2, 3])


def test_numpy_refuses_to_export_strides_that_are_not_whole_elements() -> None:
    rec = np.zeros(4, dtype=[("a", "<i4"), ("b", "i1")])["a"]
    with pytest.raises(BufferError):
        tb.from_dlpack(rec)


def test_a_device_request_without_that_device_names_it() -> None:
    with pytest.raises(RuntimeError, match="cuda:0"):
        tb.from_dlpack(np.arange(3.0), device="cuda:0")


# ---- import from a hand-made producer: deleter, device, version, strides ----------------------


def test_foreign_deleter_runs_exactly_once_when_the_last_view_drops() -> None:
    p = FakeProducer(np.arange(12, dtype=np.int32).reshape(3, 4))
    t = tb.from_dlpack(p.capsule())
    v = t.T[1:]
    del t
    gc.collect()
    assert p.deleted == 0
    np.testing.assert_array_equal(np.asarray(v), np.arange(12).reshape(3, 4).T[1:])
    del v
    gc.collect()
    assert p.deleted == 1


def test_foreign_null_strides_mean_row_major_and_negative_strides_work() -> None:
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(np.asarray(tb.from_dlpack(FakeProducer(a).capsule())), a)
    rev = a[::-1]
    p = FakeProducer(rev, strides=[-4, 1])
    np.testing.assert_array_equal(np.asarray(tb.from_dlpack(p.capsule())), rev)


def test_foreign_misaligned_data_is_copied_correctly() -> None:
    raw = np.zeros(4 * 6 + 1, dtype=np.uint8)
    mis = np.frombuffer(raw.data, dtype=np.float32, count=6, offset=1)
    p = FakeProducer(mis)
    mis_values = np.arange(6, dtype=np.float32)
    raw[1:] = mis_values.view(np.uint8)
    t = tb.from_dlpack(p.capsule())
    np.testing.assert_array_equal(np.asarray(t), mis_values)
    gc.collect()
    assert p.deleted == 1, "the copy releases the producer at once"


def test_foreign_cuda_memory_is_refused_and_not_consumed() -> None:
    p = FakeProducer(np.arange(4.0), device=KDL_CUDA)
    cap = p.capsule()
    with pytest.raises(BufferError, match="cuda:0"):
        tb.from_dlpack(cap)
    assert _api.PyCapsule_GetName(cap) == VERSIONED_NAME
    assert p.deleted == 0


def test_foreign_major_version_2_is_refused() -> None:
    p = FakeProducer(np.arange(4.0), major=2)
    with pytest.raises(BufferError, match="version 2"):
        tb.from_dlpack(p.capsule())
    assert p.deleted == 0


def test_foreign_complex_dtype_is_refused() -> None:
    p = FakeProducer(np.arange(4, dtype=np.complex64))
    with pytest.raises(BufferError, match="not supported"):
        tb.from_dlpack(p.capsule())


def test_foreign_zero_size_and_0d() -> None:
    p = FakeProducer(np.zeros((2, 0), dtype=np.int8))
    t = tb.from_dlpack(p.capsule())
    assert t.shape == (2, 0) and p.deleted == 1
    p0 = FakeProducer(np.array(7, dtype=np.int64))
    t0 = tb.from_dlpack(p0.capsule())
    assert t0.shape == () and t0.item() == 7


# ---- no leaks: 10,000 round trips per consumer ------------------------------------------------


def _rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


SRC = np.arange(16 * 1024, dtype=np.float32)  # 64 KiB: a leak of 10,000 of them is 640 MiB


LOOPS = {
    "numpy": lambda: np.from_dlpack(tb.tensor(SRC)),
    "torch": lambda: torch.from_dlpack(tb.tensor(SRC)),
    "jax": lambda: jnp.from_dlpack(LegacyCopy(tb.from_numpy(SRC))),
    "memoryview": lambda: memoryview(tb.tensor(SRC).numpy()),
    "from numpy": lambda: tb.from_dlpack(SRC.copy()),
    "from torch": lambda: tb.from_dlpack(torch.from_numpy(SRC.copy())),
    "from jax": lambda: tb.from_dlpack(jnp.asarray(SRC)),
}


@pytest.mark.parametrize("name", list(LOOPS))
def test_ten_thousand_round_trips_keep_rss_flat(name: str) -> None:
    step = LOOPS[name]
    for _ in range(1000):  # warm allocator pools and caches
        step()
    gc.collect()
    before = _rss()
    for _ in range(10_000):
        step()
    gc.collect()
    grown = _rss() - before
    assert grown < 32 * 2**20, f"{name}: RSS grew {grown / 2**20:.1f} MiB over 10,000 round trips"


def test_capsules_and_imports_alive_at_interpreter_exit_are_safe() -> None:
    code = (
        "import numpy as np, torch, tensorbridge as tb\n"
        "t = tb.tensor(np.arange(10.0))\n"
        "cap = t.__dlpack__(max_version=(1, 0))\n"
        "x = torch.from_dlpack(t)\n"
        "u = tb.from_dlpack(torch.arange(5))\n"
        "w = tb.from_dlpack(np.arange(5))\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


class PreKeywordProducer:
    """A producer from before DLPack 1.0: ``__dlpack__`` takes no keywords, gives a legacy capsule."""

    def __init__(self, a: np.ndarray[Any, Any]) -> None:
        self.a = a

    def __dlpack__(self) -> Any:
        return self.a.__dlpack__()

    def __dlpack_device__(self) -> tuple[int, int]:
        return (KDL_CPU, 0)


def test_producers_without_keywords_are_read_through_legacy_capsules() -> None:
    a = np.arange(6, dtype=np.int32)
    shared = tb.from_dlpack(PreKeywordProducer(a))
    assert ptr(shared) == a.ctypes.data
    copied = tb.from_dlpack(PreKeywordProducer(a), copy=True)
    assert ptr(copied) != a.ctypes.data
    np.testing.assert_array_equal(np.asarray(copied), a)


def test_an_unconsumed_capsule_freed_while_an_exception_propagates() -> None:
    """A capsule left in a frame that raises: freeing it must not clobber or lose the exception."""
    src = np.arange(10.0)
    src_ref = weakref.ref(src)
    t = tb.from_numpy(src)
    del src

    def fail_holding_a_capsule(x: tb.Tensor) -> None:
        cap = x.__dlpack__(max_version=(1, 0))  # noqa: F841 (freed while the error unwinds)
        raise KeyError("the original error")

    with pytest.raises(KeyError, match="the original error"):
        fail_holding_a_capsule(t)
    del t
    gc.collect()
    assert src_ref() is None


def test_import_holds_one_reference_to_the_producer_until_the_last_view_drops() -> None:
    a = np.arange(8.0)
    before = sys.getrefcount(a)
    t = tb.from_dlpack(a)
    assert sys.getrefcount(a) == before + 1, "NumPy's capsule context holds the array"
    v = t[2:]
    del t
    assert sys.getrefcount(a) == before + 1
    del v
    gc.collect()
    assert sys.getrefcount(a) == before


@given(
    dtype=st.sampled_from(DTYPES),
    shape=st.lists(st.integers(0, 4), min_size=0, max_size=3),
    data=st.data(),
)
def test_round_trips_through_every_consumer_preserve_views(
    dtype: str, shape: list[int], data: st.DataObject
) -> None:
    """Any strided view goes to NumPy/PyTorch and back without a copy and without changing a
    value, stride or shape."""
    base = sample(dtype, tuple(shape))
    key = tuple(
        slice(
            data.draw(st.integers(0, max(d - 1, 0))),
            None,
            data.draw(st.sampled_from([1, 2, -1, -2])),
        )
        for d in shape
    )
    t = base[key] if shape else base
    want = host_values(t)
    if all(k.step > 0 for k in key):
        # torch.from_dlpack aborts the process on negative strides (NumPy's exports too).
        x = torch.from_dlpack(t)
        assert tuple(x.shape) == t.shape
        if t.size:
            assert x.data_ptr() == ptr(t)
        back = tb.from_dlpack(x)
        np.testing.assert_array_equal(host_values(back), want)
        assert back.shape == t.shape and (not t.size or ptr(back) == ptr(t))
    again = tb.from_dlpack(t)
    np.testing.assert_array_equal(host_values(again), want)
    assert again.shape == t.shape and (not t.size or ptr(again) == ptr(t))
    if dtype != "bfloat16":
        n = np.from_dlpack(t)
        assert n.strides == t.numpy().strides
        np.testing.assert_array_equal(tb.from_dlpack(n).numpy(), want)
