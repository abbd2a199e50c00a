"""The README says what the code does: every ```python block in it runs as written (each in a
fresh namespace, in a temporary directory), and the claims its comments and prose make are
checked here against the code.

A block that needs a backend this build lacks, or a CUDA device, is skipped with that reason;
every other block runs in ``make test``.
"""

from __future__ import annotations

import contextlib
import doctest
import io
import re
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import tensorbridge as tb

README = Path(__file__).resolve().parents[3] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)


def _cuda_missing(backend: str | None) -> str | None:
    try:
        tb.tensor([0.0], backend=backend, device="cuda:0")
    except RuntimeError as e:
        return str(e)
    return None


def _why_not(block: str) -> str | None:
    """Why this build cannot run ``block``, or None."""
    backends = re.findall(r'backend="([a-z:]+)"', block)
    for backend in backends:
        if backend not in tb.compiled_backends():
            return f"backend {backend!r} is not compiled into this build"
    if "import torch" in block and "torch" not in tb.compiled_backends():
        return "the torch backend is not compiled into this build"
    if "cuda:0" in block:
        for backend in backends or [None]:
            if (why := _cuda_missing(backend)) is not None:
                return f"no CUDA device: {why}"
    return None


def test_the_readme_has_python_blocks() -> None:
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_every_readme_python_block_runs(
    block: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if (why := _why_not(block)) is not None:
        pytest.skip(why)
    monkeypatch.chdir(tmp_path)  # blocks may write files (np.memmap)
    namespace: dict[str, Any] = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 (the README's own code)


# The walkthrough: the first block that makes `t` and its view `a` (the install block comes first).
WALKTHROUGH = next(b for b in BLOCKS if "\na = " in b or b.startswith("a = "))


def test_the_python_walkthrough_does_what_its_comments_say() -> None:
    ns: dict[str, Any] = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(WALKTHROUGH, "README.md", "exec"), ns)  # noqa: S102
    t, a = ns["t"], ns["a"]
    assert t.dtype == np.int64  # "int64, like NumPy's inference"
    assert not a.flags.writeable and a.base is t  # "read-only view; a.base keeps the storage"
    # "print(t * 2)  # tb.Tensor([[ 2  4]\n [ 8 16]], shape=(2, 2), ...)", then np.add(t, 1)
    assert out.getvalue() == (
        "tb.Tensor([[ 2  4]\n [ 8 16]], shape=(2, 2), dtype=int64, backend=cpu, device=cpu)\n"
        "[[2 3]\n [5 9]]\n"
    )
    assert type(np.add(t, 1)) is np.ndarray  # "NumPy ufuncs convert implicitly -> ndarray"
    v = ns["v"]
    av = v.numpy()
    assert not av.flags.c_contiguous and np.shares_memory(av, a)  # zero-copy, strides kept
    c_order = np.ascontiguousarray(v)  # "one C-order copy by our blocked kernel"
    assert c_order.flags.c_contiguous and not np.shares_memory(c_order, a)
    np.testing.assert_array_equal(c_order, av)
    assert np.array(t).flags.writeable  # "a writable copy"
    assert ns["h"].numpy().dtype == ml_dtypes.bfloat16


def test_np_array_of_a_transpose_keeps_its_memory_order() -> None:
    """The README's contract section: ``np.array(t)`` is our copy in NumPy's order "K" (so
    ``np.array(t.T)`` keeps the transpose's F order, as ``np.array(a.T)``), ``t.numpy(copy=True)``
    is C-ordered."""
    t = tb.tensor(np.arange(6.0).reshape(2, 3))
    assert np.array(t.T).flags.f_contiguous and not np.array(t.T).flags.c_contiguous
    assert t.T.numpy(copy=True).flags.c_contiguous


_BF16_PROMOTION = {  # where np.result_type raises, the README's rule; elsewhere np.result_type
    "float16": "float32",
    "int16": "float32",
    "uint16": "float32",
    "int32": "float64",
    "uint32": "float64",
    "int64": "float64",
    "uint64": "float64",
}


@pytest.mark.parametrize(
    "other",
    ["bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64"]
    + ["float16", "float32", "float64"],
)
def test_bfloat16_promotion_is_as_the_readme_says(other: str) -> None:
    bf16 = np.dtype(ml_dtypes.bfloat16)
    try:
        want = np.result_type(bf16, np.dtype(other))
        assert other not in _BF16_PROMOTION
    except TypeError:  # DTypePromotionError
        want = np.dtype(_BF16_PROMOTION[other])
    a = tb.zeros(2, dtype="bfloat16")
    b = tb.zeros(2, dtype=other)
    assert (a + b).dtype == want
    assert (b * a).dtype == want


def test_the_tensor_docstring_names_every_compiled_backend_kind() -> None:
    doc = tb.tensor.__doc__ or ""
    for name in tb.compiled_backends():
        if not name.startswith(("lazy:", "counted:")):  # lazy variants are named as a family
            assert f'"{name}"' in doc, name
    assert "lazy:" in doc


def test_the_module_docstring_examples_hold() -> None:
    """``help(tensorbridge)`` shows ``>>>`` examples: they give the output they show."""
    test = doctest.DocTestParser().get_doctest(tb.__doc__ or "", {}, "tensorbridge", None, 0)
    assert test.examples
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    out = io.StringIO()
    runner.run(test, out=out.write)
    assert runner.failures == 0, out.getvalue()
