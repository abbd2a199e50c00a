"""Deferred execution: lazy tensors record ops, ``tb.Session`` evaluates them (TF1 style), the
conversion contract holds for them, and the fused results equal the eager backend's."""

from __future__ import annotations

import gc
import threading
import weakref
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tensorbridge as tb


def _chain(x: tb.Tensor) -> tb.Tensor:
    return (x * 2 + 1).sqrt()


def test_lazy_backend_is_compiled_and_named() -> None:
    assert "lazy:cpu" in tb.compiled_backends()
    assert tb.lazy() == "lazy:cpu"
    assert tb.lazy(backend="cpu") == "lazy:cpu"
    assert tb.lazy([1.0]).backend == "lazy:cpu"
    assert tb.zeros(3, backend="lazy:cpu").backend == "lazy:cpu"
    assert tb.tensor([1, 2], backend=tb.lazy()).backend == "lazy:cpu"


def test_ops_are_recorded_and_repr_shows_the_op_and_shape_without_computing() -> None:
    x = tb.lazy(np.arange(6, dtype=np.float32).reshape(2, 3))
    t = _chain(x)
    assert not t.is_evaluated
    assert t.shape == (2, 3) and t.dtype == np.float32
    assert repr(t) == (
        "tb.Tensor(<unevaluated sqrt(add(mul(input, 2), 1))>, shape=(2, 3), dtype=float32, "
        "backend=lazy:cpu, device=cpu)"
    )
    text = t.graph()
    assert "sqrt(%4) -> float32[2, 3]" in text and "full(2) -> float32[1]" in text
    assert t.graph(format="dot").startswith("digraph tensorbridge {")
    assert not t.is_evaluated, "repr and graph() compute nothing"
    with pytest.raises(ValueError, match="expected 'text' or 'dot'"):
        t.graph(format="svg")


def test_eval_with_a_session_returns_the_values_and_marks_the_tensor_evaluated() -> None:
    a = np.linspace(0, 10, 12, dtype=np.float32).reshape(3, 4)
    t = _chain(tb.lazy(a))
    v = t.eval(session=tb.Session())
    np.testing.assert_array_equal(v, np.sqrt(a * np.float32(2) + np.float32(1)))
    assert t.is_evaluated
    assert "unevaluated" not in repr(t)


def test_eval_without_a_session_or_default_is_an_error_as_in_tf1() -> None:
    t = tb.lazy([1.0, 2.0]) + 1
    with pytest.raises(ValueError, match="Cannot evaluate tensor using `eval\\(\\)`: no session"):
        t.eval()
    assert not t.is_evaluated


def test_with_session_makes_it_the_default_and_closes_it() -> None:
    t = tb.lazy([1.0, 4.0]).sqrt()
    with tb.Session() as s:
        np.testing.assert_array_equal(t.eval(), [1.0, 2.0])
        assert not s.closed
    assert s.closed
    with pytest.raises(RuntimeError, match="closed Session"):
        s.run(t)
    with pytest.raises(ValueError, match="no default session"):
        (t + 1).eval()


def test_default_sessions_are_per_thread() -> None:
    t = tb.lazy([1.0]) * 3
    seen: list[str] = []

    def other_thread() -> None:
        try:
            t.eval()
        except ValueError:
            seen.append("no default")

    with tb.Session():
        th = threading.Thread(target=other_thread)
        th.start()
        th.join()
    assert seen == ["no default"]


def test_run_computes_a_shared_subgraph_once_and_returns_arrays() -> None:
    x = tb.lazy(np.arange(1000, dtype=np.float64))
    shared = (x * 0.5).exp()
    a, b = shared + 1, shared - 1
    s = tb.Session()
    va, vb = s.run([a, b])
    stats = s.last_run_stats()
    # shared (one fused kernel), then a and b: three kernels, not four.
    assert (stats["kernels"], stats["fused_kernels"]) == (3, 3), stats
    ref = np.exp(np.arange(1000) * 0.5)
    np.testing.assert_allclose(va, ref + 1)
    np.testing.assert_allclose(vb, ref - 1)
    single = s.run(a)
    assert isinstance(single, np.ndarray)
    assert s.last_run_stats()["kernels"] == 0, "an evaluated tensor is not computed again"


def test_identical_expressions_are_computed_once() -> None:
    x = tb.lazy(np.ones(50, dtype=np.float32))
    s = tb.Session()
    s.run([x * 2 + 1, x * 2 + 1])
    stats = s.last_run_stats()
    assert stats["cse_merged"] == 4 and stats["kernels"] == 1, stats


