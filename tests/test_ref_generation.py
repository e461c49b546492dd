"""Greedy and beam search against HF `generate(do_sample=False)`, token for token, and against the model's
own full forward passes.

Random weights give flat next-token distributions where float32 (HF) and float64 (here) could order two
candidates differently; the weights are drawn with a large std so the choices are decisive, and the eos
logit is boosted so that hypotheses finish early and beams run out. Where the outputs still differ, the
difference must be a tie under led_ref's own scores (`assert_identical_or_tied`): it is then recorded as a
hypothesis event ("tie"), never counted as identical. d_model = 2 is left out: a layer norm over two
numbers outputs +-1, which makes exact ties common.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import assume, event, given
from hypothesis import strategies as st

from led_ref import LEDConfig, LEDForConditionalGeneration
from led_ref.functional import log_softmax
from led_ref.generation import banned_ngram_tokens
from led_ref.init import random_weights
from led_ref.io.generation_settings import resolve as resolve_settings
from parity.harness.strategies import encoder_inputs, led_configs
from tests.hf_oracle import hf_dtype_scope, hf_model, torch


def decisive_model(config: LEDConfig, seed: int, eos_boost: float) -> tuple[LEDForConditionalGeneration, dict]:
    weights = random_weights(config, "LEDForConditionalGeneration", seed=seed, std=0.5)
    weights["final_logits_bias"][0, config.eos_token_id] += eos_boost
    return LEDForConditionalGeneration(config, weights), weights


def hf_generate(config: LEDConfig, weights: dict, inputs: dict, **kwargs) -> np.ndarray:
    model = hf_model(config, weights, "LEDForConditionalGeneration")
    with hf_dtype_scope(torch.float64):
        tensors = {k: torch.as_tensor(v) for k, v in inputs.items()}
        return model.generate(**tensors, do_sample=False, **kwargs).numpy()


TIE_TOL = 1e-6  # HF scores in float32; two candidates closer than this may come out in either order


def hypothesis_score(model, inputs: dict, row: int, sequence: np.ndarray, length_penalty: float, eos: int) -> float:
    """led_ref's beam score of one output row: sum of log-probs of the generated tokens (up to the first
    eos) / their count ** length_penalty."""
    generated = sequence[1:]
    ends = np.flatnonzero(generated == eos)
    count = int(ends[0]) + 1 if ends.size else len(generated)
    one = {k: v[row:row + 1] for k, v in inputs.items()}
    logits = model(**one, decoder_input_ids=sequence[None, :count], use_cache=False).logits[0]
    logp = log_softmax(logits, axis=-1)[np.arange(count), generated[:count]]
    return float(logp.sum()) / count**length_penalty


def assert_identical_or_tied(model, inputs: dict, ours: np.ndarray, theirs: np.ndarray, args: dict) -> None:
    """Token-identical, or every differing row is a tie: for greedy the two tokens at the first difference,
    for beams the two hypotheses' scores, are within TIE_TOL under led_ref."""
    if ours.shape == theirs.shape and np.array_equal(ours, theirs):
        return
    eos, per_input = model.config.eos_token_id, args.get("num_return_sequences", 1)
    length = max(ours.shape[1], theirs.shape[1])
    pad = model.config.pad_token_id
    ours = np.pad(ours, ((0, 0), (0, length - ours.shape[1])), constant_values=pad)
    theirs = np.pad(theirs, ((0, 0), (0, length - theirs.shape[1])), constant_values=pad)
    for row in np.flatnonzero((ours != theirs).any(axis=1)):
        source = row // per_input
        if args.get("num_beams", 1) == 1:
            step = int(np.flatnonzero(ours[row] != theirs[row])[0])
            one = {k: v[source:source + 1] for k, v in inputs.items()}
            logits = model(**one, decoder_input_ids=ours[row:row + 1, :step], use_cache=False).logits[0, -1]
            margin = abs(logits[ours[row, step]] - logits[theirs[row, step]])
        else:
            lp = args.get("length_penalty", 1.0)
            margin = abs(hypothesis_score(model, inputs, source, ours[row], lp, eos)
                         - hypothesis_score(model, inputs, source, theirs[row], lp, eos))
        assert margin < TIE_TOL, f"row {row}: ours {ours[row]} vs HF {theirs[row]}, score margin {margin:.3g}"
    event("tie between led_ref and HF (outputs differ only where scores are within 1e-6)")


@st.composite
def generation_args(draw) -> dict:
    """num_beams 1-4 with matching num_return_sequences, length rules, penalties and early stopping."""
    beams = draw(st.integers(1, 4))
    args = {"num_beams": beams}
    if beams > 1:
        args["num_return_sequences"] = draw(st.integers(1, beams))
        args["length_penalty"] = draw(st.sampled_from([1.0, 2.0, 0.0, -1.0]))
        args["early_stopping"] = draw(st.sampled_from([False, True, "never"]))
    if draw(st.booleans()):
        args["max_new_tokens"] = draw(st.integers(1, 9))
    else:
        args["max_length"] = draw(st.integers(2, 10))
    if draw(st.booleans()):
        args["min_length"] = draw(st.integers(0, 6))
    if draw(st.booleans()):
        args["no_repeat_ngram_size"] = draw(st.integers(1, 3))
    return args


