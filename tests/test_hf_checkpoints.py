"""Checkpoints as HF transformers 4.57 saves them: generation settings in either layout, config objects from
HF, round trips, and generate() with no further arguments giving HF's tokens in both packages.

Layouts: "new" is what `save_pretrained` writes today (settings in generation_config.json, nulls in
config.json); "old" is how many hub repositories still look (settings in config.json, no
generation_config.json).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hf_oracle import hf_dtype_scope, hf_model, transformers

import led_ref
import led_torch
from led_ref.init import random_weights
from led_ref.io.config import ConfigError, LEDConfig
from led_ref.io.generation_settings import GENERATION_CONFIG_NAME, GenerationConfig, resolve

pytestmark = pytest.mark.hf
torch.set_num_threads(1)

# What fine-tuned LED summarisers carry (e.g. the arXiv/PubMed checkpoints), scaled to a tiny model.
FINE_TUNED = dict(num_beams=4, length_penalty=2.0, no_repeat_ngram_size=3, min_length=5, max_length=14,
                  early_stopping=True)


def tiny_config(**generation) -> LEDConfig:
    return LEDConfig(vocab_size=40, d_model=16, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
                     decoder_attention_heads=2, encoder_ffn_dim=16, decoder_ffn_dim=16, attention_window=4,
                     max_encoder_position_embeddings=32, max_decoder_position_embeddings=24, **generation)


def hf_saved(tmp_path, layout: str, seed: int = 3, **generation) -> str:
    """A tiny LED saved by HF's save_pretrained (float64) in the given layout; returns the folder."""
    config = tiny_config(**generation)
    weights = random_weights(config, seed=seed, std=0.5)
    folder = str(tmp_path / f"hf-{layout}")
    with hf_dtype_scope(torch.float64):
        hf_model(config, weights, "LEDForConditionalGeneration", torch.float64).save_pretrained(folder)
    if layout == "old":  # the settings back into config.json, no generation_config.json
        path = os.path.join(folder, "config.json")
        with open(path) as fh:
            data = json.load(fh)
        data.update(generation)
        with open(path, "w") as fh:
            json.dump(data, fh)
        os.remove(os.path.join(folder, GENERATION_CONFIG_NAME))
    return folder


def inputs():
    ids = np.array([[0, 5, 9, 12, 7, 30, 22, 8, 2], [0, 17, 4, 26, 2, 1, 1, 1, 1]])
    glob = np.zeros_like(ids)
    glob[:, 0] = 1
    glob[0, 4] = 1
    return {"input_ids": ids, "attention_mask": (ids != 1).astype(np.int64), "global_attention_mask": glob}


def hf_generate_from(folder: str, **kwargs) -> np.ndarray:
    with hf_dtype_scope(torch.float64):
        model = transformers.LEDForConditionalGeneration.from_pretrained(folder, torch_dtype=torch.float64).eval()
        tensors = {k: torch.as_tensor(v) for k, v in inputs().items()}
        return model.generate(**tensors, **kwargs).numpy()


