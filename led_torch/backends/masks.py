"""Longformer attention masks as tiny composable `mask_mod` functions (attention-gym style).

A mask_mod is `mask_mod(b, h, q_idx, kv_idx) -> bool tensor`: may query `q_idx` of batch row `b`, head `h`
attend to key `kv_idx`? FlexAttention's `create_block_mask` calls it under vmap with scalar index tensors;
`dense_mask` below calls it once with broadcast index grids, so the same function also gives a plain
(batch, heads, q_len, kv_len) boolean mask for tests and dense backends.

The one expression of Longformer's local rows, "window or global key, not padding":

    longformer_local_mask(token_kind, window)
        = and_masks(or_masks(sliding_window(window), global_key(token_kind)), not_padding(token_kind))

Example, 6 tokens, window 2 (reach 1), token 4 global, token 5 padding (kinds 1 1 1 1 2 0):

          keys 0 1 2 3 4 5
    q 0        # # . . # .     window 0..1, plus global key 4
    q 1        # # # . # .
    q 2        . # # # # .     window 1..3, plus global key 4
    q 3        . . # # # .     window 2..4 (4 is global: one key, counted once)
    q 4        . . . # # .     (row 4 is global: its real row is `longformer_global_mask`)

A global row attends to every non-padding key (`longformer_global_mask`); padding rows attend to nothing
in the contract (their context is zero), whatever a mask says for them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from led_ref.io.validation import check_window  # the project's one window rule

PADDING, LOCAL, GLOBAL = 0, 1, 2

MaskMod = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def sliding_window(window: int) -> MaskMod:
    """Keys within `window // 2` positions of the query, either side (window is the two-sided span)."""
    half = check_window(window) // 2

    def in_window(b, h, q_idx, kv_idx):
        return (q_idx - kv_idx <= half) & (kv_idx - q_idx <= half)

    return in_window


def global_key(token_kind: torch.Tensor) -> MaskMod:
    """Keys that are global tokens of the query's batch row. token_kind: (batch, seq) of 0/1/2."""

    def is_global_key(b, h, q_idx, kv_idx):
        return token_kind[b, kv_idx] == GLOBAL

    return is_global_key


def not_padding(token_kind: torch.Tensor) -> MaskMod:
    """Keys that are not padding in the query's batch row. token_kind: (batch, seq) of 0/1/2."""

    def key_not_padding(b, h, q_idx, kv_idx):
        return token_kind[b, kv_idx] != PADDING

    return key_not_padding


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


def dense_mask(mask_mod: MaskMod, batch: int, heads: int, q_len: int, kv_len: int, device=None) -> torch.Tensor:
    """Evaluate `mask_mod` on the full grid -> bool (batch, heads, q_len, kv_len), by broadcasting indices."""
    b = torch.arange(batch, device=device)[:, None, None, None]
    h = torch.arange(heads, device=device)[None, :, None, None]
    q_idx = torch.arange(q_len, device=device)[None, None, :, None]
    kv_idx = torch.arange(kv_len, device=device)[None, None, None, :]
    return mask_mod(b, h, q_idx, kv_idx).expand(batch, heads, q_len, kv_len)


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
        raise ValueError(f"token_kind values must be 0 (padding), 1 (local) or 2 (global), got values in "
                         f"[{int(token_kind.min())}, {int(token_kind.max())}]")


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
