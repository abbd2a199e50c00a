"""The stubs users see in their editor match the runtime exactly (``mypy.stubtest``), and code
written against them type-checks."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("mypy", reason="mypy is pinned in requirements-dev.txt")


def _mypy(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # Run outside the repository so mypy's cache does not land in the working tree.
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_stubtest_finds_stubs_and_runtime_identical(tmp_path: Path) -> None:
    proc = _mypy(["mypy.stubtest", "tensorbridge"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_code_using_the_public_api_type_checks_strictly(tmp_path: Path) -> None:
    usage = tmp_path / "usage.py"
    usage.write_text(
        textwrap.dedent(
            """
            from typing import Any

            import numpy as np

            import tensorbridge as tb

            t: tb.Tensor = tb.tensor([[1, 2], [4, 8]], dtype=tb.int32)
            u: tb.Tensor = (t * 2 + 1.5) @ t.T
            a: np.ndarray[Any, Any] = u.numpy(copy=True)
            b: np.ndarray[Any, Any] = np.asarray(t)
            shape: tuple[int, ...] = t[0, ::-1].shape
            dtype: np.dtype[Any] = tb.zeros((2, 3), dtype=np.float32).dtype
            s: tb.Tensor = tb.sum(t, axis=0, keepdims=True) + tb.mean([1.0, 2.0])
            v: tb.Tensor = tb.transpose(tb.reshape(tb.arange(6), (2, 3)), (1, 0))
            f: float = float(tb.full((1,), 2.5)) + t.sum().item()
            backends: list[str] = tb.compiled_backends()
            w: tb.Tensor = tb.from_numpy(np.ones(3)).to(backend="cpu", device="cpu")
            """
        )
    )
    proc = _mypy(["mypy", "--strict", "--no-incremental", str(usage)], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
