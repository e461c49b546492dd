"""Tie-aware generation parity: identical sequences pass, a tie is reported as a tie, anything else is a
MISMATCH with the step, both candidates and the reference margin."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parity.harness.generation import (
    BeamRule,
    beam_rule,
    compare_beam_scores,
    compare_sequences,
    ended,
    first_difference,
    generation_parity,
    log_softmax,
    reference_scorer,
    sequence_logprobs,
    tie_budget,
)
from parity.harness.implementations import Side
from parity.harness.strategies import model_cases, profile_examples

VOCAB = 6


def table_scorer(logits_by_prefix: dict):
    """A reference whose next-token logits depend only on the prefix length (independent of any model)."""
    return lambda row, prefix: logits_by_prefix[len(prefix)]


def test_first_difference():
    assert first_difference(np.array([2, 3, 4]), np.array([2, 3, 4]), pad=1) is None
    assert first_difference(np.array([2, 3, 4]), np.array([2, 5, 4]), pad=1) == 1
    assert first_difference(np.array([2, 3]), np.array([2, 3, 4]), pad=1) == 2


@given(st.lists(st.floats(-5, 5), min_size=VOCAB, max_size=VOCAB))
def test_margin_is_the_reference_log_prob_gap(logits):
    logits = np.array(logits)
    expected, actual = np.array([[2, 0, 3]]), np.array([[2, 0, 4]])
    result = compare_sequences(actual, expected, table_scorer({2: logits}), tie_budget("float32", "float64"), pad=1)
    (d,) = result.divergences
    assert (d.row, d.step, d.expected_token, d.actual_token) == (0, 2, 3, 4)
    # log p(a) - log p(b) == logit(a) - logit(b): an independent derivation of the margin
    assert d.margin == pytest.approx(logits[3] - logits[4], abs=1e-12)
    assert d.tie == (abs(logits[3] - logits[4]) <= 2e-4 * max(1.0, np.abs(logits).max()))
    assert result.status == ("tie" if d.tie else "MISMATCH") and result.passed == d.tie


def test_identical_tie_and_mismatch_statuses():
    tied = np.zeros(VOCAB)
    clear = np.array([0.0, 0, 0, 5.0, 0, 0])
    same = compare_sequences(np.array([[2, 3]]), np.array([[2, 3]]), table_scorer({}), 1e-4, pad=1)
    assert same.identical and same.status == "identical" and same.passed
    tie = compare_sequences(np.array([[2, 4]]), np.array([[2, 3]]), table_scorer({1: tied}), 1e-4, pad=1)
    assert tie.status == "tie" and tie.passed and not tie.identical and "-> tie" in tie.describe()
    bad = compare_sequences(np.array([[2, 4]]), np.array([[2, 3]]), table_scorer({1: clear}), 1e-4, pad=1)
    assert bad.status == "MISMATCH" and not bad.passed
    assert "step 1: expected token 3, got 4" in bad.describe() and "MISMATCH" in bad.describe()
    assert log_softmax(clear)[3] - log_softmax(clear)[4] == pytest.approx(5.0)


@settings(max_examples=profile_examples(2))
@given(model_cases(hf_compatible=True, with_head_masks=False), st.sampled_from([1, 2]))
def test_led_ref_generation_matches_hf(case, beams):
    """led_ref against HF's generate (an independent implementation): identical or an honest tie."""
    _, (result,) = generation_parity(case.config, case.weights(), case.inputs, [Side("hf", None, "float32")],
                                     Side("ref"), max_new_tokens=4, num_beams=beams)
    assert result.passed, result.describe()


