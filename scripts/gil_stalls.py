"""Where tensorbridge holds the GIL across heavy work: prints, for each case of
bindings/python/tests/test_gil.py, a spinning thread's longest stall as a fraction of the call
(1.0: blocked throughout; a few percent: the GIL was released) and the call's duration.

    .venv/bin/python scripts/gil_stalls.py
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

TESTS = (
    Path(__file__).resolve().parents[1]
    / "bindings"
    / "python"
    / "tests"
    / "test_gil.py"
)


def main() -> None:
    spec = importlib.util.spec_from_file_location("test_gil", TESTS)
    assert spec is not None and spec.loader is not None
    cases = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cases)
    print(f"{'case':45} {'stall/call':>10} {'call ms':>8}")
    for name, make in cases.CASES.items():
        frac, dt = cases.stall(make)
        print(f"{name:45} {frac:10.2f} {dt * 1e3:8.1f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
