"""Exact Longformer attention in plain PyTorch that touches only the band and the global columns.

Queries are cut into blocks of `block` rows. Block `k` (rows `k*block .. k*block+block-1`) can only reach
keys `k*block - w/2 .. k*block + block - 1 + w/2`, a slab of `block + w` keys, read as one strided `unfold`
view of the (edge-padded) keys. One batched matmul per block gives `block x (block + w)` scores; a fixed
relative mask keeps the `w + 1` diagonals of the band. With `block = w/4` that is 1.25x the band instead of
HF's 2x chunk overlap, and there are never `seq x seq` scores. Global keys are a few extra columns
(`x` = most global tokens in any row); global query rows are one small dense pass over all keys.

Picture (seq 6, window 2, block 2, token 3 global): row 2's slab is keys 1..4; its band keys are 1, 2, 3;
key 3 is global, so it is dropped from the band and counted once in the global column instead.

Fast CPU path: when no probabilities, dropout or gradients are asked for (inference), float32/float64/bfloat16
inputs on CPU go through torch's fused flash-attention kernel instead: each block of queries attends to its slab of
keys (a strided view, never copied) under an additive band mask, and the kernel returns the log-sum-exp of
each row's band scores, through which the few global columns are merged into the same softmax afterwards.
No score tensor is materialized; see docs/performance.md for what it saves.

Softmax runs in float32 for fp32/fp16/bf16 inputs (float64 stays float64, unlike HF); probabilities are cast
back to the input dtype before the value matmul (what HF does), so fp16/bf16 accumulate like HF's kernels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .masks import check_kernel_inputs, gather_rows, global_slots

# Largest float32 score tensor (bytes) computed at once; bigger problems loop over groups of blocks.
_SCORE_BUDGET_BYTES = 256 * 2**20
_MASKED = torch.finfo(torch.float32).min


def softmax_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays exact; every other dtype takes its softmax in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def choose_block(window: int, seq: int) -> int:
    """Query rows per block: a quarter window (>= 32) balances masked waste against matmul size."""
    return max(1, min(max(window // 4, 32), seq))


def _band_mask(block: int, window: int, device) -> torch.Tensor:
    """(block, block + window) bool: slab column c is in the band of block row r iff r <= c <= r + window."""
    rows = torch.arange(block, device=device)[:, None]
    cols = torch.arange(block + window, device=device)[None, :]
    return (cols >= rows) & (cols <= rows + window)


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


def _local_rows(query, key, value, token_kind, positions, valid, window, block,
                dropout_p, training, return_probs):
    """Context of every query row from band + global keys (batch, heads, seq, d); and probs if asked."""
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
    half = window // 2
    # Band keys must be ordinary tokens: padding is never attended, globals are counted in their own column.
    kind = F.pad(token_kind, (half, rows - seq + half))
    key_is_local = kind.unfold(1, block + window, block) == 1  # (b, blocks, block + window)
    band_ok = _band_mask(block, window, query.device)[None, None] & key_is_local[:, :, None, :]
    ok = torch.cat([valid[:, None, None, :].expand(b, blocks, block, x), band_ok], dim=-1)
    acc = softmax_dtype(query.dtype)
    # Additive mask, no heads axis: finite, so rows with nothing to attend (padding rows) stay finite.
    bias = torch.zeros(ok.shape, dtype=acc, device=query.device).masked_fill_(~ok, _MASKED)[:, None]

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


def _diagonals(slab_probs: torch.Tensor, window: int) -> torch.Tensor:
    """(…, block, block + window) contiguous -> (…, block, window + 1): row r's band columns r .. r + window."""
    *lead, block, width = slab_probs.shape
    strides = list(slab_probs.stride())
    return slab_probs.as_strided((*lead, block, window + 1), (*strides[:-2], width + 1, 1))


