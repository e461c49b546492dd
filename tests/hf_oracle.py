"""HF transformers' LED as the behavioural oracle: build it from the project's own random weights.

transformers 4.57 is pinned in the `test` extra (it applies head masks and still has
LEDForSequenceClassification). Its decoder builds the causal mask with `torch.full(..., finfo(dtype).min)`
without a dtype, which overflows the float32 default for float64 models; running the oracle with the
default dtype set to the model's dtype (`hf_dtype_scope`) avoids that without touching its numerics.
HF takes every encoder softmax in float32, so float64 comparisons against it use a 1e-6 budget.
"""

from __future__ import annotations

import contextlib
import logging

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
logging.getLogger("transformers").setLevel(logging.ERROR)

from led_ref.config import LEDConfig  # noqa: E402
from led_ref.names import TIED_NAMES, TIED_TOP_LEVEL, base_prefix  # noqa: E402


def hf_config(config: LEDConfig):
    data = config.to_dict()
    data.pop("architectures", None)
    data.pop("model_type", None)
    return transformers.LEDConfig(**data)


def hf_model(config: LEDConfig, weights: dict[str, np.ndarray], architecture: str, dtype=None):
    """An HF `architecture` in eval mode carrying exactly `weights` (HF names, tied ones absent)."""
    dtype = dtype or torch.float64
    cls = getattr(transformers, architecture)
    with hf_dtype_scope(dtype):
        model = cls(hf_config(config)).to(dtype).eval()
    state = {k: torch.from_numpy(np.ascontiguousarray(v)).to(dtype) for k, v in weights.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    prefix = base_prefix(architecture)
    allowed_missing = {prefix + n for n in TIED_NAMES} | set(TIED_TOP_LEVEL)
    assert not unexpected, f"oracle got unexpected tensors {unexpected}"
    assert set(missing) <= allowed_missing, f"oracle is missing {set(missing) - allowed_missing}"
    model.tie_weights()
    return model


@contextlib.contextmanager
def hf_dtype_scope(dtype):
    """Run HF with torch's default dtype set to `dtype` (see module docstring)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype if dtype in (torch.float32, torch.float64) else torch.float32)
    try:
        with torch.no_grad():
            yield
    finally:
        torch.set_default_dtype(previous)


def to_numpy(x):
    if x is None:
        return None
    if isinstance(x, (tuple, list)):
        return type(x)(to_numpy(v) for v in x)
    return x.detach().cpu().numpy()


def scaled_error(a, b) -> float:
    """max|a-b| / max(1, max|b|), the project's comparison (design.md)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"shape {a.shape} != {b.shape}"
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))
