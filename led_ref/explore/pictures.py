"""Pictures of the Longformer layout (matplotlib, an optional extra: `pip install 'led-parity[pictures]'`).

`draw_layout` colours every (query, key) cell by its `cells.Cell` and draws, beside it, the compact HF
row of one query as a 1 x (x + w + 1) strip labelled with absolute key positions; `draw_batch_layout` stacks
that for every row of a batch, each strip with the batch's x slots. `draw_heatmaps` shows real dense attention
probabilities (or their block maxima), one panel per (layer, head). matplotlib is imported inside the
functions so `led_ref` itself never needs it; figures are built without pyplot (no global state, no GUI).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from .. import layout
from .batch_slots import MAX_BATCH_ROWS, batch_kinds
from .blocks import block_kinds, block_stats
from .cells import CELL_CHARS, CELL_MEANINGS, Cell, pattern_cells
from .compact import default_row, global_positions_of, row_columns
from .examples import example_kinds
from .ranges import short_ranges
from .reach import reach_per_layer

INSTALL_HINT = "pip install 'led-parity[pictures]'"

# Cell colours (RGB hex); tests read them back from the PNG.
CELL_COLORS = {
    Cell.WINDOW: "#4c78a8",  # blue
    Cell.SELF: "#1b2f5e",  # dark blue
    Cell.GLOBAL_KEY: "#f58518",  # orange
    Cell.GLOBAL_ROW: "#c03a2b",  # red
    Cell.OUTSIDE: "#ffffff",  # white
    Cell.PAD_KEY: "#c8c8c8",  # grey
    Cell.PAD_ROW: "#ececec",  # light grey
}

# Colours of the compact-strip roles (`compact.CompactColumn.role`).
ROLE_COLORS = {
    "global": CELL_COLORS[Cell.GLOBAL_KEY],
    "self": CELL_COLORS[Cell.SELF],
    "window": CELL_COLORS[Cell.WINDOW],
    "global-in-window": "#fbd3a6",  # pale orange: a 0 cell whose key lives in a global column
    "padding": CELL_COLORS[Cell.PAD_KEY],
    "outside": CELL_COLORS[Cell.OUTSIDE],
    "zero": CELL_COLORS[Cell.PAD_ROW],
    "unused": "#cdb4e6",  # lilac, labelled 0: a global slot this batch row does not fill
}

ROLE_MEANINGS = {
    "global-in-window": "0: key is global (see its global column)",
    "outside": "0: outside the sequence",
    "unused": "0: unused global slot (batch)",
}

CELL_INCHES = 0.32
MAX_PANEL_INCHES = 12.0  # long sequences shrink the cells instead of growing the picture
PIXEL_GRID_MAX = 1024  # beyond this many tokens the pattern is drawn from `blocks.block_stats` (never O(seq^2))
BLOCK_IMAGE_CELLS = 256  # blocks a side of a long pattern (about 5 pixels each)
MIN_LINE_PIXELS = 2.0  # global rows/columns and the strip's global/self columns are never thinner than this
STRIP_INCHES = 0.45  # height of a long compact strip (cells wider than tall, so it stays visible)
BLOCK_COLORS = {  # `blocks.block_kinds` -> colour
    "full": CELL_COLORS[Cell.WINDOW], "window": CELL_COLORS[Cell.WINDOW], "global_row": CELL_COLORS[Cell.GLOBAL_ROW],
    "global_key": CELL_COLORS[Cell.GLOBAL_KEY], "none": CELL_COLORS[Cell.OUTSIDE], "pad": CELL_COLORS[Cell.PAD_ROW],
}
NOT_ATTENDED = "#d9d9d9"  # heat-map cells outside the attention pattern
HEAT_CELLS = 128  # heat maps of longer inputs show the max of each block, at most this many blocks a side


class PicturesUnavailable(ImportError):
    """matplotlib is missing; the message says how to install it."""


def _new_figure(figsize: tuple[float, float], layout: str | None = None):
    """A matplotlib Figure on an Agg canvas (no pyplot, no GUI), or PicturesUnavailable naming the install."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise PicturesUnavailable(f"drawing pictures needs matplotlib: {INSTALL_HINT} ({err})") from None
    fig = Figure(figsize=figsize, dpi=100, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def rgb(hex_color: str) -> np.ndarray:
    """'#rrggbb' -> float RGB (3,) in 0..1."""
    return np.array([int(hex_color[k:k + 2], 16) for k in (1, 3, 5)], dtype=np.float64) / 255.0


def cell_image(cells: np.ndarray) -> np.ndarray:
    """Cell codes (seq, seq) -> RGB image (seq, seq, 3)."""
    table = np.stack([rgb(CELL_COLORS[Cell(c)]) for c in range(len(Cell))])
    return table[np.asarray(cells)]


def _index_ticks(ax, n: int, axis: str) -> None:
    steps = (2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000)
    step = 1 if n <= 32 else next(s for s in steps if n / s <= 16)
    ticks = np.arange(0, n, step)
    getattr(ax, f"set_{axis}ticks")(ticks)
    getattr(ax, f"set_{axis}ticklabels")([str(t) for t in ticks], fontsize=7)


def _cell_borders(ax, rows: int, cols: int) -> None:
    """Thin white lines between cells (drawn on the cell boundaries, so cell centres keep their colour)."""
    ax.set_xticks(np.arange(-0.5, cols, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, rows, 1), minor=True)
    ax.grid(which="minor", color="white", linewidth=0.6)
    ax.tick_params(which="minor", length=0)


def draw_pattern_axes(ax, cells: np.ndarray | None, title: str, kinds: np.ndarray | None = None,
                      window: int | None = None, seq_len: int | None = None) -> None:
    """The (seq, seq) pattern on `ax`: row = query i, column = key j.

    cells: `cells.pattern_cells`, or None for a long sequence: then blocks (`blocks.block_stats` of
    `kinds`, `window`, `seq_len`) are drawn, with every global row and column on top at least
    MIN_LINE_PIXELS wide, so they stay visible at 16,384 tokens.
    """
    if cells is not None:
        seq = cells.shape[0]
        ax.imshow(cell_image(cells), interpolation="nearest")
    else:
        seq = seq_len
        block = 1
        while -(-seq // block) > BLOCK_IMAGE_CELLS:
            block *= 2
        kinds_of_blocks = block_kinds(block_stats(kinds, window, block, seq))
        names = list(BLOCK_COLORS)
        table = np.stack([rgb(BLOCK_COLORS[k]) for k in names])
        index = np.vectorize(names.index, otypes=[np.int64])(kinds_of_blocks)
        image = table[index]
        ax.imshow(image, interpolation="nearest", extent=(-0.5, seq - 0.5, seq - 0.5, -0.5))
    if kinds is not None and seq > 64:
        _global_lines(ax, np.asarray(kinds)[:seq], seq)
    _index_ticks(ax, seq, "x")
    _index_ticks(ax, seq, "y")
    if seq <= 64:
        _cell_borders(ax, seq, seq)
    ax.set_xlabel("key j", fontsize=8)
    ax.set_ylabel("query i", fontsize=8)
    ax.xaxis.set_label_position("top")
    ax.xaxis.tick_top()
    ax.set_title(title, fontsize=9, pad=18)


def _line_points(ax, seq: int) -> float:
    """A line width (points) of max(one cell, MIN_LINE_PIXELS pixels) on `ax` showing `seq` cells across."""
    fig = ax.get_figure()
    width_pixels = ax.get_position().width * fig.get_figwidth() * fig.dpi
    return max(width_pixels / seq, MIN_LINE_PIXELS) * 72.0 / fig.dpi


def _global_lines(ax, kinds: np.ndarray, seq: int) -> None:
    """Every global column (over the local rows) and global row (over the non-padding keys), >= 2 px wide."""
    points = _line_points(ax, seq)
    keys = np.flatnonzero(kinds != layout.PADDING)
    if not keys.size:
        return
    for g in np.flatnonzero(kinds == layout.GLOBAL):
        ax.vlines(g, -0.5, seq - 0.5, colors=CELL_COLORS[Cell.GLOBAL_KEY], linewidth=points, zorder=3)
    for g in np.flatnonzero(kinds == layout.GLOBAL):
        ax.hlines(g, -0.5, keys[-1] + 0.5, colors=CELL_COLORS[Cell.GLOBAL_ROW], linewidth=points, zorder=4)


def strip_cells(kinds: np.ndarray, window: int, row: int, x: int | None = None) -> tuple[list[str], list[str], str]:
    """Colours, key labels and a caption of the compact row `row` (`compact.row_columns`).

    x: the batch's number of global slots (default: this row's own count); unused slots are labelled 0.
    """
    kinds = np.asarray(kinds)
    own = len(global_positions_of(kinds))
    x = own if x is None else x
    kind = int(kinds[row])
    if kind == layout.LOCAL:
        columns = row_columns(kinds, window, row, x)
        slots = f"x={x} slots ({own} used)" if x != own else f"x={x} global"
        return ([ROLE_COLORS[c.role] for c in columns], ["0" if c.role == "unused" else str(c.key) for c in columns],
                f"compact row: attentions[..., {row}, :]\n{slots}, w={window}, self at column {x + window // 2}")
    width = x + window + 1
    if kind == layout.GLOBAL:
        slot = int(np.flatnonzero(global_positions_of(kinds) == row)[0])
        caption = (f"row {row} is global: attentions[..., {row}, :] is all 0;\n"
                   f"its row is global_attentions[..., :, {slot}]")
    else:
        caption = f"row {row} is padding:\nattentions[..., {row}, :] is all 0"
    return [ROLE_COLORS["zero"]] * width, [""] * width, caption


def draw_strip_axes(ax, colors: Sequence[str], labels: Sequence[str], caption: str,
                    total_width: int | None = None) -> None:
    """A 1 x width strip: cell c coloured by its role and labelled with the absolute key it holds.

    total_width: the x extent (in cells) of the axes, so strips of different layers share one cell size.
    """
    width = len(colors)
    long_strip = width > 40
    ax.imshow(np.stack([rgb(c) for c in colors])[None], interpolation="nearest",
              aspect="auto" if long_strip else "equal")
    if long_strip:  # one-pixel cells: draw the global and self columns at least MIN_LINE_PIXELS wide
        points = _line_points(ax, max(width, total_width or width))
        for c, color in enumerate(colors):
            if color in (ROLE_COLORS["global"], ROLE_COLORS["self"], ROLE_COLORS["unused"]):
                ax.vlines(c, -0.5, 0.5, colors=color, linewidth=points, zorder=3)
    for c, label in enumerate(labels if width <= 24 else ()):  # labels of long strips would overlap
        ax.text(c, 0, label, ha="center", va="center", fontsize=7,
                color="white" if colors[c] in (ROLE_COLORS["self"], ROLE_COLORS["window"]) else "black")
    _index_ticks(ax, width, "x")
    ax.set_yticks([])
    ax.set_xlabel("column c (in the cell: the absolute key)", fontsize=7)
    edges = np.arange(-0.5, width, 1.0) if not long_strip else np.array([-0.5, width - 0.5])
    ax.vlines(edges, -0.5, 0.5, color="#888888", linewidth=0.6, clip_on=False)
    ax.hlines([-0.5, 0.5], -0.5, width - 0.5, color="#888888", linewidth=0.6, clip_on=False)
    ax.set_xlim(-0.5, max(width, total_width or width) - 0.5)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(caption, fontsize=8, loc="left")


def _legend(fig, batch: bool = False) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=CELL_COLORS[c], edgecolor="#888888", label=f"'{CELL_CHARS[c]}' "
                     f"{CELL_MEANINGS[c].split(' (')[0]}") for c in CELL_MEANINGS]
    handles += [Patch(facecolor=ROLE_COLORS[r], edgecolor="#888888", label=f"strip: {m}")
                for r, m in ROLE_MEANINGS.items() if batch or r != "unused"]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=7, frameon=False)


