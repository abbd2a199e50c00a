"""The zero-copy claims of the README's conversion contract, counted.

``counted:cpu`` and ``counted:candle`` are ``Counted<B>`` (crates/tensorbridge-counted), a test
decorator backend that runs every op on ``B`` and counts each transfer of element data into host
memory. It is registered with one line in the facade, like any backend; these tests read its
counters through the registry (``tb._native._backend_stats``).
"""

from __future__ import annotations

import numpy as np
import pytest

import tensorbridge as tb
from tensorbridge import _native

pytestmark = pytest.mark.skipif(
    "counted:cpu" not in tb.compiled_backends(),
    reason="this build has no counted backend (cargo feature `counted`; make develop has it)",
)


def copies(backend: str) -> int:
    return int(_native._backend_stats(backend)["host_copies"])


def counted(backend: str, a: np.ndarray) -> tb.Tensor:
    return tb.tensor(a, backend=backend)


A = np.arange(24, dtype=np.float32).reshape(4, 6)


@pytest.mark.parametrize(
    "convert",
    [
        lambda t: t.numpy(),
        lambda t: np.asarray(t),
        lambda t: t.T.numpy(),
        lambda t: t[1:, ::-2].numpy(),
        lambda t: np.asarray(t.broadcast_to((3, 4, 6))),
        lambda t: np.asarray(memoryview(t.numpy())),
        lambda t: np.from_dlpack(t),
        lambda t: t.numpy(copy=False),
        lambda t: np.add(t, 1),
    ],
    ids=[
        "numpy",
        "asarray",
        "T",
        "slice",
        "broadcast",
        "memoryview",
        "from_dlpack",
        "copy=False",
        "ufunc",
    ],
)
def test_host_memory_converts_with_zero_copies(convert) -> None:
    t = counted("counted:cpu", A)
    before = copies("counted:cpu")
    out = np.asarray(convert(t))
    assert copies("counted:cpu") == before
    assert out.shape in {A.shape, A.T.shape, (3, 3), (3, 4, 6)}


@pytest.mark.parametrize(
    "convert",
    [
        lambda t: np.array(t),
        lambda t: np.array(t.T),
        lambda t: np.copy(t),
        lambda t: np.asarray(t.T),
        lambda t: np.ascontiguousarray(t.T),
        lambda t: np.ascontiguousarray(t[:, ::2]),
        lambda t: np.asarray(t, dtype=np.float64),
        lambda t: np.array(t.T, dtype=np.float64),
        lambda t: np.add(t.T, 1),
    ],
    ids=[
        "array",
        "array-T",
        "copy",
        "asarray-T",
        "ascontiguousarray-T",
        "ascontiguousarray-step",
        "asarray-dtype",
        "array-T-dtype",
        "ufunc-T",
    ],
)
def test_numpy_entry_points_that_copy_make_exactly_one_copy_of_ours(convert) -> None:
    # A tensor has no buffer protocol, so NumPy's entry points call `__array__`: one copy by
    # tensorbridge's kernel, which NumPy then uses as it is (no second copy of its own).
    t = counted("counted:cpu", A)
    before = copies("counted:cpu")
    out = convert(t)
    assert copies("counted:cpu") == before + 1
    assert isinstance(out, np.ndarray) and out.flags.writeable


def test_copy_true_is_exactly_one_copy_of_only_the_view() -> None:
    t = counted("counted:cpu", A)
    stats = _native._backend_stats("counted:cpu")
    out = t[:, ::3].numpy(copy=True)
    after = _native._backend_stats("counted:cpu")
    assert after["host_copies"] - stats["host_copies"] == 1
    assert after["host_copy_bytes"] - stats["host_copy_bytes"] == out.nbytes == 4 * 2 * 4
    assert out.flags.writeable
    np.testing.assert_array_equal(out, A[:, ::3])


def test_a_dtype_conversion_is_one_fused_copy() -> None:
    t = counted("counted:cpu", A)
    before = copies("counted:cpu")
    out = t.__array__(np.float64)
    assert copies("counted:cpu") == before + 1
    np.testing.assert_array_equal(out, A)


needs_counted_candle = pytest.mark.skipif(
    "counted:candle" not in tb.compiled_backends(),
    reason="this build has no counted:candle backend (cargo features `counted` and `candle`)",
)


@needs_counted_candle
@pytest.mark.parametrize(
    "convert",
    [
        lambda t: t.numpy(),
        lambda t: np.asarray(t),
        lambda t: t[1:, ::2].numpy(),
        lambda t: t.T.numpy(copy=True),
        lambda t: np.asarray(t, dtype=np.float64),
        lambda t: t.numpy(out=np.empty(t.shape, np.float32)),
    ],
    ids=["numpy", "asarray", "slice", "T-copy", "cast", "out"],
)
def test_memory_numpy_cannot_read_in_place_converts_with_exactly_one_copy(convert) -> None:
    # candle's storage is not host memory NumPy may read in place (on a GPU it is device
    # memory), so every conversion is one explicit device-to-host copy of the view's elements.
    t = counted("counted:candle", A)
    before = copies("counted:candle")
    convert(t)
    assert copies("counted:candle") == before + 1


@needs_counted_candle
def test_copy_false_refuses_instead_of_copying() -> None:
    t = counted("counted:candle", A)
    before = copies("counted:candle")
    with pytest.raises(ValueError, match="avoid copy"):
        t.numpy(copy=False)
    assert copies("counted:candle") == before
