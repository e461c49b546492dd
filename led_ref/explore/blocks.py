"""The block overview for long inputs: cell counts per square block of (queries, keys), one character each.

Like FlexAttention's block masks: a block is full, holds part of the window band, only global cells, or
nothing. Counted from prefix sums of the token kinds, so LED-base's 16,384 tokens never build the
268-million-cell dense mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import layout
from .grid import TOKEN_GRID_MAX

# A forced token grid (`block=1`) is allowed up to this length (2 characters a key).
MAX_TOKEN_GRID = 256
# The block grid has at most this many blocks a side.
BLOCK_GRID_CELLS = 64


@dataclass(frozen=True)
class BlockStats:
    """Cell counts of the (seq, seq) pattern summed over square blocks (like FlexAttention's block masks).

    Every array is (blocks, blocks), block (r, c) covering queries r*B..r*B+B-1 and keys c*B..c*B+B-1
    (the last block may be short). Computed per row from prefix sums, so 16,384 tokens cost O(seq * blocks),
    never the O(seq^2) dense mask.
    """

    block: int
    cells: np.ndarray  # cells in the block (rows x keys)
    window: np.ndarray  # local row, non-global non-padding key within w/2 (self included): 'W' and '\\'
    global_key: np.ndarray  # local row, global key: 'G'
    global_row: np.ndarray  # global row, non-padding key: 'g'
    pad_rows: np.ndarray  # cells on padding rows

    @property
    def attended(self) -> np.ndarray:
        return self.window + self.global_key + self.global_row


def block_stats(kinds: np.ndarray, window: int, block: int, seq_len: int | None = None) -> BlockStats:
    """`BlockStats` of the first `seq_len` queries and keys of token kinds (padded_seq,) under window `window`."""
    kinds = np.asarray(kinds)
    seq_len = kinds.shape[0] if seq_len is None else seq_len
    kinds = kinds[:seq_len]
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    half = window // 2
    local_prefix = np.concatenate([[0], np.cumsum(kinds == layout.LOCAL)])
    global_prefix = np.concatenate([[0], np.cumsum(kinds == layout.GLOBAL)])
    edges = np.minimum(np.arange(0, seq_len + block, block), seq_len)
    edges = edges[: int(np.searchsorted(edges, seq_len)) + 1]
    starts, ends = edges[:-1][None, :], edges[1:][None, :]
    rows = np.arange(seq_len)[:, None]
    lo = np.maximum(starts, rows - half)
    hi = np.maximum(np.minimum(ends, rows + half + 1), lo)
    is_local = (kinds == layout.LOCAL)[:, None]
    is_global = (kinds == layout.GLOBAL)[:, None]
    per_row_window = np.where(is_local, local_prefix[hi] - local_prefix[lo], 0)
    globals_in = global_prefix[ends] - global_prefix[starts]
    per_row_gkey = np.where(is_local, globals_in, 0)
    per_row_grow = np.where(is_global, globals_in + local_prefix[ends] - local_prefix[starts], 0)
    per_row_pad = np.where((kinds == layout.PADDING)[:, None], ends - starts, 0)

    def by_block(a):
        return np.add.reduceat(a, edges[:-1], axis=0)

    widths = np.diff(edges)
    return BlockStats(block, widths[:, None] * widths[None, :], by_block(per_row_window), by_block(per_row_gkey),
                      by_block(per_row_grow), by_block(per_row_pad))


BLOCK_CHARS = {
    "pad": " ", "full": "#", "window": "W", "global_row": "g", "global_key": "G", "none": ".",
}
BLOCK_MEANINGS = {
    "full": "every cell of the block attended",
    "window": "some cells attended, window keys among them (the band)",
    "global_row": "only global-row cells (a global query attending)",
    "global_key": "only global-key cells (local queries seeing a global key)",
    "none": "nothing attended (outside the window, or padding keys)",
    "pad": "padding rows only (blank)",
}


def block_kinds(stats: BlockStats) -> np.ndarray:
    """The `BLOCK_CHARS` key of every block, as an object array (blocks, blocks)."""
    out = np.full(stats.cells.shape, "none", dtype=object)
    attended = stats.attended
    out[stats.global_key > 0] = "global_key"
    out[stats.global_row > 0] = "global_row"
    out[stats.window > 0] = "window"
    out[(attended == stats.cells) & (attended > 0)] = "full"
    out[stats.pad_rows == stats.cells] = "pad"
    return out


def auto_block(seq_len: int) -> int:
    """1 (a token grid) up to TOKEN_GRID_MAX tokens, else the smallest power of 2 giving <= BLOCK_GRID_CELLS blocks."""
    if seq_len <= TOKEN_GRID_MAX:
        return 1
    block = 2
    while -(-seq_len // block) > BLOCK_GRID_CELLS:
        block *= 2
    return block


def block_grid_text(stats: BlockStats, kinds: np.ndarray, seq_len: int) -> str:
    """One character per block: rows = query blocks (with their range and kinds), columns = key blocks."""
    chars = block_kinds(stats)
    block, blocks = stats.block, chars.shape[0]
    label = [f"{r * block}..{min(seq_len, (r + 1) * block) - 1}" for r in range(blocks)]
    width = max(len(t) for t in label)
    lines = [f"{'':>{width}}   key blocks of {block}: column c covers keys c*{block}..c*{block}+{block - 1}"]
    for r in range(blocks):
        rows = np.asarray(kinds)[r * block:min(seq_len, (r + 1) * block)]
        tag = "g" if (rows == layout.GLOBAL).any() else " "
        body = "".join(BLOCK_CHARS[c] for c in chars[r])
        lines.append(f"{label[r]:>{width}} {tag} {body}".rstrip())
    lines.append(f"{'':>{width}}   (a 'g' before a row: the block holds a global query)")
    return "\n".join(lines) + "\n"


def block_legend_text() -> str:
    lines = ["legend (blocks):"] + [f"  '{BLOCK_CHARS[k]}'  {m}" for k, m in BLOCK_MEANINGS.items()]
    return "\n".join(lines) + "\n"


def check_block(block: int | None, seq_len: int, name: str = "block") -> int:
    """The block size of the grid: `auto_block` when None; a token grid (1) only up to MAX_TOKEN_GRID tokens."""
    if block is None:
        return auto_block(seq_len)
    if block < 1:
        raise ValueError(f"{name} must be >= 1, got {block}")
    if block == 1 and seq_len > MAX_TOKEN_GRID:
        raise ValueError(f"{name} 1 (one column per key) needs seq_len <= {MAX_TOKEN_GRID}, got {seq_len}")
    if -(-seq_len // block) > 4 * BLOCK_GRID_CELLS:
        smallest = -(-seq_len // (4 * BLOCK_GRID_CELLS))
        raise ValueError(f"{name} {block} gives {-(-seq_len // block)} blocks a side for {seq_len} tokens; "
                         f"at most {4 * BLOCK_GRID_CELLS} are drawn (use a block >= {smallest})")
    return block
