"""Tie-aware generation parity: generated token ids must be identical, and a difference is explained.

Where two sequences differ, the report gives the row, the first differing step, the two candidate tokens,
and their log-probability margin under the REFERENCE model (led_ref), given the common prefix:

    margin = log p_ref(expected token | prefix) - log p_ref(actual token | prefix)

Only a margin within the tie tolerance is called a tie, and a tie is reported as such ("tie"), never as
"identical". The tie tolerance is what two correct implementations may disagree by on a log-probability:
twice the logits budget of the dtype pair, scaled like the comparison (by max(1, max|logits|)).
Beam search keeps whole sequences, so a near-equal pair of beams can swap while the first differing token is
not a tie at all (the side's choice may even be the more likely token there, the reference's beam winning on
what follows). A divergence that is not a token-level tie is therefore also judged as a sequence: both rows'
sequences are scored under the reference (sum of log-probs / generated tokens ** length_penalty, the beam
score), and their difference must be within what the side's per-step errors can move it, the step's tie
tolerance summed over every step after the divergence, on both sequences (and, for sequences of different
lengths, over the common prefix times the difference of the two normalisations). Such a divergence is a
"beam tie". Beam search is also compared on its scores: every row with identical tokens must have the same
`sequences_scores` within the tie budget times max(1, |score|) times the number of generated tokens (each
step's log-probability may be off by one budget), and a beam tie's own score must match the reference's score
of that sequence within its per-step tolerances summed. The budget is at least four float32 epsilons: HF and
led_torch keep beam scores in float32 whatever the model's dtype.
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
class SequenceMargin:
    """Two beam-search sequences scored under the reference: their beam scores, the slack the side's per-step
    errors allow between them, and the slack of the actual sequence's own score (its per-step tolerances summed,
    normalised). `checks_scores`: the reference's own beam score of its sequence is the scored sum, so the
    side's reported score can be held to this sequence score (false where a processor changes the values)."""

    expected_score: float
    actual_score: float
    tolerance: float
    actual_tolerance: float
    checks_scores: bool = True

    @property
    def within(self) -> bool:
        return abs(self.expected_score - self.actual_score) <= self.tolerance


@dataclass
class TokenDivergence:
    row: int
    step: int
    expected_token: int
    actual_token: int
    margin: float
    tolerance: float
    sequence: SequenceMargin | None = None  # beam search: both sequences scored under the reference

    @property
    def token_tie(self) -> bool:
        return abs(self.margin) <= self.tolerance

    @property
    def tie(self) -> bool:
        return self.token_tie or (self.sequence is not None and self.sequence.within)

    def describe(self) -> str:
        text = (f"row {self.row} step {self.step}: expected token {self.expected_token}, got {self.actual_token}; "
                f"reference log-prob margin {self.margin:.3e} (tie tolerance {self.tolerance:.1e})")
        if self.token_tie or self.sequence is None:
            return f"{text} -> {'tie' if self.token_tie else 'MISMATCH'}"
        seq = self.sequence
        return (f"{text}; beam scores under the reference: expected sequence {seq.expected_score:.6g}, actual "
                f"{seq.actual_score:.6g} (|difference| {abs(seq.expected_score - seq.actual_score):.3e}, tolerance "
                f"{seq.tolerance:.1e}) -> {'beam tie' if seq.within else 'MISMATCH'}")

    def to_dict(self) -> dict:
        out = {**self.__dict__, "tie": self.tie}
        out["sequence"] = None if self.sequence is None else {**self.sequence.__dict__, "within": self.sequence.within}
        return out


@dataclass(frozen=True)
class BeamRule:
    """What scoring a beam-search sequence needs: the length penalty of its beam score and where it ends."""

    length_penalty: float
    eos_token_id: int | None


def beam_rule(config, model=None, **generate_kwargs) -> BeamRule | None:
    """The BeamRule of a generate call with these arguments (settings resolved as `generate` resolves them,
    the model's own generation config included), or None for greedy search."""
    from led_ref.io.generation_settings import resolve

    s = resolve(config, getattr(model, "generation_config", None), None, **generate_kwargs)
    return BeamRule(s.length_penalty, s.eos_token_id) if s.num_beams > 1 else None


