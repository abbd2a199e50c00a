"""tensorbridge: tensors from any runtime into NumPy, with one conversion contract.

>>> import numpy as np, tensorbridge as tb
>>> t = tb.tensor([[1, 2], [4, 8]])
>>> t.numpy()                      # zero-copy, read-only view of host memory
array([[1, 2],
       [4, 8]])
>>> np.add(t * 2, 1)               # NumPy functions convert implicitly
array([[ 3,  5],
       [ 9, 17]])

The conversion contract (the same on every backend):

* ``t.numpy()`` / ``np.asarray(t)``: a read-only zero-copy view where the data is host memory
  (any strided view: transposes and step slices too), else exactly one copy.
* ``t.numpy(copy=True)`` / ``np.array(t)``: a new writable array.
* ``copy=False`` when a copy is unavoidable: ``ValueError`` (NumPy 2 semantics).
* bfloat16 converts to ``ml_dtypes.bfloat16`` (``pip install ml_dtypes``), or use
  ``t.astype("float32")`` / ``np.asarray(t, dtype=np.float32)`` (one fused pass).

Errors are ``TypeError`` (dtypes, unsupported data), ``ValueError`` (shapes, values, copies),
``IndexError`` (indices, axes), ``MemoryError`` (too large) and ``RuntimeError`` (backends and
devices that are not available).
"""

from collections.abc import Sequence
from typing import Any, Final, TypeAlias, overload

import dask.array
import numpy as np
import numpy.typing as npt

from ._native import Session as Session
from ._native import Tensor as Tensor
from ._native import cached_buffer_bytes as cached_buffer_bytes
from ._native import release_cached_buffers as release_cached_buffers

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

__version__: str

# A dtype: a name ("float32", "bf16", tb.float32), a NumPy dtype or scalar type (np.float32,
# np.dtype("int8")), a Python type (int, float, bool) or ml_dtypes.bfloat16.
_DTypeLike: TypeAlias = str | np.dtype[Any] | type[Any]
# An operand: a Tensor, a NumPy array, nested sequences or a Python scalar.
_TensorLike: TypeAlias = Tensor | npt.ArrayLike
# A real scalar: Python bool, int or float, or a NumPy scalar.
_Scalar: TypeAlias = bool | int | float | np.generic
_ShapeLike: TypeAlias = int | Sequence[int]

# dtype names, usable wherever a dtype is accepted.
bool_: Final = "bool"
uint8: Final = "uint8"
uint16: Final = "uint16"
uint32: Final = "uint32"
uint64: Final = "uint64"
int8: Final = "int8"
int16: Final = "int16"
int32: Final = "int32"
int64: Final = "int64"
float16: Final = "float16"
bfloat16: Final = "bfloat16"
float32: Final = "float32"
float64: Final = "float64"

def compiled_backends() -> list[str]:
    """Names of the backends compiled into this build, in registration order (``["cpu",
    "lazy:cpu"]``, ``["cpu", "lazy:cpu", "torch", "lazy:torch", ...]``)."""

def backend_info() -> dict[str, dict[str, Any]]:
    """What each compiled backend is: ``{name: {"devices": [...], "lazy": bool, "lazy_over":
    name or None, "type": str}}``."""

def default_backend(device: str = "cpu") -> str:
    """The backend a tensor gets when only ``device`` is given (``"cuda"``: torch when compiled
    in, else candle)."""

class transfer_guard:  # noqa: N801
    """What an *implicit* device-to-host conversion (``__array__``: ``np.asarray(t)``,
    ``np.add(t, 1)``; advanced indexing ``t[mask]``, which NumPy computes on the host) may do:
    ``"allow"`` (default), ``"log"`` (a warning on the ``tensorbridge`` logger) or
    ``"disallow"`` (RuntimeError). ``t.numpy()`` is explicit and never guarded.
    Calling sets the level for the process; as a context manager it restores the previous one."""

    level: str
    def __init__(self, level: str) -> None: ...
    def __enter__(self) -> transfer_guard: ...
    def __exit__(self, *exc_info: object) -> None: ...

