"""Every deterministic HF generate option, alone and combined, in both packages against HF 4.57: the same
tokens, and with return_dict_in_generate=True, output_scores=True the same beam scores (sequences_scores)
and per-step processed scores. Options reach generate as arguments or through generation_config=."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hf_oracle import hf_model, transformers
from hypothesis import assume, given
from hypothesis import strategies as st

import led_ref
import led_torch
from led_ref.generation import UNREACHABLE
from led_ref.init import random_weights
from parity.harness.strategies import encoder_inputs, generation_options, led_configs

pytestmark = pytest.mark.hf
torch.set_num_threads(1)


@st.composite
def cases(draw):
    config = draw(led_configs(hf_compatible=True))
    assume(config.d_model > 2)
    config = dataclasses.replace(config, vocab_size=max(config.vocab_size, 16), max_decoder_position_embeddings=16)
    weights = random_weights(config, seed=draw(st.integers(0, 999)), std=0.5)
    weights["final_logits_bias"][0, config.eos_token_id] += draw(st.sampled_from([0.0, 1.5, 3.0]))
    inputs = draw(encoder_inputs(config, max_batch=2))
    options = draw(generation_options(config))
    return config, weights, inputs, options, draw(st.sampled_from(["arguments", "dict", "object"]))


def hf_generate(config, weights, inputs, options):
    model = hf_model(config, weights, "LEDForConditionalGeneration", torch.float64)
    # torch's default dtype stays float32 here: HF 4.57's bad-words processor fails under a float64 default
    with torch.no_grad():
        return model.generate(**{k: torch.as_tensor(v) for k, v in inputs.items()}, do_sample=False,
                              return_dict_in_generate=True, output_scores=True, **options)


def passing(options: dict, style: str) -> dict:
    """The options as generate arguments, as a generation_config dict, or as transformers' object."""
    if style == "arguments":
        return dict(options)
    if style == "dict":
        return {"generation_config": dict(options)}
    return {"generation_config": transformers.GenerationConfig(**options)}


@given(cases())
def test_generate_options_match_hf(case):
    assert_generate_matches_hf(*case)


def test_beams_that_must_end_at_once_stop_as_in_hf():
    # A forced first token that is eos ends every beam at step one, including HF's placeholder beams (scored
    # -1e9); a beam that runs on past its end keeps that push, so decoding stops there (found by seed 367186822).
    config, weights, inputs = _beam_case()
    for returned in (1, 2):
        options = {"num_beams": 2, "num_return_sequences": returned, "max_length": 4,
                   "forced_bos_token_id": config.eos_token_id, "forced_eos_token_id": 0}
        assert_generate_matches_hf(config, weights, inputs, options, "arguments")


def assert_generate_matches_hf(config, weights, inputs, options, style):
    """Tokens, beam scores and per-step processed scores of both packages against HF's."""
    expected = hf_generate(config, weights, inputs, options)
    flags = dict(return_dict_in_generate=True, output_scores=True)
    spec = led_ref.LEDForConditionalGeneration(config, weights).generate(**inputs, **passing(options, style),
                                                                         **flags)
    fast_model = led_torch.LEDForConditionalGeneration.from_weights(config, weights, dtype=torch.float64)
    fast = fast_model.generate(**{k: torch.as_tensor(v) for k, v in inputs.items()}, **passing(options, style),
                               **flags)
    tokens = expected.sequences.numpy()
    # A returned beam scored -1e9 comes from HF's never-expanded beams (all but one token forced at the first
    # step): it ties exactly with HF's placeholder hypotheses, and torch.topk's order among equal values picks
    # one (it differs between torch dtypes). Such rows are compared by score only.
    sentinel = np.zeros(len(tokens), dtype=bool)
    if options["num_beams"] > 1:
        sentinel = expected.sequences_scores.numpy() <= UNREACHABLE / 2
    for name, out in (("led_ref", spec), ("led_torch", fast)):
        got = np.asarray(out.sequences if name == "led_ref" else out.sequences.numpy())
        if sentinel.any():
            width = max(got.shape[1], tokens.shape[1])
            fill = config.pad_token_id
            same = np.array_equal(*(np.pad(x, ((0, 0), (0, width - x.shape[1])), constant_values=fill)[~sentinel]
                                    for x in (got, tokens)))
        else:
            same = got.shape == tokens.shape and np.array_equal(got, tokens)
        assert same, f"{name} {got.tolist()} != HF {tokens.tolist()}"
        if options["num_beams"] > 1:
            theirs = expected.sequences_scores.numpy()
            ours = np.asarray(out.sequences_scores if name == "led_ref" else out.sequences_scores.numpy())
            # A sentinel row is an impossible beam on both sides; its exact score is HF's unnormalised
            # placeholder (-1e9) there and the length-penalised sentinel here (e.g. -2e9 at length_penalty -1).
            assert (ours[sentinel] <= UNREACHABLE / 2).all(), f"{name} sequences_scores {ours} (sentinel rows)"
            np.testing.assert_allclose(ours[~sentinel], theirs[~sentinel], rtol=1e-5, atol=1e-5,
                                       err_msg=f"{name} sequences_scores")
        assert len(out.scores) == len(expected.scores)
        for step, (ours, theirs) in enumerate(zip(out.scores, expected.scores, strict=True)):
            ours = np.asarray(ours if name == "led_ref" else ours.numpy())
            theirs = theirs.numpy()
            assert np.array_equal(np.isneginf(ours), np.isneginf(theirs)), f"{name} banned tokens, step {step}"
            finite = np.isfinite(theirs)
            np.testing.assert_allclose(ours[finite], theirs[finite], rtol=1e-5, atol=1e-5,
                                       err_msg=f"{name} scores, step {step}")