def _mark_row(ax, row: int, seq_len: int) -> None:
    """Outline the query row whose compact layout the strip shows."""
    from matplotlib.patches import Rectangle

    ax.add_patch(Rectangle((-0.5, row - 0.5), seq_len, 1, fill=False, edgecolor="black", linewidth=1.8,
                           zorder=5, clip_on=False))


def draw_layout(seq_len: int, windows: Sequence[int], global_positions: Sequence[int] = (), pad: int = 0,
                row: int | None = None, layers: Sequence[int] | None = None):
    """A matplotlib Figure: per layer the (seq, seq) pattern and the compact row `row` beside it."""
    kinds = example_kinds(seq_len, windows, global_positions, pad)
    row = default_row(kinds, seq_len) if row is None else row
    if not 0 <= row < seq_len:
        raise ValueError(f"row must be in 0..{seq_len - 1} (seq_len={seq_len}), got {row}")
    return _draw_panels(seq_len, windows, [(kinds, "", row)], None, layers)


def draw_batch_layout(seq_len: int, windows: Sequence[int], batch: Sequence[tuple[Sequence[int], int]],
                      row: int | None = None, layers: Sequence[int] | None = None):
    """A matplotlib Figure: every batch row's layout stacked (row b's panels above row b + 1's).

    batch: (global positions, pad) per batch row. Each panel is titled with its row's global positions and
    padding; each strip has the batch's x global slots, those a row does not fill drawn as unused (0).
    row: the query row of every strip (default: each batch row's first local row).
    """
    if not 1 <= len(batch) <= MAX_BATCH_ROWS:
        raise ValueError(f"batch must hold 1..{MAX_BATCH_ROWS} rows, got {len(batch)}")
    if row is not None and not 0 <= row < seq_len:
        raise ValueError(f"row must be in 0..{seq_len - 1} (seq_len={seq_len}), got {row}")
    kinds = batch_kinds(seq_len, windows, batch)
    x = layout.global_slots(kinds)[0].shape[1]
    entries = []
    for b, (g, pad) in enumerate(batch):
        padding = f"{seq_len - pad}..{seq_len - 1}" if pad > 1 else (str(seq_len - 1) if pad else "none")
        label = f"batch row {b}: global {short_ranges(sorted(g), 4) or 'none'}, padding {padding}\n"
        entries.append((kinds[b], label, default_row(kinds[b], seq_len) if row is None else row))
    return _draw_panels(seq_len, windows, entries, x, layers)