def _global_rows(global_query, global_key, global_value, token_kind, positions, valid, dropout_p, training):
    """Global tokens attend to every non-padding key. -> context (b, h, x, d), probs (b, h, x, seq)."""
    gq = gather_rows(global_query, positions)
    scores = torch.matmul(gq, global_key.transpose(-1, -2)).to(softmax_dtype(gq.dtype))
    ok = (token_kind != 0)[:, None, None, :] & valid[:, None, :, None]
    probs = torch.softmax(scores.masked_fill(~ok, _MASKED), dim=-1)
    probs = probs.masked_fill(~ok, 0.0).to(global_query.dtype)
    if dropout_p and training:
        probs = F.dropout(probs, p=dropout_p)
    return torch.matmul(probs, global_value), probs


_flash_cpu = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)


# The fused kernel takes float32/float64 and bfloat16 (it accumulates bfloat16 in float32 and returns a float32
# log-sum-exp); float16 on CPU stays on the matmul path.
_FLASH_DTYPES = (torch.float32, torch.float64, torch.bfloat16)


def _flash_applies(query, key, value, return_probs, dropout_p, training) -> bool:
    """The fused CPU path serves inference: CPU, float32/float64/bfloat16, no probabilities, no dropout, no
    gradient."""
    if _flash_cpu is None or return_probs or (dropout_p and training):
        return False
    if query.device.type != "cpu" or query.dtype not in _FLASH_DTYPES:
        return False
    return not (torch.is_grad_enabled() and any(t.requires_grad for t in (query, key, value)))


def _band_bias(kind_row: torch.Tensor, block: int, window: int, rows: int, dtype) -> torch.Tensor:
    """(blocks, 1, block, block + window) additive mask of one batch row: 0 where slab column c is in the band
    of block row r (r <= c <= r + window) and holds a local token, -inf for keys outside the band, padding,
    and global keys (those are counted once, in their own columns)."""
    half = window // 2
    device = kind_row.device
    slab_kind = F.pad(kind_row, (half, rows - kind_row.shape[0] + half)).unfold(0, block + window, block)
    key_bias = torch.zeros(slab_kind.shape, dtype=dtype, device=device).masked_fill_(slab_kind != 1, -math.inf)
    band_bias = torch.zeros((block, block + window), dtype=dtype, device=device)
    band_bias.masked_fill_(~_band_mask(block, window, device), -math.inf)
    return (band_bias[None] + key_bias[:, None, :])[:, None]


def _flash_band(query, key, value, token_kind, window, block):
    """Band part of every row through the fused kernel.

    -> context (batch, seq, heads, d) of the band keys alone, and the log-sum-exp (batch, seq, heads) of the
    band scores (-inf where a row has no band key).
    """
    b, heads, seq, d = query.shape
    blocks = math.ceil(seq / block)
    rows = blocks * block
    half = window // 2
    q = query.transpose(1, 2)  # (b, seq, heads, d): free when query is a head view of (b, seq, heads * d)
    if rows != seq:
        q = F.pad(q, (0, 0, 0, 0, 0, rows - seq))
    k = F.pad(key.transpose(1, 2), (0, 0, 0, 0, half, rows - seq + half))
    v = F.pad(value.transpose(1, 2), (0, 0, 0, 0, half, rows - seq + half))
    contexts, lses = [], []
    for i in range(b):  # the slab view below is 4-d only within one batch row
        q_blocks = q[i].reshape(blocks, block, heads, d).transpose(1, 2)  # (blocks, heads, block, d)
        k_slabs = k[i].unfold(0, block + window, block).transpose(-1, -2)  # (blocks, heads, block + w, d)
        v_slabs = v[i].unfold(0, block + window, block).transpose(-1, -2)
        bias = _band_bias(token_kind[i], block, window, rows, query.dtype)
        out, lse = _flash_cpu(q_blocks, k_slabs, v_slabs, 0.0, False, attn_mask=bias, scale=1.0)
        contexts.append(out.transpose(1, 2).reshape(rows, heads, d)[:seq])
        lses.append(lse.transpose(1, 2).reshape(rows, heads)[:seq])
    return torch.stack(contexts), torch.stack(lses)


