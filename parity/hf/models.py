"""HF transformers' LED as an optional oracle side (`hf:float32`) for `parity audit --hf` and `check`.

Needs the `test` extra (transformers 4.57, which applies head masks). HF's decoder builds its causal mask
in torch's default dtype, so the model runs with the default dtype set to its own (`hf_dtype_scope`).
"""

from __future__ import annotations

import contextlib
import logging
import warnings

import numpy as np

from led_ref.io.config import LEDConfig
from led_ref.io.names import TIED_NAMES, TIED_TOP_LEVEL, base_prefix


def hf_available() -> bool:
    try:
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


def hf_model(config: LEDConfig, weights: dict[str, np.ndarray], architecture: str, dtype: str = "float32"):
    """An HF `architecture` in eval mode carrying exactly `weights`; ValueError if a tensor does not fit."""
    import torch
    import transformers

    logging.getLogger("transformers").setLevel(logging.ERROR)
    torch_dtype = getattr(torch, dtype)
    data = config.to_dict()
    data.pop("architectures", None)
    data.pop("model_type", None)
    with hf_dtype_scope(dtype), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # 4.57 announces LEDForSequenceClassification's removal
        model = getattr(transformers, architecture)(transformers.LEDConfig(**data)).to(torch_dtype).eval()
    state = {k: torch.from_numpy(np.ascontiguousarray(v)).to(torch_dtype) for k, v in weights.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    allowed = {base_prefix(architecture) + n for n in TIED_NAMES} | set(TIED_TOP_LEVEL)
    if unexpected or set(missing) - allowed:
        raise ValueError(f"weights do not fit HF {architecture}: unexpected {unexpected}, "
                         f"missing {sorted(set(missing) - allowed)}")
    model.tie_weights()
    return model


@contextlib.contextmanager
def hf_dtype_scope(dtype: str):
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64 if dtype == "float64" else torch.float32)
    try:
        with torch.no_grad():
            yield
    finally:
        torch.set_default_dtype(previous)


def defined_loss(loss, inputs: dict):
    """HF's mean loss over labels that are all -100 is NaN (0 / 0); led_ref and led_torch define it as 0
    (docs/reliability.md). Comparisons with HF map that one NaN to 0; every other value is returned as is."""
    labels = inputs.get("labels")
    if loss is None or labels is None or not np.all(np.asarray(labels) == -100):
        return loss
    if hasattr(loss, "isnan"):
        return loss.nan_to_num(0.0) if bool(loss.isnan()) else loss
    return 0.0 if np.isnan(loss) else loss
