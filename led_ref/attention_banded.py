"""The scalable path of LED's encoder attention: `attention.longformer_attention_definition` computed in
O(seq x (w + x)) memory, never building a (seq, seq) array. tests/test_attention.py holds it equal to the
definition.

Local rows go in chunks of `QUERY_CHUNK` queries. The queries q0..q1 of a chunk reach only the keys
q0 - w/2 .. q1 + w/2 (the chunk's "slab"): the chunk scores its slab with one matmul, keeps the cells inside
each query's window by the index map `layout.window_key_positions` (which also places them in HF's compact
layout), and softmaxes them jointly with the x global keys. Global rows are one small dense pass: the x
global queries against every key.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layout import LOCAL, PADDING, UNUSED, check_token_kind, check_window, global_slots, window_key_positions

# Queries per chunk of the local pass. A chunk scores a (chunk, chunk + w) slab of which only the w + 1 band
# cells count, so smaller chunks waste less; 256 keeps the slabs small enough for NumPy to reuse their memory
# and the matmuls large enough for BLAS.
QUERY_CHUNK = 256


# ------------------------------------------------------------------------------------------ pieces
def masked_softmax(scores: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Softmax over the last axis restricted to `allowed` cells, computed in `scores.dtype`.

    Disallowed cells get probability 0; a row with no allowed cell is all 0 (a padding row), never NaN.
    """
    exp = np.where(allowed, scores, -np.inf).astype(scores.dtype, copy=False)  # the one allocation; then in place
    top = exp.max(axis=-1, keepdims=True)
    exp -= np.where(np.isfinite(top), top, 0)
    np.exp(exp, out=exp)  # disallowed cells are exp(-inf) = 0 already
    total = exp.sum(axis=-1, keepdims=True)
    exp /= np.where(total > 0, total, 1)  # an all-disallowed row is all 0 already; keep it 0, not NaN
    return exp


