r"""The Longformer attention pattern as something to look at: cells, character grids, the compact HF layout.

Everything here is built from `led_ref.layout` (token kinds, the dense mask, the window index map, the
global slots); this module only names each cell and renders it. 8 tokens, window 2, position 0 global,
the last 2 positions padding (`python -m led_ref layout --seq-len 8 --window 2 --global 0 --pad 2`):

      key j: 0 1 2 3 4 5 6 7
    0 global g g g g g g p p
    1 local  G \ W . . . p p
    2 local  G W \ W . . p p
    3 local  G . W \ W . p p
    4 local  G . . W \ W p p
    5 local  G . . . W \ p p
    6 pad
    7 pad

`W` window key, `\` self, `G` a global key seen by a local row, `g` a global row (global projections,
every non-padding key), `.` outside the window, `p` a padding key, blank a padding row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from .. import layout
from ..io.validation import check_window

# LED-base's encoder limit; long sequences are drawn at block level, so output stays bounded.
MAX_EXPLORER_SEQ_LEN = 16384
# `--format mask` prints N lines of N characters: beyond this it is megabytes of 0/1.
MAX_MASK_SEQ_LEN = 4096
# The character grid shows one column per key up to this length, blocks of keys beyond it.
TOKEN_GRID_MAX = 64
# A forced token grid (`block=1`) is allowed up to this length (2 characters a key).
MAX_TOKEN_GRID = 256
# The block grid has at most this many blocks a side.
BLOCK_GRID_CELLS = 64
# At most this many rows get a compact-layout table (each is a few lines).
MAX_ROWS_SHOWN = 32
# --from-model holds full (heads, seq, seq) dense views up to this many tokens; beyond, it reads the rows it
# describes straight from the compact arrays and draws heat maps of blocks (`block_heat`), never O(seq^2).
MAX_MODEL_TOKENS = 1024
# The exact round trip to_compact(to_dense(x)) == x builds one head's (seq, seq) at a time: up to this length.
MAX_ROUNDTRIP_TOKENS = 4096


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

KIND_NAMES = {0: "pad", 1: "local", 2: "global"}

ATTENDED = (Cell.WINDOW, Cell.SELF, Cell.GLOBAL_KEY, Cell.GLOBAL_ROW)


# ---------------------------------------------------------------------------------------- inputs
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
    which = f"positions {_ranges(on_pad)} are" if len(on_pad) > 1 else f"position {on_pad[0]} is"
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


# ---------------------------------------------------------------------------------------- cells
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


# ---------------------------------------------------------------------------------------- compact layout
@dataclass(frozen=True)
class CompactColumn:
    """One column c of `attentions[b, h, row, :]`: which absolute key it holds and what is stored there."""

    column: int
    key: int  # absolute key position (may be < 0 or >= padded length for window slots at the edges)
    role: str  # "global", "self", "window", "global-in-window", "padding", "outside"
    note: str

    @property
    def holds_probability(self) -> bool:
        return self.role in ("global", "self", "window")


def global_positions_of(kinds: np.ndarray) -> np.ndarray:
    """Positions (x,) of the global tokens in position order, via `layout.global_slots`."""
    positions, valid = layout.global_slots(np.asarray(kinds)[None, :])
    return np.asarray(positions)[0][np.asarray(valid)[0].astype(bool)]


def row_columns(kinds: np.ndarray, window: int, row: int, x: int | None = None) -> list[CompactColumn]:
    """The x + w + 1 columns of `attentions[b, h, row, :]` for a local `row`, in order.

    kinds: (padded_seq,) token kinds. The first x columns are the global keys in position order; then the
    window, slot k holding key row - w/2 + k (self at column x + w/2). Window cells that hold a global key
    or a padding key, or fall off either end of the padded sequence, are 0.
    x: the batch's x (the most global tokens of any row), default this row's own count; the slots past this
    row's count are unused (role "unused", key -1, always 0).
    """
    kinds = np.asarray(kinds)
    padded = kinds.shape[0]
    globals_ = global_positions_of(kinds)
    x = len(globals_) if x is None else x
    if x < len(globals_):
        raise ValueError(f"x must be >= this row's {len(globals_)} global tokens, got {x}")
    columns = [
        CompactColumn(s, int(p), "global", f"global key {int(p)} (slot {s}), its only place in this row")
        for s, p in enumerate(globals_)
    ] + [CompactColumn(s, layout.UNUSED, "unused", f"global slot {s}: unused in this batch row, always 0")
         for s in range(len(globals_), x)]
    half = window // 2
    keys = row - half + np.arange(window + 1)  # `window_keys(padded, window)[row]`, without the (seq, w + 1) map
    for k, key in enumerate(keys):
        offset = k - half
        slot = f"window slot {offset:+d}"
        if not 0 <= key < padded:
            where = "before position 0" if key < 0 else f"past the padded end {padded - 1}"
            role, note = "outside", f"{slot}: {where}, always 0"
        elif kinds[key] == 0:
            role, note = "padding", f"{slot}: key {key} is padding, 0"
        elif kinds[key] == 2:
            s = int(np.flatnonzero(globals_ == key)[0])
            role, note = "global-in-window", f"{slot}: key {key} is global, 0 here (its weight is in column {s})"
        elif key == row:
            role, note = "self", f"{slot}: self (column x + w/2 = {x + half})"
        else:
            role, note = "window", f"{slot}: window key"
        columns.append(CompactColumn(x + k, int(key), role, note))
    return columns


def window_keys(padded_seq: int, window: int) -> np.ndarray:
    """Absolute key (padded_seq, w+1) of every window slot: `layout.window_key_positions`, except that slots
    off either end keep their would-be position i - w/2 + slot (< 0 or >= padded_seq) instead of the
    UNUSED marker, so they can be labelled."""
    keys = layout.window_key_positions(padded_seq, window)
    would_be = np.arange(padded_seq)[:, None] - window // 2 + np.arange(window + 1)[None, :]
    return np.where(keys == layout.UNUSED, would_be, keys)


def compact_text(kinds: np.ndarray, window: int, row: int, seq_len: int, x: int | None = None) -> str:
    """Which column of `attentions[..., row, :]` (or `global_attentions`) holds which absolute key.

    x: the batch's number of global slots (default: this row's own count of global tokens).
    """
    kinds = np.asarray(kinds)
    padded = kinds.shape[0]
    globals_ = global_positions_of(kinds)
    x = len(globals_) if x is None else x
    width = x + window + 1
    kind = int(kinds[row])
    lines = []
    if kind == 0:
        lines.append(f"Row {row} is padding: attentions[b, h, {row}, :] (width {width}) is all 0, and it is "
                     "no column of global_attentions.")
        return "\n".join(lines) + "\n"
    if kind == 2:
        s = int(np.flatnonzero(globals_ == row)[0])
        pads = [j for j in range(seq_len) if kinds[j] == 0]
        lines.append(f"Row {row} is global (slot {s} of x = {x}), window {window}:")
        lines.append(f"  attentions[b, h, {row}, :] (width {width}) is all 0: a global row does not use the window.")
        lines.append(f"  global_attentions[b, h, j, {s}] for j = 0..{padded - 1} holds its probabilities over key j")
        lines.append("  (query_global/key_global/value_global projections; every non-padding key).")
        zero = pads + list(range(seq_len, padded))
        if zero:
            added = list(range(seq_len, padded))
            added = f" ({_ranges(added)} added by the encoder's padding)" if added else ""
            lines.append(f"  Padding keys {_ranges(zero)} get 0{added}.")
        return "\n".join(lines) + "\n"
    lines.append(f"Row {row} is local, window {window} (reach {window // 2} each side), x = {x} global "
                 f"column{'s' if x != 1 else ''}:")
    lines.append(f"  attentions[b, h, {row}, c] for c = 0..{width - 1} (width x + w + 1 = {width})")
    lines.append("     c   key  what column c holds")
    for group in column_runs(row_columns(kinds, window, row, x)):
        if len(group) < RUN_MIN:
            lines.extend(f"  {col.column:4d} {col.key:5d}  {col.note}" for col in group)
        else:
            lines.append(f"  {group[0].column:4d}..{group[-1].column} ({len(group)} columns)  {_run_note(group, row)}")
    return "\n".join(lines) + "\n"


RUN_MIN = 4  # runs of this many columns of one role print as one line (so window 1024 is a few lines, not 1,026)


def column_runs(columns: Sequence[CompactColumn]) -> list[list[CompactColumn]]:
    """Consecutive columns grouped by role (self and global-in-window cells are always alone)."""
    groups: list[list[CompactColumn]] = []
    for col in columns:
        joinable = col.role in ("global", "unused", "window", "padding", "outside")
        if groups and joinable and groups[-1][-1].role == col.role:
            groups[-1].append(col)
        else:
            groups.append([col])
    return groups


def _run_note(group: Sequence[CompactColumn], row: int) -> str:
    role, keys = group[0].role, [c.key for c in group]
    if role == "unused":
        return f"global slots {group[0].column}..{group[-1].column}: unused in this batch row, always 0"
    if role == "global":
        return f"global keys {short_ranges(keys)} (slots {group[0].column}..{group[-1].column}), their only place"
    first, last = keys[0] - row, keys[-1] - row  # window slot offsets
    slots = f"window slots {first:+d}..{last:+d}: keys {keys[0]}..{keys[-1]}"
    if role == "window":
        return f"{slots}, window keys"
    if role == "padding":
        return f"{slots} are padding, 0"
    return f"{slots} are {'before position 0' if keys[0] < 0 else 'past the padded end'}, always 0"


def short_ranges(positions: Sequence[int], parts: int = 8) -> str:
    """`_ranges`, cut after `parts` ranges with a count of what is left (bounded output at any length)."""
    text = _ranges(list(positions)).split(", ")
    if len(text) <= parts:
        return ", ".join(text)
    return ", ".join(text[:parts]) + f", ... ({len(text) - parts} more ranges)"


def _ranges(positions: Sequence[int]) -> str:
    """[3, 4, 5, 9] -> '3..5, 9'."""
    positions = list(positions)
    if not positions:
        return ""
    out, start = [], None
    for a, b in zip(positions, list(positions[1:]) + [None], strict=True):
        start = a if start is None else start
        if b != a + 1:
            out.append(f"{start}" if start == a else f"{start}..{a}")
            start = None
    return ", ".join(out)


# ---------------------------------------------------------------------------------------- grid
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


# ---------------------------------------------------------------------------------------- whole reports
def default_row(kinds: np.ndarray, seq_len: int) -> int:
    """The first local row (the interesting one for the compact layout), else row 0."""
    local = np.flatnonzero(np.asarray(kinds)[:seq_len] == layout.LOCAL)
    return int(local[0]) if local.size else 0


def padding_note(seq_len: int, windows: Sequence[int]) -> str:
    """Why and how far the encoder pads the input (to a multiple of the largest window)."""
    padded = layout.padded_length(seq_len, max(windows))
    largest = "the window" if len(set(windows)) == 1 else "the largest window"
    if padded == seq_len:
        return f"The encoder runs on {seq_len} positions, already a multiple of {largest} {max(windows)}.\n"
    added = list(range(seq_len, padded))
    which = f"positions {_ranges(added)} are" if len(added) > 1 else f"position {added[0]} is"
    return (f"The encoder pads the {seq_len} tokens to {padded}, a multiple of {largest} {max(windows)}: "
            f"{which} padding it adds (not drawn; outputs are cut back to {seq_len}).\n")


def check_rows(rows: Sequence[int], seq_len: int, name: str = "rows") -> list[int]:
    """`rows` as a list of distinct in-range rows, at most MAX_ROWS_SHOWN (bounded output), or a ValueError."""
    rows = list(dict.fromkeys(int(r) for r in rows))
    for r in rows:
        if not 0 <= r < seq_len:
            raise ValueError(f"{name} {r} is out of range 0..{seq_len - 1} (seq_len={seq_len})")
    if len(rows) > MAX_ROWS_SHOWN:
        raise ValueError(f"{name}: at most {MAX_ROWS_SHOWN} rows are described, got {len(rows)}")
    return rows


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


def layout_report(seq_len: int, windows: Sequence[int], global_positions: Sequence[int] = (), pad: int = 0,
                  row: int | None = None, layers: Sequence[int] | None = None, rows: Sequence[int] | None = None,
                  block: int | None = None) -> str:
    """The `grid` output of `python -m led_ref layout`: per layer a grid, the legend, the compact layout of rows.

    windows: one even window per encoder layer; layers: which of them to show (default all).
    row / rows: the query rows whose compact layout is described (default: the first local row).
    block: keys per grid cell (default `auto_block`: a token grid up to TOKEN_GRID_MAX tokens, blocks beyond),
    so the output stays a few hundred lines at 16,384 tokens.
    """
    windows = list(windows)
    layers = range(len(windows)) if layers is None else list(layers)
    for layer in layers:
        if not 0 <= layer < len(windows):
            raise ValueError(f"layer must be in 0..{len(windows) - 1} ({len(windows)} windows), got {layer}")
    kinds = example_kinds(seq_len, windows, global_positions, pad)
    if rows is None:
        if row is None:
            rows = [default_row(kinds, seq_len)]
        elif not 0 <= row < seq_len:
            raise ValueError(f"row must be in 0..{seq_len - 1} (seq_len={seq_len}), got {row}")
        else:
            rows = [row]
    rows = check_rows(rows, seq_len)
    block = check_block(block, seq_len)
    globals_text = short_ranges(sorted(global_positions)) or "none"
    pad_text = f"{_ranges(list(range(seq_len - pad, seq_len)))}" if pad else "none"
    window_text = (f"window {windows[0]} (reach {windows[0] // 2} each side)" if len(windows) == 1
                   else f"per-layer windows {', '.join(map(str, windows))}")
    out = [f"Longformer attention pattern: {seq_len} tokens, {window_text}, global: {globals_text}, "
           f"padding: {pad_text}\n"]
    out.append(kinds_text(kinds, seq_len))
    out.append(padding_global_note(seq_len, global_positions, pad))
    out.append(padding_note(seq_len, windows))
    for layer in layers:
        window = windows[layer]
        out.append("\n")
        if len(windows) > 1:
            out.append(f"== layer {layer}: window {window} (reach {window // 2} each side) ==\n")
        if block == 1:
            out.append("rows: query i and its kind; columns: key j\n")
            out.append(grid_text(pattern_cells(kinds, window, seq_len), kinds))
        else:
            out.append(f"rows: blocks of {block} queries; columns: blocks of {block} keys "
                       "(--block 1 for one column per key, up to 256 tokens)\n")
            out.append(block_grid_text(block_stats(kinds, window, block, seq_len), kinds, seq_len))
        for r in rows:
            out.append("\n" + compact_text(kinds, window, r, seq_len))
    out.append("\n" + (legend_text() if block == 1 else block_legend_text()))
    return "".join(out)


# ---------------------------------------------------------------------------------------- across layers
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


# ---------------------------------------------------------------------------------------- batches
def batch_kinds(seq_len: int, windows: Sequence[int], batch: Sequence[tuple[Sequence[int], int]]) -> np.ndarray:
    """Token kinds (batch, padded_seq) of batch rows given as (global positions, pad) pairs."""
    if not batch:
        raise ValueError("batch must hold at least one (global positions, pad) row")
    return np.stack([example_kinds(seq_len, windows, g, p) for g, p in batch])


def batch_text(seq_len: int, windows: Sequence[int], batch: Sequence[tuple[Sequence[int], int]],
               layer: int = 0) -> str:
    """Several batch rows together: x (the most global tokens of any row), each row's slots, unused slots 0."""
    kinds = batch_kinds(seq_len, windows, batch)
    window = windows[layer]
    positions, valid = layout.global_slots(kinds)
    x = positions.shape[1]
    lines = [f"A batch of {len(batch)} rows, {seq_len} tokens, window {window}: x = {x} "
             "(the most global tokens in any row of the batch)",
             f"  attentions[{layer}]: (batch={len(batch)}, heads, {seq_len}, x + w + 1 = {x + window + 1}), "
             f"global_attentions[{layer}]: (batch={len(batch)}, heads, {layout.padded_length(seq_len, max(windows))}"
             f", x = {x})"]
    shown = min(x, 8)
    head = "".join(f"  slot {s:<8d}" for s in range(shown)) + ("  ..." if x > shown else "")
    lines.append(f"  row b  {'globals':<14s} {'padding':<12s}{head}".rstrip())
    for b, (g, pad) in enumerate(batch):
        cells = "".join(f"  {('key ' + str(int(positions[b, s]))) if valid[b, s] else 'unused: 0':<13s}"
                        for s in range(shown))
        pad_text = _ranges(list(range(seq_len - pad, seq_len))) if pad else "none"
        lines.append(f"  {b:<5d}  {short_ranges(sorted(g), 3) or 'none':<14s} {pad_text:<12s}{cells}".rstrip())
    unused = [(b, int(valid[b].sum())) for b in range(len(batch)) if valid[b].sum() < x]
    if unused:
        lines.append("Unused slots s hold 0 everywhere: column s of attentions[b] (every local row) and column s "
                     "of global_attentions[b]")
        lines.extend(f"  row {b}: slot{f's {count}..{x - 1}' if x - count > 1 else f' {count}'} unused"
                     for b, count in unused)
    for b, (g, pad) in enumerate(batch):
        note = padding_global_note(seq_len, g, pad)
        if note:
            lines.append(f"  row {b}: {note.rstrip()}")
    return "\n".join(lines) + "\n"


