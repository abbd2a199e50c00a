"""``tb.asnumpy`` of PyTorch tensors (CPU; the CUDA cases are in test_asnumpy_gpu.py): every
dtype torch has × contiguous / strided / 0-d / zero-size, zero-copy by pointer, read-only flags,
bf16 bits, autograd and conjugate/negative bits, ``out=`` into a memmap, and no leaks."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest
import torch

import tensorbridge as tb

# Every torch dtype with a NumPy counterpart, and that counterpart.
NUMPY_OF = {
    torch.bool: np.dtype(np.bool_),
    torch.uint8: np.dtype(np.uint8),
    torch.uint16: np.dtype(np.uint16),
    torch.uint32: np.dtype(np.uint32),
    torch.uint64: np.dtype(np.uint64),
    torch.int8: np.dtype(np.int8),
    torch.int16: np.dtype(np.int16),
    torch.int32: np.dtype(np.int32),
    torch.int64: np.dtype(np.int64),
    torch.float16: np.dtype(np.float16),
    torch.bfloat16: np.dtype(ml_dtypes.bfloat16),
    torch.float32: np.dtype(np.float32),
    torch.float64: np.dtype(np.float64),
    torch.complex64: np.dtype(np.complex64),
    torch.complex128: np.dtype(np.complex128),
    torch.float8_e4m3fn: np.dtype(ml_dtypes.float8_e4m3fn),
    torch.float8_e5m2: np.dtype(ml_dtypes.float8_e5m2),
    torch.float8_e4m3fnuz: np.dtype(ml_dtypes.float8_e4m3fnuz),
    torch.float8_e5m2fnuz: np.dtype(ml_dtypes.float8_e5m2fnuz),
    torch.float8_e8m0fnu: np.dtype(ml_dtypes.float8_e8m0fnu),
}
# torch's own conversion of the values (independent of ours): float32/complex128 for dtypes
# torch's .numpy() refuses.
WIDE_OF = {d: (torch.complex128 if d.is_complex else torch.float64) for d in NUMPY_OF}

LAYOUTS = ["contiguous", "strided", "0-d", "zero-size"]


def source(dtype: torch.dtype, layout: str) -> torch.Tensor:
    base = (torch.arange(2 * 3 * 8, dtype=torch.float64) % 7).reshape(2, 3, 8) * 0.5
    if dtype == torch.bool:
        x = base.to(torch.int64) % 2 == 1
    elif dtype == torch.float8_e8m0fnu:
        x = (2.0 ** (base - 1)).to(dtype)  # powers of two only
    elif dtype.is_complex:
        x = torch.complex(base, -base).to(dtype)
    else:
        x = base.to(torch.float32).to(dtype) if dtype.is_floating_point else base.to(dtype)
    if layout == "strided":
        return x.transpose(0, 2)[::3, :, 1:]  # non-contiguous, offset
    if layout == "0-d":
        return x[1, 2, 5]
    if layout == "zero-size":
        return x[:, :0]
    return x


def data_ptr(a: np.ndarray[Any, Any]) -> int:
    return int(a.__array_interface__["data"][0])


def raw(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The bytes of the values in C order (exact comparison for every dtype, NaN payloads too)."""
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8)


