"""Tie-aware generation parity: identical sequences pass, a tie is reported as a tie, anything else is a
MISMATCH with the step, both candidates and the reference margin."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parity.harness.generation import compare_sequences, first_difference, generation_parity, log_softmax, tie_budget
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
