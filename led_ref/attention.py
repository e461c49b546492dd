"""LED's encoder self-attention (Longformer): sliding window + global tokens, in plain numpy.

`longformer_attention` is the kernel contract of the project (docs/contract.md): it takes the six projected
tensors and the token kinds and returns the context, and optionally the probabilities in HF's compact
layout (`led_ref.layout`). `encoder_self_attention` wraps it with the seven linear projections of
`self_attn.*`, exactly as an HF encoder layer calls its attention block.

Memory is O(seq * (w + x)): queries go chunk by chunk, each scoring the contiguous slab of keys its
windows can reach with one matmul; the explicit index map `window_key_positions` decides which slab cells
are window cells (and where they go in HF's compact layout). No (seq, seq) array is ever built.
"""

from __future__ import annotations

import numpy as np

from .functional import linear, merge_heads, split_heads
from .layout import LOCAL, PADDING, UNUSED, check_token_kind, check_window, global_slots, window_key_positions

# Queries per chunk of the local pass: a chunk scores its (chunk, chunk + w) key slab, of which the w + 1
# band cells are used, so smaller chunks waste less; 256 keeps a 12-head float64 slab of LED's w = 1024
# under 32 MB (numpy then reuses freed memory instead of page-faulting fresh) with BLAS-sized matmuls.
QUERY_CHUNK = 256

PROJECTIONS = ("query", "key", "value", "query_global", "key_global", "value_global")
PARAM_NAMES = tuple(f"longformer_self_attn.{p}.{t}" for p in PROJECTIONS for t in ("weight", "bias")) + (
    "output.weight", "output.bias",
)


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


def local_chunk(query, key, value, token_kind, window, global_keys, global_values, slot_valid, head_mask, q0, q1,
                band=None, keep_probs=True):
    """Context (batch, heads, C, d) and compact probabilities (batch, heads, C, x + w + 1) of queries q0..q1
    (None unless keep_probs).

    The chunk only needs keys q0 - w/2 .. q1 + w/2 (its `span`, the "slab"). Scores against the slab are one
    matmul; the index map `window_key_positions`, shifted into the slab, says which slab cells are window
    cells: it is scattered into a (batch, C, span) mask shared by all heads, the softmax runs over the global
    columns and the masked slab, and the context is probs_slab @ value_slab, one more matmul. Cells outside
    the band are exp(-inf) = 0 exactly, so this equals the softmax over the w + 1 window cells.
    """
    seq, half, x = query.shape[2], window // 2, global_keys.shape[2]
    k0, k1 = max(0, q0 - half), min(seq, q1 + half)
    span = k1 - k0
    if band is None:  # rows q0..q1 of the index map (local_rows builds the map once per layer and passes them)
        band = window_key_positions(seq, window)[q0:q1]  # (C, w + 1) absolute keys, UNUSED outside
    cols = np.where(band == UNUSED, UNUSED, band - k0)  # (C, w + 1) slab column of each window cell
    q = query[:, :, q0:q1]

    # Window keys count only when local (padding is never attended, global keys have their own columns).
    band_kind = np.where(band == UNUSED, PADDING, token_kind[:, np.maximum(band, 0)])  # (batch, C, w + 1)
    slab_ok = scatter_band(band_kind == LOCAL, cols, span)  # (batch, C, span)
    global_ok = np.broadcast_to(slot_valid[:, None, :], (query.shape[0], q1 - q0, x))
    allowed = np.concatenate([global_ok, slab_ok], axis=-1) & (token_kind[:, q0:q1] == LOCAL)[:, :, None]

    slab_scores = q @ np.swapaxes(key[:, :, k0:k1], -1, -2)  # (batch, heads, C, span)
    global_scores = q @ np.swapaxes(global_keys, -1, -2)  # (batch, heads, C, x)
    probs = masked_softmax(np.concatenate([global_scores, slab_scores], axis=-1), allowed[:, None])
    if head_mask is not None:
        probs *= head_mask[None, :, None, None]

    context = probs[..., :x] @ global_values + probs[..., x:] @ value[:, :, k0:k1]
    if not keep_probs:
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
    global_keys = gather_positions(key, positions)  # (batch, heads, x, d)
    global_values = gather_positions(value, positions)
    context = np.zeros_like(query)
    probs_all = np.zeros((batch, heads, seq, x + window + 1), query.dtype) if keep_probs else None
    chunk = QUERY_CHUNK
    bands = window_key_positions(seq, window)  # once per layer: rebuilding it per chunk is O(seq^2 w / chunk)
    for q0 in range(0, seq, chunk):
        q1 = min(seq, q0 + chunk)
        context[:, :, q0:q1], probs = local_chunk(
            query, key, value, token_kind, window, global_keys, global_values, slot_valid, head_mask, q0, q1,
            bands[q0:q1], keep_probs,
        )
        if keep_probs:
            probs_all[:, :, q0:q1] = probs
    return context, probs_all


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