def reference(x: torch.Tensor) -> np.ndarray[Any, Any]:
    """The values through torch's own widening conversion, then NumPy's cast."""
    return x.to(WIDE_OF[x.dtype]).numpy().astype(NUMPY_OF[x.dtype])


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", list(NUMPY_OF), ids=str)
def test_every_dtype_and_layout_is_a_read_only_zero_copy_view(
    dtype: torch.dtype, layout: str
) -> None:
    x = source(dtype, layout)
    a = tb.asnumpy(x)
    assert isinstance(a, np.ndarray) and type(a) is np.ndarray
    assert a.dtype == NUMPY_OF[dtype] and a.shape == tuple(x.shape)
    assert not a.flags.writeable
    np.testing.assert_array_equal(raw(a), raw(reference(x)))
    if x.numel():
        assert data_ptr(a) == x.data_ptr()  # zero-copy: NumPy reads torch's storage
        strides = tuple(s * x.element_size() for s in x.stride())
        assert a.strides == strides


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", list(NUMPY_OF), ids=str)
def test_copy_true_is_writable_and_independent(dtype: torch.dtype, layout: str) -> None:
    x = source(dtype, layout)
    a = tb.asnumpy(x, copy=True)
    assert a.flags.writeable and a.flags.c_contiguous
    np.testing.assert_array_equal(raw(a), raw(reference(x)))
    if x.numel():
        assert data_ptr(a) != x.data_ptr()
        before = reference(x)
        a[...] = 0
        np.testing.assert_array_equal(raw(reference(x)), raw(before))


def test_all_bf16_bit_patterns_are_exact_as_bf16_and_as_f32() -> None:
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    x = torch.from_numpy(bits.view(np.int16)).view(torch.bfloat16)
    as_bf16 = tb.asnumpy(x)
    assert as_bf16.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(as_bf16.view(np.uint16), bits)
    as_f32 = tb.asnumpy(x, dtype=np.float32)  # one fused pass
    assert as_f32.dtype == np.float32 and as_f32.flags.writeable
    np.testing.assert_array_equal(as_f32.view(np.uint32), bits.astype(np.uint32) << 16)
    strided = tb.asnumpy(x.reshape(256, 256).T[::3], dtype="float32")
    expected = (bits.astype(np.uint32) << 16).view(np.float32).reshape(256, 256).T[::3]
    np.testing.assert_array_equal(strided.view(np.uint32), expected.view(np.uint32))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2], ids=str)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_dtypes_torch_numpy_refuses_are_read_as_their_bits_in_one_view(
    dtype: torch.dtype, layout: str
) -> None:
    # torch's Tensor.numpy() refuses these dtypes; tb.asnumpy reads the same-width integer view
    # torch does give and reinterprets it: one read-only ndarray over the tensor's memory whose
    # base is torch's integer array, without asking numpy() first (its refusal, a raised torch
    # error, costs ~10 µs) and without the Python fallback's views.
    x = source(dtype, layout)
    a = tb.asnumpy(x)
    assert a.dtype == NUMPY_OF[dtype] and a.shape == tuple(x.shape) and not a.flags.writeable
    assert a.base.dtype.kind in "iu" and a.base.dtype.itemsize == x.element_size()
    np.testing.assert_array_equal(raw(a), raw(reference(x)))
    if x.numel():
        assert data_ptr(a) == x.data_ptr()
    b = tb.asnumpy(x, dtype=np.float32)  # converted natively for the dtypes the core has
    np.testing.assert_array_equal(b, x.float().numpy())
    assert b.flags.writeable and b.flags.c_contiguous


def test_a_jagged_nested_tensor_is_refused_with_a_fix_that_works() -> None:
    nt = torch.nested.nested_tensor([torch.ones(2), torch.ones(3)], layout=torch.jagged)
    with pytest.raises(TypeError, match=r"layout torch\.jagged .* x\.to_padded_tensor\(0\)"):
        tb.asnumpy(nt)
    padded = tb.asnumpy(nt.to_padded_tensor(0))  # the suggested fix converts
    np.testing.assert_array_equal(padded, [[1, 1, 0], [1, 1, 1]])


def test_bf16_with_a_negative_bit_or_autograd_still_converts() -> None:
    # x.view(torch.int16) refuses a tensor with the negative bit, numpy() one that requires
    # grad: both go on to the fallback, which resolves the bit or detaches.
    values = torch.tensor([[1.0, -2.0, 3.5], [0.25, -0.0, 8.0]], dtype=torch.bfloat16)
    for x in (values._neg_view(), values.clone().requires_grad_()):
        expected = x.detach().resolve_neg().float().numpy()
        np.testing.assert_array_equal(tb.asnumpy(x).astype(np.float32), expected)
        np.testing.assert_array_equal(tb.asnumpy(x, dtype=np.float32), expected)
        np.testing.assert_array_equal(tb.asnumpy(x.T, order="C", dtype="float32"), expected.T)


