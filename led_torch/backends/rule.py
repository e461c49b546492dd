"""The Longformer attention rule, written once: every backend (banded's unfold and CPU flash paths, flex, the
Triton launcher) takes its token kinds, key rule, global slots and global-row pass from here. Read top-down, it
follows a `token_kind` from the encoder to the finished context (the kernel contract, docs/contract.md):

1. token kinds: PADDING / LOCAL / GLOBAL per position, from the attention and global masks (`token_kinds`);
   `check_kernel_inputs` checks a backend's arguments against the contract;
2. which keys a row may attend, as tiny composable `mask_mod`s (attention-gym style): a local row takes
   "window or global key, not padding" (`longformer_local_mask`), a global row every non-padding key
   (`longformer_global_mask`), a padding row nothing. Blocked backends split a local row's keys in two
   disjoint parts, each counted once: the global keys (one column per global slot) and the band keys, "in
   the window and LOCAL" (`longformer_band_mask`; in slab coordinates `band_keys`, `band_parts`);
3. global slots: each row's global tokens in order (`global_slots`), their rows gathered (`gather_rows`) and
   put back at the tokens (`at_global_tokens`);
4. the global-row pass: each global token's query against every non-padding key (`global_rows`; for few
   global tokens, the same pass from the hidden states and the global key/value weights,
   `global_rows_from_states`, without projecting every token);
5. the rows put together by kind: local rows keep the local result, global rows take their slot's row,
   padding rows are zero (`assemble_rows`).

A mask_mod is `mask_mod(b, h, q_idx, kv_idx) -> bool tensor`: may query `q_idx` of batch row `b`, head `h`
attend to key `kv_idx`? FlexAttention's `create_block_mask` calls it under vmap with scalar index tensors;
`dense_mask` calls it once with broadcast index grids, so the same function also gives a plain
(batch, heads, q_len, kv_len) boolean mask for tests and dense backends.

    longformer_local_mask(token_kind, window)
        = and_masks(or_masks(sliding_window(window), global_key(token_kind)), not_padding(token_kind))

Example, 6 tokens, window 2 (reach 1), token 4 global, token 5 padding (kinds 1 1 1 1 2 0):

          keys 0 1 2 3 4 5
    q 0        # # . . # .     window 0..1, plus global key 4
    q 1        # # # . # .
    q 2        . # # # # .     window 1..3, plus global key 4
    q 3        . . # # # .     window 2..4 (4 is global: one key, counted once)
    q 4        . . . # # .     (row 4 is global: its real row is `longformer_global_mask`)

Precision: scores and softmax run in float32 for float32/float16/bfloat16 inputs, float64 for float64
(`softmax_dtype`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from led_ref.io.validation import check_window  # the project's one window rule

# ---------------------------------------------------------------------------------------------- token kinds
# The integer values are the contract's (docs/contract.md) and led_ref.layout's; tests/test_backend_rule.py
# checks that they agree.
PADDING = 0  # not a token: attends nothing, is attended by nobody, its context is zero
LOCAL = 1  # an ordinary token: attends its window and the global tokens
GLOBAL = 2  # attends every token and is attended by every token, with the global projections

# Largest negative score used as "masked" where a row may have nothing to attend: finite, so the softmax of such
# a row stays finite (its result is never read) instead of NaN.
MASKED = torch.finfo(torch.float32).min


def token_kinds(attention_mask: torch.Tensor, global_attention_mask: torch.Tensor | None) -> torch.Tensor:
    """(batch, seq) long token kinds from 0/1 masks: PADDING where attention_mask is 0, else GLOBAL where
    global_attention_mask is 1, else LOCAL (a global flag on padding is ignored, as in HF).

        attention_mask         1 1 1 1 0
        global_attention_mask  0 1 0 0 1
        token_kinds            1 2 1 1 0
    """
    real = attention_mask != 0
    if global_attention_mask is None:
        return torch.where(real, LOCAL, PADDING)
    return torch.where(real, torch.where(global_attention_mask != 0, GLOBAL, LOCAL), PADDING)


def softmax_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays exact; every other dtype takes its scores and softmax in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def check_kernel_inputs(query, key, value, global_query, global_key, global_value, token_kind, window) -> None:
    """Raise TypeError/ValueError (naming the argument, its value and the limit) unless the arguments meet
    the kernel contract: six (batch, heads, seq, head_dim) float tensors of one shape, dtype and device;
    token_kind an integer (batch, seq) tensor on that device; window an even int >= 2."""
    check_window(window)
    tensors = dict(query=query, key=key, value=value, global_query=global_query, global_key=global_key,
                   global_value=global_value)
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.dtype.is_floating_point:
            raise TypeError(f"{name} must be a floating tensor, got dtype {t.dtype}")
        if t.dim() != 4:
            raise ValueError(f"{name} must be 4-D (batch, heads, seq, head_dim), got shape {tuple(t.shape)}")
        if t.shape != query.shape or t.dtype != query.dtype or t.device != query.device:
            raise ValueError(f"{name} must match query's shape {tuple(query.shape)}, dtype {query.dtype} and device "
                             f"{query.device}, got {tuple(t.shape)}, {t.dtype}, {t.device}")
    if not isinstance(token_kind, torch.Tensor):
        raise TypeError(f"token_kind must be a torch.Tensor, got {type(token_kind).__name__}")
    if token_kind.dtype.is_floating_point or token_kind.dtype.is_complex or token_kind.dtype == torch.bool:
        raise TypeError(f"token_kind must be an integer tensor, got dtype {token_kind.dtype}")
    expected = (query.shape[0], query.shape[2])
    if tuple(token_kind.shape) != expected or token_kind.device != query.device:
        raise ValueError(f"token_kind must be (batch, seq)={expected} on {query.device}, "
                         f"got {tuple(token_kind.shape)} on {token_kind.device}")
    if token_kind.numel() and (int(token_kind.min()) < PADDING or int(token_kind.max()) > GLOBAL):
        raise ValueError(f"token_kind values must be {PADDING} (padding), {LOCAL} (local) or {GLOBAL} (global), "
                         f"got values in [{int(token_kind.min())}, {int(token_kind.max())}]")


# ------------------------------------------------------------------------------------------- key rule
MaskMod = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def sliding_window(window: int) -> MaskMod:
    """Keys within `window // 2` positions of the query, either side (window is the two-sided span)."""
    half = check_window(window) // 2

    def in_window(b, h, q_idx, kv_idx):
        return (q_idx - kv_idx <= half) & (kv_idx - q_idx <= half)

    return in_window


def global_key(token_kind: torch.Tensor) -> MaskMod:
    """Keys that are global tokens of the query's batch row. token_kind: (batch, seq) of token kinds."""

    def is_global_key(b, h, q_idx, kv_idx):
        return token_kind[b, kv_idx] == GLOBAL

    return is_global_key


def not_padding(token_kind: torch.Tensor) -> MaskMod:
    """Keys that are not padding in the query's batch row. token_kind: (batch, seq) of token kinds."""

    def key_not_padding(b, h, q_idx, kv_idx):
        return token_kind[b, kv_idx] != PADDING

    return key_not_padding


def local_key(token_kind: torch.Tensor) -> MaskMod:
    """Keys that are ordinary (LOCAL) tokens of the query's batch row. token_kind: (batch, seq) of token kinds."""

    def is_local_key(b, h, q_idx, kv_idx):
        return token_kind[b, kv_idx] == LOCAL

    return is_local_key


def or_masks(*mask_mods: MaskMod) -> MaskMod:
    """Allowed where any of `mask_mods` allows."""
    if not mask_mods:
        raise ValueError("or_masks needs at least one mask_mod, got none")

    def any_of(b, h, q_idx, kv_idx):
        allowed = mask_mods[0](b, h, q_idx, kv_idx)
        for mod in mask_mods[1:]:
            allowed = allowed | mod(b, h, q_idx, kv_idx)
        return allowed

    return any_of


def and_masks(*mask_mods: MaskMod) -> MaskMod:
    """Allowed where every one of `mask_mods` allows."""
    if not mask_mods:
        raise ValueError("and_masks needs at least one mask_mod, got none")

    def all_of(b, h, q_idx, kv_idx):
        allowed = mask_mods[0](b, h, q_idx, kv_idx)
        for mod in mask_mods[1:]:
            allowed = allowed & mod(b, h, q_idx, kv_idx)
        return allowed

    return all_of


