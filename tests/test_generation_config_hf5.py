"""transformers 5.x generation configs in both packages: 5.x leaves every field it was not given None.

A None field is unset: it takes the checkpoint's value, then HF's default (`led_ref.io.generation_settings`).
An object made by transformers >= 5 (its `transformers_version`) follows 5.x's rule: only its unset fields take
the model's value. The suite cannot install 5.x, so a 5.x object is stood in for by `HF5GenerationConfig` (every
field of transformers' GenerationConfig, None unless given, and 5.24's version), and the tokens are checked
against what 5.24 itself generated on the committed fixtures (tests/fixtures/hf5/, see test_hf5_checkpoints.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hf_oracle import hf_dtype_scope, transformers

import led_torch
from led_ref.io.config import LEDConfig
from led_ref.io.generation_settings import GenerationConfig, resolve
from parity.hf.interop import to_led_torch
from tests.test_hf5_checkpoints import FIXTURES, FOLDERS, as_array, expected, generate, load
from tests.test_hf_checkpoints import FINE_TUNED, hf_generate_from, hf_saved, inputs

pytestmark = pytest.mark.hf
torch.set_num_threads(1)

HF5_VERSION = "5.24.0"
# every field of transformers' GenerationConfig (metadata apart)
FIELDS = [k for k in transformers.GenerationConfig().to_dict() if not k.startswith("_") and k != "transformers_version"]


class HF5GenerationConfig:
    """What `generate` sees of a transformers 5.x GenerationConfig: `to_dict()` with every field, None unless
    given, and the version that made it."""

    def __init__(self, **given):
        self.given = given

    def to_dict(self) -> dict:
        return {k: None for k in FIELDS} | {"_from_model_config": False, "transformers_version": HF5_VERSION} \
            | self.given


def hf457_with_nones(**given) -> transformers.GenerationConfig:
    """transformers 4.57's object with every field not given set to None, as 5.x leaves them."""
    config = transformers.GenerationConfig(**given)
    for key in FIELDS:
        if key not in given:
            setattr(config, key, None)
    return config


def as_generation_config(options: dict) -> dict:
    """A recorded 5.24 run's options as one generation config: the keyword arguments, or the config it passed."""
    return dict(options.get("generation_config", options))


# ------------------------------------------------------------------------------------------ 5.24's own tokens
@pytest.mark.parametrize("package", ["ref", "torch"])
@pytest.mark.parametrize("name", FOLDERS)
def test_hf5_objects_give_hf5_tokens(name, package):
    """Every recorded 5.24 run, replayed through 5.x-style configs (None = unset): 5.24's tokens, in the three
    forms a caller may hand over (5.x's object, 4.57's object with Nones, a dict with Nones)."""
    record = expected(name)
    model = load(package, FIXTURES / name)
    for run in record["generate"]:
        options = as_generation_config(run["options"])
        nones = {k: None for k in FIELDS if k not in options}
        for form in (HF5GenerationConfig(**options), hf457_with_nones(**options), nones | options):
            tokens = as_array(generate(package, model, record["inputs"], {"generation_config": form}))
            np.testing.assert_array_equal(tokens, np.asarray(run["sequences"]),
                                          err_msg=f"{name} {package} {type(form).__name__} {options}")


# ------------------------------------------------------------------------------------------ the two rules
@pytest.mark.parametrize("package", ["ref", "torch"])
def test_hf5_object_keeps_a_value_equal_to_the_default(package):
    """5.x: a field the object sets stays, even at the global default (num_beams=1 on a 4-beam checkpoint gives
    greedy search); 4.57's rule, for its objects and dicts, takes the checkpoint's 4 beams instead."""
    name = "tiny-a-new"
    record = expected(name)
    model = load(package, FIXTURES / name)

    def tokens(**options):
        return as_array(generate(package, model, record["inputs"], options))

    greedy = tokens(num_beams=1)
    np.testing.assert_array_equal(tokens(generation_config=HF5GenerationConfig(num_beams=1)), greedy)
    with hf_dtype_scope(torch.float64):
        hf = transformers.LEDForConditionalGeneration.from_pretrained(FIXTURES / name, dtype=torch.float64).eval()
        hf457 = hf.generate(**{k: torch.tensor(v) for k, v in record["inputs"].items()},
                            generation_config=transformers.GenerationConfig(num_beams=1)).numpy()
    np.testing.assert_array_equal(tokens(generation_config=transformers.GenerationConfig(num_beams=1)), hf457)
    np.testing.assert_array_equal(tokens(generation_config={"num_beams": 1}), hf457)
    np.testing.assert_array_equal(hf457, np.asarray(record["generate"][0]["sequences"]))  # the checkpoint's beams
    assert greedy.shape != hf457.shape or not np.array_equal(greedy, hf457)


