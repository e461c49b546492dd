"""What a standard backward inherits from the kernel's own forward output (the half-precision gradient rule).

FlashAttention's backward, and every kernel built like it (torch's SDPA flash and memory-efficient kernels,
xformers, Triton ports), does not form the softmax backward from the probabilities; it reads back the output
O it returned, in the input dtype, and uses

    D_i = sum_d dO[i, d] * O[i, d]                     (= sum_j P_ij dP_ij when O is exact)
    dS_ij = P_ij (dP_ij - D_i)

So the error of O (its rounding to the dtype, at least) moves D_i by delta_i = dO_i . (O_kernel - O)_i, and
the gradients of the scores' two factors with it, to first order:

    grad_query[i] -= delta_i * sum_j P_ij key[j]       (local row i; a global row: global_query, global_key)
    grad_key[j]   -= sum_i delta_i * P_ij * query[i]
    values: untouched

With a row peaked on a large key, sum_j P_ij key[j] is large while the gradient is a small difference, so in
float16 this term alone reaches 25x the whole error of the plain same-dtype implementation (which forms D from
its own probabilities). Given the kernel's output it is exact, not a bound: the gate adds its size to the
budget of those four gradients (docs/contract.md, "Backward").
"""

from __future__ import annotations

import numpy as np
import torch

from parity.gate.reference import GLOBAL, LOCAL, reference_attention, reference_gradients


def inherited_gradient_shift(case, context, grad_context) -> tuple[torch.Tensor, ...]:
    """The first-order change of the six gradients when D is formed from `context` instead of the exact output.

    case: an AttentionCase (float64 arrays (batch, heads, seq, head_dim)); context: the kernel's output and
    grad_context: the upstream gradient, both (batch, heads, seq, head_dim), any float dtype. Returns six float64
    tensors in the order query, key, value, global_query, global_key, global_value (the two values are zero)."""
    q, k, v, gq, gk, gv = (torch.as_tensor(a, dtype=torch.float64) for a in case.arrays())
    kinds = torch.as_tensor(np.asarray(case.token_kind))
    upstream = torch.as_tensor(grad_context).to(torch.float64)
    exact = reference_attention(q, k, v, gq, gk, gv, kinds, case.window)
    error = torch.as_tensor(context).to(torch.float64) - exact
    shift = (upstream * torch.nan_to_num(error)).sum(-1, keepdim=True)  # delta_i, (batch, heads, seq, 1)
    local = (kinds == LOCAL)[:, None, :, None]
    is_global = (kinds == GLOBAL)[:, None, :, None]
    keys_read = reference_attention(q, k, k, gq, gk, gk, kinds, case.window)  # sum_j P_ij key[j], per row kind
    grad_query = torch.where(local, -shift * keys_read, 0.0)
    grad_global_query = torch.where(is_global, -shift * keys_read, 0.0)
    # sum_i delta_i P_ij query[i] is the value gradient of the reference for the upstream -delta_i query[i].
    spread = torch.where(is_global, -shift * gq, torch.where(local, -shift * q, 0.0))
    moved = reference_gradients(q, k, v, gq, gk, gv, kinds, case.window, spread)
    return grad_query, moved[2], torch.zeros_like(v), grad_global_query, moved[5], torch.zeros_like(gv)