@dataclass
class ScoreDivergence:
    """A beam-search row whose sequences_scores differ from the reference's by more than the budget: with
    identical tokens, the reference's own score; after a beam tie, the reference's score of the side's sequence."""

    row: int
    expected_score: float
    actual_score: float
    tolerance: float
    identical_tokens: bool = True

    def describe(self) -> str:
        what = "identical tokens but beam score" if self.identical_tokens else \
            "beam tie, but the side's beam score of its own sequence is"
        return (f"row {self.row}: {what} {self.actual_score:.9g}, expected {self.expected_score:.9g} "
                f"(|difference| {abs(self.actual_score - self.expected_score):.3e} > tolerance {self.tolerance:.1e}) "
                f"-> MISMATCH")

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
    """Log-probabilities over the last axis (one step's logits, or one row per step)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def first_difference(a: np.ndarray, b: np.ndarray, pad: int) -> int | None:
    """First index where two 1-D token sequences differ (the shorter padded with `pad`), or None."""
    length = max(len(a), len(b))
    a = np.concatenate([a, np.full(length - len(a), pad)])
    b = np.concatenate([b, np.full(length - len(b), pad)])
    diff = np.flatnonzero(a != b)
    return int(diff[0]) if diff.size else None


def compare_sequences(actual: np.ndarray, expected: np.ndarray, scorer: Scorer, tie_budget: float, pad: int,
                      actual_name: str = "actual", expected_name: str = "expected", beam: BeamRule | None = None,
                      expected_scores: np.ndarray | None = None) -> GenerationComparison:
    """Compare (rows, length) token ids; each differing row is scored with the reference `scorer`.

    `tie_budget` is relative: the tie tolerance of a step is tie_budget * max(1, max|logits|). `beam`: the
    sequences come from beam search, and a divergence that is not a token-level tie is judged as a sequence
    (`sequence_margin`); `expected_scores`, the reference's own beam scores, tell whether the scored sums are
    its beam scores (no processor changed the values), which lets `compare_beam_scores` check the side's.
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
        divergence = TokenDivergence(row, step, candidates[0], candidates[1],
                                     float(logp[candidates[0]] - logp[candidates[1]]), tie_budget * scale)
        if beam is not None and not divergence.token_tie and step >= 1:  # step 0: the start tokens differ
            own = None if expected_scores is None else float(expected_scores[row])
            divergence.sequence = sequence_margin(scorer, row, actual[row], expected[row], step, tie_budget, pad,
                                                  beam, own)
        result.divergences.append(divergence)
    return result


def ended(tokens: np.ndarray, eos: int | None, pad: int) -> np.ndarray:
    """A generated row cut where it ends: through its first end-of-sequence token after the start token, else
    without trailing padding (a row that ran to the length limit)."""
    tokens = np.asarray(tokens)
    if eos is not None:
        ends = np.flatnonzero(tokens[1:] == eos)
        if ends.size:
            return tokens[:ends[0] + 2]
    last = len(tokens)
    while last > 1 and tokens[last - 1] == pad:
        last -= 1
    return tokens[:last]


