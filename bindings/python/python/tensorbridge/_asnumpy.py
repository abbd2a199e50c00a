"""``tb.asnumpy(x)``: any runtime's tensor into NumPy under one contract.

The entry point is native (``_native.asnumpy``): it answers tensorbridge tensors, NumPy arrays
and the types registered here as having a zero-copy host view (torch CPU tensors through
``Tensor.numpy()``, TensorFlow eager tensors through ``_numpy()`` when TensorFlow has no
accelerator, JAX CPU arrays through the buffer protocol). Everything else comes to
:func:`_convert`, which brings the object either to

* an ndarray over its host memory (``_host``): returned read-only when nothing else is asked
  for, else copied once by the core's fused kernels (``_native._asnumpy_array``: cast, layout);
* or a tensor over its device memory, imported zero-copy through DLPack (``_from_device``):
  converted by the core (``_native._asnumpy_tensor``) exactly as ``t.numpy()`` converts a
  device tensor — transfer guard, host-memory guard, cast on the device, ``out=`` streamed.

Only when no tensorbridge backend can hold the device memory (a build without a CUDA backend,
a device kind tensorbridge has no backend for) does the runtime's own host copy stand in.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from . import _native

asnumpy = _native.asnumpy

_Array = np.ndarray[Any, Any]
_Handler = Callable[[Any, Any, "bool | None", "_Array | None", str], _Array]

# The dtypes tensorbridge's kernels convert (NumPy names; bfloat16 is ml_dtypes').
_OURS = frozenset(
    "bool uint8 uint16 uint32 uint64 int8 int16 int32 int64 float16 bfloat16 float32 "
    "float64".split()
)
_ORDERS = ("K", "A", "C", "F")


def _convert(
    x: Any, /, *, dtype: Any = None, copy: bool | None = None, out: Any = None, order: str = "K"
) -> _Array:
    """``tb.asnumpy`` of everything the native entry point does not answer itself."""
    if order not in _ORDERS:
        order = order.upper() if isinstance(order, str) else order
        if order not in _ORDERS:
            raise ValueError(f"tb.asnumpy: order must be 'K', 'A', 'C' or 'F', got {order!r}")
    if out is not None and not isinstance(out, np.ndarray):
        raise TypeError(
            f"tb.asnumpy: out must be a numpy.ndarray (np.memmap works), got {type(out).__name__}"
        )
    tp = type(x)
    handler = _HANDLERS.get(tp)
    if handler is None:
        handler = _handler_for(tp)
        _HANDLERS[tp] = handler
    return handler(x, dtype, copy, out, order)


def _handler_for(tp: type) -> _Handler:
    if issubclass(tp, np.ndarray):
        return _from_ndarray
    root = (getattr(tp, "__module__", None) or "").split(".")[0]
    torch = sys.modules.get("torch")
    if root == "torch" and torch is not None and issubclass(tp, torch.Tensor):
        _register_torch()
        return _from_torch
    jax = sys.modules.get("jax")
    if root in ("jax", "jaxlib") and jax is not None and issubclass(tp, jax.core.Tracer):
        return _from_jax_tracer  # (tracers are jax.Array instances, not subclasses)
    if root in ("jax", "jaxlib") and jax is not None and issubclass(tp, jax.Array):
        # The buffer protocol of a JAX array is a zero-copy view of a single-device CPU buffer
        # and refuses everything else (device memory, shards, bf16), which `_from_jax` handles.
        _native._asnumpy_register_fast(tp, "buffer")
        return _from_jax
    tf = sys.modules.get("tensorflow")
    if (
        root in ("tensorflow", "keras")
        and tf is not None
        and issubclass(tp, (tf.Tensor, tf.Variable))
    ):
        return _from_tensorflow
    cupy = sys.modules.get("cupy")
    if root == "cupy" and cupy is not None and issubclass(tp, cupy.ndarray):
        return _from_cupy
    if hasattr(tp, "__dlpack__"):
        return _from_dlpack_producer
    return _from_array_like


_HANDLERS: dict[type, _Handler] = {}


# ---------------------------------------------------------------------------------------------
# host memory


def _np_dtype(dtype: Any) -> np.dtype[Any]:
    if isinstance(dtype, str) and dtype in ("bfloat16", "bf16"):
        return np.dtype(_ml_dtypes().bfloat16)
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"tb.asnumpy: dtype={dtype!r} is not a NumPy dtype") from None


def _ours(d: np.dtype[Any]) -> bool:
    try:
        return _OURS_MEMO[d]
    except KeyError:
        # (dtype.name runs Python code in NumPy 2: asked once per dtype)
        found = _OURS_MEMO[d] = d.name in _OURS and d.isnative
        return found


_OURS_MEMO: dict[np.dtype[Any], bool] = {}


def _layout_ok(a: _Array, order: str) -> bool:
    if order == "C":
        return bool(a.flags.c_contiguous)
    return order != "F" or bool(a.flags.f_contiguous)  # "K" and "A" take any view


def _host(
    v: _Array,
    dtype: Any,
    copy: bool | None,
    out: _Array | None,
    order: str,
    src: str,
    private: bool = False,
) -> _Array:
    """The contract over ``v``, an ndarray over the source's host memory: a read-only view of
    it when that is what is asked, else one copy (the core's fused kernel for tensorbridge's
    dtypes, NumPy's for the others). ``private``: ``v`` is a fresh array nobody else holds (the
    runtime had to copy), so it may be returned itself, writable."""
    if out is not None:
        return _fill(v, out, dtype, copy, order, src)
    target = v.dtype if dtype is None else _np_dtype(dtype)
    same = target == v.dtype
    layout_ok = _layout_ok(v, order)
    if same and layout_ok and (private or copy is not True):
        return _writable(v) if private else _native._readonly(v)
    if copy is False:
        why = (
            f"a dtype conversion {v.dtype} -> {target}"
            if not same
            else f"a copy (order={order!r}: the view is not {order}-contiguous)"
        )
        raise ValueError(
            f"tb.asnumpy(copy=False) of {src}: the conversion needs {why}. Use copy=None to "
            "allow a copy when needed."
        )
    if _ours(v.dtype) and _ours(target):
        return _native._asnumpy_array(v, dtype=target, order=order)
    copy_order: Literal["C", "F"] = "F" if order == "F" or (
        order in "KA" and v.flags.f_contiguous and not v.flags.c_contiguous) else "C"  # fmt: skip
    return np.array(v, dtype=target, order=copy_order, copy=True)


def _writable(v: _Array) -> _Array:
    """A private copy as the contract gives copies: writable (a runtime may hand its copies out
    read-only; NumPy lets the owner of the memory lift that)."""
    if not v.flags.writeable:
        try:
            v.flags.writeable = True
        except ValueError:
            return v.copy()
    return v


def _fill(v: _Array, out: _Array, dtype: Any, copy: bool | None, order: str, src: str) -> _Array:
    """Writes ``v``'s values into ``out`` (converted to its dtype) and returns ``out``."""
    if copy is False:
        raise ValueError(
            "tb.asnumpy(out=...) always copies into out; copy=False cannot be honoured"
        )
    if dtype is not None and _np_dtype(dtype) != out.dtype:
        raise ValueError(
            f"tb.asnumpy: dtype={_np_dtype(dtype)} differs from out's dtype {out.dtype}; "
            "pass one of them"
        )
    if out.shape != v.shape:
        raise ValueError(f"tb.asnumpy: out has shape {out.shape}, {src} has shape {v.shape}")
    if not out.flags.writeable:
        raise ValueError("tb.asnumpy: out is read-only")
    if not _layout_ok(out, order):
        raise ValueError(f"tb.asnumpy: order={order!r} but out is not {order}-contiguous")
    if v.size and np.may_share_memory(v, out):
        v = v.copy()  # writing out must not change what is still to be read
    if _ours(v.dtype) and _ours(out.dtype) and out.dtype.isnative:
        _native._asnumpy_array(v, out=out)
    else:
        np.copyto(out, v, casting="unsafe")
    return out


