"""Every non-generation LEDConfig field fuzzed: boundary values, nulls, wrong types.

Each drawn config.json either is refused at load with a ConfigError/TypeError naming a changed field, or
loads, and then a model built on it runs: led_ref and led_torch give the same finite logits and loss, and
generate returns ids in the vocabulary. (The fields that only steer generation are fuzzed with generate's
settings; they are listed in GENERATION_FIELDS so a new field is never left out silently.)
Sizes are bounded: a config whose tensors would be large is only validated, not built.
"""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import led_ref
import led_torch
from led_ref.init import random_weights
from led_ref.io.config import ConfigError, LEDConfig
from parity.harness.malformed import config_values, json_values
from parity.harness.strategies import profile_examples

BASE = LEDConfig(vocab_size=20, d_model=8, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                 decoder_attention_heads=2, encoder_ffn_dim=8, decoder_ffn_dim=8, attention_window=[2, 4],
                 max_encoder_position_embeddings=16, max_decoder_position_embeddings=8, num_labels=3)
FIELD_KINDS = {
    **dict.fromkeys(("vocab_size", "max_encoder_position_embeddings", "max_decoder_position_embeddings",
                     "encoder_layers", "encoder_ffn_dim", "encoder_attention_heads", "decoder_layers",
                     "decoder_ffn_dim", "decoder_attention_heads", "d_model", "num_labels"), "count"),
    **dict.fromkeys(("pad_token_id", "bos_token_id", "eos_token_id"), "token"),
    **dict.fromkeys(("encoder_layerdrop", "decoder_layerdrop", "dropout", "attention_dropout", "activation_dropout",
                     "classifier_dropout"), "probability"),
    "init_std": "number",
    **dict.fromkeys(("use_cache", "is_encoder_decoder"), "flag"),
    **dict.fromkeys(("activation_function", "problem_type"), "word"),
    "attention_window": "window",
}
EXTRA_KEYS = ("id2label", "label2id")  # kept in `extra`, read by HF
GENERATION_FIELDS = {"max_length", "min_length", "num_beams", "length_penalty", "early_stopping",
                     "no_repeat_ngram_size", "forced_bos_token_id", "forced_eos_token_id", "decoder_start_token_id"}
SIZES = ("vocab_size", "max_encoder_position_embeddings", "max_decoder_position_embeddings", "encoder_ffn_dim",
         "decoder_ffn_dim", "d_model", "num_labels")


def test_every_config_field_is_fuzzed_or_left_to_generation():
    fields = {f.name for f in dataclasses.fields(LEDConfig)} - {"extra"}
    missing = fields - set(FIELD_KINDS) - GENERATION_FIELDS
    assert not missing, f"add {sorted(missing)} to FIELD_KINDS (or GENERATION_FIELDS) in this file"


@st.composite
def config_files(draw) -> dict:
    """BASE's config.json with 1-3 fields replaced by boundary values, nulls or wrong types."""
    data = BASE.to_dict()
    names = draw(st.lists(st.sampled_from((*FIELD_KINDS, *EXTRA_KEYS)), min_size=1, max_size=3, unique=True))
    for name in names:
        data[name] = draw(json_values(4) if name in EXTRA_KEYS else config_values(FIELD_KINDS[name]))
    return {"data": data, "changed": names}


def _small(config: LEDConfig) -> bool:
    return (all(getattr(config, n) <= 70 for n in SIZES) and config.encoder_layers + config.decoder_layers <= 6
            and config.max_window <= 70)


def _run_both(config: LEDConfig) -> None:
    """LEDForConditionalGeneration in both packages on the same weights: same finite logits and loss."""
    weights = random_weights(config, "LEDForConditionalGeneration", seed=0, std=0.3)
    ref = led_ref.LEDForConditionalGeneration(config, weights=weights)
    ours = led_torch.LEDForConditionalGeneration.from_weights(config, weights, dtype=torch.float64)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, config.vocab_size, (2, min(5, config.max_encoder_position_embeddings)))
    dec = rng.integers(0, config.vocab_size, (2, min(3, config.max_decoder_position_embeddings)))
    want = ref(input_ids=ids, decoder_input_ids=dec, labels=dec)
    with torch.no_grad():
        got = ours(input_ids=torch.from_numpy(ids), decoder_input_ids=torch.from_numpy(dec),
                   labels=torch.from_numpy(dec))
    assert np.all(np.isfinite(want.logits)) and np.isfinite(want.loss)
    np.testing.assert_allclose(got.logits.numpy(), want.logits, atol=1e-9, rtol=0)
    assert abs(float(got.loss) - want.loss) < 1e-9
    if config.max_decoder_position_embeddings >= 3:
        for model in (ref, ours):
            with torch.no_grad():
                tokens = np.asarray(model.generate(ids if model is ref else torch.from_numpy(ids), max_length=3))
            assert np.all((tokens >= 0) & (tokens < config.vocab_size)), tokens