MAX_BATCH_ROWS = 8


def batch_report(seq_len: int, windows: Sequence[int], batch: Sequence[tuple[Sequence[int], int]],
                 rows: Sequence[int] | None = None, layers: Sequence[int] | None = None,
                 block: int | None = None) -> str:
    """The `--batch` output: the batch's x slots, then per batch row its grid and compact rows with that x."""
    windows = list(windows)
    layers = list(range(len(windows))) if layers is None else list(layers)
    if not 1 <= len(batch) <= MAX_BATCH_ROWS:
        raise ValueError(f"batch must hold 1..{MAX_BATCH_ROWS} rows, got {len(batch)}")
    for b, (g, pad) in enumerate(batch):
        check_example(seq_len, g, pad, ("seq_len", f"batch row {b}: global", f"batch row {b}: pad"))
    block = check_block(block, seq_len)
    kinds = batch_kinds(seq_len, windows, batch)
    x = layout.global_slots(kinds)[0].shape[1]
    out = []
    for layer in layers:
        if len(windows) > 1:
            out.append(f"== layer {layer}: window {windows[layer]} ==\n")
        out.append(batch_text(seq_len, windows, batch, layer))
    for b, (g, pad) in enumerate(batch):
        shown = check_rows([default_row(kinds[b], seq_len)] if rows is None else rows, seq_len)
        pad_text = _ranges(list(range(seq_len - pad, seq_len))) if pad else "none"
        out.append(f"\n-- batch row {b}: global {short_ranges(sorted(g)) or 'none'}, padding {pad_text} --\n")
        out.append(kinds_text(kinds[b], seq_len))
        for layer in layers:
            window = windows[layer]
            if len(windows) > 1:
                out.append(f"layer {layer}, window {window}:\n")
            if block == 1:
                out.append(grid_text(pattern_cells(kinds[b], window, seq_len), kinds[b]))
            else:
                out.append(block_grid_text(block_stats(kinds[b], window, block, seq_len), kinds[b], seq_len))
            for r in shown:
                out.append(compact_text(kinds[b], window, r, seq_len, x))
    out.append("\n" + (legend_text() if block == 1 else block_legend_text()))
    return "".join(out)