def _from_ndarray(
    x: _Array, dtype: Any, copy: bool | None, out: _Array | None, order: str
) -> _Array:
    return _host(x, dtype, copy, out, order, f"a {type(x).__module__}.{type(x).__name__}")


def _from_array_like(
    x: Any, dtype: Any, copy: bool | None, out: _Array | None, order: str
) -> _Array:
    """``__array__``, the buffer protocol, nested sequences, scalars: what ``np.asarray`` reads.
    A view of the object's own memory stays read-only; an array NumPy had to build is ours."""
    src = f"a {type(x).__name__}"
    if isinstance(x, (str, dict, set)) or x is None:
        raise TypeError(f"tb.asnumpy: cannot convert {src} to a numeric array")
    try:
        v, private = np.asarray(x, copy=False), False
    except (ValueError, TypeError):
        try:
            v, private = np.asarray(x), True
        except ValueError as e:
            raise ValueError(f"tb.asnumpy: cannot convert {src}: {e}") from None
    return _host(v, dtype, copy, out, order, src, private)


def _ml_dtypes() -> Any:
    try:
        import ml_dtypes
    except ImportError:
        raise TypeError(
            "tb.asnumpy: bfloat16 and float8 convert to NumPy as ml_dtypes types, but ml_dtypes "
            "is not installed: pip install ml_dtypes"
        ) from None
    return ml_dtypes


