"""LEDConfig against HF's LEDConfig: the same fields and defaults, config.json both ways, named errors."""

from __future__ import annotations

import dataclasses
import inspect
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from led_ref.io.config import ACTIVATIONS, ConfigError, LEDConfig
from tests.hf_oracle import hf_config, transformers

pytestmark = pytest.mark.hf

OURS = [f.name for f in dataclasses.fields(LEDConfig) if f.name != "extra"]


def test_every_hf_argument_is_a_field_with_the_same_default():
    parameters = inspect.signature(transformers.LEDConfig.__init__).parameters
    hf_args = [name for name, p in parameters.items() if name != "self" and p.kind is not p.VAR_KEYWORD]
    assert len(hf_args) == 25
    ours = LEDConfig()
    for name in hf_args:
        assert name in OURS, name
        assert getattr(ours, name) == parameters[name].default, name


def test_every_field_defaults_like_hf():
    hf, ours = transformers.LEDConfig(), LEDConfig()
    for name in OURS:
        assert getattr(ours, name) == getattr(hf, name), name
    assert ours.hidden_size == hf.hidden_size and ours.num_attention_heads == hf.num_attention_heads
    assert ours.num_hidden_layers == hf.num_hidden_layers


def test_activations_are_known_to_hf():
    from transformers.activations import ACT2FN

    for name in ACTIVATIONS:
        assert name in ACT2FN, name


configs = st.builds(
    lambda heads, head_dim, layers, windows, labels, activation: LEDConfig(
        d_model=heads * head_dim, encoder_attention_heads=heads, decoder_attention_heads=heads,
        encoder_layers=layers, decoder_layers=1 + layers % 2, attention_window=[2 * w for w in windows[:layers]],
        num_labels=labels, activation_function=activation, vocab_size=64, encoder_ffn_dim=8, decoder_ffn_dim=8,
    ),
    heads=st.integers(1, 4), head_dim=st.integers(1, 8), layers=st.integers(1, 4),
    windows=st.lists(st.integers(1, 16), min_size=4, max_size=4), labels=st.integers(1, 5),
    activation=st.sampled_from(ACTIVATIONS),
)


@given(config=configs)
def test_config_json_round_trips_through_hf(tmp_path_factory, config):
    folder = tmp_path_factory.mktemp("cfg")
    hf = hf_config(config)
    hf.update({"my_custom_key": {"nested": [1, 2]}, "summary_note": "kept"})
    hf.save_pretrained(folder)
    ours = LEDConfig.from_pretrained(folder)
    for name in OURS:
        assert getattr(ours, name) == getattr(config, name), name
    assert ours.extra["my_custom_key"] == {"nested": [1, 2]} and ours.extra["summary_note"] == "kept"
    # ... and back: HF reads what we write, unknown keys included.
    ours.save_pretrained(folder / "again")
    back = transformers.LEDConfig.from_pretrained(folder / "again")
    for name in OURS:
        assert getattr(back, name) == getattr(config, name), name
    assert back.my_custom_key == {"nested": [1, 2]} and back.summary_note == "kept"
    assert LEDConfig.from_pretrained(folder / "again").to_dict() == ours.to_dict()


def test_alias_written_by_hf_follows_encoder_layers(tmp_path):
    transformers.LEDConfig(encoder_layers=3, attention_window=[2, 4, 2]).save_pretrained(tmp_path)
    loaded = LEDConfig.from_pretrained(tmp_path)
    changed = dataclasses.replace(loaded, encoder_layers=1, attention_window=[8])
    assert changed.to_dict()["num_hidden_layers"] == 1
    changed.save_pretrained(tmp_path / "changed")
    hf = transformers.LEDConfig.from_pretrained(tmp_path / "changed")
    assert hf.num_hidden_layers == hf.encoder_layers == 1


def test_num_labels_comes_from_id2label():
    config = LEDConfig.from_dict({"id2label": {"0": "neg", "1": "neu", "2": "pos"}})
    assert config.num_labels == 3
    assert config.to_dict()["id2label"] == {"0": "neg", "1": "neu", "2": "pos"}
    assert transformers.LEDConfig(**hf_config(config).to_dict()).num_labels == 3


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(attention_window=5), "attention_window must be an even int >= 2, got 5"),
        (dict(attention_window=0), "attention_window must be an even int >= 2, got 0"),
        (dict(attention_window=-4), "attention_window must be an even int >= 2, got -4"),
        (dict(attention_window=4.0), "attention_window must be an even int >= 2, got 4.0"),
        (dict(attention_window=True), "attention_window must be an even int >= 2, got True"),
        (dict(encoder_layers=2, attention_window=[4, 3]), "attention_window\\[1\\] must be an even .*, got 3"),
        (dict(encoder_layers=2, attention_window=[4, 4, 4]), "attention_window has 3 entries but encoder_layers=2"),
        (dict(d_model=10, encoder_attention_heads=4), "d_model=10 must be divisible by encoder_attention_heads=4"),
        (dict(d_model=12, encoder_attention_heads=2, decoder_attention_heads=5),
         "d_model=12 must be divisible by decoder_attention_heads=5"),
        (dict(activation_function="gelu2"), "activation_function must be one of .*; got 'gelu2'"),
        (dict(vocab_size=0), "vocab_size must be >= 1, got 0"),
        (dict(encoder_layers=-1), "encoder_layers must be >= 0, got -1"),
        (dict(decoder_ffn_dim="big"), "decoder_ffn_dim must be an int, got 'big'"),
        (dict(dropout=1.5), "dropout must be a probability in \\[0, 1\\], got 1.5"),
        (dict(attention_dropout=-0.1), "attention_dropout must be a probability in \\[0, 1\\], got -0.1"),
        (dict(vocab_size=10, pad_token_id=10), "pad_token_id must be < vocab_size=10, got 10"),
        (dict(eos_token_id=-2), "eos_token_id must be >= 0, got -2"),
        (dict(num_labels=0), "num_labels must be >= 1, got 0"),
        (dict(num_labels=2**31), "num_labels must be <= 1,048,576 \\(one id2label entry each\\), got 2147483648"),
        (dict(problem_type="ranking"), "problem_type must be one of .*got 'ranking'"),
    ],
)
def test_invalid_values_name_field_and_value(changes, message):
    with pytest.raises(ConfigError, match=message):
        LEDConfig(**changes)
    # HF's own LEDConfig accepts many of these; the error only has to come from ours.
    assert issubclass(ConfigError, ValueError)


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json in"):
        LEDConfig.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        LEDConfig.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bart"}))
    with pytest.raises(ConfigError, match="model_type must be 'led', got 'bart'"):
        LEDConfig.from_pretrained(tmp_path)
    with pytest.raises(TypeError, match="config must be a mapping, got list"):
        LEDConfig.from_dict([1, 2])
    (tmp_path / "config.json").write_text(json.dumps({"attention_window": [4, 6], "encoder_layers": 3}))
    with pytest.raises(ConfigError, match="attention_window has 2 entries but encoder_layers=3"):
        LEDConfig.from_pretrained(tmp_path / "config.json")


def test_derived_windows():
    assert LEDConfig(encoder_layers=3, attention_window=6).layer_windows == [6, 6, 6]
    config = LEDConfig(encoder_layers=3, attention_window=(2, 8, 4))
    assert config.attention_window == [2, 8, 4] and config.layer_windows == [2, 8, 4] and config.max_window == 8
    assert LEDConfig(encoder_layers=0, attention_window=[]).max_window == 2
    assert LEDConfig(encoder_layers=0, attention_window=10).max_window == 10
