"""The banded backend's fast CPU inference path: each block of queries against its slab of keys through torch's
fused flash-attention kernel.

It serves calls that ask for no probabilities, dropout or gradients, with float32/float64/bfloat16 inputs on
CPU (`flash_applies`). The blocks and slabs are those of the unfold path (banded_unfold.py): each block of
queries attends its slab of keys (a strided view, never copied) under an additive band mask (`rule.band_parts`),
and the kernel returns the log-sum-exp of each row's band scores, through which the few global columns are
merged into the same softmax afterwards. No score tensor is materialized; see docs/performance.md for what it
saves. Global rows are `rule.global_rows`, as on the unfold path.

When the window covers most of the sequence (a 1,024-token source under LED's 1,024 window), one call of all
queries against all keys computes fewer scores than the slabs do (seq^2 against blocks x block x (block + w),
whose edge slabs are mostly padding) and lets the kernel use its larger query tiles: `one_call_applies` (timings
in docs/performance.md). Over the full key axis the global keys are ordinary columns, so that call takes a local
row's whole rule (`rule.longformer_local_mask`) and needs no merge. The additive masks depend only on the token
kinds and the window, so the encoder's layers share one copy: a `MaskCache` the encoder makes for each forward.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..cache_keys import tensor_key
from .rule import (
    assemble_rows_,
    band_parts,
    dense_mask,
    gather_rows,
    global_rows,
    longformer_local_mask,
    softmax_dtype,
)

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


# The one-call path is taken while seq^2 scores are at most the slabs' count and its additive mask, (batch, 1,
# seq, seq), stays under this size; the slab masks of a batch are kept for the next layers under the same size
# (a bigger batch builds each row's mask when it needs it, so its peak memory does not grow).
_MASK_BYTES = 128 * 2**20


def one_call_applies(batch: int, seq: int, window: int, block: int, dtype: torch.dtype) -> bool:
    """Whether one all-queries call computes no more scores than the slabs of `block` rows (and its mask fits)."""
    rows = -(-seq // block) * block
    mask_bytes = batch * seq * seq * torch.finfo(dtype).bits // 8
    return seq * seq <= rows * (block + window) and mask_bytes <= _MASK_BYTES


class MaskCache:
    """The additive masks of one encoder forward, shared by its layers (same token kinds, usually the same
    window). The encoder makes one per forward and hands it to every layer's backend call, so the masks die
    with the forward and two models or threads never share one.

    It holds the last mask built (a layer with another window or dtype replaces it, so at most one mask is
    alive), keyed by the token-kind tensor it came from and that tensor's version counter: another tensor or an
    in-place change rebuilds it. Token kinds made under `torch.inference_mode` have no version counter, so
    their masks are built per call and never held.
    """

    def __init__(self):
        self.entry: tuple | None = None  # (token_kind, cache_keys.tensor_key(token_kind), spec, mask)

    def get(self, token_kind: torch.Tensor, spec: tuple, build):
        """build()'s mask for (token_kind, spec), built once while both stay the same."""
        key = tensor_key(token_kind)
        if key is None:
            return build()
        if self.entry is not None:
            cached_kind, cached_key, cached_spec, mask = self.entry
            if cached_kind is token_kind and cached_key == key and cached_spec == spec:
                return mask
        mask = build()
        self.entry = (token_kind, key, spec, mask)
        return mask


def _shared_mask(mask_cache: MaskCache | None, token_kind: torch.Tensor, spec: tuple, build):
    """build() through the forward's `mask_cache`, or afresh for a call without one."""
    return build() if mask_cache is None else mask_cache.get(token_kind, spec, build)


def _unit_stride_rows(t: torch.Tensor) -> torch.Tensor:
    """`t`, or a contiguous copy where its last (head_dim) axis is not unit-stride: torch's CPU flash kernel reads
    that axis as contiguous whatever the strides say, and returns wrong numbers silently for, e.g., keys handed
    as the transpose of a (..., head_dim, seq) tensor (tests/test_torch_backends.py)."""
    return t if t.stride(-1) == 1 or t.shape[-1] <= 1 else t.contiguous()


