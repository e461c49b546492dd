"""Gate your own attention kernel from your own pytest suite, in three lines:

    from parity.gate.pytest_plugin import assert_kernel_matches_spec
    def test_my_kernel():
        assert_kernel_matches_spec(my_package.my_kernel, profile="realistic", dtype="bfloat16", backward=True)

or with the fixture (available once this module is a pytest plugin: `-p parity.gate.pytest_plugin`, or
`pytest_plugins = ["parity.gate.pytest_plugin"]` in your conftest.py):

    def test_my_kernel(led_kernel_gate):
        led_kernel_gate(my_package.my_kernel, dtype="float32")

Every option of `parity.gate.judge.gate` passes through (profile, support, blocks, backward, max_seconds, ...);
declare what the kernel supports with `@parity.supports(...)` (docs/contract.md). The number of cases
follows the active hypothesis profile (`max_examples`) unless `examples=` is given; the seed comes from
`--led-gate-seed` or is drawn and shown in the failure message, which starts with the verdict
(`mismatch:` wrong numbers, `error:` a broken interface).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import settings

from parity.gate.judge import GateResult, gate


def assert_kernel_matches_spec(kernel: Callable, examples: int | None = None, seed: int | None = None,
                               dtype="float64", device: str = "cpu", **kwargs) -> GateResult:
    """Fail the calling test with the gate's message (verdict, shrunk case, seed, replay) unless `kernel`
    passes; return the GateResult otherwise."""
    examples = settings.default.max_examples if examples is None else examples
    result = gate(kernel, examples=examples, seed=seed, dtype=dtype, device=device, **kwargs)
    if not result.passed:
        pytest.fail(result.message(), pytrace=False)
    return result


def pytest_addoption(parser) -> None:
    parser.addoption("--led-gate-seed", type=int, default=None, help="seed for led_kernel_gate (default: drawn)")


@pytest.fixture
def led_kernel_gate(request) -> Callable[..., GateResult]:
    """A function `gate(kernel, **options)` that fails the test unless the kernel passes the gate."""
    try:
        default_seed = request.config.getoption("--led-gate-seed")
    except ValueError:  # the plugin was imported, not registered: no option
        default_seed = None

    def run(kernel: Callable, **options) -> GateResult:
        options.setdefault("seed", default_seed)
        return assert_kernel_matches_spec(kernel, **options)

    return run