# ---------------------------------------------------------------------------------------------
# device memory


def _from_device(
    x: Any,
    dtype: Any,
    copy: bool | None,
    out: _Array | None,
    order: str,
    src: str,
    host_copy: Callable[[], _Array] | None,
    capsule: Callable[[], Any] | None = None,
) -> _Array:
    """Memory NumPy cannot read in place: imported zero-copy onto the tensorbridge backend for
    that device (DLPack), then converted by the core as ``t.numpy()`` converts device tensors.
    When no backend holds that memory, ``host_copy`` (the runtime's own device→host copy, made
    after the same guards) stands in; without it, the error names what is missing."""
    try:
        t = _native._from_dlpack(x if capsule is None else capsule())
    except (BufferError, RuntimeError, TypeError) as e:
        if host_copy is None:
            raise type(e)(f"tb.asnumpy: cannot read {src}: {e}") from None
        reason = str(e)
    else:
        return _native._asnumpy_tensor(t, dtype=dtype, copy=copy, out=out, order=order, source=src)
    # No tensorbridge backend holds this memory: the runtime copies it to the host.
    if copy is False and out is None:
        raise ValueError(
            f"tb.asnumpy(copy=False) of {src}: the conversion needs a device-to-host copy. Use "
            "copy=None to allow a copy when needed."
        )
    if copy is None and out is None:
        _native._asnumpy_transfer_guard(src)
    if out is None:
        shape, itemsize = _shape_and_itemsize(x)
        if shape is not None:
            _native._asnumpy_host_guard(list(shape), itemsize, f"{src} ({reason})")
    return _host(host_copy(), dtype, True, out, order, src, private=True)


def _shape_and_itemsize(x: Any) -> tuple[tuple[int, ...] | None, int]:
    try:
        shape = tuple(int(d) for d in x.shape)
        dt = x.dtype  # NumPy's, torch's (itemsize) or TensorFlow's (size)
        itemsize = int(getattr(dt, "itemsize", None) or dt.size)
    except (AttributeError, TypeError, ValueError):
        return None, 0
    return shape, itemsize


def _from_dlpack_producer(
    x: Any, dtype: Any, copy: bool | None, out: _Array | None, order: str
) -> _Array:
    """Any other DLPack producer: its memory imported in place (host or device), then the
    contract as for a tensorbridge tensor; ``__array__`` when DLPack cannot carry it."""
    src = f"a {type(x).__module__}.{type(x).__qualname__}"
    try:
        t = _native._from_dlpack(x)
    except (BufferError, TypeError, ValueError, RuntimeError) as e:
        if hasattr(x, "__array__"):
            return _from_array_like(x, dtype, copy, out, order)
        raise type(e)(f"tb.asnumpy: cannot read {src} through DLPack: {e}") from None
    return _native._asnumpy_tensor(t, dtype=dtype, copy=copy, out=out, order=order, source=src)


# ---------------------------------------------------------------------------------------------
# PyTorch

