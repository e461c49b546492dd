"""The one torch reference of the attention-kernel contract (docs/contract.md), forward and backward.

    from parity.gate.reference import reference_attention, reference_gradients
    context = reference_attention(q, k, v, gq, gk, gv, token_kind, window)            # float64 by default
    context, probs = reference_attention(..., return_probs=True)                         # dense (b, h, s, s)
    grads = reference_gradients(q, k, v, gq, gk, gv, token_kind, window, grad_context)  # 6 tensors

It is written from the definition, independently of led_ref and led_torch: a local row attends the
non-padding local keys with |i - j| <= w/2 and every global key (each once); a global row attends every
non-padding key with the global projections; a padding row is 0. Every test and the gate use it (tests
check it against led_ref's NumPy spec, a per-row loop and, for gradients, led_ref's explicit backward).

Cost: queries go in blocks of QUERY_BLOCK rows; each block scores the contiguous slab of keys its windows
reach (block + w keys) plus the x global keys, so memory is O(seq * (w + x)) and never (seq, seq) unless
dense probabilities are asked for. With gradients the blocks are checkpointed (recomputed in backward), so
autograd memory stays O(seq * (w + x)) as well. `dtype` other than float64 runs the same straightforward
algorithm in that dtype: the gate's yardstick for half precision ("what a plain implementation loses").
A float64 call without autograd (the gate's forward) runs the same blocks in place (`_local_block_in_place`,
tested equal to the plain blocks to float64 rounding): fewer passes over the scores, about half the time.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.checkpoint import checkpoint

from led_ref.io.validation import check_window

PADDING, LOCAL, GLOBAL = 0, 1, 2
QUERY_BLOCK = 64  # block x (block + w) x heads x 8 bytes of scores: 12 heads at w = 1024 take ~7 MB per block


def _tensor(x, dtype, device=None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to(dtype=dtype, device=device if device is not None else x.device)
    return torch.as_tensor(np.asarray(x), dtype=dtype, device=device)


def _global_positions(token_kind: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(positions (batch, x) long, valid (batch, x) bool): the global tokens of each row in position order,
    x = the most in any row; unused slots point at position 0 and are invalid."""
    is_global = token_kind == GLOBAL
    counts = is_global.sum(1)
    x = int(counts.max()) if counts.numel() else 0
    order = torch.sort((~is_global).to(torch.int8), dim=1, stable=True).indices[:, :x]  # globals first, in order
    valid = torch.arange(x, device=token_kind.device)[None, :] < counts[:, None]
    return torch.where(valid, order, torch.zeros_like(order)), valid


