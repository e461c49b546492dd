"""led_torch generate: token-identical to HF 4.57 generate(do_sample=False), greedy and beam search."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hf_oracle import hf_dtype_scope, hf_model
from hypothesis import given
from hypothesis import strategies as st

from led_ref.init import random_weights
from led_ref.io.config import LEDConfig
from led_torch import LEDForConditionalGeneration
from led_torch.generation import banned_ngram_tokens
from parity.harness.strategies import encoder_inputs, led_configs

pytestmark = pytest.mark.hf
torch.set_num_threads(1)


@st.composite
def generation_cases(draw):
    """A tiny model with decisive logits (std 0.3..0.6), optionally an eos boost so beams finish, inputs,
    and HF generate options."""
    config = draw(led_configs(hf_compatible=True))
    config.max_decoder_position_embeddings = 24
    config.forced_bos_token_id = draw(st.sampled_from([None, None, config.bos_token_id]))
    config.forced_eos_token_id = draw(st.sampled_from([None, None, config.eos_token_id]))
    weights = random_weights(config, seed=draw(st.integers(0, 2**16)), std=draw(st.sampled_from([0.3, 0.6])))
    weights["final_logits_bias"][0, config.eos_token_id] += draw(st.sampled_from([0.0, 1.0, 3.0]))
    inputs = draw(encoder_inputs(config))
    beams = draw(st.integers(1, 4))
    options = dict(
        num_beams=beams,
        length_penalty=draw(st.sampled_from([1.0, 0.5, 2.0, -1.0])),
        early_stopping=draw(st.sampled_from([False, True, "never"])),
        no_repeat_ngram_size=draw(st.sampled_from([0, 0, 1, 2, 3])),
        num_return_sequences=draw(st.integers(1, beams)),
        min_length=draw(st.sampled_from([None, 0, 3, 6])),
    )
    if draw(st.booleans()):
        options["max_new_tokens"] = draw(st.integers(1, 12))
    else:
        options["max_length"] = draw(st.sampled_from([None, 2, 5, 13]))
    return config, weights, inputs, options


@given(generation_cases())
def test_generate_matches_hf(case):
    config, weights, inputs, options = case
    ours = LEDForConditionalGeneration.from_weights(config, weights, dtype=torch.float64)
    hf = hf_model(config, weights, "LEDForConditionalGeneration", torch.float64)
    kwargs = {k: torch.as_tensor(v) for k, v in inputs.items()}
    hf_options = {k: v for k, v in options.items() if v is not None}
    with hf_dtype_scope(torch.float64):
        ref = hf.generate(**kwargs, do_sample=False, **hf_options)
    out = ours.generate(**kwargs, **options)
    assert out.shape == ref.shape, f"{tuple(out.shape)} != {tuple(ref.shape)}"
    assert torch.equal(out, ref), f"ours {out.tolist()} != HF {ref.tolist()}"


def test_generate_without_attention_mask_infers_padding_like_hf():
    config = LEDConfig(vocab_size=30, d_model=8, encoder_layers=1, decoder_layers=2, encoder_attention_heads=2,
                       decoder_attention_heads=2, encoder_ffn_dim=8, decoder_ffn_dim=8, attention_window=4,
                       max_encoder_position_embeddings=32, max_decoder_position_embeddings=24)
    weights = random_weights(config, seed=5, std=0.5)
    ours = LEDForConditionalGeneration.from_weights(config, weights, dtype=torch.float64)
    hf = hf_model(config, weights, "LEDForConditionalGeneration", torch.float64)
    ids = torch.tensor([[0, 5, 6, 7, 2, 1, 1], [0, 8, 9, 10, 11, 12, 2]])
    for beams in (1, 3):
        with hf_dtype_scope(torch.float64):
            ref = hf.generate(ids, num_beams=beams, do_sample=False, max_length=12)
        assert torch.equal(ours.generate(ids, num_beams=beams, max_length=12), ref)


def test_banned_ngrams_by_hand():
    # 2-grams of [5, 6, 5]: (5,6), (6,5); the last token 5 was followed by 6, so 6 is banned.
    assert banned_ngram_tokens([[5, 6, 5]], 2) == [[6]]
    assert banned_ngram_tokens([[5, 6, 7]], 2) == [[]]
    assert banned_ngram_tokens([[4, 4]], 1) == [[4, 4]]


def test_beams_share_cross_attention_keys():
    """The encoder output and cross keys/values are per source, never copied per beam."""
    from led_torch import generation

    config = LEDConfig(vocab_size=30, d_model=8, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                       decoder_attention_heads=2, encoder_ffn_dim=8, decoder_ffn_dim=8, attention_window=4,
                       max_encoder_position_embeddings=32, max_decoder_position_embeddings=24)
    model = LEDForConditionalGeneration.from_weights(config, random_weights(config, seed=1, std=0.5))
    seen = []
    original = generation.decode_step

    def spy(model, cache, cross, cross_bias, tokens, position):
        seen.append((cross[0][0].shape[0], tokens.shape[0]))
        return original(model, cache, cross, cross_bias, tokens, position)

    generation.decode_step = spy
    try:
        model.generate(torch.tensor([[0, 5, 6, 2], [0, 7, 8, 2]]), num_beams=3, max_length=6)
    finally:
        generation.decode_step = original
    assert seen and all(sources == 2 and rows == 6 for sources, rows in seen)


@pytest.mark.compile
def test_compiled_decode_step_gives_the_same_tokens():
    config = LEDConfig(vocab_size=30, d_model=8, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                       decoder_attention_heads=2, encoder_ffn_dim=8, decoder_ffn_dim=8, attention_window=4,
                       max_encoder_position_embeddings=32, max_decoder_position_embeddings=24)
    model = LEDForConditionalGeneration.from_weights(config, random_weights(config, seed=2, std=0.5))
    ids = torch.tensor(np.array([[0, 5, 6, 7, 2]]))
    eager = model.generate(ids, num_beams=2, max_length=8)
    compiled = model.generate(ids, num_beams=2, max_length=8, compile=True)
    assert torch.equal(eager, compiled)


def test_cross_keys_are_laid_out_for_the_decode_step():
    """Keys: the transpose of a contiguous (sources, heads, head_dim, keys) tensor; values contiguous; both equal
    to the layer's projection."""
    from led_torch.generation import cross_keys_values

    config = LEDConfig(vocab_size=30, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                       decoder_attention_heads=4, encoder_ffn_dim=8, decoder_ffn_dim=8, attention_window=4,
                       max_encoder_position_embeddings=32, max_decoder_position_embeddings=24)
    model = LEDForConditionalGeneration.from_weights(config, random_weights(config, seed=3, std=0.5))
    attention = model.led.decoder.layers[0].encoder_attn
    hidden = torch.randn(2, 7, 16)
    with torch.no_grad():
        keys, values = cross_keys_values(attention, hidden)
        expected = attention.project_kv(hidden)
    assert keys.shape == values.shape == (2, 4, 7, 4)
    assert keys.transpose(-1, -2).is_contiguous() and values.is_contiguous()
    assert torch.equal(keys, expected[0]) and torch.equal(values, expected[1])


