"""The task heads (sequence classification, question answering) against HF's LED and hand computations."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from led_ref import LEDConfig, LEDForQuestionAnswering, LEDForSequenceClassification
from led_ref.init import random_weights
from parity.harness.strategies import encoder_inputs, head_masks, led_configs, model_cases
from tests.hf_oracle import hf_model, scaled_error
from tests.test_ref_model import assert_matches_hf, hf_tolerance, run_hf

PROBLEMS = ("auto-int", "auto-float", "regression", "single_label_classification", "multi_label_classification")


def with_one_eos_per_row(inputs: dict, config: LEDConfig) -> dict:
    """Classification pools at eos: every row gets exactly one eos, on its last real token."""
    ids = inputs["input_ids"].copy()
    ids[ids == config.eos_token_id] = config.bos_token_id
    last = inputs["attention_mask"].shape[1] - 1 - np.argmax(inputs["attention_mask"][:, ::-1], axis=1)
    ids[np.arange(ids.shape[0]), last] = config.eos_token_id
    return {**inputs, "input_ids": ids}


def classification_labels(problem: str, config: LEDConfig, batch: int, rng) -> np.ndarray:
    if problem in ("auto-int", "single_label_classification"):
        return rng.integers(0, config.num_labels, batch)
    if problem == "regression" and config.num_labels == 1:
        return rng.standard_normal(batch)
    if problem == "multi_label_classification" or problem == "auto-float":
        return (rng.random((batch, config.num_labels)) < 0.5).astype(np.float64)
    return rng.standard_normal((batch, config.num_labels))


@given(led_configs(hf_compatible=True), st.sampled_from(PROBLEMS), st.integers(1, 3), st.data())
def test_sequence_classification_matches_hf(config, problem, num_labels, data):
    problem_type = None if problem.startswith("auto") else problem
    if problem == "auto-float" and num_labels == 1:
        num_labels = 2
    # The decoder reads the shifted input_ids, so its position table must be as long as the encoder's.
    config = dataclasses.replace(config, num_labels=num_labels, problem_type=problem_type,
                                 max_decoder_position_embeddings=config.max_encoder_position_embeddings)
    weights = random_weights(config, "LEDForSequenceClassification", seed=data.draw(st.integers(0, 99)), std=0.3)
    inputs = with_one_eos_per_row(data.draw(encoder_inputs(config)), config)
    inputs.update(data.draw(head_masks(config)))
    rng = np.random.default_rng(data.draw(st.integers(0, 99)))
    labels = classification_labels(problem, config, inputs["input_ids"].shape[0], rng)
    ours = LEDForSequenceClassification(config, weights)(**inputs, labels=labels, output_attentions=True,
                                                         output_hidden_states=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # HF deprecates the class; 4.57 still has it
        model = hf_model(config, weights, "LEDForSequenceClassification")
    theirs = run_hf(model, {**inputs, "labels": labels}, output_attentions=True, output_hidden_states=True)
    assert_matches_hf(ours, theirs, inputs)


def test_classification_pools_the_last_eos_and_applies_dense_tanh_out_proj():
    config = LEDConfig(vocab_size=20, d_model=8, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                       decoder_attention_heads=2, encoder_ffn_dim=8, decoder_ffn_dim=8, attention_window=4,
                       num_labels=3)
    model = LEDForSequenceClassification(config, seed=2)
    ids = np.array([[5, 2, 6, 2, 7], [2, 8, 9, 2, 1]])
    out = model(input_ids=ids, attention_mask=(ids != 1).astype(int))
    h = model(input_ids=ids, attention_mask=(ids != 1).astype(int), output_hidden_states=True)
    hidden = h.decoder_hidden_states[-1][[0, 1], [3, 3]]  # last eos of each row is at position 3
    w = model.weights
    expected = np.tanh(hidden @ w["classification_head.dense.weight"].T + w["classification_head.dense.bias"])
    expected = expected @ w["classification_head.out_proj.weight"].T + w["classification_head.out_proj.bias"]
    assert scaled_error(out.logits, expected) < 1e-12


def test_classification_refuses_rows_with_different_eos_counts():
    config = LEDConfig(vocab_size=20, d_model=8, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                       decoder_attention_heads=2, encoder_ffn_dim=8, decoder_ffn_dim=8, attention_window=4)
    model = LEDForSequenceClassification(config, seed=2)
    with pytest.raises(ValueError, match="same number of <eos>"):
        model(input_ids=np.array([[5, 2, 6, 2], [5, 6, 7, 2]]))
    with pytest.raises(ValueError, match="no <eos>"):
        model(input_ids=np.array([[5, 6, 7, 8]]))
    with pytest.raises(ValueError, match="input_ids"):
        model(inputs_embeds=np.zeros((1, 4, 8)), decoder_input_ids=np.array([[2, 5]]))


@given(model_cases(architectures=("LEDForQuestionAnswering",), hf_compatible=True), st.data())
def test_question_answering_matches_hf(case, data):
    inputs = {k: v for k, v in case.inputs.items() if k not in ("start_positions", "end_positions")}
    batch, length = inputs["decoder_input_ids"].shape
    # Positions past the end are clamped to `length` and ignored; keep one in range so the loss is defined.
    starts = np.array(data.draw(st.lists(st.integers(0, length + 3), min_size=batch, max_size=batch)))
    ends = np.array(data.draw(st.lists(st.integers(0, length + 3), min_size=batch, max_size=batch)))
    starts[0], ends[0] = min(starts[0], length - 1), min(ends[0], length - 1)
    weights = case.weights()
    ours = LEDForQuestionAnswering(case.config, weights)(**inputs, start_positions=starts, end_positions=ends,
                                                         output_attentions=True, output_hidden_states=True)
    theirs = run_hf(hf_model(case.config, weights, "LEDForQuestionAnswering"),
                    {**inputs, "start_positions": starts, "end_positions": ends},
                    output_attentions=True, output_hidden_states=True)
    assert_matches_hf(ours, theirs, inputs, hf_tolerance(case.weight_std))


def test_question_answering_loss_by_hand():
    config = LEDConfig(vocab_size=20, d_model=8, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                       decoder_attention_heads=2, encoder_ffn_dim=8, decoder_ffn_dim=8, attention_window=4)
    model = LEDForQuestionAnswering(config, seed=4)
    ids = np.array([[5, 6, 7, 2], [8, 9, 10, 2]])
    out = model(input_ids=ids, start_positions=np.array([[1], [9]]), end_positions=np.array([[3], [0]]))

    def ce(logits, target):
        return np.log(np.exp(logits).sum()) - logits[target]

    start = ce(out.start_logits[0], 1)  # row 1's start 9 is clamped to 4 = ignored
    end = np.mean([ce(out.end_logits[0], 3), ce(out.end_logits[1], 0)])
    assert abs(out.loss - (start + end) / 2) < 1e-12
    assert out.past_key_values is None  # positions switch the cache off, as in HF
