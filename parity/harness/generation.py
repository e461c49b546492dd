"""Tie-aware generation parity: generated token ids must be identical, and a difference is explained.

Where two sequences differ, the report gives the row, the first differing step, the two candidate tokens,
and their log-probability margin under the REFERENCE model (led_ref), given the common prefix:

    margin = log p_ref(expected token | prefix) - log p_ref(actual token | prefix)

Only a margin within the tie tolerance is called a tie, and a tie is reported as such ("tie"), never as
"identical". The tie tolerance is what two correct implementations may disagree by on a log-probability:
twice the logits budget of the dtype pair, scaled like the comparison (by max(1, max|logits|)).
For beam search the margin is the token-level one at the first differing step (beam scores are sums of
these, so a token-level tie is necessary for a legitimate beam divergence, not sufficient). Beam search is
also compared on its scores: every row with identical tokens must have the same `sequences_scores`
(sum of log-probs / length ** length_penalty) within the tie budget times max(1, |score|) times the
number of generated tokens (each step's log-probability may be off by one budget). The budget is at least
four float32 epsilons: HF and led_torch keep beam scores in float32 whatever the model's dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from parity.harness.compare import to_numpy
from parity.harness.tolerances import tolerance

FLOAT32_SCORE_BUDGET = 4 * float(np.finfo(np.float32).eps)  # beam scores are float32 in HF and led_torch
Scorer = Callable[[int, np.ndarray], np.ndarray]  # (row, decoder prefix (t,)) -> logits (vocab,)


@dataclass
class TokenDivergence:
    row: int
    step: int
    expected_token: int
    actual_token: int
    margin: float
    tolerance: float

    @property
    def tie(self) -> bool:
        return abs(self.margin) <= self.tolerance

    def describe(self) -> str:
        verdict = "tie" if self.tie else "MISMATCH"
        return (f"row {self.row} step {self.step}: expected token {self.expected_token}, got {self.actual_token}; "
                f"reference log-prob margin {self.margin:.3e} (tie tolerance {self.tolerance:.1e}) -> {verdict}")

    def to_dict(self) -> dict:
        return {**self.__dict__, "tie": self.tie}


@dataclass
class ScoreDivergence:
    """A beam-search row with identical tokens whose sequences_scores differ by more than the budget."""

    row: int
    expected_score: float
    actual_score: float
    tolerance: float

    def describe(self) -> str:
        return (f"row {self.row}: identical tokens but beam score {self.actual_score:.9g}, expected "
                f"{self.expected_score:.9g} (|difference| {abs(self.actual_score - self.expected_score):.3e} > "
                f"tolerance {self.tolerance:.1e}) -> MISMATCH")

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class GenerationComparison:
    actual: str
    expected: str
    divergences: list[TokenDivergence] = field(default_factory=list)
    score_divergences: list[ScoreDivergence] = field(default_factory=list)
    scores_compared: int = 0  # beam-search rows whose sequences_scores were compared

    @property
    def identical(self) -> bool:
        return not self.divergences and not self.score_divergences

    @property
    def passed(self) -> bool:
        """Identical, or every token difference a tie (reported as such by `status`), and beam scores agree."""
        return all(d.tie for d in self.divergences) and not self.score_divergences

    @property
    def status(self) -> str:
        return "identical" if self.identical else ("tie" if self.passed else "MISMATCH")

    def describe(self) -> str:
        lines = [f"generation {self.actual} vs {self.expected}: {self.status}"]
        lines += [f"  {d.describe()}" for d in self.divergences]
        lines += [f"  {d.describe()}" for d in self.score_divergences]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"actual": self.actual, "expected": self.expected, "status": self.status, "passed": self.passed,
                "divergences": [d.to_dict() for d in self.divergences],
                "score_divergences": [d.to_dict() for d in self.score_divergences],
                "scores_compared": self.scores_compared}


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max()
    return shifted - np.log(np.exp(shifted).sum())


def first_difference(a: np.ndarray, b: np.ndarray, pad: int) -> int | None:
    """First index where two 1-D token sequences differ (the shorter padded with `pad`), or None."""
    length = max(len(a), len(b))
    a = np.concatenate([a, np.full(length - len(a), pad)])
    b = np.concatenate([b, np.full(length - len(b), pad)])
    diff = np.flatnonzero(a != b)
    return int(diff[0]) if diff.size else None


def compare_sequences(actual: np.ndarray, expected: np.ndarray, scorer: Scorer, tie_budget: float, pad: int,
                      actual_name: str = "actual", expected_name: str = "expected") -> GenerationComparison:
    """Compare (rows, length) token ids; each differing row is scored with the reference `scorer`.

    `tie_budget` is relative: the tie tolerance of a step is tie_budget * max(1, max|logits|).
    """
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape[0] != expected.shape[0]:
        raise ValueError(f"actual has {actual.shape[0]} sequences, expected {expected.shape[0]}")
    result = GenerationComparison(actual_name, expected_name)
    for row in range(expected.shape[0]):
        step = first_difference(actual[row], expected[row], pad)
        if step is None:
            continue
        candidates = [int(x[row, step]) if step < x.shape[1] else pad for x in (expected, actual)]
        logits = np.asarray(scorer(row, expected[row, :step]), dtype=np.float64)
        logp = log_softmax(logits)
        scale = max(1.0, float(np.abs(logits).max()))
        result.divergences.append(TokenDivergence(row, step, candidates[0], candidates[1],
                                                  float(logp[candidates[0]] - logp[candidates[1]]),
                                                  tie_budget * scale))
    return result


def compare_beam_scores(result: GenerationComparison, actual_tokens: np.ndarray, expected_tokens: np.ndarray,
                        actual_scores: np.ndarray, expected_scores: np.ndarray, budget: float, pad: int) -> None:
    """Add a ScoreDivergence to `result` for every row with identical tokens but different beam scores."""
    for row in range(expected_tokens.shape[0]):
        if first_difference(actual_tokens[row], expected_tokens[row], pad) is not None:
            continue  # already explained (or not) by the token comparison
        expected, actual = float(expected_scores[row]), float(actual_scores[row])
        generated = max(1, expected_tokens.shape[1] - 1)
        tolerance = max(budget, FLOAT32_SCORE_BUDGET) * max(1.0, abs(expected)) * generated
        result.scores_compared += 1
        if not abs(actual - expected) <= tolerance:
            result.score_divergences.append(ScoreDivergence(row, expected, actual, tolerance))


def tie_budget(actual_dtype, expected_dtype) -> float:
    """Twice the logits budget of the pair: each side may be off by one budget."""
    return 2 * tolerance(actual_dtype, expected_dtype, "logits")


def reference_scorer(side, model, inputs: dict, rows_per_input: int = 1) -> Scorer:
    """Scorer from a reference model: next-token logits of row `row` given its decoder prefix."""
    encoder_keys = ("input_ids", "attention_mask", "global_attention_mask")

    def score(row: int, prefix: np.ndarray) -> np.ndarray:
        source = row // rows_per_input
        one = {k: np.asarray(inputs[k])[source:source + 1] for k in encoder_keys if inputs.get(k) is not None}
        one["decoder_input_ids"] = np.asarray(prefix, dtype=np.int64)[None, :]
        out = side.forward(model, one, output_attentions=False, output_hidden_states=False)
        return to_numpy(out.logits)[0, -1]

    return score


def crashed(side, reference, who: str, err: Exception) -> GenerationComparison:
    """A MISMATCH row (step -1) for a generation that raised; `who` names the side that did."""
    failed = GenerationComparison(side.label, reference.label, [TokenDivergence(-1, -1, -1, -1, float("inf"), 0.0)])
    failed.actual = f"{who} ({type(err).__name__}: {err})"
    return failed


def generation_parity(config, weights: dict, inputs: dict, sides, reference, **generate_kwargs):
    """Generate with `reference` and every side; compare each to the reference, tie-aware, and for beam
    search (num_beams > 1) also compare the beam scores of rows with identical tokens.

    Returns (reference token ids, list of GenerationComparison). A side that raises is a MISMATCH row
    with step -1.
    """
    architecture = "LEDForConditionalGeneration"
    beams = generate_kwargs.get("num_beams") or 1
    if beams > 1:
        generate_kwargs = dict(generate_kwargs, return_dict_in_generate=True, output_scores=True)
    try:
        ref_model = reference.build(config, weights, architecture)
        expected = reference.generate(ref_model, inputs, **generate_kwargs)
    except Exception as err:  # noqa: BLE001 - the reference crashing is a mismatch of every side
        return None, [crashed(side, reference, f"{reference.label} raised", err) for side in sides]
    expected, expected_scores = expected if beams > 1 else (expected, None)
    scorer = reference_scorer(reference, ref_model, inputs, generate_kwargs.get("num_return_sequences", 1))
    results = []
    for side in sides:
        try:
            actual = side.generate(side.build(config, weights, architecture), inputs, **generate_kwargs)
        except Exception as err:  # noqa: BLE001 - a crash is reported as a mismatch
            results.append(crashed(side, reference, side.label, err))
            continue
        actual, actual_scores = actual if beams > 1 else (actual, None)
        budget = tie_budget(side.dtype, reference.dtype)
        result = compare_sequences(actual, expected, scorer, budget, config.pad_token_id, side.label,
                                   reference.label)
        if expected_scores is not None and actual_scores is not None:
            compare_beam_scores(result, actual, expected, actual_scores, expected_scores, budget,
                                config.pad_token_id)
        results.append(result)
    return expected, results
