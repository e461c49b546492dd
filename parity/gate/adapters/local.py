"""The local adapter: gate a FlashAttention-style sliding-window kernel on the contract's local rows.

    local:         kernel(q, k, v, window_size=(left, right), softmax_scale=1.0) -> out
                   q, k, v, out: (batch, seq, heads, head_dim)
    local-varlen:  kernel(q, k, v, cu_seqlens_q=cu, cu_seqlens_k=cu, max_seqlen_q=n, max_seqlen_k=n,
                          window_size=(left, right), softmax_scale=1.0) -> out
                   q, k, v, out: (total_tokens, heads, head_dim), row b packed at cu[b]:cu[b + 1]

`flash_attn_func` and `flash_attn_varlen_func` have these signatures. The window is the contract's in
FlashAttention's convention (inclusive reach left and right, led_ref.explore.conventions); the queries
arrive pre-scaled, so the adapter passes softmax_scale=1.0. Such kernels know no global tokens, so the
adapter declares `max_globals=0`; without a key mask the plain form takes no padding (`padding=False`), and
the varlen form packs each row's one valid span, so it takes left and right padding and empty rows but no
holes (`padding="edges"`). The kernel's own `@parity.supports` declaration narrows these further.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from led_ref.explore.conventions import parameters
from parity.gate.support import ATTRIBUTE, support_of


class LocalKernel:
    """The contract's signature around a FlashAttention-style local kernel (plain or varlen)."""

    def __init__(self, kernel: Callable, varlen: bool = False):
        if not callable(kernel):
            raise TypeError(f"local adapter takes a function, got {type(kernel).__name__}")
        self.kernel, self.varlen = kernel, varlen
        name = getattr(kernel, "__qualname__", type(kernel).__qualname__)
        self.__qualname__ = self.__name__ = f"{'local_varlen' if varlen else 'local'}({name})"
        self.__module__ = getattr(kernel, "__module__", __name__)
        own = support_of(kernel)
        setattr(self, ATTRIBUTE, own.narrowed(max_globals=0, padding="edges" if varlen else False))

    def __call__(self, query, key, value, global_query, global_key, global_value, token_kind, window):
        window_size = parameters(int(window), "flash")["window_size"]
        q, k, v = (t.transpose(1, 2) for t in (query, key, value))  # (batch, seq, heads, head_dim)
        if not self.varlen:
            out = self.kernel(q, k, v, window_size=window_size, softmax_scale=1.0)
            return out.transpose(1, 2)
        batch, seq, heads, head_dim = q.shape
        index, lengths = _row_spans(token_kind.to("cpu"))
        index = index.to(q.device)
        cu = torch.zeros(batch + 1, dtype=torch.int32, device=q.device)
        cu[1:] = torch.cumsum(torch.as_tensor(lengths, device=q.device), 0)
        packed = [t.reshape(batch * seq, heads, head_dim)[index] for t in (q, k, v)]
        longest = max(lengths) if lengths else 0
        out = self.kernel(*packed, cu_seqlens_q=cu, cu_seqlens_k=cu, max_seqlen_q=longest, max_seqlen_k=longest,
                          window_size=window_size, softmax_scale=1.0)
        full = torch.zeros(batch * seq, heads, head_dim, dtype=out.dtype, device=out.device)
        full = full.index_copy(0, index, out)  # padding rows stay 0, as the contract says
        return full.view(batch, seq, heads, head_dim).transpose(1, 2)


def _row_spans(token_kind: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """The flat indices of each row's valid span (first to last non-padding token), rows in order, and the
    span lengths (0 for a row with no valid token)."""
    batch, seq = token_kind.shape
    pieces, lengths = [], []
    for b in range(batch):
        valid = torch.nonzero(token_kind[b]).flatten()
        if valid.numel() == 0:
            lengths.append(0)
            continue
        first, last = int(valid[0]), int(valid[-1])
        pieces.append(torch.arange(b * seq + first, b * seq + last + 1))
        lengths.append(last - first + 1)
    index = torch.cat(pieces) if pieces else torch.zeros(0, dtype=torch.int64)
    return index, lengths


def local_kernel(kernel: Callable, varlen: bool = False) -> LocalKernel:
    """The contract-signature kernel for a FlashAttention-style local kernel (varlen: packed rows)."""
    return LocalKernel(kernel, varlen)


# ------------------------------------------------------------------------------------------ plain kernels
def sliding_window_sdpa(q, k, v, window_size, softmax_scale=None):
    """The plain FlashAttention-style local kernel: torch SDPA with a (left, right) inclusive band mask.
    q, k, v: (batch, seq, heads, head_dim). The shape of what `--adapter local` gates (docs/contract.md)."""
    import torch.nn.functional as F

    left, right = window_size
    position = torch.arange(q.shape[1], device=q.device)
    offset = position[None, :] - position[:, None]  # key - query
    allowed = (offset >= -left) & (offset <= right)
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                         attn_mask=allowed, scale=softmax_scale)
    return out.transpose(1, 2)


def sliding_window_sdpa_varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, window_size,
                               softmax_scale=None):
    """`sliding_window_sdpa` over packed rows: q, k, v (total_tokens, heads, head_dim), row b at
    cu_seqlens[b]:cu_seqlens[b + 1] (queries and keys packed alike)."""
    out = torch.zeros_like(q)
    for b in range(len(cu_seqlens_q) - 1):
        start, end = int(cu_seqlens_q[b]), int(cu_seqlens_q[b + 1])
        if end > start:
            rows = slice(start, end)
            out[rows] = sliding_window_sdpa(q[None, rows], k[None, rows], v[None, rows], window_size,
                                            softmax_scale)[0]
    return out
