"""What the reliability tests share: one small config and batch, both packages behind one interface (`Impl`),
cached models, a call through any entry point, and the checks that outputs are finite and agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
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


def call(impl: Impl, entry: str, kwargs: dict, max_length: int | None = 4):
    """Call `entry` ("LEDModel", ..., "get_encoder", "generate") of `impl` with `kwargs` (numpy values);
    generate stops at `max_length` unless `kwargs` says otherwise (None: the model's own setting)."""
    kwargs = impl.arrays(kwargs)
    if entry in CLASSES:
        return model_for(impl, entry)(**kwargs)
    model = model_for(impl, "LEDForConditionalGeneration")
    if entry == "get_encoder":
        return model.get_encoder()(**kwargs)
    if max_length is not None:
        kwargs.setdefault("max_length", max_length)
    return model.generate(**kwargs)


def with_value(array: np.ndarray, index, value) -> np.ndarray:
    """A copy of `array` with `array[index] = value`."""
    out = array.copy()
    out[index] = value
    return out


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
