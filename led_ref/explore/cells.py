r"""What each (query i, key j) cell of the attention pattern is, and the 0/1 mask printed from it.

Which cells are attended comes from `led_ref.layout.dense_mask`; a cell code only says why. 6 tokens,
window 2, position 0 global, the last position padding, as `grid.grid_text` prints the codes:

      key j: 0 1 2 3 4 5
    0 global g g g g g p
    1 local  G \ W . . p
    2 local  G W \ W . p
    3 local  G . W \ W p
    4 local  G . . W \ p
    5 pad
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from .. import layout

# `--format mask` prints N lines of N characters: beyond this it is megabytes of 0/1.
MAX_MASK_SEQ_LEN = 4096


class Cell(IntEnum):
    """What one (query i, key j) cell of the attention pattern is."""

    PAD_ROW = 0  # query i is padding: no probabilities at all
    PAD_KEY = 1  # key j is padding: never attended
    OUTSIDE = 2  # local row, key beyond the one-sided reach w/2
    WINDOW = 3  # local row, key in the window (query/key/value projections)
    SELF = 4  # local row, the key is the query itself
    GLOBAL_KEY = 5  # local row, key j is global: attended wherever it is, counted once
    GLOBAL_ROW = 6  # global row: attends every non-padding key (the *_global projections)


CELL_CHARS = {
    Cell.PAD_ROW: " ",
    Cell.PAD_KEY: "p",
    Cell.OUTSIDE: ".",
    Cell.WINDOW: "W",
    Cell.SELF: "\\",
    Cell.GLOBAL_KEY: "G",
    Cell.GLOBAL_ROW: "g",
}

CELL_MEANINGS = {
    Cell.WINDOW: "window key (|i-j| <= w/2), local projections",
    Cell.SELF: "self (i == j) on a local row",
    Cell.GLOBAL_KEY: "global key seen by a local row (counted once, from the first x compact columns)",
    Cell.GLOBAL_ROW: "global row attending (every non-padding key, *_global projections)",
    Cell.OUTSIDE: "not attended: outside the window",
    Cell.PAD_KEY: "not attended: padding key",
    Cell.PAD_ROW: "padding row (blank): no probabilities at all",
}

ATTENDED = (Cell.WINDOW, Cell.SELF, Cell.GLOBAL_KEY, Cell.GLOBAL_ROW)


def pattern_cells(kinds: np.ndarray, window: int, seq_len: int | None = None) -> np.ndarray:
    """Cell codes (seq_len, seq_len) of one layer (window `window`) for token kinds (padded_seq,).

    Which cells are attended comes from `layout.dense_mask`; this only says why each cell is what it is.
    """
    kinds = np.asarray(kinds)
    seq_len = kinds.shape[0] if seq_len is None else seq_len
    attended = layout.dense_mask(kinds[None, :], window)[0][:seq_len, :seq_len]
    kinds = kinds[:seq_len]
    row_kind = kinds[:, None]
    key_kind = kinds[None, :]
    eye = np.eye(seq_len, dtype=bool)
    cells = np.where(key_kind == 0, Cell.PAD_KEY, Cell.OUTSIDE)
    cells = np.where(attended, Cell.WINDOW, cells)
    cells = np.where(attended & eye, Cell.SELF, cells)
    cells = np.where(attended & (key_kind == 2), Cell.GLOBAL_KEY, cells)
    cells = np.where(attended & (row_kind == 2), Cell.GLOBAL_ROW, cells)
    cells = np.where(row_kind == 0, Cell.PAD_ROW, cells)
    return cells.astype(np.int64)


def attended_mask(cells: np.ndarray) -> np.ndarray:
    """Bool (seq, seq): query i attends key j."""
    return np.isin(cells, [int(c) for c in ATTENDED])


def mask_text(cells: np.ndarray) -> str:
    """Exactly seq lines of seq characters `0`/`1`, 1 where query i attends key j."""
    rows = attended_mask(cells).astype(np.int8)
    return "".join("".join("1" if v else "0" for v in row) + "\n" for row in rows)