@pytest.mark.parametrize("beams, batch", [(4, 1), (3, 2), (1, 2)])
def test_float32_fast_path_gives_hf_float32_tokens(beams, batch):
    """d_model 512: the decode step's projections run on oneDNN with packed weights (2+ rows), the stacked q/k/v
    and the transposed cross keys; tokens identical to HF's float32 generate."""
    config = LEDConfig(vocab_size=64, d_model=512, encoder_layers=1, decoder_layers=2, encoder_attention_heads=8,
                       decoder_attention_heads=8, encoder_ffn_dim=512, decoder_ffn_dim=1024, attention_window=16,
                       max_encoder_position_embeddings=128, max_decoder_position_embeddings=24)
    weights = random_weights(config, seed=7 + beams, std=0.05)
    rng = np.random.default_rng(beams)
    ids = torch.as_tensor(rng.integers(3, 64, size=(batch, 40)))
    mask = torch.ones_like(ids)
    mask[-1, 33:] = 0 if batch > 1 else 1
    ours = LEDForConditionalGeneration.from_weights(config, weights)
    hf = hf_model(config, weights, "LEDForConditionalGeneration", torch.float32)
    options = dict(num_beams=beams, max_new_tokens=10, min_length=6, num_return_sequences=min(beams, 2))
    with hf_dtype_scope(torch.float32):
        ref = hf.generate(ids, attention_mask=mask, do_sample=False, **options)
    out = ours.generate(ids, attention_mask=mask, **options)
    assert out.shape == ref.shape and out.shape[1] > 2
    assert torch.equal(out, ref), f"ours {out.tolist()} != HF {ref.tolist()}"


