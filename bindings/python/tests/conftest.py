"""Hypothesis profile for the whole suite.

Every property test runs ``TB_HYPOTHESIS_EXAMPLES`` examples (200 when unset; the Makefile and CI
export 2000). No deadline: timings on shared CI machines vary too much to be a contract.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "tensorbridge",
    max_examples=int(os.environ.get("TB_HYPOTHESIS_EXAMPLES", "200")),
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("tensorbridge")
