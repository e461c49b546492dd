"""bfloat16 inference on CPU: led_torch's fast paths (oneDNN bf16 linears, the banded flash kernel in bf16, float32
softmax merge) against the float64 spec, within the bfloat16 budgets of parity.harness.tolerances.

The model has d_model 512 so every projection is big enough for oneDNN (led_torch.linear._MIN_WEIGHT), like the
LED-base shapes the bench times; the tiny models of the other tests stay on F.linear.
"""

import numpy as np
import pytest
import torch
from hypothesis import given
from torch.profiler import ProfilerActivity, profile

from led_ref.init import random_weights
from led_ref.io.config import LEDConfig
from led_torch.linear import _DTYPES, onednn_linear_enabled
from parity.harness.compare import compare_outputs
from parity.harness.generation import generation_parity
from parity.harness.implementations import Side
from parity.harness.strategies import attention_cases
from parity.harness.tolerances import scaled_error, tolerance

ARCH = "LEDForConditionalGeneration"
BF16 = Side("torch", "banded", "bfloat16")
SPEC = Side("ref")
PROBABILITIES = ("encoder_attentions", "encoder_global_attentions", "decoder_attentions", "cross_attentions")
needs_bf16_onednn = pytest.mark.skipif(not onednn_linear_enabled() or torch.bfloat16 not in _DTYPES,
                                       reason="oneDNN has no bfloat16 kernels on this CPU")


@given(attention_cases(max_chunks=3, windows=(2, 4, 8, 16)))
def test_bf16_flash_band_matches_the_spec_and_the_probability_path(case):
    from led_ref.attention import longformer_attention
    from led_torch.backends.banded import banded_longformer_attention
    from led_torch.backends.banded_flash_cpu import flash_applies

    args = case.torch_args(torch.bfloat16)
    with torch.no_grad():
        assert flash_applies(*args[:3], return_probs=False, dropout_p=0.0, training=False)
        fast = banded_longformer_attention(*args)
        slow = banded_longformer_attention(*args, return_probs=True)[0]
    assert fast.dtype == torch.bfloat16 and torch.isfinite(fast).all()
    spec = longformer_attention(*case.arrays(), case.token_kind, case.window)
    budget = tolerance("bfloat16", "float64", "context")
    assert scaled_error(fast.float().numpy(), spec) <= budget, case.describe()
    assert scaled_error(fast.float().numpy(), slow.float().numpy()) <= budget, case.describe()


def _model_case(std: float, seed: int = 0):
    config = LEDConfig(vocab_size=64, d_model=512, encoder_attention_heads=8, decoder_attention_heads=8,
                       encoder_layers=2, decoder_layers=1, encoder_ffn_dim=512, decoder_ffn_dim=512,
                       attention_window=[16, 32], max_encoder_position_embeddings=128,
                       max_decoder_position_embeddings=16, dropout=0.0, attention_dropout=0.0,
                       activation_dropout=0.0)
    rng = np.random.default_rng(seed)
    batch, seq = 2, 70
    ids = rng.integers(3, 64, (batch, seq))
    mask = np.ones((batch, seq), np.int64)
    mask[1, 50:] = 0
    glob = np.zeros((batch, seq), np.int64)
    glob[:, 0] = 1
    glob[0, 33] = 1
    decoder_ids = rng.integers(3, 64, (batch, 6))
    decoder_ids[:, 0] = config.decoder_start_token_id
    inputs = dict(input_ids=ids, attention_mask=mask, global_attention_mask=glob, decoder_input_ids=decoder_ids,
                  labels=rng.integers(3, 64, (batch, 6)))
    return config, random_weights(config, ARCH, seed=seed, std=std), inputs


@needs_bf16_onednn
@pytest.mark.parametrize("std", [0.02, 0.05])  # LED's init std, and 2.5x it
def test_bf16_model_outputs_within_budget_of_the_float64_spec(std):
    config, weights, inputs = _model_case(std)
    expected = SPEC.forward(SPEC.build(config, weights, ARCH), inputs)
    model = BF16.build(config, weights, ARCH)
    # the fast path: no probabilities asked, so the flash band kernel and the oneDNN linears run in bf16
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fast = BF16.forward(model, inputs, output_attentions=False)
    ops = {event.key for event in prof.key_averages()}
    assert "mkldnn::_linear_pointwise" in ops and "aten::_scaled_dot_product_flash_attention_for_cpu" in ops
    assert fast.logits.dtype == torch.bfloat16
    comparison = compare_outputs(fast, expected, "bfloat16", "float64", inputs=inputs, skip=PROBABILITIES)
    assert comparison.passed, comparison.diffs
    kinds = {d.kind for d in comparison.diffs}
    assert {"hidden", "logits", "loss"} <= kinds
    # probabilities (the banded backend's matmul path) too
    full = BF16.forward(model, inputs, output_attentions=True)
    comparison = compare_outputs(full, expected, "bfloat16", "float64", inputs=inputs)
    assert comparison.passed, [d for d in comparison.diffs if not d.passed]
    assert "attention" in {d.kind for d in comparison.diffs}


@needs_bf16_onednn
@pytest.mark.parametrize("beams", [1, 3])
def test_bf16_generation_agrees_with_the_spec_up_to_ties(beams):
    config, weights, inputs = _model_case(0.05, seed=1)
    sources = {k: inputs[k] for k in ("input_ids", "attention_mask", "global_attention_mask")}
    expected, results = generation_parity(config, weights, sources, [BF16], SPEC, max_new_tokens=8,
                                          num_beams=beams)
    assert expected.shape[0] == 2 and expected.shape[1] > 1
    assert results[0].passed, results[0].describe()  # identical, or every difference a reported tie


@needs_bf16_onednn
def test_bf16_linear_packs_its_weight_once_with_the_same_results_and_follows_weight_changes():
    import copy

    from led_torch.linear import _PACKED, Linear, linear

    layer = Linear(512, 768).to(torch.bfloat16)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for shape in [(1, 512), (4, 512), (3, 5, 512), (700, 512)]:
            x = torch.randn(*shape, generator=g).to(torch.bfloat16)
            assert torch.equal(layer(x), linear(x, layer.weight, layer.bias))  # plain-weight oneDNN, bitwise
        packed = _PACKED[layer][1]
        assert packed.is_mkldnn
        x = x[:4]
        layer(x)
        assert _PACKED[layer][1] is packed  # built once
        layer.weight.mul_(2)  # in place: the version counter moves
        assert torch.equal(layer(x), linear(x, layer.weight, layer.bias))
        assert _PACKED[layer][1] is not packed
        big, many = Linear(512, 768).to(torch.bfloat16), torch.randn(700, 512, generator=g).to(torch.bfloat16)
        assert torch.equal(big(many), linear(many, big.weight, big.bias)) and big not in _PACKED  # many rows: plain
        clone = copy.deepcopy(layer)  # the opaque tensor lives outside the module
        assert list(clone.state_dict()) == ["weight", "bias"]
        assert torch.equal(clone(x), layer(x))