# ---------------------------------------------------------------------------------------- real attentions
@dataclass
class ModelAttentions:
    """The encoder attentions of one text (batch 1), in HF's compact layout, with what produced them."""

    tokens: list[str]
    attention_mask: np.ndarray  # (1, seq)
    global_attention_mask: np.ndarray  # (1, seq)
    windows: list[int]  # per encoder layer
    attentions: tuple[np.ndarray, ...]  # per layer (1, heads, seq, x + w_l + 1)
    global_attentions: tuple[np.ndarray, ...] | None  # per layer (1, heads, padded seq, x), None when x = 0

    @property
    def seq_len(self) -> int:
        return self.attention_mask.shape[1]


def model_token_limit(config) -> int:
    """How many tokens of a text `--from-model` shows: the model's limit (at most MAX_EXPLORER_SEQ_LEN)."""
    return min(config.max_encoder_position_embeddings, MAX_EXPLORER_SEQ_LEN)


def encode_text(tokenizer, text: str, max_length: int) -> tuple[np.ndarray, list[str]]:
    """Token ids (1, seq) of `text` (with <s> ... </s>, truncated to `max_length`) and readable token strings."""
    ids = np.asarray(tokenizer(text, truncation=True, max_length=max_length, return_tensors="np")["input_ids"])
    tokens = [t.replace("\u0120", "_") for t in tokenizer.convert_ids_to_tokens([int(i) for i in ids[0]])]
    return ids.astype(np.int64), tokens