# ---- beyond one machine --------------------------------------------------------------------------

def to_dask(t: Tensor, chunks: Any = "auto") -> dask.array.Array:
    """``t`` as a Dask array of NumPy chunks, each a view of ``t`` converted when a task needs
    it (zero-copy for host memory, one device-to-host copy per chunk for device memory; never
    the whole tensor at once). ``chunks`` as ``dask.array.from_array`` takes it; ``t``'s shape,
    dtype (bfloat16 as ``ml_dtypes.bfloat16``) and a NumPy ``meta``. ``.to_zarr(store)`` on the
    result writes a tensor larger than host memory chunk by chunk. TypeError for a non-tensor,
    ImportError without Dask."""

# ---- creation ------------------------------------------------------------------------------------

def tensor(
    data: Any,
    dtype: _DTypeLike | None = None,
    backend: str | None = None,
    device: str | None = None,
) -> Tensor:
    """A new tensor holding a copy of ``data``.

    ``data``: nested lists, Python scalars, NumPy arrays, any object with ``__array__``, a
    ``torch.Tensor`` (detached, any device, bfloat16 included: what ``Tensor.numpy()`` refuses),
    or a Tensor.

    ``backend`` names the library that holds the tensor, one of ``tb.compiled_backends()``
    (``"cpu"``, ``"torch"``, ``"candle"``, ``"lazy:cpu"``, ...); ``device`` says where its
    memory is: ``"cpu"``, ``"cuda"`` (= ``"cuda:0"``), ``"cuda:N"``. Neither given: the ``cpu``
    backend. A device alone: ``tb.default_backend(device)``. A backend alone: its CPU device.

    dtype inference follows NumPy (Python int -> int64, float -> float64, bool -> bool).
    ``dtype``: Python data (lists, scalars) converts as ``np.array(data, dtype=dtype)`` does, so
    Python ints are exact (``tb.tensor([2**64 - 1], dtype="uint64")``) and ints out of the dtype's
    range are NumPy's ``OverflowError``; arrays and tensors are cast as ``astype``, except that
    float -> integer casts saturate (NaN -> 0), a deliberate choice where NumPy's result is
    platform-defined. A Tensor is always copied (as ``np.array`` and ``torch.tensor`` do), also
    one that shares NumPy or torch memory through ``tb.from_numpy``/``tb.from_torch``.

    Raises ``ValueError`` for ragged nested lists, ``TypeError`` for unknown dtypes and data that
    is not bool, integer or float, ``RuntimeError`` for a backend that is not compiled in or a
    device it does not have.
    """

def from_numpy(array: np.ndarray[Any, Any]) -> Tensor:
    """A CPU tensor sharing ``array``'s memory (zero-copy; the tensor keeps the array alive).

    Like ``torch.from_numpy``: later writes to ``array`` are visible through the tensor. Arrays
    whose memory cannot be viewed (misaligned, byte-swapped, or bool arrays with bytes other than
    0 and 1, which NumPy reads as True) are copied once (bools normalised to 0/1).
    """

def from_torch(tensor: Any) -> Tensor:
    """A torch-backend tensor sharing a ``torch.Tensor``'s memory (zero-copy, CPU or CUDA).

    Like ``tb.from_numpy``: the tensor keeps the torch tensor alive, and later in-place writes
    through PyTorch are visible. A tensor that requires grad is taken detached (its value, no
    error); any strides are shared as they are (conjugate/negative views are resolved by torch
    first, one copy). ``RuntimeError``
    when the torch backend is not compiled in, ``TypeError`` for anything but a dense
    ``torch.Tensor``.
    """

