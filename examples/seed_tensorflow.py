"""The seed walkthrough on the seed's own runtime: TensorFlow tensors into NumPy with tb.asnumpy,
checked against TensorFlow's own t.numpy(); then the same call on PyTorch and JAX tensors.

Run by `make demo` when TensorFlow is installed (it is pinned in requirements-dev.txt), or
`.venv/bin/python examples/seed_tensorflow.py` after `make develop`.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tensorbridge as tb  # noqa: E402

# TF2: t.numpy() always copies; TF1 needed t.eval(session=tf.compat.v1.Session()).
t = tf.constant([[1, 2], [4, 8]])
a = tb.asnumpy(t)
print(a)
print(type(a), a.dtype)
assert np.array_equal(a, t.numpy()) and a.dtype == t.numpy().dtype
print("same values and dtype as t.numpy():", True)
print("read-only zero-copy view of TensorFlow's buffer:", not a.flags.writeable)

t2 = tf.multiply(t, 2)
b = tb.asnumpy(t2)
assert np.array_equal(b, t2.numpy())
print(b)

# The contract's options work the same for every runtime.
print("writable copy:", tb.asnumpy(t2, copy=True).flags.writeable)
print("as float32 in one pass:", tb.asnumpy(t2, dtype=np.float32).dtype)
print("Fortran order:", tb.asnumpy(t2, order="F").flags.f_contiguous)
h = tf.constant([0.5, 1.5], dtype=tf.bfloat16)
print("bf16 ->", tb.asnumpy(h).dtype, "or", tb.asnumpy(h, dtype=np.float32))
v = tf.Variable([[1.0, 2.0], [4.0, 8.0]])
print("tf.Variable:", tb.asnumpy(v).tolist())

# The same call on PyTorch (a tensor that requires grad, in bf16: torch's .numpy() refuses
# both) and on JAX.
try:
    import torch
except ImportError:
    torch = None
if torch is not None:
    w = (torch.tensor([[1.0, 2.0], [4.0, 8.0]], requires_grad=True) * 2).to(
        torch.bfloat16
    )
    c = tb.asnumpy(w, dtype=np.float32)
    assert np.array_equal(c, w.detach().float().numpy())
    print("torch:", c.tolist(), c.dtype)

try:
    import jax.numpy as jnp
except ImportError:
    jnp = None
if jnp is not None:
    j = jnp.asarray([[1, 2], [4, 8]]) * 2
    d = tb.asnumpy(j)
    assert np.array_equal(d, np.asarray(j))
    print("jax:", d.tolist(), d.dtype, "read-only:", not d.flags.writeable)
