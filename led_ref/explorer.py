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

from . import layout

# Beyond this the grid is unreadable and the dense mask needlessly big; the real model has no such limit.
MAX_EXPLORER_SEQ_LEN = 4096
# --from-model keeps (heads, seq, seq) float64 per layer in memory: texts are cut to this many tokens.
MAX_MODEL_TOKENS = 1024


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

    The last `pad` positions are padding (mask 0); `global_positions` get global attention and must not
    be padding (a padding token cannot be global: its kind is 0 whatever its global flag says).
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
        if g >= seq_len - pad:
            raise ValueError(f"{global_name} {g} is padding ({pad_name}={pad} makes positions "
                             f"{seq_len - pad}..{seq_len - 1} padding)")
    if len(set(global_positions)) != len(global_positions):
        raise ValueError(f"{global_name} must be distinct positions, got {list(global_positions)}")


def check_window(window: int, name: str = "window") -> None:
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)):
        raise TypeError(f"{name} must be an even int >= 2, got {window!r}")
    if window < 2 or window % 2:
        raise ValueError(f"{name} must be an even int >= 2, got {window}")


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


def row_columns(kinds: np.ndarray, window: int, row: int) -> list[CompactColumn]:
    """The x + w + 1 columns of `attentions[b, h, row, :]` for a local `row`, in order.

    kinds: (padded_seq,) token kinds. The first x columns are the global keys in position order; then the
    window, slot k holding key row - w/2 + k (self at column x + w/2). Window cells that hold a global key
    or a padding key, or fall off either end of the padded sequence, are 0.
    """
    kinds = np.asarray(kinds)
    padded = kinds.shape[0]
    globals_ = global_positions_of(kinds)
    x = len(globals_)
    columns = [
        CompactColumn(s, int(p), "global", f"global key {int(p)} (slot {s}), its only place in this row")
        for s, p in enumerate(globals_)
    ]
    keys = window_keys(padded, window)[row]
    half = window // 2
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


def compact_text(kinds: np.ndarray, window: int, row: int, seq_len: int) -> str:
    """Which column of `attentions[..., row, :]` (or `global_attentions`) holds which absolute key."""
    kinds = np.asarray(kinds)
    padded = kinds.shape[0]
    globals_ = global_positions_of(kinds)
    x = len(globals_)
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
    for col in row_columns(kinds, window, row):
        lines.append(f"  {col.column:4d} {col.key:5d}  {col.note}")
    return "\n".join(lines) + "\n"


def _ranges(positions: Sequence[int]) -> str:
    """[3, 4, 5, 9] -> '3..5, 9'."""
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


def layout_report(seq_len: int, windows: Sequence[int], global_positions: Sequence[int] = (), pad: int = 0,
                  row: int | None = None, layers: Sequence[int] | None = None) -> str:
    """The `grid` output of `python -m led_ref layout`: per layer a grid, the legend, the compact layout of `row`.

    windows: one even window per encoder layer; layers: which of them to show (default all).
    """
    windows = list(windows)
    layers = range(len(windows)) if layers is None else list(layers)
    for layer in layers:
        if not 0 <= layer < len(windows):
            raise ValueError(f"layer must be in 0..{len(windows) - 1} ({len(windows)} windows), got {layer}")
    kinds = example_kinds(seq_len, windows, global_positions, pad)
    if row is None:
        row = default_row(kinds, seq_len)
    elif not 0 <= row < seq_len:
        raise ValueError(f"row must be in 0..{seq_len - 1} (seq_len={seq_len}), got {row}")
    globals_text = ", ".join(map(str, sorted(global_positions))) or "none"
    pad_text = f"{_ranges(list(range(seq_len - pad, seq_len)))}" if pad else "none"
    window_text = (f"window {windows[0]} (reach {windows[0] // 2} each side)" if len(windows) == 1
                   else f"per-layer windows {', '.join(map(str, windows))}")
    out = [f"Longformer attention pattern: {seq_len} tokens, {window_text}, global: {globals_text}, "
           f"padding: {pad_text}\n"]
    out.append("token kinds: " + " ".join(str(int(k)) for k in kinds[:seq_len]) + "   (0 pad, 1 local, 2 global)\n")
    out.append(padding_note(seq_len, windows))
    for layer in layers:
        window = windows[layer]
        out.append("\n")
        if len(windows) > 1:
            out.append(f"== layer {layer}: window {window} (reach {window // 2} each side) ==\n")
        out.append("rows: query i and its kind; columns: key j\n")
        out.append(grid_text(pattern_cells(kinds, window, seq_len), kinds))
        out.append("\n" + compact_text(kinds, window, row, seq_len))
    out.append("\n" + legend_text())
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
    """How many tokens of a text `--from-model` shows: the model's limit, at most MAX_MODEL_TOKENS."""
    return min(config.max_encoder_position_embeddings, MAX_MODEL_TOKENS)


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


def model_pattern(found: ModelAttentions, layer: int) -> np.ndarray:
    """bool (seq, seq): which cells of layer `layer` may be non-zero (`layout.dense_mask`)."""
    return layout.dense_mask(token_kinds_of(found)[None], found.windows[layer])[0]


def roundtrip_error(found: ModelAttentions) -> float:
    """max |to_compact(to_dense(x)) - x| over every layer's attentions and global_attentions (0.0 = exact).

    `to_compact` returns the global key axis cut to seq; the model keeps it padded (zeros), so the
    comparison pads it back with zeros, which checks those padded keys really are 0.
    """
    worst = 0.0
    for layer, window in enumerate(found.windows):
        global_attentions = None if found.global_attentions is None else found.global_attentions[layer]
        dense = layout.to_dense(found.attentions[layer], global_attentions, found.global_attention_mask, window,
                                found.attention_mask)
        attentions, back_global = layout.to_compact(dense, found.global_attention_mask, window, found.attention_mask)
        worst = max(worst, float(np.max(np.abs(attentions - found.attentions[layer]), initial=0.0)))
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
                  top: int = 3) -> str:
    """For each layer, the `top` most attended keys of a few rows (mean over `heads`), from the dense view."""
    kinds = token_kinds_of(found)
    lines = []
    for layer in layers:
        dense = dense_layer(found, layer)
        shown = list(range(dense.shape[0])) if heads is None else list(heads)
        mean = dense[shown].mean(axis=0)
        which = "mean over heads" if len(shown) > 1 else f"head {shown[0]}"
        lines.append(f"layer {layer} (window {found.windows[layer]}), {which}: top {top} keys per row")
        for row in summary_rows(found):
            order = np.argsort(-mean[row], kind="stable")[:top]
            keys = ", ".join(f"{int(j)} {found.tokens[j]!r} {mean[row, j]:.3f}" for j in order)
            lines.append(f"  row {row:3d} {found.tokens[row]!r} ({KIND_NAMES[int(kinds[row])]}): {keys}")
    return "\n".join(lines) + "\n"