def from_dlpack(
    x: Any,
    /,
    *,
    device: str | None = None,
    copy: bool | None = None,
    backend: str | None = None,
) -> Tensor:
    """A tensor over the memory of any DLPack producer (NumPy, PyTorch, JAX, CuPy, a tensor).

    Zero-copy for host memory (the tensor keeps the producer's buffer alive and calls its deleter
    once, when the last view is gone); ``copy=True`` always copies, ``copy=False`` never does
    (``BufferError`` when a copy is needed). ``x`` may also be a DLPack capsule. Device memory
    needs a backend with that device (torch, or candle's CUDA device); ``device="cpu"`` asks
    the producer for a host copy.
    """

def asnumpy(
    x: Any,
    /,
    *,
    dtype: Any = None,
    copy: bool | None = None,
    out: np.ndarray[Any, Any] | None = None,
    order: str = "K",
) -> np.ndarray[Any, Any]:
    """Any runtime's tensor as a ``numpy.ndarray``, under the contract of ``Tensor.numpy()``.

    ``x``: a tensorbridge Tensor (any backend), a ``torch.Tensor`` (any device; requires_grad,
    conjugate/negative bits, bfloat16, any strides), a JAX array (any device; sharded arrays are
    assembled from their shards), a TensorFlow ``EagerTensor`` or ``tf.Variable``, a CuPy array,
    anything with ``__dlpack__`` or ``__array__``, nested sequences and scalars.

    * ``copy=None``: a read-only zero-copy view where the memory is host memory NumPy can
      address (tensorbridge host tensors, torch CPU tensors, JAX CPU arrays, TensorFlow CPU
      tensors, NumPy arrays); otherwise exactly one copy, writable.
    * ``copy=True``: always a new writable array. ``copy=False``: ``ValueError`` when a copy is
      unavoidable (device memory, a dtype conversion, an ``order`` the view does not have).
    * ``dtype``: the result's dtype, the conversion fused into the one copy (bfloat16 -> float32
      in one pass, whatever the source).
    * ``out``: a writable ndarray of the same shape (an ``np.memmap`` works) receives the
      values, converted to its dtype, and is returned; device memory is streamed into it in
      chunks, so a tensor larger than host RAM converts into a file.
    * ``order``: ``"K"`` and ``"A"`` keep a view's strides (a copy is Fortran-ordered when the
      source is); ``"C"`` / ``"F"``: C- / Fortran-contiguous (a copy when the view is not).
    * Device memory is read through DLPack by the tensorbridge backend for that device; a new
      result is checked against the free host memory first (``MemoryError`` naming ``out=``).
      ``copy=None`` on device memory is an implicit transfer, governed by ``tb.transfer_guard``;
      ``copy=True`` and ``out=`` are explicit.

    Errors name the runtime and the fix: ``TypeError`` for dtypes NumPy lacks (torch complex32,
    quantized tensors), sparse layouts and symbolic TensorFlow tensors; ``ValueError`` for
    ``copy=False``, a mismatched ``out``, deleted JAX arrays; ``MemoryError`` when the host
    cannot hold the result.
    """

def zeros(
    shape: _ShapeLike,
    dtype: _DTypeLike = "float64",
    backend: str | None = None,
    device: str | None = None,
) -> Tensor:
    """A tensor of zeros (float64 by default, as NumPy). ``MemoryError`` when too large."""

def ones(
    shape: _ShapeLike,
    dtype: _DTypeLike = "float64",
    backend: str | None = None,
    device: str | None = None,
) -> Tensor:
    """A tensor of ones (float64 by default, as NumPy). ``MemoryError`` when too large."""

def full(
    shape: _ShapeLike,
    fill_value: _Scalar,
    dtype: _DTypeLike | None = None,
    backend: str | None = None,
    device: str | None = None,
) -> Tensor:
    """A tensor of ``shape`` filled with ``fill_value``; the dtype defaults to NumPy's for
    ``np.array(fill_value)`` (a NumPy scalar keeps its dtype)."""