def _draw_panels(seq_len: int, windows: Sequence[int], entries: Sequence[tuple[np.ndarray, str, int]],
                 x: int | None, layers: Sequence[int] | None):
    """Per entry (kinds, title prefix, strip row) and per layer: the pattern and its compact strip, one line each.

    x: the batch's number of global slots (None: each entry's own).
    """
    windows = list(windows)
    layers = list(range(len(windows))) if layers is None else list(layers)
    own_x = max(len(global_positions_of(k)) for k, _, _ in entries)
    strip_width = (own_x if x is None else x) + max(windows[layer] for layer in layers) + 1
    panels = len(entries) * len(layers)
    cell = min(CELL_INCHES, MAX_PANEL_INCHES / len(entries) ** 0.5 / seq_len)  # a batch: smaller panels
    panel_inches = cell * max(seq_len, 8)
    title_inches = 1.3 + (0.3 if len(entries) > 1 else 0.0)
    fig = _new_figure((max(8.0, cell * (seq_len + strip_width) + 2.5), (panel_inches + title_inches) * panels + 1.0))
    legend_space = 1.0 / fig.get_figheight()
    # Same cell size in the grid and the strip, unless the sequence is long enough to make the strip unreadable.
    strip_ratio = strip_width if seq_len <= 40 else max(strip_width, 0.45 * seq_len)
    grid = fig.add_gridspec(panels, 2, width_ratios=[seq_len, strip_ratio], left=0.07, right=0.98,
                            top=1 - (title_inches - 0.7) / fig.get_figheight(),
                            bottom=legend_space + 0.3 / fig.get_figheight(),
                            wspace=0.2, hspace=(title_inches - 0.1) / (panel_inches + 0.1))
    r = 0
    for kinds, label, row in entries:
        for layer in layers:
            window = windows[layer]
            prefix = label + (f"layer {layer}: " if len(windows) > 1 else "")
            ax = fig.add_subplot(grid[r, 0])
            cells = pattern_cells(kinds, window, seq_len) if seq_len <= PIXEL_GRID_MAX else None
            draw_pattern_axes(ax, cells, f"{prefix}window {window}, {seq_len} tokens", kinds, window, seq_len)
            _mark_row(ax, row, seq_len)
            strip = fig.add_subplot(grid[r, 1])
            if strip_width > 40:  # a band of STRIP_INCHES at the top of its slot, not a hairline
                pos = strip.get_position()
                height = STRIP_INCHES / fig.get_figheight()
                strip.set_position([pos.x0, pos.y1 - height - 0.5 / fig.get_figheight(), pos.width, height])
            draw_strip_axes(strip, *strip_cells(kinds, window, row, x), total_width=strip_width)
            r += 1
    _legend(fig, batch=x is not None)
    return fig


