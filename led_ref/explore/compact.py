"""Which absolute key each column of HF's compact `attentions[b, h, row, :]` holds, row by row.

A local row's x + w + 1 columns: first the x global keys in position order, then the window, slot k
holding key row - w/2 + k (self at column x + w/2). Window cells holding a global or padding key, or
falling off either end of the padded sequence, are 0. A global row keeps its probabilities in its column
of `global_attentions` instead; a padding row has none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .. import layout
from .ranges import position_ranges, short_ranges

# At most this many rows get a compact-layout table (each is a few lines).
MAX_ROWS_SHOWN = 32


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
            added = f" ({position_ranges(added)} added by the encoder's padding)" if added else ""
            lines.append(f"  Padding keys {position_ranges(zero)} get 0{added}.")
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


def default_row(kinds: np.ndarray, seq_len: int) -> int:
    """The first local row (the interesting one for the compact layout), else row 0."""
    local = np.flatnonzero(np.asarray(kinds)[:seq_len] == layout.LOCAL)
    return int(local[0]) if local.size else 0


def check_rows(rows: Sequence[int], seq_len: int, name: str = "rows") -> list[int]:
    """`rows` as a list of distinct in-range rows, at most MAX_ROWS_SHOWN (bounded output), or a ValueError."""
    rows = list(dict.fromkeys(int(r) for r in rows))
    for r in rows:
        if not 0 <= r < seq_len:
            raise ValueError(f"{name} {r} is out of range 0..{seq_len - 1} (seq_len={seq_len})")
    if len(rows) > MAX_ROWS_SHOWN:
        raise ValueError(f"{name}: at most {MAX_ROWS_SHOWN} rows are described, got {len(rows)}")
    return rows