def gather_positions(x: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """x (batch, heads, seq, d) at positions (batch, n) -> (batch, heads, n, d); UNUSED reads position 0."""
    index = np.maximum(positions, 0)[:, None, :, None]
    return np.take_along_axis(x, index, axis=2)


def gather_band(block: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """block (batch, heads, C, span), cols (C, w + 1) -> (batch, heads, C, w + 1): block[..., r, cols[r, c]],
    0 where cols is UNUSED (a window cell outside the sequence)."""
    index = np.broadcast_to(np.maximum(cols, 0), block.shape[:2] + cols.shape)
    return np.where(cols == UNUSED, 0, np.take_along_axis(block, index, axis=-1)).astype(block.dtype, copy=False)


def scatter_band(band: np.ndarray, cols: np.ndarray, width: int) -> np.ndarray:
    """The inverse of `gather_band`: (batch, C, w + 1) -> zeros (batch, C, width) with the band written at
    `cols`; UNUSED cells are dropped (columns of one row are otherwise distinct)."""
    spread = np.zeros(band.shape[:2] + (width + 1,), band.dtype)  # extra "nowhere" column for UNUSED cells
    np.put_along_axis(spread, np.broadcast_to(np.where(cols == UNUSED, width, cols), band.shape), band, axis=-1)
    return spread[..., :width]


# ------------------------------------------------------------------------------------------ local rows
@dataclass(frozen=True, eq=False)
class LocalPass:
    """What every query chunk of one call's local pass reads (x = the most global tokens in any row).

    query, key, value: (batch, heads, seq, d). token_kind: (batch, seq). window: w.
    global_keys, global_values: (batch, heads, x, d), key and value at the global slots; slot_valid (batch, x).
    head_mask: (heads,) or None. bands: (seq, w + 1), `window_key_positions` of the whole sequence.
    keep_probs: whether chunks also return their compact probabilities.
    """

    query: np.ndarray
    key: np.ndarray
    value: np.ndarray
    token_kind: np.ndarray
    window: int
    global_keys: np.ndarray
    global_values: np.ndarray
    slot_valid: np.ndarray
    head_mask: np.ndarray | None
    bands: np.ndarray
    keep_probs: bool


def local_chunk(inputs: LocalPass, q0: int, q1: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Context (batch, heads, C, d) of local queries q0..q1 (C = q1 - q0) and their compact probabilities
    (batch, heads, C, x + w + 1), None unless `inputs.keep_probs`.

    Scores against the slab (keys q0 - w/2 .. q1 + w/2) are one matmul; the index map, shifted into the slab,
    says which slab cells are window cells: it is scattered into a (batch, C, span) mask shared by all heads,
    the softmax runs over the global columns and the masked slab, and the context is probs_slab @ value_slab.
    Cells outside the band are exp(-inf) = 0 exactly, so this equals the softmax over the w + 1 window cells.
    """
    p = inputs
    seq, half, x = p.query.shape[2], p.window // 2, p.global_keys.shape[2]
    k0, k1 = max(0, q0 - half), min(seq, q1 + half)
    band = p.bands[q0:q1]  # (C, w + 1) absolute keys, UNUSED outside the sequence
    cols = np.where(band == UNUSED, UNUSED, band - k0)  # (C, w + 1) slab column of each window cell

    # Window keys count only when local (padding is never attended, global keys have their own columns).
    band_kind = np.where(band == UNUSED, PADDING, p.token_kind[:, np.maximum(band, 0)])  # (batch, C, w + 1)
    slab_ok = scatter_band(band_kind == LOCAL, cols, k1 - k0)  # (batch, C, span)
    global_ok = np.broadcast_to(p.slot_valid[:, None, :], (p.query.shape[0], q1 - q0, x))
    allowed = np.concatenate([global_ok, slab_ok], axis=-1) & (p.token_kind[:, q0:q1] == LOCAL)[:, :, None]

    q = p.query[:, :, q0:q1]
    slab_scores = q @ np.swapaxes(p.key[:, :, k0:k1], -1, -2)  # (batch, heads, C, span)
    global_scores = q @ np.swapaxes(p.global_keys, -1, -2)  # (batch, heads, C, x)
    probs = masked_softmax(np.concatenate([global_scores, slab_scores], axis=-1), allowed[:, None])
    if p.head_mask is not None:
        probs *= p.head_mask[None, :, None, None]

    context = probs[..., :x] @ p.global_values + probs[..., x:] @ p.value[:, :, k0:k1]
    if not p.keep_probs:
        return context, None
    return context, np.concatenate([probs[..., :x], gather_band(probs[..., x:], cols)], axis=-1)


def local_rows(query, key, value, token_kind, window, positions, slot_valid, head_mask, keep_probs):
    """Context of the local rows and their compact probabilities (batch, heads, seq, x + w + 1) or None.

    Row i of kind LOCAL softmaxes jointly over the x global keys (columns 0..x-1, key/value of the global
    tokens) and the w + 1 window keys (columns x.., `window_key_positions`), window cells holding padding or
    global keys excluded. Other rows get probability 0 and context 0. Queries go in chunks of
    QUERY_CHUNK, so memory stays O(chunk * (chunk + w + x)) beyond the outputs.
    """
    batch, heads, seq, _ = query.shape
    x = positions.shape[1]
    inputs = LocalPass(
        query, key, value, token_kind, window,
        global_keys=gather_positions(key, positions),
        global_values=gather_positions(value, positions),
        slot_valid=slot_valid, head_mask=head_mask,
        bands=window_key_positions(seq, window),  # once per call: rebuilding it per chunk is O(seq^2 w / chunk)
        keep_probs=keep_probs,
    )
    context = np.zeros_like(query)
    probs_all = np.zeros((batch, heads, seq, x + window + 1), query.dtype) if keep_probs else None
    for q0 in range(0, seq, QUERY_CHUNK):
        q1 = min(seq, q0 + QUERY_CHUNK)
        context[:, :, q0:q1], probs = local_chunk(inputs, q0, q1)
        if keep_probs:
            probs_all[:, :, q0:q1] = probs
    return context, probs_all


# ------------------------------------------------------------------------------------------ global rows
def global_rows(global_query, global_key, global_value, token_kind, positions, slot_valid, head_mask):
    """Context (batch, heads, x, d) and probabilities (batch, heads, x, seq) of the global tokens.

    Global token s (slot s of `global_slots`) softmaxes over every non-padding key with the global
    projections. Unused slots are all 0 (HF leaves garbage there).
    """
    queries = gather_positions(global_query, positions)  # (batch, heads, x, d)
    scores = queries @ np.swapaxes(global_key, -1, -2)  # (batch, heads, x, seq)
    allowed = slot_valid[:, None, :, None] & (token_kind != PADDING)[:, None, None, :]
    probs = masked_softmax(scores, allowed)
    if head_mask is not None:
        probs = probs * head_mask[None, :, None, None]
    return probs @ global_value, probs


# ------------------------------------------------------------------------------------------ the whole pass
def check_projections(query, key, value, global_query, global_key, global_value, token_kind) -> list[np.ndarray]:
    """The six projections as float arrays of one shape (batch, heads, seq, head_dim) and one dtype, matching
    `token_kind` (batch, seq); a ValueError/TypeError naming the argument otherwise."""
    names = ("query", "key", "value", "global_query", "global_key", "global_value")
    arrays = [np.asarray(a) for a in (query, key, value, global_query, global_key, global_value)]
    shape = arrays[0].shape
    if len(shape) != 4:
        raise ValueError(f"query must be (batch, heads, seq, head_dim), got shape {shape}")
    for name, a in zip(names, arrays, strict=True):
        if a.shape != shape:
            raise ValueError(f"{name} has shape {a.shape}, expected {shape} like query")
        if a.dtype.kind != "f":
            raise TypeError(f"{name} must be a float array, got dtype {a.dtype}")
    if token_kind.shape != (shape[0], shape[2]):
        raise ValueError(f"token_kind must be (batch, seq) = {(shape[0], shape[2])}, got {token_kind.shape}")
    dtype = np.result_type(*arrays)
    return [a.astype(dtype, copy=False) for a in arrays]


def banded_attention(query, key, value, global_query, global_key, global_value, token_kind, window,
                     head_mask=None, return_probs=False):
    """The scalable path for any seq: `attention.longformer_attention` without its `seq % window == 0` rule.

    This is the general function; `longformer_attention` is the contract's entry point, which adds that rule.
    LED needs the general one because it pads to a multiple of the largest window only, so a layer with a
    smaller window may not divide the padded length. Arguments and results as `longformer_attention`.
    """
    token_kind = check_token_kind(token_kind)
    window = check_window(window)
    arrays = check_projections(query, key, value, global_query, global_key, global_value, token_kind)
    query, key, value, global_query, global_key, global_value = arrays
    heads = query.shape[1]
    if head_mask is not None:
        head_mask = np.asarray(head_mask)
        if head_mask.shape != (heads,):
            raise ValueError(f"head_mask must have shape (heads,) = ({heads},), got {head_mask.shape}")
        head_mask = head_mask.astype(query.dtype)

    positions, slot_valid = global_slots(token_kind)
    context, attentions = local_rows(
        query, key, value, token_kind, window, positions, slot_valid, head_mask, keep_probs=return_probs
    )
    global_context, global_probs = global_rows(
        global_query, global_key, global_value, token_kind, positions, slot_valid, head_mask
    )
    # A global token's output replaces its (zero) local one.
    b, s = np.nonzero(slot_valid)
    context[b, :, positions[b, s]] = global_context[b, :, s]
    if not return_probs:
        return context
    return context, attentions, np.swapaxes(global_probs, -1, -2)
