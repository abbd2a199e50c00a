"""Tensors as Dask arrays (``tb.to_dask``): chunked views converted on demand, for out-of-core
writes (``.to_zarr``) and for Dask's schedulers, ``dask.distributed`` included."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ._native import Tensor

if TYPE_CHECKING:
    import dask.array


def _chunk(t: Tensor, index: tuple[slice, ...]) -> np.ndarray[Any, Any]:
    # The explicit conversion of one view: zero-copy for host memory, one copy of just these
    # elements for device memory (tb.transfer_guard guards implicit conversions, not this).
    return t[index].numpy()


def to_dask(t: Tensor, chunks: Any = "auto") -> dask.array.Array:
    """``t`` as a ``dask.array.Array`` of NumPy chunks, each a view of ``t`` converted when a
    task needs it: a zero-copy read-only view of host memory, or one device-to-host copy of the
    chunk's elements for device memory; the whole tensor is never converted at once.

    ``chunks``: as ``dask.array.from_array`` takes it (``"auto"``: Dask's ``array.chunk-size``,
    128 MiB by default; a block shape like ``(1000, 1000)``; a size like ``"64 MiB"``; explicit
    sizes per axis). The result has ``t``'s shape and dtype (bfloat16 as ``ml_dtypes.bfloat16``)
    and a NumPy ``meta``.

    ``tb.to_dask(t, chunks).to_zarr(store)`` writes a tensor larger than host memory chunk by
    chunk (peak memory: a few chunks). With ``dask.distributed`` the graph carries ``t`` itself,
    pickled by value (see ``Tensor.__reduce__``) to the workers that read its chunks.

    TypeError when ``t`` is not a Tensor; ImportError naming the package when Dask is not
    installed; Dask's ValueError for chunks that do not fit the shape.
    """
    if not isinstance(t, Tensor):
        raise TypeError(f"tb.to_dask expects a tensorbridge.Tensor, got {type(t).__name__}")
    try:
        import dask.array as da
    except ImportError as e:
        raise ImportError(f"tb.to_dask needs Dask: pip install 'dask[array]' ({e})") from None
    meta = np.empty((0,) * t.ndim, dtype=t.dtype)
    # asarray=False: `_chunk` already returns NumPy; Dask names the graph by the tensor's
    # identity (`Tensor.__dask_tokenize__`), never by hashing its values.
    return da.from_array(t, chunks=chunks, asarray=False, getitem=_chunk, meta=meta)