def model_attentions(model, tokenizer, text: str, global_positions: Sequence[int] | None = (0,)) -> ModelAttentions:
    """Run `model`'s encoder on `text` with output_attentions=True (global attention on `global_positions`)."""
    ids, tokens = encode_text(tokenizer, text, model_token_limit(model.config))
    seq_len = ids.shape[1]
    attention_mask, global_attention_mask = example_masks(seq_len, list(global_positions or ()), 0)
    out = model.get_encoder()(input_ids=ids, attention_mask=attention_mask,
                              global_attention_mask=global_attention_mask, output_attentions=True)
    global_attentions = out.global_attentions
    return ModelAttentions(tokens, attention_mask, global_attention_mask, model.config.layer_windows,
                           tuple(np.asarray(a) for a in out.attentions),
                           None if global_attentions is None else tuple(np.asarray(g) for g in global_attentions))


def dense_layer(found: ModelAttentions, layer: int) -> np.ndarray:
    """Dense probabilities (heads, seq, seq) of one layer, through `layout.to_dense`."""
    global_attentions = None if found.global_attentions is None else found.global_attentions[layer]
    return layout.to_dense(found.attentions[layer], global_attentions, found.global_attention_mask,
                           found.windows[layer], found.attention_mask)[0]


def dense_rows(found: ModelAttentions, layer: int, rows: Sequence[int], heads: Sequence[int] | None = None,
               columns: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Dense probabilities (heads, len(rows), seq) of some query rows, read from the compact arrays.

    Equals `dense_layer(found, layer)[heads][:, rows]` without building (seq, seq): local rows are scattered
    through `layout.compact_columns` (pass `columns`, its (keys, valid) for this layer, to reuse it), a
    global row is its column of `global_attentions`, padding rows stay 0.
    """
    kinds = token_kinds_of(found)
    seq = found.seq_len
    keys, valid = layout.compact_columns(kinds[None], found.windows[layer]) if columns is None else columns
    pick = slice(None) if heads is None else list(heads)
    attentions = found.attentions[layer][0][pick]  # (heads, seq, x + w + 1)
    rows = np.asarray(rows, dtype=np.int64)
    out = np.zeros((attentions.shape[0], len(rows), seq), dtype=attentions.dtype)
    r, c = np.nonzero(valid[0, rows] & (kinds[rows] == layout.LOCAL)[:, None])
    out[:, r, keys[0, rows[r], c]] = attentions[:, rows[r], c]
    global_rows = np.flatnonzero(kinds[rows] == layout.GLOBAL)
    if global_rows.size:
        slots = np.searchsorted(global_positions_of(kinds), rows[global_rows])
        out[:, global_rows, :] = found.global_attentions[layer][0][pick][:, :seq, slots].transpose(0, 2, 1)
    return out


def block_heat(found: ModelAttentions, layer: int, heads: Sequence[int], block: int) -> tuple[np.ndarray, np.ndarray]:
    """Heat map of blocks: (len(heads), n, n) max probability of each block x block of (query, key), n =
    ceil(seq / block), and bool (n, n) blocks holding any attended cell (`block_stats`/`block_kinds`).

    One block row of queries at a time (`dense_rows`), so memory is O(block * seq), not O(seq^2).
    """
    seq = found.seq_len
    n = -(-seq // block)
    columns = layout.compact_columns(token_kinds_of(found)[None], found.windows[layer])
    heat = np.zeros((len(heads), n, n), dtype=found.attentions[layer].dtype)
    for q in range(n):
        part = dense_rows(found, layer, range(q * block, min(seq, (q + 1) * block)), heads, columns)
        padded = np.zeros((len(heads), part.shape[1], n * block), dtype=part.dtype)
        padded[..., :seq] = part
        heat[:, q] = padded.reshape(len(heads), part.shape[1], n, block).max(axis=(1, 3))
    kinds = block_kinds(block_stats(token_kinds_of(found), found.windows[layer], block, seq))
    return heat, ~np.isin(kinds, ("none", "pad"))


def model_pattern(found: ModelAttentions, layer: int) -> np.ndarray:
    """bool (seq, seq): which cells of layer `layer` may be non-zero (`layout.dense_mask`)."""
    return layout.dense_mask(token_kinds_of(found)[None], found.windows[layer])[0]


def roundtrip_error(found: ModelAttentions) -> float:
    """max |to_compact(to_dense(x)) - x| over every layer's attentions and global_attentions (0.0 = exact).

    `to_compact` returns the global key axis cut to seq; the model keeps it padded (zeros), so the
    comparison pads it back with zeros, which checks those padded keys really are 0. One head at a time
    (a (seq, seq) view each), so seq is at most MAX_ROUNDTRIP_TOKENS.
    """
    if found.seq_len > MAX_ROUNDTRIP_TOKENS:
        raise ValueError(f"the round trip builds a dense (seq, seq) view per head: seq must be <= "
                         f"{MAX_ROUNDTRIP_TOKENS}, got {found.seq_len}")
    worst = 0.0
    for layer, window in enumerate(found.windows):
        for head in range(found.attentions[layer].shape[1]):
            worst = max(worst, _roundtrip_error_of(found, layer, window, head))
    return worst


def _roundtrip_error_of(found: ModelAttentions, layer: int, window: int, head: int) -> float:
    """The round trip of one (layer, head)."""
    attentions = found.attentions[layer][:, head:head + 1]
    global_attentions = None if found.global_attentions is None else found.global_attentions[layer][:, head:head + 1]
    dense = layout.to_dense(attentions, global_attentions, found.global_attention_mask, window, found.attention_mask)
    back, back_global = layout.to_compact(dense, found.global_attention_mask, window, found.attention_mask)
    worst = float(np.max(np.abs(back - attentions), initial=0.0))
    if global_attentions is not None:
        padded = np.zeros_like(global_attentions)
        padded[:, :, :back_global.shape[2]] = back_global
        worst = max(worst, float(np.max(np.abs(padded - global_attentions), initial=0.0)))
    elif back_global.shape[-1]:
        raise AssertionError(f"layer {layer}: to_compact found global tokens the model did not report")
    return worst


def summary_rows(found: ModelAttentions) -> list[int]:
    """A few rows worth describing: the first global row, the first local row, the middle and the last."""
    kinds = token_kinds_of(found)
    picks = [np.flatnonzero(kinds == layout.GLOBAL)[:1], np.flatnonzero(kinds == layout.LOCAL)[:1],
             [found.seq_len // 2], [found.seq_len - 1]]
    rows: list[int] = []
    for pick in picks:
        for r in pick:
            if int(r) not in rows:
                rows.append(int(r))
    return rows


def token_kinds_of(found: ModelAttentions) -> np.ndarray:
    return layout.token_kinds(found.attention_mask, found.global_attention_mask)[0]


def top_keys_text(found: ModelAttentions, layers: Sequence[int], heads: Sequence[int] | None = None,
                  top: int = 3, rows: Sequence[int] | None = None) -> str:
    """For each layer, the `top` most attended keys of a few rows (mean over `heads`), from the dense view.

    rows: the rows to describe (default `summary_rows`).
    """
    kinds = token_kinds_of(found)
    lines = []
    rows = summary_rows(found) if rows is None else list(rows)
    for layer in layers:
        shown = list(range(found.attentions[layer].shape[1])) if heads is None else list(heads)
        mean = dense_rows(found, layer, rows, shown).mean(axis=0)  # (rows, seq): never the whole (seq, seq)
        which = "mean over heads" if len(shown) > 1 else f"head {shown[0]}"
        lines.append(f"layer {layer} (window {found.windows[layer]}), {which}: top {top} keys per row")
        for r, row in enumerate(rows):
            order = np.argsort(-mean[r], kind="stable")[:top]
            keys = ", ".join(f"{int(j)} {found.tokens[j]!r} {mean[r, j]:.3f}" for j in order)
            lines.append(f"  row {row:3d} {found.tokens[row]!r} ({KIND_NAMES[int(kinds[row])]}): {keys}")
    return "\n".join(lines) + "\n"
