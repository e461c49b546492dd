"""Checkpoints as HF transformers 5.x saves them, from committed fixtures (CI pins 4.57 and cannot install 5.x).

`tests/fixtures/hf5/<model>-<layout>/` holds a tiny LED saved by transformers 5.24 (config.json,
generation_config.json when the layout has one, model.safetensors) and `expected.json`: the inputs and the
tokens and beam scores 5.24's own `generate` returned on that folder, with no further arguments and with
recorded option sets.
`tests/fixtures/make_hf5_checkpoints.py` made them (and regenerates them, with transformers >= 5); nothing in
them comes from this project's code. Layouts: "new" is what 5.x's `save_pretrained` writes (settings only in
generation_config.json); "old" has the settings in config.json and no generation_config.json, as on many hub
repositories.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import led_ref
import led_torch
from led_ref.io.generation_settings import GENERATION_CONFIG_NAME, resolve

FIXTURES = Path(__file__).parent / "fixtures" / "hf5"
FOLDERS = sorted(p.name for p in FIXTURES.iterdir() if (p / "expected.json").is_file())
# The fine-tuned settings make_hf5_checkpoints.py put on every model.
FINE_TUNED = dict(num_beams=4, length_penalty=2.0, no_repeat_ngram_size=3, min_length=5, max_length=14,
                  early_stopping=True)
torch.set_num_threads(1)


def expected(name: str) -> dict:
    with open(FIXTURES / name / "expected.json") as fh:
        return json.load(fh)


def load(package: str, folder):
    if package == "ref":
        return led_ref.LEDForConditionalGeneration.from_pretrained(folder)
    return led_torch.LEDForConditionalGeneration.from_pretrained(folder, dtype=torch.float64)


def generate(package: str, model, inputs: dict, options: dict, **extra):
    if package == "ref":
        return model.generate(**{k: np.asarray(v, dtype=np.int64) for k, v in inputs.items()}, **options, **extra)
    with torch.no_grad():
        return model.generate(**{k: torch.tensor(v, dtype=torch.long) for k, v in inputs.items()}, **options,
                              **extra)


def as_array(values) -> np.ndarray:
    return values.numpy() if isinstance(values, torch.Tensor) else np.asarray(values)


def test_fixtures_are_what_hf5_saved():
    assert len(FOLDERS) == 6 and {n.rsplit("-", 1)[1] for n in FOLDERS} == {"new", "old"}
    for name in FOLDERS:
        record = expected(name)
        assert int(record["transformers"].split(".")[0]) >= 5
        with open(FIXTURES / name / "config.json") as fh:
            config = json.load(fh)
        assert config["transformers_version"] == record["transformers"]
        has_generation_file = (FIXTURES / name / GENERATION_CONFIG_NAME).is_file()
        if name.endswith("-new"):  # 5.x leaves the generation fields out of config.json altogether
            assert has_generation_file and all(config.get(k) is None for k in FINE_TUNED)
            with open(FIXTURES / name / GENERATION_CONFIG_NAME) as fh:
                generation = json.load(fh)
            assert {k: generation[k] for k in FINE_TUNED} == FINE_TUNED
        else:
            assert not has_generation_file and {k: config[k] for k in FINE_TUNED} == FINE_TUNED
        # HF used the settings: max_length 14 (not its default 20) with no further arguments
        assert record["generate"][0]["options"] == {}
        assert np.asarray(record["generate"][0]["sequences"]).shape == (2, FINE_TUNED["max_length"])


@pytest.mark.parametrize("package", ["ref", "torch"])
@pytest.mark.parametrize("name", FOLDERS)
def test_generate_gives_hf5_tokens(name, package):
    record = expected(name)
    model = load(package, FIXTURES / name)
    for run in record["generate"]:
        where = f"{name} {package} {run['options']}"
        tokens = as_array(generate(package, model, record["inputs"], run["options"]))
        np.testing.assert_array_equal(tokens, np.asarray(run["sequences"]), err_msg=where)
        # beam scores too (HF 5.x scores in float32, hence the tolerance)
        out = generate(package, model, record["inputs"], run["options"], return_dict_in_generate=True,
                       output_scores=True)
        np.testing.assert_array_equal(as_array(out.sequences), np.asarray(run["sequences"]), err_msg=where)
        np.testing.assert_allclose(as_array(out.sequences_scores), np.asarray(run["sequences_scores"]), rtol=1e-5,
                                   atol=1e-6, err_msg=where)


@pytest.mark.parametrize("package", ["ref", "torch"])
@pytest.mark.parametrize("name", FOLDERS)
def test_save_pretrained_round_trip_keeps_the_settings(tmp_path, name, package):
    model = load(package, FIXTURES / name)
    model.save_pretrained(tmp_path)
    with open(tmp_path / GENERATION_CONFIG_NAME) as fh:
        generation = json.load(fh)
    assert {k: generation[k] for k in FINE_TUNED} == FINE_TUNED
    again = load(package, tmp_path)
    assert again.generation_config.to_dict() == model.generation_config.to_dict()
    assert resolve(again.config, again.generation_config) == resolve(model.config, model.generation_config)
    record = expected(name)
    np.testing.assert_array_equal(as_array(generate(package, again, record["inputs"], {})),
                                  np.asarray(record["generate"][0]["sequences"]))
    assert os.path.isfile(tmp_path / "model.safetensors")
