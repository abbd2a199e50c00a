"""The README's conversion-contract table has one row per registered backend."""

from __future__ import annotations

import re
from pathlib import Path

import tensorbridge as tb

README = Path(__file__).resolve().parents[3] / "README.md"


def table_backends() -> set[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Conversion contract", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {m.group(1) for line in rows if (m := re.match(r"\| `([^`]+)` /", line))}


def test_every_compiled_backend_has_a_row_and_every_row_names_a_backend() -> None:
    rows = table_backends()
    compiled = set(tb.compiled_backends())
    assert compiled <= rows, f"backends without a README row: {sorted(compiled - rows)}"
    known = compiled | set(tb._native._absent_backends())
    assert rows <= known, f"README rows naming no backend: {sorted(rows - known)}"