@given(led_configs(hf_compatible=True), generation_args(), st.integers(0, 999), st.sampled_from([0.0, 1.5, 3.0]),
       st.data())
def test_generate_matches_hf_token_for_token(config, args, seed, eos_boost, data):
    assume(config.d_model > 2)
    config = dataclasses.replace(config, vocab_size=max(config.vocab_size, 16), max_decoder_position_embeddings=16)
    model, weights = decisive_model(config, seed, eos_boost)
    inputs = data.draw(encoder_inputs(config, max_batch=3))
    ours = model.generate(**inputs, **args)
    theirs = hf_generate(config, weights, inputs, **args)
    assert ours.dtype == np.int64
    assert_identical_or_tied(model, inputs, ours, theirs, args)


@pytest.mark.parametrize("args", [
    {},  # the config's defaults: max_length 20 (= 20 new tokens, as HF), greedy
    {"num_beams": 2},
    {"num_beams": 3, "num_return_sequences": 3, "length_penalty": 2.0},
    {"num_beams": 4, "early_stopping": True, "no_repeat_ngram_size": 2, "max_length": 12},
    {"num_beams": 3, "early_stopping": "never", "min_length": 5, "max_new_tokens": 9},
    {"num_beams": 2, "length_penalty": -1.0, "early_stopping": "never"},
    {"min_length": 4, "no_repeat_ngram_size": 1, "max_length": 10},
])
@pytest.mark.parametrize("seed", [5])
def test_generate_matches_hf_on_fixed_cases(args, seed):
    config = LEDConfig(vocab_size=24, d_model=16, encoder_layers=1, decoder_layers=2, encoder_attention_heads=2,
                       decoder_attention_heads=2, encoder_ffn_dim=24, decoder_ffn_dim=20, attention_window=4,
                       max_encoder_position_embeddings=64, max_decoder_position_embeddings=64)
    model, weights = decisive_model(config, seed, eos_boost=1.5 + 0.3 * seed)
    ids = np.random.default_rng(seed).integers(3, 24, (3, 7))
    ids[1, 5:] = config.pad_token_id
    # No attention_mask: both infer it from the pad tokens.
    inputs = {"input_ids": ids, "global_attention_mask": (np.arange(7) == 0)[None].repeat(3, 0).astype(int)}
    np.testing.assert_array_equal(model.generate(**inputs, **args), hf_generate(config, weights, inputs, **args))


def test_forced_bos_and_eos_from_the_config():
    config = LEDConfig(vocab_size=24, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                       decoder_attention_heads=2, encoder_ffn_dim=16, decoder_ffn_dim=16, attention_window=4,
                       forced_bos_token_id=0, forced_eos_token_id=2, max_length=7)
    model, weights = decisive_model(config, 1, eos_boost=0.0)
    inputs = {"input_ids": np.array([[5, 6, 7, 8, 2]])}
    for args in ({}, {"num_beams": 3}):
        ours = model.generate(**inputs, **args)
        assert ours[0, 1] == 0
        np.testing.assert_array_equal(ours, hf_generate(config, weights, inputs, **args))


@given(led_configs(), st.integers(0, 999), st.data())
def test_greedy_tokens_are_the_argmax_of_full_forward_passes(config, seed, data):
    """Any windows (HF cannot run most of these): the cached decode equals argmax of uncached passes."""
    config = dataclasses.replace(config, max_decoder_position_embeddings=16)
    model, _ = decisive_model(config, seed, eos_boost=1.0)
    inputs = data.draw(encoder_inputs(config))
    out = model.generate(**inputs, max_length=8)
    logits = model(**inputs, decoder_input_ids=out[:, :-1], use_cache=False).logits
    eos, pad = config.eos_token_id, config.pad_token_id
    for row, tokens in enumerate(out):
        for t in range(1, len(tokens)):
            if eos in tokens[1:t]:  # finished: the rest is padding
                assert tokens[t] == pad
            else:  # the argmax, up to float64 rounding between the cached and the full computation
                assert logits[row, t - 1, tokens[t]] >= logits[row, t - 1].max() - 1e-9


def test_banned_ngram_tokens():
    assert banned_ngram_tokens(np.array([2, 5, 6, 5]), 2) == {6}
    assert banned_ngram_tokens(np.array([2, 5, 6, 5, 6]), 3) == {5}
    assert banned_ngram_tokens(np.array([2, 5]), 1) == {2, 5}
    assert banned_ngram_tokens(np.array([2]), 3) == set()


def test_settings_follow_hf_defaults():
    config = LEDConfig(vocab_size=24, d_model=8, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                       decoder_attention_heads=2, encoder_ffn_dim=8, decoder_ffn_dim=8, attention_window=4)
    assert resolve_settings(config).max_length == 21  # an untouched default of 20 means 20 new tokens
    assert resolve_settings(config, max_length=20).max_length == 20
    assert resolve_settings(config, max_length=9, max_new_tokens=3).max_length == 4
    with pytest.raises(ValueError, match="num_return_sequences=3 must be <= num_beams=2"):
        resolve_settings(config, num_beams=2, num_return_sequences=3)
    with pytest.raises(ValueError, match="early_stopping"):
        resolve_settings(config, early_stopping="sometimes")
    with pytest.raises(ValueError, match="max_length"):
        resolve_settings(config, max_length=1)
