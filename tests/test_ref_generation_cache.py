"""led_ref's decode caches: the cross-attention keys and values are computed once per source and read by every
beam and every step; the self-attention keys and values follow the beams. Checked against a decode with no
cache at all (every step a full forward pass over the tokens so far), by counting the cross-attention
projections, and on the attention itself (beams reading their source's keys = keys repeated per beam).
HF's generate is the oracle in tests/test_ref_generation.py.
"""

from __future__ import annotations

import dataclasses
from unittest import mock

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import led_ref.decoder
import led_ref.generation
from led_ref import LEDConfig
from led_ref.decoder import multi_head_attention, padding_bias
from led_ref.functional import subtree
from parity.harness.strategies import encoder_inputs, led_configs
from tests.test_ref_generation import decisive_model, generation_args

SCORE_RTOL = 1e-12  # cached and uncached passes add the same float64 terms in a different order


class PlainDecoder:
    """`led_ref.generation.Decoder` without any cache: every step runs the model's full forward pass over each
    row's tokens so far (use_cache=False), with the encoder output repeated per row."""

    def __init__(self, model, encoder_hidden: np.ndarray, encoder_mask: np.ndarray):
        self.model = model
        self.encoder_hidden = encoder_hidden
        self.encoder_mask = encoder_mask
        self.lm_weight = model.weights["led.shared.weight"]
        self.tokens = None  # (rows, steps so far)

    def step(self, tokens: np.ndarray) -> np.ndarray:
        self.tokens = tokens[:, None] if self.tokens is None else np.concatenate([self.tokens, tokens[:, None]], 1)
        beams = len(tokens) // len(self.encoder_hidden)
        out = self.model(encoder_outputs=(np.repeat(self.encoder_hidden, beams, axis=0),),
                         attention_mask=np.repeat(self.encoder_mask, beams, axis=0),
                         decoder_input_ids=self.tokens, use_cache=False)
        return out.logits[:, -1]

    def reorder(self, rows: np.ndarray) -> None:
        self.tokens = self.tokens[rows]


def generate_with_scores(model, inputs: dict, args: dict):
    return model.generate(**inputs, **args, return_dict_in_generate=True, output_scores=True)


@given(led_configs(), generation_args(), st.integers(0, 999), st.sampled_from([0.0, 1.5, 3.0]), st.data())
def test_cached_decode_matches_a_decode_without_cache(config, args, seed, eos_boost, data):
    assume(config.d_model > 2)  # a layer norm over two numbers outputs +-1: exact ties
    config = dataclasses.replace(config, max_decoder_position_embeddings=16)
    model, _ = decisive_model(config, seed, eos_boost)
    inputs = data.draw(encoder_inputs(config, max_batch=3))
    cached = generate_with_scores(model, inputs, args)
    with mock.patch.object(led_ref.generation, "Decoder", PlainDecoder):
        plain = generate_with_scores(model, inputs, args)

    np.testing.assert_array_equal(cached.sequences, plain.sequences)
    assert len(cached.scores) == len(plain.scores)
    for ours, theirs in zip(cached.scores, plain.scores, strict=True):
        np.testing.assert_array_equal(np.isneginf(ours), np.isneginf(theirs))
        finite = np.isfinite(theirs)
        np.testing.assert_allclose(ours[finite], theirs[finite], rtol=SCORE_RTOL, atol=SCORE_RTOL)
    if args["num_beams"] > 1:
        np.testing.assert_allclose(cached.sequences_scores, plain.sequences_scores, rtol=SCORE_RTOL, atol=0)


def count_cross_projections(model, inputs: dict, args: dict) -> tuple[list[tuple[int, tuple]], int]:
    """Run generate, recording every cross-attention key/value projection as (layer, source shape), and
    count the decode steps (the self-attention projections of the first layer)."""
    cross_weights = {id(model.base_weights[f"decoder.layers.{layer}.encoder_attn.k_proj.weight"]): layer
                     for layer in range(model.config.decoder_layers)}
    first_self = model.base_weights["decoder.layers.0.self_attn.k_proj.weight"]
    calls, steps = [], 0
    project_kv = led_ref.decoder.project_kv

    def counting_project_kv(source, params, num_heads):
        nonlocal steps
        if id(params["k_proj.weight"]) in cross_weights:
            calls.append((cross_weights[id(params["k_proj.weight"])], source.shape))
        steps += params["k_proj.weight"] is first_self
        return project_kv(source, params, num_heads)

    with mock.patch.object(led_ref.decoder, "project_kv", counting_project_kv):
        model.generate(**inputs, **args)
    return calls, steps


@pytest.mark.parametrize("num_beams", [1, 3])
def test_cross_attention_is_projected_once_per_source_and_layer(num_beams):
    config = LEDConfig(vocab_size=24, d_model=16, encoder_layers=1, decoder_layers=3, encoder_attention_heads=2,
                       decoder_attention_heads=2, encoder_ffn_dim=16, decoder_ffn_dim=16, attention_window=4)
    model, _ = decisive_model(config, seed=3, eos_boost=0.0)
    ids = np.random.default_rng(0).integers(3, 24, (2, 9))
    inputs = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    new_tokens = 6
    # min_length = max_length: eos is banned until the last step, so every step runs
    calls, steps = count_cross_projections(model, inputs, {"num_beams": num_beams, "max_new_tokens": new_tokens,
                                                           "min_new_tokens": new_tokens})
    assert steps == new_tokens
    assert sorted(layer for layer, _ in calls) == list(range(config.decoder_layers))  # once each, not per step
    assert {shape for _, shape in calls} == {(2, 9, config.d_model)}  # per source: 2 sources, not 2 * num_beams


@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 3), st.integers(0, 999))
def test_beams_reading_their_source_equal_keys_repeated_per_beam(sources, beams, tgt, seed):
    """multi_head_attention with rows = sources * beams against per-source keys is, bit for bit, the same
    attention against the keys repeated for every beam (the layout HF's cache uses)."""
    config = LEDConfig(vocab_size=8, d_model=8, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                       decoder_attention_heads=2, encoder_ffn_dim=8, decoder_ffn_dim=8, attention_window=2)
    model, _ = decisive_model(config, seed, eos_boost=0.0)
    params = subtree(model.base_weights, "decoder.layers.0.encoder_attn.")
    rng = np.random.default_rng(seed)
    src = 5
    hidden = rng.standard_normal((sources * beams, tgt, 8))
    key, value = rng.standard_normal((2, sources, 2, src, 4))
    mask = (rng.random((sources, src)) < 0.7).astype(np.int64)
    mask[:, 0] = 1
    head_mask = rng.random(2)

    shared = multi_head_attention(hidden, params, key, value, padding_bias(mask, np.float64), 2, head_mask)
    repeated = multi_head_attention(hidden, params, np.repeat(key, beams, axis=0), np.repeat(value, beams, axis=0),
                                    padding_bias(np.repeat(mask, beams, axis=0), np.float64), 2, head_mask)
    np.testing.assert_array_equal(shared[0], repeated[0])
    np.testing.assert_array_equal(shared[1], repeated[1])
    assert shared[1].shape == (sources * beams, 2, tgt, src)
