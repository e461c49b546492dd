"""`--batch`: several batch rows share x global slots, the most global tokens of any row.

A row with fewer global tokens leaves its last slots unused: they hold 0 in its `attentions` columns and in
its `global_attentions`. The report shows the slots of every row, then each row's grid and compact rows
with the batch's x.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import layout
from .blocks import block_grid_text, block_legend_text, block_stats, check_block
from .cells import pattern_cells
from .compact import check_rows, compact_text, default_row
from .examples import check_example, example_kinds, padding_global_note
from .grid import grid_text, kinds_text, legend_text
from .ranges import position_ranges, short_ranges

MAX_BATCH_ROWS = 8


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
        pad_text = position_ranges(list(range(seq_len - pad, seq_len))) if pad else "none"
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
        pad_text = position_ranges(list(range(seq_len - pad, seq_len))) if pad else "none"
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
