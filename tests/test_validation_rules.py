"""One home per input rule: led_ref.io.validation writes each rule once, against shapes and the operations NumPy
arrays and torch tensors share, and led_torch.validation applies it to tensors. The same bad value must be
refused by both packages with the same exception and the same message; only dtype/device checks are torch's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import led_torch.validation as tv
from led_ref.io import validation as rv


def _nan_at(shape, index, value=np.nan):
    array = np.zeros(shape)
    array[index] = value
    return array


def _cache(batch=2, heads=2, seq=1, head_dim=4, layers=1):
    return tuple((np.zeros((batch, heads, seq, head_dim)),) * 4 for _ in range(layers))


# (id, led_ref check, led_torch check, bad value as NumPy, substrings the one message must hold)
CASES = [
    ("ids_above_vocab", lambda v: rv.check_token_ids("input_ids", v, 20),
     lambda v: tv.check_ids("input_ids", v, 20), np.array([[1, 25, 3]]), ("input_ids", "vocab_size=20", "25")),
    ("ids_negative", lambda v: rv.check_token_ids("input_ids", v, 20),
     lambda v: tv.check_ids("input_ids", v, 20), np.array([[1, 2], [-3, 4]]), ("-3",)),
    ("ids_1d", lambda v: rv.check_token_ids("input_ids", v, 20),
     lambda v: tv.check_ids("input_ids", v, 20), np.array([1, 2, 3]), ("(batch, sequence)", "(3,)")),
    ("ids_empty", lambda v: rv.check_token_ids("input_ids", v, 20),
     lambda v: tv.check_ids("input_ids", v, 20), np.zeros((2, 0), np.int64), ("(2, 0)",)),
    ("labels_above_vocab", lambda v: rv.check_labels("labels", v, 20),
     lambda v: tv.check_ids("labels", v, 20, allow_ignore=True), np.array([[4, -100, 20]]), ("or be -100", "20")),
    ("mask_shape", lambda v: rv.check_mask("attention_mask", v, (2, 5)),
     lambda v: tv.check_mask("attention_mask", v, (2, 5)), np.ones((2, 4), np.int64), ("(2, 5)", "(2, 4)")),
    ("mask_value", lambda v: rv.check_mask("attention_mask", v, (1, 3)),
     lambda v: tv.check_mask("attention_mask", v, (1, 3)), np.array([[1.0, 0.5, 0.0]]), ("0 or 1", "0.5")),
    ("mask_nan", lambda v: rv.check_mask("attention_mask", v, (1, 3)),
     lambda v: tv.check_mask("attention_mask", v, (1, 3)), np.array([[1.0, np.nan, 0.0]]), ("nan",)),
    ("embeds_width", lambda v: rv.check_embeds("inputs_embeds", v, 8),
     lambda v: tv.check_embeds("inputs_embeds", v, 8), np.zeros((2, 3, 7)), ("d_model=8", "(2, 3, 7)")),
    ("embeds_inf", lambda v: rv.check_embeds("inputs_embeds", v, 8),
     lambda v: tv.check_embeds("inputs_embeds", v, 8), _nan_at((2, 3, 8), (1, 2, 5), -np.inf),
     ("-inf", "(1, 2, 5)", "1 of 48")),
    ("embeds_nan", lambda v: rv.check_embeds("inputs_embeds", v, 8),
     lambda v: tv.check_embeds("inputs_embeds", v, 8), _nan_at((1, 4, 8), (0, 3, 7)), ("nan", "(0, 3, 7)")),
    ("head_mask_shape", lambda v: rv.check_head_mask("head_mask", v, 2, 4),
     lambda v: tv.check_head_mask("head_mask", v, 2, 4), np.ones((2, 3)), ("layers=2", "heads=4", "(2, 3)")),
    ("head_mask_nan", lambda v: rv.check_head_mask("head_mask", v, 2, 2),
     lambda v: tv.check_head_mask("head_mask", v, 2, 2), _nan_at((2, 2), (1, 0)), ("nan", "(1, 0)")),
    ("encoder_hidden_width", lambda v: rv.check_encoder_hidden("encoder_outputs[0]", v, 8, np.float64),
     lambda v: tv.check_encoder_hidden("encoder_outputs[0]", v, 8), np.zeros((2, 6, 5)), ("d_model=8", "(2, 6, 5)")),
    ("encoder_hidden_empty", lambda v: rv.check_encoder_hidden("encoder_outputs[0]", v, 8, np.float64),
     lambda v: tv.check_encoder_hidden("encoder_outputs[0]", v, 8), np.zeros((2, 0, 8)), ("(2, 0, 8)",)),
    ("cache_batch", lambda v: rv.check_cache("past_key_values", v, 1, 3, 2, 4),
     lambda v: tv.check_cache("past_key_values", v, 1, 3, 2, 4, torch.float64), _cache(batch=2),
     ("batch=3", "(2, 2, 1, 4)")),
    ("cache_layers", lambda v: rv.check_cache("past_key_values", v, 2, 2, 2, 4),
     lambda v: tv.check_cache("past_key_values", v, 2, 2, 2, 4, torch.float64), _cache(layers=3),
     ("one entry per decoder layer (2), got 3",)),
    ("length", lambda n: rv.check_length("input_ids", n, "max_encoder_position_embeddings", 12),
     lambda n: tv.check_length("input_ids", n, 12, "max_encoder_position_embeddings"), 13,
     ("13 positions", "max_encoder_position_embeddings=12")),
]


def _as_torch(value):
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if isinstance(value, tuple):
        return tuple(_as_torch(v) for v in value)
    return value


@pytest.mark.parametrize("ref_check, torch_check, value, mentions", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_both_packages_refuse_a_bad_value_with_the_same_message(ref_check, torch_check, value, mentions):
    with pytest.raises((ValueError, TypeError)) as ref_err:
        ref_check(value)
    with pytest.raises((ValueError, TypeError)) as torch_err:
        torch_check(_as_torch(value))
    assert type(ref_err.value) is type(torch_err.value)
    assert str(torch_err.value) == str(ref_err.value)
    missing = [m for m in mentions if m not in str(ref_err.value)]
    assert not missing, f"{str(ref_err.value)!r} does not mention {missing}"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_the_finite_rule_locates_the_first_bad_entry_in_low_precision_tensors(dtype):
    t = torch.zeros(2, 3, 4, dtype=dtype)
    t[1, 0, 2], t[1, 2, 3] = float("inf"), float("nan")
    with pytest.raises(ValueError) as err:
        tv.check_embeds("inputs_embeds", t, 4)
    assert str(err.value) == "inputs_embeds must be finite, found inf at index (1, 0, 2) (2 of 24 entries are nan/inf)"


def test_the_overflow_rule_names_the_dtype_in_both_packages():
    big = np.full((1, 2, 4), 1e6)
    with pytest.raises(ValueError) as ref_err:
        rv.as_dtype("inputs_embeds", big, np.float16)
    with pytest.raises(ValueError) as torch_err:
        tv.as_model_dtype("inputs_embeds", torch.from_numpy(big), torch.float16)
    for err, dtype in ((ref_err, "float16"), (torch_err, "torch.float16")):
        assert str(err.value) == (f"inputs_embeds holds values beyond the range of the model's dtype {dtype} "
                                  "(largest magnitude 1e+06)")


def test_valid_values_pass_every_rule_in_both_packages():
    ids = np.array([[0, 5, 19], [2, 3, 4]])
    assert rv.check_token_ids("input_ids", ids, 20).tolist() == ids.tolist()
    tv.check_ids("input_ids", torch.from_numpy(ids), 20)
    mask = np.array([[1.0, 0.0, 1.0], [True, True, False]])
    assert rv.check_mask("attention_mask", mask, (2, 3)).dtype == np.int64
    tv.check_mask("attention_mask", torch.from_numpy(mask), (2, 3))
    tv.check_mask("attention_mask", torch.from_numpy(mask).bool(), (2, 3))
    rv.check_embeds("inputs_embeds", np.ones((1, 2, 4)), 4)
    tv.check_embeds("inputs_embeds", torch.ones(1, 2, 4, dtype=torch.bfloat16), 4)
    assert len(rv.check_cache("past_key_values", _cache(), 1, 2, 2, 4)) == 1
    tv.check_cache("past_key_values", _as_torch(_cache()), 1, 2, 2, 4, torch.float64)


# ---- the heads' rules (eos pooling, class labels, span positions), through both packages' models
HEAD_CONFIG = dict(vocab_size=20, d_model=8, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                   decoder_attention_heads=2, encoder_ffn_dim=8, decoder_ffn_dim=8, attention_window=[2],
                   max_encoder_position_embeddings=12, max_decoder_position_embeddings=12, num_labels=3)
HEAD_IDS = np.array([[0, 4, 5, 2], [0, 6, 2, 1]])  # one eos (2) per row

HEAD_CASES = [
    ("no_eos", "LEDForSequenceClassification", dict(input_ids=np.array([[0, 4, 5], [0, 6, 7]])),
     "input_ids hold no <eos> token (eos_token_id=2) to pool at"),
    ("uneven_eos", "LEDForSequenceClassification", dict(input_ids=np.array([[0, 2, 2], [0, 6, 2]])),
     "All examples must have the same number of <eos> tokens; eos_token_id=2 counts per row are [2, 1]"),
    ("class_label_range", "LEDForSequenceClassification", dict(input_ids=HEAD_IDS, labels=np.array([0, 3])),
     "labels must lie in [0, num_labels=3) or be -100, found 3"),
    ("class_labels_per_row", "LEDForSequenceClassification", dict(input_ids=HEAD_IDS, labels=np.array([0, 1, 2])),
     "labels must hold one entry per row (batch=2), got shape (3,)"),
    ("multi_label_shape", "LEDForSequenceClassification",
     dict(input_ids=HEAD_IDS, labels=np.zeros((2, 2), np.float32)),
     "labels must have shape (2, 3) (that of the logits), got (2, 2)"),
    ("span_positions", "LEDForQuestionAnswering",
     dict(input_ids=HEAD_IDS, start_positions=np.array([[1, 2]]), end_positions=np.array([1, 2])),
     "start_positions must have shape (batch=2,), got (1, 2)"),
]


@pytest.mark.parametrize("architecture, kwargs, message", [pytest.param(*c[1:], id=c[0]) for c in HEAD_CASES])
def test_both_packages_heads_refuse_bad_labels_with_the_same_message(architecture, kwargs, message):
    import led_ref
    import led_torch

    config = led_ref.LEDConfig(**HEAD_CONFIG)
    ref = getattr(led_ref, architecture)(config, seed=0)
    fast = getattr(led_torch, architecture).from_weights(config, ref.weights, dtype=torch.float64)
    with pytest.raises(ValueError) as ref_err:
        ref(**kwargs)
    with pytest.raises(ValueError) as torch_err:
        fast(**{k: torch.from_numpy(v) for k, v in kwargs.items()})
    assert str(ref_err.value) == message
    assert str(torch_err.value) == message
