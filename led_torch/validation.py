"""Input checks on tensors: every bad argument raises ValueError/TypeError naming the argument, the value and
the limit.

The rules themselves (shapes, vocabulary range, 0/1 masks, finiteness, position limits, caches) and their
messages live once in `led_ref.io.validation`, written against shapes and the operations tensors share with
NumPy arrays; what is here is only what is torch's own: tensor types, dtypes and devices.
"""

from __future__ import annotations

import torch

from led_ref.io.validation import (
    cache_layout_rule,
    cache_shape_rule,
    check_flag,  # noqa: F401  (re-exported: led_torch's modules import their checks from here)
    check_same_batch,  # noqa: F401
    embeds_rule,
    encoder_hidden_rule,
    finite_rule,
    head_mask_rule,
    mask_rule,
    overflow_rule,
    positions_rule,
    sequence_rule,
    shape_tuple,
    vocab_rule,
)
from led_ref.io.validation import check_length as _check_length
from led_ref.io.validation import exactly_one as check_exactly_one  # noqa: F401


def _tensor(name: str, value, what: str = "a torch.Tensor") -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__}")


def check_ids(name: str, ids, vocab_size: int, allow_ignore: bool = False) -> None:
    """ids: (batch, seq) integer tensor with values in [0, vocab_size) (or -100 when `allow_ignore`)."""
    _tensor(name, ids, "a torch.Tensor of token ids")
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise TypeError(f"{name} must hold integers, got dtype {ids.dtype}")
    if ids.dtype not in (torch.int64, torch.int32):  # what torch's embedding lookup accepts
        raise TypeError(f"{name} must be an int64 or int32 tensor, got dtype {ids.dtype} (use .long())")
    sequence_rule(name, shape_tuple(ids))
    vocab_rule(name, ids, vocab_size, allow_ignore)


def check_embeds(name: str, embeds, d_model: int) -> None:
    if not isinstance(embeds, torch.Tensor) or not embeds.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating torch.Tensor, got {getattr(embeds, 'dtype', type(embeds))}")
    embeds_rule(name, shape_tuple(embeds), d_model)
    finite_rule(name, embeds)


def check_mask(name: str, mask, shape: tuple[int, int]) -> None:
    """A 0/1 mask of exactly `shape` (bool, integer or float 0.0/1.0), or None."""
    if mask is None:
        return
    _tensor(name, mask)
    if mask.dtype.is_complex:
        raise TypeError(f"{name} must be bool, integer or float, got {mask.dtype}")
    mask_rule(name, mask, shape)


def check_length(name: str, length: int, limit: int, limit_name: str) -> None:
    """led_ref's position-limit rule, in led_torch's argument order."""
    _check_length(name, length, limit_name, limit)


def check_head_mask(name: str, mask, layers: int, heads: int) -> None:
    if mask is None:
        return
    _tensor(name, mask)
    if mask.dtype.is_complex:
        raise TypeError(f"{name} must be a real tensor, got {mask.dtype}")
    head_mask_rule(name, shape_tuple(mask), layers, heads)
    if mask.dtype.is_floating_point:
        finite_rule(name, mask)


def check_positions(name: str, positions, batch: int) -> None:
    """Span positions for question answering: an integer tensor with one entry per row."""
    _tensor(name, positions)
    if positions.dtype.is_floating_point or positions.dtype.is_complex or positions.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor, got dtype {positions.dtype}")
    positions_rule(name, shape_tuple(positions), batch)


def check_encoder_hidden(name: str, hidden, d_model: int) -> None:
    """encoder_outputs[0]: a floating (batch, seq, d_model) tensor."""
    if not isinstance(hidden, torch.Tensor) or not hidden.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating torch.Tensor (the encoder's last hidden state), "
                        f"got {getattr(hidden, 'dtype', type(hidden).__name__)}")
    encoder_hidden_rule(name, shape_tuple(hidden), d_model)
    finite_rule(name, hidden)


def check_cache(name: str, past, layers: int, batch: int, heads: int, head_dim: int, dtype: torch.dtype) -> None:
    """What a previous call returned: per decoder layer (self_k, self_v, cross_k, cross_v), each
    (batch, heads, seq, head_dim) in the model's dtype."""
    cache_layout_rule(name, past, layers)
    for layer, entry in enumerate(past):
        for t in entry:
            _tensor(f"{name}[{layer}]", t, "torch.Tensors")
            cache_shape_rule(name, layer, shape_tuple(t), batch, heads, head_dim)
            if t.dtype != dtype:
                raise TypeError(f"{name}[{layer}] must have the model's dtype {dtype}, got {t.dtype}")


def as_model_dtype(name: str, t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A floating input cast to the model's dtype (float64 from `torch.from_numpy` into a float32 model is
    cast, as led_ref does); values the cast overflows (e.g. 1e5 into float16) are refused by name."""
    if t.dtype == dtype:
        return t
    cast = t.to(dtype)
    overflow_rule(name, t, cast, dtype)
    return cast


def check_device(device) -> torch.device:
    """`device` as a torch.device that exists here: 'cuda' without a CUDA device is refused by name."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device={device!r} is not a device (use 'cpu', 'cuda' or 'cuda:N')") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} but there is no CUDA device here (torch.cuda.is_available() is "
                             "False); use device='cpu'")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(f"device={device!r} but only {torch.cuda.device_count()} CUDA device(s) exist")
    return parsed
