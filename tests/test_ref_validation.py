"""Bad input is refused with a ValueError/TypeError naming the argument, the offending value and the limit;
valid input in any accepted form (lists, bool masks) works."""

from __future__ import annotations

import numpy as np
import pytest

from led_ref import LEDConfig, LEDForConditionalGeneration, LEDModel

CONFIG = LEDConfig(vocab_size=20, d_model=8, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                   decoder_attention_heads=2, encoder_ffn_dim=8, decoder_ffn_dim=8, attention_window=[2, 4],
                   max_encoder_position_embeddings=12, max_decoder_position_embeddings=6)
IDS = np.array([[4, 5, 6, 7, 2], [8, 9, 10, 2, 1]])
DEC = np.array([[2, 4, 5], [2, 8, 9]])


@pytest.fixture(scope="module")
def model():
    return LEDForConditionalGeneration(CONFIG, seed=0)


@pytest.mark.parametrize("kwargs, error, pattern", [
    ({}, ValueError, "input_ids or inputs_embeds"),
    ({"input_ids": IDS, "inputs_embeds": np.zeros((2, 5, 8))}, ValueError, "either input_ids or inputs_embeds"),
    ({"input_ids": IDS + 15}, ValueError, r"input_ids must lie in \[0, vocab_size=20\), found 2\d"),
    ({"input_ids": -IDS}, ValueError, r"input_ids must lie in \[0, vocab_size=20\), found -4"),
    ({"input_ids": IDS.astype(float)}, TypeError, "input_ids must hold integers, got dtype float64"),
    ({"input_ids": IDS.astype(bool)}, TypeError, "input_ids must hold integers"),
    ({"input_ids": [[4, 5], [6]]}, ValueError, "input_ids must be a rectangular array"),
    ({"input_ids": IDS[0]}, ValueError, r"input_ids must have shape \(batch, sequence\), got shape \(5,\)"),
    ({"input_ids": np.zeros((2, 0), int)}, ValueError, r"at least one token, got shape \(2, 0\)"),
    ({"input_ids": np.zeros((0, 3), int)}, ValueError, r"at least one sequence.*\(0, 3\)"),
    ({"input_ids": np.full((1, 13), 4)}, ValueError,
     "input_ids has 13 positions but max_encoder_position_embeddings=12"),
    ({"input_ids": IDS, "attention_mask": np.ones((2, 4))}, ValueError,
     r"attention_mask must have shape \(2, 5\).*got \(2, 4\)"),
    ({"input_ids": IDS, "attention_mask": np.full((2, 5), 2)}, ValueError,
     "attention_mask values must be 0 or 1, found 2"),
    ({"input_ids": IDS, "global_attention_mask": np.full((2, 5), 0.5)}, ValueError,
     "global_attention_mask values must be 0 or 1, found 0.5"),
    ({"input_ids": IDS, "decoder_input_ids": np.full((2, 7), 4)}, ValueError,
     "decoder_input_ids has 7 positions but max_decoder_position_embeddings=6"),
    ({"input_ids": IDS, "decoder_input_ids": DEC[:1]}, ValueError,
     "input_ids has batch size 2 but decoder_input_ids has batch size 1"),
    ({"input_ids": IDS, "decoder_input_ids": DEC, "decoder_attention_mask": np.ones((2, 2))}, ValueError,
     r"decoder_attention_mask must have shape \(2, 3\)"),
    ({"input_ids": IDS, "labels": np.array([[4, 5, 20], [1, 2, 3]])}, ValueError,
     r"labels must lie in \[0, vocab_size=20\) or be -100, found 20"),
    ({"input_ids": IDS, "labels": np.array([[4, 5, -1]])}, ValueError, "found -1"),
    ({"input_ids": IDS, "head_mask": np.ones((1, 2))}, ValueError,
     r"head_mask must have shape \(layers=2, heads=2\), got \(1, 2\)"),
    ({"input_ids": IDS, "cross_attn_head_mask": np.ones((1, 3))}, ValueError,
     r"cross_attn_head_mask must have shape \(layers=1, heads=2\)"),
    ({"inputs_embeds": np.zeros((2, 5, 7))}, ValueError,
     r"inputs_embeds must have shape \(batch, sequence, d_model=8\)"),
    ({"inputs_embeds": np.zeros((2, 5, 8), int)}, TypeError, "inputs_embeds must be a floating array"),
    ({"inputs_embeds": np.zeros((2, 5, 8))}, ValueError, "decoder_input_ids or decoder_inputs_embeds"),
    ({"input_ids": IDS, "past_key_values": ((np.zeros((2, 2, 1, 4)),) * 4,) * 3}, ValueError,
     r"one entry per decoder layer \(1\), got 3"),
    ({"encoder_outputs": "hello", "decoder_input_ids": DEC}, TypeError, "encoder_outputs must be"),
    ({"encoder_outputs": (np.zeros((1, 5, 8)),), "decoder_input_ids": DEC}, ValueError,
     "encoder_outputs has batch size 1 but decoder_input_ids has batch size 2"),
])
def test_bad_forward_input_is_refused_with_a_clear_message(model, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        model(**kwargs)


@pytest.mark.parametrize("kwargs, error, pattern", [
    ({"num_beams": 2, "num_return_sequences": 3}, ValueError, "num_return_sequences=3 must be <= num_beams=2"),
    ({"num_return_sequences": 2}, ValueError, "num_return_sequences=2 must be <= num_beams=1"),
    ({"max_length": 8}, ValueError, "max_length=8 needs 7 decoder positions but max_decoder_position_embeddings=6"),
    ({"max_new_tokens": 0}, ValueError, "max_new_tokens must be >= 1, got 0"),
    ({"num_beams": 0}, ValueError, "num_beams must be >= 1, got 0"),
    ({"num_beams": 2.0}, TypeError, "num_beams must be an int"),
    ({"min_length": -1}, ValueError, "min_length must be >= 0"),
    ({"early_stopping": "maybe"}, ValueError, "early_stopping must be True, False or 'never'"),
    ({"length_penalty": "long"}, TypeError, "length_penalty must be a number"),
])
def test_bad_generate_arguments_are_refused(model, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        model.generate(IDS, max_length=kwargs.pop("max_length", 5), **kwargs)


def test_generate_checks_its_inputs(model):
    with pytest.raises(ValueError, match="input_ids must lie in"):
        model.generate(IDS + 30, max_length=4)
    with pytest.raises(ValueError, match=r"attention_mask must have shape \(2, 5\)"):
        model.generate(IDS, attention_mask=np.ones((2, 3)), max_length=4)


def test_constructor_checks(model):
    with pytest.raises(TypeError, match="config must be an LEDConfig, a dict or a config object"):
        LEDModel(42)
    with pytest.raises(TypeError, match="dtype must be a NumPy floating type"):
        LEDModel(CONFIG, dtype=np.int32)
    weights = dict(LEDModel(CONFIG).weights)
    weights["encoder.layers.0.fc1.weight"] = np.zeros((3, 3))
    with pytest.raises(ValueError, match="wrong shape encoder.layers.0.fc1.weight"):
        LEDModel(CONFIG, weights)


def test_lists_and_bool_masks_are_accepted(model):
    a = model(input_ids=IDS.tolist(), attention_mask=(IDS != 1).tolist(), decoder_input_ids=DEC.tolist())
    b = model(input_ids=IDS, attention_mask=(IDS != 1).astype(np.int64), decoder_input_ids=DEC)
    np.testing.assert_array_equal(a.logits, b.logits)
    assert np.all(np.isfinite(a.logits))
