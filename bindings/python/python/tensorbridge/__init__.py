"""tensorbridge: tensors from any runtime into NumPy, with one conversion contract.

>>> import numpy as np, tensorbridge as tb
>>> t = tb.tensor([[1, 2], [4, 8]])
>>> t.numpy()                      # zero-copy, read-only view of host memory
array([[1, 2],
       [4, 8]])
>>> np.add(t * 2, 1)               # NumPy functions convert implicitly
array([[ 3,  5],
       [ 9, 17]])

The conversion contract (the same on every backend; see the README's table):

* ``t.numpy()`` / ``np.asarray(t)``: a read-only zero-copy view where the data is host memory
  (any strided view: transposes and step slices too), else exactly one copy.
* ``t.numpy(copy=True)`` / ``np.array(t)``: a new writable array.
* ``copy=False`` when a copy is unavoidable: ``ValueError`` (NumPy 2 semantics).
* bfloat16 converts to ``ml_dtypes.bfloat16`` (``pip install ml_dtypes``), or use
  ``t.astype("float32")`` / ``np.asarray(t, dtype=np.float32)`` (one fused pass).

Deferred execution (TF1's graph and session): tensors of ``backend="lazy:cpu"`` (or made with
``tb.lazy(...)``) record ops instead of running them; ``t.eval(session=tb.Session())``,
``sess.run([a, b])``, ``t.numpy()`` and ``np.asarray(t)`` evaluate, fusing elementwise chains
into one pass over memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

from ._loader import load_native as _load_native

# The torch variant of the extension links libtorch from the installed `torch` package; the
# dynamic loader finds it once `torch` is imported (never through LD_LIBRARY_PATH).
_TORCH_VERSION = "2.11.0"


def _require_torch(why: str) -> None:
    try:
        import torch
    except ImportError as e:
        raise ImportError(
            "this build of tensorbridge includes the torch backend, which loads libtorch from "
            f"PyTorch: pip install torch=={_TORCH_VERSION} ({why or e})"
        ) from None
    found = str(torch.__version__)
    if found.split("+")[0] != _TORCH_VERSION:
        raise ImportError(
            f"this build of tensorbridge's torch backend needs torch=={_TORCH_VERSION} "
            f"(the libtorch it was built against), found torch {found}; "
            f"pip install torch=={_TORCH_VERSION}"
        )


def _load() -> ModuleType:
    try:
        return _load_native()
    except ImportError as e:
        if "libtorch" not in str(e) and "libc10" not in str(e):
            raise
        _require_torch(str(e))  # imports torch, whose libtorch the extension then finds
        return _load_native()


_native = _load()
if "torch" in _native._compiled_backends():
    _require_torch("")
Tensor = _native.Tensor
Session = _native.Session
release_cached_buffers = _native.release_cached_buffers
cached_buffer_bytes = _native.cached_buffer_bytes
from ._asnumpy import asnumpy  # noqa: E402 (needs _native loaded)

from ._dask import to_dask  # noqa: E402 (needs Tensor from the loaded extension)

__all__ = [
    "Tensor",
    "Session",
    "lazy",
    "tensor",
    "from_numpy",
    "from_torch",
    "from_dlpack",
    "asnumpy",
    "release_cached_buffers",
    "cached_buffer_bytes",
    "zeros",
    "ones",
    "full",
    "arange",
    "add",
    "subtract",
    "multiply",
    "divide",
    "matmul",
    "negative",
    "absolute",
    "exp",
    "log",
    "sqrt",
    "sum",
    "mean",
    "max",
    "min",
    "reshape",
    "transpose",
    "compiled_backends",
    "backend_info",
    "default_backend",
    "transfer_guard",
    "to_dask",
    "bool_",
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

__version__ = "0.1.0"

# dtype names, usable wherever a dtype is accepted (NumPy dtypes and type objects work too).
bool_ = "bool"
uint8 = "uint8"
uint16 = "uint16"
uint32 = "uint32"
uint64 = "uint64"
int8 = "int8"
int16 = "int16"
int32 = "int32"
int64 = "int64"
float16 = "float16"
bfloat16 = "bfloat16"
float32 = "float32"
float64 = "float64"


def compiled_backends() -> list[str]:
    """Names of the backends compiled into this build of the extension, in registration order
    (``"cpu"`` first; each eager backend's lazy variant ``"lazy:<name>"`` when built with it)."""
    return list(_native._compiled_backends())


def backend_info() -> dict[str, dict[str, Any]]:
    """What each compiled backend is, from the backend registry: ``{name: {"devices": [kinds],
    "lazy": bool, "lazy_over": eager backend name or None, "type": Rust storage type}}``."""
    return dict(_native._backend_info())


def default_backend(device: str = "cpu") -> str:
    """The backend a tensor gets when only ``device`` is given: ``"cpu"`` for host memory, and
    for ``"cuda"``/``"cuda:N"`` the first compiled backend with CUDA devices (torch when compiled
    in, else candle). RuntimeError when no compiled backend has such a device."""
    return str(_native._default_backend(device))


class transfer_guard:  # noqa: N801 (lower case like jax.transfer_guard, which it mirrors)
    """What an *implicit* device-to-host conversion may do: ``"allow"`` (default), ``"log"`` (a
    warning on the ``tensorbridge`` logger) or ``"disallow"`` (RuntimeError).

    Implicit means through ``__array__``: ``np.asarray(t)``, ``np.add(t, 1)``, ...; and advanced
    indexing (``t[mask]``, ``t[[1, 0]]``), which NumPy computes on the host. The explicit
    ``t.numpy()`` is never guarded. Host tensors NumPy reads in place are never guarded either.
    Calling it sets the level for the process; as a context manager it restores the previous
    level on exit::

        with tb.transfer_guard("disallow"):
            np.asarray(gpu_tensor)  # RuntimeError
    """

    def __init__(self, level: str) -> None:
        self._previous = _native._set_transfer_guard(level)
        self.level = level

    def __enter__(self) -> transfer_guard:
        return self

    def __exit__(self, *exc_info: object) -> None:
        _native._set_transfer_guard(self._previous)


def _is_torch_tensor(data: Any) -> bool:
    # Without importing torch: it is only loaded if the user already has a torch tensor.
    return type(data).__module__.startswith("torch") and hasattr(data, "detach")


def _torch_to_ndarray(x: Any) -> np.ndarray[Any, Any]:
    """A torch tensor's values as NumPy: detached (requires_grad is no obstacle), on the host,
    and bfloat16 as ``ml_dtypes.bfloat16`` (torch's own ``.numpy()`` refuses all three)."""
    import torch

    x = x.detach()
    if x.device.type != "cpu":
        x = x.cpu()
    if x.dtype == torch.bfloat16:
        import ml_dtypes

        return np.asarray(x.view(torch.int16).numpy().view(ml_dtypes.bfloat16))
    return np.asarray(x.resolve_conj().resolve_neg().numpy())


def _numpy_dtype(dtype: Any) -> np.dtype[Any] | None:
    """NumPy's dtype for a tensorbridge dtype-like (``None`` for bfloat16: Python data is read as
    NumPy infers it and cast by the core, which takes Python ints beyond int64 that ml_dtypes'
    ``np.asarray(data, dtype=bfloat16)`` refuses, and rounds as ml_dtypes does)."""
    name = _native._dtype_name(dtype)
    return None if name == "bfloat16" else np.dtype(name)


def _is_python_data(data: Any) -> bool:
    """Nested Python lists/tuples and Python scalars: what NumPy converts element by element
    (rather than casting an existing array)."""
    if isinstance(data, (np.ndarray, np.generic, Tensor)) or _is_torch_tensor(data):
        return False
    return not any(
        hasattr(data, p) for p in ("__array__", "__array_interface__", "__array_struct__")
    )


def _as_ndarray(data: Any, what: str, dtype: Any = None) -> np.ndarray[Any, Any]:
    """``data`` as an ndarray of a dtype tensorbridge has. With ``dtype``, Python data converts
    as ``np.asarray(data, dtype=dtype)`` (exact ints, NumPy's errors); arrays are cast later."""
    if _is_torch_tensor(data):
        return _torch_to_ndarray(data)
    if isinstance(data, (str, bytes, dict, set)) or data is None:
        raise TypeError(f"{what}: cannot make a tensor from {type(data).__name__}")
    target = _numpy_dtype(dtype) if dtype is not None and _is_python_data(data) else None
    try:
        arr = np.asarray(data) if target is None else np.asarray(data, dtype=target)
        retry_via_float64 = target is None and dtype is not None and arr.dtype.kind in "OUS"
        if retry_via_float64 and _is_python_data(data):
            # Into bfloat16 (no NumPy target, see _numpy_dtype): Python data NumPy does not
            # read as numbers by itself (ints beyond 64 bits, strings, None) converts as NumPy
            # converts it into float16/float32, through float64, NumPy's errors included (and
            # as tb.full takes such ints).
            target = np.dtype(np.float64)
            arr = np.asarray(data, dtype=target)
    except OverflowError:
        raise  # NumPy's: a Python int out of the dtype's range
    except ValueError as e:
        if target is not None and "ragged" not in str(e) and "inhomogeneous" not in str(e):
            raise  # NumPy's: e.g. "cannot convert float NaN to integer"
        raise ValueError(
            f"{what}: nested sequences must be rectangular (ragged input): {e}"
        ) from None
    except TypeError as e:
        raise TypeError(f"{what}: cannot convert {type(data).__name__} to a tensor: {e}") from None
    # Our dtypes only (TypeError naming the rest), in native byte order.
    return _native._native_array(arr, what)


tensor = _native.tensor  # docstring and the exact-ndarray path in construction.rs


def _tensor_of_data(
    data: Any,
    dtype: Any = None,
    backend: str | None = None,
    device: str | None = None,
) -> Tensor:
    """``tb.tensor`` (native) of anything but an exact ``numpy.ndarray`` with ``str`` placement."""
    if type(data) is np.ndarray:
        # The common case: the dtype checks of `_as_ndarray` for an array, done natively.
        return _native._tensor_of_ndarray(data, dtype, backend, device)
    if isinstance(data, Tensor):
        return _native._copy(data, dtype=dtype, backend=backend, device=device)
    if backend == "torch" and _is_torch_tensor(data):
        # One copy, made by torch on the tensor's own device, then shared.
        t = from_torch(data.detach().clone(memory_format=_contiguous_format()))
        if device is not None and device != t.device:
            t = t.to(device=device)
        return t if dtype is None else t.astype(dtype)
    arr = _as_ndarray(data, "tb.tensor", dtype)
    return _native._from_numpy(arr, copy=True, dtype=dtype, backend=backend, device=device)


def _contiguous_format() -> Any:
    import torch

    return torch.contiguous_format


# torch dtypes tensorbridge has, by name (torch.bool ... torch.float64; not complex, fp8, quantized).
_TORCH_DTYPE_NAMES = (
    "bool uint8 uint16 uint32 uint64 int8 int16 int32 int64 float16 bfloat16 float32 float64"
).split()


def from_torch(tensor: Any) -> Tensor:
    """A torch-backend tensor sharing a ``torch.Tensor``'s memory (zero-copy, CPU or CUDA, any
    strides), taken through DLPack.

    Like ``tb.from_numpy``: the tensor keeps the torch tensor's storage alive, and later in-place
    writes through PyTorch are visible. A tensor that requires grad is taken detached (its value,
    no error); conjugate/negative views are resolved first (one copy by torch). Needs the torch
    build of tensorbridge (``"torch" in tb.compiled_backends()``).
    """
    if "torch" not in compiled_backends():
        raise RuntimeError(
            "tb.from_torch needs the torch backend, which is not compiled into this build "
            f"(compiled: {', '.join(compiled_backends())}); build with feature `torch`"
        )
    if not _is_torch_tensor(tensor):
        raise TypeError(f"tb.from_torch expects a torch.Tensor, got {type(tensor).__name__}")
    import torch

    x = tensor.detach()
    if x.layout != torch.strided:
        raise TypeError("only dense (strided) torch tensors can be shared; call .to_dense() first")
    if str(x.dtype).removeprefix("torch.") not in _TORCH_DTYPE_NAMES:
        raise TypeError(
            f"tensorbridge has no dtype for {x.dtype}; convert it first (e.g. x.real, x.float())"
        )
    if x.is_conj() or x.is_neg():
        x = x.resolve_conj().resolve_neg()
    return _native._from_dlpack(x, backend="torch")


# A CPU tensor sharing an ndarray's memory: the checks and the import are one native call, as
# cheap as ``torch.from_numpy`` (its docstring is the native function's).
from_numpy = _native.from_numpy


def from_dlpack(
    x: Any,
    /,
    *,
    device: str | None = None,
    copy: bool | None = None,
    backend: str | None = None,
) -> Tensor:
    """A tensor over the memory of any DLPack producer (NumPy, PyTorch, JAX, CuPy, a tensor).

    Array API semantics: zero-copy where a backend can hold the memory in place (the tensor
    keeps the producer's buffer alive and calls its deleter once, when the last view is gone);
    ``copy=True`` always copies, ``copy=False`` never does (BufferError when a copy is needed,
    e.g. for memory misaligned for its dtype). ``x`` may also be a DLPack capsule.

    ``device``: where the result lives (default: where the producer's memory is; ``"cpu"`` asks
    a device producer for a host copy). ``backend`` (a tensorbridge extension): which backend
    holds it (default: ``tb.default_backend(device)``; host memory goes to ``cpu``, CUDA memory
    to the first backend with CUDA devices).
    """
    return _native._from_dlpack(x, device=device, backend=backend, copy=copy)


def _shape(shape: int | Sequence[int]) -> list[int]:
    if isinstance(shape, (int, np.integer)):
        shape = [int(shape)]
    dims = [int(d) for d in shape]
    if any(d < 0 for d in dims):
        raise ValueError(f"negative dimensions are not allowed: {tuple(dims)}")
    return dims


def full(
    shape: int | Sequence[int],
    fill_value: Any,
    dtype: Any = None,
    backend: str | None = None,
    device: str | None = None,
) -> Tensor:
    """A tensor of ``shape`` filled with ``fill_value`` (dtype inferred from it by default)."""
    if dtype is None:
        # As NumPy: the dtype of ``np.array(fill_value)`` (NumPy scalars keep theirs).
        dtype = _as_ndarray(fill_value, "tb.full").dtype
    if _is_nan_scalar(fill_value):
        # NumPy casts the scalar itself, so a NaN keeps NumPy's bits in the dtype; through a
        # Python float (the native fill) a signalling NaN would be quieted.
        one = tensor(np.asarray(fill_value), dtype=dtype, backend=backend, device=device)
        return one.broadcast_to(_shape(shape)).contiguous()
    return _native._full(_shape(shape), fill_value, dtype=dtype, backend=backend, device=device)


def _is_nan_scalar(value: Any) -> bool:
    """A NumPy (or ml_dtypes) float scalar that is NaN."""
    if not isinstance(value, np.generic) or value.dtype.kind not in "fV":
        return False
    try:
        with np.errstate(invalid="ignore"):  # a signalling NaN raises "invalid" in isnan
            return bool(np.isnan(value))
    except TypeError:  # a void scalar that is not a number
        return False


def zeros(
    shape: int | Sequence[int],
    dtype: Any = "float64",
    backend: str | None = None,
    device: str | None = None,
) -> Tensor:
    """A tensor of zeros (float64 by default, as NumPy)."""
    return full(shape, 0, dtype=dtype, backend=backend, device=device)


def ones(
    shape: int | Sequence[int],
    dtype: Any = "float64",
    backend: str | None = None,
    device: str | None = None,
) -> Tensor:
    """A tensor of ones (float64 by default, as NumPy)."""
    return full(shape, 1, dtype=dtype, backend=backend, device=device)


def arange(
    start: Any,
    stop: Any = None,
    step: Any = None,
    dtype: Any = None,
    backend: str | None = None,
    device: str | None = None,
) -> Tensor:
    """NumPy ``arange``: ``arange(stop)``, ``arange(start, stop)``, ``arange(start, stop, step)``."""
    if stop is None:
        start, stop = 0, start
    if step is None:
        step = 1
    return _native._arange(start, stop, step, dtype=dtype, backend=backend, device=device)


def _t(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else tensor(x)


# Python scalars are "weak" in NumPy 2 (NEP 50): they take the other operand's dtype.
_WEAK_SCALARS = (bool, int, float)


def _binary(a: Any, b: Any, op: str) -> Tensor:
    """``a <op> b`` for any operands, with the operators' rules: a Tensor's method takes the
    other operand as it is (Python scalars weak, anything NumPy converts strong, placed on the
    tensor's backend and device); with no Tensor, ``tb.tensor`` makes one of the operand that is
    not a Python scalar (the left one when both or neither are)."""
    out: Tensor
    if isinstance(a, Tensor):
        out = getattr(a, f"__{op}__")(b)
    elif isinstance(b, Tensor):
        out = getattr(b, f"__r{op}__")(a)
    elif isinstance(a, _WEAK_SCALARS) and not isinstance(b, _WEAK_SCALARS):
        out = getattr(tensor(b), f"__r{op}__")(a)
    else:
        out = getattr(tensor(a), f"__{op}__")(b)
    if out is NotImplemented:
        raise TypeError(
            f"unsupported operand types for {op}: {type(a).__name__} and {type(b).__name__}"
        )
    return out


def add(a: Any, b: Any) -> Tensor:
    """``a + b`` with broadcasting and NumPy promotion."""
    return _binary(a, b, "add")


def subtract(a: Any, b: Any) -> Tensor:
    """``a - b``."""
    return _binary(a, b, "sub")


def multiply(a: Any, b: Any) -> Tensor:
    """``a * b``."""
    return _binary(a, b, "mul")


def divide(a: Any, b: Any) -> Tensor:
    """True division ``a / b`` (integers give float64, as NumPy)."""
    return _binary(a, b, "truediv")


def matmul(a: Any, b: Any) -> Tensor:
    """NumPy ``matmul`` (1-D, 2-D and batched with broadcast batch axes)."""
    return _binary(a, b, "matmul")


def negative(a: Any) -> Tensor:
    """``-a``."""
    return -_t(a)


def absolute(a: Any) -> Tensor:
    """``|a|``."""
    return _t(a).abs()


def exp(a: Any) -> Tensor:
    """``e**a``."""
    return _t(a).exp()


def log(a: Any) -> Tensor:
    """Natural logarithm."""
    return _t(a).log()


def sqrt(a: Any) -> Tensor:
    """Square root."""
    return _t(a).sqrt()


def sum(  # noqa: A001
    a: Any, axis: int | tuple[int, ...] | None = None, keepdims: bool = False
) -> Tensor:
    """Sum over all elements, one axis, or a tuple of axes (NumPy's ``axis``)."""
    return _t(a).sum(axis=axis, keepdims=keepdims)


def mean(a: Any, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
    """Mean over all elements, one axis, or a tuple of axes (NumPy's ``axis``)."""
    return _t(a).mean(axis=axis, keepdims=keepdims)


def max(  # noqa: A001
    a: Any, axis: int | tuple[int, ...] | None = None, keepdims: bool = False
) -> Tensor:
    """Maximum over all elements, one axis, or a tuple of axes (NumPy's ``axis``)."""
    return _t(a).max(axis=axis, keepdims=keepdims)


def min(  # noqa: A001
    a: Any, axis: int | tuple[int, ...] | None = None, keepdims: bool = False
) -> Tensor:
    """Minimum over all elements, one axis, or a tuple of axes (NumPy's ``axis``)."""
    return _t(a).min(axis=axis, keepdims=keepdims)


def reshape(a: Any, shape: int | Sequence[int]) -> Tensor:
    """Reshape (a view when the strides allow)."""
    s = [int(shape)] if isinstance(shape, (int, np.integer)) else [int(d) for d in shape]
    return _t(a).reshape(s)


def transpose(a: Any, axes: Sequence[int] | None = None) -> Tensor:
    """NumPy ``transpose``: reverse the axes, or permute them by ``axes``."""
    t = _t(a)
    return t.transpose() if axes is None else t.transpose(*axes)


def lazy(
    data: Any = None, dtype: Any = None, backend: str = "cpu", device: str | None = None
) -> Any:
    """Deferred execution over ``backend`` (``"cpu"``, ``"torch"``, ``"candle"``: every compiled
    backend has a lazy variant ``"lazy:<name>"``): ops on the result are recorded into a
    graph and computed when a value is needed (``t.eval(session=...)``, ``Session.run``,
    ``t.numpy()``, ``np.asarray(t)``), elementwise chains fused into one pass over memory.

    ``tb.lazy(data)``: a lazy tensor holding ``data`` (a Tensor is shared, not copied; anything
    else as ``tb.tensor``). ``tb.lazy()`` with no data: the backend's name, ``"lazy:<backend>"``
    (``tb.zeros(3, backend=tb.lazy())`` is a ``lazy:cpu`` tensor).
    """
    name = backend if backend.startswith("lazy") else f"lazy:{backend}"
    if data is None:
        if name not in compiled_backends():
            raise ValueError(
                f"no lazy backend over {backend!r} in this build (compiled: "
                f"{', '.join(compiled_backends())})"
            )
        return name
    if isinstance(data, Tensor):
        shared = data.to(backend=name, device=device)
        return shared if dtype is None else shared.astype(dtype)
    return tensor(data, dtype=dtype, backend=name, device=device)
