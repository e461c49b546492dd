"""led_ref.io.checkpoint against HF's own save_pretrained / from_pretrained, plus every error path."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from led_ref.init import random_weights
from led_ref.io import checkpoint as ckpt
from led_ref.io.checkpoint import (
    CheckpointError,
    adapt_state_dict,
    check_state_dict,
    infer_architecture,
    load_checkpoint,
    parse_size,
    read_state_dict,
    save_checkpoint,
)
from led_ref.io.config import LEDConfig
from led_ref.io.names import ARCHITECTURES, checkpoint_shapes
from tests.hf_oracle import hf_dtype_scope, hf_model, to_numpy, torch, transformers

pytestmark = pytest.mark.hf


def tiny_config(**overrides) -> LEDConfig:
    base = dict(
        vocab_size=40, d_model=16, encoder_attention_heads=2, decoder_attention_heads=2, encoder_layers=2,
        decoder_layers=1, encoder_ffn_dim=24, decoder_ffn_dim=20, attention_window=[4, 2],
        max_encoder_position_embeddings=32, max_decoder_position_embeddings=12, num_labels=3,
    )
    return LEDConfig(**(base | overrides))


def assert_same_tensors(got: dict, want: dict) -> None:
    assert list(got) == list(want) or set(got) == set(want), sorted(set(got) ^ set(want))
    for name, value in want.items():
        assert got[name].shape == value.shape, name
        np.testing.assert_array_equal(got[name], value, err_msg=name)


def hf_state(model) -> dict[str, np.ndarray]:
    return {k: to_numpy(v) for k, v in model.state_dict().items()}


# ------------------------------------------------------------------------------------------- against HF
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_hf_save_pretrained_loads_here(tmp_path, architecture):
    config = tiny_config()
    weights = random_weights(config, architecture, seed=1)
    model = hf_model(config, weights, architecture, torch.float64)
    model.save_pretrained(tmp_path)
    loaded_config, loaded = load_checkpoint(tmp_path)
    assert infer_architecture(read_state_dict(tmp_path)) == architecture
    assert_same_tensors(loaded, weights)
    assert all(v.dtype == np.float64 for v in loaded.values())
    for name in ("d_model", "attention_window", "encoder_layers", "vocab_size", "max_decoder_position_embeddings"):
        assert getattr(loaded_config, name) == getattr(config, name), name


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("max_shard_size", [None, "3KB"])
def test_save_checkpoint_loads_in_hf(tmp_path, architecture, max_shard_size):
    config = tiny_config()
    weights = random_weights(config, architecture, seed=2, dtype=np.float32)
    save_checkpoint(tmp_path, config, weights, architecture, max_shard_size=max_shard_size)
    names = set(os.listdir(tmp_path))
    assert ("model.safetensors.index.json" in names) == (max_shard_size is not None)
    with hf_dtype_scope(torch.float32):
        model = getattr(transformers, architecture).from_pretrained(tmp_path).eval()
    state = hf_state(model)
    prefix = "" if architecture == "LEDModel" else "led."
    for name, value in weights.items():
        assert state[name].dtype == np.float32
        np.testing.assert_array_equal(state[name], value, err_msg=name)
    # HF ties the embeddings it was not given to shared.weight.
    np.testing.assert_array_equal(state[prefix + "encoder.embed_tokens.weight"], weights[prefix + "shared.weight"])
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == [architecture]


def test_sharded_round_trip_and_index(tmp_path):
    config = tiny_config()
    weights = random_weights(config, "LEDForConditionalGeneration", seed=3)
    save_checkpoint(tmp_path, config, weights, "LEDForConditionalGeneration", max_shard_size=4000)
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 2 and shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    assert index["metadata"]["total_size"] == sum(v.nbytes for v in weights.values())
    for shard in shards:  # only a tensor bigger than the limit may exceed it
        content = ckpt.read_safetensors_file(tmp_path / shard)
        assert len(content) == 1 or sum(v.nbytes for v in content.values()) <= 4000
    assert not (tmp_path / "model.safetensors").exists()
    _, loaded = load_checkpoint(tmp_path)
    assert_same_tensors(loaded, weights)
    # Saving again unsharded removes the old shards, so nothing stale shadows the new weights.
    save_checkpoint(tmp_path, config, weights, "LEDForConditionalGeneration")
    assert sorted(os.listdir(tmp_path)) == ["config.json", "model.safetensors"]


@given(
    architecture=st.sampled_from(ARCHITECTURES),
    shard=st.one_of(st.none(), st.integers(min_value=1, max_value=20000)),
    dtype=st.sampled_from([np.float32, np.float64, np.float16]),
    seed=st.integers(0, 2**16),
)
def test_round_trip_any_layout(tmp_path_factory, architecture, shard, dtype, seed):
    config = tiny_config(encoder_layers=1, attention_window=6, num_labels=2)
    weights = random_weights(config, architecture, seed=seed, dtype=dtype)
    folder = tmp_path_factory.mktemp("ckpt")
    save_checkpoint(folder, config, weights, architecture, max_shard_size=shard)
    stored = read_state_dict(folder)
    assert_same_tensors(stored, weights)
    assert all(stored[n].dtype == np.dtype(dtype) for n in stored)
    _, loaded = load_checkpoint(folder, dtype=np.float64)
    for name, value in weights.items():
        np.testing.assert_array_equal(loaded[name], value.astype(np.float64))


def test_single_safetensors_file_path_and_bfloat16(tmp_path):
    from safetensors.torch import save_file

    values = torch.randn(3, 5, dtype=torch.float32).to(torch.bfloat16)
    path = tmp_path / "w.safetensors"
    save_file({"x": values, "y": torch.arange(4)}, str(path), metadata={"format": "pt"})
    got = read_state_dict(path)
    np.testing.assert_array_equal(got["x"], values.float().numpy())
    assert got["x"].dtype == np.float32
    np.testing.assert_array_equal(got["y"], np.arange(4))


# --------------------------------------------------------------------------------------- adapting names
def test_base_model_from_head_checkpoint_and_back():
    config = tiny_config()
    head = random_weights(config, "LEDForConditionalGeneration", seed=4)
    base = adapt_state_dict(head, config, "LEDModel")
    assert set(base) == set(checkpoint_shapes(config, "LEDModel"))
    np.testing.assert_array_equal(base["shared.weight"], head["led.shared.weight"])
    generation = adapt_state_dict(base, config, "LEDForConditionalGeneration")
    assert set(generation) == set(checkpoint_shapes(config, "LEDForConditionalGeneration"))
    # HF leaves a missing final_logits_bias at zero.
    np.testing.assert_array_equal(generation["final_logits_bias"], np.zeros((1, config.vocab_size)))


def test_missing_head_is_an_error_unless_allowed():
    config = tiny_config()
    base = random_weights(config, "LEDModel", seed=5)
    with pytest.raises(CheckpointError, match="classification_head.dense.weight.*allow_missing_head"):
        adapt_state_dict(base, config, "LEDForSequenceClassification")
    adapted = adapt_state_dict(base, config, "LEDForQuestionAnswering", allow_missing_head=True)
    assert "qa_outputs.weight" not in adapted and "led.shared.weight" in adapted
    check_state_dict(adapted, config, "LEDForQuestionAnswering", allow_missing_head=True)
    with pytest.raises(CheckpointError, match="missing qa_outputs.weight"):
        check_state_dict(adapted, config, "LEDForQuestionAnswering")
    # Another head's weights are dropped, not carried over.
    generation = random_weights(config, "LEDForConditionalGeneration", seed=5)
    adapted = adapt_state_dict(generation, config, "LEDForQuestionAnswering", allow_missing_head=True)
    assert "final_logits_bias" not in adapted


def test_tied_copies_dropped_when_equal_refused_when_different():
    config = tiny_config()
    weights = random_weights(config, "LEDForConditionalGeneration", seed=6)
    shared = weights["led.shared.weight"]
    with_copies = dict(weights) | {
        "led.encoder.embed_tokens.weight": shared.copy(),
        "led.decoder.embed_tokens.weight": shared.copy(),
        "lm_head.weight": shared.copy(),
    }
    assert_same_tensors(adapt_state_dict(with_copies, config, "LEDForConditionalGeneration"), weights)
    different = dict(with_copies)
    different["lm_head.weight"] = shared + 1.0
    with pytest.raises(CheckpointError, match="lm_head.weight differs from shared.weight"):
        adapt_state_dict(different, config, "LEDForConditionalGeneration")
    # An export holding only a tied copy: that copy is the shared embedding.
    only_copy = {k: v for k, v in with_copies.items() if k != "led.shared.weight"}
    adapted = adapt_state_dict(only_copy, config, "LEDForConditionalGeneration")
    np.testing.assert_array_equal(adapted["led.shared.weight"], shared)


def test_infer_architecture():
    config = tiny_config()
    for architecture in ARCHITECTURES:
        assert infer_architecture(random_weights(config, architecture)) == architecture
    assert infer_architecture(["led.shared.weight"]) == "LEDForConditionalGeneration"
    with pytest.raises(CheckpointError, match="several heads"):
        infer_architecture(["final_logits_bias", "qa_outputs.weight"])


# ------------------------------------------------------------------------------------------- error paths
def test_check_state_dict_lists_every_problem():
    config = tiny_config()
    weights = random_weights(config, "LEDForSequenceClassification", seed=7)
    del weights["led.encoder.layers.1.fc1.bias"]
    del weights["classification_head.out_proj.weight"]
    weights["led.encoder.layers.0.fc2.weight"] = np.zeros((16, 7))
    weights["led.surprise"] = np.zeros(3)
    weights["led.decoder.layers.0.fc1.weight"][0, 0] = np.nan
    weights["led.shared.weight"][1, 1] = np.inf
    with pytest.raises(CheckpointError) as err:
        check_state_dict(weights, config, "LEDForSequenceClassification")
    message = str(err.value)
    assert message.startswith("6 problem(s)")
    for fragment in (
        "missing led.encoder.layers.1.fc1.bias (expected shape (24,))",
        "missing classification_head.out_proj.weight (expected shape (3, 16))",
        "wrong shape led.encoder.layers.0.fc2.weight: expected (16, 24), found (16, 7)",
        "unexpected led.surprise (shape (3,))",
        "non-finite values in led.decoder.layers.0.fc1.weight (1 of",
        "non-finite values in led.shared.weight",
    ):
        assert fragment in message
    weights.pop("led.surprise")
    with pytest.raises(CheckpointError) as err:
        check_state_dict(weights, config, "LEDForSequenceClassification", allow_non_finite=True)
    assert str(err.value).startswith("3 problem(s)") and "non-finite" not in str(err.value)


def test_pickles_are_refused_without_unpickling(tmp_path):
    LEDConfig().save_pretrained(tmp_path)
    # Not a valid pickle: it must be refused by name, never opened.
    (tmp_path / "pytorch_model.bin").write_bytes(b"not a pickle")
    for path in (tmp_path, tmp_path / "pytorch_model.bin"):
        with pytest.raises(CheckpointError, match="never unpickles.*safetensors.*led_torch"):
            read_state_dict(path)
    with pytest.raises(CheckpointError, match="never unpickles"):
        load_checkpoint(tmp_path)


def test_missing_files_name_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"no config.json in checkpoint folder '{tmp_path}'"):
        load_checkpoint(tmp_path)
    LEDConfig().save_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match=f"no weights in .*'{tmp_path}'.*model.safetensors.index.json"):
        load_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_state_dict(tmp_path / "nowhere")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(CheckpointError, match="not a .safetensors file"):
        read_state_dict(tmp_path / "notes.txt")


def test_broken_shards_are_reported(tmp_path):
    config = tiny_config()
    weights = random_weights(config, "LEDModel", seed=8)
    save_checkpoint(tmp_path, config, weights, "LEDModel", max_shard_size="2KB")
    index_path = tmp_path / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    owners = list(index["weight_map"].values())
    name, shard = next((n, s) for n, s in index["weight_map"].items() if owners.count(s) > 1)
    index["weight_map"][name] = "model-00099-of-00099.safetensors"
    index_path.write_text(json.dumps(index))
    with pytest.raises(FileNotFoundError, match="model-00099-of-00099.safetensors.*missing"):
        read_state_dict(tmp_path)
    del index["weight_map"][name]
    index_path.write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match=f"shard '{shard}' does not match.*{name}"):
        read_state_dict(tmp_path)
    index_path.write_text("{broken")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_state_dict(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\xff" * 4)
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        read_state_dict(tmp_path)


def test_bad_arguments():
    config = tiny_config()
    weights = random_weights(config, "LEDModel")
    with pytest.raises(ValueError, match="architecture must be one of .*got 'LEDForCausalLM'"):
        adapt_state_dict(weights, config, "LEDForCausalLM")
    with pytest.raises(ValueError, match="max_shard_size='ten'"):
        parse_size("ten")
    with pytest.raises(ValueError, match="max_shard_size must be > 0"):
        parse_size(0)
    with pytest.raises(TypeError, match="max_shard_size"):
        parse_size(1.5)
    assert parse_size("2KiB") == 2048 and parse_size("1.5MB") == 1_500_000 and parse_size(7) == 7


def test_bad_dtype_and_save_refuses_bad_weights(tmp_path):
    config = tiny_config()
    weights = random_weights(config, "LEDModel")
    save_checkpoint(tmp_path, config, weights, "LEDModel")
    with pytest.raises(TypeError, match="dtype must be a NumPy floating type, got int32"):
        load_checkpoint(tmp_path, dtype=np.int32)
    weights.pop("encoder.layernorm_embedding.bias")
    with pytest.raises(CheckpointError, match="missing encoder.layernorm_embedding.bias"):
        save_checkpoint(tmp_path / "other", config, weights, "LEDModel")
    assert not (tmp_path / "other").exists()


def test_interrupted_save_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    config = tiny_config()
    old = random_weights(config, "LEDModel", seed=9, dtype=np.float32)
    save_checkpoint(tmp_path, config, old, "LEDModel")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, config, random_weights(config, "LEDModel", seed=10), "LEDModel")
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temp files left either


# ------------------------------------------------------------------------------------------- led_torch, same policy
def _torch_state(weights: dict, dtype=None) -> dict:
    return {name: torch.from_numpy(value) if dtype is None else torch.from_numpy(value).to(dtype)
            for name, value in weights.items()}


def test_led_torch_refuses_bad_weights_with_led_refs_message():
    """led_torch adapts and checks its tensors with led_ref's functions: one policy, one message."""
    import led_torch

    config, architecture = tiny_config(), "LEDForSequenceClassification"
    weights = random_weights(config, architecture, seed=7)
    del weights["led.encoder.layers.1.fc1.bias"]
    weights["led.encoder.layers.0.fc2.weight"] = np.zeros((16, 7))
    weights["led.surprise"] = np.zeros(3)
    weights["led.decoder.layers.0.fc1.weight"][0, :2] = [np.nan, np.inf]
    with pytest.raises(CheckpointError) as ref_err:
        adapted = adapt_state_dict(weights, config, architecture, allow_missing_head=True)
        check_state_dict(adapted, config, architecture, allow_missing_head=True)
    with pytest.raises(CheckpointError) as torch_err:
        led_torch.LEDForSequenceClassification.from_weights(config, _torch_state(weights))
    assert str(torch_err.value) == str(ref_err.value)
    assert str(ref_err.value).startswith("4 problem(s) with the weights for LEDForSequenceClassification")
    assert "non-finite values in led.decoder.layers.0.fc1.weight (2 of 320 entries are inf/nan)" in str(ref_err.value)