def longformer_local_mask(token_kind: torch.Tensor, window: int) -> MaskMod:
    """What a local row may attend: keys in its window or global, and never padding."""
    return and_masks(or_masks(sliding_window(window), global_key(token_kind)), not_padding(token_kind))


def longformer_global_mask(token_kind: torch.Tensor) -> MaskMod:
    """What a global row may attend: every non-padding key."""
    return not_padding(token_kind)


def longformer_band_mask(token_kind: torch.Tensor, window: int) -> MaskMod:
    """A local row's band keys: in its window and LOCAL. With one column per global slot (`global_slots`) they
    are exactly `longformer_local_mask`'s keys, each counted once (a global key in the window is not a band
    key); the blocked backends (banded, Triton) attend in these two parts."""
    return and_masks(sliding_window(window), local_key(token_kind))


def dense_mask(mask_mod: MaskMod, batch: int, heads: int, q_len: int, kv_len: int, device=None) -> torch.Tensor:
    """Evaluate `mask_mod` on the full grid -> bool (batch, heads, q_len, kv_len), by broadcasting indices."""
    b = torch.arange(batch, device=device)[:, None, None, None]
    h = torch.arange(heads, device=device)[None, :, None, None]
    q_idx = torch.arange(q_len, device=device)[None, None, :, None]
    kv_idx = torch.arange(kv_len, device=device)[None, None, None, :]
    return mask_mod(b, h, q_idx, kv_idx).expand(batch, heads, q_len, kv_len)