def test_dtype_is_fused_into_one_copy_and_copy_false_refuses_it() -> None:
    x = torch.arange(12, dtype=torch.int32).reshape(3, 4).T
    a = tb.asnumpy(x, dtype=np.float64)
    np.testing.assert_array_equal(a, x.numpy().astype(np.float64))
    assert a.flags.writeable
    with pytest.raises(ValueError, match=r"copy=False.*torch\.Tensor on cpu.*int32 -> float64"):
        tb.asnumpy(x, dtype=np.float64, copy=False)
    same = tb.asnumpy(x, dtype=np.int32, copy=False)  # the same dtype: still the view
    assert data_ptr(same) == x.data_ptr() and not same.flags.writeable
    as_complex = tb.asnumpy(x, dtype=np.complex64)  # a dtype only NumPy has
    np.testing.assert_array_equal(as_complex, x.numpy().astype(np.complex64))


def test_requires_grad_is_read_detached_without_a_copy() -> None:
    w = torch.linspace(0, 1, 6, requires_grad=True)
    y = w * 2
    a = tb.asnumpy(y)
    np.testing.assert_array_equal(a, y.detach().numpy())
    assert data_ptr(a) == y.data_ptr() and not a.flags.writeable
    leaf = tb.asnumpy(w, copy=False)
    assert data_ptr(leaf) == w.data_ptr()
    bf = tb.asnumpy(w.to(torch.bfloat16), dtype=np.float32)
    np.testing.assert_array_equal(bf, w.detach().to(torch.bfloat16).float().numpy())


def test_conjugate_and_negative_bits_are_resolved_once() -> None:
    z = torch.tensor([1 + 2j, -3 - 4j, 5j], dtype=torch.complex64)
    c = z.conj()
    assert c.is_conj()
    a = tb.asnumpy(c)
    np.testing.assert_array_equal(a, np.conj(z.numpy()))
    assert a.flags.writeable  # a copy torch made for us alone
    with pytest.raises(ValueError, match="conjugate bit"):
        tb.asnumpy(c, copy=False)
    n = c.imag
    assert n.is_neg()
    np.testing.assert_array_equal(tb.asnumpy(n), -z.imag.numpy())
    with pytest.raises(ValueError, match="negative bit"):
        tb.asnumpy(n, copy=False)
    np.testing.assert_array_equal(
        tb.asnumpy(n, dtype=np.float64), -z.imag.numpy().astype(np.float64)
    )
    r = torch._neg_view(torch.arange(4.0))
    assert r.is_neg()
    np.testing.assert_array_equal(tb.asnumpy(r), -np.arange(4.0, dtype=np.float32))


@pytest.mark.parametrize("order", ["K", "A", "C", "F"])
def test_order_is_numpys(order: str) -> None:
    x = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    for view in (x, x.T, x[:, ::2]):
        a = tb.asnumpy(view, order=order)
        np.testing.assert_array_equal(a, view.numpy())
        want = np.asarray(view.numpy(), order=order)
        assert a.flags.c_contiguous == want.flags.c_contiguous
        assert a.flags.f_contiguous == want.flags.f_contiguous
        shares = np.shares_memory(want, view.numpy())
        assert (data_ptr(a) == view.data_ptr()) == shares
        assert a.flags.writeable != shares
    with pytest.raises(ValueError, match="copy=False"):
        tb.asnumpy(x.T, order="C", copy=False)
    with pytest.raises(ValueError, match="order must be"):
        tb.asnumpy(x, order="X")


