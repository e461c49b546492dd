"""Model-level parity: run the same weights and inputs through led_ref and other sides, compare every output.

    from parity.check import run_case, check_random
    comparisons = run_case(config, "LEDForConditionalGeneration", weights, inputs, [Side.parse("torch:banded")])

`check_random` draws hypothesis cases (parity.strategies.model_cases); on the first divergence hypothesis
shrinks the case, and the shrunk case is saved as a reproducer (parity.report) that replays with
`python -m parity replay DIR`.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.reporting import with_reporter

from .compare import Comparison, OutputDiff, compare_outputs
from .implementations import Side
from .report import save_reproducer, text_table
from .strategies import ModelCase, model_cases

REFERENCE = Side("ref")
ARCHITECTURES = ("LEDForConditionalGeneration", "LEDModel", "LEDForSequenceClassification",
                 "LEDForQuestionAnswering")
PROBABILITY_OUTPUTS = ("encoder_attentions", "encoder_global_attentions")


def failed(side: Side, reference: Side, what: str, err: Exception) -> Comparison:
    """A comparison standing for a side that raised instead of returning outputs."""
    diff = OutputDiff(f"<{what}>", "hidden", (), float("inf"), 0.0, f"{type(err).__name__}: {err}")
    return Comparison(side.label, reference.label, [diff])


def run_case(config, architecture: str, weights: dict, inputs: dict, sides: list[Side],
             reference: Side = REFERENCE) -> list[Comparison]:
    """Compare every side with `reference` on one (config, weights, inputs); a crash is a divergence."""
    ref_model = reference.build(config, weights, architecture)
    expected = reference.forward(ref_model, inputs)
    comparisons = []
    for side in sides:
        try:
            model = side.build(config, weights, architecture)
        except Exception as err:  # noqa: BLE001 - reported as a divergence, never swallowed
            comparisons.append(failed(side, reference, "build", err))
            continue
        try:
            actual = side.forward(model, inputs)
        except Exception as err:  # noqa: BLE001
            comparisons.append(failed(side, reference, "forward", err))
            continue
        skip = () if side.returns_probabilities else PROBABILITY_OUTPUTS
        comparisons.append(compare_outputs(actual, expected, side.dtype, reference.dtype, hf=side.family == "hf",
                                           inputs=inputs, actual_name=side.label, expected_name=reference.label,
                                           skip=skip))
    return comparisons


NO_EXPLAIN = [p for p in Phase if p.name != "explain"]  # hypothesis' line-coverage notes are noise here


class CaseDiverged(AssertionError):
    def __init__(self, case: ModelCase, comparisons: list[Comparison]):
        first = next(c for c in comparisons if not c.passed)
        super().__init__(f"{first.actual} diverged from {first.expected} at {first.first_divergence.name}")
        self.case, self.comparisons = case, comparisons


@dataclass
class CheckResult:
    seed: int
    examples: int
    passed: bool = True
    rows: list[tuple[str, Comparison]] = field(default_factory=list)
    failure: str = ""
    reproducer: str | None = None


class Progress:
    """A plain-text progress bar on stderr (no dependency); silent when disabled."""

    def __init__(self, total: int, label: str, enabled: bool = True, stream=None):
        self.total, self.label, self.enabled, self.done = max(total, 1), label, enabled, 0
        self.stream = stream or sys.stderr  # looked up now, not at import (pytest swaps sys.stderr)

    def step(self, note: str = "") -> None:
        self.done += 1
        if self.enabled:
            filled = min(20, 20 * self.done // self.total)
            self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (20 - filled)}] {self.done}/{self.total} "
                              f"{note[:40]:<40}")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")


def check_random(sides: list[Side], examples: int = 10, seed: int | None = None,
                 architectures: tuple[str, ...] = ARCHITECTURES, repro_dir: str | None = None,
                 progress: bool = True, config=None) -> CheckResult:
    """Hypothesis cases through reference and `sides`; the shrunk first divergence is saved as a reproducer."""
    if isinstance(examples, bool) or not isinstance(examples, int) or examples < 1:
        raise ValueError(f"examples must be a positive int, got {examples!r}")
    seed = random.SystemRandom().randrange(2**32) if seed is None else int(seed)
    result = CheckResult(seed, examples)
    bar = Progress(examples, "check", progress)
    hf_compatible = any(s.family == "hf" for s in sides)

    @settings(max_examples=examples, database=None, deadline=None, print_blob=True, report_multiple_bugs=False,
              suppress_health_check=list(HealthCheck),
              phases=NO_EXPLAIN)
    @given(case=model_cases(architectures=architectures, hf_compatible=hf_compatible, config=config))
    def run(case: ModelCase) -> None:
        comparisons = run_case(case.config, case.architecture, case.weights(), case.inputs, sides)
        bar.step(case.architecture)
        if all(c.passed for c in comparisons):
            result.rows += [(f"random #{len(result.rows) // max(len(sides), 1)}", c) for c in comparisons]
            return
        raise CaseDiverged(case, comparisons)

    report: list[str] = []
    with with_reporter(report.append):
        try:
            hypothesis_seed(seed)(run)()
        except CaseDiverged as diverged:
            result.passed = False
            case = diverged.case
            first = next(c for c in diverged.comparisons if not c.passed)
            directory = repro_dir or tempfile.mkdtemp(prefix="led-parity-repro-")
            result.reproducer = save_reproducer(
                directory, case.config, case.architecture, case.weights(), case.inputs, first.actual,
                first.expected, first, seed=seed, weight_seed=case.weight_seed, weight_std=case.weight_std)
            result.rows += [("shrunk counterexample", c) for c in diverged.comparisons]
            notes = [str(n) for n in getattr(diverged, "__notes__", [])]
            result.failure = "\n".join([
                f"mismatch: {diverged} (seed {seed})",
                f"  case: {case.describe()}",
                text_table(first, only_failures=True),
                f"  reproducer: {result.reproducer}  (python -m parity replay {os.path.dirname(result.reproducer)})",
                # the case itself is saved above; of hypothesis' notes keep the replay decorator
                *[f"  {line.strip()}" for line in report + notes if "reproduce_failure" in line],
            ])
    bar.close()
    return result
