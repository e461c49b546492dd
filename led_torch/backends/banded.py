"""The `banded` backend: exact Longformer attention in plain PyTorch that touches only the band and the global
columns, on any device and dtype. It has two paths over the same blocks of queries and slabs of keys:

- banded_unfold.py, the general path: batched matmuls over strided `unfold` views of the keys; returns HF's
  compact probabilities, applies attention dropout and trains;
- banded_flash_cpu.py, the fast CPU inference path: the same blocks through torch's fused flash-attention
  kernel (float32/float64/bfloat16 on CPU, no probabilities, dropout or gradients).

Both take the Longformer rule (token kinds, band keys, global slots, the global-row pass, rows by kind) from
rule.py, as every backend does.
"""

from __future__ import annotations

import torch

from .banded_flash_cpu import MaskCache, flash_applies, flash_attention, one_call_applies
from .banded_unfold import unfold_attention
from .rule import check_kernel_inputs, global_slots


def choose_block(window: int, seq: int) -> int:
    """Query rows per block: a quarter window (>= 32) balances masked waste against matmul size."""
    return max(1, min(max(window // 4, 32), seq))


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
    global_context: torch.Tensor | None = None,
    mask_cache: MaskCache | None = None,
):
    """Longformer self-attention context (batch, heads, seq, head_dim), zeros on padding rows.

    Meets the kernel contract (docs/contract.md) (query/global_query pre-scaled, token_kind of rule.PADDING /
    LOCAL / GLOBAL). Any even window works, also 2 and windows wider than `seq`; `seq` need not be a multiple of
    the window. With `return_probs`, also returns HF's compact `attentions` (batch, heads, seq, x + window + 1)
    and `global_attentions` (batch, heads, seq, x) (None when no row has a global token), unused slots zero.
    `dropout_p` drops attention probabilities when `training` (HF's attention_dropout). `block`: query rows per
    block (None: `choose_block`, or on the CPU flash path one call for all rows where that computes fewer scores).
    `global_context`: the global rows already computed, (batch, heads, x, head_dim) in slot order (the encoder
    passes `rule.global_rows_from_states` when few tokens are global); global_key/global_value are then not read.
    Not with `return_probs` (the global probabilities come from the global-row pass). `mask_cache`: a
    `MaskCache` through which the encoder's layers share the CPU inference path's masks within one forward
    (None: each call builds its own).
    """
    check_kernel_inputs(query, key, value, global_query, global_key, global_value, token_kind, window)
    if global_context is not None and return_probs:
        raise ValueError("global_context cannot be combined with return_probs: the global probabilities come from "
                         "the global-row pass")
    chosen = block or choose_block(window, query.shape[2])
    slots = global_slots(token_kind)
    if flash_applies(query, key, value, return_probs, dropout_p, training):
        # An explicit `block` keeps the blocks; the automatic choice takes one call where that is cheaper.
        one_call = block is None and one_call_applies(query.shape[0], query.shape[2], window, chosen, query.dtype)
        return flash_attention(query, key, value, global_query, global_key, global_value, token_kind, slots, window,
                               chosen, one_call, global_context, mask_cache)
    return unfold_attention(query, key, value, global_query, global_key, global_value, token_kind, slots, window,
                            chosen, return_probs, dropout_p, training, global_context)
