"""`python -m led_ref layout ... --html out.html`: the layout explorer as one self-contained HTML page.

The page holds its data inline (a JSON block) and a little plain JavaScript, loads nothing from anywhere
and needs no server: open the file in a browser. It shows, side by side, the dense mask (query i, key j),
the compact `attentions[b, h, i, c]` and `global_attentions[b, h, j, s]` of one batch row; clicking a cell
outlines its counterpart in the other two (dense (i, j) <-> compact (i, c) <-> global slot (j, s)).
Controls change the sequence length, the per-layer windows, the global positions, the padding and the
batch rows, and the page recomputes the layout with the same rules as `led_ref.layout` (the rules are the
few functions under "the layout rules" in `assets/explorer.js`; tests/test_explorer_html.py runs them in Chromium
against `led_ref.layout`). Long sequences get a block-level overview (like FlexAttention block masks):
click a block to zoom the token-level views there. With `--from-model` the cells hold the model's real
probabilities (per head or their mean).
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from importlib import resources

import numpy as np

from .. import layout
from .batch_slots import batch_kinds
from .cells import Cell
from .compact import default_row
from .examples import MAX_EXPLORER_SEQ_LEN, check_example, example_kinds
from .from_model import ModelAttentions

# The page's colours are the PNG's (`led_ref.explore.pictures`), so both media read the same.
COLORS = {
    "window": "#4c78a8", "self": "#1b2f5e", "globalKey": "#f58518", "globalRow": "#c03a2b", "outside": "#ffffff",
    "padKey": "#c8c8c8", "padRow": "#ececec", "globalInWindow": "#fbd3a6", "unused": "#e0e0e0",
    "highlight": "#00c853", "viewport": "#000000",
}
CELL_COLOR_NAMES = {Cell.WINDOW: "window", Cell.SELF: "self", Cell.GLOBAL_KEY: "globalKey",
                    Cell.GLOBAL_ROW: "globalRow", Cell.OUTSIDE: "outside", Cell.PAD_KEY: "padKey",
                    Cell.PAD_ROW: "padRow"}
# Real probabilities inlined at most this many numbers (4 significant digits each); beyond, the mean over
# heads only, then fewer layers.
MAX_MODEL_NUMBERS = 3_000_000


def synthetic_state(seq_len: int, windows: Sequence[int], batch: Sequence[tuple[Sequence[int], int]],
                    layer: int = 0, row: int | None = None, reach: int | None = None) -> dict:
    """The page's starting point for a synthetic pattern: batch rows as (global positions, pad) pairs."""
    for b, (g, pad) in enumerate(batch):
        check_example(seq_len, g, pad, ("seq_len", f"batch row {b}: global", f"batch row {b}: pad"))
    kinds = example_kinds(seq_len, windows, batch[0][0], batch[0][1])
    row = default_row(kinds, seq_len) if row is None else row
    return {"mode": "synthetic", "seqLen": seq_len, "windows": list(map(int, windows)), "layer": layer,
            "rows": [{"globals": sorted(map(int, g)), "pad": int(pad)} for g, pad in batch], "b": 0,
            "select": [row, row], "reach": row if reach is None else reach,
            "maxSeqLen": MAX_EXPLORER_SEQ_LEN}


def _quantized(a: np.ndarray) -> list[int]:
    """Probabilities as integers of 1e-4 (the page divides), flattened row-major."""
    return np.rint(np.asarray(a, dtype=np.float64) * 10000).astype(np.int64).ravel().tolist()


def model_state(found: ModelAttentions, layer: int = 0, row: int | None = None,
                reach: int | None = None) -> dict:
    """The page's data for real attentions: the compact arrays of batch row 0, per layer, per head (or mean)."""
    seq_len = found.seq_len
    globals_ = np.flatnonzero(found.global_attention_mask[0]).tolist()
    state = synthetic_state(seq_len, found.windows, [(globals_, 0)], layer, row, reach)
    heads = found.attentions[0].shape[1]
    per_layer = [a[0].size + (0 if found.global_attentions is None else found.global_attentions[k][0].size)
                 for k, a in enumerate(found.attentions)]
    per_head = sum(per_layer) <= MAX_MODEL_NUMBERS
    budget, layers = MAX_MODEL_NUMBERS, []
    for k in range(len(found.attentions)):
        cost = per_layer[k] // (1 if per_head else heads)
        if cost > budget:
            layers.append(None)
            continue
        budget -= cost
        attentions = found.attentions[k][0]  # (heads, seq, x + w + 1)
        global_attentions = (np.zeros((heads, seq_len, 0)) if found.global_attentions is None
                             else found.global_attentions[k][0][:, :seq_len])  # (heads, seq, x)
        if not per_head:
            attentions, global_attentions = attentions.mean(0, keepdims=True), global_attentions.mean(0, keepdims=True)
        layers.append({"attentions": [_quantized(a) for a in attentions],
                       "global": [_quantized(g) for g in global_attentions]})
    state["mode"] = "model"
    state["model"] = {"tokens": list(found.tokens), "heads": heads if per_head else 0, "layers": layers}
    return state


def asset(name: str) -> str:
    """A file of `led_ref/explore/assets/` (the page's template, style sheet and script)."""
    return (resources.files("led_ref.explore") / "assets" / name).read_text(encoding="utf-8")


def page(state: dict, title: str = "LED attention layout explorer") -> str:
    """The whole HTML document for `state` (from `synthetic_state` or `model_state`): the template of
    `assets/explorer.html` with the style sheet, the data (JSON) and the script inlined."""
    data = json.dumps({"state": state, "colors": COLORS}, separators=(",", ":"))
    data = data.replace("</", "<\\/")  # a token such as "</s>" must not close the script element
    # the data last: a token such as "%SCRIPT%" must stay text
    return (asset("explorer.html").replace("%TITLE%", html.escape(title)).replace("%STYLE%", asset("explorer.css"))
            .replace("%SCRIPT%", asset("explorer.js")).replace("%DATA%", data))


def write_html(path: str | os.PathLike, state: dict) -> None:
    with open(os.fspath(path), "w", encoding="utf-8") as fh:
        fh.write(page(state))


def python_rules(seq_len: int, windows: Sequence[int], batch: Sequence[tuple[Sequence[int], int]], layer: int
                 ) -> dict:
    """What the page's rules must compute, from `led_ref.layout` (for the browser test): kinds, dense mask,
    compact key map and global slots of every batch row."""
    kinds = batch_kinds(seq_len, windows, batch)
    keys, _ = layout.compact_columns(kinds, windows[layer])
    positions, valid = layout.global_slots(kinds)
    return {"kinds": kinds.tolist(), "dense": layout.dense_mask(kinds, windows[layer]).astype(int).tolist(),
            "compact": keys.tolist(), "slots": np.where(valid, positions, -1).tolist()}