def _flash_attention(query, key, value, global_query, global_key, global_value, token_kind, window, block):
    """banded_longformer_attention's result through the fused CPU kernel (see the module docstring)."""
    positions, valid = global_slots(token_kind)
    context, band_lse = _flash_band(query, key, value, token_kind, window, block)  # (b, seq, h, d), (b, seq, h)
    if positions.shape[1]:
        # One softmax over band + global keys: rescale the band part by exp(lse_band - lse_all), add the
        # global columns' share. The merge runs in the softmax dtype (float32 for bfloat16: the x global
        # columns are cheap, and rounding their scores to bfloat16 would add error the band kernel avoids).
        acc = softmax_dtype(query.dtype)
        g_keys, g_values = gather_rows(key, positions).to(acc), gather_rows(value, positions).to(acc)
        g_scores = torch.matmul(query.to(acc), g_keys.transpose(-1, -2))  # (b, h, seq, x)
        g_scores = g_scores.masked_fill(~valid[:, None, None, :], -math.inf)
        band_lse = band_lse.to(acc).transpose(1, 2)[..., None]  # (b, h, seq, 1)
        total = torch.logaddexp(band_lse, torch.logsumexp(g_scores, dim=-1, keepdim=True))
        g_context = torch.matmul(torch.exp(g_scores - total), g_values)
        context = (context * torch.exp(band_lse - total).transpose(1, 2) + g_context.transpose(1, 2)).to(query.dtype)
        # Global rows take their own context (slot s of row b is token positions[b, s]).
        from_global, _ = _global_rows(global_query, global_key, global_value, token_kind, positions, valid,
                                      0.0, False)
        rows, slots = torch.nonzero(valid, as_tuple=True)
        context[rows, positions[rows, slots]] = from_global[rows, :, slots]
    # Padding rows are 0 (where, not multiply: a row with nothing to attend may hold NaN here).
    context = torch.where((token_kind != 0)[:, :, None, None], context, torch.zeros((), dtype=context.dtype))
    return context.transpose(1, 2)


def banded_longformer_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    global_query: torch.Tensor,
    global_key: torch.Tensor,
    global_value: torch.Tensor,
    token_kind: torch.Tensor,
    window: int,
    return_probs: bool = False,
    dropout_p: float = 0.0,
    training: bool = False,
    block: int | None = None,
):
    """Longformer self-attention context (batch, heads, seq, head_dim), zeros on padding rows.

    Meets the kernel contract (docs/contract.md) (query/global_query pre-scaled, token_kind 0/1/2). Any even window
    works, also 2 and windows wider than `seq`; `seq` need not be a multiple of the window.
    With `return_probs`, also returns HF's compact `attentions` (batch, heads, seq, x + window + 1) and
    `global_attentions` (batch, heads, seq, x) (None when no row has a global token), unused slots zero.
    `dropout_p` drops attention probabilities when `training` (HF's attention_dropout).
    """
    check_kernel_inputs(query, key, value, global_query, global_key, global_value, token_kind, window)
    b, heads, seq, d = query.shape
    block = block or choose_block(window, seq)
    if _flash_applies(query, key, value, return_probs, dropout_p, training):
        return _flash_attention(query, key, value, global_query, global_key, global_value, token_kind, window,
                                block)
    positions, valid = global_slots(token_kind)
    context, local_probs = _local_rows(
        query, key, value, token_kind, positions, valid, window, block,
        dropout_p, training, return_probs,
    )
    x = positions.shape[1]
    global_probs = None
    if x:
        g_context, global_probs = _global_rows(
            global_query, global_key, global_value, token_kind, positions, valid, dropout_p, training
        )
        # Each global row takes its slot's context: slot = how many globals precede it in the row.
        is_global = token_kind == 2
        slot = (is_global.cumsum(dim=1) - 1).clamp(min=0)
        from_global = gather_rows(g_context, slot)
        context = torch.where(is_global[:, None, :, None], from_global, context)
    context = context * (token_kind != 0)[:, None, :, None].to(context.dtype)
    if not return_probs:
        return context
    local_probs = local_probs * (token_kind == 1)[:, None, :, None].to(local_probs.dtype)
    global_attentions = None if global_probs is None else global_probs.transpose(-1, -2)
    return context, local_probs, global_attentions
