"""``tb.asnumpy`` of JAX arrays: every dtype JAX has (x64 on) × contiguous / strided / 0-d /
zero-size, zero-copy by pointer on the CPU, read-only flags, bf16 bits, sharded arrays assembled
from their shards on 8 forced host devices (in a subprocess: XLA reads the flag at start-up),
``out=`` into a memmap, and no leaks."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import jax
import ml_dtypes
import numpy as np
import pytest

import tensorbridge as tb

import jax.numpy as jnp

DTYPES = [
    np.bool_, np.uint8, np.uint16, np.uint32, np.uint64, np.int8, np.int16, np.int32, np.int64,
    np.float16, ml_dtypes.bfloat16, np.float32, np.float64, np.complex64, np.complex128,
    ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2, ml_dtypes.int4, ml_dtypes.uint4,
]  # fmt: skip
LAYOUTS = ["contiguous", "strided", "0-d", "zero-size"]
# XLA's CPU buffers of 4-bit integers are packed two to a byte; JAX unpacks them into a new
# array, so these are the one copy, not a view.
PACKED = {np.dtype(ml_dtypes.int4), np.dtype(ml_dtypes.uint4)}


@pytest.fixture(autouse=True, scope="module")
def _x64() -> Any:
    """64-bit dtypes for this module only (other modules' JAX arrays keep JAX's defaults)."""
    before = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", before)


def host_values(dtype: Any, layout: str) -> np.ndarray[Any, Any]:
    base = (np.arange(2 * 3 * 8) % 7).reshape(2, 3, 8)
    d = np.dtype(dtype)
    if d == np.bool_:
        a = base % 2 == 1
    elif d.kind in "fc" or d.name.startswith("float") or d == ml_dtypes.bfloat16:
        a = (base * 0.5).astype(d)
    else:
        a = base.astype(d)
    if layout == "strided":
        return a.transpose(2, 1, 0)[::3, :, 1:]
    if layout == "0-d":
        return a[1, 2, 5]
    if layout == "zero-size":
        return a[:, :0]
    return a


def data_ptr(a: np.ndarray[Any, Any]) -> int:
    return int(a.__array_interface__["data"][0])


def raw(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The bytes of the values in C order (exact comparison for every dtype, NaN payloads too)."""
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_every_dtype_and_layout_is_a_read_only_zero_copy_view(dtype: Any, layout: str) -> None:
    expected = host_values(dtype, layout)
    x = jnp.asarray(expected)  # a JAX array is always dense: "strided" is its own compact copy
    assert x.dtype == np.dtype(dtype)
    a = tb.asnumpy(x)
    assert type(a) is np.ndarray and a.dtype == np.dtype(dtype) and a.shape == expected.shape
    np.testing.assert_array_equal(raw(a), raw(expected))
    if np.dtype(dtype) in PACKED:
        assert a.flags.writeable  # JAX's unpacked copy, ours alone
    else:
        assert not a.flags.writeable
        if x.size:
            assert data_ptr(a) == x.unsafe_buffer_pointer()  # NumPy reads XLA's CPU buffer
    c = tb.asnumpy(x, copy=True)
    assert c.flags.writeable and (not x.size or data_ptr(c) != x.unsafe_buffer_pointer())
    np.testing.assert_array_equal(raw(c), raw(expected))
    if layout == "strided":  # the same values transposed by JAX: a dense array again
        t = x.T
        np.testing.assert_array_equal(tb.asnumpy(t), expected.T)


def test_all_bf16_bit_patterns_are_exact_as_bf16_and_as_f32() -> None:
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    x = jnp.asarray(bits.view(ml_dtypes.bfloat16))
    np.testing.assert_array_equal(tb.asnumpy(x).view(np.uint16), bits)
    f = tb.asnumpy(x, dtype=np.float32)
    assert f.flags.writeable
    np.testing.assert_array_equal(f.view(np.uint32), bits.astype(np.uint32) << 16)
    with pytest.raises(ValueError, match=r"copy=False.*jax\.Array.*bfloat16 -> float32"):
        tb.asnumpy(x, dtype=np.float32, copy=False)


def test_copy_false_keeps_the_view_and_order_changes_need_a_copy() -> None:
    x = jnp.arange(12.0).reshape(3, 4)
    a = tb.asnumpy(x, copy=False)
    assert data_ptr(a) == x.unsafe_buffer_pointer()
    f = tb.asnumpy(x, order="F")
    assert f.flags.f_contiguous and f.flags.writeable
    np.testing.assert_array_equal(f, np.arange(12.0).reshape(3, 4))
    with pytest.raises(ValueError, match="copy=False"):
        tb.asnumpy(x, order="F", copy=False)


