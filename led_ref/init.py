"""Seeded random weights for an LED checkpoint (tests, the embedded default, benchmarks).

Not HF's initialisation: layer norms and biases are deliberately non-trivial (a weight of exactly 1 and a
bias of exactly 0 would hide a missing or swapped layer norm), and `final_logits_bias` is non-zero.
"""

from __future__ import annotations

import numpy as np

from .io.config import LEDConfig
from .io.names import checkpoint_shapes


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
