"""The banded backend's general path: blocked queries against strided `unfold` slabs of the keys.

Queries are cut into blocks of `block` rows. Block `k` (rows `k*block .. k*block+block-1`) can only reach
keys `k*block - w/2 .. k*block + block - 1 + w/2`, a slab of `block + w` keys, read as one strided `unfold`
view of the (edge-padded) keys. One batched matmul per block gives `block x (block + w)` scores, masked by
the band rule in slab coordinates (`rule.band_keys`). With `block = w/4` that is 1.25x the band instead of
HF's 2x chunk overlap, and there are never `seq x seq` scores. Global keys are a few extra columns in front
of each slab (`x` = most global tokens in any row); global query rows are `rule.global_rows`, one small
dense pass over all keys.

Picture (seq 6, window 2, block 2, token 3 global): row 2's slab is keys 1..4; its band keys are 1, 2, 3;
key 3 is global, so it is dropped from the band and counted once in the global column instead.

This path serves every call: any device and dtype, attention probabilities (HF's compact layout), dropout
and gradients. Softmax runs in `rule.softmax_dtype`; probabilities are cast back to the input dtype before
the value matmul (what HF does), so fp16/bf16 accumulate like HF's kernels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .rule import LOCAL, MASKED, assemble_rows, band_keys, gather_rows, global_rows, rows_where, softmax_dtype

# Largest float32 score tensor (bytes) computed at once; bigger problems loop over groups of blocks.
_SCORE_BUDGET_BYTES = 256 * 2**20


def _slabs(t: torch.Tensor, block: int, window: int, rows: int) -> torch.Tensor:
    """(batch, heads, seq, d) -> strided view (batch, heads, blocks, d, block + window) of each block's keys."""
    half = window // 2
    padded = F.pad(t, (0, 0, half, rows - t.shape[2] + half))
    return padded.unfold(2, block + window, block)


def _with_globals(slabs: torch.Tensor, g_rows: torch.Tensor) -> torch.Tensor:
    """Slab views (b, h, blocks, d, block + window) and global rows (b, h, x, d) -> one contiguous
    (b, h, blocks, x + block + window, d): every block's global keys first, then its own slab."""
    b, h, blocks, d, _ = slabs.shape
    front = g_rows[:, :, None].expand(b, h, blocks, g_rows.shape[2], d)
    return torch.cat([front, slabs.transpose(-1, -2)], dim=-2)


def _diagonals(slab_probs: torch.Tensor, window: int) -> torch.Tensor:
    """(…, block, block + window) contiguous -> (…, block, window + 1): row r's band columns r .. r + window."""
    *lead, block, width = slab_probs.shape
    strides = list(slab_probs.stride())
    return slab_probs.as_strided((*lead, block, window + 1), (*strides[:-2], width + 1, 1))


def local_rows(query, key, value, token_kind, slots, window, block, dropout_p, training, return_probs):
    """Every row attending as a local row would: its global keys (one column per slot) and its band keys.

    -> context (batch, heads, seq, d), and with `return_probs` the compact probabilities (batch, heads, seq,
    x + window + 1) (else None): the slot columns, then the window's columns centred on the row.
    """
    positions, valid = slots
    b, heads, seq, d = query.shape
    x = positions.shape[1]
    blocks = math.ceil(seq / block)
    rows = blocks * block
    q = F.pad(query, (0, 0, 0, rows - seq)).view(b, heads, blocks, block, d)
    k_slabs = _slabs(key, block, window, rows)  # strided views, (b, h, blocks, d, block + window)
    v_slabs = _slabs(value, block, window, rows)
    # Local rows reach global keys through the *local* key/value projections (HF semantics).
    g_keys = gather_rows(key, positions)  # (b, h, x, d)
    g_values = gather_rows(value, positions)
    ok = torch.cat([valid[:, None, None, :].expand(b, blocks, block, x), band_keys(token_kind, window, block)], -1)
    acc = softmax_dtype(query.dtype)
    # Additive mask, no heads axis: finite, so rows with nothing to attend (padding rows) stay finite.
    bias = torch.zeros(ok.shape, dtype=acc, device=query.device).masked_fill_(~ok, MASKED)[:, None]

    per_block = b * heads * block * (block + window + x) * 4
    group = max(1, _SCORE_BUDGET_BYTES // max(per_block, 1))
    contexts, local_probs = [], []
    for start in range(0, blocks, group):
        part = slice(start, min(blocks, start + group))
        keys = _with_globals(k_slabs[:, :, part], g_keys)
        values = _with_globals(v_slabs[:, :, part], g_values)
        scores = torch.matmul(q[:, :, part], keys.transpose(-1, -2)).to(acc)
        probs = torch.softmax(scores.add_(bias[:, :, part]), dim=-1).to(query.dtype)
        if dropout_p and training:
            probs = F.dropout(probs, p=dropout_p)
        contexts.append(torch.matmul(probs, values))
        if return_probs:
            local_probs.append(torch.cat([probs[..., :x], _diagonals(probs[..., x:].contiguous(), window)], -1))
    context = torch.cat(contexts, dim=2).reshape(b, heads, rows, d)[:, :, :seq]
    if not return_probs:
        return context, None
    return context, torch.cat(local_probs, dim=2).reshape(b, heads, rows, x + window + 1)[:, :, :seq]


def unfold_attention(query, key, value, global_query, global_key, global_value, token_kind, slots, window: int,
                     block: int, return_probs: bool, dropout_p: float, training: bool,
                     global_context: torch.Tensor | None = None):
    """`banded_longformer_attention` on this path (inputs already checked; slots = `rule.global_slots`;
    `global_context`: the global rows if already computed, then without probabilities)."""
    context, local_probs = local_rows(query, key, value, token_kind, slots, window, block, dropout_p, training,
                                      return_probs)
    global_probs = None
    if global_context is None:
        global_context, global_probs = global_rows(global_query, global_key, global_value, token_kind, slots,
                                                   dropout_p=dropout_p, training=training)
    context = assemble_rows(context, global_context, token_kind)
    if not return_probs:
        return context
    global_attentions = None if global_probs is None else global_probs.transpose(-1, -2)
    return context, rows_where(local_probs, token_kind == LOCAL), global_attentions
