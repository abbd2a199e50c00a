"""The build `make develop` makes (every variant: default FEATURES is torch + cuda) imports in a
plain shell on a machine without an NVIDIA driver, and the first CUDA request is a RuntimeError
naming the missing driver (the package's no-device libcuda stand-in, tensorbridge/_loader.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import check_no_driver_result, probe


def test_develop_build_imports_in_an_empty_environment(tmp_path: Path) -> None:
    # sys.executable is .venv's python (`make package-test` runs pytest with it); the probe runs
    # it with no environment variables at all, from a directory outside the clone.
    out, result = probe(Path(sys.executable), tmp_path)
    assert "[[1 2]\n [4 8]]" in out, out
    check_no_driver_result(result)
