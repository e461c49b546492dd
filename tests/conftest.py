"""Shared pytest set-up: hypothesis profiles and the seed print-out.

Profiles (choose with HYPOTHESIS_PROFILE or --hypothesis-profile):
  ci        fast, the default in CI and locally: few examples, no deadline
  thorough  many examples, for on-demand runs (spread with `pytest -n auto`)
Every failing example is printed by hypothesis together with `@reproduce_failure` and the seed
(`print_blob=True`), so a failure replays with one decorator or `--hypothesis-seed=N`.
"""

import os

from hypothesis import HealthCheck, settings

_common = dict(
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("ci", max_examples=12, **_common)
settings.register_profile("thorough", max_examples=300, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
