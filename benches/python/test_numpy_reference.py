"""numpy_reference.py on tiny shapes (run by `make test`, so it cannot rot): every workload of the
Rust bench gets a NumPy figure, and a criterion result beside it gets its ratio."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import numpy_reference as ref


def test_every_rust_workload_has_a_numpy_line_and_criterion_results_are_paired(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ref, "OPS_SHAPE", (16, 16))
    monkeypatch.setattr(ref, "FROM_SLICE_ELEMS", 256)
    est = tmp_path / "copy_transposed_f32" / "tensorbridge" / "100" / "new" / "estimates.json"
    est.parent.mkdir(parents=True)
    # 400 bytes of output in 1 µs: 0.40 GB/s
    est.write_text(json.dumps({"median": {"point_estimate": 1000.0}}))
    argv = ["--sizes", "100", "--budget", "0.001", "--no-torch", "--criterion-dir", str(tmp_path)]
    assert ref.main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    rows = [ln for ln in out if ln.startswith(("| ops", "| copy", "| from"))]
    names = {ln.split("|")[1].strip() for ln in rows}
    assert names == {
        "ops_16M_f32/add",
        "ops_16M_f32/mul",
        "ops_16M_f32/add_scalar",
        "from_slice_64MiB_f32/tensorbridge_from_slice",
        "copy_slice_1_8_f32/tensorbridge",
        "copy_transposed_f32/tensorbridge",
        "copy_transposed_u16/tensorbridge",
        "copy_transposed_u8/tensorbridge",
        "copy_bf16_to_f32/tensorbridge",
    }
    paired = next(ln for ln in rows if "copy_transposed_f32" in ln).split("|")
    assert paired[3].strip() == "1.00 µs" and paired[6].strip() == "0.40"
    assert paired[7].strip().endswith("×")
    unpaired = next(ln for ln in rows if "copy_transposed_u8" in ln).split("|")
    assert unpaired[3].strip() == "—" and unpaired[4].strip().endswith("s")
