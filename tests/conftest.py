"""Shared pytest set-up: hypothesis profiles and the seed print-out.

Profiles (choose with HYPOTHESIS_PROFILE or --hypothesis-profile):
  ci        fast, the default in CI and locally: few examples, no deadline
  thorough  many examples, for on-demand runs (spread with `pytest -n auto`)
Every failing example is printed by hypothesis together with `@reproduce_failure` and the seed
(`print_blob=True`), so a failure replays with one decorator or `--hypothesis-seed=N`.
"""

import os
import random

from hypothesis import HealthCheck, settings

# Without a GPU the Triton kernels run in Triton's CPU interpreter, which must be chosen before triton is
# first imported by any test in the process (xdist workers run many test files in one process).
try:
    import torch
except ImportError:
    torch = None
if torch is not None and not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

_common = dict(
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("ci", max_examples=12, **_common)
settings.register_profile("thorough", max_examples=300, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# One hypothesis seed per run, drawn fresh unless given, printed in the header and again at the end, so a
# failure found by a random run replays exactly with `pytest --hypothesis-seed=N` (nothing is derandomized:
# every run explores new examples). xdist workers inherit the controller's seed through the environment.
_SEED_ENV = "LED_PARITY_HYPOTHESIS_SEED"


def pytest_configure(config):
    from hypothesis import core

    seed = config.getoption("hypothesis_seed", None)
    if seed is None:
        seed = os.environ.get(_SEED_ENV) or str(random.SystemRandom().randrange(2**32))
        core.global_force_seed = int(seed)
    os.environ[_SEED_ENV] = str(seed)


def pytest_report_header(config):
    return f"hypothesis seed {os.environ[_SEED_ENV]} (replay: pytest --hypothesis-seed={os.environ[_SEED_ENV]})"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if exitstatus:
        seed = os.environ[_SEED_ENV]
        terminalreporter.write_line(f"hypothesis seed was {seed}: replay this run with --hypothesis-seed={seed}")
