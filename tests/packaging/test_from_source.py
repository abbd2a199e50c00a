"""From source with only Rust and Python: `pip install ./bindings/python` and `pip install` of the
sdist `maturin sdist` made (`make sdist`, unpacked as pip would), both with pip's build isolation on (maturin comes from
the package index or pip's cache), both building the default variant.

pip builds the wheel with `.venv`'s interpreter and CARGO_TARGET_DIR (the Makefile points it at
the default variant's target dir, shared with `make wheel`, so pyo3's build-script output is kept
and only tensorbridge's own crates are compiled), then the wheel goes into a fresh venv that has
only numpy: the same two steps `pip install` takes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

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
# What only the cuda build needs; a user building from source has none of it.
CUDA_ENV = (
    "CUDA_ROOT",
    "CUDA_PATH",
    "CUDA_COMPUTE_CAP",
    "LIBRARY_PATH",
    "LIBTORCH",
    "LD_LIBRARY_PATH",
)


def _build_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CUDA_ENV}
    env["PATH"] = os.pathsep.join(
        p for p in env["PATH"].split(os.pathsep) if "/cu13/" not in p
    )
    assert env.get("CARGO_TARGET_DIR"), "the Makefile exports CARGO_TARGET_DIR"
    return env


def _pip_wheel(source: Path, out: Path, *, profile: str | None = None) -> Path:
    """`pip wheel` of ``source`` with build isolation; the wheel. ``profile``: a cargo profile for
    maturin's PEP 517 build instead of release."""
    env = _build_env()
    if profile:
        env["MATURIN_PEP517_ARGS"] = f"--profile {profile}"
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--disable-pip-version-check",
            "-w",
            out,
            source,
        ],
        env=env,
    )
    (wheel,) = out.glob("tensorbridge-*.whl")
    return wheel


def _check_installed(wheel: Path, work: Path) -> None:
    assert "tensorbridge/_stub/libcuda.so.1" not in wheel_files(wheel)
    assert "Requires-Dist: numpy>=2.0" in wheel_metadata(wheel)
    py = fresh_venv(work / "venv")
    pip_install(py, pin("numpy"), wheel)
    out = run([py, EXAMPLE], env={}, cwd=work).stdout
    assert (
        "[[1 2]\n [4 8]]" in out and "compiled backends: ['cpu', 'lazy:cpu']" in out
    ), out
    _, result = probe(py, work)
    assert result["file"].startswith(str(work / "venv")), result["file"]
    check_no_driver_result(result)


def test_pip_install_of_the_source_tree() -> None:
    work = work_dir("from-tree")
    _check_installed(_pip_wheel(REPO / "bindings" / "python", work / "wheel"), work)


def _path_crates() -> dict[str, Path]:
    """The workspace crates the bindings need (path dependencies, optional ones included: cargo
    resolves the whole lockfile), by name, relative to the workspace root."""
    meta = json.loads(
        subprocess.run(
            [
                "cargo",
                "metadata",
                "--format-version",
                "1",
                "--no-deps",
                "--manifest-path",
                str(REPO / "Cargo.toml"),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout
    )
    by_name = {p["name"]: p for p in meta["packages"]}
    need: dict[str, Path] = {}
    todo = ["tensorbridge-python"]
    while todo:
        name = todo.pop()
        if name in need:
            continue
        pkg = by_name[name]
        need[name] = Path(pkg["manifest_path"]).parent.relative_to(REPO)
        todo += [
            d["name"]
            for d in pkg["dependencies"]
            if d.get("path") and d["kind"] != "dev"
        ]
    return need


def test_sdist_holds_every_crate_it_builds_and_pip_installs_it() -> None:
    sdist = one("tensorbridge-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = set(tar.getnames())
    top = sdist.name[: -len(".tar.gz")]
    for f in (
        "pyproject.toml",
        "Cargo.toml",
        "Cargo.lock",
        "LICENSE-MIT",
        "LICENSE-APACHE",
    ):
        assert f"{top}/{f}" in names, f
    for crate, path in _path_crates().items():
        assert f"{top}/{path}/Cargo.toml" in names, crate
        assert any(n.startswith(f"{top}/{path}/src/") for n in names), crate
    assert not any("/_stub/" in n or "/target/" in n for n in names)
    work = work_dir("from-sdist")
    # Unpacked as pip unpacks it, but with fresh mtimes: the sdist's files carry maturin's fixed
    # 2006 timestamp, and cargo keys path crates by their path relative to the workspace, so in the
    # shared target dir it would take the tree build's artifacts as up to date and compile nothing.
    with tarfile.open(sdist) as tar:
        tar.extractall(work / "src", filter="data")
    now = time.time()
    for f in (work / "src").rglob("*"):
        os.utime(f, (now, now))
    # Built in the dev profile: the point is that the sdist holds everything the build needs (the
    # tree's release build is the test above), and an unoptimised build of tensorbridge's crates
    # costs CI a fraction of a release one.
    _check_installed(
        _pip_wheel(work / "src" / top, work / "wheel", profile="dev"), work
    )
