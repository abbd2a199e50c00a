"""``tb.asnumpy`` of TensorFlow tensors and variables (CPU: tensorflow-cpu is pinned in the test
venv): every dtype TensorFlow has × contiguous / strided / 0-d / zero-size, zero-copy by pointer
(TF's own ``t.numpy()`` always copies), read-only flags, bf16 bits, ``out=`` into a memmap,
symbolic tensors refused with the fix, and no leaks."""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter

import ml_dtypes  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import tensorbridge as tb  # noqa: E402

EXP = tf.dtypes.experimental
# TensorFlow dtype -> the NumPy dtype of its values.
NUMPY_OF = {
    tf.bool: np.dtype(np.bool_),
    tf.uint8: np.dtype(np.uint8),
    tf.uint16: np.dtype(np.uint16),
    tf.uint32: np.dtype(np.uint32),
    tf.uint64: np.dtype(np.uint64),
    tf.int8: np.dtype(np.int8),
    tf.int16: np.dtype(np.int16),
    tf.int32: np.dtype(np.int32),
    tf.int64: np.dtype(np.int64),
    tf.float16: np.dtype(np.float16),
    tf.bfloat16: np.dtype(ml_dtypes.bfloat16),
    tf.float32: np.dtype(np.float32),
    tf.float64: np.dtype(np.float64),
    tf.complex64: np.dtype(np.complex64),
    tf.complex128: np.dtype(np.complex128),
    EXP.float8_e4m3fn: np.dtype(ml_dtypes.float8_e4m3fn),
    EXP.float8_e5m2: np.dtype(ml_dtypes.float8_e5m2),
    EXP.float8_e4m3fnuz: np.dtype(ml_dtypes.float8_e4m3fnuz),
    EXP.float8_e5m2fnuz: np.dtype(ml_dtypes.float8_e5m2fnuz),
    EXP.float8_e4m3b11fnuz: np.dtype(ml_dtypes.float8_e4m3b11fnuz),
}
LAYOUTS = ["contiguous", "strided", "0-d", "zero-size"]


def source(dtype: tf.DType, layout: str) -> tuple[Any, np.ndarray[Any, Any]]:
    """A TF tensor and its expected values (TensorFlow has no strided views: a slice or
    transpose is a new dense tensor, which is what "strided" converts here)."""
    base = (np.arange(2 * 3 * 8) % 7).reshape(2, 3, 8)
    want = NUMPY_OF[dtype]
    values = (base % 2 == 1) if want == np.bool_ else (base * 0.5).astype(want) \
        if want.kind in "fcV" else base.astype(want)  # fmt: skip
    if layout == "strided":
        values = values.transpose(2, 1, 0)[::3, :, 1:]
    elif layout == "0-d":
        values = values[1, 2, 5]
    elif layout == "zero-size":
        values = values[:, :0]
    # (Made from the values, not by slicing in TF, which has no slicing kernels for the *fnuz
    # float8 types.)
    return tf.constant(values, dtype=dtype), values


def data_ptr(a: np.ndarray[Any, Any]) -> int:
    return int(a.__array_interface__["data"][0])


