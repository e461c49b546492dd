r"""The text report of `python -m led_ref layout`: per layer a grid, the legend, the compact layout of rows.

Everything is built from `led_ref.layout` (token kinds, the dense mask, the window index map, the global
slots); the modules beside this one name each cell (`cells`), draw the grid (`grid`, `blocks`), describe
compact rows (`compact`), batches (`batch_slots`), reach (`reach`) and real attentions (`from_model`);
this one composes them. 8 tokens, window 2, position 0 global,
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

from .blocks import block_grid_text, block_kinds, block_legend_text, block_stats, check_block
from .cells import pattern_cells
from .compact import check_rows, compact_text, default_row
from .examples import example_kinds, padding_global_note, padding_note
from .from_model import dense_layer, model_attentions
from .grid import grid_text, kinds_text, legend_text
from .ranges import position_ranges, short_ranges
from .reach import reach_per_layer

# Besides the report, the names the HTML page's browser test reads through `explorer`.
__all__ = ["layout_report", "block_kinds", "block_stats", "dense_layer", "example_kinds", "model_attentions",
           "reach_per_layer"]


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
    pad_text = f"{position_ranges(list(range(seq_len - pad, seq_len)))}" if pad else "none"
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