def ours_generate_from(folder: str, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    ref = led_ref.LEDForConditionalGeneration.from_pretrained(folder).generate(**inputs(), **kwargs)
    fast = led_torch.LEDForConditionalGeneration.from_pretrained(folder, dtype=torch.float64)
    out = fast.generate(**{k: torch.as_tensor(v) for k, v in inputs().items()}, **kwargs).numpy()
    return np.asarray(ref), out


@pytest.mark.parametrize("layout", ["new", "old"])
def test_generate_without_arguments_follows_the_checkpoint_like_hf(tmp_path, layout):
    folder = hf_saved(tmp_path, layout, **FINE_TUNED)
    if layout == "new":  # what HF 4.57 writes: the settings moved out of config.json
        with open(os.path.join(folder, "config.json")) as fh:
            assert json.load(fh)["num_beams"] is None
    expected = hf_generate_from(folder)
    assert expected.shape[1] > FINE_TUNED["min_length"], "the settings must steer HF (beam search, min_length)"
    ref, fast = ours_generate_from(folder)
    np.testing.assert_array_equal(ref, expected)
    np.testing.assert_array_equal(fast, expected)
    # and they differ from plain greedy search, so the settings were really used
    greedy = hf_generate_from(folder, num_beams=1, no_repeat_ngram_size=0, min_length=0, max_length=20)
    assert greedy.shape != expected.shape or not np.array_equal(greedy, expected)


@pytest.mark.parametrize("layout", ["new", "old"])
def test_explicit_arguments_and_generation_config_override_the_checkpoint(tmp_path, layout):
    folder = hf_saved(tmp_path, layout, **FINE_TUNED)
    for kwargs in (dict(num_beams=2, max_new_tokens=6), dict(length_penalty=0.5, min_length=0),
                   dict(generation_config=transformers.GenerationConfig(num_beams=3, max_length=9))):
        expected = hf_generate_from(folder, **kwargs)
        ours_kwargs = dict(kwargs)
        if "generation_config" in ours_kwargs:
            ours_kwargs["generation_config"] = {"num_beams": 3, "max_length": 9}  # a dict works too
        ref, fast = ours_generate_from(folder, **ours_kwargs)
        np.testing.assert_array_equal(ref, expected, err_msg=str(kwargs))
        np.testing.assert_array_equal(fast, expected, err_msg=str(kwargs))


@pytest.mark.parametrize("package", ["ref", "torch"])
def test_save_pretrained_writes_what_hf_reads(tmp_path, package):
    folder = hf_saved(tmp_path, "old", **FINE_TUNED)
    if package == "ref":
        model = led_ref.LEDForConditionalGeneration.from_pretrained(folder)
    else:
        model = led_torch.LEDForConditionalGeneration.from_pretrained(folder, dtype=torch.float64)
    model.generation_config.custom_field = {"kept": [1, 2]}  # unknown fields survive
    out = str(tmp_path / "ours")
    model.save_pretrained(out)
    with open(os.path.join(out, "config.json")) as fh:
        config = json.load(fh)
    with open(os.path.join(out, GENERATION_CONFIG_NAME)) as fh:
        generation = json.load(fh)
    assert config["num_beams"] is None and config["length_penalty"] is None  # HF's new layout
    assert {k: generation[k] for k in FINE_TUNED} == FINE_TUNED
    assert generation["custom_field"] == {"kept": [1, 2]}
    hf = transformers.LEDForConditionalGeneration.from_pretrained(out)
    assert {k: getattr(hf.generation_config, k) for k in FINE_TUNED} == FINE_TUNED
    np.testing.assert_array_equal(hf_generate_from(out), hf_generate_from(folder))
    # and back: our packages read it again with the same settings
    again = led_ref.LEDForConditionalGeneration.from_pretrained(out)
    assert again.generation_config.to_dict() == GenerationConfig.from_pretrained(out).to_dict()
    assert resolve(again.config, again.generation_config) == resolve(model.config, model.generation_config)


@pytest.mark.parametrize("package", ["ref", "torch"])
def test_editing_model_config_steers_generate_like_hf_legacy_rule(package):
    config = tiny_config()
    weights = random_weights(config, seed=4, std=0.5)
    if package == "ref":
        model = led_ref.LEDForConditionalGeneration(config, weights)
    else:
        model = led_torch.LEDForConditionalGeneration.from_weights(config, weights, dtype=torch.float64)
    hf = hf_model(config, weights, "LEDForConditionalGeneration", torch.float64)
    for m in (model, hf):
        m.config.num_beams = 3
        m.config.max_length = 7
    tensors = {k: torch.as_tensor(v) for k, v in inputs().items()}
    with hf_dtype_scope(torch.float64):
        expected = hf.generate(**tensors).numpy()
    ours = model.generate(**(inputs() if package == "ref" else tensors))
    np.testing.assert_array_equal(np.asarray(ours), expected)


def test_both_packages_take_hf_configs_and_dicts():
    hf_config = transformers.LEDConfig(vocab_size=40, d_model=16, encoder_layers=1, decoder_layers=1,
                                       encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=8,
                                       decoder_ffn_dim=8, attention_window=4, max_encoder_position_embeddings=32,
                                       max_decoder_position_embeddings=16, num_beams=3)
    for config in (hf_config, hf_config.to_dict()):
        fast = led_torch.LEDForConditionalGeneration(config)
        spec = led_ref.LEDForConditionalGeneration(config)
        for model in (fast, spec):
            assert isinstance(model.config, LEDConfig)
            assert (model.config.d_model, model.config.attention_window) == (16, 4)
            assert model.generation_config.num_beams == 3
    weights = random_weights(LEDConfig.coerce(hf_config), seed=1)
    assert isinstance(led_torch.LEDForConditionalGeneration.from_weights(hf_config, weights).config, LEDConfig)
    with pytest.raises(TypeError, match="config must be an LEDConfig, a dict or a config object"):
        led_torch.LEDModel(42)


def test_generation_fields_of_config_are_checked_at_load():
    with pytest.raises(ConfigError, match="forced_bos_token_id=40 must lie in"):
        tiny_config(forced_bos_token_id=40)
    with pytest.raises(ConfigError, match="forced_eos_token_id=-1 must lie in"):
        tiny_config(forced_eos_token_id=-1)
    with pytest.raises(ConfigError, match="early_stopping"):
        tiny_config(early_stopping="sometimes")
    config = tiny_config(num_beams=None, max_length=None, length_penalty=None)  # nulls are "unset"
    s = resolve(config)
    assert (s.num_beams, s.max_length, s.length_penalty) == (1, 21, 1.0)


def test_settings_checked_when_resolved():
    config = tiny_config()
    with pytest.raises(ValueError, match="forced_bos_token_id=99 must lie in"):
        resolve(config, generation_config={"forced_bos_token_id": 99})
    with pytest.raises(ValueError, match=r"length_penalty=1000.0 is out of range for max_length=21"):
        resolve(config, length_penalty=1000.0)
    assert resolve(config, length_penalty=20.0).length_penalty == 20.0
    with pytest.raises(ValueError, match="do_sample=True is not supported"):
        resolve(config, generation_config={"do_sample": True})
    with pytest.raises(ValueError, match="num_beam_groups=2 is not supported"):
        resolve(config, generation_config={"num_beam_groups": 2, "num_beams": 4})
    with pytest.raises(TypeError, match=r"unsupported argument\(s\) \['top_q'\]"):
        resolve(config, top_q=0.5)
    # decoder_start_token_id unset falls back to bos, as HF does
    assert resolve(config, generation_config={"decoder_start_token_id": None, "bos_token_id": 0},
                   decoder_start_token_id=None).decoder_start_token_id == 2  # the model's own start token wins
    unset = GenerationConfig(bos_token_id=0, eos_token_id=2, pad_token_id=1)
    assert resolve(config, unset).decoder_start_token_id == 0
    with pytest.raises(ValueError, match="decoder_start_token_id and bos_token_id are both unset"):
        resolve(config, GenerationConfig(eos_token_id=2))


@pytest.mark.parametrize("package", ["ref", "torch"])
def test_decoder_start_token_null_falls_back_to_bos_like_hf(tmp_path, package):
    folder = hf_saved(tmp_path, "new")
    path = os.path.join(folder, GENERATION_CONFIG_NAME)
    with open(path) as fh:
        data = json.load(fh)
    data["decoder_start_token_id"] = None
    with open(path, "w") as fh:
        json.dump(data, fh)
    expected = hf_generate_from(folder, max_new_tokens=4)
    assert (expected[:, 0] == 0).all()  # bos
    ref, fast = ours_generate_from(folder, max_new_tokens=4)
    np.testing.assert_array_equal(ref if package == "ref" else fast, expected)


def test_generation_config_file_errors_name_the_file(tmp_path):
    folder = hf_saved(tmp_path, "new")
    path = os.path.join(folder, GENERATION_CONFIG_NAME)
    with open(path, "w") as fh:
        fh.write("[1, 2]")
    with pytest.raises(ValueError, match=r"generation_config.json' \(generation config\) must hold a JSON object"):
        led_ref.LEDForConditionalGeneration.from_pretrained(folder)
    with open(path, "w") as fh:
        fh.write("{not json")
    with pytest.raises(ValueError, match=r"generation_config.json' \(generation config\) is not valid JSON"):
        led_torch.LEDForConditionalGeneration.from_pretrained(folder)


# ------------------------------------------------------------------------------- pytorch_model.bin and convert
def test_pytorch_model_bin_converts_and_loads_in_both_packages(tmp_path, capsys):
    from parity.commands import main

    config = tiny_config(**FINE_TUNED)
    weights = random_weights(config, seed=6, std=0.5)
    source = str(tmp_path / "bin")
    with hf_dtype_scope(torch.float64):
        hf_model(config, weights, "LEDForConditionalGeneration", torch.float64).save_pretrained(
            source, safe_serialization=False)
    assert "pytorch_model.bin" in os.listdir(source) and "model.safetensors" not in os.listdir(source)
    with pytest.raises(ValueError, match="led-parity convert"):
        led_ref.LEDForConditionalGeneration.from_pretrained(source)
    expected = hf_generate_from(source)
    fast = led_torch.LEDForConditionalGeneration.from_pretrained(source, dtype=torch.float64)  # weights-only load
    np.testing.assert_array_equal(fast.generate(**{k: torch.as_tensor(v) for k, v in inputs().items()}).numpy(),
                                  expected)
    target = str(tmp_path / "converted")
    assert main(["convert", source, target]) == 0
    assert "generation_config.json" in capsys.readouterr().out
    assert {"model.safetensors", "config.json", GENERATION_CONFIG_NAME} <= set(os.listdir(target))
    spec = led_ref.LEDForConditionalGeneration.from_pretrained(target)
    for name, value in spec.weights.items():
        np.testing.assert_array_equal(value, weights[name], err_msg=name)
    np.testing.assert_array_equal(spec.generate(**inputs()), expected)
    assert main(["convert", str(tmp_path / "missing"), target]) == 2


def test_convert_never_runs_code_from_a_pickle(tmp_path, capsys):
    from parity.commands import main

    source = tmp_path / "evil"
    source.mkdir()
    tiny_config().save_pretrained(source)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"shared.weight": Payload()}, source / "pytorch_model.bin")
    assert main(["convert", str(source), str(tmp_path / "out")]) == 2
    assert "weights-only loader" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "out" / "model.safetensors").exists()


