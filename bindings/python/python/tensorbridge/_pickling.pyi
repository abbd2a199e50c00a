"""Unpickling tensors (the reconstructor ``Tensor.__reduce__`` names)."""

from typing import Any

import numpy as np

from ._native import Tensor

def rebuild(values: np.ndarray[Any, Any], backend: str, device: str) -> Tensor: ...
