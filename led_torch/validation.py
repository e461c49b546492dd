"""Input checks: every bad argument raises ValueError/TypeError naming the argument, the value and the limit."""

from __future__ import annotations

import torch


def check_ids(name: str, ids, vocab_size: int, allow_ignore: bool = False) -> None:
    """ids: (batch, seq) integer tensor with values in [0, vocab_size) (or -100 when `allow_ignore`)."""
    if not isinstance(ids, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of token ids, got {type(ids).__name__}")
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor, got dtype {ids.dtype}")
    if ids.dim() != 2:
        raise ValueError(f"{name} must be 2-D (batch, seq), got shape {tuple(ids.shape)}")
    if ids.shape[1] == 0 or ids.shape[0] == 0:
        raise ValueError(f"{name} must have at least one row and one token, got shape {tuple(ids.shape)}")
    bad = (ids < 0) | (ids >= vocab_size)
    if allow_ignore:
        bad &= ids != -100
    if bad.any():
        value = int(ids[bad][0])
        extra = " or -100" if allow_ignore else ""
        raise ValueError(f"{name} must lie in [0, vocab_size={vocab_size}){extra}, got {value}")


def check_embeds(name: str, embeds, d_model: int) -> None:
    if not isinstance(embeds, torch.Tensor) or not embeds.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating torch.Tensor, got {getattr(embeds, 'dtype', type(embeds))}")
    if embeds.dim() != 3 or embeds.shape[-1] != d_model or embeds.shape[1] == 0 or embeds.shape[0] == 0:
        raise ValueError(f"{name} must have shape (batch, seq>0, d_model={d_model}), got {tuple(embeds.shape)}")


def check_mask(name: str, mask, shape: tuple[int, int]) -> None:
    """A 0/1 mask of exactly `shape` (bool, integer or float 0.0/1.0)."""
    if mask is None:
        return
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(mask).__name__}")
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(mask.shape)}")
    if mask.dtype.is_complex:
        raise TypeError(f"{name} must be bool, integer or float, got {mask.dtype}")
    bad = (mask != 0) & (mask != 1)
    if bad.any():
        raise ValueError(f"{name} values must be 0 or 1, got {mask[bad][0].item()}")


def check_exactly_one(name_a: str, a, name_b: str, b) -> None:
    if (a is None) == (b is None):
        which = "both" if a is not None else "neither"
        raise ValueError(f"give exactly one of {name_a} and {name_b}, got {which}")


def check_length(name: str, length: int, limit: int, limit_name: str) -> None:
    if length > limit:
        raise ValueError(f"{name} has {length} positions, more than {limit_name}={limit}")


def check_batch(name: str, batch: int, expected: int) -> None:
    if batch != expected:
        raise ValueError(f"{name} has batch size {batch}, but the inputs have batch size {expected}")


def check_head_mask(name: str, mask, layers: int, heads: int) -> None:
    if mask is None:
        return
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(mask).__name__}")
    if tuple(mask.shape) != (layers, heads):
        raise ValueError(f"{name} must have shape (layers={layers}, heads={heads}), got {tuple(mask.shape)}")
