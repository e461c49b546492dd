"""A dense, obviously-correct attention kernel and a family of planted bugs: the gate's teeth.

`dense_attention` meets the kernel contract (docs/contract.md) by brute force: it scores every query against
every key and masks. Each entry of `BROKEN_KERNELS` is the same kernel with one realistic mistake
planted (a window one too narrow, padding keys left visible, global keys counted twice, fp16 softmax, ...).
`python -m parity gate --attention parity.gate.broken_kernels:window_narrower` must fail for every one of them
and pass for `dense_attention`; tests/test_parity_gate.py asserts exactly that.

Local rows see two blocks of keys, concatenated into one softmax the way banded kernels do it: the
window block (ordinary local keys within reach) and the global block (every global key). A correct kernel
keeps global keys out of the window block so each is counted once.

The second family is realistic: `tiled_attention` is a correct flash-style kernel written the way
Triton/CUDA kernels are (query blocks of 64, key tiles of 64, online softmax, float32 accumulation for
half inputs), declaring its support with `@supports(head_dim_multiple=16, min_window=16)`. Each entry of
`TILED_KERNELS` plants one bug of the kind such kernels ship with (TILED_BUGS), most of them invisible on
toy shapes: they are what the `boundary` and `realistic` profiles exist to catch.

The third family, `LATENT_KERNELS`, plants bugs the value checks on ordinary inputs cannot see at all: reading
past the end of an input, a run-to-run reduction order, a stale running max, a launch grid that stops
covering rows, gradients that assume contiguous inputs, a backward without the window, a head_dim axis read as
unit-stride. Each is caught by one
further check of the gate (LATENT_CHECKS), which `tiled_attention` passes.
"""

from __future__ import annotations

import itertools

import torch

from parity.gate.support import supports

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
    "empty_row_nan": "a batch row with no valid token is skipped, its output left as allocated (NaN)",
    "first_token_assumed_valid": "position 0 is taken for a real token (the <s> of a right-padded batch)",
    "heads_past_4_wrapped": "heads from index 4 on read the keys of head h % 4 (a head stride fixed for 4 heads)",
    "odd_block_count_last_block": "with an odd number (> 1) of window blocks, the last block's queries do not "
                                  "see the keys of the block before it (blocks processed in pairs)",
}


def _masked_softmax(scores: torch.Tensor, allowed: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """softmax over `dim` of `scores` restricted to `allowed` (broadcastable); all-masked slices give 0.

    Such slices are softmaxed unmasked and then zeroed, so no NaN appears, not even in the backward pass."""
    allowed = allowed.expand_as(scores)
    some = allowed.any(dim, keepdim=True)
    probs = torch.softmax(scores.masked_fill(~allowed & some, float("-inf")), dim=dim)
    return probs * some


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
    if bug == "first_token_assumed_valid":
        token_kind = torch.cat([token_kind[:, :1].clamp(min=1), token_kind[:, 1:]], 1)
    if bug == "heads_past_4_wrapped":
        key = key[:, torch.arange(key.shape[1], device=key.device) % 4]
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
    if bug == "odd_block_count_last_block" and (seq // window) % 2 == 1 and seq > window:
        last = seq - window  # the unpaired last block sees only its own keys
        in_window = in_window & ~((pos[:, None] >= last) & (pos[None, :] < last))

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
    if bug == "empty_row_nan":
        empty = (token_kind == 0).all(1)[:, None, None, None]
        context = torch.where(empty, torch.full_like(context, float("nan")), context)
    return context.to(out_dtype)


def _softmax(scores, allowed, bug):
    if bug == "softmax_wrong_axis":
        return _masked_softmax(scores, allowed, dim=-2)
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
globals().update(BROKEN_KERNELS)  # each is importable as parity.gate.broken_kernels:<bug> for the CLI


# ---------------------------------------------------------------------------------------------- tiled kernels
TILE = 64  # query rows per block and keys per tile
TILED_BUGS = {
    "tile_end_off_by_one": "each key tile stops one key short (range end off by one)",
    "window_clipped_256": "the window is clipped at 256 (one-sided reach <= 128)",
    "first_16_globals": "local rows see only the first 16 global tokens of a row",
    "partial_tile_skipped": "the last key tile is skipped when it is partial (seq % 64 != 0)",
    "head_dim_64_only": "scores use only the first 64 dims of head_dim",
    "bf16_denominator": "the softmax denominator is rounded to bfloat16",
    "batch3_global_counts": "rows from batch index 2 on use row 0's global count",
    "positions_in_input_dtype": "token positions are kept in the input dtype (wrong windows in bf16)",
    "last_row_zeroed": "the last row is zeroed when seq > 16",
    "global_value_grad": "exact forward; the backward drops the gradient of global_value at global tokens",
}


def _online(state, scores, allowed, values, bug=None):
    """One online-softmax step: fold a tile of `scores` (..., C, n), masked by `allowed`, into the running
    (max, denominator, accumulator). The max is detached: the result does not depend on it."""
    top, total, acc = state
    scores = scores.masked_fill(~allowed, float("-inf"))
    new_top = torch.maximum(top, scores.amax(-1, keepdim=True)).detach()
    if bug == "stale_running_max":  # the max of the first tile that had one is kept: exact until exp overflows
        new_top = torch.where(torch.isfinite(top), top, new_top)
    shift = torch.where(torch.isfinite(new_top), new_top, torch.zeros_like(new_top))
    p = torch.exp(scores - shift)
    alpha = torch.exp(top - shift)
    return new_top, total * alpha + p.sum(-1, keepdim=True), acc * alpha + p @ values


def _finish(state, bug):
    _, total, acc = state
    if bug == "bf16_denominator":
        total = total.to(torch.bfloat16).to(acc.dtype)
    return torch.where(total > 0, acc / total.clamp_min(torch.finfo(total.dtype).tiny), torch.zeros_like(acc))


def _past_end(t, k0):
    """Rows k0..k0+TILE of (batch, heads, seq, d) `t` read by address, as a kernel without a bounds mask reads
    them: past the end of the sequence it gets whatever memory follows (zeros where the storage ends)."""
    batch, heads, seq, d = t.shape
    strides = t.stride()
    last = t.storage_offset() + k0 * strides[2] + sum((n - 1) * s for n, s in zip((batch, heads, TILE, d),
                                                                                 strides, strict=True))
    if last < t.untyped_storage().nbytes() // t.element_size():
        return t.as_strided((batch, heads, TILE, d), strides, t.storage_offset() + k0 * strides[2])
    return torch.nn.functional.pad(t[:, :, k0:], (0, 0, 0, TILE - (seq - k0)))


def _dot(q, k, bug):
    if bug == "head_dim_64_only":
        q, k = q[..., :64], k[..., :64]
    return q @ k.transpose(-1, -2)


# split_k_unordered's calls alternate the order its tiles are combined in: a run-to-run difference on every
# repeat, whatever the global RNG's state (a random order could repeat and make a test depend on test order)
_SPLIT_K_CALLS = itertools.count()


def _tiled(query, key, value, global_query, global_key, global_value, token_kind, window, bug=None):
    if bug == "head_dim_assumed_unit_stride":  # the memory read with a head_dim stride of 1, whatever it is
        query, key, value, global_query, global_key, global_value = (
            t.as_strided(t.shape, (*t.stride()[:-1], 1), t.storage_offset())
            for t in (query, key, value, global_query, global_key, global_value))
    in_dtype = query.dtype
    reversed_tiles = bug == "split_k_unordered" and next(_SPLIT_K_CALLS) % 2 == 1
    work = torch.float64 if in_dtype == torch.float64 else torch.float32  # half inputs accumulate in float32
    q, k, v, gq, gk, gv = (t.to(work) for t in (query, key, value, global_query, global_key, global_value))
    batch, heads, seq, d = q.shape
    half = min(window, 256) // 2 if bug == "window_clipped_256" else window // 2
    kinds = token_kind.to(q.device)
    is_global = kinds == 2
    counts = is_global.sum(1)
    x = int(counts.max())
    order = torch.sort((~is_global).to(torch.int8), dim=1, stable=True).indices[:, :x]  # global positions
    slot_ok = torch.arange(x, device=q.device)[None, :] < counts[:, None]
    if bug == "batch3_global_counts":
        slot_ok = torch.cat([slot_ok[:2], slot_ok[:1].expand(max(0, batch - 2), -1)], 0)
    index = order[:, None, :, None].expand(-1, heads, -1, d)
    local_x = min(x, 16) if bug == "first_16_globals" else x

    def positions(a, b):
        pos = torch.arange(a, b, device=q.device)
        return pos.to(in_dtype) if bug == "positions_in_input_dtype" else pos

    blocks = []
    for q0 in range(0, seq, TILE):
        q1 = min(seq, q0 + TILE)
        if bug == "grid_rows_capped" and q0 >= GRID_ROW_LIMIT:  # the launch grid has no block for these rows
            blocks.append(q.new_zeros((batch, heads, q1 - q0, d)))
            continue
        qb = q[:, :, q0:q1]
        state = (qb.new_full((batch, heads, q1 - q0, 1), float("-inf")), qb.new_zeros((batch, heads, q1 - q0, 1)),
                 qb.new_zeros((batch, heads, q1 - q0, d)))
        if local_x:
            gkeys = torch.gather(k, 2, index[:, :, :local_x])
            gvals = torch.gather(v, 2, index[:, :, :local_x])
            state = _online(state, _dot(qb, gkeys, bug), slot_ok[:, None, None, :local_x], gvals, bug)
        rows = positions(q0, q1)
        first = max(0, q0 - half) // TILE * TILE
        tiles = list(range(first, min(seq, q1 + half), TILE))
        if reversed_tiles:  # partial results combined in the order the tiles finish
            tiles = tiles[::-1]
        for k0 in tiles:
            k1 = min(seq, k0 + TILE)
            if bug == "tail_read_past_end" and k1 - k0 < TILE:  # the last tile loaded whole, its tail masked out
                near = (rows[:, None] - positions(k0, k0 + TILE)[None, :]).abs() <= half
                tail_kinds = torch.nn.functional.pad(kinds[:, k0:k1], (0, TILE - (k1 - k0)))
                allowed = near[None, None] & (tail_kinds[:, None, None, :] == 1)
                state = _online(state, _dot(qb, _past_end(k, k0), bug), allowed, _past_end(v, k0))
                continue
            if bug == "partial_tile_skipped" and k1 - k0 < TILE:
                continue
            if bug == "tile_end_off_by_one":
                k1 -= 1
                if k1 <= k0:
                    continue
            near = (rows[:, None] - positions(k0, k1)[None, :]).abs() <= half
            allowed = near[None, None] & (kinds[:, None, None, k0:k1] == 1)
            state = _online(state, _dot(qb, k[:, :, k0:k1], bug), allowed, v[:, :, k0:k1], bug)
        blocks.append(_finish(state, bug) * (kinds[:, None, q0:q1, None] == 1))
    context = torch.cat(blocks, 2)

    if x:  # global rows: each slot's global query over every non-padding key, tile by tile
        gqs = torch.gather(gq, 2, index)
        state = (gqs.new_full((batch, heads, x, 1), float("-inf")), gqs.new_zeros((batch, heads, x, 1)),
                 gqs.new_zeros((batch, heads, x, d)))
        for k0 in range(0, seq, TILE):
            k1 = min(seq, k0 + TILE)
            allowed = slot_ok[:, None, :, None] & (kinds[:, None, None, k0:k1] != 0)
            state = _online(state, _dot(gqs, gk[:, :, k0:k1], bug), allowed, gv[:, :, k0:k1], bug)
        global_context = _finish(state, bug)
        slot_of = (torch.cumsum(is_global.long(), 1) - 1).clamp(min=0)
        picked = torch.gather(global_context, 2, slot_of[:, None, :, None].expand(-1, heads, -1, d))
        context = torch.where(is_global[:, None, :, None], picked, context)
    if bug == "last_row_zeroed" and seq > 16:
        context = torch.cat([context[:, :, :-1], torch.zeros_like(context[:, :, -1:])], 2)
    return context.to(in_dtype)


class _WrongGlobalValueGrad(torch.autograd.Function):
    """The correct tiled forward; the backward zeroes the gradient of global_value at global tokens."""

    @staticmethod
    def forward(ctx, query, key, value, global_query, global_key, global_value, token_kind, window):
        ctx.save_for_backward(query, key, value, global_query, global_key, global_value, token_kind)
        ctx.window = window
        return _tiled(query, key, value, global_query, global_key, global_value, token_kind, window)

    @staticmethod
    def backward(ctx, grad_output):
        *inputs, token_kind = ctx.saved_tensors
        leaves = [t.detach().requires_grad_(True) for t in inputs]
        with torch.enable_grad():
            out = _tiled(*leaves, token_kind, ctx.window)
            grads = torch.autograd.grad(out, leaves, grad_output, allow_unused=True)
        grads = [torch.zeros_like(t) if g is None else g for t, g in zip(leaves, grads, strict=True)]
        grads[5] = grads[5] * (token_kind != 2)[:, None, :, None]
        return (*grads, None, None)


@supports(head_dim_multiple=16, min_window=16)
def tiled_attention(query, key, value, global_query, global_key, global_value, token_kind, window):
    """A correct flash-style kernel (docs/contract.md): query blocks and key tiles of 64, online softmax.

    Tensors (batch, heads, seq, head_dim) -> context of the same shape and dtype. Supports head_dim % 16 == 0
    and window >= 16, like real Triton/CUDA kernels; the backward is autograd through the tiles."""
    return _tiled(query, key, value, global_query, global_key, global_value, token_kind, window)


def _planted(bug: str, doc: str, backward=None):
    """tiled_attention with `bug`; `backward` (an autograd Function's apply) replaces it where the bug is in the
    gradients."""
    if backward is not None:
        def kernel(query, key, value, global_query, global_key, global_value, token_kind, window):
            return backward(query, key, value, global_query, global_key, global_value, token_kind, window)
    else:
        def kernel(query, key, value, global_query, global_key, global_value, token_kind, window):
            return _tiled(query, key, value, global_query, global_key, global_value, token_kind, window, bug)

    kernel.__name__ = kernel.__qualname__ = bug
    kernel.__doc__ = doc
    return supports(head_dim_multiple=16, min_window=16)(kernel)


def _planted_tiled(bug: str):
    backward = _WrongGlobalValueGrad.apply if bug == "global_value_grad" else None
    return _planted(bug, f"tiled_attention with a planted bug: {TILED_BUGS[bug]}.", backward)


TILED_KERNELS = {bug: _planted_tiled(bug) for bug in TILED_BUGS}
globals().update(TILED_KERNELS)


# ---------------------------------------------------------------------------------------------- latent bugs
# Bugs the value checks on ordinary inputs miss: each needs one of the gate's further checks (the flag or
# profile in LATENT_CHECKS) to show. tests/test_gate_memory.py, test_gate_determinism.py, test_gate_long.py
# prove each rejected and tiled_attention passing the same checks.
GRID_ROW_LIMIT = 8192  # rows a capped launch grid covers (128 query blocks of 64)
LATENT_BUGS = {
    "tail_read_past_end": "the last partial key tile is loaded whole, past the end of the input, and its tail "
                          "masked to probability 0 (0 x NaN is NaN)",
    "split_k_unordered": "window key tiles are combined in the order they finish (reversed on every other "
                         "call), so the last bits change from run to run",
    "stale_running_max": "the online softmax keeps the first tile's max: exact until a later score exceeds it "
                         "by more than exp can take (88.7 in float32, 709.8 in float64)",
    "grid_rows_capped": f"the launch grid stops at {GRID_ROW_LIMIT} rows: rows past it stay 0",
    "strided_grad_layout": "the backward writes each input's gradient as if the input were contiguous",
    "backward_ignores_window": "exact forward; the backward differentiates attention over every key (no window)",
    "head_dim_assumed_unit_stride": "each input's head_dim axis is read as unit-stride whatever its stride says "
                                    "(what torch's private CPU flash op does)",
}
LATENT_CHECKS = {  # the check that rejects each: a gate option (CLI flag) or profile
    "tail_read_past_end": "poisoned inputs (every profile)",
    "split_k_unordered": "deterministic=True (--deterministic)",
    "stale_running_max": "sink values (every profile)",
    "grid_rows_capped": "the long profile (16,384 tokens)",
    "strided_grad_layout": "backward=True (--backward) on packed inputs",
    "backward_ignores_window": "backward=True (--backward)",
    "head_dim_assumed_unit_stride": "transposed inputs (every profile)",
}


def _memory_order_view(grad, like):
    """`grad` (contiguous values) laid into memory in the contiguous order and read back with `like`'s strides,
    what a caller sees when a backward assumes contiguous inputs."""
    order = sorted(range(grad.dim()), key=lambda i: -like.stride(i))
    flat = grad.contiguous().reshape(-1)
    stored = flat.view(*[grad.shape[i] for i in order])
    inverse = [order.index(i) for i in range(grad.dim())]
    return stored.permute(*inverse)


class _PlantedBackward(torch.autograd.Function):
    """The correct tiled forward with a planted backward (`bug`: strided_grad_layout, backward_ignores_window)."""

    @staticmethod
    def forward(ctx, bug, query, key, value, global_query, global_key, global_value, token_kind, window):
        ctx.save_for_backward(query, key, value, global_query, global_key, global_value, token_kind)
        ctx.bug, ctx.window = bug, window
        ctx.like = [torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="meta")
                    for t in (query, key, value, global_query, global_key, global_value)]
        return _tiled(query, key, value, global_query, global_key, global_value, token_kind, window)

    @staticmethod
    def backward(ctx, grad_output):
        *inputs, token_kind = ctx.saved_tensors
        leaves = [t.detach().requires_grad_(True) for t in inputs]
        with torch.enable_grad():
            if ctx.bug == "backward_ignores_window":  # a window wider than the sequence: every key in reach
                out = dense_attention(*leaves, token_kind, 2 * inputs[0].shape[-2] + 2)
            else:
                out = _tiled(*leaves, token_kind, ctx.window)
            grads = torch.autograd.grad(out, leaves, grad_output, allow_unused=True)
        grads = [torch.zeros_like(t) if g is None else g for t, g in zip(leaves, grads, strict=True)]
        if ctx.bug == "strided_grad_layout":
            grads = [_memory_order_view(g, like) for g, like in zip(grads, ctx.like, strict=True)]
        return (None, *grads, None, None)


def _planted_latent(bug: str):
    backward = None
    if bug in ("strided_grad_layout", "backward_ignores_window"):
        def backward(*args):
            return _PlantedBackward.apply(bug, *args)
    doc = f"tiled_attention with a latent bug: {LATENT_BUGS[bug]} (caught by {LATENT_CHECKS[bug]})."
    return _planted(bug, doc, backward)


LATENT_KERNELS = {bug: _planted_latent(bug) for bug in LATENT_BUGS}
globals().update(LATENT_KERNELS)
