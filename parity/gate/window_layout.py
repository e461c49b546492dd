"""Is a kernel's window the contract's band, or another library's convention (led_ref.explore.conventions)?

On a forward mismatch the gate reads off which keys each query of one full row sees: zero queries make every
visible key equally likely (p = 1 / count), and one-hot values (value[..., start + c, c] = 1) turn the
context into the probabilities themselves, ceil(seq / head_dim) calls per matrix. The band of visible keys is
then named by `led_ref.explore.conventions.identify`: None for the contract's band, else the mistake that
gives it (an edge-shifted window as neighbourhood attention has, a one-sided window read as two-sided, whole
buckets, ...).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from led_ref.explore.conventions import identify

MAX_PROBE_SEQ = 512  # the probe's (seq, seq) matrix and seq / head_dim kernel calls stay cheap up to here


def visible_keys(kernel: Callable, window: int, seq: int, head_dim: int, dtype: str = "float64",
                 device: str = "cpu") -> np.ndarray:
    """(seq, seq) bool: the keys the kernel lets each local query of one full row (no globals) see."""
    import torch

    torch_dtype = getattr(torch, dtype)
    shape = (1, 1, seq, head_dim)
    zeros = torch.zeros(shape, dtype=torch_dtype, device=device)
    kinds = torch.ones((1, seq), dtype=torch.int64, device=device)
    probs = np.zeros((seq, seq))
    for start in range(0, seq, head_dim):
        value = np.zeros(shape)
        cols = np.arange(start, min(seq, start + head_dim))
        value[0, 0, cols, cols - start] = 1.0
        value = torch.as_tensor(value, dtype=torch_dtype, device=device)
        with torch.no_grad():
            out = kernel(zeros, zeros.clone(), value, zeros.clone(), zeros.clone(), value.clone(), kinds, window)
        probs[:, cols] = out[0, 0, :, : len(cols)].to("cpu", torch.float64).numpy()
    return probs > 0.5 / seq


PROBE_BLOCKS = 4  # windows in the probe's row: long enough that edge-shifted, bucketed and wider bands differ


def wrong_layout(kernel: Callable, case, dtype: str, device: str, max_seq: int | None = None) -> str | None:
    """Which wrong window layout the kernel has at the case's window and head_dim (None: the contract's band, or
    a row too long to probe). The probe's row is PROBE_BLOCKS windows long where the support allows (`max_seq`),
    so that a short counterexample does not leave two layouts looking alike."""
    _, _, seq, head_dim = case.query.shape
    longer = case.window * max(seq // case.window, PROBE_BLOCKS)
    if longer <= MAX_PROBE_SEQ and (max_seq is None or longer <= max_seq):
        seq = longer
    if seq > MAX_PROBE_SEQ:
        return None
    return identify(visible_keys(kernel, case.window, seq, head_dim, dtype, device), case.window)