def test_led_torch_checks_tied_copies_and_bfloat16_tensors_like_led_ref():
    import led_torch

    config = tiny_config()
    weights = random_weights(config, "LEDForConditionalGeneration", seed=6)
    shared = weights["led.shared.weight"]
    copies = weights | {"led.encoder.embed_tokens.weight": shared.copy(), "lm_head.weight": shared.copy()}
    model = led_torch.LEDForConditionalGeneration.from_weights(config, _torch_state(copies), dtype=torch.float64)
    np.testing.assert_array_equal(model.lm_head.weight.detach().numpy(), shared)
    different = copies | {"lm_head.weight": shared + 1.0}
    with pytest.raises(CheckpointError, match="lm_head.weight differs from shared.weight"):
        led_torch.LEDForConditionalGeneration.from_weights(config, _torch_state(different))
    broken = dict(weights)
    broken["led.encoder.layers.0.fc1.weight"] = broken["led.encoder.layers.0.fc1.weight"].copy()
    broken["led.encoder.layers.0.fc1.weight"][1, 1] = np.nan
    with pytest.raises(CheckpointError, match=r"non-finite values in led.encoder.layers.0.fc1.weight \(1 of 384"):
        led_torch.LEDForConditionalGeneration.from_weights(config, _torch_state(broken, torch.bfloat16))
    # A missing final_logits_bias is zeros in both packages (HF's habit), without a warning.
    no_bias = {k: v for k, v in weights.items() if k != "final_logits_bias"}
    assert not adapt_state_dict(no_bias, config, "LEDForConditionalGeneration")["final_logits_bias"].any()
    model = led_torch.LEDForConditionalGeneration.from_weights(config, _torch_state(no_bias))
    assert not model.final_logits_bias.any()