# torch dtypes NumPy lacks, read as the ml_dtypes type of the same bits: name -> (torch dtype
# of the same width, ml_dtypes type).
_TORCH_VIA_BITS = {
    "bfloat16": ("int16", "bfloat16"),
    "float8_e4m3fn": ("uint8", "float8_e4m3fn"),
    "float8_e5m2": ("uint8", "float8_e5m2"),
    "float8_e4m3fnuz": ("uint8", "float8_e4m3fnuz"),
    "float8_e5m2fnuz": ("uint8", "float8_e5m2fnuz"),
    "float8_e8m0fnu": ("uint8", "float8_e8m0fnu"),
}
# The same keyed by torch dtype objects, built on first use: torch dtype -> (torch dtype, NumPy
# dtype), or None for dtypes Tensor.numpy() reads itself.
_TORCH_BITS: dict[Any, tuple[Any, np.dtype[Any]] | None] = {}


def _register_torch() -> None:
    torch = sys.modules["torch"]
    # Tensor.numpy() is a zero-copy view of CPU memory and raises for everything else (device
    # memory, autograd, conjugate/negative bits, bf16), which the fallback then handles. A
    # raised torch error costs ~10 µs, so the native path does not ask numpy() off the CPU or
    # under autograd (the fallback's cases), and reads the dtypes it refuses but whose bits it
    # reads (bf16 as int16) that way.
    bits: dict[Any, tuple[Any, np.dtype[Any]]] = {}
    if importlib.util.find_spec("ml_dtypes") is not None:
        for name in _TORCH_VIA_BITS:
            d = getattr(torch, name, None)
            try:
                found = None if d is None else _torch_bits(d)
            except AttributeError:  # an ml_dtypes without that type: the fallback explains
                continue
            if found is not None:
                bits[d] = found
    when = [("is_cpu", True), ("requires_grad", False)]
    _native._asnumpy_register_fast(torch.Tensor, "numpy", when=when, bits=bits)


def _from_torch(x: Any, dtype: Any, copy: bool | None, out: _Array | None, order: str) -> _Array:
    if x.requires_grad:
        x = x.detach()  # the value, never an error
    if x.is_cpu and not x.is_neg():
        try:
            v = _torch_view(x)
        except (RuntimeError, TypeError):
            pass  # conjugate bit, sparse, quantized, complex32...: explained below
        else:
            return _host(v, dtype, copy, out, order, "a torch.Tensor on cpu")
    return _from_torch_other(x, dtype, copy, out, order)


def _from_torch_other(
    x: Any, dtype: Any, copy: bool | None, out: _Array | None, order: str
) -> _Array:
    """What is not a plain CPU tensor: device memory, or a tensor NumPy cannot view as it is."""
    torch = sys.modules["torch"]
    if x.layout != torch.strided:
        # Sparse layouts densify with to_dense(); a jagged nested tensor has no dense form of
        # its own (to_dense() raises for it): pad it, or take its components.
        fix = (
            "x.to_padded_tensor(0) (or convert each of x.unbind())"
            if x.layout == getattr(torch, "jagged", None)
            else "x.to_dense()"
        )
        raise TypeError(
            f"tb.asnumpy: a torch tensor with layout {x.layout} has no strided memory NumPy can "
            f"view; call {fix} first"
        )
    if x.is_quantized:
        raise TypeError(
            f"tb.asnumpy: quantized torch tensors ({x.dtype}) have no NumPy dtype; call "
            "x.dequantize() (values) or x.int_repr() (stored integers) first"
        )
    if x.device.type == "meta":
        raise ValueError(
            "tb.asnumpy: a torch.Tensor on the meta device has no data (only a shape and dtype); "
            "materialise it first (e.g. torch.empty_like(x, device='cpu'))"
        )
    private = False
    if x.is_conj() or x.is_neg():
        if copy is False and out is None:
            bit = "conjugate" if x.is_conj() else "negative"
            raise ValueError(
                f"tb.asnumpy(copy=False) of a torch.Tensor on {x.device} with its {bit} bit set: "
                "NumPy has no lazy conjugation or negation, so the conversion needs a copy. Use "
                "copy=None, or x.resolve_conj().resolve_neg() first."
            )
        x = x.resolve_conj().resolve_neg()  # one copy, by torch, on the tensor's device
        private = True
    if x.is_cpu:
        return _host(_torch_view(x), dtype, copy, out, order, "a torch.Tensor on cpu", private)
    src = f"a torch.Tensor on {x.device}"
    return _from_device(x, dtype, copy, out, order, src, host_copy=lambda: _torch_view(x.cpu()))


