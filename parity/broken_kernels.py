"""A dense, obviously-correct attention kernel and a family of planted bugs: the gate's teeth.

`dense_attention` meets the kernel contract (docs/contract.md) by brute force: it scores every query against
every key and masks. Each entry of `BROKEN_KERNELS` is the same kernel with one realistic mistake
planted (a window one too narrow, padding keys left visible, global keys counted twice, fp16 softmax, ...).
`python -m parity gate --attention parity.broken_kernels:window_narrower` must fail for every one of them
and pass for `dense_attention`; tests/test_parity_gate.py asserts exactly that.

Local rows see two blocks of keys, concatenated into one softmax the way banded kernels do it: the
window block (ordinary local keys within reach) and the global block (every global key). A correct kernel
keeps global keys out of the window block so each is counted once.
"""

from __future__ import annotations

import torch

BUGS = {
    "window_narrower": "one-sided reach w/2 - 1 instead of w/2",
    "window_wider": "one-sided reach w/2 + 1 instead of w/2",
    "one_sided_window": "window only looks back (keys i-w/2..i)",
    "off_by_one_centre": "window centred on i+1 instead of i",
    "padding_keys_visible": "local rows attend padding keys inside their window",
    "padding_rows_not_zeroed": "padding rows keep whatever context they computed",
    "global_double_counted": "a global key inside the window is counted in both blocks",
    "globals_ignored_for_local_rows": "local rows never attend global keys",
    "global_keys_global_projection": "local rows score and read global keys with key_global/value_global",
    "global_rows_local_projections": "global rows use query/key/value instead of the global projections",
    "global_rows_local_keys": "global rows use query_global but the local key/value",
    "global_rows_ignore_padding": "global rows attend padding keys",
    "global_rows_not_replaced": "global rows keep their local (windowed) output",
    "double_scaling": "queries scaled by head_dim**-0.5 a second time",
    "global_query_double_scaled": "only the global query scaled a second time",
    "softmax_wrong_axis": "softmax normalised over the query axis",
    "fp16_softmax": "softmax taken in float16",
    "float32_accumulation": "scores and sums accumulated in float32",
    "kinds_from_first_row": "token kinds of batch row 0 used for every row",
    "heads_flipped": "the context of head h written to head heads-1-h",
    "in_place_scaling": "the caller's query tensors scaled in place (then used unscaled by the kernel)",
}


def _masked_softmax(scores: torch.Tensor, allowed: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """softmax over `dim` of `scores` restricted to `allowed` (broadcastable); all-masked slices give NaN."""
    return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=dim)


def dense_attention(query, key, value, global_query, global_key, global_value, token_kind, window, bug=None):
    """The contract by brute force. Tensors (batch, heads, seq, head_dim); token_kind (batch, seq); -> context.

    `bug` (a key of BUGS) plants one mistake; None is the correct kernel.
    """
    if bug is not None and bug not in BUGS:
        raise ValueError(f"bug must be one of {', '.join(BUGS)}; got {bug!r}")
    out_dtype = query.dtype
    if bug == "in_place_scaling":  # its own result is right; the caller's tensors are not any more
        callers = (query, global_query)
        query, global_query = query.clone(), global_query.clone()
        for t in callers:
            t.mul_(2.0)
    if bug == "float32_accumulation":
        query, key, value, global_query, global_key, global_value = (
            t.float() for t in (query, key, value, global_query, global_key, global_value))
    if bug == "kinds_from_first_row":
        token_kind = token_kind[:1].expand_as(token_kind)
    scale = query.shape[-1] ** -0.5
    if bug == "double_scaling":
        query, global_query = query * scale, global_query * scale
    if bug == "global_query_double_scaled":
        global_query = global_query * scale

    seq = query.shape[-2]
    pos = torch.arange(seq, device=query.device)
    reach = window // 2 + {"window_narrower": -1, "window_wider": 1}.get(bug, 0)
    centre = pos[:, None] + (1 if bug == "off_by_one_centre" else 0)
    offset = pos[None, :] - centre  # (seq, seq): key position minus window centre
    upper = 0 if bug == "one_sided_window" else reach
    in_window = (offset >= -reach) & (offset <= upper)

    is_pad, is_local, is_global = token_kind == 0, token_kind == 1, token_kind == 2  # (batch, seq)
    window_keys = is_local  # global keys live in the global block, padding nowhere
    if bug == "padding_keys_visible":
        window_keys = ~is_global
    if bug == "global_double_counted":
        window_keys = ~is_pad
    window_block = (in_window[None] & window_keys[:, None, :])[:, None]  # (batch, 1, seq, seq)
    global_block = is_global[:, None, None, :].expand_as(window_block)
    if bug == "globals_ignored_for_local_rows":
        global_block = torch.zeros_like(global_block)

    local_scores = query @ key.transpose(-1, -2)
    global_key_scores, global_key_values = local_scores, value
    if bug == "global_keys_global_projection":
        global_key_scores, global_key_values = query @ global_key.transpose(-1, -2), global_value
    scores = torch.cat([local_scores, global_key_scores], dim=-1)
    allowed = torch.cat([window_block, global_block], dim=-1)
    probs = _softmax(scores, allowed, bug)
    context = probs[..., :seq] @ value + probs[..., seq:] @ global_key_values

    gq, gk, gv = global_query, global_key, global_value
    if bug == "global_rows_local_projections":
        gq, gk, gv = query, key, value
    if bug == "global_rows_local_keys":
        gk, gv = key, value
    key_ok = torch.ones_like(is_pad) if bug == "global_rows_ignore_padding" else ~is_pad
    global_probs = _softmax(gq @ gk.transpose(-1, -2), key_ok[:, None, None, :], bug)
    if bug != "global_rows_not_replaced":
        context = torch.where(is_global[:, None, :, None], global_probs @ gv, context)
    if bug != "padding_rows_not_zeroed":
        context = torch.where(is_pad[:, None, :, None], torch.zeros_like(context), context)
    if bug == "heads_flipped":
        context = context.flip(1)
    return context.to(out_dtype)


def _softmax(scores, allowed, bug):
    if bug == "softmax_wrong_axis":
        return torch.nan_to_num(_masked_softmax(scores, allowed, dim=-2))
    if bug == "fp16_softmax":
        return _masked_softmax(scores.half(), allowed).to(scores.dtype)
    return _masked_softmax(scores, allowed)


def _planted(bug: str):
    def kernel(query, key, value, global_query, global_key, global_value, token_kind, window):
        return dense_attention(query, key, value, global_query, global_key, global_value, token_kind, window, bug)

    kernel.__name__ = kernel.__qualname__ = bug
    kernel.__doc__ = f"dense_attention with a planted bug: {BUGS[bug]}."
    return kernel


BROKEN_KERNELS = {bug: _planted(bug) for bug in BUGS}
globals().update(BROKEN_KERNELS)  # each is importable as parity.broken_kernels:<bug> for the CLI
