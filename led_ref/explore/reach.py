"""`--reach`: how far one token's information has spread after each layer (windows, then the global hop)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import layout
from .examples import KIND_NAMES, example_kinds
from .ranges import short_ranges


def reach_per_layer(kinds: np.ndarray, windows: Sequence[int], token: int, seq_len: int | None = None
                    ) -> list[np.ndarray]:
    """Where token `token`'s information has reached after each layer: bool (seq_len,) per layer.

    Position q is reached after layer l when q's output of layer l depends on token's input: it was reached
    before (the residual keeps it), or q attends (`layout.dense_mask` of layer l) a reached non-padding key.
    A local query reads keys within w_l/2 and every global key; a global query reads every non-padding key,
    so once a global token is reached the next layer reaches everything. O(seq) per layer (prefix sums).
    """
    kinds = np.asarray(kinds)
    seq_len = kinds.shape[0] if seq_len is None else seq_len
    kinds = kinds[:seq_len]
    reached = np.zeros(seq_len, dtype=bool)
    reached[token] = True
    out = []
    for window in windows:
        source = reached & (kinds != layout.PADDING)
        half = window // 2
        prefix = np.concatenate([[0], np.cumsum(source)])
        q = np.arange(seq_len)
        near = prefix[np.minimum(q + half + 1, seq_len)] - prefix[np.maximum(q - half, 0)] > 0
        via_global = bool((source & (kinds == layout.GLOBAL)).any())
        reached = reached | ((kinds == layout.LOCAL) & (near | via_global)) | ((kinds == layout.GLOBAL) & source.any())
        out.append(reached.copy())
    return out


def reach_text(seq_len: int, windows: Sequence[int], global_positions: Sequence[int], pad: int, token: int) -> str:
    """How far token `token`'s information reaches after each layer (per-layer windows, the global hop)."""
    if not 0 <= token < seq_len:
        raise ValueError(f"reach token must be in 0..{seq_len - 1} (seq_len={seq_len}), got {token}")
    kinds = example_kinds(seq_len, windows, global_positions, pad)
    usable = int((kinds[:seq_len] != layout.PADDING).sum())
    lines = [f"How far token {token} ({KIND_NAMES[int(kinds[token])]})'s information reaches: the positions whose "
             "output depends on it, after each layer"]
    if kinds[token] == layout.PADDING:
        lines.append("  it is padding: no query attends it, so it reaches nobody but itself.")
    local_span = 0
    for layer, (window, reached) in enumerate(zip(windows, reach_per_layer(kinds, windows, token, seq_len),
                                                  strict=True)):
        local_span += window // 2
        positions = np.flatnonzero(reached).tolist()
        hop = ""
        if kinds[token] != layout.PADDING:
            lo, hi = max(0, token - local_span), min(seq_len - 1, token + local_span)
            hop = f"; windows alone: {lo}..{hi}"
        lines.append(f"  after layer {layer} (window {window}): {short_ranges(positions)}  "
                     f"[{len(positions)} of {usable} tokens{hop}]")
    return "\n".join(lines) + "\n"
