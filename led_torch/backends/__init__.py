"""Registry of encoder attention backends; every one meets the kernel contract (docs/contract.md).

`get_backend(name)` returns the function. "banded" is always there; "flex" and "triton" live in their own
modules and are imported only when asked for, so a machine without them (or without a GPU) still works.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import torch

from .banded import banded_longformer_attention

BACKENDS = ("banded", "flex", "triton")
_LAZY = {
    "flex": ("led_torch.backends.flex", "flex_longformer_attention"),
    "triton": ("led_torch.backends.triton_banded", "triton_longformer_attention"),
}


class BackendUnavailable(RuntimeError):
    """An attention backend cannot be loaded here; the message says why."""


def get_backend(name: str) -> Callable:
    """The attention function registered as `name` ("banded", "flex" or "triton")."""
    if name == "banded":
        return banded_longformer_attention
    if name not in _LAZY:
        raise ValueError(f"attention backend must be one of {', '.join(BACKENDS)}; got {name!r}")
    module_name, attr = _LAZY[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        reason = f"cannot import {module_name} ({err})"
        raise BackendUnavailable(f"attention backend {name!r} is unavailable: {reason}") from err
    if not hasattr(module, attr):
        raise BackendUnavailable(f"attention backend {name!r} is unavailable: {module_name} has no {attr}")
    return getattr(module, attr)


def _importable(name: str) -> bool:
    try:
        get_backend(name)
    except BackendUnavailable:
        return False
    return True


def available_backends(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                       need_probs: bool = False, need_grad: bool = False) -> list[str]:
    """Backends usable for (device, dtype), best first. Only "banded" returns attention probabilities;
    "triton" is forward-only (skipped when gradients are needed) and has no float64.

    Triton and flex are for CUDA; on CPU the banded backend is the measured fastest (docs/torch.md).
    """
    device = torch.device(device)
    if need_probs or device.type != "cuda":
        return ["banded"]
    names = []
    if not need_grad and dtype in (torch.float16, torch.bfloat16, torch.float32) and _importable("triton"):
        names.append("triton")
    if _importable("flex"):
        names.append("flex")
    return names + ["banded"]


def resolve_backend(name: str | None, device, dtype, need_probs: bool, need_grad: bool = False) -> str:
    """The backend name a layer uses for `attn_implementation=name` ("auto"/None picks the best)."""
    if name in (None, "auto"):
        return available_backends(device, dtype, need_probs, need_grad)[0]
    if name not in BACKENDS:
        raise ValueError(f"attn_implementation must be one of auto, {', '.join(BACKENDS)}; got {name!r}")
    if need_probs and name != "banded":
        return "banded"  # only the banded backend can hand back probabilities
    return name