def test_out_writes_into_a_memmap(tmp_path: Path) -> None:
    x = jnp.asarray(np.arange(48, dtype=np.float32).reshape(6, 8)).astype(jnp.bfloat16)
    mm = np.memmap(tmp_path / "x.f64", dtype=np.float64, mode="w+", shape=(6, 8))
    assert tb.asnumpy(x, out=mm) is mm
    np.testing.assert_array_equal(mm, np.arange(48, dtype=np.float64).reshape(6, 8))


def test_deleted_arrays_name_the_cause() -> None:
    x = jnp.ones(3)
    x.delete()
    with pytest.raises(ValueError, match="deleted"):
        tb.asnumpy(x)


def test_traced_arrays_are_refused_with_the_fix() -> None:
    def f(v: Any) -> Any:
        tb.asnumpy(v)
        return v

    with pytest.raises(TypeError, match="traced.*jax.pure_callback"):
        jax.jit(f)(jnp.ones(2))


def _rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


@pytest.mark.parametrize("how", ["view", "bf16 view", "bf16 -> f32", "copy=True"])
def test_ten_thousand_conversions_keep_rss_flat(how: str) -> None:
    """Each call converts a fresh 64 KiB array: a leaked view or copy would keep 640 MiB."""
    host = np.ones(16384, np.float32)
    host16 = np.ones(32768, ml_dtypes.bfloat16)

    def once() -> None:
        if how == "view":
            tb.asnumpy(jnp.asarray(host))
        elif how == "bf16 view":
            tb.asnumpy(jnp.asarray(host16))
        elif how == "bf16 -> f32":
            tb.asnumpy(jnp.asarray(host16[:16384]), dtype=np.float32)
        else:
            tb.asnumpy(jnp.asarray(host), copy=True)

    for _ in range(200):
        once()
    gc.collect()
    before = _rss()
    for _ in range(10_000):
        once()
    gc.collect()
    grown = _rss() - before
    assert grown < 48 * 2**20, f"{how}: RSS grew {grown / 2**20:.1f} MiB over 10,000 calls"


SHARDED = textwrap.dedent(
    """
    import os, sys
    import numpy as np, ml_dtypes, jax, jax.numpy as jnp
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    import tensorbridge as tb

    assert len(jax.devices()) == 8, jax.devices()
    mesh = Mesh(np.array(jax.devices()).reshape(4, 2), ("x", "y"))
    host = np.arange(8 * 6, dtype=np.float32).reshape(8, 6) - 20.5
    checked = 0
    for spec in (P("x", "y"), P("x"), P(None, "y"), P(("x", "y")), P()):
        s = jax.device_put(jnp.asarray(host), NamedSharding(mesh, spec))
        assert len(s.sharding.device_set) == 8
        a = tb.asnumpy(s)
        np.testing.assert_array_equal(a, host)
        assert a.dtype == np.float32
        if spec == P():
            # Fully replicated: one shard's buffer, read in place.
            ptrs = {sh.data.unsafe_buffer_pointer() for sh in s.addressable_shards}
            assert a.__array_interface__["data"][0] in ptrs and not a.flags.writeable
        else:
            assert a.flags.writeable and a.flags.c_contiguous
            try:
                tb.asnumpy(s, copy=False)
                raise AssertionError("copy=False assembled a sharded array")
            except ValueError as e:
                assert "sharded over 8 devices" in str(e), e
        b = tb.asnumpy(s.astype(jnp.bfloat16), dtype=np.float32)  # cast fused per shard
        np.testing.assert_array_equal(b, host.astype(ml_dtypes.bfloat16).astype(np.float32))
        f = tb.asnumpy(s, order="F")
        assert f.flags.f_contiguous
        np.testing.assert_array_equal(f, host)
        out = np.memmap(sys.argv[1], dtype=np.float64, mode="w+", shape=host.shape)
        assert tb.asnumpy(s, out=out) is out
        np.testing.assert_array_equal(out, host.astype(np.float64))
        checked += 1
    # The shards' own cache is not filled (np.asarray(s) would keep a host copy on s).
    s = jax.device_put(jnp.asarray(host), NamedSharding(mesh, P("x", "y")))
    tb.asnumpy(s)
    assert s._npy_value is None
    print("sharded ok", checked)
    """
)


def test_sharded_arrays_on_eight_host_devices_are_assembled_from_their_shards(
    tmp_path: Path,
) -> None:
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, "-c", SHARDED, str(tmp_path / "out.f64")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "sharded ok 5" in proc.stdout
