"""Keys for led_torch's inference caches: the oneDNN-packed weights (linear.py), the decoder's stacked q/k/v
weight (decoder.py) and the encoder layers' shared attention masks (backends/banded_flash_cpu.MaskCache). A cached
value stays valid while its source tensor keeps its storage and its version counter (in-place writes bump it)
and no optimizer has stepped since: fused optimizers (torch's default AdamW on CPU) write parameters without
bumping their version counters, so every `torch.optim` step counts as a possible write to every weight.
"""

from __future__ import annotations

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

_optimizer_steps = 0  # process-wide: any optimizer step may have written any parameter


def _count_optimizer_step(optimizer, args, kwargs) -> None:
    global _optimizer_steps
    _optimizer_steps += 1


register_optimizer_step_post_hook(_count_optimizer_step)


def tensor_key(t: torch.Tensor) -> tuple | None:
    """(data_ptr, version, optimizer steps so far, shape, dtype, device) of `t`, or None for an inference tensor
    (one made under `torch.inference_mode`): it has no version counter, so an in-place change could not be seen,
    and the caller computes without its cache."""
    if t.is_inference():
        return None
    return (t.data_ptr(), t._version, _optimizer_steps, tuple(t.shape), t.dtype, t.device)
