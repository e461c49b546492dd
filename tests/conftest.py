"""Shared pytest set-up: hypothesis profiles and the seed print-out.

Profiles (choose with HYPOTHESIS_PROFILE or --hypothesis-profile):
  ci        the default in CI and locally: 12 examples per property, derandomized (same examples every run)
  thorough  300 examples per property, derandomized, for on-demand runs (spread with `pytest -n auto`)
  explore   50 examples per property from a fresh seed, printed in the header (replay: --hypothesis-seed=N)
`pytest --hypothesis-seed=N` draws any profile's example counts from seed N. Every failing example is printed
by hypothesis together with `@reproduce_failure` (`print_blob=True`).
"""

import os
import random

import pytest
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
# ci and thorough are derandomized: each test draws from a seed fixed by its own source, so a commit gives
# the same examples on every run and machine (no example database either). explore draws fresh ones.
settings.register_profile("ci", max_examples=12, derandomize=True, database=None, **_common)
settings.register_profile("thorough", max_examples=300, derandomize=True, database=None, **_common)
settings.register_profile("explore", max_examples=50, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# An exploring run (HYPOTHESIS_PROFILE=explore, or any profile with --hypothesis-seed=N) uses one seed for every
# test, printed in the header and again on failure, so it replays with `--hypothesis-seed=N`. xdist workers
# inherit the controller's seed through the environment.
_SEED_ENV = "LED_PARITY_HYPOTHESIS_SEED"


def pytest_configure(config):
    from parity.harness.hypothesis_runs import stable_draws

    stable_draws()  # the same local constants in every worker, whichever test files it was handed
    profile = config.getoption("hypothesis_profile", None)
    if profile:
        settings.load_profile(profile)
    seed = config.getoption("hypothesis_seed", None)
    if seed is None and settings.default.derandomize:
        os.environ.pop(_SEED_ENV, None)
        return
    if seed is None:
        seed = os.environ.get(_SEED_ENV) or str(random.SystemRandom().randrange(2**32))
        config.option.hypothesis_seed = seed  # read by hypothesis' own pytest plugin after this hook
    elif settings.default.derandomize:
        # a seed given to a derandomized profile: the same example counts, drawn from that seed
        name = f"{settings.get_current_profile_name()}-seeded"
        settings.register_profile(name, parent=settings.default, derandomize=False)
        settings.load_profile(name)
        config.option.hypothesis_profile = name  # hypothesis' plugin loads the named profile after this hook
    os.environ[_SEED_ENV] = str(seed)


def pytest_report_header(config):
    seed = os.environ.get(_SEED_ENV)
    if seed is None:
        return f"hypothesis profile {settings.get_current_profile_name()}: derandomized (same examples every run)"
    return f"hypothesis seed {seed} (replay: pytest --hypothesis-seed={seed})"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    seed = os.environ.get(_SEED_ENV)
    if exitstatus and seed is not None:
        terminalreporter.write_line(f"hypothesis seed was {seed}: replay this run with --hypothesis-seed={seed}")


# The ONNX tests' tiny checkpoint and its dense export (TorchScript exporter: seconds, where dynamo takes tens,
# traced at 19 tokens), made once per process and only read by the tests (a test that changes files copies them).
@pytest.fixture(scope="session")
def onnx_checkpoint(tmp_path_factory):
    from tests.onnx_cases import tiny_checkpoint

    return tiny_checkpoint(tmp_path_factory.mktemp("onnx") / "tiny")


@pytest.fixture(scope="session")
def onnx_export(onnx_checkpoint, tmp_path_factory):
    from parity.onnx import export

    out = tmp_path_factory.mktemp("onnx") / "export"
    export.export_model(onnx_checkpoint, str(out), attention="dense", dynamo=False)
    return str(out)