def banded_attention(query, key, value, global_query, global_key, global_value, token_kind, window,
                     head_mask=None, return_probs=False):
    """`longformer_attention` without the `seq % window == 0` requirement (per-layer windows in LED may
    not divide the padded length: the caller pads to a multiple of the largest window only)."""
    token_kind = check_token_kind(token_kind)
    window = check_window(window)
    arrays = _check_projections(query, key, value, global_query, global_key, global_value, token_kind)
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


def _check_projections(query, key, value, global_query, global_key, global_value, token_kind):
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


# ------------------------------------------------------------------------------------------ public API
def longformer_attention(query, key, value, global_query, global_key, global_value, token_kind, window,
                         head_mask=None, return_probs=False):
    """The attention-kernel contract (docs/contract.md): Longformer context before the output projection.

    query, key, value: (batch, heads, seq, head_dim) local projections, query already scaled by
        head_dim**-0.5. global_query, global_key, global_value: the global projections of every token
        (global_query scaled too; only its rows at global tokens are read).
    token_kind: int (batch, seq), 0 padding / 1 local / 2 global (`layout.token_kinds`).
    window: even >= 2; seq must be a multiple of it.
    head_mask: (heads,) multiplies the probabilities of local and global rows (also the returned ones).
    Returns context (batch, heads, seq, head_dim), zero on padding rows; with return_probs also
    attentions (batch, heads, seq, x + w + 1) and global_attentions (batch, heads, seq, x) in HF's compact
    layout (`layout.compact_columns`), unused global slots 0.
    """
    window = check_window(window)
    seq = np.shape(query)[2] if np.ndim(query) == 4 else None
    if seq is not None and seq % window:
        raise ValueError(f"seq={seq} must be a multiple of window={window} (pad with layout.pad_to_window)")
    return banded_attention(query, key, value, global_query, global_key, global_value, token_kind, window,
                            head_mask=head_mask, return_probs=return_probs)


def encoder_self_attention(hidden, params, token_kind, window, num_heads, layer_head_mask=None,
                           output_attentions=False):
    """One encoder layer's `self_attn` block: projections, Longformer attention, output projection.

    hidden: (batch, seq, d_model) with seq already padded (to a multiple of the largest window; it need
        not be a multiple of this layer's `window`).
    params: HF names relative to `self_attn.` (`PARAM_NAMES`), weights (out, in).
    token_kind: (batch, seq) 0/1/2. layer_head_mask: (num_heads,) or None.
    Returns (output (batch, seq, d_model), attentions, global_attentions): the probabilities as in
    `longformer_attention` when output_attentions, else None; global_attentions is also None when the
    batch has no global token (as HF's encoder). Padding rows output the output-projection bias.
    """
    hidden = np.asarray(hidden)
    if hidden.ndim != 3:
        raise ValueError(f"hidden must be (batch, seq, d_model), got shape {hidden.shape}")
    missing = [name for name in PARAM_NAMES if name not in params]
    if missing:
        raise ValueError(f"params is missing {missing} (names relative to 'self_attn.')")
    d_model = hidden.shape[2]
    if isinstance(num_heads, bool) or not isinstance(num_heads, (int, np.integer)) or num_heads < 1 \
            or d_model % num_heads:
        raise ValueError(f"num_heads must be a positive divisor of d_model={d_model}, got {num_heads!r}")
    token_kind = check_token_kind(token_kind)
    p = {name: np.asarray(params[name]) for name in PARAM_NAMES}
    scale = (d_model // num_heads) ** -0.5

    def project(name: str, x: np.ndarray) -> np.ndarray:
        return split_heads(linear(x, p, f"longformer_self_attn.{name}"), num_heads)

    query = project("query", hidden) * scale
    key, value = project("key", hidden), project("value", hidden)
    positions, slot_valid = global_slots(token_kind)
    has_global = positions.shape[1] > 0
    if has_global:
        # Only global tokens ever read global_query; every token is a key/value of the global rows.
        global_query = np.zeros_like(query)
        b, s = np.nonzero(slot_valid)
        global_query[b, :, positions[b, s]] = project("query_global", hidden[b, positions[b, s]][:, None])[:, :, 0]
        global_query *= scale
        global_key, global_value = project("key_global", hidden), project("value_global", hidden)
    else:
        global_query, global_key, global_value = query, key, value  # never read without global tokens

    result = banded_attention(query, key, value, global_query, global_key, global_value, token_kind, window,
                              head_mask=layer_head_mask, return_probs=output_attentions)
    context, attentions, global_attentions = result if output_attentions else (result, None, None)
    output = linear(merge_heads(context), p, "output")
    return output, attentions, (global_attentions if has_global else None)
