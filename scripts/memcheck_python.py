"""The Python part of `make memcheck`: the paths where Python objects and Rust memory hand each
other pointers, run under valgrind (scripts/memcheck.sh python). Each check asserts its values, so
a wrong result fails here too; valgrind reports any invalid access or leaked block.

Public API only; small sizes (valgrind runs this ~50x slower)."""

from __future__ import annotations

import gc

import numpy as np
import tensorbridge as tb


def dlpack_both_ways() -> None:
    # tensorbridge -> NumPy: the capsule's deleter runs once, after the array is gone.
    t = tb.arange(12, dtype="float32").reshape(3, 4).T
    a = np.from_dlpack(t)
    del t
    gc.collect()
    assert a.tolist() == np.arange(12, dtype=np.float32).reshape(3, 4).T.tolist()
    del a
    # NumPy -> tensorbridge: zero-copy, the producer kept alive by the tensor.
    src = np.arange(20, dtype=np.int64).reshape(4, 5)[::-1, ::2]
    t = tb.from_dlpack(src)
    del src
    gc.collect()
    assert t.numpy().tolist() == np.arange(20).reshape(4, 5)[::-1, ::2].tolist()
    # A copy, and a capsule passed directly.
    c = tb.from_dlpack(np.ones((2, 3), dtype=np.float16), copy=True)
    assert float(c.sum()) == 6.0
    cap = np.arange(4.0).__dlpack__()
    assert tb.from_dlpack(cap).tolist() == [0.0, 1.0, 2.0, 3.0]
    # Round trip through both.
    back = np.from_dlpack(tb.from_dlpack(np.arange(6, dtype=np.uint8)))
    assert back.tolist() == list(range(6))


def buffer_protocol() -> None:
    t = tb.tensor([[1, 2, 3], [4, 5, 6]], dtype="int32")
    m = memoryview(t)
    del t
    gc.collect()
    assert m.tolist() == [[1, 2, 3], [4, 5, 6]] and m.readonly
    m.release()
    s = tb.arange(10, dtype="float64")[::3]
    assert np.asarray(memoryview(s.contiguous())).tolist() == [0.0, 3.0, 6.0, 9.0]


def from_numpy_lifetimes() -> None:
    a = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    t = tb.from_numpy(a)
    v = t.transpose(2, 0, 1)[1:, :, ::-1]
    del a, t
    gc.collect()
    expected = (
        np.arange(24, dtype=np.float64).reshape(2, 3, 4).transpose(2, 0, 1)[1:, :, ::-1]
    )
    assert v.numpy().tolist() == expected.tolist()
    # The view a tensor hands NumPy outlives the tensor.
    w = tb.from_numpy(np.arange(5, dtype=np.int16)).numpy()
    gc.collect()
    assert w.tolist() == [0, 1, 2, 3, 4]
    # Misaligned memory is copied, not read in place.
    raw = np.zeros(33, dtype=np.uint8)
    odd = raw[1:].view(np.float64)
    assert tb.from_numpy(odd).tolist() == [0.0] * 4
    # Casts, ops and strided copies of imported memory.
    b = tb.from_numpy(np.linspace(0, 1, 35).reshape(5, 7))
    r = (b.T.astype("float32") * 2 + 1).numpy(copy=True)
    assert np.allclose(r, (np.linspace(0, 1, 35).reshape(5, 7).T * 2 + 1))
    out = np.zeros((7, 5), dtype=np.float64, order="F")
    b.T.numpy(out=out)
    assert np.array_equal(out, np.linspace(0, 1, 35).reshape(5, 7).T)


def lazy_evaluation() -> None:
    x = tb.lazy(np.arange(16, dtype=np.float32).reshape(4, 4))
    y = ((x * 2 + 1).T + x).sqrt()
    with tb.Session() as s:
        got = s.run(y)
    a = np.arange(16, dtype=np.float32).reshape(4, 4)
    assert np.allclose(got, np.sqrt((a * 2 + 1).T + a))
    z = (x + 1).sum(axis=0)
    assert z.numpy().tolist() == (np.arange(16).reshape(4, 4) + 1).sum(axis=0).tolist()
    a = np.asarray(x * 3)
    assert a.tolist() == (np.arange(16, dtype=np.float32).reshape(4, 4) * 3).tolist()


for check in (dlpack_both_ways, buffer_protocol, from_numpy_lifetimes, lazy_evaluation):
    for _ in range(3):
        check()
    gc.collect()
print("memcheck python: all checks passed")
