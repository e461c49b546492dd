"""A made-up example for the explorer: its masks and token kinds from (seq_len, global positions, pad).

The last `pad` positions are padding; the encoder pads further, to a multiple of the largest window, and
those positions are padding too (`padding_note` says how far). Every check raises naming the argument,
the value and the limit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import layout
from ..io.validation import check_window
from .ranges import position_ranges

# LED-base's encoder limit; long sequences are drawn at block level, so output stays bounded.
MAX_EXPLORER_SEQ_LEN = 16384

KIND_NAMES = {0: "pad", 1: "local", 2: "global"}


def example_masks(seq_len: int, global_positions: Sequence[int] = (), pad: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The (1, seq_len) int64 `attention_mask` and `global_attention_mask` of one example.

    The last `pad` positions are padding (mask 0); `global_positions` get global attention. A global flag
    on a padding position is kept, as a user may pass it to the model, which treats the token as padding
    (its kind is 0 whatever its global flag says); `padding_global_note` says so.
    """
    check_example(seq_len, global_positions, pad)
    attention_mask = np.ones((1, seq_len), dtype=np.int64)
    attention_mask[0, seq_len - pad:] = 0
    global_attention_mask = np.zeros((1, seq_len), dtype=np.int64)
    global_attention_mask[0, list(global_positions)] = 1
    return attention_mask, global_attention_mask


def check_example(seq_len: int, global_positions: Sequence[int], pad: int,
                  names: tuple[str, str, str] = ("seq_len", "global_positions", "pad")) -> None:
    """Raise ValueError naming the argument, the value and the limit when an example is not drawable.

    names: how to call (seq_len, a global position, pad) in messages (the CLI passes its option names).
    """
    seq_name, global_name, pad_name = names
    if isinstance(seq_len, bool) or not isinstance(seq_len, (int, np.integer)):
        raise TypeError(f"{seq_name} must be an int, got {seq_len!r}")
    if not 1 <= seq_len <= MAX_EXPLORER_SEQ_LEN:
        raise ValueError(f"{seq_name} must be in 1..{MAX_EXPLORER_SEQ_LEN}, got {seq_len}")
    if not 0 <= pad <= seq_len:
        raise ValueError(f"{pad_name} must be in 0..{seq_len} ({seq_name}), got {pad}")
    for g in global_positions:
        if not 0 <= g < seq_len:
            raise ValueError(f"{global_name} {g} is out of range 0..{seq_len - 1} ({seq_name}={seq_len})")
    if len(set(global_positions)) != len(global_positions):
        raise ValueError(f"{global_name} must be distinct positions, got {list(global_positions)}")


def padding_global_note(seq_len: int, global_positions: Sequence[int], pad: int, pad_name: str = "pad") -> str:
    """One line saying which global flags sit on padding and why they are drawn as padding ('' if none)."""
    on_pad = sorted(g for g in global_positions if g >= seq_len - pad)
    if not on_pad:
        return ""
    which = f"positions {position_ranges(on_pad)} are" if len(on_pad) > 1 else f"position {on_pad[0]} is"
    return (f"note: global {which} padding ({pad_name}={pad}): drawn as padding, because the model's token kind "
            "is attention_mask * (global_attention_mask + 1) = 0 there (HF does the same).\n")


def example_kinds(seq_len: int, windows: Sequence[int], global_positions: Sequence[int] = (),
                  pad: int = 0) -> np.ndarray:
    """Token kinds (padded_seq,) 0 pad / 1 local / 2 global, right-padded as the encoder pads the input.

    The encoder pads to a multiple of the largest window; the extra positions are padding.
    """
    if len(windows) == 0:
        raise ValueError("windows must hold one even window per encoder layer, got none")
    for layer, w in enumerate(windows):
        check_window(w, f"window of layer {layer}")
    attention_mask, global_attention_mask = example_masks(seq_len, global_positions, pad)
    kinds = layout.token_kinds(attention_mask, global_attention_mask)[0]
    padded = layout.padded_length(seq_len, max(windows))
    out = np.zeros(padded, dtype=np.int64)
    out[:seq_len] = kinds
    return out


def padding_note(seq_len: int, windows: Sequence[int]) -> str:
    """Why and how far the encoder pads the input (to a multiple of the largest window)."""
    padded = layout.padded_length(seq_len, max(windows))
    largest = "the window" if len(set(windows)) == 1 else "the largest window"
    if padded == seq_len:
        return f"The encoder runs on {seq_len} positions, already a multiple of {largest} {max(windows)}.\n"
    added = list(range(seq_len, padded))
    which = f"positions {position_ranges(added)} are" if len(added) > 1 else f"position {added[0]} is"
    return (f"The encoder pads the {seq_len} tokens to {padded}, a multiple of {largest} {max(windows)}: "
            f"{which} padding it adds (not drawn; outputs are cut back to {seq_len}).\n")