def band_parts(token_kind: torch.Tensor, window: int, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`longformer_band_mask` in the slab coordinates of the blocked backends, as its two factors.

    Queries go in blocks of `block` rows; block k reads the slab of `block + window` keys starting at position
    k * block - window // 2 (positions outside 0..seq-1 are padding). token_kind (batch, seq) ->
    in_window (block, block + window) bool: is slab column c in the window of block row r (the same in every
    block: row r sits `window // 2` positions after column r); local (batch, blocks, block + window) bool: is
    slab column c of block k an ordinary token. Row r of block k may attend column c iff both (`band_keys`).
    """
    batch, seq = token_kind.shape
    blocks = -(-seq // block)
    half = window // 2
    slab_kind = F.pad(token_kind, (half, blocks * block - seq + half), value=PADDING).unfold(1, block + window, block)
    device = token_kind.device
    cols = torch.arange(block + window, device=device)
    in_window = sliding_window(window)(None, None, torch.arange(block, device=device)[:, None] + half, cols[None, :])
    slabs = torch.arange(batch * blocks, device=device)[:, None]
    local = local_key(slab_kind.reshape(batch * blocks, block + window))(slabs, None, None, cols[None, :])
    return in_window, local.view(batch, blocks, block + window)


def band_keys(token_kind: torch.Tensor, window: int, block: int) -> torch.Tensor:
    """bool (batch, blocks, block, block + window): may row r of block k attend column c of its slab (`band_parts`)?"""
    in_window, local = band_parts(token_kind, window, block)
    return in_window[None, None] & local[:, :, None, :]


# ---------------------------------------------------------------------------------------------- global slots
def global_slots(token_kind: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions of the global tokens of each row, in order, and which of the `x` slots are used.

    token_kind: (batch, seq) -> positions (batch, x) long (unused slots point at 0), valid (batch, x) bool,
    where x = the most global tokens in any row. Kinds 1 1 2 1 2 / 2 1 1 1 1 -> [[2, 4], [0, 0]],
    valid [[True, True], [True, False]].
    """
    is_global = token_kind == GLOBAL
    counts = is_global.sum(dim=1)
    x = int(counts.max()) if counts.numel() else 0
    order = torch.argsort((~is_global).to(torch.int8), dim=1, stable=True)[:, :x]
    valid = torch.arange(x, device=token_kind.device)[None, :] < counts[:, None]
    return torch.where(valid, order, torch.zeros_like(order)), valid


def gather_rows(t: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """t (batch, heads, seq, d), positions (batch, n) -> (batch, heads, n, d): the rows at `positions`."""
    index = positions[:, None, :, None].expand(-1, t.shape[1], -1, t.shape[3])
    return torch.gather(t, 2, index)


def at_global_tokens(slot_rows: torch.Tensor, token_kind: torch.Tensor) -> torch.Tensor:
    """The inverse of gathering the global slots: slot_rows (batch, heads, x, d) in slot order -> (batch, heads,
    seq, d) holding at each global token its slot's row (elsewhere slot 0's row, not meant to be read: select
    by the token kinds). A gather, not an in-place scatter, so autograd sees a plain function."""
    slot = ((token_kind == GLOBAL).cumsum(dim=1) - 1).clamp(min=0)  # global token p: number of globals before p
    return gather_rows(slot_rows, slot)


# ---------------------------------------------------------------------------------------------- global rows
def global_rows(global_query, global_key, global_value, token_kind, slots, matmul_dtype: torch.dtype | None = None,
                dropout_p: float = 0.0, training: bool = False) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The global-row pass: each global token's query against every non-padding key, global projections.

    global_query/key/value (batch, heads, seq, d), query pre-scaled; slots = `global_slots(token_kind)`.
    -> context (batch, heads, x, d) in slot order and the inputs' dtype, probabilities (batch, heads, x, seq)
    (zero on padding keys and unused slots; an unused slot's context is never read); (None, None) when no row has
    a global token.
    Scores and softmax in `softmax_dtype`. `matmul_dtype` is the dtype of both matmuls: None keeps the inputs'
    (half-precision scores and probabilities rounded as HF rounds them: the banded backend), float32 leaves
    half-precision inputs unrounded until the result (flex). `dropout_p` drops probabilities when `training`.
    """
    positions, valid = slots
    if positions.shape[1] == 0:
        return None, None
    work = matmul_dtype or global_query.dtype
    queries = gather_rows(global_query, positions).to(work)
    scores = torch.matmul(queries, global_key.to(work).transpose(-1, -2)).to(softmax_dtype(global_query.dtype))
    allowed = (token_kind != PADDING)[:, None, None, :] & valid[:, None, :, None]
    probs = torch.softmax(scores.masked_fill(~allowed, MASKED), dim=-1).masked_fill(~allowed, 0.0).to(work)
    if dropout_p and training:
        probs = F.dropout(probs, p=dropout_p)
    return torch.matmul(probs, global_value.to(work)).to(global_query.dtype), probs


def global_rows_pay_from_states(global_count: int, heads: int, d_model: int) -> bool:
    """Whether `global_rows_from_states` is cheaper than projecting every token's global key and value: it
    multiplies heads x global_count pulled-back queries by the hidden states twice (scores and mixture), against
    2 x d_model per token for the two projections; taken while that is at most half of them."""
    return 2 * heads * global_count <= d_model


def global_rows_from_states(queries: torch.Tensor, hidden: torch.Tensor, key_weight: torch.Tensor,
                            key_bias: torch.Tensor, value_weight: torch.Tensor, value_bias: torch.Tensor,
                            token_kind: torch.Tensor, slots) -> torch.Tensor | None:
    """`global_rows`' context computed from the hidden states, without the global key and value of every token.

    A global row needs `key_global(h_j)` and `value_global(h_j)` of every token j only through two sums, so the
    projections can be moved to the x global queries (x = the most global tokens in any row), per head h with
    its rows W_h, b_h of each projection:

        score_j = q_h . (W_h h_j + b_h) = (W_h^T q_h) . h_j + q_h . b_h
        context = sum_j p_j (W_h h_j + b_h) = W_h (sum_j p_j h_j) + b_h          (the p_j sum to 1)

    which costs ~4 x heads x x x d_model per token instead of 2 x d_model^2 (`global_rows_pay_from_states`).
    Same values up to float rounding (the sums are taken in another order).

    queries (batch, heads, x, head_dim): the global tokens' global queries in slot order, pre-scaled; hidden
    (batch, seq, d_model); weights (d_model, d_model) and biases (d_model,) of `key_global` / `value_global`
    (nn.Linear's layout, heads split along the output axis). -> context (batch, heads, x, head_dim) in slot
    order (an unused slot's row is never read), or None when no row has a global token.
    """
    valid = slots[1]
    if valid.shape[1] == 0:
        return None
    batch, heads, x, head_dim = queries.shape
    seq, d_model = hidden.shape[1], hidden.shape[2]
    pulled = torch.matmul(queries, key_weight.view(heads, head_dim, d_model))  # W_h^T q_h: (batch, heads, x, d)
    scores = torch.matmul(pulled.reshape(batch, heads * x, d_model), hidden.transpose(1, 2))
    scores = scores.view(batch, heads, x, seq) + (queries * key_bias.view(heads, 1, head_dim)).sum(-1, keepdim=True)
    allowed = (token_kind != PADDING)[:, None, None, :] & valid[:, None, :, None]
    probs = torch.softmax(scores.to(softmax_dtype(scores.dtype)).masked_fill(~allowed, MASKED), dim=-1)
    mixed = torch.matmul(probs.to(hidden.dtype).reshape(batch, heads * x, seq), hidden)  # sum_j p_j h_j
    context = torch.matmul(mixed.view(batch, heads, x, d_model),
                           value_weight.view(heads, head_dim, d_model).transpose(-1, -2))  # W_h (sum_j p_j h_j)
    return context + value_bias.view(heads, 1, head_dim)


# ---------------------------------------------------------------------------------------------- rows by kind
def rows_where(t: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """t (batch, heads, seq, n) kept on the rows where `rows` (batch, seq) is True, zero elsewhere (`where`, not
    a product: a row with nothing to attend may hold NaN)."""
    return torch.where(rows[:, None, :, None], t, torch.zeros((), dtype=t.dtype, device=t.device))


def assemble_rows(local_context: torch.Tensor, global_context: torch.Tensor | None,
                  token_kind: torch.Tensor) -> torch.Tensor:
    """Every row's context by its kind -> (batch, heads, seq, d): LOCAL rows from `local_context` (batch, heads,
    seq, d), GLOBAL rows from their slot of `global_context` (batch, heads, x, d; None when no row has a global
    token), PADDING rows zero."""
    context = local_context
    if global_context is not None:
        context = torch.where((token_kind == GLOBAL)[:, None, :, None], at_global_tokens(global_context, token_kind),
                              context)
    return rows_where(context, token_kind != PADDING)


def assemble_rows_(context: torch.Tensor, global_context: torch.Tensor | None, token_kind: torch.Tensor,
                   slots: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """`assemble_rows` written into `context` (batch, heads, seq, d), a fresh local result that no autograd graph
    holds (the CPU inference path): the global rows are put at their tokens and padding rows zeroed in place, so
    no full-size gather or selection pass is made. Same values."""
    positions, valid = slots
    if global_context is not None:
        batch_index, slot_index = valid.nonzero(as_tuple=True)
        context[batch_index, :, positions[batch_index, slot_index]] = global_context[batch_index, :, slot_index]
    padding = token_kind == PADDING
    if bool(padding.any()):
        context.masked_fill_(padding[:, None, :, None], 0.0)
    return context
