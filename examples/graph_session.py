"""The seed's TensorFlow 1 method, deferred execution: a tensor is a node of a graph and its value
comes from evaluating it in a session.

    # TF1
    t = tf.constant([[1, 2], [4, 8]])
    print(t.eval(session=tf.compat.v1.Session()))

Run with `make demo` (or `.venv/bin/python examples/graph_session.py` after `make develop`).
"""

import numpy as np

import tensorbridge as tb

# A constant on the lazy CPU backend (also: tb.tensor(..., backend="lazy:cpu")).
t = tb.lazy([[1, 2], [4, 8]])

# TF1's t.eval(session=tf.compat.v1.Session()):
print(t.eval(session=tb.Session()))

# Ops are recorded, not run: the repr shows the op and the shape, nothing is computed yet.
x = tb.lazy(np.linspace(0.0, 4.0, 6, dtype=np.float32).reshape(2, 3))
y = (x * 2 + 1).sqrt()
print(y)
print(y.graph())  # y.graph(format="dot") for Graphviz

# Evaluating without a session is an error, as in TF1 ...
try:
    y.eval()
except ValueError as e:
    print("ValueError:", str(e).split(".")[0])

# ... unless a default session is registered. The chain above runs as ONE fused pass over memory;
# run() evaluates several fetches together and computes what they share once.
with tb.Session() as sess:
    print(y.eval())
    a, b = sess.run([y + 1, y - 1])
    print(a)
    print(b)
    print("what the last run did:", sess.last_run_stats())

# Conversions need no session: t.numpy() / np.asarray(t) evaluate implicitly and return a
# read-only zero-copy view of the evaluated storage.
z = x.exp()
arr = np.asarray(z)
print(arr)
print("zero-copy view of the evaluated value:", np.shares_memory(arr, z.numpy()))