def sequence_logprobs(scorer: Scorer, row: int, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per generated token t >= 1: log p_ref(tokens[t] | tokens[:t]) and the step's scale max(1, max|logits|).
    One teacher-forced call where the scorer offers `positions` (every position's logits), else one per step."""
    positions = getattr(scorer, "positions", None)
    if positions is not None:
        logits = np.asarray(positions(row, tokens[:-1]), dtype=np.float64)
    else:
        logits = np.stack([np.asarray(scorer(row, tokens[:t]), dtype=np.float64) for t in range(1, len(tokens))])
    chosen = log_softmax(logits)[np.arange(len(tokens) - 1), tokens[1:]]
    return chosen, np.maximum(1.0, np.abs(logits).max(axis=-1))


def sequence_margin(scorer: Scorer, row: int, actual: np.ndarray, expected: np.ndarray, step: int,
                    tie_budget: float, pad: int, beam: BeamRule, expected_own_score: float | None) -> SequenceMargin:
    """Both sequences' beam scores under the reference, and the slack between them that the side's per-step
    errors allow (each step's log-prob may be off by its tie tolerance): the steps after the divergence on both
    sequences, plus the common prefix's where the two lengths normalise differently (the prefix's errors are
    the same numbers on both, so only the difference of the normalisations counts)."""
    sequences = [ended(x, beam.eos_token_id, pad) for x in (expected, actual)]
    scored = [sequence_logprobs(scorer, row, x) for x in sequences]
    norms = [float(max(len(x) - 1, 1)) ** beam.length_penalty for x in sequences]
    scores = [float(logp.sum()) / norm for (logp, _), norm in zip(scored, norms, strict=True)]
    prefix = step - 1  # generated tokens the two share (token 0 is the start token)
    after = sum(float(scale[prefix:].sum()) * tie_budget / norm for (_, scale), norm in zip(scored, norms,
                                                                                           strict=True))
    shared = float(scored[0][1][:prefix].sum()) * tie_budget * abs(1 / norms[0] - 1 / norms[1])
    own_slack = float(scored[1][1].sum()) * tie_budget / norms[1]
    checks = expected_own_score is not None and \
        abs(expected_own_score - scores[0]) <= max(1e-6 * max(1.0, abs(scores[0])), FLOAT32_SCORE_BUDGET)
    return SequenceMargin(scores[0], scores[1], after + shared, own_slack, checks)


def compare_beam_scores(result: GenerationComparison, actual_tokens: np.ndarray, expected_tokens: np.ndarray,
                        actual_scores: np.ndarray, expected_scores: np.ndarray, budget: float, pad: int) -> None:
    """Add a ScoreDivergence to `result` for every row with identical tokens but different beam scores, and for
    every beam tie whose side's score of its own sequence is off the reference's score of it (where that score
    is the beam score: `SequenceMargin.checks_scores`)."""
    for row in range(expected_tokens.shape[0]):
        if first_difference(actual_tokens[row], expected_tokens[row], pad) is not None:
            continue  # explained (or not) by the token comparison; a beam tie's score is checked below
        expected, actual = float(expected_scores[row]), float(actual_scores[row])
        generated = max(1, expected_tokens.shape[1] - 1)
        tolerance = max(budget, FLOAT32_SCORE_BUDGET) * max(1.0, abs(expected)) * generated
        result.scores_compared += 1
        if not abs(actual - expected) <= tolerance:
            result.score_divergences.append(ScoreDivergence(row, expected, actual, tolerance))
    for divergence in result.divergences:
        seq = divergence.sequence
        if seq is None or not seq.within or not seq.checks_scores:
            continue
        actual = float(actual_scores[divergence.row])
        tolerance = max(seq.actual_tolerance, FLOAT32_SCORE_BUDGET * max(1.0, abs(seq.actual_score)))
        result.scores_compared += 1
        if not abs(actual - seq.actual_score) <= tolerance:
            result.score_divergences.append(ScoreDivergence(divergence.row, seq.actual_score, actual, tolerance,
                                                            identical_tokens=False))


def compare_generation(actual: np.ndarray, expected: np.ndarray, scorer: Scorer, tie_budget: float, pad: int,
                       actual_name: str, expected_name: str, beam: BeamRule | None = None,
                       actual_scores: np.ndarray | None = None,
                       expected_scores: np.ndarray | None = None) -> GenerationComparison:
    """One side's whole tie-aware verdict: `compare_sequences` (beam ties with `beam`), then, where both sides'
    beam scores are given, `compare_beam_scores`."""
    result = compare_sequences(actual, expected, scorer, tie_budget, pad, actual_name, expected_name, beam=beam,
                               expected_scores=expected_scores)
    if actual_scores is not None and expected_scores is not None:
        compare_beam_scores(result, actual, expected, actual_scores, expected_scores, tie_budget, pad)
    return result


def tie_budget(actual_dtype, expected_dtype) -> float:
    """Twice the logits budget of the pair: each side may be off by one budget."""
    return 2 * tolerance(actual_dtype, expected_dtype, "logits")


class TeacherForcedScorer:
    """A Scorer (row, prefix) -> the next token's logits, whose `positions(row, tokens)` gives the logits after
    every position of `tokens` from the same single forward (how `sequence_logprobs` scores a whole sequence)."""

    def __init__(self, logits: Callable[[int, np.ndarray], np.ndarray]):
        self.positions = logits  # (row, tokens (t,)) -> logits (t, vocab)

    def __call__(self, row: int, prefix: np.ndarray) -> np.ndarray:
        return self.positions(row, prefix)[-1]


def reference_scorer(side, model, inputs: dict, rows_per_input: int = 1) -> Scorer:
    """Scorer from a reference model: next-token logits of row `row` given its decoder prefix."""
    encoder_keys = ("input_ids", "attention_mask", "global_attention_mask")

    def logits(row: int, tokens: np.ndarray) -> np.ndarray:
        source = row // rows_per_input
        one = {k: np.asarray(inputs[k])[source:source + 1] for k in encoder_keys if inputs.get(k) is not None}
        one["decoder_input_ids"] = np.asarray(tokens, dtype=np.int64)[None, :]
        out = side.forward(model, one, output_attentions=False, output_hidden_states=False)
        return to_numpy(out.logits)[0]

    return TeacherForcedScorer(logits)


def crashed(side, reference, who: str, err: Exception) -> GenerationComparison:
    """A MISMATCH row (step -1) for a generation that raised; `who` names the side that did."""
    failed = GenerationComparison(side.label, reference.label, [TokenDivergence(-1, -1, -1, -1, float("inf"), 0.0)])
    failed.actual = f"{who} ({type(err).__name__}: {err})"
    return failed


def generation_parity(config, weights: dict, inputs: dict, sides, reference, **generate_kwargs):
    """Generate with `reference` and every side; compare each to the reference, tie-aware, and for beam
    search (num_beams > 1) also as sequences (beam ties) and by their beam scores.

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
    beam = beam_rule(config, ref_model, **generate_kwargs)
    results = []
    for side in sides:
        try:
            actual = side.generate(side.build(config, weights, architecture), inputs, **generate_kwargs)
        except Exception as err:  # noqa: BLE001 - a crash is reported as a mismatch
            results.append(crashed(side, reference, side.label, err))
            continue
        actual, actual_scores = actual if beams > 1 else (actual, None)
        results.append(compare_generation(actual, expected, scorer, tie_budget(side.dtype, reference.dtype),
                                          config.pad_token_id, side.label, reference.label, beam, actual_scores,
                                          expected_scores))
    return expected, results