def _additive(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """bool mask -> additive mask of `dtype`: 0 where allowed, -inf elsewhere (the fused kernel takes -inf)."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill_(~allowed, -math.inf)


def _band(query, key, value, token_kind, window, block, mask_cache):
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
    if b * blocks * block * (block + window) * query.element_size() <= _MASK_BYTES:
        biases = _shared_mask(mask_cache, token_kind, ("slabs", window, block, query.dtype),
                              lambda: [_slab_bias(token_kind[i:i + 1], window, block, query.dtype) for i in range(b)])
    else:
        biases = None
    contexts, lses = [], []
    for i in range(b):  # the slab view below is 4-d only within one batch row
        q_blocks = q[i].reshape(blocks, block, heads, d).transpose(1, 2)  # (blocks, heads, block, d)
        k_slabs = k[i].unfold(0, block + window, block).transpose(-1, -2)  # (blocks, heads, block + w, d)
        v_slabs = v[i].unfold(0, block + window, block).transpose(-1, -2)
        bias = _slab_bias(token_kind[i:i + 1], window, block, query.dtype) if biases is None else biases[i]
        out, lse = _flash_cpu(q_blocks, k_slabs, v_slabs, 0.0, False, attn_mask=bias, scale=1.0)
        contexts.append(out.transpose(1, 2).reshape(rows, heads, d)[:seq])
        lses.append(lse.transpose(1, 2).reshape(rows, heads)[:seq])
    if b == 1:  # one row: a view, not a copy of the whole context
        return contexts[0][None], lses[0][None]
    return torch.stack(contexts), torch.stack(lses)


def _slab_bias(token_kind, window, block, dtype):
    """One batch row's additive band mask in slab coordinates (blocks, 1, block, block + w), from the two
    factors of `rule.band_parts`: a broadcast add, no bool pass."""
    in_window, local = band_parts(token_kind, window, block)
    return (_additive(in_window, dtype)[None] + _additive(local[0], dtype)[:, None, :])[:, None]


def _whole_bias(token_kind, window, dtype):
    """The additive mask of every query against every key (batch, 1, seq, seq) by a local row's whole rule
    (`rule.longformer_local_mask`: in the window or a global key, never padding). Over the full key axis the
    global keys are ordinary columns, so the one call needs no global-column merge afterwards."""
    batch, seq = token_kind.shape
    allowed = dense_mask(longformer_local_mask(token_kind, window), batch, 1, seq, seq, device=token_kind.device)
    return _additive(allowed, dtype)


def _one_call_local_rows(query, key, value, token_kind, window, mask_cache):
    """Every row as a local row, in one call of all queries against all keys -> context (batch, heads, seq, d)."""
    bias = _shared_mask(mask_cache, token_kind, ("whole", window, query.dtype),
                        lambda: _whole_bias(token_kind, window, query.dtype))
    return _flash_cpu(query, key, value, 0.0, False, attn_mask=bias, scale=1.0)[0]


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
    if band_context.dtype == acc:  # the kernel's fresh output: rescaled in place
        return band_context.mul_(torch.exp(band_lse - total)).add_(g_context)
    return (band_context * torch.exp(band_lse - total) + g_context).to(query.dtype)


def flash_attention(query, key, value, global_query, global_key, global_value, token_kind, slots, window: int,
                    block: int, one_call: bool = False, global_context: torch.Tensor | None = None,
                    mask_cache: MaskCache | None = None) -> torch.Tensor:
    """`banded_longformer_attention`'s context on this path (inputs already checked; slots =
    `rule.global_slots`; `flash_applies` holds). `one_call`: all queries against all keys in one call instead of
    blocks and slabs (`one_call_applies`). `global_context`: the global rows if already computed. `mask_cache`:
    where the forward's layers share their masks (None: built for this call alone)."""
    query, key, value = (_unit_stride_rows(t) for t in (query, key, value))
    if one_call:
        context = _one_call_local_rows(query, key, value, token_kind, window, mask_cache)  # global columns included
    else:
        context, band_lse = _band(query, key, value, token_kind, window, block, mask_cache)
        context, band_lse = context.transpose(1, 2), band_lse.transpose(1, 2)  # (b, h, seq, d), (b, h, seq): views
        if slots[0].shape[1]:
            context = _merge_global_columns(context, band_lse[..., None], query, key, value, slots)
    if global_context is None:
        global_context, _ = global_rows(global_query, global_key, global_value, token_kind, slots)
    return assemble_rows_(context, global_context, token_kind, slots)
