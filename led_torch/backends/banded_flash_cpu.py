"""The banded backend's fast CPU inference path: each block of queries against its slab of keys through torch's
fused flash-attention kernel.

It serves calls that ask for no probabilities, dropout or gradients, with float32/float64/bfloat16 inputs on
CPU (`flash_applies`). The blocks and slabs are those of the unfold path (banded_unfold.py): each block of
queries attends its slab of keys (a strided view, never copied) under an additive band mask (`rule.band_parts`),
and the kernel returns the log-sum-exp of each row's band scores, through which the few global columns are
merged into the same softmax afterwards. No score tensor is materialized; see docs/performance.md for what it
saves. Global rows are `rule.global_rows`, as on the unfold path.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .rule import assemble_rows, band_parts, gather_rows, global_rows, softmax_dtype

_flash_cpu = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)

# The fused kernel takes float32/float64 and bfloat16 (it accumulates bfloat16 in float32 and returns a float32
# log-sum-exp); float16 on CPU stays on the unfold path.
FLASH_DTYPES = (torch.float32, torch.float64, torch.bfloat16)


def flash_applies(query, key, value, return_probs, dropout_p, training) -> bool:
    """The fused CPU path serves inference: CPU, float32/float64/bfloat16, no probabilities, no dropout, no
    gradient."""
    if _flash_cpu is None or return_probs or (dropout_p and training):
        return False
    if query.device.type != "cpu" or query.dtype not in FLASH_DTYPES:
        return False
    return not (torch.is_grad_enabled() and any(t.requires_grad for t in (query, key, value)))


def _additive(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """bool mask -> additive mask of `dtype`: 0 where allowed, -inf elsewhere (the fused kernel takes -inf)."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill_(~allowed, -math.inf)


def _band(query, key, value, token_kind, window, block):
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
        in_window, local = band_parts(token_kind[i:i + 1], window, block)
        # One additive mask (blocks, 1, block, block + w) from the two factors: a broadcast add, no bool pass.
        bias = (_additive(in_window, query.dtype)[None] + _additive(local[0], query.dtype)[:, None, :])[:, None]
        out, lse = _flash_cpu(q_blocks, k_slabs, v_slabs, 0.0, False, attn_mask=bias, scale=1.0)
        contexts.append(out.transpose(1, 2).reshape(rows, heads, d)[:seq])
        lses.append(lse.transpose(1, 2).reshape(rows, heads)[:seq])
    return torch.stack(contexts), torch.stack(lses)


def _merge_global_columns(band_context, band_lse, query, key, value, slots):
    """One softmax over band + global keys for every row as a local row: rescale the band part by
    exp(lse_band - lse_all) and add the global columns' share. band_context (b, h, seq, d), band_lse
    (b, h, seq, 1) -> (b, h, seq, d) in query's dtype.

    The merge runs in the softmax dtype (float32 for bfloat16: the x global columns are cheap, and rounding
    their scores to bfloat16 would add error the band kernel avoids)."""
    positions, valid = slots
    acc = softmax_dtype(query.dtype)
    g_keys, g_values = gather_rows(key, positions).to(acc), gather_rows(value, positions).to(acc)
    g_scores = torch.matmul(query.to(acc), g_keys.transpose(-1, -2))  # (b, h, seq, x)
    g_scores = g_scores.masked_fill(~valid[:, None, None, :], -math.inf)
    band_lse = band_lse.to(acc)
    total = torch.logaddexp(band_lse, torch.logsumexp(g_scores, dim=-1, keepdim=True))
    g_context = torch.matmul(torch.exp(g_scores - total), g_values)
    return (band_context * torch.exp(band_lse - total) + g_context).to(query.dtype)


def flash_attention(query, key, value, global_query, global_key, global_value, token_kind, slots, window: int,
                    block: int) -> torch.Tensor:
    """`banded_longformer_attention`'s context on this path (inputs already checked; slots =
    `rule.global_slots`; `flash_applies` holds)."""
    context, band_lse = _band(query, key, value, token_kind, window, block)  # (b, seq, h, d), (b, seq, h)
    context = context.transpose(1, 2)  # (b, h, seq, d) view
    if slots[0].shape[1]:
        context = _merge_global_columns(context, band_lse.transpose(1, 2)[..., None], query, key, value, slots)
    global_context, _ = global_rows(global_query, global_key, global_value, token_kind, slots)
    return assemble_rows(context, global_context, token_kind)