def test_out_writes_into_a_memmap_converted_to_its_dtype(tmp_path: Path) -> None:
    x = torch.randn(64, 33).to(torch.bfloat16)
    mm = np.memmap(tmp_path / "x.f32", dtype=np.float32, mode="w+", shape=(33, 64))
    r = tb.asnumpy(x.T, out=mm)
    assert r is mm
    mm.flush()
    back = np.memmap(tmp_path / "x.f32", dtype=np.float32, mode="r", shape=(33, 64))
    np.testing.assert_array_equal(back, x.T.float().numpy())
    with pytest.raises(ValueError, match="shape"):
        tb.asnumpy(x, out=np.empty((2, 2), np.float32))
    with pytest.raises(ValueError, match="differs from out's dtype"):
        tb.asnumpy(x, dtype=np.float64, out=np.empty((64, 33), np.float32))
    with pytest.raises(ValueError, match="read-only"):
        tb.asnumpy(x, out=tb.asnumpy(torch.zeros(64, 33)))
    with pytest.raises(TypeError, match="out must be a numpy.ndarray"):
        tb.asnumpy(x, out=[0.0])


def test_out_overlapping_the_source_reads_before_writing() -> None:
    base = np.arange(16, dtype=np.float32).reshape(4, 4)
    x = torch.from_numpy(base)
    expected = base.T.copy()
    tb.asnumpy(x.T, out=base)
    np.testing.assert_array_equal(base, expected)


def test_unconvertible_tensors_name_the_fix() -> None:
    with pytest.raises(TypeError, match=r"complex64"):
        tb.asnumpy(torch.zeros(2, dtype=torch.complex32))
    with pytest.raises(TypeError, match="dequantize"):
        tb.asnumpy(torch.quantize_per_tensor(torch.ones(2), 0.1, 0, torch.qint8))
    with pytest.raises(TypeError, match="to_dense"):
        tb.asnumpy(torch.eye(3).to_sparse())
    with pytest.raises(ValueError, match="meta device"):
        tb.asnumpy(torch.empty(3, device="meta"))
    with pytest.raises(TypeError, match="has no NumPy dtype"):
        tb.asnumpy(torch.empty(2, dtype=torch.float4_e2m1fn_x2))


def test_parameters_and_subclasses_convert() -> None:
    p = torch.nn.Parameter(torch.ones(2, 3))
    a = tb.asnumpy(p)
    assert data_ptr(a) == p.data_ptr() and not a.flags.writeable
    np.testing.assert_array_equal(a, np.ones((2, 3), np.float32))


def test_later_inplace_writes_by_torch_are_visible_in_the_view() -> None:
    x = torch.zeros(3)
    a = tb.asnumpy(x)
    x.add_(1)
    np.testing.assert_array_equal(a, [1, 1, 1])


def _rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


@pytest.mark.parametrize(
    "how",
    ["view", "bf16 view", "bf16 -> f32", "copy=True", "out="],
)
def test_ten_thousand_conversions_keep_rss_flat(how: str) -> None:
    """Each call converts a fresh 64 KiB tensor: a leaked view (or copy) would keep 640 MiB."""
    out = np.empty(16384, np.float32)

    def once() -> None:
        if how == "view":
            tb.asnumpy(torch.ones(16384))
        elif how == "bf16 view":
            tb.asnumpy(torch.ones(32768, dtype=torch.bfloat16))
        elif how == "bf16 -> f32":
            tb.asnumpy(torch.ones(16384, dtype=torch.bfloat16), dtype=np.float32)
        elif how == "copy=True":
            tb.asnumpy(torch.ones(16384), copy=True)
        else:
            tb.asnumpy(torch.ones(16384, dtype=torch.bfloat16), out=out)

    for _ in range(200):
        once()
    gc.collect()
    before = _rss()
    for _ in range(10_000):
        once()
    gc.collect()
    grown = _rss() - before
    assert grown < 32 * 2**20, f"{how}: RSS grew {grown / 2**20:.1f} MiB over 10,000 calls"