def test_cache_reorder_moves_the_written_positions_of_the_chosen_rows():
    from led_torch.generation import StaticCache

    cache = StaticCache(layers=2, rows=3, heads=2, length=5, head_dim=4, dtype=torch.float32, device="cpu")
    cache.kv.copy_(torch.randn(cache.kv.shape))
    before = cache.kv.clone()
    cache.reorder(torch.tensor([0, 1, 2]), 3)  # every beam keeps its history: nothing moves
    assert torch.equal(cache.kv, before)
    cache.reorder(torch.tensor([2, 2, 0]), 3)
    assert torch.equal(cache.kv[..., :3, :], before.index_select(2, torch.tensor([2, 2, 0]))[..., :3, :])
    middle = cache.kv.clone()
    cache.reorder(torch.tensor([1, 0, 2]), 4)  # twice: the two buffers take turns
    assert torch.equal(cache.kv[..., :4, :], middle.index_select(2, torch.tensor([1, 0, 2]))[..., :4, :])


@pytest.mark.parametrize("built_in_inference_mode", [False, True])
def test_inference_mode_gives_the_no_grad_results(built_in_inference_mode):
    """Under torch.inference_mode (tensors without version counters) every inference cache (packed weights, the
    stacked q/k/v weight, the encoder's shared masks) steps aside or still works: the same logits and tokens as
    under no_grad, whether the model was built inside inference mode or outside it. LED-base-like widths so the
    oneDNN and packed paths are taken."""
    config = LEDConfig(vocab_size=48, d_model=512, encoder_layers=2, decoder_layers=2, encoder_attention_heads=8,
                       decoder_attention_heads=8, encoder_ffn_dim=1024, decoder_ffn_dim=1024, attention_window=8,
                       max_encoder_position_embeddings=64, max_decoder_position_embeddings=16)
    weights = random_weights(config, seed=3)
    ids = torch.randint(3, 48, (2, 8), generator=torch.Generator().manual_seed(0))
    glob = torch.zeros_like(ids)
    glob[:, 0] = 1
    reference = LEDForConditionalGeneration.from_weights(config, weights)
    with torch.no_grad():
        logits = reference(input_ids=ids, global_attention_mask=glob, decoder_input_ids=ids[:, :4]).logits
        tokens = reference.generate(ids, global_attention_mask=glob, max_new_tokens=5, num_beams=3)
    with torch.inference_mode():
        model = LEDForConditionalGeneration.from_weights(config, weights) if built_in_inference_mode else reference
        for _ in range(2):  # the second pass reads whatever the first one cached
            got = model(input_ids=ids, global_attention_mask=glob, decoder_input_ids=ids[:, :4]).logits
            assert torch.equal(model.generate(ids, global_attention_mask=glob, max_new_tokens=5, num_beams=3), tokens)
            torch.testing.assert_close(got, logits, rtol=1e-5, atol=1e-6)
