"""The building blocks of LED as pure NumPy functions: activations, layer norm, linear, softmax, ffn.

Parameters are plain dicts of HF-named arrays; `linear(x, params, "fc1")` reads `params["fc1.weight"]`
(out_features, in_features) and `params["fc1.bias"]` (out_features,), exactly as a checkpoint stores them.
`subtree(weights, "encoder.layers.0.")` cuts a flat checkpoint dict down to the names under one prefix,
so every block receives only its own parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
from scipy.special import erf

LAYER_NORM_EPS = 1e-5  # torch.nn.LayerNorm's default, which LED uses everywhere


# ------------------------------------------------------------------------------------------- activations
def gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU, x * Phi(x) (HF "gelu"). Python-float constants keep float32 inputs float32."""
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def gelu_new(x: np.ndarray) -> np.ndarray:
    """Tanh approximation of GELU (HF "gelu_new", GPT-2's)."""
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def gelu_fast(x: np.ndarray) -> np.ndarray:
    """The same tanh approximation with the constant rounded as HF's "gelu_fast" does."""
    return 0.5 * x * (1.0 + np.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))


def quick_gelu(x: np.ndarray) -> np.ndarray:
    """x * sigmoid(1.702 x) (HF "quick_gelu")."""
    return x * sigmoid(1.702 * x)


def sigmoid(x: np.ndarray) -> np.ndarray:
    # Written with exp(-|x|) so that neither branch overflows.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def silu(x: np.ndarray) -> np.ndarray:
    return x * sigmoid(x)


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "gelu": gelu,
    "gelu_new": gelu_new,
    "gelu_fast": gelu_fast,
    "quick_gelu": quick_gelu,
    "relu": relu,
    "silu": silu,
    "swish": silu,
    "tanh": np.tanh,
}


def activation(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """The activation function called `name` in an HF config (`config.activation_function`)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation_function must be one of {', '.join(ACTIVATIONS)}; got {name!r}")
    return ACTIVATIONS[name]


# ------------------------------------------------------------------------------------------- layers
def subtree(weights: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The entries of `weights` whose names start with `prefix`, with the prefix removed."""
    return {name[len(prefix):]: value for name, value in weights.items() if name.startswith(prefix)}


def linear(x: np.ndarray, params: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    """x @ W.T + b with W = params[name.weight] (out, in): (..., in) -> (..., out)."""
    return x @ params[f"{name}.weight"].T + params[f"{name}.bias"]


def split_heads(x: np.ndarray, num_heads: int) -> np.ndarray:
    """(batch, seq, heads * head_dim) -> (batch, heads, seq, head_dim)."""
    batch, seq, width = x.shape
    return x.reshape(batch, seq, num_heads, width // num_heads).transpose(0, 2, 1, 3)


def merge_heads(x: np.ndarray) -> np.ndarray:
    """(batch, heads, seq, head_dim) -> (batch, seq, heads * head_dim)."""
    batch, heads, seq, head_dim = x.shape
    return x.transpose(0, 2, 1, 3).reshape(batch, seq, heads * head_dim)


def layer_norm(x: np.ndarray, params: Mapping[str, np.ndarray], name: str, eps: float = LAYER_NORM_EPS) -> np.ndarray:
    """Normalise the last axis to mean 0, variance 1 (biased variance), then scale and shift: (..., d)."""
    mean = x.mean(axis=-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + eps) * params[f"{name}.weight"] + params[f"{name}.bias"]


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(x - max) / sum, along `axis`. Entries of -inf get probability 0.

    A row whose entries are all -inf has no defined softmax; it comes back as NaN, and callers that can
    meet one (padding rows) replace it explicitly.
    """
    shifted = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """log(softmax(x)) computed without forming the probabilities (no log(0) for large gaps)."""
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def ffn(x: np.ndarray, params: Mapping[str, np.ndarray], act: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """The position-wise feed-forward block fc2(act(fc1(x))): (..., d) -> (..., d)."""
    return linear(act(linear(x, params, "fc1")), params, "fc2")


def embedding(ids: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Rows of `table` (vocab, d) picked by integer `ids` (...): (..., d)."""
    return table[ids]


# ------------------------------------------------------------------------------------------- losses
def cross_entropy(logits: np.ndarray, targets: np.ndarray, ignore_index: int = -100) -> float:
    """Mean of -log softmax(logits)[target] over the targets != ignore_index; 0.0 if there are none.

    logits (n, classes), targets (n,) integers; like torch's CrossEntropyLoss(reduction="mean"), except that
    a batch whose every target is ignored has loss 0 (nothing to learn from), where torch returns NaN (0 / 0).
    """
    keep = targets != ignore_index
    if not np.any(keep):
        return 0.0
    logp = log_softmax(logits[keep], axis=-1)
    picked = np.take_along_axis(logp, targets[keep][:, None].astype(np.int64), axis=-1)
    return float(-picked.mean())


def mse(prediction: np.ndarray, target: np.ndarray) -> float:
    """Mean squared error over every entry (shapes broadcast as torch's MSELoss would)."""
    return float(np.mean((prediction - target) ** 2))


def bce_with_logits(logits: np.ndarray, targets: np.ndarray) -> float:
    """Mean binary cross-entropy of sigmoid(logits) against targets in [0, 1], computed stably."""
    # log(1 + exp(-|x|)) + max(x, 0) - x * t  ==  -[t log s(x) + (1 - t) log(1 - s(x))]
    loss = np.maximum(logits, 0.0) - logits * targets + np.log1p(np.exp(-np.abs(logits)))
    return float(np.mean(loss))
