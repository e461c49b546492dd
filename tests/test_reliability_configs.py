"""A model is never built on a config, dtype or device it cannot run: bad windows, a config broken after
construction, a non-float dtype, a missing CUDA device and config files that would crash later are refused
by name, in both packages.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import led_ref
import led_torch
from led_ref.init import random_weights
from led_ref.io.config import LEDConfig
from tests.reliability_cases import CONFIG, IMPLS


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
    """Each of these would load and then crash (pad None, no decoder layer) or give NaN logits (init_std NaN with
    a head missing from the file): refused when the config is read instead."""
    import json

    config = LEDConfig.from_dict(CONFIG.to_dict())
    led_ref.LEDModel(config, weights=random_weights(config, "LEDModel", seed=0)).save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(data | {field: value}))
    package = led_ref if impl.name == "led_ref" else led_torch
    with pytest.raises(ValueError) as err:
        package.LEDForSequenceClassification.from_pretrained(tmp_path)
    assert all(m in str(err.value) for m in mentions), str(err.value)
