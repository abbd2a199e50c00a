"""Prints the ratios of the `lazy_fused` criterion bench (one run): each variant's mean time
against `eager_cpu`. Run by `make bench-lazy` after `cargo bench -p tensorbridge-lazy`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

GROUP = "sqrt_x2_plus1_64M_f32"


def main() -> int:
    target = Path(os.environ.get("CARGO_TARGET_DIR", "target"))
    group = target / "criterion" / GROUP
    means: dict[str, float] = {}
    for est in sorted(group.glob("*/new/estimates.json")):
        means[est.parent.parent.name] = json.loads(est.read_text())["mean"]["point_estimate"]
    if "eager_cpu" not in means:
        print(f"no criterion results under {group}", file=sys.stderr)
        return 1
    eager = means["eager_cpu"]
    for name, ns in means.items():
        print(f"{name:28s} {ns / 1e6:9.1f} ms   {eager / ns:5.2f}x eager_cpu")
    return 0


if __name__ == "__main__":
    sys.exit(main())