@settings(max_examples=profile_examples(30))
@given(case=config_files())
def test_a_fuzzed_config_is_refused_by_name_or_runs_in_both_packages(tmp_path_factory, case):
    path = tmp_path_factory.mktemp("config") / "config.json"
    path.write_text(json.dumps(case["data"]))
    try:
        config = LEDConfig.from_pretrained(path)
    except (ConfigError, TypeError) as err:
        named = [n for n in case["changed"] if n in str(err)]
        assert named, f"{type(err).__name__}({err}) names none of the changed fields {case['changed']}"
        assert "config.json" in str(err), str(err)
        return
    config.validate()
    saved = LEDConfig.from_dict(json.loads(config.to_json_string()))  # a save loads back, the same model
    assert dataclasses.replace(saved, extra={}) == dataclasses.replace(config, extra={})
    assert saved.to_json_string() == config.to_json_string()
    if _small(config):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _run_both(config)


@pytest.mark.parametrize("field, value, mentions", [
    ("pad_token_id", None, ("pad_token_id", "None")),
    ("pad_token_id", 20, ("pad_token_id", "20", "vocab_size=20")),
    ("decoder_layers", 0, ("decoder_layers", ">= 1")),
    ("init_std", float("nan"), ("init_std", "nan")),
    ("init_std", -0.1, ("init_std", "-0.1")),
    ("dropout", None, ("dropout", "None")),
    ("dropout", 1.5, ("dropout", "1.5", "[0, 1]")),
    ("use_cache", "yes", ("use_cache", "yes")),
    ("is_encoder_decoder", False, ("is_encoder_decoder",)),
    ("activation_function", ["gelu"], ("activation_function",)),
    ("d_model", 8.0, ("d_model", "8.0", "int")),
    ("eos_token_id", -1, ("eos_token_id", "-1", ">= 0")),
])
def test_each_bad_field_is_refused_naming_field_and_value(field, value, mentions):
    with pytest.raises(ConfigError) as err:
        LEDConfig.from_dict(BASE.to_dict() | {field: value})
    assert all(m in str(err.value) for m in mentions), str(err.value)


@pytest.mark.parametrize("field, value", [("classifier_dropout", None), ("bos_token_id", None),
                                          ("eos_token_id", None), ("encoder_layers", 0)])
def test_values_hf_accepts_still_load_and_run(field, value):
    """HF accepts these (classifier_dropout None = no dropout, no bos/eos, no encoder layer): so do we."""
    data = BASE.to_dict() | {field: value}
    if field == "encoder_layers":
        data["attention_window"] = 4
    _run_both(LEDConfig.from_dict(data))


def test_sequence_classification_without_an_eos_token_is_refused_by_name():
    config = LEDConfig.from_dict(BASE.to_dict() | {"eos_token_id": None})
    weights = random_weights(config, "LEDForSequenceClassification", seed=0)
    ids = np.array([[0, 4, 5, 2]])
    for model, x in ((led_ref.LEDForSequenceClassification(config, weights=weights), ids),
                     (led_torch.LEDForSequenceClassification.from_weights(config, weights), torch.from_numpy(ids))):
        with pytest.raises(ValueError, match="eos_token_id"):
            model(input_ids=x)


def test_saving_a_config_broken_after_construction_writes_nothing(tmp_path):
    config = LEDConfig.from_dict(BASE.to_dict())
    config.save_pretrained(tmp_path)
    before = (tmp_path / "config.json").read_bytes()
    config.pad_token_id = None
    with pytest.raises(ConfigError, match="pad_token_id"):
        config.save_pretrained(tmp_path)
    assert (tmp_path / "config.json").read_bytes() == before and len(list(tmp_path.iterdir())) == 1
