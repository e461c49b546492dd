"""Seeded random weights for an LED checkpoint (tests, the embedded default, benchmarks).

Not HF's initialisation: layer norms and biases are deliberately non-trivial (a weight of exactly 1 and a
bias of exactly 0 would hide a missing or swapped layer norm), and `final_logits_bias` is non-zero.
"""

from __future__ import annotations

import zlib

import numpy as np

from .io.config import LEDConfig
from .io.names import checkpoint_shapes, head_shapes


def random_weights(
    config: LEDConfig,
    architecture: str = "LEDForConditionalGeneration",
    seed: int = 0,
    std: float | None = None,
    dtype: np.dtype | type = np.float64,
) -> dict[str, np.ndarray]:
    """All stored tensors of `architecture` (HF names), drawn from a generator seeded with `seed`.

    Linear weights and embeddings ~ N(0, std) (std defaults to `config.init_std`), biases ~ N(0, std),
    layer-norm weights ~ 1 + N(0, 0.1), layer-norm biases ~ N(0, 0.1), final_logits_bias ~ N(0, 0.1).
    The same (config, architecture, seed) gives the same arrays on every machine.
    """
    std = config.init_std if std is None else std
    rng = np.random.default_rng(seed)
    weights: dict[str, np.ndarray] = {}
    for name, shape in checkpoint_shapes(config, architecture).items():
        if "layer_norm" in name or "layernorm" in name:
            base = 1.0 if name.endswith(".weight") else 0.0
            value = base + 0.1 * rng.standard_normal(shape)
        elif name == "final_logits_bias":
            value = 0.1 * rng.standard_normal(shape)
        else:
            value = std * rng.standard_normal(shape)
        weights[name] = value.astype(dtype)
    return weights


def missing_head_weights(
    config: LEDConfig,
    architecture: str,
    names,
    seed: int = 0,
    dtype: np.dtype | type = np.float64,
) -> dict[str, np.ndarray]:
    """Fresh values for task-head tensors a checkpoint lacks (a classification head on a summarisation
    checkpoint), initialised as HF initialises a head: weights ~ N(0, config.init_std), biases 0.

    Each tensor comes from its own generator, seeded with (seed, CRC-32 of its name), so led_ref and led_torch
    load the same checkpoint with the same head, whichever tensors are missing, without drawing the rest of
    the model. `names` must be head tensors of `architecture` (`head_shapes`); another name is a ValueError.
    """
    shapes = head_shapes(config, architecture)
    fresh: dict[str, np.ndarray] = {}
    for name in names:
        if name not in shapes:
            raise ValueError(f"{name!r} is not a head tensor of {architecture} (its head tensors: "
                             f"{', '.join(shapes) or 'none'})")
        if name.endswith("bias"):
            value = np.zeros(shapes[name])
        else:
            rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
            value = config.init_std * rng.standard_normal(shapes[name])
        fresh[name] = value.astype(dtype)
    return fresh