def arange(
    start: _Scalar,
    stop: _Scalar | None = None,
    step: _Scalar | None = None,
    dtype: _DTypeLike | None = None,
    backend: str | None = None,
    device: str | None = None,
) -> Tensor:
    """NumPy ``arange``: ``arange(stop)``, ``arange(start, stop)``, ``arange(start, stop, step)``."""

# ---- elementwise (broadcasting, NumPy promotion, Python scalars weak as in NEP 50) ----------------

def add(a: _TensorLike, b: _TensorLike) -> Tensor:
    """``a + b`` with broadcasting and NumPy promotion."""

def subtract(a: _TensorLike, b: _TensorLike) -> Tensor:
    """``a - b`` (bool operands: ``TypeError``, as NumPy)."""

def multiply(a: _TensorLike, b: _TensorLike) -> Tensor:
    """``a * b``."""

def divide(a: _TensorLike, b: _TensorLike) -> Tensor:
    """True division ``a / b`` (integers give float64, as NumPy)."""

def matmul(a: _TensorLike, b: _TensorLike) -> Tensor:
    """NumPy ``matmul`` (1-D, 2-D and batched with broadcast batch axes)."""

def negative(a: _TensorLike) -> Tensor:
    """``-a`` (integers wrap; bool: ``TypeError``, as NumPy)."""

def absolute(a: _TensorLike) -> Tensor:
    """``|a|``."""

def exp(a: _TensorLike) -> Tensor:
    """``e**a``, in NumPy's float result type (int16 -> float32, int64 -> float64)."""

def log(a: _TensorLike) -> Tensor:
    """Natural logarithm, in NumPy's float result type."""

def sqrt(a: _TensorLike) -> Tensor:
    """Square root, in NumPy's float result type."""

# ---- reductions ------------------------------------------------------------------------------------

def sum(
    a: _TensorLike, axis: int | tuple[int, ...] | None = None, keepdims: bool = False
) -> Tensor:
    """Sum over all elements, one axis or a tuple of axes (bool and signed ints give int64,
    unsigned uint64)."""

def mean(
    a: _TensorLike, axis: int | tuple[int, ...] | None = None, keepdims: bool = False
) -> Tensor:
    """Mean over all elements, one axis or a tuple of axes (integers give float64)."""

def max(
    a: _TensorLike, axis: int | tuple[int, ...] | None = None, keepdims: bool = False
) -> Tensor:
    """Maximum over all elements, one axis or a tuple of axes (NaN propagates; empty:
    ``ValueError``)."""

def min(
    a: _TensorLike, axis: int | tuple[int, ...] | None = None, keepdims: bool = False
) -> Tensor:
    """Minimum over all elements, one axis or a tuple of axes (NaN propagates; empty:
    ``ValueError``)."""

# ---- views -----------------------------------------------------------------------------------------

def reshape(a: _TensorLike, shape: _ShapeLike) -> Tensor:
    """Reshape (one ``-1`` allowed); a view when the strides allow, else one copy."""

def transpose(a: _TensorLike, axes: Sequence[int] | None = None) -> Tensor:
    """NumPy ``transpose``: reverse the axes, or permute them by ``axes`` (a view)."""

@overload
def lazy(
    data: None = None, dtype: None = None, backend: str = "cpu", device: str | None = None
) -> str:
    """The lazy backend's name over ``backend`` (``"lazy:cpu"``, ``"lazy:torch"``, ...), for any
    ``backend=``."""

@overload
def lazy(
    data: _TensorLike,
    dtype: _DTypeLike | None = None,
    backend: str = "cpu",
    device: str | None = None,
) -> Tensor:
    """A lazy tensor holding ``data`` (a Tensor is shared, not copied): ops on it are recorded
    and computed when a value is needed (``t.eval(session=...)``, ``Session.run``,
    ``t.numpy()``), elementwise chains fused into one pass over memory."""
