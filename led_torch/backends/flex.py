"""Longformer attention on PyTorch FlexAttention: one block-sparse pass for the local rows, one dense pass
for the few global rows.

Local rows: `flex_attention(query, key, value, block_mask)` with mask_mod
`rule.longformer_local_mask(token_kind, window)` ("window or global key, not padding"), per batch row.
The BlockMask is built from tile-level facts (`longformer_block_mask`: band tiles plus tiles holding a
global token), so flex skips every other key tile and nothing of size seq x seq is materialised.
Global rows: `rule.global_rows` (x = most global tokens in any row: every non-padding key, the global
projections, float32 matmuls, float64 for float64 input) replace their local result (`rule.assemble_rows`,
which also zeroes padding rows).

Compiled vs eager: `compiled=True` runs `torch.compile(flex_attention)` (inductor's C++ kernel on CPU,
Triton on CUDA); compiling costs ~20 s per new shape on CPU, so hypothesis sweeps pass `compiled=False` or
set LED_FLEX_COMPILE=0. Eager flex builds the dense (seq, seq) scores: exact but O(seq^2) memory.
float64 always runs eager (inductor's CPU flex kernel takes only float32/float16/bfloat16). On CUDA, head
dims below 16 are zero-padded to 16 (the Triton kernel needs >= 16; zero columns change no score).
Softmax runs in float32 (float64 for float64) in every path. Backward: on CUDA (flex's own); flex has
none on CPU, where a forward with inputs that require grad still works and a backward raises.
"""

from __future__ import annotations

import os

import torch
from torch.nn.attention.flex_attention import BlockMask, flex_attention

from .rule import (
    GLOBAL,
    assemble_rows,
    check_kernel_inputs,
    global_rows,
    global_slots,
    longformer_local_mask,
    softmax_dtype,
)

# Default for `compiled=None`; LED_FLEX_COMPILE=0 makes eager the default (fast start, dense memory).
COMPILE = os.environ.get("LED_FLEX_COMPILE", "1") != "0"
_COMPILABLE = (torch.float32, torch.float16, torch.bfloat16)
_MIN_CUDA_HEAD_DIM = 16
BLOCK_SIZE = 128  # flex's default tile (query rows x keys)
_compiled_flex = None


def _flex(compiled: bool):
    """flex_attention itself, or its torch.compile'd version (built once, on first use)."""
    global _compiled_flex
    if not compiled:
        return flex_attention
    if _compiled_flex is None:
        # Static shapes: with automatic dynamic shapes, a recompile for a new seq *and* window made inductor's
        # CPU flex kernel index out of bounds (torch 2.13). One compile per (shape, dtype, window) instead.
        _compiled_flex = torch.compile(flex_attention, dynamic=False)
    return _compiled_flex


def use_compiled(query: torch.Tensor, compiled: bool | None) -> bool:
    """Whether this call runs compiled: as asked (default COMPILE), never for dtypes flex cannot compile."""
    wanted = COMPILE if compiled is None else bool(compiled)
    return wanted and query.dtype in _COMPILABLE


def _pad_head_dim(t: torch.Tensor, size: int) -> torch.Tensor:
    """(..., d) -> (..., size) with zero columns appended (d <= size)."""
    return torch.nn.functional.pad(t, (0, size - t.shape[-1]))


