"""`--from-model`: a real model's encoder attentions, read from HF's compact arrays.

Dense (heads, seq, seq) views (`dense_layer`) up to MAX_MODEL_TOKENS tokens; beyond, the rows described are
scattered straight from the compact arrays (`dense_rows`) and heat maps are block maxima (`block_heat`), never
O(seq^2). `roundtrip_error` checks to_compact(to_dense(x)) == x on the model's own attentions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .. import layout
from .blocks import block_kinds, block_stats
from .compact import global_positions_of
from .examples import KIND_NAMES, MAX_EXPLORER_SEQ_LEN, example_masks

# --from-model holds full (heads, seq, seq) dense views up to this many tokens; beyond, it reads the rows it
# describes straight from the compact arrays and draws heat maps of blocks (`block_heat`), never O(seq^2).
MAX_MODEL_TOKENS = 1024
# The exact round trip to_compact(to_dense(x)) == x builds one head's (seq, seq) at a time: up to this length.
MAX_ROUNDTRIP_TOKENS = 4096


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