@settings(max_examples=1)
@given(model_cases(with_head_masks=False))
def test_a_changed_token_is_a_mismatch(case):
    original = Side.generate

    def wrong(self, model, inputs, **kw):  # the "actual" side swaps its last token for another one
        ids = original(self, model, inputs, **kw)
        if self.backend == "wrong":
            ids[:, -1] = (ids[:, -1] + 1) % case.config.vocab_size
        return ids

    with mock.patch.object(Side, "generate", wrong):
        expected, (result,) = generation_parity(case.config, case.weights(), case.inputs,
                                                [Side("ref", "wrong", "float64")], Side("ref"), max_new_tokens=3)
    steps = {d.step for d in result.divergences}
    assert steps == {expected.shape[1] - 1} and len(result.divergences) == expected.shape[0]
    assert all(np.isfinite(d.margin) for d in result.divergences)
    assert result.status in ("MISMATCH", "tie")
    if result.status == "MISMATCH":
        assert "MISMATCH" in result.describe()


def prefix_scorer(logits_by_prefix: dict):
    """A reference whose next-token logits are looked up by the whole prefix (a tiny search tree)."""
    return lambda row, prefix: np.asarray(logits_by_prefix[tuple(int(t) for t in prefix)], dtype=np.float64)


def logp(logits, token):
    """log softmax(logits)[token], written out (an independent derivation of the scorer's numbers)."""
    logits = np.asarray(logits, dtype=np.float64)
    return float(logits[token] - np.log(np.sum(np.exp(logits))))


def two_beams(continuation: float):
    """Start token 2; the reference prefers token 3 at step 1 overall, though token 4 is the likelier first token;
    both then end with token 5, after 4 with logit `continuation`."""
    first = [-2.0, -2.0, -2.0, 0.0, 0.5, -2.0]
    after_3 = [0.0, 0.0, 0.0, 0.0, 0.0, 3.0]
    after_4 = [0.0, 0.0, 0.0, 0.0, 0.0, continuation]
    table = {(2,): first, (2, 3): after_3, (2, 4): after_4}
    expected_sum = logp(first, 3) + logp(after_3, 5)
    actual_sum = logp(first, 4) + logp(after_4, 5)
    scales = [max(1.0, np.abs(x).max()) for x in (first, after_3, first, after_4)]
    return prefix_scorer(table), expected_sum / 2, actual_sum / 2, scales


@pytest.mark.parametrize("continuation, verdict", [(1.5, "beam tie"), (0.5, "MISMATCH")])
def test_a_beam_swap_is_judged_on_both_sequences_under_the_reference(continuation, verdict):
    """The first differing token is no tie (the side took the likelier one), so only the two sequences' beam
    scores under the reference can explain it: within the summed per-step tolerances a beam tie, else not."""
    scorer, expected_score, actual_score, scales = two_beams(continuation)
    budget = 0.01
    beam = BeamRule(length_penalty=1.0, eos_token_id=None)
    result = compare_sequences(np.array([[2, 4, 5]]), np.array([[2, 3, 5]]), scorer, budget, pad=0, beam=beam)
    (d,) = result.divergences
    assert not d.token_tie and d.margin == pytest.approx(-0.5, abs=1e-12)
    assert d.sequence.expected_score == pytest.approx(expected_score, abs=1e-12)
    assert d.sequence.actual_score == pytest.approx(actual_score, abs=1e-12)
    # every step from the divergence on, on both sequences (two generated tokens each, so / 2); equal lengths
    # add nothing for the shared prefix
    assert d.sequence.tolerance == pytest.approx(budget * sum(scales) / 2, abs=1e-12)
    within = abs(expected_score - actual_score) <= budget * sum(scales) / 2
    assert within == (verdict == "beam tie")
    assert result.passed == within and result.status == ("tie" if within else "MISMATCH")
    assert f"-> {verdict}" in result.describe()
    # without the beam rule the same rows are a token-level mismatch
    plain = compare_sequences(np.array([[2, 4, 5]]), np.array([[2, 3, 5]]), scorer, budget, pad=0)
    assert plain.status == "MISMATCH" and plain.divergences[0].sequence is None