def longformer_block_mask(token_kind: torch.Tensor, window: int, block_size: int = BLOCK_SIZE) -> BlockMask:
    """BlockMask of the local rows, built from block-level facts instead of evaluating every (query, key).

    Query tile i needs key tile j if j meets the band of some row of i, or j holds a global token of the
    batch row. Inside those tiles flex applies `longformer_local_mask` exactly. This is what
    `create_block_mask(longformer_local_mask(...))` gives (a superset: tiles whose only band keys are
    padding are kept), without its (batch, seq, seq) intermediate.
    token_kind (batch, seq) -> BlockMask for (batch, 1 head shared, seq, seq).
    """
    batch, seq = token_kind.shape
    tiles = -(-seq // block_size)
    first = torch.arange(tiles, device=token_kind.device) * block_size  # first position of each tile
    last = torch.clamp(first + block_size - 1, max=seq - 1)
    half = window // 2
    # Key tile j meets the band of query tile i iff j's positions overlap i's widened by half either side.
    band = (first[None, :] <= last[:, None] + half) & (last[None, :] >= first[:, None] - half)
    padded = torch.nn.functional.pad(token_kind == GLOBAL, (0, tiles * block_size - seq))
    has_global = padded.view(batch, tiles, block_size).any(dim=-1)  # (batch, key tiles)
    needed = band[None] | has_global[:, None, :]  # (batch, query tiles, key tiles)
    kv_num_blocks = needed.sum(dim=-1, dtype=torch.int32)[:, None]
    kv_indices = torch.argsort((~needed).to(torch.int8), dim=-1, stable=True).to(torch.int32)[:, None]
    return BlockMask.from_kv_blocks(kv_num_blocks, kv_indices, BLOCK_SIZE=block_size,
                                    mask_mod=longformer_local_mask(token_kind, window), seq_lengths=(seq, seq))


def local_rows(query, key, value, token_kind, window: int, compiled: bool) -> torch.Tensor:
    """Every row attending as a local row would (window or global key, not padding).

    query, key, value: (batch, heads, seq, d), query pre-scaled; token_kind (batch, seq) -> (batch, heads,
    seq, d). Rows whose allowed set is empty (padding rows far from any token) come out zero.
    """
    head_dim = query.shape[-1]
    block_mask = longformer_block_mask(token_kind, window)
    padded = compiled and query.device.type != "cpu" and head_dim < _MIN_CUDA_HEAD_DIM
    if padded:
        query, key, value = (_pad_head_dim(t, _MIN_CUDA_HEAD_DIM) for t in (query, key, value))
    out = _flex(compiled)(query, key, value, block_mask=block_mask, scale=1.0)
    return out[..., :head_dim] if padded else out


class _CpuForwardOnly(torch.autograd.Function):
    """Local rows on CPU for inputs that require grad: flex refuses such inputs on CPU even for a forward,
    so it runs on detached copies here, and a backward through it fails loudly instead."""

    @staticmethod
    def forward(ctx, query, key, value, token_kind, window, compiled):
        return local_rows(query.detach(), key.detach(), value.detach(), token_kind, window, compiled)

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError("FlexAttention has no backward on CPU: train on CUDA, or with the 'banded' "
                                  "attention backend")


def _local_rows_any_grad(query, key, value, token_kind, window: int, compiled: bool) -> torch.Tensor:
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (query, key, value))
    if needs_grad and query.device.type == "cpu":
        return _CpuForwardOnly.apply(query, key, value, token_kind, window, compiled)
    return local_rows(query, key, value, token_kind, window, compiled)


def flex_longformer_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    global_query: torch.Tensor,
    global_key: torch.Tensor,
    global_value: torch.Tensor,
    token_kind: torch.Tensor,
    window: int,
    compiled: bool | None = None,
) -> torch.Tensor:
    """Longformer attention context (batch, heads, seq, head_dim), zeros on padding rows (kernel contract).

    All six tensors (batch, heads, seq, head_dim), queries pre-scaled by head_dim**-0.5; token_kind
    (batch, seq) of rule.PADDING / LOCAL / GLOBAL; window even >= 2 (any seq works, also seq < window).
    `compiled`: None uses the module default COMPILE (env LED_FLEX_COMPILE); float64 always runs eager.
    """
    check_kernel_inputs(query, key, value, global_query, global_key, global_value, token_kind, window)
    if query.shape[2] == 0:
        return torch.zeros_like(query)
    context = _local_rows_any_grad(query, key, value, token_kind, window, use_compiled(query, compiled))
    # float32 matmuls (float64 for float64): half-precision global rows stay unrounded until the result.
    global_context, _ = global_rows(global_query, global_key, global_value, token_kind, global_slots(token_kind),
                                    matmul_dtype=softmax_dtype(query.dtype))
    return assemble_rows(context, global_context, token_kind)
