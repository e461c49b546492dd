"""HF transformers' LED as the behavioural oracle for the tests, built from the project's own weights.

A thin layer over `parity.hf.models` (which the CLI uses for `audit --hf`) that takes torch dtypes. transformers
4.57 is pinned in the `test` extra (it applies head masks and still has LEDForSequenceClassification). HF
takes every encoder softmax in float32, so float64 comparisons against it use a 1e-6 budget.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from led_ref.io.config import LEDConfig  # noqa: E402

# The project's one comparison (docs/contract.md), strict: shapes must match and NaN never agrees.
from parity.harness.tolerances import strict_scaled_error as scaled_error  # noqa: E402, F401
from parity.hf import models as _hf  # noqa: E402


def _dtype_name(dtype) -> str:
    return str(dtype).removeprefix("torch.")


def hf_config(config: LEDConfig):
    data = config.to_dict()
    data.pop("architectures", None)
    data.pop("model_type", None)
    return transformers.LEDConfig(**data)


def hf_model(config: LEDConfig, weights: dict[str, np.ndarray], architecture: str, dtype=None):
    """An HF `architecture` in eval mode carrying exactly `weights` (HF names, tied ones absent)."""
    return _hf.hf_model(config, weights, architecture, dtype=_dtype_name(dtype or torch.float64))


def hf_dtype_scope(dtype):
    """Run HF with torch's default dtype set to `dtype` (its decoder mask builder needs it) and no grad."""
    return _hf.hf_dtype_scope(_dtype_name(dtype))


def to_numpy(x):
    if x is None:
        return None
    if isinstance(x, (tuple, list)):
        return type(x)(to_numpy(v) for v in x)
    return x.detach().cpu().numpy()