def test_a_beam_tie_holds_the_sides_own_score_to_the_references_score_of_its_sequence():
    scorer, expected_score, actual_score, scales = two_beams(1.5)
    budget = 0.01
    beam = BeamRule(length_penalty=1.0, eos_token_id=None)
    actual, expected = np.array([[2, 4, 5]]), np.array([[2, 3, 5]])
    own_slack = budget * (scales[2] + scales[3]) / 2

    def judged(side_score, reference_score=expected_score):
        result = compare_sequences(actual, expected, scorer, budget, pad=0, beam=beam,
                                   expected_scores=np.array([reference_score]))
        compare_beam_scores(result, actual, expected, np.array([side_score]), np.array([reference_score]), budget,
                            pad=0)
        return result

    good = judged(actual_score + 0.9 * own_slack)
    assert good.passed and good.scores_compared == 1 and not good.score_divergences
    bad = judged(actual_score + 1.1 * own_slack)
    (s,) = bad.score_divergences
    assert not bad.passed and not s.identical_tokens and s.tolerance == pytest.approx(own_slack)
    assert "beam tie, but the side's beam score of its own sequence is" in bad.describe()
    # a reference score that is not the scored sum (a processor changed the values): the side's is not checked
    unchecked = judged(actual_score + 1.1 * own_slack, reference_score=expected_score + 0.5)
    assert unchecked.passed and unchecked.scores_compared == 0


def test_sequences_of_different_lengths_also_count_the_shared_prefix():
    """Expected ends (eos 1) after 2 generated tokens, actual after 3: the prefix's errors are the same numbers on
    both, so only the difference of the two normalisations (2 ** lp and 3 ** lp) of them counts."""
    first = [0.0, -1.0, 1.5, 0.0, 0.0, 0.0]
    table = {(2,): first, (2, 2): [0.0, 2.0, 0.0, 0.0, 0.5, 0.0], (2, 2, 4): [0.0, 1.0, 0.0, 0.0, 0.0, 0.0]}
    scorer, budget, lp = prefix_scorer(table), 0.05, 2.0
    actual, expected = np.array([[2, 2, 4, 1]]), np.array([[2, 2, 1, 0]])  # expected padded with 0 after its eos
    result = compare_sequences(actual, expected, scorer, budget, pad=0, beam=BeamRule(lp, eos_token_id=1))
    (d,) = result.divergences
    assert d.step == 2
    e = [logp(first, 2), logp(table[(2, 2)], 1)]
    a = [logp(first, 2), logp(table[(2, 2)], 4), logp(table[(2, 2, 4)], 1)]
    assert d.sequence.expected_score == pytest.approx(sum(e) / 2 ** lp, abs=1e-12)
    assert d.sequence.actual_score == pytest.approx(sum(a) / 3 ** lp, abs=1e-12)
    after = budget * (2.0 / 2 ** lp + (2.0 + 1.0) / 3 ** lp)
    shared = budget * 1.5 * abs(1 / 2 ** lp - 1 / 3 ** lp)
    assert d.sequence.tolerance == pytest.approx(after + shared, abs=1e-12)


@settings(max_examples=profile_examples(2))
@given(model_cases(with_head_masks=False))
def test_the_scored_sum_is_the_references_own_beam_score(case):
    """led_ref's beam search reports sum of log-probs / generated ** length_penalty; scoring its sequences
    through one teacher-forced call per row gives the same numbers, so a side's score can be held to them."""
    ref = Side("ref")
    model = ref.build(case.config, case.weights(), "LEDForConditionalGeneration")
    kwargs = dict(max_new_tokens=4, num_beams=2, return_dict_in_generate=True, output_scores=True)
    tokens, scores = ref.generate(model, case.inputs, **kwargs)
    scorer = reference_scorer(ref, model, case.inputs)
    rule = beam_rule(case.config, model, **kwargs)
    for row in range(tokens.shape[0]):
        sequence = ended(tokens[row], rule.eos_token_id, case.config.pad_token_id)
        logprobs, _ = sequence_logprobs(scorer, row, sequence)
        norm = float(len(sequence) - 1) ** rule.length_penalty
        assert logprobs.sum() / norm == pytest.approx(float(scores[row]), rel=1e-9, abs=1e-9)
