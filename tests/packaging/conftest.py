"""Shared pieces of the packaging tests (`make package-test`): where the build put the wheels,
fresh venvs, and running a program in an empty environment (what `env -i` gives: no
LD_LIBRARY_PATH, no PYTHONPATH, no VIRTUAL_ENV)."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REQS = REPO / "bindings" / "python" / "requirements-dev.txt"


def pin(name: str) -> str:
    """The requirement line `name==X` pinned in requirements-dev.txt."""
    for line in REQS.read_text().splitlines():
        if re.match(rf"{re.escape(name)}==", line, re.I):
            return line.split("#")[0].strip()
    raise AssertionError(f"{name} is not pinned in {REQS}")


def dist_dir() -> Path:
    d = os.environ.get("TB_DIST")
    if not d:
        pytest.skip(
            "TB_DIST not set: `make package-test` builds the wheels and sets it"
        )
    return Path(d)


def work_dir(name: str) -> Path:
    """A scratch directory under TB_PKG_WORK (in the cargo target dir, not in the clone), empty."""
    root = os.environ.get("TB_PKG_WORK")
    if not root:
        pytest.skip("TB_PKG_WORK not set: `make package-test` sets it")
    d = Path(root) / name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    return d


def one(pattern: str) -> Path:
    found = sorted(dist_dir().glob(pattern))
    assert len(found) == 1, f"expected one {pattern} in {dist_dir()}, found {found}"
    return found[0]


def run(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Runs ``cmd``; ``env=None`` inherits ours, ``env={}`` is the empty environment."""
    r = subprocess.run(
        [str(c) for c in cmd],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert r.returncode == 0, f"{cmd} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
    return r


def fresh_venv(where: Path) -> Path:
    """A new venv with pip and nothing else (no system site-packages); its python."""
    run([sys.executable, "-m", "venv", "--clear", where])
    return where / "bin" / "python"


def pip_install(python: Path, *args: str | Path) -> None:
    # Our environment (pip's cache and index settings); `--no-warn-script-location` keeps it quiet.
    run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *map(str, args),
        ]
    )


def wheel_files(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as z:
        return set(z.namelist())


def wheel_metadata(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as z:
        (name,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        return z.read(name).decode("utf-8")


# Run in the empty environment by each install test: the seed tensor, then every compiled backend
# asked for cuda:0, then what the loader did. The last line is a Python literal.
PROBE = """
import tensorbridge as tb
from tensorbridge import _loader
print(tb.tensor([[1, 2], [4, 8]]).numpy())
errors = {}
for b in tb.compiled_backends():
    try:
        tb.tensor([1.0], backend=b, device="cuda:0")
    except Exception as e:
        errors[b] = (type(e).__name__, str(e))
    else:
        errors[b] = None
print(repr(dict(backends=tb.compiled_backends(), errors=errors, file=tb.__file__,
                stub=_loader.driver_stub_loaded(), driver=_loader.driver_library(),
                stub_path=_loader.DRIVER_STUB)))
"""


def probe(python: Path, cwd: Path) -> tuple[str, dict]:
    """Runs PROBE with ``python`` in the empty environment; its output and the parsed result."""
    r = run([python, "-c", PROBE], env={}, cwd=cwd)
    return r.stdout, ast.literal_eval(r.stdout.strip().splitlines()[-1])


# Backends that link the NVIDIA driver (libcuda.so.1) when compiled with CUDA: candle's, named
# "cuda" (and "candle" once renamed).
CANDLE_NAMES = {"cuda", "candle"}


def check_no_driver_result(result: dict) -> None:
    """On a machine without an NVIDIA driver: every cuda:0 request is a RuntimeError, and those of
    the candle backend name the missing driver; the stand-in is loaded iff that backend is there."""
    if result["driver"] and not result["stub"]:
        pytest.skip(
            f"this machine has an NVIDIA driver ({result['driver']}): no-driver path not taken"
        )
    backends, errors = result["backends"], result["errors"]
    assert "cpu" in backends, backends
    assert errors["cpu"] is not None, "cpu backend accepted device='cuda:0'"
    for b, err in errors.items():
        assert err is not None, (
            f"backend {b!r} made a cuda:0 tensor on a machine without a GPU"
        )
        if b == "torch" or b in CANDLE_NAMES:  # the backends with a CUDA device
            kind, msg = err
            assert kind == "RuntimeError", (b, err)
            assert "cuda:0" in msg and "NVIDIA driver" in msg, (b, err)
    candle = CANDLE_NAMES & set(backends)
    for b in candle:
        msg = errors[b][1]
        assert "NVIDIA driver" in msg and "libcuda.so.1" in msg, (b, msg)
    assert result["stub"] == bool(candle), result
    if candle:
        assert os.path.realpath(result["driver"]) == os.path.realpath(
            result["stub_path"]
        ), result
