"""Keys for led_torch's inference caches: the oneDNN-packed weights (linear.py), the decoder's stacked q/k/v
weight (decoder.py) and the encoder layers' shared attention masks (backends/banded_flash_cpu.MaskCache). A cached
value stays valid while its source tensor keeps its storage and its version counter (in-place writes bump it).
"""

from __future__ import annotations

import torch


def tensor_key(t: torch.Tensor) -> tuple | None:
    """(data_ptr, version, shape, dtype, device) of `t`, or None for an inference tensor (one made under
    `torch.inference_mode`): it has no version counter, so an in-place change could not be seen, and the
    caller computes without its cache."""
    if t.is_inference():
        return None
    return (t.data_ptr(), t._version, tuple(t.shape), t.dtype, t.device)
