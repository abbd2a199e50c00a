"""Type stubs of the native extension (kept in sync with bindings/python/src/lib.rs)."""

from collections.abc import Iterator
from typing import Any, final, overload

import numpy as np

__all__ = [
    "Tensor",
    "Session",
    "_from_numpy",
    "_tensor_of_ndarray",
    "tensor",
    "_native_array",
    "from_numpy",
    "_from_dlpack",
    "_copy",
    "_dtype_name",
    "_full",
    "_arange",
    "_compiled_backends",
    "_backend_info",
    "_default_backend",
    "_backend_stats",
    "_absent_backends",
    "_set_transfer_guard",
    "_get_transfer_guard",
    "BF16_NEEDS_ML_DTYPES",
    "asnumpy",
    "release_cached_buffers",
    "cached_buffer_bytes",
    "_asnumpy_tensor",
    "_asnumpy_array",
    "_asnumpy_register_fast",
    "_asnumpy_set_fallback",
    "_asnumpy_transfer_guard",
    "_asnumpy_host_guard",
    "_readonly",
]

BF16_NEEDS_ML_DTYPES: str

@final
class Tensor:
    """An immutable n-dimensional tensor on one backend and device."""

    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def dtype(self) -> np.dtype[Any]: ...
    @property
    def ndim(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def itemsize(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def backend(self) -> str: ...
    @property
    def device(self) -> str: ...
    @property
    def is_contiguous(self) -> bool: ...
    @property
    def T(self) -> Tensor: ...
    def __len__(self) -> int: ...
    def __getitem__(self, key: Any, /) -> Tensor:
        """``t[key]`` as NumPy reads ``key``. Basic indexing (integers or ``__index__`` objects,
        0-d integer tensors included; slices; ``...``; ``None``) is a view. Advanced indexing
        (integer or bool arrays, lists, tensors such as ``t[t > 2]``, bool scalars, mixed with
        basic items as NumPy combines them) is a copy on the tensor's backend and device, made by
        NumPy on the host: device tensors are copied to the host first (``tb.transfer_guard``
        applies) and the result back. IndexError/TypeError as NumPy (``t[2.0:]``: TypeError)."""
    def __iter__(self) -> Iterator[Tensor]:
        """Iterates over the first axis: ``t[0]``, ``t[1]``, ... (tensors, as PyTorch; 0-d for a
        1-D tensor; ``t.tolist()`` gives Python scalars). TypeError for a 0-d tensor."""
    def __contains__(self, value: object, /) -> bool:
        """``value in t``: ``(t == value).any()``, as NumPy."""
    def __index__(self) -> int:
        """A 0-d integer tensor as an int (``operator.index``); TypeError otherwise."""
    def __format__(self, format_spec: str, /) -> str:
        """``format(t, spec)``: a 0-d tensor as its NumPy scalar (``f"{t:.2f}"``); a tensor with
        dimensions only with an empty spec (TypeError otherwise, as NumPy arrays)."""
    def numpy(
        self,
        *,
        copy: bool | None = None,
        out: np.ndarray[Any, Any] | None = None,
        casting: str | None = None,
    ) -> np.ndarray[Any, Any]:
        """The values as an ndarray: a read-only zero-copy view of host memory when possible,
        else one copy. ``copy=True``: always a new writable array. ``copy=False``: ValueError
        when a copy is needed. ``out=``: a writable ndarray of the same shape (an ``np.memmap``
        works) receives the values, converted to its dtype, chunk by chunk, and is returned;
        device tensors larger than host memory convert into a file this way. The conversion
        follows ``np.copyto``'s ``casting`` rule (default ``"same_kind"``; TypeError when the
        rule forbids it, e.g. float64 into int32 without ``casting="unsafe"``)."""
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray[Any, Any]:
        """NumPy's conversion protocol (NumPy 2 ``copy``), how ``np.asarray``/``np.array``/
        ``np.ascontiguousarray``/``np.copy`` and ufuncs read a tensor: ``copy=None`` gives the
        zero-copy read-only view when the memory is C-contiguous (or broadcast), else one
        C-contiguous copy by tensorbridge's kernels; ``copy=True`` a new writable array in NumPy's
        ``order="K"``; ``copy=False`` the view or ValueError. ``dtype`` is cast in the same pass."""
    def __dlpack__(
        self,
        *,
        stream: int | Any | None = None,
        max_version: tuple[int, int] | None = None,
        dl_device: tuple[int, int] | None = None,
        copy: bool | None = None,
    ) -> Any:
        """A DLPack capsule: ``dltensor_versioned`` flagged READ_ONLY when ``max_version >= (1, 0)``
        (IS_COPIED when ``copy=True`` or a device copy was made), else a legacy ``dltensor``
        capsule, which needs ``copy=True`` (BufferError otherwise). On the CPU ``stream`` must be
        None. ``dl_device=(1, 0)``: host memory."""
    def __dlpack_device__(self) -> tuple[int, int]:
        """``(device_type, device_id)`` as DLPack numbers them: ``(1, 0)`` for the CPU."""
    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        """The CUDA array interface (v3) of CUDA tensors; AttributeError on CPU tensors."""
    def item(self) -> Any: ...
    def __bytes__(self) -> bytes:
        """The raw bytes of the values in C order, as ``bytes(ndarray)`` (``t.numpy().tobytes()``)."""
    def tolist(self) -> Any: ...
    def __bool__(self) -> bool: ...
    def __int__(self) -> int: ...
    def __float__(self) -> float: ...
    def astype(self, dtype: Any) -> Tensor:
        """A copy converted to ``dtype`` (the same tensor if already ``dtype``), rounded once as
        NumPy does, except that float -> integer casts saturate and NaN becomes 0 (a deliberate
        choice where NumPy's result is platform-defined). ``dtype=None`` is float64, as NumPy's
        ``ndarray.astype``. A byte order in ``dtype`` names the same dtype: tensors hold
        native-order values (``">f8"`` gives float64; ``t.numpy().astype(">f8")`` is big-endian).
        TypeError for a dtype tensorbridge does not have."""
    def to(self, backend: str | None = None, device: str | None = None) -> Tensor: ...
    def contiguous(self) -> Tensor: ...
    def synchronize(self) -> None:
        """Blocks until the tensor's device has finished all queued work (no-op on ``cpu``)."""
    def reshape(self, *shape: Any) -> Tensor: ...
    def transpose(self, *axes: Any) -> Tensor: ...
    def permute(self, *dims: Any) -> Tensor: ...
    def swapaxes(self, axis1: int, axis2: int) -> Tensor: ...
    def squeeze(self, axis: int | None = None) -> Tensor: ...
    def unsqueeze(self, axis: int) -> Tensor: ...
    def broadcast_to(self, shape: Any) -> Tensor: ...
    def sum(
        self,
        axis: int | tuple[int, ...] | None = None,
        dtype: Any = None,
        out: None = None,
        keepdims: bool = False,
        *,
        keepdim: bool | None = None,
    ) -> Tensor: ...
    def mean(
        self,
        axis: int | tuple[int, ...] | None = None,
        dtype: Any = None,
        out: None = None,
        keepdims: bool = False,
        *,
        keepdim: bool | None = None,
    ) -> Tensor: ...
    def max(
        self,
        axis: int | tuple[int, ...] | None = None,
        out: None = None,
        keepdims: bool = False,
        *,
        keepdim: bool | None = None,
    ) -> Tensor: ...
    def min(
        self,
        axis: int | tuple[int, ...] | None = None,
        out: None = None,
        keepdims: bool = False,
        *,
        keepdim: bool | None = None,
    ) -> Tensor: ...
    def exp(self) -> Tensor: ...
    def log(self) -> Tensor: ...
    def sqrt(self) -> Tensor: ...
    def abs(self) -> Tensor: ...
    def __abs__(self) -> Tensor: ...
    def __neg__(self) -> Tensor: ...
    __array_priority__: float
    def __add__(self, other: Any, /) -> Tensor: ...
    def __radd__(self, other: Any, /) -> Tensor: ...
    def __sub__(self, other: Any, /) -> Tensor: ...
    def __rsub__(self, other: Any, /) -> Tensor: ...
    def __mul__(self, other: Any, /) -> Tensor: ...
    def __rmul__(self, other: Any, /) -> Tensor: ...
    def __truediv__(self, other: Any, /) -> Tensor: ...
    def __rtruediv__(self, other: Any, /) -> Tensor: ...
    def __matmul__(self, other: Any, /) -> Tensor: ...
    def __rmatmul__(self, other: Any, /) -> Tensor: ...
    def __eq__(self, other: object, /) -> Tensor: ...  # type: ignore[override]
    def __ne__(self, other: object, /) -> Tensor: ...  # type: ignore[override]
    def __lt__(self, other: Any, /) -> Tensor: ...
    def __le__(self, other: Any, /) -> Tensor: ...
    def __gt__(self, other: Any, /) -> Tensor: ...
    def __ge__(self, other: Any, /) -> Tensor: ...
    def eval(self, session: Session | None = None) -> np.ndarray[Any, Any]:
        """The value of a lazy tensor as a read-only ndarray (a zero-copy view of the evaluated
        value), evaluated in ``session`` or else the thread's default session (``with
        tb.Session() as s:``); ValueError without either (as TF1), TypeError for eager tensors."""
    @property
    def is_evaluated(self) -> bool:
        """True when the values exist (always for eager tensors); asking computes nothing."""
    def graph(self, format: str = "text") -> str:
        """The graph behind a lazy tensor, one line per node, or Graphviz DOT with
        ``format="dot"``. Computes nothing; ValueError for eager tensors."""
    def __reduce__(self) -> tuple[Any, tuple[np.ndarray[Any, Any], str, str]]:
        """Pickles by value: the values as an ndarray (host memory: the view itself; device
        memory: one copy to the host), the backend's and the device's names. Unpickling puts
        them back on that backend and device, or raises RuntimeError naming what the process
        lacks (a missing GPU, a backend not compiled in); never silently elsewhere."""
    def __copy__(self) -> Tensor:
        """A new tensor with its own memory and the same values, backend and device (as
        NumPy's ``copy.copy``: memory shared with NumPy or DLPack does not show through)."""
    def __deepcopy__(self, memo: Any, /) -> Tensor:
        """The same as ``copy.copy`` (a tensor holds no Python objects)."""
    def __dask_tokenize__(self) -> str:
        """Dask's name for this tensor: its identity (fixed for its lifetime, never reused in
        the process), so Dask never hashes or pickles the values to name a graph."""

@final
class Session:
    """Evaluates lazy tensors on one backend and device (TF1's ``tf.compat.v1.Session``).
    ``with tb.Session() as s:`` makes it the thread's default session and closes it at the end."""

    def __new__(cls, backend: str = "lazy:cpu", device: str | None = None) -> Session: ...
    @property
    def backend(self) -> str: ...
    @property
    def device(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    @overload
    def run(self, fetches: Tensor) -> np.ndarray[Any, Any]: ...
    @overload
    def run(self, fetches: list[Tensor] | tuple[Tensor, ...]) -> list[np.ndarray[Any, Any]]: ...
    def last_run_stats(self) -> dict[str, int]:
        """What the last run did: nodes, cse_merged, kernels, fused_kernels, fused_ops,
        peak_live_values."""
    def close(self) -> None: ...
    def __enter__(self) -> Session: ...
    def __exit__(self, *_exc: object) -> bool: ...

def from_numpy(array: np.ndarray[Any, Any]) -> Tensor: ...
def _native_array(array: np.ndarray[Any, Any], what: str) -> np.ndarray[Any, Any]: ...
def tensor(
    data: Any,
    dtype: Any = None,
    backend: str | None = None,
    device: str | None = None,
) -> Tensor: ...
def _tensor_of_ndarray(
    array: np.ndarray[Any, Any],
    dtype: Any = None,
    backend: str | None = None,
    device: str | None = None,
) -> Tensor: ...
def _from_numpy(
    array: np.ndarray[Any, Any],
    *,
    copy: bool,
    dtype: Any = None,
    backend: str | None = None,
    device: str | None = None,
) -> Tensor: ...
def _from_dlpack(
    x: Any, *, device: str | None = None, backend: str | None = None, copy: bool | None = None
) -> Tensor: ...
def _copy(
    t: Tensor,
    *,
    dtype: Any = None,
    backend: str | None = None,
    device: str | None = None,
) -> Tensor: ...
def _full(
    shape: list[int],
    value: Any,
    *,
    dtype: Any = None,
    backend: str | None = None,
    device: str | None = None,
) -> Tensor: ...
def _arange(
    start: Any,
    stop: Any,
    step: Any,
    *,
    dtype: Any = None,
    backend: str | None = None,
    device: str | None = None,
) -> Tensor: ...
def _dtype_name(dtype: Any) -> str: ...
def _compiled_backends() -> list[str]: ...
def _backend_info() -> dict[str, dict[str, Any]]: ...
def _default_backend(device: str) -> str: ...
def _backend_stats(backend: str) -> dict[str, int]: ...
def _absent_backends() -> dict[str, str]: ...
def _set_transfer_guard(level: str) -> str: ...
def _get_transfer_guard() -> str: ...
def asnumpy(
    x: Any,
    /,
    *,
    dtype: Any = None,
    copy: bool | None = None,
    out: Any = None,
    order: str = "K",
) -> np.ndarray[Any, Any]: ...
def release_cached_buffers() -> int:
    """Frees the host buffers kept for reuse (at most 512 MiB); returns the bytes freed."""

def cached_buffer_bytes() -> int:
    """Bytes of freed host memory kept for reuse now."""

def _asnumpy_tensor(
    t: Tensor,
    *,
    dtype: Any = None,
    copy: bool | None = None,
    out: Any = None,
    order: str = "K",
    source: str | None = None,
) -> np.ndarray[Any, Any]: ...
def _asnumpy_array(
    v: np.ndarray[Any, Any], *, dtype: Any = None, out: Any = None, order: str = "K"
) -> np.ndarray[Any, Any]: ...
def _asnumpy_register_fast(
    tp: type,
    how: str,
    *,
    when: list[tuple[str, bool]] | None = None,
    bits: dict[Any, tuple[Any, np.dtype[Any]]] | None = None,
) -> None: ...
def _asnumpy_set_fallback(f: Any) -> None: ...
def _asnumpy_transfer_guard(what: str) -> None: ...
def _asnumpy_host_guard(shape: list[int], itemsize: int, what: str) -> None: ...
def _readonly(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]: ...