def save_layout_png(path: str | os.PathLike, seq_len: int, windows: Sequence[int],
                    global_positions: Sequence[int] = (), pad: int = 0, row: int | None = None,
                    layers: Sequence[int] | None = None) -> None:
    """Write `draw_layout(...)` to `path` as a PNG (pixel grid = the figure's own, no tight cropping)."""
    fig = draw_layout(seq_len, windows, global_positions, pad, row, layers)
    fig.savefig(os.fspath(path), format="png", dpi=fig.dpi, bbox_inches="tight", pad_inches=0.15)


def save_batch_layout_png(path: str | os.PathLike, *args, **kwargs) -> None:
    """Write `draw_batch_layout(...)` to `path` as a PNG."""
    fig = draw_batch_layout(*args, **kwargs)
    fig.savefig(os.fspath(path), format="png", dpi=fig.dpi, bbox_inches="tight", pad_inches=0.15)


def draw_heatmaps(dense: Sequence[np.ndarray], layer_ids: Sequence[int], head_ids: Sequence[int],
                  tokens: Sequence[str] | None = None, title: str = "", patterns: Sequence[np.ndarray] | None = None,
                  pooled: int = 1, seq_len: int | None = None):
    """Dense probabilities, one panel per (layer, head).

    dense: per shown layer an array (heads, seq, seq) (query, key); layer_ids/head_ids label rows/columns.
    patterns: per shown layer a bool (seq, seq) `dense_mask`; cells outside it are drawn grey, not as 0.
    pooled: > 1 when `dense` and `patterns` already hold blocks of pooled x pooled (`from_model.block_heat`) of
    a `seq_len`-token input.
    """
    from matplotlib import colormaps

    cmap = colormaps["magma_r"].with_extremes(bad=NOT_ATTENDED)
    rows, cols = len(layer_ids), len(head_ids)
    seq = dense[0].shape[-1] if pooled == 1 else seq_len
    pool = pooled if pooled > 1 else -(-seq // HEAT_CELLS)  # long inputs: the max of each block, so the band shows
    if pool > 1 and pooled == 1:
        dense = [_max_pool(d, pool) for d in dense]
        patterns = None if patterns is None else [_max_pool(p, pool) for p in patterns]
    panel = min(4.0, max(2.2, 0.16 * seq))
    fig = _new_figure((panel * cols + 1.2, panel * rows + 0.9), layout="constrained")
    vmax = max(float(np.max(d[list(head_ids)])) for d in dense) or 1.0
    image = None
    for r, (layer, probs) in enumerate(zip(layer_ids, dense, strict=True)):
        for c, head in enumerate(head_ids):
            ax = fig.add_subplot(rows, cols, r * cols + c + 1)
            shown = probs[head] if patterns is None else np.ma.masked_array(probs[head], ~patterns[r])
            image = ax.imshow(shown, cmap=cmap, vmin=0.0, vmax=vmax, interpolation="nearest",
                              extent=(-0.5, seq - 0.5, seq - 0.5, -0.5))
            ax.set_title(f"layer {layer}, head {head}", fontsize=8)
            if tokens is not None and seq <= 24:
                ax.set_xticks(range(seq))
                ax.set_xticklabels(tokens, rotation=90, fontsize=6)
                ax.set_yticks(range(seq))
                ax.set_yticklabels(tokens, fontsize=6)
            else:
                _index_ticks(ax, seq, "x")
                _index_ticks(ax, seq, "y")
    pooled = f" (max over blocks of {pool} x {pool})" if pool > 1 else ""
    fig.suptitle((title or "encoder attention probabilities (row = query, column = key; grey: not attended)") + pooled,
                 fontsize=9)
    fig.colorbar(image, ax=fig.axes, shrink=0.8, label="probability")
    return fig


def _max_pool(a: np.ndarray, pool: int) -> np.ndarray:
    """Max over pool x pool blocks of the last two axes (padded with the minimum; bool arrays: any)."""
    *lead, n, m = a.shape
    rows, cols = -(-n // pool), -(-m // pool)
    filled = np.full((*lead, rows * pool, cols * pool), a.min() if a.size else 0, dtype=a.dtype)
    filled[..., :n, :m] = a
    return filled.reshape(*lead, rows, pool, cols, pool).max(axis=(-3, -1))


def save_heatmaps_png(path: str | os.PathLike, *args, **kwargs) -> None:
    fig = draw_heatmaps(*args, **kwargs)
    fig.savefig(os.fspath(path), format="png", dpi=fig.dpi, bbox_inches="tight", pad_inches=0.15)


def draw_reach(seq_len: int, windows: Sequence[int], global_positions: Sequence[int], pad: int, token: int):
    """How far `token`'s information reaches: one band per layer (`reach.reach_per_layer`), keys across.

    Row 0 is the input (only the token), row l + 1 the positions reached after layer l. Long sequences are
    pooled to at most PIXEL_GRID_MAX columns (a column is reached when any of its positions is); global
    positions are marked below the bands at least MIN_LINE_PIXELS wide.
    """
    if not 0 <= token < seq_len:
        raise ValueError(f"reach token must be in 0..{seq_len - 1} (seq_len={seq_len}), got {token}")
    kinds = example_kinds(seq_len, windows, global_positions, pad)[:seq_len]
    rows = [np.arange(seq_len) == token] + reach_per_layer(kinds, windows, token, seq_len)
    per = -(-seq_len // PIXEL_GRID_MAX)
    columns = -(-seq_len // per)

    def pooled(mask):
        padded = np.zeros(columns * per, dtype=bool)
        padded[:seq_len] = mask
        return padded.reshape(columns, per).any(axis=1)

    codes = np.zeros((len(rows), columns), dtype=np.int64)  # 0 not reached, 1 reached, 2 the token, 3 padding
    is_pad = pooled(kinds == layout.PADDING) & ~pooled(kinds != layout.PADDING)
    for r, reached in enumerate(rows):
        codes[r] = np.where(pooled(reached), 1, np.where(is_pad, 3, 0))
    codes[:, pooled(np.arange(seq_len) == token)] = 2
    table = np.stack([rgb(c) for c in (CELL_COLORS[Cell.OUTSIDE], CELL_COLORS[Cell.WINDOW], CELL_COLORS[Cell.SELF],
                                         CELL_COLORS[Cell.PAD_KEY])])
    fig = _new_figure((12.0, 0.45 * len(rows) + 1.6), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(table[codes], aspect="auto", interpolation="nearest", extent=(-0.5, seq_len - 0.5, len(rows) - 0.5, -0.5))
    points = _line_points(ax, seq_len)
    for r, reached in enumerate(rows):  # a reached global token is the hop to everything: never thinner than 2 px
        for g in np.flatnonzero(reached & (kinds == layout.GLOBAL)):
            ax.vlines(g, r - 0.5, r + 0.5, colors=CELL_COLORS[Cell.WINDOW], linewidth=points)
    for g in np.flatnonzero(kinds == layout.GLOBAL):
        ax.vlines(g, len(rows) - 0.5, len(rows) - 0.1, colors=CELL_COLORS[Cell.GLOBAL_KEY], linewidth=points,
                  clip_on=False)
    counts = [int(r.sum()) for r in rows]
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(["input"] + [f"after layer {k} (w {w}): {counts[k + 1]}" for k, w in enumerate(windows)],
                       fontsize=7)
    _index_ticks(ax, seq_len, "x")
    ax.set_xlabel("position (orange ticks below: global tokens)", fontsize=8)
    ax.set_title(f"how far token {token}'s information reaches, layer by layer ({seq_len} tokens)", fontsize=9)
    return fig


def save_reach_png(path: str | os.PathLike, *args, **kwargs) -> None:
    fig = draw_reach(*args, **kwargs)
    fig.savefig(os.fspath(path), format="png", dpi=fig.dpi, bbox_inches="tight", pad_inches=0.15)
