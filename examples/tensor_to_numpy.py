"""The seed walkthrough: a tensor into NumPy, one contract on every backend.

Run with `make demo` (or `.venv/bin/python examples/tensor_to_numpy.py` after `make develop`).
"""

import importlib.util

import numpy as np

import tensorbridge as tb

# A constant tensor, like tf.constant([[1, 2], [4, 8]]).
t = tb.tensor([[1, 2], [4, 8]])

# TF2's t.numpy(), PyTorch's t.detach().cpu().numpy(), JAX's np.asarray(t): here all of them work.
a = t.numpy()
print(a)
print(type(a))
print("zero-copy view of the tensor's memory:", np.shares_memory(a, np.asarray(t)))
print("read-only (tensors are immutable):", not a.flags.writeable)

# Ops stay tensors ...
t2 = t * 2
print(t2)

# ... and NumPy functions convert a tensor implicitly, returning an ndarray.
b = np.add(t2, 1)
print(b)
print(type(b))

# bfloat16 converts to float32 in one fused pass, or to ml_dtypes.bfloat16 where ml_dtypes is
# installed (pip install "tensorbridge[bf16]"; without it h.numpy() is a TypeError saying so).
h = tb.tensor([0.5, 1.5], dtype="bfloat16")
print(np.asarray(h, dtype=np.float32))
HAVE_ML_DTYPES = importlib.util.find_spec("ml_dtypes") is not None
if HAVE_ML_DTYPES:
    print(h.numpy().dtype)

# Device tensors: on a GPU backend (backend="torch" or "cuda", device="cuda:0"), t.numpy() makes
# exactly one explicit device-to-host copy of the tensor's own elements; numpy(copy=False) refuses
# to copy, and a missing device is a RuntimeError, never a hang. This build has:
print("compiled backends:", tb.compiled_backends())

# PyTorch's dance (t.detach().cpu().numpy(), which still refuses bf16) is not needed either.
if "torch" in tb.compiled_backends():
    import torch

    w = torch.linspace(0, 1, 3, requires_grad=True).to(torch.bfloat16)
    shared = tb.from_torch(w)  # zero-copy, detached: no "requires grad" error
    print(shared.backend, np.asarray(shared, dtype=np.float32))
    if HAVE_ML_DTYPES:
        print(shared.numpy().dtype)  # torch's own .numpy() refuses bf16
    try:
        tb.tensor([1.0], backend="torch", device="cuda:0")
    except RuntimeError as e:  # no GPU on this machine
        print("RuntimeError:", e)
