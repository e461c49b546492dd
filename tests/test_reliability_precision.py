"""Precision at the edges: float64 weights kept bit for bit, float64 inputs cast into a float32 model, values a
float16 model cannot hold refused by name, and float16 near overflow finite and close to float64.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import led_torch
from led_ref.init import random_weights
from led_ref.io.config import LEDConfig
from tests.reliability_cases import (
    CLASSES,
    CONFIG,
    DEC,
    IDS,
    IMPLS,
    MASK,
    Impl,
    assert_agree,
    assert_finite,
    with_value,
)


@pytest.mark.parametrize("architecture", CLASSES)
def test_float64_weights_are_kept_exactly(architecture):
    """Nothing lost: a float64 model carries its float64 weights bit for bit (no detour through float32)."""
    weights = random_weights(CONFIG, architecture, seed=6, std=0.3)
    for impl in IMPLS:
        model = impl.build(architecture, weights=weights)
        state = model.weights if impl.name == "led_ref" else model.state_dict()
        for name, value in weights.items():
            assert np.array_equal(impl.numpy(state[name]), value), f"{impl.name}: {name} changed on load"


def _float32_model(impl: Impl):
    return impl.build("LEDForConditionalGeneration", dtype=np.float32 if impl.name == "led_ref" else torch.float32)


@pytest.mark.parametrize("argument", ["inputs_embeds", "decoder_inputs_embeds", "encoder_outputs", "encoder"])
@pytest.mark.parametrize("impl", IMPLS, ids=lambda i: i.name)
def test_float64_inputs_into_a_float32_model_are_cast(impl, argument):
    """float64 (what torch.from_numpy gives) into a float32 model: the same result as float32 inputs."""
    model = _float32_model(impl)
    rng = np.random.default_rng(0)
    value = rng.normal(size=(2, 6, 8) if argument != "decoder_inputs_embeds" else (2, 3, 8))

    def run(v):
        if argument == "encoder":
            return impl.numpy(model.get_encoder()(inputs_embeds=impl.array(v)).last_hidden_state)
        kwargs = dict(input_ids=IDS, decoder_input_ids=DEC)
        if argument == "inputs_embeds":
            kwargs.pop("input_ids")
        if argument == "decoder_inputs_embeds":
            kwargs.pop("decoder_input_ids")
        if argument == "encoder_outputs":
            kwargs.pop("input_ids")
            v = (v,)
        kwargs[argument] = v
        return impl.numpy(model(**impl.arrays(kwargs)).logits)

    wide, narrow = run(value), run(value.astype(np.float32))
    np.testing.assert_array_equal(wide, narrow)
    assert wide.dtype == np.float64 if impl.name == "led_torch" else wide.dtype == np.float32


@pytest.mark.parametrize("argument", ["inputs_embeds", "encoder_outputs"])
def test_values_a_float16_model_cannot_hold_are_refused_by_name(argument):
    model = Impl("led_torch").build("LEDForConditionalGeneration", dtype=torch.float16)
    value = torch.full((2, 6, 8), 1e6, dtype=torch.float64)
    kwargs = dict(decoder_input_ids=torch.from_numpy(DEC))
    kwargs[argument] = value if argument == "inputs_embeds" else (value,)
    with pytest.raises(ValueError, match=f"{argument}.*float16"):
        model(**kwargs)


FP16_BUDGET = 5e-3  # measured worst 1.1e-3 on these cases (scaled error against float64), ~5x headroom


@pytest.mark.parametrize("case", ["huge_embeddings", "huge_scores", "huge_decoder_embeddings"])
def test_fp16_near_overflow_stays_finite_and_close_to_float64(case):
    config = LEDConfig.from_dict(CONFIG.to_dict() | {"max_encoder_position_embeddings": 16})
    weights = random_weights(config, "LEDForConditionalGeneration", seed=5, std=0.3)
    rng = np.random.default_rng(0)
    glob = with_value(np.zeros_like(IDS), (0, 1), 1)
    kwargs = dict(attention_mask=MASK, global_attention_mask=glob, decoder_input_ids=DEC)
    if case == "huge_scores":
        # Query/key weights x30: attention scores in the thousands, far beyond exp()'s fp16 range.
        for name in list(weights):
            if any(p in name for p in ("query", "key", "q_proj", "k_proj")) and name.endswith("weight"):
                weights[name] = weights[name] * 30.0
        kwargs["input_ids"] = IDS
    else:
        # Embeddings near the fp16 maximum (65504): sums and squares overflow unless the norm is computed safely.
        embeds = np.clip(rng.standard_normal((2, 6, 8)) * 2e4, -6e4, 6e4)
        if case == "huge_embeddings":
            kwargs["inputs_embeds"] = embeds
        else:
            kwargs["input_ids"] = IDS
            kwargs.pop("decoder_input_ids")
            kwargs["decoder_inputs_embeds"] = embeds[:, :3]
    impl = IMPLS[1]
    outs = {}
    for dtype in (torch.float16, torch.float64):
        model = led_torch.LEDForConditionalGeneration.from_weights(config, weights, dtype=dtype)
        args = {k: torch.from_numpy(v).to(dtype) if v.dtype.kind == "f" else torch.from_numpy(v)
                for k, v in kwargs.items()}
        out = model(**args)
        outs[dtype] = {n: impl.numpy(getattr(out, n)) for n in ("logits", "encoder_last_hidden_state")}
    assert_finite(outs[torch.float16], f"fp16 {case}")
    assert_agree(outs[torch.float16], outs[torch.float64], FP16_BUDGET, f"fp16 {case} vs float64")
