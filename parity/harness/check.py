"""Model-level parity: run the same weights and inputs through led_ref and other sides, compare every output.

    from parity.harness.check import run_case, check_random
    comparisons = run_case(config, "LEDForConditionalGeneration", weights, inputs, [Side.parse("torch:banded")])

`check_random` draws hypothesis cases (parity.harness.strategies.model_cases); on the first divergence hypothesis
shrinks the case, and the shrunk case is saved as a reproducer (parity.harness.report) that replays with
`python -m parity replay DIR`.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import tempfile
from dataclasses import dataclass, field

import numpy as np

from parity.harness.compare import Comparison, OutputDiff, compare_outputs
from parity.harness.generation import generation_parity
from parity.harness.hypothesis_runs import ShrinkBudget, run_seeded
from parity.harness.implementations import Side
from parity.harness.report import save_reproducer, text_table
from parity.harness.strategies import ModelCase, model_cases

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
    """Compare every side with `reference` on one (config, weights, inputs); a crash of either side is a
    divergence (so it is shrunk and saved as a reproducer, never mistaken for bad usage)."""
    try:
        expected = reference.forward(reference.build(config, weights, architecture), inputs)
    except Exception as err:  # noqa: BLE001 - the reference crashing on a valid case is a finding too
        return [failed(side, reference, f"{reference.label} raised", err) for side in sides]
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


class CaseDiverged(AssertionError):
    def __init__(self, case: ModelCase, comparisons: list[Comparison], generations: list | None = None):
        bad = [c for c in comparisons if not c.passed]
        if bad:
            what = f"{bad[0].actual} diverged from {bad[0].expected} at {bad[0].first_divergence.name}"
        else:
            what = next(g for g in generations if not g.passed).describe()
        super().__init__(what)
        self.case, self.comparisons, self.generations = case, comparisons, generations or []


@dataclass
class CheckResult:
    seed: int
    examples: int
    passed: bool = True
    rows: list[tuple[str, Comparison]] = field(default_factory=list)
    generations: list = field(default_factory=list)
    failure: str = ""
    reproducer: str | None = None

    def add(self, case_name: str, comparisons: list[Comparison], generations: list) -> None:
        self.rows += [(case_name, c) for c in comparisons]
        self.generations += [(case_name, g) for g in generations]


class Progress:
    """A progress bar on stderr through tqdm (the `progress` extra), drawn only when stderr is a terminal, so
    logs and CI output stay clean; silent when disabled, off a terminal, or without tqdm."""

    def __init__(self, total: int, label: str, enabled: bool = True, stream=None):
        self.total, self.label, self.done = max(total, 1), label, 0
        stream = stream or sys.stderr  # looked up now, not at import (pytest swaps sys.stderr)
        self.bar = None
        if enabled and getattr(stream, "isatty", lambda: False)():
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self.bar = tqdm(total=self.total, desc=label, file=stream, leave=False)

    def step(self, note: str = "") -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix_str(note[:40], refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def case_key(case: ModelCase) -> str:
    """A fingerprint of a model case (config, architecture, weight seed/std, input bytes)."""
    digest = hashlib.sha256(case.config.to_json_string().encode())
    digest.update(f"{case.architecture}/{case.weight_seed}/{case.weight_std}".encode())
    for name in sorted(case.inputs):
        digest.update(name.encode() + np.ascontiguousarray(case.inputs[name]).tobytes())
    return digest.hexdigest()


def generation_beams(weight_seed: int) -> int:
    """The beams a random case generates with: greedy or 2 beams, fixed by the case so that a replay repeats it."""
    return 1 + weight_seed % 2


def compare_case(case: ModelCase, sides: list[Side], max_new_tokens: int) -> tuple[list[Comparison], list]:
    """One model case through the reference and `sides`: every forward output, then, for the generation model
    when those agreed, `max_new_tokens` generated tokens (tie-aware, parity.harness.generation)."""
    weights = case.weights()
    comparisons = run_case(case.config, case.architecture, weights, case.inputs, sides)
    generations = []
    if case.architecture == "LEDForConditionalGeneration" and all(c.passed for c in comparisons):
        _, generations = generation_parity(case.config, weights, case.inputs, sides, REFERENCE,
                                           max_new_tokens=max_new_tokens, num_beams=generation_beams(case.weight_seed))
    return comparisons, generations


def check_random(sides: list[Side], examples: int = 10, seed: int | None = None,
                 architectures: tuple[str, ...] = ARCHITECTURES, repro_dir: str | None = None,
                 progress: bool = True, config=None, shrink_seconds: float = 60.0,
                 max_new_tokens: int = 3) -> CheckResult:
    """Hypothesis cases through reference and `sides`; the shrunk first divergence is saved as a reproducer.

    Shrinking a model case is expensive (each try builds and runs every side), and a divergence just
    above tolerance shrinks slowly: ShrinkBudget bounds it by `shrink_seconds`. LEDForConditionalGeneration
    cases also generate `max_new_tokens` on every side (greedy, or 2 beams for odd weight seeds; tie-aware,
    parity.harness.generation).
    """
    if isinstance(examples, bool) or not isinstance(examples, int) or examples < 1:
        raise ValueError(f"examples must be a positive int, got {examples!r}")
    seed = random.SystemRandom().randrange(2**32) if seed is None else int(seed)
    result = CheckResult(seed, examples)
    bar = Progress(examples, "check", progress)
    budget = ShrinkBudget(shrink_seconds)
    cases = model_cases(architectures=architectures, hf_compatible=any(s.family == "hf" for s in sides),
                        config=config, moderate_weights=any(s.dtype in ("float16", "bfloat16") for s in sides))

    def run(case: ModelCase) -> None:
        comparisons, generations = compare_case(case, sides, max_new_tokens)
        if not budget.shrinking:
            bar.step(case.architecture)
        if all(c.passed for c in comparisons) and all(g.passed for g in generations):
            result.add(f"random #{bar.done}", comparisons, generations)
            return
        raise CaseDiverged(case, comparisons, generations)

    found = run_seeded(run, cases, examples, seed, budget, key=case_key, failure=CaseDiverged)
    if found is not None:
        diverged, report = found
        record_divergence(result, diverged, repro_dir, max_new_tokens, hypothesis_lines=report)
    bar.close()
    return result


def record_divergence(result: CheckResult, diverged: CaseDiverged, repro_dir: str | None, max_new_tokens: int,
                      hypothesis_lines: list[str] = ()) -> None:
    """Save the shrunk case as a reproducer (in `repro_dir`, else a new temp folder) and fill `result`: failed,
    its rows, and the failure text (what diverged, the case, the failing outputs, how to replay)."""
    result.passed = False
    case = diverged.case
    first = next((c for c in diverged.comparisons if not c.passed), diverged.comparisons[0])
    directory = repro_dir or tempfile.mkdtemp(prefix="led-parity-repro-")
    result.reproducer = save_reproducer(
        directory, case.config, case.architecture, case.weights(), case.inputs, first.actual,
        first.expected, first, seed=result.seed, weight_seed=case.weight_seed, weight_std=case.weight_std,
        max_new_tokens=max_new_tokens, generation=[g.to_dict() for g in diverged.generations])
    result.add("shrunk counterexample", diverged.comparisons, diverged.generations)
    notes = [str(n) for n in getattr(diverged, "__notes__", [])]
    details = [text_table(c, only_failures=True) for c in diverged.comparisons if not c.passed]
    details += [g.describe() for g in diverged.generations if not g.passed]
    result.failure = "\n".join([
        f"mismatch: {diverged} (seed {result.seed})",
        f"  case: {case.describe()}",
        *details,
        f"  reproducer: {result.reproducer}  (python -m parity replay {os.path.dirname(result.reproducer)})",
        # the case itself is saved above; of hypothesis' notes keep the replay decorator
        *[f"  {line.strip()}" for line in [*hypothesis_lines, *notes] if "reproduce_failure" in line],
    ])
