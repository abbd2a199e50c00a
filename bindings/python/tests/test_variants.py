"""Build variants: the default (cpu-only) extension must import and work where torch is not
installed; only the torch variant needs it. `make test` builds the cpu-only variant too and
passes its path in TB_CPU_ONLY_EXTENSION."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tensorbridge as tb

CPU_ONLY = os.environ.get("TB_CPU_ONLY_EXTENSION")


@pytest.mark.skipif(
    not CPU_ONLY, reason="TB_CPU_ONLY_EXTENSION not set (make test builds and sets it)"
)
def test_the_cpu_only_extension_imports_without_torch(tmp_path: Path) -> None:
    assert CPU_ONLY is not None
    src = Path(tb.__file__).parent
    pkg = tmp_path / "tensorbridge"
    pkg.mkdir()
    for f in src.glob("*.py"):
        shutil.copy(f, pkg / f.name)
    shutil.copy(CPU_ONLY, pkg / "_native.abi3.so")
    code = textwrap.dedent(
        """
        import sys
        sys.modules["torch"] = None  # torch is not installed
        import numpy as np
        import tensorbridge as tb
        assert tb.__file__.startswith(sys.argv[1]), tb.__file__
        assert "torch" not in tb.compiled_backends(), tb.compiled_backends()
        assert "cpu" in tb.compiled_backends(), tb.compiled_backends()
        t = tb.tensor([[1, 2], [3, 4]])
        assert (np.asarray(t.T) == np.array([[1, 3], [2, 4]])).all()
        try:
            tb.tensor([1], backend="torch")
        except RuntimeError as e:
            assert "not compiled" in str(e), e
        else:
            raise AssertionError("backend='torch' worked in a cpu-only build")
        print("ok")
        """
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(pkg)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr
