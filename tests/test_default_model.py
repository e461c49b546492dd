"""The embedded default checkpoint: deterministic, atomic, cached, and loadable by HF."""

from __future__ import annotations

import hashlib
import os
import pathlib

import numpy as np
import pytest

from led_ref import default_model
from led_ref.checkpoint import load_checkpoint
from led_ref.config import LEDConfig
from led_ref.default_model import DEFAULT_TEXT, default_checkpoint_dir, default_config
from led_ref.init import random_weights
from led_ref.tokenizer import LEDTokenizer
from tests.hf_oracle import hf_dtype_scope, torch, transformers

pytestmark = pytest.mark.hf


def checksums(folder: pathlib.Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The default checkpoint built in a private cache."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LED_PARITY_CACHE", str(cache))
        return default_checkpoint_dir()


def test_location_and_files(built):
    assert built.name == f"default-{default_model.recipe_hash()}"
    assert sorted(os.listdir(built)) == [
        "config.json", "merges.txt", "model.safetensors", "special_tokens_map.json", "tokenizer_config.json",
        "vocab.json",
    ]
    assert not [p for p in built.parent.iterdir() if p.name.startswith(".")]  # no staging folder left behind


def test_two_builds_are_byte_identical(built, tmp_path, monkeypatch):
    monkeypatch.setenv("LED_PARITY_CACHE", str(tmp_path))
    again = default_checkpoint_dir()
    assert again != built and again.name == built.name
    assert checksums(again) == checksums(built)


def test_existing_folder_is_reused_and_rebuild_replaces_it(tmp_path, monkeypatch):
    monkeypatch.setenv("LED_PARITY_CACHE", str(tmp_path))
    first = default_checkpoint_dir()
    before = checksums(first)

    def fail(directory):
        raise AssertionError("must not rebuild an existing default checkpoint")

    monkeypatch.setattr(default_model, "build_default_checkpoint", fail)
    assert default_checkpoint_dir() == first
    monkeypatch.undo()
    monkeypatch.setenv("LED_PARITY_CACHE", str(tmp_path))
    (first / "model.safetensors").write_bytes(b"corrupted")
    assert default_checkpoint_dir(rebuild=True) == first
    assert checksums(first) == before


def test_interrupted_build_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("LED_PARITY_CACHE", str(tmp_path))

    def crash(*args, **kwargs):
        raise OSError("killed mid-build")

    monkeypatch.setattr(default_model, "save_checkpoint", crash)
    with pytest.raises(OSError, match="killed mid-build"):
        default_checkpoint_dir()
    assert list(tmp_path.iterdir()) == []


def test_cache_root_without_env(monkeypatch, tmp_path):
    monkeypatch.delenv("LED_PARITY_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_model.cache_root() == tmp_path / ".cache" / "led-parity"


def test_recipe_hash_tracks_the_recipe(monkeypatch):
    original = default_model.recipe_hash()
    monkeypatch.setattr(default_model, "WEIGHTS_SEED", default_model.WEIGHTS_SEED + 1)
    assert default_model.recipe_hash() != original


def test_contents_are_the_recipe(built):
    config, weights = load_checkpoint(built, dtype=np.float32)
    expected = default_config()
    assert config.to_dict() == LEDConfig.from_dict(expected.to_dict()).to_dict()
    assert config.layer_windows == [4, 8] and config.d_model == 64 and config.vocab_size == 512
    want = random_weights(expected, "LEDForConditionalGeneration", seed=default_model.WEIGHTS_SEED, dtype=np.float32)
    assert set(weights) == set(want)
    for name, value in want.items():
        np.testing.assert_array_equal(weights[name], value, err_msg=name)
    tok = LEDTokenizer.from_pretrained(built)
    assert len(tok) == config.vocab_size and tok.model_max_length == config.max_encoder_position_embeddings
    assert len(tok(DEFAULT_TEXT * 20, truncation=True)["input_ids"]) == config.max_encoder_position_embeddings
    ids = tok(DEFAULT_TEXT)["input_ids"]
    assert len(ids) < config.max_encoder_position_embeddings
    assert tok.decode(ids, skip_special_tokens=True) == DEFAULT_TEXT


def test_hf_loads_the_default(built):
    with hf_dtype_scope(torch.float32):
        model = transformers.LEDForConditionalGeneration.from_pretrained(built).eval()
    want = random_weights(default_config(), "LEDForConditionalGeneration", seed=default_model.WEIGHTS_SEED)
    state = model.state_dict()
    for name, value in want.items():
        np.testing.assert_array_equal(state[name].numpy(), value.astype(np.float32), err_msg=name)
    ours = LEDTokenizer.from_pretrained(built)
    for cls in (transformers.LEDTokenizer, transformers.LEDTokenizerFast):
        hf_tok = cls.from_pretrained(built)
        assert hf_tok(DEFAULT_TEXT)["input_ids"] == ours(DEFAULT_TEXT)["input_ids"], cls.__name__
        assert hf_tok.decode(ours(DEFAULT_TEXT)["input_ids"]) == ours.decode(ours(DEFAULT_TEXT)["input_ids"])
    batch = ours([DEFAULT_TEXT, "A short one."], padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch, decoder_input_ids=torch.tensor([[2, 0], [2, 0]]))
    assert out.logits.shape == (2, 2, 512) and torch.isfinite(out.logits).all()