def _torch_view(x: Any) -> _Array:
    """An ndarray over a CPU tensor's memory (zero-copy; dtypes NumPy lacks as ml_dtypes)."""
    d = x.dtype
    try:
        bits = _TORCH_BITS[d]
    except KeyError:
        bits = _torch_bits(d)
    if bits is not None:
        return x.view(bits[0]).numpy().view(bits[1])
    try:
        return x.numpy()
    except TypeError as e:
        if d == sys.modules["torch"].complex32:
            raise TypeError(
                "tb.asnumpy: torch.complex32 has no NumPy dtype; convert with "
                "x.to(torch.complex64) first"
            ) from None
        raise TypeError(f"tb.asnumpy: torch dtype {d} has no NumPy dtype ({e})") from None


def _torch_bits(d: Any) -> tuple[Any, np.dtype[Any]] | None:
    torch = sys.modules["torch"]
    spec = _TORCH_VIA_BITS.get(str(d).removeprefix("torch."))
    found = None
    if spec is not None:
        found = (getattr(torch, spec[0]), np.dtype(getattr(_ml_dtypes(), spec[1])))
    _TORCH_BITS[d] = found
    return found


# ---------------------------------------------------------------------------------------------
# JAX


def _from_jax(x: Any, dtype: Any, copy: bool | None, out: _Array | None, order: str) -> _Array:
    if x.is_deleted():
        raise ValueError(
            "tb.asnumpy: this jax.Array was deleted (x.delete(), or donated to a jitted "
            "function); convert it before it is deleted"
        )
    devices = x.sharding.device_set
    if len(devices) == 1:
        (device,) = devices
        return _jax_single(x, device, dtype, copy, out, order)
    if not x.is_fully_addressable:
        raise ValueError(
            f"tb.asnumpy: this jax.Array is sharded over {len(devices)} devices, some of them in "
            "other processes; gather it first with "
            "jax.experimental.multihost_utils.process_allgather(x)"
        )
    if x.is_fully_replicated:
        shards = sorted(x.addressable_shards, key=lambda s: s.device.platform != "cpu")
        return _jax_single(shards[0].data, shards[0].device, dtype, copy, out, order)
    return _jax_assemble(x, dtype, copy, out, order)


def _from_jax_tracer(
    x: Any, dtype: Any, copy: bool | None, out: _Array | None, order: str
) -> _Array:
    raise TypeError(
        f"tb.asnumpy: a traced JAX value ({type(x).__name__}, inside jax.jit, grad, vmap...) has "
        "no concrete value to convert; return it from the transformed function and convert the "
        "result, or run host code on it with jax.pure_callback / jax.debug.callback"
    )


def _jax_single(
    x: Any, device: Any, dtype: Any, copy: bool | None, out: _Array | None, order: str
) -> _Array:
    if device.platform == "cpu":
        src = f"a jax.Array on {device}"
        fast = getattr(x, "_single_device_array_to_np_array_did_copy", None)
        if fast is not None:
            v, did_copy = fast()  # what np.asarray(x) returns, without its Python layers
        else:
            v, did_copy = np.asarray(x), False
        return _host(v, dtype, copy, out, order, src, private=did_copy)
    src = f"a jax.Array on {device}"
    jax = sys.modules["jax"]
    return _from_device(
        x, dtype, copy, out, order, src, host_copy=lambda: np.asarray(jax.device_get(x))
    )


def _jax_assemble(x: Any, dtype: Any, copy: bool | None, out: _Array | None, order: str) -> _Array:
    """A sharded array: every distinct shard written into its place of one host array (``out``
    or a new one), each through ``tb.asnumpy`` (zero-copy reads of CPU shards, DLPack for device
    shards, the cast fused into the write)."""
    devices = x.sharding.device_set
    platforms = sorted({d.platform for d in devices})
    src = f"a jax.Array sharded over {len(devices)} devices ({', '.join(platforms)})"
    if out is None:
        if copy is False:
            raise ValueError(
                f"tb.asnumpy(copy=False) of {src}: assembling the shards into one array needs a "
                "copy. Use copy=None to allow a copy when needed."
            )
        on_device = platforms != ["cpu"]
        target = np.dtype(x.dtype) if dtype is None else _np_dtype(dtype)
        if on_device:
            if copy is None:
                _native._asnumpy_transfer_guard(src)
            _native._asnumpy_host_guard(list(x.shape), target.itemsize, src)
        result = np.empty(x.shape, target, order="F" if order == "F" else "C")
    else:
        result = _check_out_for(out, tuple(x.shape), dtype, copy, order, src)
    for shard in x.addressable_shards:
        if shard.replica_id == 0:
            asnumpy(shard.data, out=result[shard.index])
    return result


