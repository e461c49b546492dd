"""The backward pass of the attention-kernel contract (docs/contract.md), written out in NumPy.

    grads = longformer_attention_backward(query, key, value, global_query, global_key, global_value,
                                          token_kind, window, grad_context)
    grad_query, grad_key, grad_value, grad_global_query, grad_global_key, grad_global_value = grads

Forward (led_ref.attention): a local row i has probabilities p_ij = softmax_j(q_i . k_j) over its keys
(window keys that are local, plus every global key), and context o_i = sum_j p_ij v_j. A global row g has
P_gj = softmax_j(gq_g . gk_j) over every non-padding key and context sum_j P_gj gv_j. Padding rows are 0.

For an upstream gradient do (batch, heads, seq, head_dim), each row r with keys K, probabilities p and
context o contributes, with ds_j = p_j (do_r . v_j - do_r . o_r) (the softmax's Jacobian):

    grad q_r  += sum_j ds_j k_j         (the row's own query)
    grad k_j  += ds_j q_r               for every key j of the row
    grad v_j  += p_j do_r

so the key and value gradients are the *transposed* band: key j collects from every local query whose
window holds it (rows j - w/2 .. j + w/2) and from every local row if j is global (the global columns);
the global projections collect from the global rows only. Queries go in chunks (as in the forward), each
chunk scoring its slab of keys; memory stays O(seq * (w + x)).
"""

from __future__ import annotations

import numpy as np

from .attention_banded import QUERY_CHUNK, check_projections, gather_positions, masked_softmax
from .layout import LOCAL, PADDING, check_token_kind, check_window, global_slots


def _softmax_backward(probs: np.ndarray, grad_probs: np.ndarray) -> np.ndarray:
    """d(loss)/d(scores) from d(loss)/d(probs) for a softmax over the last axis: p * (g - sum(p * g))."""
    return probs * (grad_probs - np.sum(probs * grad_probs, axis=-1, keepdims=True))


def _add_at_positions(target: np.ndarray, positions: np.ndarray, valid: np.ndarray, rows: np.ndarray) -> None:
    """target (batch, heads, seq, d)[b, :, positions[b, s]] += rows[b, :, s] for every valid slot (b, s)."""
    b, s = np.nonzero(valid)
    np.add.at(target, (b, slice(None), positions[b, s]), rows[b, :, s])  # (n, heads, d) both sides


def _local_chunk_backward(query, key, value, token_kind, window, positions, slot_valid, grad, grads, q0, q1):
    """Add the gradients of local rows q0..q1 into `grads` (q, k, v)."""
    grad_query, grad_key, grad_value = grads
    seq, half = query.shape[2], window // 2
    k0, k1 = max(0, q0 - half), min(seq, q1 + half)
    x = positions.shape[1]

    # The same softmax as the forward: global columns, then the slab of keys the chunk's windows reach.
    rows = np.arange(q0, q1)[:, None]
    cols = np.arange(k0, k1)[None, :]
    near = np.abs(rows - cols) <= half  # (C, span)
    slab_ok = near[None] & (token_kind[:, None, k0:k1] == LOCAL)  # global keys live in their columns
    global_ok = np.broadcast_to(slot_valid[:, None, :], (query.shape[0], q1 - q0, x))
    allowed = np.concatenate([global_ok, slab_ok], axis=-1) & (token_kind[:, q0:q1] == LOCAL)[:, :, None]

    keys = np.concatenate([gather_positions(key, positions), key[:, :, k0:k1]], axis=2)  # (b, h, x + span, d)
    values = np.concatenate([gather_positions(value, positions), value[:, :, k0:k1]], axis=2)
    q = query[:, :, q0:q1]
    probs = masked_softmax(q @ np.swapaxes(keys, -1, -2), allowed[:, None])  # (b, h, C, x + span)
    do = grad[:, :, q0:q1] * (token_kind[:, q0:q1] == LOCAL)[:, None, :, None]  # global rows: not this path

    grad_probs = do @ np.swapaxes(values, -1, -2)
    grad_scores = _softmax_backward(probs, grad_probs)
    grad_query[:, :, q0:q1] += grad_scores @ keys
    grad_keys = np.swapaxes(grad_scores, -1, -2) @ q  # (b, h, x + span, d): the transposed band
    grad_values = np.swapaxes(probs, -1, -2) @ do
    grad_key[:, :, k0:k1] += grad_keys[:, :, x:]
    grad_value[:, :, k0:k1] += grad_values[:, :, x:]
    _add_at_positions(grad_key, positions, slot_valid, grad_keys[:, :, :x])  # the global columns
    _add_at_positions(grad_value, positions, slot_valid, grad_values[:, :, :x])


def _global_rows_backward(global_query, global_key, global_value, token_kind, positions, slot_valid, grad, grads):
    """Add the gradients of the global rows into `grads` (gq, gk, gv)."""
    grad_global_query, grad_global_key, grad_global_value = grads
    queries = gather_positions(global_query, positions)  # (b, h, x, d)
    allowed = slot_valid[:, None, :, None] & (token_kind != PADDING)[:, None, None, :]
    probs = masked_softmax(queries @ np.swapaxes(global_key, -1, -2), allowed)  # (b, h, x, seq)
    do = gather_positions(grad, positions) * slot_valid[:, None, :, None]  # (b, h, x, d)

    grad_global_value += np.swapaxes(probs, -1, -2) @ do
    grad_scores = _softmax_backward(probs, do @ np.swapaxes(global_value, -1, -2))
    grad_global_key += np.swapaxes(grad_scores, -1, -2) @ queries
    _add_at_positions(grad_global_query, positions, slot_valid, grad_scores @ global_key)


def longformer_attention_backward(query, key, value, global_query, global_key, global_value, token_kind, window,
                                  grad_context):
    """Gradients of sum(context * grad_context) w.r.t. the six inputs of `longformer_attention`.

    Shapes as the forward: every input and grad_context (batch, heads, seq, head_dim); token_kind (batch, seq);
    returns six arrays of that shape (float64 for float64 inputs). seq need not be a multiple of window.
    """
    token_kind = check_token_kind(token_kind)
    window = check_window(window)
    arrays = check_projections(query, key, value, global_query, global_key, global_value, token_kind)
    grad = np.asarray(grad_context, dtype=arrays[0].dtype)
    if grad.shape != arrays[0].shape:
        raise ValueError(f"grad_context has shape {grad.shape}, expected {arrays[0].shape} like query")
    query, key, value, global_query, global_key, global_value = arrays
    positions, slot_valid = global_slots(token_kind)
    grads = [np.zeros_like(a) for a in arrays]

    for q0 in range(0, query.shape[2], QUERY_CHUNK):
        q1 = min(query.shape[2], q0 + QUERY_CHUNK)
        _local_chunk_backward(query, key, value, token_kind, window, positions, slot_valid, grad, grads[:3], q0, q1)
    if positions.shape[1]:
        _global_rows_backward(global_query, global_key, global_value, token_kind, positions, slot_valid, grad,
                              grads[3:])
    return tuple(grads)
