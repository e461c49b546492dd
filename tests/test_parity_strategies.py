"""The strategies draw only valid cases, and reach the corners they promise (found with hypothesis.find)."""

from __future__ import annotations

import numpy as np
from hypothesis import Phase, find, given, settings

from parity.harness.strategies import attention_cases, encoder_inputs, head_masks, led_configs, model_cases, weights

FIND = settings(max_examples=2000, database=None, phases=[Phase.generate])  # found is enough, no shrinking


def _valid_kinds(kinds: np.ndarray) -> bool:
    return set(np.unique(kinds)) <= {0, 1, 2} and bool((kinds != 0).any(axis=1).all())


@given(led_configs(hf_compatible=True))
def test_hf_compatible_configs(config):
    windows = config.layer_windows
    assert len(windows) == config.encoder_layers and all(w >= 4 and max(windows) % w == 0 for w in windows)


@given(led_configs())
def test_configs_are_valid(config):
    assert all(w % 2 == 0 and w >= 2 for w in config.layer_windows)
    assert config.d_model // config.encoder_attention_heads >= 2
    assert config.max_encoder_position_embeddings >= config.max_window


@given(led_configs().flatmap(lambda c: encoder_inputs(c).map(lambda i: (c, i))))
def test_encoder_inputs(pair):
    config, inputs = pair
    ids, mask, glob = inputs["input_ids"], inputs["attention_mask"], inputs["global_attention_mask"]
    assert ids.shape == mask.shape == glob.shape and ids.dtype == np.int64
    assert (mask.sum(axis=1) >= 1).all() and not (glob & (1 - mask)).any()  # globals are real tokens
    assert ((ids == config.pad_token_id) == (mask == 0)).all()
    padded = -(-ids.shape[1] // config.max_window) * config.max_window
    assert padded <= config.max_encoder_position_embeddings


@given(attention_cases())
def test_attention_cases(case):
    b, h, s, d = case.query.shape
    assert s % case.window == 0 and case.token_kind.shape == (b, s) and d >= 2
    assert all(a.shape == (b, h, s, d) and a.dtype == np.float64 for a in case.arrays())
    assert _valid_kinds(case.token_kind)


@given(led_configs().flatmap(lambda c: weights(c).map(lambda w: (c, w))))
def test_weights_are_seeded_random_weights(pair):
    from led_ref.io.names import checkpoint_shapes

    config, drawn = pair
    shapes = checkpoint_shapes(config, "LEDForConditionalGeneration")
    assert {k: v.shape for k, v in drawn.items()} == shapes


@given(led_configs().flatmap(lambda c: head_masks(c).map(lambda m: (c, m))))
def test_head_masks_shapes(pair):
    config, masks = pair
    for name, mask in masks.items():
        layers = config.encoder_layers if name == "head_mask" else config.decoder_layers
        assert mask.shape[0] == layers and set(np.unique(mask)) <= {0.0, 0.5, 1.0}


def test_strategies_reach_the_corners():
    find(led_configs(), lambda c: 2 in c.layer_windows, settings=FIND)
    find(led_configs(), lambda c: len(set(c.layer_windows)) > 1 and max(c.layer_windows) % min(c.layer_windows),
         settings=FIND)  # per-layer windows that do not divide each other
    find(attention_cases(), lambda c: (c.token_kind[0] != 0).sum() < c.window, settings=FIND)  # window > text
    find(attention_cases(), lambda c: len({int((row == 2).sum()) for row in c.token_kind}) > 1,
         settings=FIND)  # rows with different global counts
    find(attention_cases(), lambda c: any(0 in row[: np.flatnonzero(row)[-1]] for row in c.token_kind),
         settings=FIND)  # padding inside a row
    find(attention_cases(), lambda c: (c.token_kind == 2).sum() == (c.token_kind != 0).sum() > 1,
         settings=FIND)  # every token global
    find(model_cases(), lambda c: c.inputs["input_ids"].shape[1] % c.config.max_window != 0, settings=FIND)
    find(model_cases(), lambda c: "head_mask" in c.inputs and (c.inputs["head_mask"] == 0).any(), settings=FIND)


@settings(max_examples=5)
@given(attention_cases())
def test_strided_cases_are_views_of_one_fused_qkv_buffer(case):
    """`strided` hands the kernel the six tensors as (batch, heads, seq, d) views of one C-ordered
    (batch, seq, 6, heads, d) buffer: the layout a fused projection writes, so its strides are that layout's."""
    import dataclasses

    torch = __import__("pytest").importorskip("torch")
    b, h, s, d = case.query.shape
    tensors = dataclasses.replace(case, strided=True).torch_args(torch.float64)[:6]
    expected = (s * 6 * h * d, d, 6 * h * d, 1)  # (batch, heads, seq, d) strides in the fused buffer
    base = tensors[0].data_ptr()
    for i, (t, array) in enumerate(zip(tensors, case.arrays(), strict=True)):
        assert t.stride() == expected
        assert t.data_ptr() == base + i * h * d * t.element_size()  # slot i of the 6 in each token's row
        np.testing.assert_array_equal(t.numpy(), array)
