"""`make wheel`'s two wheels: their metadata, then each installed into a fresh venv and the seed
walkthrough (examples/tensor_to_numpy.py) run there in an empty environment."""

from __future__ import annotations

import base64
import hashlib
import re
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import (
    REPO,
    check_no_driver_result,
    fresh_venv,
    one,
    pin,
    pip_install,
    probe,
    run,
    wheel_files,
    wheel_metadata,
    work_dir,
)

EXAMPLE = REPO / "examples" / "tensor_to_numpy.py"
STUB = "tensorbridge/_stub/libcuda.so.1"


def default_wheel() -> Path:
    return one("tensorbridge-*.whl")


def cu13_wheel() -> Path:
    return one("tensorbridge_cu13-*.whl")


def _requires(metadata: str) -> list[str]:
    return re.findall(r"^Requires-Dist: (.*)$", metadata, re.M)


# ---- metadata --------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["default", "cu13"])
def test_wheel_is_abi3_with_licenses_readme_and_a_valid_record(which: str) -> None:
    wheel = default_wheel() if which == "default" else cu13_wheel()
    assert re.fullmatch(
        r"tensorbridge(_cu13)?-0\.1\.0-cp311-abi3-[a-z0-9_]+x86_64\.whl", wheel.name
    )
    files = wheel_files(wheel)
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")], files
    info = next(f.split("/")[0] for f in files if ".dist-info/" in f)
    assert {f"{info}/licenses/LICENSE-MIT", f"{info}/licenses/LICENSE-APACHE"} <= files
    assert {
        "tensorbridge/__init__.py",
        "tensorbridge/_native.abi3.so",
        "tensorbridge/py.typed",
    } <= files
    meta = wheel_metadata(wheel)
    assert "License-Expression: MIT OR Apache-2.0" in meta
    assert "Description-Content-Type: text/markdown" in meta
    # The description is the user README, whose links must work on a package index.
    readme = (REPO / "bindings" / "python" / "README.md").read_text()
    assert readme.strip() in meta
    for target in re.findall(r"\]\(([^)]*)\)", readme) + re.findall(
        r'src="([^"]*)"', readme
    ):
        assert target.startswith("https://"), (
            f"relative link {target!r} will not render"
        )
    # Every file is listed in RECORD with its sha256 and size (what pip checks on install).
    with zipfile.ZipFile(wheel) as z:
        record = z.read(f"{info}/RECORD").decode().splitlines()
        listed = {}
        for line in record:
            path, digest, size = line.rsplit(",", 2)
            listed[path] = (digest, size)
        assert set(listed) == files
        for path in files - {f"{info}/RECORD"}:
            data = z.read(path)
            want = (
                base64.urlsafe_b64encode(hashlib.sha256(data).digest())
                .rstrip(b"=")
                .decode()
            )
            assert listed[path] == (f"sha256={want}", str(len(data))), path


def test_default_wheel_needs_numpy_only_and_has_no_driver_stand_in() -> None:
    meta = wheel_metadata(default_wheel())
    assert re.search(r"^Name: tensorbridge$", meta, re.M)
    assert _requires(meta) == ["numpy>=2.0", "ml-dtypes>=0.4 ; extra == 'bf16'"]
    assert "Provides-Extra: bf16" in meta
    assert STUB not in wheel_files(default_wheel())


def test_cu13_wheel_adds_torch_and_the_driver_stand_in() -> None:
    meta = wheel_metadata(cu13_wheel())
    assert re.search(r"^Name: tensorbridge-cu13$", meta, re.M)
    assert _requires(meta) == [
        "numpy>=2.0",
        pin("torch"),
        "ml-dtypes>=0.4 ; extra == 'bf16'",
    ]
    assert STUB in wheel_files(cu13_wheel())


# ---- installed -------------------------------------------------------------------------------


def _walkthrough(python: Path, cwd: Path) -> str:
    out = run([python, EXAMPLE], env={}, cwd=cwd).stdout
    assert "[[1 2]\n [4 8]]" in out and "[[ 3  5]\n [ 9 17]]" in out, out
    return out


def _installed(python: Path) -> set[str]:
    out = run(
        [python, "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"]
    ).stdout
    return {line.split("==")[0].lower() for line in out.split()}


def test_default_wheel_in_a_fresh_venv_with_only_numpy() -> None:
    work = work_dir("venv-default")
    py = fresh_venv(work / "venv")
    pip_install(py, pin("numpy"), default_wheel())
    assert _installed(py) - {"pip", "setuptools"} == {"numpy", "tensorbridge"}
    out = _walkthrough(py, work)
    assert "compiled backends: ['cpu', 'lazy:cpu']" in out, out
    _, result = probe(py, work)
    assert result["file"].startswith(str(work / "venv")), result["file"]
    assert result["backends"] == ["cpu", "lazy:cpu"]
    check_no_driver_result(result)


def _link_torch(site: Path) -> list[str]:
    """Links torch and everything it requires from this venv (.venv) into ``site``, with their
    .dist-info, so pip sees `torch==2.11.0` installed without copying 4.7 GB; the names linked."""
    from importlib import metadata

    from packaging.requirements import Requirement

    seen: dict[str, metadata.Distribution] = {}
    todo = ["torch"]
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        dist = metadata.distribution(name)
        seen[name] = dist
        for req in map(Requirement, dist.requires or []):
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    tops: set[Path] = set()
    for dist in seen.values():
        root = Path(dist.locate_file("")).resolve()
        for f in dist.files or []:
            if f.parts[0] not in ("..", "__pycache__") and not str(f).endswith(".pth"):
                tops.add(root / f.parts[0])
    for top in tops:
        if not (site / top.name).exists():  # (the venv's own pip and setuptools stay)
            (site / top.name).symlink_to(top)
    return sorted(seen)


def test_cu13_wheel_in_a_fresh_venv_beside_torch() -> None:
    work = work_dir("venv-cu13")
    py = fresh_venv(work / "venv")
    site = Path(
        run(
            [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
        ).stdout.strip()
    )
    linked = _link_torch(site)
    assert "torch" in linked
    pip_install(py, pin("numpy"), pin("ml_dtypes"), f"{cu13_wheel()}[bf16]")
    run(
        [py, "-m", "pip", "check", "--disable-pip-version-check"]
    )  # torch==2.11.0 and its deps are there
    out = _walkthrough(py, work)
    assert "compiled backends:" in out and "'torch'" in out, out
    assert "RuntimeError:" in out, (
        out
    )  # the walkthrough's torch cuda:0 request, no GPU here
    _, result = probe(py, work)
    assert result["file"].startswith(str(work / "venv")), result["file"]
    assert {"cpu", "lazy:cpu", "torch"} <= set(result["backends"])
    assert set(result["backends"]) & {"cuda", "candle"}, result["backends"]
    check_no_driver_result(result)


@pytest.mark.skipif(sys.platform != "linux", reason="the wheels are built for Linux")
def test_stub_in_the_cu13_wheel_is_the_generated_no_device_library() -> None:
    with zipfile.ZipFile(cu13_wheel()) as z:
        data = z.read(STUB)
    assert data[:4] == b"\x7fELF"
    assert (
        b"libcuda.so.1" in data
    )  # its soname, so the extension's DT_NEEDED entry resolves to it
    assert b"NVIDIA driver" in data  # the message cuGetErrorString gives
