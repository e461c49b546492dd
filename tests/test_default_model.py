"""The embedded default checkpoint: deterministic, atomic, cached, and loadable by HF."""

from __future__ import annotations

import hashlib
import os
import pathlib

import numpy as np
import pytest

from led_ref.init import random_weights
from led_ref.io import default_model
from led_ref.io.checkpoint import load_checkpoint
from led_ref.io.config import LEDConfig
from led_ref.io.default_model import DEFAULT_TEXT, default_checkpoint_dir, default_config
from led_ref.io.tokenizer import LEDTokenizer
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


def test_recipe_hash_tracks_the_recipe(monkeypatch, tmp_path):
    original = default_model.recipe_hash()
    monkeypatch.setattr(default_model, "WEIGHTS_SEED", default_model.WEIGHTS_SEED + 1)
    assert default_model.recipe_hash() != original
    monkeypatch.undo()
    changed = tmp_path / "weights.safetensors"
    data = bytearray(default_model.WEIGHTS_FILE.read_bytes())
    data[-1] ^= 1  # one bit of one weight
    changed.write_bytes(bytes(data))
    monkeypatch.setattr(default_model, "WEIGHTS_FILE", changed)
    assert default_model.recipe_hash() != original


def test_missing_or_mismatched_weights_name_the_file(monkeypatch, tmp_path):
    from safetensors.numpy import save_file

    monkeypatch.setattr(default_model, "WEIGHTS_FILE", tmp_path / "absent.safetensors")
    with pytest.raises(FileNotFoundError, match="absent.safetensors.*led_torch/train_default_model.py"):
        default_model.default_weights()
    wrong = tmp_path / "wrong.safetensors"
    save_file({"led.shared.weight": np.zeros((3, 3), np.float32)}, str(wrong))
    monkeypatch.setattr(default_model, "WEIGHTS_FILE", wrong)
    with pytest.raises(ValueError, match="wrong.safetensors: names/shapes/dtypes do not match"):
        default_model.default_weights()


def test_the_trained_model_has_learned_its_task(built):
    """The synthetic task of led_torch/train_default_model.py: name the paragraph (its first two words), then copy
    the span with its masked tokens restored; and the attention is far from uniform."""
    from led_ref.explore.from_model import dense_layer, model_attentions
    from led_ref.model import LEDForConditionalGeneration, LEDModel

    tok = LEDTokenizer.from_pretrained(built)
    model = LEDForConditionalGeneration.from_pretrained(built)
    span = "Once upon a time, a long document was too long to read."
    enc = tok(span, return_tensors="np")
    masked = enc["input_ids"].copy()
    masked[0, 3] = tok.convert_tokens_to_ids("<mask>")
    glob = np.zeros_like(masked)
    glob[:, 0] = 1
    out = model.generate(masked, attention_mask=enc["attention_mask"], global_attention_mask=glob, num_beams=1)
    assert tok.batch_decode(out, skip_special_tokens=True)[0] == f"Once upon: {span}"
    found = model_attentions(LEDModel.from_pretrained(built), tok, DEFAULT_TEXT, [0])
    for layer in range(2):
        dense = dense_layer(found, layer)  # (heads, seq, seq)
        keys = (dense > 0).sum(axis=-1)
        # a uniform row puts 1/keys on its largest key; the trained heads put far more
        assert np.mean(dense.max(axis=-1) * keys) > 3.0, layer


def test_contents_are_the_recipe(built):
    config, weights = load_checkpoint(built, dtype=np.float32)
    expected = default_config()
    assert config.to_dict() == LEDConfig.from_dict(expected.to_dict()).to_dict()
    assert config.layer_windows == [4, 8] and config.d_model == 64 and config.vocab_size == 512
    want = default_model.default_weights()
    start = random_weights(expected, "LEDForConditionalGeneration", seed=default_model.WEIGHTS_SEED, dtype=np.float32)
    assert set(want) == set(start) and all(want[n].shape == start[n].shape for n in start)
    assert not np.array_equal(want["led.encoder.layers.0.self_attn.longformer_self_attn.query.weight"],
                              start["led.encoder.layers.0.self_attn.longformer_self_attn.query.weight"])
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
    want = default_model.default_weights()
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


@pytest.mark.slow
def test_training_script_rebuilds_the_committed_weights(tmp_path):
    """led_torch/train_default_model.py is deterministic: it writes the committed file byte for byte (~5 CPU min)."""
    import subprocess
    import sys

    out = tmp_path / "weights.safetensors"
    repo = pathlib.Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "led_torch.train_default_model", "--out", str(out)],
                          cwd=repo, capture_output=True, text=True, timeout=1800,
                          env={**os.environ, "PYTHONPATH": str(repo)})
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == default_model.WEIGHTS_FILE.read_bytes()