# ------------------------------------------------------------------------------- the local HF hub cache
def hub_cache(tmp_path, folder: str, repo: str = "allenai/led-tiny", commit: str = "0123abcd" * 5) -> str:
    """The layout huggingface_hub writes: blobs/ by content, snapshots/<commit>/ of symlinks, refs/main."""
    root = tmp_path / "hub" / ("models--" + repo.replace("/", "--"))
    (root / "blobs").mkdir(parents=True)
    (root / "snapshots" / commit).mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)
    for i, name in enumerate(sorted(os.listdir(folder))):
        blob = root / "blobs" / f"blob{i}"
        blob.write_bytes((Path(folder) / name).read_bytes())
        os.symlink(os.path.relpath(blob, root / "snapshots" / commit), root / "snapshots" / commit / name)
    return str(tmp_path / "hub")


def test_hub_ids_resolve_from_the_local_cache_without_network(tmp_path, monkeypatch):
    folder = hf_saved(tmp_path, "new", **FINE_TUNED)
    cache = hub_cache(tmp_path, folder)
    monkeypatch.setenv("HF_HUB_CACHE", cache)
    expected = hf_generate_from(folder)
    spec = led_ref.LEDForConditionalGeneration.from_pretrained("allenai/led-tiny")
    fast = led_torch.LEDForConditionalGeneration.from_pretrained("allenai/led-tiny", dtype=torch.float64)
    np.testing.assert_array_equal(spec.generate(**inputs()), expected)
    np.testing.assert_array_equal(fast.generate(**{k: torch.as_tensor(v) for k, v in inputs().items()}).numpy(),
                                  expected)
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # HF_HOME/hub is the same cache
    assert led_ref.LEDForConditionalGeneration.from_pretrained("allenai/led-tiny@main").config.vocab_size == 40
    with pytest.raises(FileNotFoundError, match=r"hf download allenai/led-base-16384"):
        led_ref.LEDForConditionalGeneration.from_pretrained("allenai/led-base-16384")
    with pytest.raises(FileNotFoundError, match=r"revision 'v2' is not in the local HF cache"):
        led_torch.LEDForConditionalGeneration.from_pretrained("allenai/led-tiny@v2")