def test_sampling_is_refused_by_name():
    config = led_ref.LEDConfig(vocab_size=16, d_model=4, encoder_layers=1, decoder_layers=1,
                               encoder_attention_heads=1, decoder_attention_heads=1, encoder_ffn_dim=4,
                               decoder_ffn_dim=4, attention_window=2, max_encoder_position_embeddings=8,
                               max_decoder_position_embeddings=8)
    ids = np.array([[0, 4, 5, 2]])
    with pytest.raises(ValueError, match="do_sample=True is not supported"):
        led_ref.LEDForConditionalGeneration(config).generate(ids, do_sample=True)
    with pytest.raises(ValueError, match="do_sample=True is not supported"):
        led_torch.LEDForConditionalGeneration(config).generate(torch.as_tensor(ids), do_sample=True)


def _beam_case():
    config = led_ref.LEDConfig(vocab_size=24, d_model=8, encoder_layers=1, decoder_layers=1,
                               encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=8,
                               decoder_ffn_dim=8, attention_window=4, max_encoder_position_embeddings=16,
                               max_decoder_position_embeddings=16)
    weights = random_weights(config, seed=7, std=0.5)
    ids = np.array([[0, 5, 9, 12, 7, 2], [0, 17, 4, 2, 1, 1]])
    inputs = {"input_ids": ids, "attention_mask": (ids != 1).astype(np.int64),
              "global_attention_mask": np.eye(1, 6, dtype=np.int64).repeat(2, 0)}
    return config, weights, inputs


def test_harness_compares_beam_scores_against_hf():
    from parity.harness.generation import generation_parity
    from parity.harness.implementations import Side

    config, weights, inputs = _beam_case()
    sides = [Side("hf", None, "float64"), Side("torch", "banded", "float64")]
    _, results = generation_parity(config, weights, inputs, sides, Side("ref"), max_new_tokens=5, num_beams=3,
                                   num_return_sequences=2)
    for result in results:
        assert result.identical, result.describe()
        assert result.scores_compared == 4  # 2 sources x 2 returned beams, each score checked


def test_harness_reports_a_wrong_beam_score():
    from unittest import mock

    from parity.harness.generation import generation_parity
    from parity.harness.implementations import Side

    config, weights, inputs = _beam_case()
    original = Side.generate

    def off_by_a_little(self, model, inputs, **kw):  # right tokens, beam score of row 1 off by 1e-3
        out = original(self, model, inputs, **kw)
        if self.backend == "wrong":
            tokens, scores = out
            scores = scores.copy()
            scores[1] += 1e-3
            return tokens, scores
        return out

    with mock.patch.object(Side, "generate", off_by_a_little):
        _, (result,) = generation_parity(config, weights, inputs, [Side("ref", "wrong", "float64")], Side("ref"),
                                         max_new_tokens=5, num_beams=2)
    assert not result.divergences and [d.row for d in result.score_divergences] == [1]
    assert result.status == "MISMATCH" and "identical tokens but beam score" in result.describe()