def raw(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The bytes of the values in C order (exact comparison for every dtype, NaN payloads too)."""
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8)


def tf_buffer(x: Any) -> int:
    """TensorFlow's buffer address, through its DLPack export (zero-copy), not through NumPy."""
    t = tb.from_dlpack(tf.experimental.dlpack.to_dlpack(x))
    return data_ptr(t.numpy())


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", list(NUMPY_OF), ids=lambda d: d.name)
def test_every_dtype_and_layout_is_a_read_only_zero_copy_view(dtype: Any, layout: str) -> None:
    x, expected = source(dtype, layout)
    assert x.dtype == dtype
    a = tb.asnumpy(x)
    assert type(a) is np.ndarray and a.dtype == NUMPY_OF[dtype] and a.shape == expected.shape
    np.testing.assert_array_equal(raw(a), raw(expected))
    np.testing.assert_array_equal(raw(a), raw(x.numpy()))
    if layout == "0-d":
        # TensorFlow hands a 0-d tensor to Python as a NumPy scalar: a copy, ours alone.
        assert a.flags.writeable
    else:
        assert not a.flags.writeable
        if expected.size and NUMPY_OF[dtype].kind in "biuf" and NUMPY_OF[dtype].isbuiltin == 1:
            assert data_ptr(a) == tf_buffer(x)  # NumPy reads TensorFlow's buffer
        if expected.size:
            assert data_ptr(a) == data_ptr(tb.asnumpy(x))  # the same memory every call
    c = tb.asnumpy(x, copy=True)
    assert c.flags.writeable and (not expected.size or data_ptr(c) != data_ptr(a))
    np.testing.assert_array_equal(raw(c), raw(expected))


def test_all_bf16_bit_patterns_are_exact_as_bf16_and_as_f32() -> None:
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    x = tf.constant(bits.view(ml_dtypes.bfloat16))
    assert x.dtype == tf.bfloat16
    np.testing.assert_array_equal(tb.asnumpy(x).view(np.uint16), bits)
    f = tb.asnumpy(x, dtype=np.float32)  # one fused pass (TF: tf.cast, then .numpy() copies)
    assert f.flags.writeable
    np.testing.assert_array_equal(f.view(np.uint32), bits.astype(np.uint32) << 16)
    with pytest.raises(ValueError, match=r"copy=False.*TensorFlow tensor on CPU:0"):
        tb.asnumpy(x, dtype=np.float32, copy=False)


def test_the_seed_walkthrough_matches_tensorflows_own_numpy() -> None:
    t = tf.constant([[1, 2], [4, 8]])
    for x in (t, tf.multiply(t, 2)):
        a = tb.asnumpy(x)
        np.testing.assert_array_equal(a, x.numpy())
        assert a.dtype == x.numpy().dtype == np.int32


def test_variables_convert_their_current_value() -> None:
    v = tf.Variable([[1.0, 2.0], [3.0, 4.0]])
    a = tb.asnumpy(v)
    np.testing.assert_array_equal(a, v.numpy())
    assert not a.flags.writeable
    v.assign_add(tf.ones((2, 2)))
    np.testing.assert_array_equal(a, [[1, 2], [3, 4]])  # the value when converted
    np.testing.assert_array_equal(tb.asnumpy(v), [[2, 3], [4, 5]])
    np.testing.assert_array_equal(tb.asnumpy(v, dtype=np.int64), [[2, 3], [4, 5]])


def test_strings_and_quantized_types() -> None:
    s = tb.asnumpy(tf.constant(["a", "bc"]))
    assert s.tolist() == [b"a", b"bc"]
    q = tf.constant([1, -2], dtype=tf.qint8)
    np.testing.assert_array_equal(tb.asnumpy(q), q.numpy())


def test_symbolic_tensors_name_the_fix() -> None:
    @tf.function
    def f(x: Any) -> Any:
        tb.asnumpy(x)
        return x

    with pytest.raises(TypeError, match="symbolic tf.Tensor.*tf.numpy_function"):
        f(tf.constant([1.0]))


def test_order_and_out(tmp_path: Path) -> None:
    x = tf.reshape(tf.range(12, dtype=tf.float32), (3, 4))
    f = tb.asnumpy(x, order="F")
    assert f.flags.f_contiguous and f.flags.writeable
    np.testing.assert_array_equal(f, x.numpy())
    mm = np.memmap(tmp_path / "x", dtype=np.float64, mode="w+", shape=(3, 4))
    assert tb.asnumpy(tf.cast(x, tf.bfloat16), out=mm) is mm
    np.testing.assert_array_equal(mm, x.numpy().astype(np.float64))
    with pytest.raises(ValueError, match="copy=False"):
        tb.asnumpy(x, order="F", copy=False)


def _rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


@pytest.mark.parametrize("how", ["view", "bf16 -> f32", "copy=True", "variable"])
def test_ten_thousand_conversions_keep_rss_flat(how: str) -> None:
    """Each call converts a fresh 64 KiB tensor: a leaked view or copy would keep 640 MiB."""
    host = np.ones(16384, np.float32)
    host16 = np.ones(16384, ml_dtypes.bfloat16)

    def once() -> None:
        if how == "view":
            tb.asnumpy(tf.constant(host))
        elif how == "bf16 -> f32":
            tb.asnumpy(tf.constant(host16), dtype=np.float32)
        elif how == "copy=True":
            tb.asnumpy(tf.constant(host), copy=True)
        else:
            tb.asnumpy(tf.Variable(host))

    for _ in range(200):
        once()
    gc.collect()
    before = _rss()
    for _ in range(10_000):
        once()
    gc.collect()
    grown = _rss() - before
    assert grown < 48 * 2**20, f"{how}: RSS grew {grown / 2**20:.1f} MiB over 10,000 calls"