CONFIG = LEDConfig(vocab_size=40, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                   decoder_attention_heads=2, encoder_ffn_dim=16, decoder_ffn_dim=16, attention_window=4)


def test_old_checkpoint_settings_fill_only_what_is_unset():
    """A model generation config from HF < 4.50: 4.57 fills in only the token ids from it (a None elsewhere is
    unset, so it takes the model's value); a 5.x object takes the model's value for every unset field."""
    old = GenerationConfig(transformers_version="4.38.2", num_beams=4, forced_eos_token_id=2, length_penalty=2.0,
                           decoder_start_token_id=2, eos_token_id=2, pad_token_id=1)
    as_457 = resolve(CONFIG, old, {"num_beams": None, "length_penalty": 1.0, "max_length": 9})
    assert (as_457.num_beams, as_457.length_penalty, as_457.forced_eos_token_id) == (4, 1.0, None)
    as_5 = resolve(CONFIG, old, HF5GenerationConfig(length_penalty=1.0, max_length=9))
    assert (as_5.num_beams, as_5.length_penalty, as_5.forced_eos_token_id) == (4, 1.0, 2)
    assert as_457.max_length == as_5.max_length == 9


def test_none_reads_as_unset_and_is_not_written():
    gc = GenerationConfig(num_beams=None, length_penalty=None, max_new_tokens=None, num_return_sequences=3)
    assert (gc.num_beams, gc.length_penalty, gc.max_new_tokens) == (1, 1.0, None)
    assert gc == GenerationConfig(num_return_sequences=3)
    assert gc.to_dict() == {"num_return_sequences": 3}
    assert gc.is_unset("num_beams") and gc.is_unset("max_length") and not gc.is_unset("num_return_sequences")
    hf5 = GenerationConfig.coerce(HF5GenerationConfig(num_beams=2))
    assert hf5._values["num_return_sequences"] is None and hf5.num_return_sequences == 1
    assert resolve(CONFIG, None, HF5GenerationConfig(num_beams=2)).num_return_sequences == 1


# ------------------------------------------------------------------------------------------ the model's own
def test_to_led_torch_of_a_5x_style_hf_model_generates_and_saves(tmp_path):
    """An HF model whose generation config holds Nones (5.x): converted, it generates HF's tokens with no
    arguments, and saves a generation_config.json HF 4.57 reads (no nulls)."""
    folder = hf_saved(tmp_path, "new", **FINE_TUNED)
    want = hf_generate_from(folder)
    with hf_dtype_scope(torch.float64):
        hf = transformers.LEDForConditionalGeneration.from_pretrained(folder, dtype=torch.float64).eval()
    hf.generation_config = HF5GenerationConfig(**FINE_TUNED, bos_token_id=0, eos_token_id=2, pad_token_id=1,
                                               decoder_start_token_id=2)
    fast = to_led_torch(hf)
    tensors = {k: torch.as_tensor(v) for k, v in inputs().items()}
    with torch.no_grad():
        np.testing.assert_array_equal(fast.generate(**tensors).numpy(), want)
    fast.save_pretrained(tmp_path / "saved")
    assert "null" not in (tmp_path / "saved" / "generation_config.json").read_text()
    np.testing.assert_array_equal(hf_generate_from(str(tmp_path / "saved")), want)


@pytest.mark.parametrize("given", [transformers.GenerationConfig, hf457_with_nones, HF5GenerationConfig],
                         ids=["hf457", "hf457-nones", "hf5"])
def test_an_hf_object_as_the_models_generation_config(tmp_path, given):
    """Seq2SeqTrainer(args=...generation_config=...) sets transformers' object as `model.generation_config`:
    generate and save_pretrained read it as ours."""
    folder = hf_saved(tmp_path, "new")
    model = led_torch.LEDForConditionalGeneration.from_pretrained(folder, dtype=torch.float64)
    tensors = {k: torch.as_tensor(v) for k, v in inputs().items()}
    settings = dict(num_beams=3, max_length=9, no_repeat_ngram_size=2, decoder_start_token_id=2, eos_token_id=2,
                    pad_token_id=1, bos_token_id=0)
    with torch.no_grad():
        want = model.generate(**tensors, **settings).numpy()
        model.generation_config = given(**settings)
        np.testing.assert_array_equal(model.generate(**tensors).numpy(), want)
    model.save_pretrained(tmp_path / "saved")
    again = led_torch.LEDForConditionalGeneration.from_pretrained(tmp_path / "saved", dtype=torch.float64)
    assert again.generation_config.num_beams == 3
    with torch.no_grad():
        np.testing.assert_array_equal(again.generate(**tensors).numpy(), want)
