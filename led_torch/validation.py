"""Input checks: every bad argument raises ValueError/TypeError naming the argument, the value and the limit."""

from __future__ import annotations

import torch


def check_ids(name: str, ids, vocab_size: int, allow_ignore: bool = False) -> None:
    """ids: (batch, seq) integer tensor with values in [0, vocab_size) (or -100 when `allow_ignore`)."""
    if not isinstance(ids, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of token ids, got {type(ids).__name__}")
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor, got dtype {ids.dtype}")
    if ids.dtype not in (torch.int64, torch.int32):  # what torch's embedding lookup accepts
        raise TypeError(f"{name} must be an int64 or int32 tensor, got dtype {ids.dtype} (use .long())")
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
    check_finite(name, embeds)


def check_finite(name: str, t: torch.Tensor) -> None:
    """NaN or inf in an input would silently turn every output it reaches into NaN: refuse it by position."""
    bad = ~torch.isfinite(t)
    if bad.any():
        where = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(f"{name} must be finite, found {t[where].item()} at index {where} "
                         f"({int(bad.sum())} of {t.numel()} entries are nan/inf)")


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
    if mask.dtype.is_complex:
        raise TypeError(f"{name} must be a real tensor, got {mask.dtype}")
    if mask.dtype.is_floating_point:
        check_finite(name, mask)


def check_flag(name: str, value) -> bool | None:
    """A switch such as `output_attentions`: None, a bool, or 0/1."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise TypeError(f"{name} must be True, False or None, got {value!r} ({type(value).__name__})")


def check_positions(name: str, positions, batch: int) -> None:
    """Span positions for question answering: an integer tensor with one entry per row."""
    if not isinstance(positions, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(positions).__name__}")
    if positions.dtype.is_floating_point or positions.dtype.is_complex or positions.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor, got dtype {positions.dtype}")
    if positions.numel() != batch or positions.dim() > 2:
        raise ValueError(f"{name} must have one entry per row (batch={batch}), got shape {tuple(positions.shape)}")


def check_encoder_hidden(name: str, hidden, d_model: int) -> None:
    """encoder_outputs[0]: a floating (batch, seq, d_model) tensor."""
    if not isinstance(hidden, torch.Tensor) or not hidden.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating torch.Tensor (the encoder's last hidden state), "
                        f"got {getattr(hidden, 'dtype', type(hidden).__name__)}")
    if hidden.dim() != 3 or hidden.shape[-1] != d_model or hidden.shape[0] == 0 or hidden.shape[1] == 0:
        raise ValueError(f"{name} must have shape (batch, seq>0, d_model={d_model}), got {tuple(hidden.shape)}")
    check_finite(name, hidden)


def check_cache(name: str, past, layers: int, batch: int, heads: int, head_dim: int, dtype: torch.dtype) -> None:
    """What a previous call returned: per decoder layer (self_k, self_v, cross_k, cross_v), each
    (batch, heads, seq, head_dim) in the model's dtype."""
    if not isinstance(past, (tuple, list)):
        raise TypeError(f"{name} must be the tuple a previous call returned, got {type(past).__name__}")
    if len(past) != layers:
        raise ValueError(f"{name} must hold one entry per decoder layer ({layers}), got {len(past)}")
    for layer, entry in enumerate(past):
        if not isinstance(entry, (tuple, list)) or len(entry) != 4:
            got = f"{len(entry)} items" if isinstance(entry, (tuple, list)) else type(entry).__name__
            raise ValueError(f"{name}[{layer}] must be a tuple (self_k, self_v, cross_k, cross_v), got {got}")
        for t in entry:
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"{name}[{layer}] must hold torch.Tensors, got {type(t).__name__}")
            if t.dim() != 4 or t.shape[0] != batch or t.shape[1] != heads or t.shape[3] != head_dim:
                raise ValueError(f"{name}[{layer}] tensors must be (batch={batch}, heads={heads}, seq, "
                                 f"head_dim={head_dim}), got {tuple(t.shape)}")
            if t.dtype != dtype:
                raise TypeError(f"{name}[{layer}] must have the model's dtype {dtype}, got {t.dtype}")


def as_model_dtype(name: str, t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A floating input cast to the model's dtype (float64 from `torch.from_numpy` into a float32 model is
    cast, as led_ref does); values the cast overflows (e.g. 1e5 into float16) are refused by name."""
    if t.dtype == dtype:
        return t
    cast = t.to(dtype)
    if not bool(torch.isfinite(cast).all()):
        raise ValueError(f"{name} holds values beyond the range of the model's dtype {dtype} "
                         f"(largest magnitude {float(t.abs().max()):.3g})")
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
