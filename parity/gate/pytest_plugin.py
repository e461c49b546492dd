"""Gate your own attention kernel from your own pytest suite, in three lines:

    from parity.gate.pytest_plugin import assert_kernel_matches_spec
    def test_my_kernel():
        assert_kernel_matches_spec(my_package.my_kernel, profile="toy", dtype="float32")

or with the fixture (registered on install as the `pytest11` entry point `led_parity`; otherwise
`-p parity.gate.pytest_plugin`, or `pytest_plugins = ["parity.gate.pytest_plugin"]` in your top-level
conftest.py):

    def test_my_kernel(led_kernel_gate):
        led_kernel_gate(my_package.my_kernel, dtype="float32")

The defaults are the gate's own: dtype float64 on cpu, every profile, `GATE_EXAMPLES` cases per profile
(the realistic profile spends a fifth), a drawn seed. Every option of `parity.gate.judge.gate` passes
through (profile, support, blocks, backward, cases, max_seconds, adapter, ...); declare what the kernel
supports with `@parity.supports(...)` (docs/contract.md), e.g. `compute_dtype="float32"` or `padding=False`, and
name another interface with `adapter="hf-module"` / `"local"` / `"local-varlen"`.
A passing run prints the gate's verdict line with its seed
(shown by `pytest -rA` or `-s`); a failing one fails the test with the gate's message, which starts with
the verdict (`mismatch:` wrong numbers, `error:` a broken interface) and ends with the replay command. The
fixture takes its seed from `--led-gate-seed` and records it as the test's `led_gate_seed` property.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import pytest

from parity.gate.judge import GateResult, gate

# The plugin runs as many cases as the gate does by default, whatever the hypothesis profile says.
GATE_EXAMPLES = inspect.signature(gate).parameters["examples"].default


def assert_kernel_matches_spec(kernel: Callable, examples: int | None = None, seed: int | None = None,
                               dtype="float64", device: str = "cpu", **kwargs) -> GateResult:
    """Fail the calling test with the gate's message (verdict, shrunk case, seed, replay) unless `kernel`
    passes; print the pass line (with the seed) and return the GateResult otherwise.

    examples: cases per profile, default GATE_EXAMPLES (the gate's default, 100; realistic spends a fifth).
    seed: default drawn (and printed). dtype: default "float64". device: default "cpu". Every other keyword
    goes to `parity.gate.judge.gate` with its default there: profile "all", support from
    `@parity.supports`, blocks (16, 32, 64, 128), backward False, cases None (the profiles; a hypothesis
    strategy of cases replaces them, e.g. `parity.gate.profiles.shape_cases(Shape(...))`), max_seconds None.
    """
    return _verdict(_run_gate(kernel, examples, seed=seed, dtype=dtype, device=device, **kwargs))


def _run_gate(kernel: Callable, examples: int | None, **options) -> GateResult:
    return gate(kernel, examples=GATE_EXAMPLES if examples is None else examples, **options)


def _verdict(result: GateResult) -> GateResult:
    if not result.passed:
        pytest.fail(result.message(), pytrace=False)
    print(result.message())  # captured: pytest shows it for passing tests with -rA (or live with -s)
    return result


def gate_shards(count: int) -> list:
    """`count` pytest params "1/N" ... "N/N" (ids `shard1of4`, ...) for `shard=`: one test id per part of the
    profiles' shapes, so `pytest -n auto` spreads one gate run over its workers (parity.gate.shards):

        @pytest.mark.parametrize("shard", gate_shards(4))
        def test_my_kernel(shard):
            assert_kernel_matches_spec(my_kernel, seed=0, shard=shard)

    Give a fixed seed: the parts are of one run only when every test draws from the same seed."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be an int >= 1, got {count!r}")
    return [pytest.param(f"{k}/{count}", id=f"shard{k}of{count}") for k in range(1, count + 1)]


def pytest_addoption(parser) -> None:
    parser.addoption("--led-gate-seed", type=int, default=None, help="seed for led_kernel_gate (default: drawn)")


@pytest.fixture
def led_kernel_gate(request) -> Callable[..., GateResult]:
    """A function `gate(kernel, **options)` that fails the test unless the kernel passes the gate (options
    as `assert_kernel_matches_spec`); the seed of each run is recorded as the test's `led_gate_seed`
    property (junit XML)."""
    try:
        default_seed = request.config.getoption("--led-gate-seed")
    except ValueError:  # the plugin was imported, not registered: no option
        default_seed = None

    def run(kernel: Callable, examples: int | None = None, **options) -> GateResult:
        options.setdefault("seed", default_seed)
        result = _run_gate(kernel, examples, **options)
        request.node.user_properties.append(("led_gate_seed", result.seed))
        return _verdict(result)

    return run