def _check_out_for(
    out: _Array, shape: tuple[int, ...], dtype: Any, copy: bool | None, order: str, src: str
) -> _Array:
    if copy is False:
        raise ValueError(
            "tb.asnumpy(out=...) always copies into out; copy=False cannot be honoured"
        )
    if dtype is not None and _np_dtype(dtype) != out.dtype:
        raise ValueError(
            f"tb.asnumpy: dtype={_np_dtype(dtype)} differs from out's dtype {out.dtype}; "
            "pass one of them"
        )
    if out.shape != shape:
        raise ValueError(f"tb.asnumpy: out has shape {out.shape}, {src} has shape {shape}")
    if not out.flags.writeable:
        raise ValueError("tb.asnumpy: out is read-only")
    if not _layout_ok(out, order):
        raise ValueError(f"tb.asnumpy: order={order!r} but out is not {order}-contiguous")
    return out


# ---------------------------------------------------------------------------------------------
# TensorFlow


def _from_tensorflow(
    x: Any, dtype: Any, copy: bool | None, out: _Array | None, order: str
) -> _Array:
    tf = sys.modules["tensorflow"]
    if isinstance(x, tf.Variable):
        # The variable's current value: an eager tensor sharing the variable's buffer (TF
        # copies on a later write while it is shared, so the view stays this value).
        x = x.value()
    if not hasattr(x, "_numpy"):
        raise TypeError(
            "tb.asnumpy: a symbolic tf.Tensor (inside tf.function, or a TF1 graph) has no value "
            "yet; convert the eager result instead, or run NumPy code in the graph with "
            "tf.numpy_function"
        )
    device = x.device
    short = device.rsplit("device:", 1)[-1] or "CPU:0"
    src = f"a TensorFlow tensor on {short}"
    if "CPU" in short:
        _register_tensorflow(tf)
        try:
            v = x._numpy()  # zero-copy: TF's host buffer (64-byte aligned)
        except Exception as e:  # noqa: BLE001 - TF raises its own error types
            raise TypeError(
                f"tb.asnumpy: {src} of dtype {x.dtype.name} has no NumPy equivalent ({e})"
            ) from None
        if not isinstance(v, np.ndarray):
            # TF hands out 0-d tensors as a NumPy scalar (a copy of the value): ours alone.
            return _host(np.asarray(v), dtype, copy, out, order, src, private=True)
        return _host(v, dtype, copy, out, order, src, private=x.dtype == tf.string)

    def host_copy() -> _Array:
        with tf.device("CPU:0"):
            return tf.identity(x)._numpy()

    capsule = lambda: tf.experimental.dlpack.to_dlpack(x)  # noqa: E731
    return _from_device(x, dtype, copy, out, order, src, host_copy, capsule)


_TF_REGISTERED: list[bool] = []


def _register_tensorflow(tf: Any) -> None:
    """``EagerTensor._numpy()`` is zero-copy for host tensors but silently copies device tensors
    to the host, so it is a fast path only where TensorFlow has no device but the CPU."""
    if _TF_REGISTERED:
        return
    _TF_REGISTERED.append(True)
    devices = tf.config.list_logical_devices()
    if all(d.device_type == "CPU" for d in devices):
        eager = type(tf.constant(0))
        _native._asnumpy_register_fast(eager, "_numpy")


# ---------------------------------------------------------------------------------------------
# CuPy


def _from_cupy(x: Any, dtype: Any, copy: bool | None, out: _Array | None, order: str) -> _Array:
    src = f"a cupy.ndarray on cuda:{x.device.id}"
    return _from_device(x, dtype, copy, out, order, src, host_copy=lambda: x.get())


_native._asnumpy_set_fallback(_convert)
# `sys.modules["torch"] = None` is how a process says torch must not be imported: not loaded.
if sys.modules.get("torch") is not None:
    _register_torch()
