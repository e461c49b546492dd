"""The encoder's working length, one rule for both packages: the input padded to a multiple of a window."""

from __future__ import annotations

import numpy as np

from .validation import check_window


def padded_length(seq_len: int, window: int) -> int:
    """`seq_len` rounded up to a multiple of `window` (an even int >= 2).

    Every encoder layer runs on this length for the largest per-layer window, and HF pads the key axis of
    `global_attentions` to it for `config.max_window`.

        padded_length(8, 4) == 8      padded_length(9, 4) == 12      padded_length(3, 16) == 16
    """
    if isinstance(seq_len, bool) or not isinstance(seq_len, (int, np.integer)):
        raise TypeError(f"seq_len must be an int >= 0, got {seq_len!r} ({type(seq_len).__name__})")
    if seq_len < 0:
        raise ValueError(f"seq_len must be >= 0, got {seq_len}")
    window = check_window(window)
    return -(-int(seq_len) // window) * window