def _gather(t: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """t (batch, heads, seq, d) at positions (batch, x) -> (batch, heads, x, d)."""
    index = positions[:, None, :, None].expand(-1, t.shape[1], -1, t.shape[3])
    return torch.gather(t, 2, index)


def _softmax(scores: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis restricted to `allowed`; a row with nothing allowed is all 0 (not NaN)."""
    probs = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
    return probs.masked_fill(~allowed.any(-1, keepdim=True), 0.0)


def _local_block(q, k, v, kinds, global_keys, global_values, slot_valid, q0, q1, window):
    """Context (batch, heads, q1 - q0, d) of the local rows q0..q1 (0 on other rows)."""
    seq, half = k.shape[2], window // 2
    k0, k1 = max(0, q0 - half), min(seq, q1 + half)
    rows = torch.arange(q0, q1, device=k.device)[:, None]
    cols = torch.arange(k0, k1, device=k.device)[None, :]
    near = (rows - cols).abs() <= half  # (C, span)
    slab_ok = near[None] & (kinds[:, None, k0:k1] == LOCAL)  # global keys are counted in their own column
    global_ok = slot_valid[:, None, :].expand(-1, q1 - q0, -1)
    allowed = torch.cat([global_ok, slab_ok], dim=-1) & (kinds[:, q0:q1, None] == LOCAL)
    qb = q[:, :, q0:q1]
    scores = torch.cat([qb @ global_keys.transpose(-1, -2), qb @ k[:, :, k0:k1].transpose(-1, -2)], dim=-1)
    probs = _softmax(scores, allowed[:, None])
    x = global_keys.shape[2]
    return probs[..., :x] @ global_values + probs[..., x:] @ v[:, :, k0:k1]


# exp(s) of a float64 score |s| <= this neither overflows nor leaves the normal range, so below it the softmax
# needs no max subtracted (the result is the same up to float64 rounding).
EXP_SAFE = 700.0


def _local_block_in_place(q, k, v_ones, kinds, global_keys, global_values_ones, slot_valid, q0, q1, window,
                          bands, shift):
    """`_local_block` for inference, the same sums in another order. The slab and global scores stay two tensors
    (no concatenation) and are masked and exponentiated in place; the values carry a column of ones, so the
    product that mixes them also sums the weights, and the context is divided by that sum afterwards. `shift`:
    subtract each row's maximum first (False when every score is within EXP_SAFE). A row with nothing allowed
    is 0. `bands` caches the window pattern by block geometry (interior blocks share one)."""
    seq, half = k.shape[2], window // 2
    k0, k1 = max(0, q0 - half), min(seq, q1 + half)
    geometry = (q0 - k0, q1 - q0, k1 - k0)
    near = bands.get(geometry)
    if near is None:
        rows = torch.arange(q0, q1, device=k.device)[:, None]
        cols = torch.arange(k0, k1, device=k.device)[None, :]
        near = bands[geometry] = (rows - cols).abs() <= half  # (C, span)
    row_local = kinds[:, q0:q1, None] == LOCAL  # (batch, C, 1)
    slab_ok = near[None] & (kinds[:, None, k0:k1] == LOCAL) & row_local
    global_ok = slot_valid[:, None, :] & row_local  # (batch, C, x)
    qb = q[:, :, q0:q1]
    scores = (qb @ k[:, :, k0:k1].transpose(-1, -2)).masked_fill_(~slab_ok[:, None], float("-inf"))
    g_scores = (qb @ global_keys.transpose(-1, -2)).masked_fill_(~global_ok[:, None], float("-inf"))
    if shift:
        top = scores.amax(-1, keepdim=True)
        if g_scores.shape[-1]:
            top = torch.maximum(top, g_scores.amax(-1, keepdim=True))
        top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))  # rows with nothing allowed
        scores.sub_(top), g_scores.sub_(top)
    mixed = scores.exp_() @ v_ones[:, :, k0:k1] + g_scores.exp_() @ global_values_ones  # (b, h, C, d + 1)
    total = mixed[..., -1:]
    return torch.where(total > 0, mixed[..., :-1] / total, torch.zeros_like(total))


def _with_ones(t: torch.Tensor) -> torch.Tensor:
    """(..., d) -> (..., d + 1): a last column of ones."""
    return torch.cat([t, torch.ones_like(t[..., :1])], dim=-1)


def reference_attention(query, key, value, global_query, global_key, global_value, token_kind, window,
                        head_mask=None, return_probs=False, dtype=torch.float64, grad=False):
    """The contract: context (batch, heads, seq, head_dim) in `dtype` (float64 by default).

    Inputs: numpy arrays or torch tensors (batch, heads, seq, head_dim), query and global_query pre-scaled;
    token_kind (batch, seq) of 0/1/2; window even >= 2 (seq need not be a multiple of it here).
    head_mask (heads,) multiplies every probability. return_probs: also the dense probabilities
    (batch, heads, seq, seq) of every row (local rows over their keys, global rows over theirs; O(seq^2),
    for small test cases). grad: keep the autograd graph when the float inputs require grad (tensors only).
    """
    device = query.device if isinstance(query, torch.Tensor) else None
    inputs = (query, key, value, global_query, global_key, global_value)
    if grad:
        tensors = [t.to(dtype) for t in inputs]
    else:
        tensors = [_tensor(t, dtype, device) for t in inputs]
    q, k, v, gq, gk, gv = tensors
    kinds = _tensor(token_kind, torch.long, q.device)
    if q.ndim != 4 or any(t.shape != q.shape for t in tensors) or kinds.shape != (q.shape[0], q.shape[2]):
        raise ValueError(f"reference_attention: inputs must be (batch, heads, seq, d) alike and token_kind "
                         f"(batch, seq); got {[tuple(t.shape) for t in tensors]} and {tuple(kinds.shape)}")
    window = check_window(window)
    mask = None if head_mask is None else _tensor(head_mask, dtype, q.device)[None, :, None, None]
    if return_probs:
        return _dense(q, k, v, gq, gk, gv, kinds, window, mask)

    seq = q.shape[2]
    positions, slot_valid = _global_positions(kinds)
    global_keys, global_values = _gather(k, positions), _gather(v, positions)
    if mask is not None:  # scaling the probabilities = scaling the values they weigh
        v, global_values, gv = v * mask, global_values * mask, gv * mask
    recording = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    if dtype == torch.float64 and not recording:
        # The in-place form of the same blocks, written straight into the result (tested equal to float64
        # rounding); other dtypes keep the plain blocks: their rounding is the gate's half-precision yardstick.
        bound = q.norm(dim=-1).amax() * k.norm(dim=-1).amax() if q.numel() else 0.0  # >= every |score|
        shift = not bound <= EXP_SAFE
        v_ones, global_values_ones = _with_ones(v), _with_ones(global_values)
        context, bands = torch.empty_like(q), {}
        for q0 in range(0, seq, QUERY_BLOCK):
            q1 = min(seq, q0 + QUERY_BLOCK)
            context[:, :, q0:q1] = _local_block_in_place(q, k, v_ones, kinds, global_keys, global_values_ones,
                                                         slot_valid, q0, q1, window, bands, shift)
    else:
        blocks = []
        for q0 in range(0, seq, QUERY_BLOCK):
            q1 = min(seq, q0 + QUERY_BLOCK)
            args = (q, k, v, kinds, global_keys, global_values, slot_valid, q0, q1, window)
            blocks.append(checkpoint(_local_block, *args, use_reentrant=False) if recording else _local_block(*args))
        context = torch.cat(blocks, dim=2) if blocks else torch.zeros_like(q)

    if positions.shape[1]:  # global rows: their slot's query against every non-padding key
        queries = _gather(gq, positions)
        allowed = slot_valid[:, None, :, None] & (kinds != PADDING)[:, None, None, :]
        global_context = _softmax(queries @ gk.transpose(-1, -2), allowed) @ gv  # (batch, heads, x, d)
        # Each global position takes its slot's row; an out-of-place scatter keeps autograd simple.
        slot_of = torch.cumsum((kinds == GLOBAL).long(), 1) - 1  # (batch, seq): slot of each global token
        picked = _gather(global_context, slot_of.clamp(min=0))
        context = torch.where((kinds == GLOBAL)[:, None, :, None], picked, context)
    return context


def _dense(q, k, v, gq, gk, gv, kinds, window, mask):
    """(context, dense probabilities (batch, heads, seq, seq)) by one (seq, seq) mask per row kind."""
    seq = q.shape[2]
    pos = torch.arange(seq, device=q.device)
    near = (pos[:, None] - pos[None, :]).abs() <= window // 2
    key = kinds[:, None, None, :]
    row = kinds[:, None, :, None]
    local_ok = ((near & (key == LOCAL)) | (key == GLOBAL)) & (row == LOCAL)
    global_ok = (key != PADDING) & (row == GLOBAL)
    p_local = _softmax(q @ k.transpose(-1, -2), local_ok.expand(-1, -1, seq, -1))
    p_global = _softmax(gq @ gk.transpose(-1, -2), global_ok.expand(-1, -1, seq, -1))
    if mask is not None:
        p_local, p_global = p_local * mask, p_global * mask
    return p_local @ v + p_global @ gv, p_local + p_global


def reference_gradients(query, key, value, global_query, global_key, global_value, token_kind, window,
                        grad_context, dtype=torch.float64) -> tuple[torch.Tensor, ...]:
    """Gradients (in `dtype`) of sum(context * grad_context) w.r.t. the six float inputs, by autograd."""
    leaves = [_tensor(t, dtype).requires_grad_(True) for t in
              (query, key, value, global_query, global_key, global_value)]
    with torch.enable_grad():
        context = reference_attention(*leaves, token_kind, window, dtype=dtype, grad=True)
        grads = torch.autograd.grad(context, leaves, _tensor(grad_context, dtype, context.device),
                                    allow_unused=True)
    return tuple(torch.zeros_like(t) if g is None else g for t, g in zip(leaves, grads, strict=True))
