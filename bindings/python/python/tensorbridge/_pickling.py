"""Unpickling tensors. ``Tensor.__reduce__`` (``src/tensor/pickling.rs``) names :func:`rebuild`,
so its module path and signature are part of the pickle format: keep both."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _native
from ._native import Tensor


def rebuild(values: np.ndarray[Any, Any], backend: str, device: str) -> Tensor:
    """The tensor a pickle describes: ``values`` on ``backend`` and ``device``, the placement it
    was pickled from (host values are shared, not copied again; device values are one copy to
    the device).

    RuntimeError when this process cannot put it there: the backend is not compiled into this
    build, or the device is missing (a CUDA tensor unpickled on a machine without a GPU). A
    tensor never lands silently somewhere else; move it first on the sending side
    (``t.to(backend="cpu", device="cpu")``) to send host values.
    """
    try:
        return _native._from_numpy(values, copy=False, backend=backend, device=device)
    except (RuntimeError, ValueError, TypeError) as e:
        raise RuntimeError(
            f"cannot unpickle a tensor of backend {backend!r} on device {device!r} in this "
            f"process: {e}. Pickles keep the placement they were made from; to send the values "
            f"to a process without it, pickle t.to(backend='cpu', device='cpu') instead"
        ) from e
