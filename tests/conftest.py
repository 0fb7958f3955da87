"""Shared test configuration: Hypothesis settings profiles.

``ci`` (the default) keeps the whole suite within the CI budget; ``thorough``
runs many more examples for nightly or pre-release runs. Select with
``MSGSIM_HYPOTHESIS_PROFILE=thorough make test``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
    print_blob=True,
)
settings.register_profile(
    "thorough",
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile("dev", max_examples=20, deadline=None)
settings.load_profile(os.environ.get("MSGSIM_HYPOTHESIS_PROFILE", "ci"))
