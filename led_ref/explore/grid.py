"""The terminal grid for short inputs: one row per query, one column per key, a character per cell.

The kinds line above it names each token (0 pad, 1 local, 2 global); beyond TOKEN_GRID_MAX tokens the
grid is drawn in blocks instead (`blocks`) and the kinds line lists runs of one kind.
"""

from __future__ import annotations

import numpy as np

from .cells import CELL_CHARS, CELL_MEANINGS, Cell
from .examples import KIND_NAMES

# The character grid shows one column per key up to this length, blocks of keys beyond it.
TOKEN_GRID_MAX = 64


def grid_text(cells: np.ndarray, kinds: np.ndarray) -> str:
    """The pattern (seq, seq) as a character grid: one row per query i (with its kind), one column per key j."""
    seq = cells.shape[0]
    digits = len(str(seq - 1))
    label_width = digits + 1 + 6
    lines = []
    for place in reversed(range(digits)):  # column indices written vertically, most significant digit first
        labels = " ".join(str(j).rjust(digits)[digits - 1 - place] for j in range(seq))
        title = "key j:" if place == 0 else ""
        lines.append(f"{title:>{label_width}} {labels}".rstrip())
    for i in range(seq):
        body = " ".join(CELL_CHARS[Cell(int(c))] for c in cells[i])
        lines.append(f"{i:>{digits}d} {KIND_NAMES[int(kinds[i])]:<6s} {body}".rstrip())
    return "\n".join(lines) + "\n"


def kinds_text(kinds: np.ndarray, seq_len: int) -> str:
    """The token kinds line: every kind up to TOKEN_GRID_MAX tokens, runs of one kind beyond."""
    kinds = np.asarray(kinds)[:seq_len]
    if seq_len <= TOKEN_GRID_MAX:
        return "token kinds: " + " ".join(str(int(k)) for k in kinds) + "   (0 pad, 1 local, 2 global)\n"
    runs, start = [], 0
    for p in range(1, seq_len + 1):
        if p == seq_len or kinds[p] != kinds[start]:
            runs.append(f"{start}..{p - 1}" if p - 1 > start else f"{start}")
            runs[-1] += f" {KIND_NAMES[int(kinds[start])]}"
            start = p
    shown = runs if len(runs) <= 12 else runs[:12] + [f"... ({len(runs) - 12} more runs)"]
    return "token kinds: " + ", ".join(shown) + "\n"


def legend_text() -> str:
    lines = ["legend:"] + [f"  '{CELL_CHARS[c]}'  {CELL_MEANINGS[c]}" for c in CELL_MEANINGS]
    return "\n".join(lines) + "\n"