def test_run_refuses_eager_tensors_and_non_tensors() -> None:
    s = tb.Session()
    with pytest.raises(TypeError, match="eager backend cpu"):
        s.run([tb.tensor([1.0])])
    with pytest.raises(TypeError, match="expects a Tensor or a list"):
        s.run("x")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="eval\\(\\) evaluates lazy tensors"):
        tb.tensor([1.0]).eval(session=s)
    with pytest.raises(ValueError, match="has no graph"):
        tb.tensor([1.0]).graph()


def test_session_backend_and_device_are_checked() -> None:
    assert tb.Session(backend="cpu").backend == "lazy:cpu"
    with pytest.raises(ValueError, match="unknown backend"):
        tb.Session(backend="tpu")
    with pytest.raises(RuntimeError, match="no device cuda:0"):
        tb.Session(device="cuda:0")


def test_numpy_evaluates_implicitly_into_a_zero_copy_read_only_view() -> None:
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = _chain(tb.lazy(a))
    n1 = t.numpy()
    assert t.is_evaluated
    n2 = np.asarray(t)
    assert np.shares_memory(n1, n2), "both view the evaluated storage"
    assert not n1.flags.writeable
    assert np.shares_memory(t.numpy(copy=False), n1)
    c = t.numpy(copy=True)
    assert c.flags.writeable and not np.shares_memory(c, n1)
    np.testing.assert_array_equal(n1, np.sqrt(a * 2 + 1))
    # A strided view of the evaluated value is zero-copy too.
    assert np.shares_memory(t.T.numpy(), n1)
    # The evaluated value outlives the tensor while a view holds it.
    ref = weakref.ref(t)
    del t
    gc.collect()
    assert ref() is not None
    np.testing.assert_array_equal(n1, np.sqrt(a * 2 + 1))


def test_eval_and_run_results_are_views_of_the_evaluated_value() -> None:
    t = tb.lazy([1.0, 2.0]) * 2
    s = tb.Session()
    v = t.eval(session=s)
    assert np.shares_memory(v, t.numpy()) and not v.flags.writeable


def test_tb_lazy_of_an_array_copies_it_like_tb_tensor() -> None:
    a = np.arange(4.0)
    t = tb.lazy(a) + 0
    a[0] = 100.0
    np.testing.assert_array_equal(t.numpy(), [0.0, 1.0, 2.0, 3.0])


def test_moving_between_cpu_and_lazy_cpu_shares_memory() -> None:
    a = np.arange(4.0)
    eager = tb.from_numpy(a)
    lazy = eager.to(backend="lazy:cpu")
    assert np.shares_memory(lazy.numpy(), a)
    back = (lazy + 1).to(backend="cpu")
    assert back.backend == "cpu"
    np.testing.assert_array_equal(back.numpy(), a + 1)


def test_errors_of_a_recorded_op_are_raised_when_it_is_recorded() -> None:
    x = tb.lazy(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="shape"):
        x + tb.lazy(np.zeros(4))
    with pytest.raises(ValueError, match="different backends"):
        x + tb.zeros((2, 3))


_DTYPES = ["float32", "float64", "int32", "uint8", "int64"]
_OPS = ["add", "sub", "mul", "div", "neg", "abs", "gt", "cast_f32", "T", "bcast"]


@given(
    dtype=st.sampled_from(_DTYPES),
    ops=st.lists(st.sampled_from(_OPS), min_size=1, max_size=6),
    shape=st.sampled_from([(3, 4), (1, 5), (0, 2), (7, 1)]),
    scalar=st.integers(min_value=1, max_value=5),
)
def test_fused_chains_equal_the_eager_backend(
    dtype: str, ops: list[str], shape: tuple[int, ...], scalar: int
) -> None:
    rng = np.random.default_rng(len(ops))
    a = (rng.integers(0, 50, size=shape)).astype(dtype)

    def run(t: tb.Tensor) -> Any:
        for op in ops:
            if op == "add":
                t = t + scalar
            elif op == "sub":
                t = scalar - t if t.dtype != np.bool_ else t
            elif op == "mul":
                t = t * t
            elif op == "div":
                t = t / scalar
            elif op == "neg":
                t = -t if t.dtype != np.bool_ else t
            elif op == "abs":
                t = abs(t)
            elif op == "gt":
                t = t > scalar
            elif op == "cast_f32":
                t = t.astype("float32")
            elif op == "T":
                t = t.T
            elif op == "bcast":
                t = t + t[..., :1]
        return t

    eager = run(tb.tensor(a))
    lazy = run(tb.lazy(a))
    assert lazy.dtype == eager.dtype and lazy.shape == eager.shape
    np.testing.assert_array_equal(lazy.numpy(), eager.numpy())
