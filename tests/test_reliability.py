"""Reliability of both implementations (issue 7): every bad input is refused with a ValueError/TypeError that
names the argument, the offending value and the limit; degenerate but valid input stays finite and means
something (checked against the other implementation and against invariances that hold by construction).

The same table of bad inputs runs against led_ref and led_torch, through every public entry point it
applies to: the forward pass of each of the four classes, `get_encoder()` and `generate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

import led_ref
import led_torch
from led_ref.init import random_weights
from led_ref.io.config import LEDConfig
from tests.hf_oracle import scaled_error

# vocab 20, windows 2 and 4 (padding to multiples of 4), a position table that is not a multiple of 4.
CONFIG = LEDConfig(vocab_size=20, d_model=8, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                   decoder_attention_heads=2, encoder_ffn_dim=8, decoder_ffn_dim=8, attention_window=[2, 4],
                   max_encoder_position_embeddings=18, max_decoder_position_embeddings=20, num_labels=3)
IDS = np.array([[0, 4, 5, 6, 7, 2], [0, 8, 9, 10, 2, 1]])  # one eos (2) per row, as classification needs
MASK = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0]])
DEC = np.array([[2, 4, 5], [2, 8, 9]])
CLASSES = ("LEDModel", "LEDForConditionalGeneration", "LEDForSequenceClassification", "LEDForQuestionAnswering")
ENTRIES = CLASSES + ("get_encoder", "generate")
ENCODER_ARGS = ("input_ids", "attention_mask", "global_attention_mask", "head_mask", "inputs_embeds",
                "output_attentions", "output_hidden_states")
GENERATE_INPUTS = ("input_ids", "attention_mask", "global_attention_mask")


# ------------------------------------------------------------------------------------------ the two packages
@dataclass(frozen=True)
class Impl:
    """One package: how to build a model from HF-named float64 weights and how to pass it an array."""

    name: str

    def build(self, architecture: str, config: LEDConfig = CONFIG, weights=None, dtype=None, seed: int = 0):
        weights = random_weights(config, architecture, seed=seed, std=0.3) if weights is None else weights
        if self.name == "led_ref":
            return getattr(led_ref, architecture)(config, weights=weights, dtype=dtype or np.float64)
        return getattr(led_torch, architecture).from_weights(config, weights, dtype=dtype or torch.float64)

    def array(self, value):
        """numpy arrays of numeric/bool dtype become tensors of the same dtype for led_torch; the rest as is."""
        if self.name == "led_torch" and isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            return torch.from_numpy(np.ascontiguousarray(value))
        if isinstance(value, tuple):  # encoder_outputs, past_key_values
            return tuple(self.array(v) for v in value)
        return value

    def arrays(self, kwargs: dict) -> dict:
        return {k: self.array(v) for k, v in kwargs.items()}

    def numpy(self, value) -> np.ndarray:
        if isinstance(value, torch.Tensor):
            return value.detach().to(torch.float64).numpy() if value.is_floating_point() else value.numpy()
        return np.asarray(value)


IMPLS = (Impl("led_ref"), Impl("led_torch"))
_MODELS: dict = {}


def model_for(impl: Impl, architecture: str):
    """A cached model of `architecture` (float64, seed 0) for the bad-input table (which never mutates it)."""
    key = (impl.name, architecture)
    if key not in _MODELS:
        _MODELS[key] = impl.build(architecture)
    return _MODELS[key]


def call(impl: Impl, entry: str, kwargs: dict):
    """Call `entry` ("LEDModel", ..., "get_encoder", "generate") of `impl` with `kwargs` (numpy values)."""
    kwargs = impl.arrays(kwargs)
    if entry in CLASSES:
        return model_for(impl, entry)(**kwargs)
    model = model_for(impl, "LEDForConditionalGeneration")
    if entry == "get_encoder":
        return model.get_encoder()(**kwargs)
    kwargs.setdefault("max_length", 4)
    return model.generate(**kwargs)


# ------------------------------------------------------------------------------------------ bad inputs
@dataclass(frozen=True)
class Bad:
    """A bad input: the kwargs, the exception type, and the substrings its message must contain."""

    id: str
    kwargs: dict
    error: type
    mentions: tuple[str, ...]
    entries: tuple[str, ...] = ENTRIES
    defaults: dict = field(default_factory=dict)  # added when the entry needs them (decoder inputs)


def _with(array: np.ndarray, index, value) -> np.ndarray:
    out = array.copy()
    out[index] = value
    return out


NAN_EMBEDS = _with(np.zeros((2, 6, 8)), (1, 2, 3), np.nan)
FORWARDS = CLASSES
NOT_GENERATE = CLASSES + ("get_encoder",)
BAD_INPUTS = [
    # ---- token ids
    Bad("ids_above_vocab", dict(input_ids=_with(IDS, (0, 1), 25)), ValueError, ("input_ids", "25", "20")),
    Bad("ids_negative", dict(input_ids=_with(IDS, (1, 2), -3)), ValueError, ("input_ids", "-3", "20")),
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
    Bad("mask_value", dict(input_ids=IDS, attention_mask=_with(MASK, (0, 0), 2)), ValueError,
        ("attention_mask", "2", "0 or 1")),
    Bad("mask_nan", dict(input_ids=IDS, attention_mask=_with(MASK.astype(float), (0, 3), np.nan)), ValueError,
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
    Bad("decoder_ids_above_vocab", dict(input_ids=IDS, decoder_input_ids=_with(DEC, (1, 1), 21)), ValueError,
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
                                   decoder_attention_mask=_with(np.ones((2, 3)), (0, 1), -1)),
        ValueError, ("decoder_attention_mask", "-1", "0 or 1"),
        ("LEDModel", "LEDForConditionalGeneration", "LEDForQuestionAnswering")),
    Bad("decoder_ids_and_embeds", dict(input_ids=IDS, decoder_input_ids=DEC, decoder_inputs_embeds=np.zeros((2, 3, 8))),
        ValueError, ("decoder_input_ids", "decoder_inputs_embeds"), FORWARDS),
    Bad("decoder_embeds_width", dict(input_ids=IDS, decoder_inputs_embeds=np.zeros((2, 3, 5))), ValueError,
        ("decoder_inputs_embeds", "(2, 3, 5)", "d_model=8"),
        ("LEDModel", "LEDForConditionalGeneration", "LEDForQuestionAnswering")),
    Bad("decoder_embeds_nan", dict(input_ids=IDS, decoder_inputs_embeds=_with(np.zeros((2, 3, 8)), (0, 0, 0), np.inf)),
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
    Bad("lm_labels_above_vocab", dict(input_ids=IDS, labels=_with(DEC, (1, 2), 20)), ValueError,
        ("labels", "20", "-100"), ("LEDForConditionalGeneration",)),
    Bad("lm_labels_negative", dict(input_ids=IDS, labels=_with(DEC, (0, 2), -1)), ValueError,
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


# ------------------------------------------------------------------------------------------ bad configs
@pytest.mark.parametrize("window, mentions", [
    (3, ("attention_window", "3", "even")),
    (0, ("attention_window", "0", "even")),
    (-4, ("attention_window", "-4", "even")),
    ([2, 4, 6], ("attention_window", "3", "encoder_layers=2")),
    ([2, 5], ("attention_window[1]", "5", "even")),
    (4.0, ("attention_window", "4.0", "int")),
])
def test_bad_windows_are_refused(window, mentions):
    with pytest.raises(ValueError) as err:
        LEDConfig(encoder_layers=2, attention_window=window)
    assert all(m in str(err.value) for m in mentions), str(err.value)


@pytest.mark.parametrize("impl", IMPLS, ids=lambda i: i.name)
@pytest.mark.parametrize("window", [3, [2, 4, 6]])
def test_a_config_broken_after_construction_is_refused_by_the_model(impl, window):
    """Configs are mutable (HF habit); a model must not be built on one that no longer validates."""
    config = LEDConfig.from_dict(CONFIG.to_dict())
    weights = random_weights(config, "LEDModel", seed=0)
    config.attention_window = window
    with pytest.raises(ValueError, match="attention_window"):
        impl.build("LEDModel", config=config, weights=weights)


@pytest.mark.parametrize("impl, dtype", [(IMPLS[0], np.int32), (IMPLS[1], torch.int32), (IMPLS[1], "float32")],
                         ids=["led_ref-int32", "led_torch-int32", "led_torch-str"])
def test_bad_model_dtype_is_refused(impl, dtype):
    with pytest.raises(TypeError, match="dtype"):
        impl.build("LEDModel", dtype=dtype)


# ------------------------------------------------------------------------------------------ degenerate inputs
def _outputs(impl: Impl, architecture: str, config: LEDConfig, kwargs: dict, weights=None) -> dict[str, np.ndarray]:
    """Every float output of one forward pass (attentions included), as float64 numpy."""
    model = impl.build(architecture, config=config, weights=weights)
    out = model(**impl.arrays(kwargs), output_attentions=True, output_hidden_states=True, use_cache=False)
    flat = {}
    for name in out.keys():
        value = getattr(out, name)
        items = value if isinstance(value, tuple) else (value,)
        for i, item in enumerate(items):
            if item is not None and not isinstance(item, (float, int)):
                flat[f"{name}[{i}]"] = impl.numpy(item)
            elif isinstance(item, float):
                flat[f"{name}[{i}]"] = np.asarray(item)
    return flat


def assert_finite(outputs: dict[str, np.ndarray], what: str) -> None:
    bad = [name for name, value in outputs.items() if not np.all(np.isfinite(value))]
    assert not bad, f"{what}: non-finite values in {bad}"


def assert_agree(a: dict, b: dict, budget: float, what: str, skip: tuple[str, ...] = ()) -> None:
    """Same output names and every array within `budget` (scaled error)."""
    names = [n for n in a if not n.startswith(skip)]
    assert set(names) == {n for n in b if not n.startswith(skip)}, f"{what}: {sorted(a)} vs {sorted(b)}"
    errors = {n: scaled_error(a[n], b[n]) for n in names}
    worst = max(errors, key=errors.get)
    assert errors[worst] < budget, f"{what}: {worst} differs by {errors[worst]:.3g} (budget {budget})"


def _both(architecture: str, kwargs: dict, config: LEDConfig = CONFIG, weights=None):
    ref = _outputs(IMPLS[0], architecture, config, kwargs, weights)
    ours = _outputs(IMPLS[1], architecture, config, kwargs, weights)
    return ref, ours


# HF (and this project) leaves the key axis of global_attentions padded and fills slots without a global token
# differently; compare the rest exactly.
GLOBAL = "encoder_global_attentions"


@pytest.mark.parametrize("architecture", CLASSES)
def test_fully_padded_row_is_finite_and_has_zero_attention(architecture):
    mask = MASK.copy()
    mask[1] = 0
    glob = np.zeros_like(IDS)
    glob[0, 1] = 1
    kwargs = dict(input_ids=IDS, attention_mask=mask, global_attention_mask=glob)
    ref, ours = _both(architecture, kwargs)
    for what, out in (("led_ref", ref), ("led_torch", ours)):
        assert_finite(out, what)
        for layer in range(CONFIG.encoder_layers):
            assert np.all(out[f"encoder_attentions[{layer}]"][1] == 0), f"{what}: padded row attends"
            assert np.all(out[f"{GLOBAL}[{layer}]"][1] == 0), f"{what}: padded row has global attention"
    assert_agree(ref, ours, 1e-9, f"{architecture} padded row, led_ref vs led_torch")
    # The padded row does not change the other row: same as running row 0 alone.
    alone = _outputs(IMPLS[0], architecture, CONFIG, {k: v[:1] for k, v in kwargs.items()})
    assert scaled_error(ref["encoder_last_hidden_state[0]"][:1], alone["encoder_last_hidden_state[0]"]) < 1e-12


def test_fully_padded_batch_generates_the_same_tokens():
    mask = np.zeros_like(IDS)
    tokens = [IMPLS[i].numpy(model_for(IMPLS[i], "LEDForConditionalGeneration").generate(
        IMPLS[i].array(IDS), attention_mask=IMPLS[i].array(mask), max_length=5, num_beams=2)) for i in (0, 1)]
    np.testing.assert_array_equal(tokens[0], tokens[1])


@pytest.mark.parametrize("impl", IMPLS, ids=lambda i: i.name)
@pytest.mark.parametrize("architecture", ["LEDForConditionalGeneration", "LEDForSequenceClassification"])
def test_global_flag_on_padding_is_ignored(impl, architecture):
    base = dict(input_ids=IDS, attention_mask=MASK, global_attention_mask=_with(np.zeros_like(IDS), (0, 1), 1))
    flagged = dict(base, global_attention_mask=_with(base["global_attention_mask"], (1, 5), 1))  # (1, 5) is padding
    a = _outputs(impl, architecture, CONFIG, base)
    b = _outputs(impl, architecture, CONFIG, flagged)
    assert_finite(b, impl.name)
    assert_agree(b, a, 1e-12, f"{impl.name}: global flag on a padding token")


def test_all_global_is_finite_agrees_and_ignores_the_window():
    """With every token global, each attends to all tokens with the global projections: the window is moot."""
    kwargs = dict(input_ids=IDS, attention_mask=MASK, global_attention_mask=np.ones_like(IDS))
    weights = random_weights(CONFIG, "LEDForConditionalGeneration", seed=3, std=0.3)
    ref, ours = _both("LEDForConditionalGeneration", kwargs, weights=weights)
    assert_finite(ref, "led_ref")
    assert_finite(ours, "led_torch")
    assert_agree(ref, ours, 1e-9, "all global, led_ref vs led_torch")
    wide = LEDConfig.from_dict(CONFIG.to_dict() | {"attention_window": [8, 6]})
    for impl, out in zip(IMPLS, (ref, ours), strict=True):
        other = _outputs(impl, "LEDForConditionalGeneration", wide, kwargs, weights)
        for name in ("logits[0]", "encoder_last_hidden_state[0]"):
            assert scaled_error(other[name], out[name]) < 1e-9, f"{impl.name}: {name} depends on the window"


def test_window_wider_than_sequence_equals_any_covering_window():
    """A window wider than the text sees every token: windows 12 and 40 over 6 tokens give the same result."""
    kwargs = dict(input_ids=IDS, attention_mask=MASK, global_attention_mask=_with(np.zeros_like(IDS), (0, 0), 1))
    configs = {window: LEDConfig.from_dict(CONFIG.to_dict() | {"attention_window": window,
                                                                "max_encoder_position_embeddings": 40})
               for window in (12, 40)}
    weights = random_weights(configs[40], "LEDForConditionalGeneration", seed=4, std=0.3)
    results = {window: _both("LEDForConditionalGeneration", kwargs, config, weights)
               for window, config in configs.items()}
    for out in (*results[12], *results[40]):
        assert_finite(out, "window > sequence")
    for i, impl in enumerate(IMPLS):
        for name in ("logits[0]", "encoder_last_hidden_state[0]"):
            assert scaled_error(results[40][i][name], results[12][i][name]) < 1e-9, f"{impl.name}: {name}"
    assert_agree(*results[40], 1e-9, "window 40, led_ref vs led_torch", skip=("encoder_attentions",))


@pytest.mark.parametrize("global_first", [False, True])
@pytest.mark.parametrize("architecture", CLASSES)
def test_one_token_sequence(architecture, global_first):
    ids = np.array([[2], [2]])  # a lone eos, so classification can pool
    kwargs = dict(input_ids=ids, global_attention_mask=np.full_like(ids, int(global_first)))
    ref, ours = _both(architecture, kwargs)
    assert_finite(ref, "led_ref")
    assert_finite(ours, "led_torch")
    assert_agree(ref, ours, 1e-9, f"{architecture} one token")
    # A lone token attends only to itself: probability 1 at the self column (local) or global slot.
    column = ref["encoder_attentions[0]"].shape[-1] // 2 if not global_first else 0
    probs = ref[f"{GLOBAL}[0]"] if global_first else ref["encoder_attentions[0]"]
    np.testing.assert_allclose(probs[..., 0, column], 1.0, rtol=0, atol=1e-12)


def test_sequence_that_fits_the_table_but_not_once_padded():
    """17 tokens fit a position table of 18; the padding to a window multiple (20) never reaches an output,
    so both packages accept it (HF raises an IndexError here) and agree."""
    ids = np.full((1, 17), 4)
    ids[0, -1] = 2
    ref, ours = _both("LEDForConditionalGeneration", dict(input_ids=ids, decoder_input_ids=DEC[:1]))
    assert_finite(ref, "led_ref")
    assert_agree(ref, ours, 1e-9, "17 tokens, table 18, led_ref vs led_torch")


@pytest.mark.parametrize("architecture", CLASSES)
def test_float64_weights_are_kept_exactly(architecture):
    """Nothing lost: a float64 model carries its float64 weights bit for bit (no detour through float32)."""
    weights = random_weights(CONFIG, architecture, seed=6, std=0.3)
    for impl in IMPLS:
        model = impl.build(architecture, weights=weights)
        state = model.weights if impl.name == "led_ref" else model.state_dict()
        for name, value in weights.items():
            assert np.array_equal(impl.numpy(state[name]), value), f"{impl.name}: {name} changed on load"


HF_CONFIG = LEDConfig.from_dict(CONFIG.to_dict() | {"attention_window": [4, 8], "max_encoder_position_embeddings": 16})


@pytest.mark.hf
@pytest.mark.parametrize("case", ["padded_row", "global_on_padding", "all_global", "one_token"])
def test_degenerate_inputs_match_the_hf_oracle(case):
    """The values, not just their finiteness: led_ref and led_torch against HF transformers (windows HF accepts)."""
    from tests.hf_oracle import hf_dtype_scope, hf_model

    weights = random_weights(HF_CONFIG, "LEDForConditionalGeneration", seed=7, std=0.3)
    ids, mask, glob = IDS.copy(), MASK.copy(), np.zeros_like(IDS)
    glob[0, 1] = 1
    if case == "padded_row":
        mask[1] = 0
    elif case == "global_on_padding":
        glob[1, 5] = 1
    elif case == "all_global":
        glob[:] = 1
    else:
        ids, mask, glob = ids[:, -2:-1], mask[:, :1], glob[:, :1]
    kwargs = dict(input_ids=ids, attention_mask=mask, global_attention_mask=glob, decoder_input_ids=DEC)
    hf = hf_model(HF_CONFIG, weights, "LEDForConditionalGeneration")
    with hf_dtype_scope(torch.float64):
        want = hf(**{k: torch.from_numpy(v) for k, v in kwargs.items()})
    for impl in IMPLS:
        model = impl.build("LEDForConditionalGeneration", config=HF_CONFIG, weights=weights)
        with torch.no_grad():
            got = model(**impl.arrays(kwargs))
        for name in ("logits", "encoder_last_hidden_state"):
            error = scaled_error(impl.numpy(getattr(got, name)), getattr(want, name).numpy())
            assert error < 1e-6, f"{impl.name} {case}: {name} differs from HF by {error:.3g}"  # HF softmax: float32


# ------------------------------------------------------------------------------------------ fp16 near overflow
FP16_BUDGET = 5e-3  # measured worst 1.1e-3 on these cases (scaled error against float64), ~5x headroom


@pytest.mark.parametrize("case", ["huge_embeddings", "huge_scores", "huge_decoder_embeddings"])
def test_fp16_near_overflow_stays_finite_and_close_to_float64(case):
    config = LEDConfig.from_dict(CONFIG.to_dict() | {"max_encoder_position_embeddings": 16})
    weights = random_weights(config, "LEDForConditionalGeneration", seed=5, std=0.3)
    rng = np.random.default_rng(0)
    glob = _with(np.zeros_like(IDS), (0, 1), 1)
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


# ------------------------------------------------------------------------------------------ round two (issue 15)
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


@pytest.mark.parametrize("impl", IMPLS, ids=lambda i: i.name)
def test_all_ignored_labels_give_a_zero_loss(impl):
    """HF returns NaN (0 / 0) when every label is -100; both packages define the loss as 0 (nothing to learn)."""
    ignored = np.full_like(DEC, -100)
    lm = call(impl, "LEDForConditionalGeneration", dict(input_ids=IDS, decoder_input_ids=DEC, labels=ignored))
    cls = call(impl, "LEDForSequenceClassification", dict(input_ids=IDS, labels=np.array([-100, -100])))
    qa = call(impl, "LEDForQuestionAnswering", dict(input_ids=IDS, decoder_input_ids=DEC,
                                                    start_positions=np.array([9, 9]), end_positions=np.array([1, 2])))
    some = call(impl, "LEDForQuestionAnswering", dict(input_ids=IDS, decoder_input_ids=DEC,
                                                      start_positions=np.array([1, 1]), end_positions=np.array([1, 2])))
    assert float(lm.loss) == 0.0 and float(cls.loss) == 0.0
    assert np.isfinite(float(qa.loss)) and 0 < float(qa.loss) < float(some.loss)  # the end half only


def test_all_ignored_labels_give_zero_gradients_in_led_torch():
    model = Impl("led_torch").build("LEDForConditionalGeneration")
    model.train()
    loss = model(input_ids=torch.from_numpy(IDS), decoder_input_ids=torch.from_numpy(DEC),
                 labels=torch.full((2, 3), -100)).loss
    loss.backward()
    assert float(loss) == 0.0
    assert all(float(p.grad.abs().max()) == 0.0 for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("how", ["from_weights", "from_pretrained", "to", "cuda", "banana"])
def test_a_missing_cuda_device_is_named(tmp_path, monkeypatch, how):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    weights = random_weights(CONFIG, "LEDModel", seed=0)
    with pytest.raises(ValueError, match="no CUDA device" if how != "banana" else "banana.*not a device"):
        if how == "from_pretrained":
            led_ref.LEDModel(CONFIG, weights=weights).save_pretrained(tmp_path)
            led_torch.LEDModel.from_pretrained(tmp_path, device="cuda")
        elif how in ("from_weights", "banana"):
            led_torch.LEDModel.from_weights(CONFIG, weights, device="cuda" if how == "from_weights" else "banana")
        else:
            model = led_torch.LEDModel.from_weights(CONFIG, weights)
            model.to("cuda") if how == "to" else model.cuda()


@pytest.mark.parametrize("impl", IMPLS, ids=lambda i: i.name)
@pytest.mark.parametrize("field, value, mentions", [
    ("pad_token_id", None, ("pad_token_id", "None", "int")),
    ("decoder_layers", 0, ("decoder_layers", "0", ">= 1")),
    ("init_std", float("nan"), ("init_std", "nan", "finite")),
    ("dropout", None, ("dropout", "None", "[0, 1]")),
])
def test_configs_that_would_crash_later_are_refused_at_load(tmp_path, impl, field, value, mentions):
    """Each of these loaded before and then crashed (pad None, no decoder layer) or gave NaN logits (init_std
    NaN with a head missing from the file)."""
    import json

    config = LEDConfig.from_dict(CONFIG.to_dict())
    led_ref.LEDModel(config, weights=random_weights(config, "LEDModel", seed=0)).save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(data | {field: value}))
    package = led_ref if impl.name == "led_ref" else led_torch
    with pytest.raises(ValueError) as err:
        package.LEDForSequenceClassification.from_pretrained(tmp_path)
    assert all(m in str(err.value) for m in mentions), str(err.value)


# A window as large as the position table ("full attention") over a 4-token input. Before: led_ref built a
# (16384, 16385) index map (2 GiB) and led_torch banded scores of that size; now both run at the narrowest
# window that attends the same (led_ref.layout.effective_window).
WIDE = LEDConfig(vocab_size=20, d_model=8, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                 decoder_attention_heads=2, encoder_ffn_dim=8, decoder_ffn_dim=8, attention_window=[16384, 2],
                 max_encoder_position_embeddings=16384, max_decoder_position_embeddings=20)
NARROW = LEDConfig.from_dict(WIDE.to_dict() | {"attention_window": [6, 2]})
WIDE_INPUTS = dict(input_ids=np.array([[0, 4, 5, 2], [0, 6, 2, 1]]),
                   attention_mask=np.array([[1, 1, 1, 1], [1, 1, 1, 0]]),
                   global_attention_mask=np.array([[1, 0, 0, 0], [0, 0, 0, 0]]), decoder_input_ids=DEC[:, :2])


@pytest.mark.parametrize("impl", IMPLS, ids=lambda i: i.name)
def test_a_window_wider_than_the_input_costs_what_the_input_costs(impl):
    import tracemalloc

    from parity.peak_memory import cpu_peak_bytes

    weights = random_weights(WIDE, "LEDForConditionalGeneration", seed=0, std=0.3)
    wide = impl.build("LEDForConditionalGeneration", config=WIDE, weights=weights)
    narrow = impl.build("LEDForConditionalGeneration", config=NARROW, weights=weights)
    kwargs = impl.arrays(WIDE_INPUTS)
    if impl.name == "led_ref":
        tracemalloc.start()
        try:
            out = wide(**kwargs)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    else:
        with torch.no_grad():
            box = []
            peak, _ = cpu_peak_bytes(lambda: box.append(wide(**kwargs)))
            out = box[0]
    assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MiB for a 4-token input"
    want = narrow(**kwargs)
    np.testing.assert_allclose(impl.numpy(out.logits), impl.numpy(want.logits), rtol=0, atol=1e-12)


@pytest.mark.parametrize("impl", IMPLS, ids=lambda i: i.name)
def test_a_wide_window_keeps_hf_attention_layouts(impl):
    """attentions keep the layer's own window columns (x + w + 1), global attentions HF's padded key axis;
    the cells the narrower run computed are the same, the added ones zero."""
    weights = random_weights(WIDE, "LEDForConditionalGeneration", seed=0, std=0.3)
    kwargs = impl.arrays(WIDE_INPUTS | dict(output_attentions=True))
    with torch.no_grad():
        out = impl.build("LEDForConditionalGeneration", config=WIDE, weights=weights)(**kwargs)
        want = impl.build("LEDForConditionalGeneration", config=NARROW, weights=weights)(**kwargs)
    wide_probs, narrow_probs = impl.numpy(out.encoder_attentions[0]), impl.numpy(want.encoder_attentions[0])
    assert wide_probs.shape == (2, 2, 4, 1 + 16385) and narrow_probs.shape == (2, 2, 4, 1 + 7)
    centre = 1 + 8192 - 3
    np.testing.assert_allclose(wide_probs[..., centre:centre + 7], narrow_probs[..., 1:], atol=1e-12)
    np.testing.assert_array_equal(wide_probs[..., 0], narrow_probs[..., 0])
    assert np.abs(wide_probs).sum() == pytest.approx(np.abs(narrow_probs).sum(), abs=1e-9)
    glob = impl.numpy(out.encoder_global_attentions[0])
    assert glob.shape == (2, 2, 16384, 1)
    narrow_glob = impl.numpy(want.encoder_global_attentions[0])  # padded to 6, a multiple of its window
    np.testing.assert_allclose(glob[:, :, :6], narrow_glob, atol=1e-12)
    assert not np.any(glob[:, :, 6:])


@pytest.mark.parametrize("flag", ["--new-tokens", "--beams"])
def test_bench_refuses_zero_tokens_or_beams_before_running(flag, capsys, monkeypatch):
    from parity import bench, cli

    monkeypatch.setattr(bench, "run_bench", lambda *a, **k: pytest.fail("the benchmark ran"))
    assert cli.main(["bench", "--quick", flag, "0"]) == 2
    err = capsys.readouterr().err
    assert flag.lstrip("-") in err and ">= 1" in err and "got 0" in err, err
