"""Tensors as Dask arrays (``tb.to_dask``)."""

from typing import Any

import dask.array

from ._native import Tensor

def to_dask(t: Tensor, chunks: Any = "auto") -> dask.array.Array: ...
