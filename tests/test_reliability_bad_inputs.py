"""Every bad input is refused with a ValueError/TypeError that names the argument, the offending value and the
limit. The same table runs against led_ref and led_torch, through every public entry point it applies to:
the forward pass of each of the four classes, `get_encoder()` and `generate`; then caches that do not fit
the call, integer ids of any width, and the benchmark's options.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from tests.reliability_cases import CLASSES, DEC, IDS, IMPLS, MASK, Impl, call, model_for, with_value

ENTRIES = CLASSES + ("get_encoder", "generate")
ENCODER_ARGS = ("input_ids", "attention_mask", "global_attention_mask", "head_mask", "inputs_embeds",
                "output_attentions", "output_hidden_states")
GENERATE_INPUTS = ("input_ids", "attention_mask", "global_attention_mask")


@dataclass(frozen=True)
class Bad:
    """A bad input: the kwargs, the exception type, and the substrings its message must contain."""

    id: str
    kwargs: dict
    error: type
    mentions: tuple[str, ...]
    entries: tuple[str, ...] = ENTRIES
    defaults: dict = field(default_factory=dict)  # added when the entry needs them (decoder inputs)


NAN_EMBEDS = with_value(np.zeros((2, 6, 8)), (1, 2, 3), np.nan)
FORWARDS = CLASSES
NOT_GENERATE = CLASSES + ("get_encoder",)
BAD_INPUTS = [
    # ---- token ids
    Bad("ids_above_vocab", dict(input_ids=with_value(IDS, (0, 1), 25)), ValueError, ("input_ids", "25", "20")),
    Bad("ids_negative", dict(input_ids=with_value(IDS, (1, 2), -3)), ValueError, ("input_ids", "-3", "20")),
    Bad("ids_float", dict(input_ids=IDS.astype(np.float32)), TypeError, ("input_ids", "float32")),
    Bad("ids_bool", dict(input_ids=IDS > 3), TypeError, ("input_ids", "bool")),
    Bad("ids_1d", dict(input_ids=IDS[0]), ValueError, ("input_ids", "(6,)")),
    Bad("ids_3d", dict(input_ids=IDS[None]), ValueError, ("input_ids", "(1, 2, 6)")),
    Bad("ids_no_tokens", dict(input_ids=np.zeros((2, 0), np.int64)), ValueError, ("input_ids", "(2, 0)")),
    Bad("ids_no_rows", dict(input_ids=np.zeros((0, 3), np.int64)), ValueError, ("input_ids", "(0, 3)")),
    Bad("ids_too_long", dict(input_ids=np.full((1, 19), 4)), ValueError,
        ("input_ids", "19", "max_encoder_position_embeddings=18")),
    # ---- encoder masks
    Bad("mask_shape", dict(input_ids=IDS, attention_mask=np.ones((2, 4), np.int64)), ValueError,
        ("attention_mask", "(2, 4)", "(2, 6)")),
    Bad("mask_value", dict(input_ids=IDS, attention_mask=with_value(MASK, (0, 0), 2)), ValueError,
        ("attention_mask", "2", "0 or 1")),
    Bad("mask_nan", dict(input_ids=IDS, attention_mask=with_value(MASK.astype(float), (0, 3), np.nan)), ValueError,
        ("attention_mask", "nan", "0 or 1")),
    Bad("global_mask_value", dict(input_ids=IDS, global_attention_mask=np.full((2, 6), 0.5)), ValueError,
        ("global_attention_mask", "0.5", "0 or 1")),
    Bad("global_mask_shape", dict(input_ids=IDS, global_attention_mask=np.ones((1, 6), np.int64)), ValueError,
        ("global_attention_mask", "(1, 6)", "(2, 6)")),
    Bad("mask_strings", dict(input_ids=IDS, attention_mask=np.full((2, 6), "1")), TypeError, ("attention_mask",)),
    # ---- ids or embeddings
    Bad("ids_and_embeds", dict(input_ids=IDS, inputs_embeds=np.zeros((2, 6, 8)), decoder_input_ids=DEC),
        ValueError, ("input_ids", "inputs_embeds", "both"), NOT_GENERATE),
    Bad("neither_ids_nor_embeds", dict(decoder_input_ids=DEC), ValueError, ("input_ids", "inputs_embeds"),
        ("LEDModel", "LEDForConditionalGeneration", "LEDForQuestionAnswering")),
    Bad("encoder_neither", dict(attention_mask=MASK), ValueError, ("input_ids", "inputs_embeds"), ("get_encoder",)),
    Bad("embeds_width", dict(inputs_embeds=np.zeros((2, 6, 7)), decoder_input_ids=DEC), ValueError,
        ("inputs_embeds", "(2, 6, 7)", "d_model=8"), ("LEDModel", "LEDForConditionalGeneration", "get_encoder")),
    Bad("embeds_int", dict(inputs_embeds=np.zeros((2, 6, 8), np.int64), decoder_input_ids=DEC), TypeError,
        ("inputs_embeds", "int64"), ("LEDModel", "LEDForConditionalGeneration", "get_encoder")),
    Bad("embeds_nan", dict(inputs_embeds=NAN_EMBEDS, decoder_input_ids=DEC), ValueError,
        ("inputs_embeds", "nan"), ("LEDModel", "LEDForConditionalGeneration", "get_encoder")),
    Bad("embeds_too_long", dict(inputs_embeds=np.zeros((1, 19, 8)), decoder_input_ids=DEC[:1]), ValueError,
        ("inputs_embeds", "19", "max_encoder_position_embeddings=18"),
        ("LEDModel", "LEDForConditionalGeneration", "get_encoder")),
    # ---- head masks
    Bad("head_mask_shape", dict(input_ids=IDS, head_mask=np.ones((1, 2))), ValueError,
        ("head_mask", "(1, 2)", "layers=2"), NOT_GENERATE),
    Bad("head_mask_nan", dict(input_ids=IDS, head_mask=np.full((2, 2), np.nan)), ValueError,
        ("head_mask", "nan"), NOT_GENERATE),
    Bad("decoder_head_mask_shape", dict(input_ids=IDS, decoder_head_mask=np.ones((2, 2))), ValueError,
        ("decoder_head_mask", "(2, 2)", "layers=1"), FORWARDS),
    Bad("cross_head_mask_shape", dict(input_ids=IDS, cross_attn_head_mask=np.ones((1, 3))), ValueError,
        ("cross_attn_head_mask", "(1, 3)", "heads=2"), FORWARDS),
    # ---- switches
    Bad("flag_array", dict(input_ids=IDS, output_attentions=np.ones(3)), TypeError, ("output_attentions",),
        NOT_GENERATE),
    Bad("flag_two", dict(input_ids=IDS, output_hidden_states=2), TypeError, ("output_hidden_states", "2"), FORWARDS),
    # ---- decoder inputs (the forward passes)
    Bad("decoder_ids_above_vocab", dict(input_ids=IDS, decoder_input_ids=with_value(DEC, (1, 1), 21)), ValueError,
        ("decoder_input_ids", "21", "20"), ("LEDModel", "LEDForConditionalGeneration", "LEDForQuestionAnswering")),
    Bad("decoder_ids_float", dict(input_ids=IDS, decoder_input_ids=DEC.astype(np.float64)), TypeError,
        ("decoder_input_ids", "float64"), FORWARDS),
    Bad("decoder_too_long", dict(input_ids=IDS, decoder_input_ids=np.full((2, 21), 4)), ValueError,
        ("decoder_input_ids", "21", "max_decoder_position_embeddings=20"), FORWARDS),
    Bad("decoder_batch", dict(input_ids=IDS, decoder_input_ids=DEC[:1]), ValueError,
        ("decoder_input_ids", "batch", "1", "2"), FORWARDS),
    Bad("decoder_mask_shape", dict(input_ids=IDS, decoder_input_ids=DEC, decoder_attention_mask=np.ones((2, 2))),
        ValueError, ("decoder_attention_mask", "(2, 2)", "(2, 3)"),
        ("LEDModel", "LEDForConditionalGeneration", "LEDForQuestionAnswering")),
    Bad("decoder_mask_value", dict(input_ids=IDS, decoder_input_ids=DEC,
                                   decoder_attention_mask=with_value(np.ones((2, 3)), (0, 1), -1)),
        ValueError, ("decoder_attention_mask", "-1", "0 or 1"),
        ("LEDModel", "LEDForConditionalGeneration", "LEDForQuestionAnswering")),
    Bad("decoder_ids_and_embeds", dict(input_ids=IDS, decoder_input_ids=DEC, decoder_inputs_embeds=np.zeros((2, 3, 8))),
        ValueError, ("decoder_input_ids", "decoder_inputs_embeds"), FORWARDS),
    Bad("decoder_embeds_width", dict(input_ids=IDS, decoder_inputs_embeds=np.zeros((2, 3, 5))), ValueError,
        ("decoder_inputs_embeds", "(2, 3, 5)", "d_model=8"),
        ("LEDModel", "LEDForConditionalGeneration", "LEDForQuestionAnswering")),
    Bad("decoder_embeds_nan", dict(input_ids=IDS,
                                   decoder_inputs_embeds=with_value(np.zeros((2, 3, 8)), (0, 0, 0), np.inf)),
        ValueError, ("decoder_inputs_embeds", "inf"),
        ("LEDModel", "LEDForConditionalGeneration", "LEDForQuestionAnswering")),
    Bad("encoder_outputs_str", dict(encoder_outputs="hello", decoder_input_ids=DEC), TypeError,
        ("encoder_outputs", "str"), ("LEDModel", "LEDForConditionalGeneration", "LEDForQuestionAnswering")),
    Bad("encoder_outputs_batch", dict(encoder_outputs=(np.zeros((1, 6, 8)),), decoder_input_ids=DEC), ValueError,
        ("encoder_outputs", "1", "2"), ("LEDModel", "LEDForConditionalGeneration", "LEDForQuestionAnswering")),
    Bad("encoder_outputs_width", dict(encoder_outputs=(np.zeros((2, 6, 5)),), decoder_input_ids=DEC), ValueError,
        ("encoder_outputs", "(2, 6, 5)", "d_model=8"),
        ("LEDModel", "LEDForConditionalGeneration", "LEDForQuestionAnswering")),
    Bad("decoder_mask_one_token", dict(input_ids=IDS, decoder_input_ids=DEC[:, :1],
                                       decoder_attention_mask=np.full((2, 1), 7)),
        ValueError, ("decoder_attention_mask", "7", "0 or 1"),
        ("LEDModel", "LEDForConditionalGeneration", "LEDForQuestionAnswering")),
    Bad("encoder_outputs_no_positions", dict(encoder_outputs=(np.zeros((2, 0, 8)),), decoder_input_ids=DEC),
        ValueError, ("encoder_outputs", "(2, 0, 8)"),
        ("LEDModel", "LEDForConditionalGeneration", "LEDForQuestionAnswering")),
    Bad("encoder_outputs_nan", dict(encoder_outputs=(np.full((2, 6, 8), np.nan),), decoder_input_ids=DEC),
        ValueError, ("encoder_outputs", "nan", "finite"),
        ("LEDModel", "LEDForConditionalGeneration", "LEDForQuestionAnswering")),
    Bad("encoder_outputs_int", dict(encoder_outputs=(np.zeros((2, 6, 8), np.int64),), decoder_input_ids=DEC),
        TypeError, ("encoder_outputs", "floating"),
        ("LEDModel", "LEDForConditionalGeneration", "LEDForQuestionAnswering")),
    Bad("past_key_values_str", dict(input_ids=IDS, decoder_input_ids=DEC, past_key_values="cache"), TypeError,
        ("past_key_values", "str"), ("LEDModel", "LEDForConditionalGeneration")),
    Bad("past_key_values_layers", dict(input_ids=IDS, decoder_input_ids=DEC,
                                       past_key_values=((np.zeros((2, 2, 1, 4)),) * 4,) * 3), ValueError,
        ("past_key_values", "3", "1"), ("LEDModel", "LEDForConditionalGeneration")),
    Bad("past_key_values_batch", dict(input_ids=IDS, decoder_input_ids=DEC,
                                      past_key_values=((np.zeros((1, 2, 1, 4)),) * 4,)), ValueError,
        ("past_key_values", "(1, 2, 1, 4)", "batch=2"), ("LEDModel", "LEDForConditionalGeneration")),
    Bad("past_key_values_scalar", dict(input_ids=IDS, decoder_input_ids=DEC, past_key_values=(np.array(0),)),
        ValueError, ("past_key_values",), ("LEDModel", "LEDForConditionalGeneration")),
    # ---- labels
    Bad("lm_labels_above_vocab", dict(input_ids=IDS, labels=with_value(DEC, (1, 2), 20)), ValueError,
        ("labels", "20", "-100"), ("LEDForConditionalGeneration",)),
    Bad("lm_labels_negative", dict(input_ids=IDS, labels=with_value(DEC, (0, 2), -1)), ValueError,
        ("labels", "-1", "-100"), ("LEDForConditionalGeneration",)),
    Bad("lm_labels_float", dict(input_ids=IDS, labels=DEC.astype(np.float32)), TypeError,
        ("labels", "float32"), ("LEDForConditionalGeneration",)),
    Bad("lm_labels_batch", dict(input_ids=IDS, labels=DEC[:1]), ValueError, ("labels", "1", "2"),
        ("LEDForConditionalGeneration",)),
    Bad("lm_labels_length", dict(input_ids=IDS, decoder_input_ids=DEC, labels=np.full((2, 4), 3)), ValueError,
        ("labels", "4", "3"), ("LEDForConditionalGeneration",)),
    Bad("class_labels_range", dict(input_ids=IDS, labels=np.array([0, 5])), ValueError,
        ("labels", "5", "num_labels=3"), ("LEDForSequenceClassification",)),
    Bad("class_labels_batch", dict(input_ids=IDS, labels=np.array([0, 1, 2])), ValueError,
        ("labels", "3", "2"), ("LEDForSequenceClassification",)),
    Bad("class_no_eos", dict(input_ids=np.array([[0, 4, 5], [0, 6, 7]])), ValueError,
        ("input_ids", "eos_token_id=2"), ("LEDForSequenceClassification",)),
    Bad("class_embeds_only", dict(inputs_embeds=np.zeros((2, 6, 8)), decoder_input_ids=DEC), ValueError,
        ("input_ids",), ("LEDForSequenceClassification",)),
    Bad("qa_positions_float", dict(input_ids=IDS, start_positions=np.array([1.0, 2.0]),
                                   end_positions=np.array([2, 3])), TypeError,
        ("start_positions", "float64"), ("LEDForQuestionAnswering",)),
    Bad("qa_positions_batch", dict(input_ids=IDS, start_positions=np.array([1, 2, 3]),
                                   end_positions=np.array([2, 3])), ValueError,
        ("start_positions", "(3,)", "2"), ("LEDForQuestionAnswering",)),
    # ---- generation settings
    Bad("more_sequences_than_beams", dict(input_ids=IDS, num_beams=2, num_return_sequences=3), ValueError,
        ("num_return_sequences", "3", "num_beams=2"), ("generate",)),
    Bad("zero_beams", dict(input_ids=IDS, num_beams=0), ValueError, ("num_beams", "0", "1"), ("generate",)),
    Bad("float_beams", dict(input_ids=IDS, num_beams=2.0), TypeError, ("num_beams", "2.0"), ("generate",)),
    Bad("max_length_one", dict(input_ids=IDS, max_length=1), ValueError, ("max_length", "1", "2"), ("generate",)),
    Bad("max_length_past_positions", dict(input_ids=IDS, max_length=22), ValueError,
        ("max_length", "22", "max_decoder_position_embeddings=20"), ("generate",)),
    Bad("zero_new_tokens", dict(input_ids=IDS, max_new_tokens=0), ValueError, ("max_new_tokens", "0", "1"),
        ("generate",)),
    Bad("negative_min_length", dict(input_ids=IDS, min_length=-1), ValueError, ("min_length", "-1", "0"),
        ("generate",)),
    Bad("negative_ngram", dict(input_ids=IDS, no_repeat_ngram_size=-2), ValueError,
        ("no_repeat_ngram_size", "-2", "0"), ("generate",)),
    Bad("early_stopping_word", dict(input_ids=IDS, num_beams=2, early_stopping="maybe"), ValueError,
        ("early_stopping", "maybe"), ("generate",)),
    Bad("length_penalty_str", dict(input_ids=IDS, num_beams=2, length_penalty="long"), TypeError,
        ("length_penalty", "long"), ("generate",)),
]


GENERATE_ARGS = GENERATE_INPUTS + ("num_beams", "num_return_sequences", "max_length", "max_new_tokens",
                                   "min_length", "no_repeat_ngram_size", "early_stopping", "length_penalty")
ACCEPTS = {"get_encoder": set(ENCODER_ARGS), "generate": set(GENERATE_ARGS)}


def _table():
    """(impl, entry, bad) for every entry the bad input applies to and whose signature takes its kwargs."""
    for impl in IMPLS:
        for bad in BAD_INPUTS:
            for entry in bad.entries:
                if entry in ACCEPTS and not set(bad.kwargs) <= ACCEPTS[entry]:
                    continue
                yield pytest.param(impl, entry, bad, id=f"{impl.name}-{entry}-{bad.id}")


@pytest.mark.parametrize("impl, entry, bad", list(_table()))
def test_bad_input_is_refused_naming_argument_value_and_limit(impl, entry, bad):
    with pytest.raises((ValueError, TypeError)) as err:
        call(impl, entry, dict(bad.kwargs))
    message = str(err.value)
    assert isinstance(err.value, bad.error), f"{type(err.value).__name__} instead of {bad.error.__name__}: {message}"
    missing = [m for m in bad.mentions if m not in message]
    assert not missing, f"message {message!r} does not mention {missing}"


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "uint8"])
@pytest.mark.parametrize("entry", ["LEDForConditionalGeneration", "get_encoder", "generate"])
@pytest.mark.parametrize("impl", IMPLS, ids=lambda i: i.name)
def test_narrow_integer_ids_work_or_are_refused_by_name(impl, entry, dtype):
    """Ids, masks and labels of any integer width: the int64 result, or a TypeError naming argument and dtype."""
    kwargs = dict(input_ids=IDS, attention_mask=MASK)
    if entry == "LEDForConditionalGeneration":
        kwargs |= dict(decoder_input_ids=DEC, labels=DEC)
    want = call(impl, entry, kwargs)
    try:
        got = call(impl, entry, {k: v.astype(dtype) for k, v in kwargs.items()})
    except TypeError as err:
        assert dtype in str(err) and any(k in str(err) for k in kwargs), str(err)
        return
    for name in ("logits", "loss", "last_hidden_state") if entry != "generate" else ():
        if getattr(want, name, None) is not None:
            np.testing.assert_array_equal(impl.numpy(getattr(got, name)), impl.numpy(getattr(want, name)))
    if entry == "generate":
        np.testing.assert_array_equal(impl.numpy(got), impl.numpy(want))


def _cached(impl: Impl, ids=IDS, dec=DEC):
    """(model, past_key_values) of LEDForConditionalGeneration after one cached call on (ids, dec)."""
    model = model_for(impl, "LEDForConditionalGeneration")
    out = call(impl, "LEDForConditionalGeneration", dict(input_ids=ids, decoder_input_ids=dec, use_cache=True))
    return model, out.past_key_values


@pytest.mark.parametrize("impl", IMPLS, ids=lambda i: i.name)
def test_one_token_decoder_mask_is_checked_against_the_cache(impl):
    """A (1, 1) decoder_attention_mask against 3 cached positions is refused (it must cover 3 + 1)."""
    _, past = _cached(impl, IDS[:1], DEC[:1])
    with pytest.raises(ValueError, match=r"decoder_attention_mask.*\(1, 4\).*\(1, 1\)"):
        call(impl, "LEDForConditionalGeneration", dict(input_ids=IDS[:1], decoder_input_ids=DEC[:1, :1],
                                                       past_key_values=past, decoder_attention_mask=np.ones((1, 1))))
    ok = call(impl, "LEDForConditionalGeneration", dict(input_ids=IDS[:1], decoder_input_ids=DEC[:1, :1],
                                                        past_key_values=past, decoder_attention_mask=np.ones((1, 4))))
    assert np.all(np.isfinite(impl.numpy(ok.logits)))


@pytest.mark.parametrize("impl", IMPLS, ids=lambda i: i.name)
def test_a_cache_from_another_source_length_is_named(impl):
    _, past = _cached(impl)  # made over 6 source positions
    with pytest.raises(ValueError) as err:
        call(impl, "LEDForConditionalGeneration", dict(input_ids=IDS[:, :4], decoder_input_ids=DEC[:, :1],
                                                       past_key_values=past))
    message = str(err.value)
    assert all(m in message for m in ("past_key_values", "cross-attention", "6", "4")), message


@pytest.mark.parametrize("flag", ["--new-tokens", "--beams"])
def test_bench_refuses_zero_tokens_or_beams_before_running(flag, capsys, monkeypatch):
    from parity import commands as cli
    from parity.perf import bench

    monkeypatch.setattr(bench, "build_impls", lambda *a, **k: pytest.fail("the benchmark ran"))
    assert cli.main(["bench", "--quick", flag, "0"]) == 2
    err = capsys.readouterr().err
    assert flag.lstrip("-") in err and ">= 1" in err and "got 0" in err, err
