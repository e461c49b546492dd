"""Input checks: every bad input is refused with a message naming the argument, the value and the limit.

Each function converts as well as checks (lists become arrays, masks become int64), so callers write
`ids = check_token_ids("input_ids", input_ids, config.vocab_size)` and use the result.
"""

from __future__ import annotations

from typing import Any

import numpy as np

IGNORE_INDEX = -100  # label value left out of every loss (HF's convention)


def check_window(window, name: str = "window") -> int:
    """`window` as an int, or a TypeError/ValueError naming it: windows are even and at least 2. The one window
    rule of the project (the spec, the explorer, led_torch's backends and the gate's reference use it)."""
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)):
        raise TypeError(f"{name} must be an even int >= 2, got {window!r} ({type(window).__name__})")
    if window < 2 or window % 2:
        raise ValueError(f"{name} must be an even int >= 2, got {window}")
    return int(window)


def _as_array(name: str, value: Any) -> np.ndarray:
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as err:  # ragged lists
        raise ValueError(f"{name} must be a rectangular array, got {type(value).__name__}: {err}") from None
    if array.dtype == object:
        raise TypeError(f"{name} must be a numeric array, got elements of type object (ragged or mixed list?)")
    return array


def _check_2d(name: str, array: np.ndarray) -> None:
    if array.ndim != 2:
        raise ValueError(f"{name} must have shape (batch, sequence), got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} must hold at least one sequence of at least one token, got shape {array.shape}")


def numeric_array(name: str, value: Any) -> np.ndarray:
    """`value` as a rectangular array of numbers or booleans (labels, targets)."""
    array = _as_array(name, value)
    if not (array.dtype == bool or np.issubdtype(array.dtype, np.number)):
        raise TypeError(f"{name} must hold numbers, got dtype {array.dtype}")
    return array


def integer_array(name: str, value: Any) -> np.ndarray:
    """`value` as an int64 array; floats and booleans are refused (token ids are integers)."""
    array = _as_array(name, value)
    if array.dtype == bool or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must hold integers, got dtype {array.dtype}")
    return array.astype(np.int64)


def check_token_ids(name: str, value: Any, vocab_size: int) -> np.ndarray:
    """Token ids (batch, seq) as int64, each in [0, vocab_size)."""
    ids = integer_array(name, value)
    _check_2d(name, ids)
    bad = (ids < 0) | (ids >= vocab_size)
    if np.any(bad):
        raise ValueError(f"{name} must lie in [0, vocab_size={vocab_size}), found {int(ids[bad][0])}")
    return ids


def check_labels(name: str, value: Any, vocab_size: int) -> np.ndarray:
    """LM labels (batch, seq): token ids in [0, vocab_size) or -100 (ignored)."""
    labels = integer_array(name, value)
    _check_2d(name, labels)
    bad = ((labels < 0) | (labels >= vocab_size)) & (labels != IGNORE_INDEX)
    if np.any(bad):
        raise ValueError(
            f"{name} must lie in [0, vocab_size={vocab_size}) or be {IGNORE_INDEX}, found {int(labels[bad][0])}"
        )
    return labels


def check_mask(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """A 0/1 mask of exactly `shape`, as int64 (bool, int and float arrays are accepted)."""
    mask = _as_array(name, value)
    if not (mask.dtype == bool or np.issubdtype(mask.dtype, np.number)):
        raise TypeError(f"{name} must be a numeric or boolean array, got dtype {mask.dtype}")
    if mask.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} (that of the ids it masks), got {mask.shape}")
    bad = (mask != 0) & (mask != 1)
    if np.any(bad):
        raise ValueError(f"{name} values must be 0 or 1, found {mask[bad].flat[0].item()!r}")
    return mask.astype(np.int64)


def check_embeds(name: str, value: Any, d_model: int) -> np.ndarray:
    """Input embeddings (batch, seq, d_model) of a floating dtype."""
    embeds = _as_array(name, value)
    if not np.issubdtype(embeds.dtype, np.floating):
        raise TypeError(f"{name} must be a floating array, got dtype {embeds.dtype}")
    if embeds.ndim != 3 or embeds.shape[-1] != d_model:
        raise ValueError(f"{name} must have shape (batch, sequence, d_model={d_model}), got {embeds.shape}")
    if embeds.shape[0] == 0 or embeds.shape[1] == 0:
        raise ValueError(f"{name} must hold at least one sequence of at least one token, got shape {embeds.shape}")
    check_finite(name, embeds)
    return embeds


def check_finite(name: str, array: np.ndarray) -> None:
    """NaN or inf in an input would silently turn every output it reaches into NaN: refuse it by position."""
    bad = ~np.isfinite(array)
    if np.any(bad):
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name} must be finite, found {array[where].item()!r} at index {where} "
                         f"({int(bad.sum())} of {array.size} entries are nan/inf)")


def check_head_mask(name: str, value: Any, layers: int, heads: int) -> np.ndarray | None:
    """A per-(layer, head) multiplier of shape (layers, heads), or None."""
    if value is None:
        return None
    mask = _as_array(name, value)
    if not (mask.dtype == bool or np.issubdtype(mask.dtype, np.number)):
        raise TypeError(f"{name} must be a numeric array, got dtype {mask.dtype}")
    if mask.shape != (layers, heads):
        raise ValueError(f"{name} must have shape (layers={layers}, heads={heads}), got {mask.shape}")
    mask = mask.astype(np.float64)
    check_finite(name, mask)
    return mask


def check_length(name: str, length: int, limit_name: str, limit: int) -> None:
    """A sequence of `length` tokens must fit the position table of `limit` entries."""
    if length > limit:
        raise ValueError(f"{name} has {length} positions but {limit_name}={limit}")


def check_same_batch(name_a: str, batch_a: int, name_b: str, batch_b: int) -> None:
    if batch_a != batch_b:
        raise ValueError(f"{name_a} has batch size {batch_a} but {name_b} has batch size {batch_b}")


def exactly_one(name_a: str, a: Any, name_b: str, b: Any) -> None:
    """Exactly one of two alternative inputs (ids or embeddings) must be given."""
    if a is not None and b is not None:
        raise ValueError(f"give either {name_a} or {name_b}, not both")
    if a is None and b is None:
        raise ValueError(f"give one of {name_a} or {name_b}; both are None")


def check_flag(name: str, value: Any) -> bool | None:
    """A switch such as `output_attentions`: None, a bool, or 0/1."""
    if value is None or isinstance(value, (bool, np.bool_)):
        return None if value is None else bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    raise TypeError(f"{name} must be True, False or None, got {value!r} ({type(value).__name__})")


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_encoder_hidden(name: str, value: Any, d_model: int, dtype: np.dtype) -> np.ndarray:
    """A given encoder output (batch, source > 0, d_model): floating, finite, cast to the model's `dtype`
    (float64 into a float32 model is cast, as `inputs_embeds` are)."""
    hidden = _as_array(name, value)
    if not np.issubdtype(hidden.dtype, np.floating):
        raise TypeError(f"{name} must be a floating array (the encoder's last hidden state), "
                        f"got dtype {hidden.dtype}")
    if hidden.ndim != 3 or hidden.shape[-1] != d_model:
        raise ValueError(f"{name} must be (batch, seq, d_model={d_model}), got {hidden.shape}")
    if hidden.shape[0] == 0 or hidden.shape[1] == 0:
        raise ValueError(f"{name} must hold at least one row of at least one source position, got shape "
                         f"{hidden.shape}")
    check_finite(name, hidden)
    return as_dtype(name, hidden, dtype)


def as_dtype(name: str, array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """`array` cast to the model's floating `dtype`; values that overflow it are refused by name."""
    with np.errstate(over="ignore"):
        cast = array.astype(dtype, copy=False)
    if cast.dtype != array.dtype and not np.all(np.isfinite(cast)):
        raise ValueError(f"{name} holds values beyond the range of the model's dtype {np.dtype(dtype)} "
                         f"(largest magnitude {float(np.max(np.abs(array))):.3g})")
    return cast


def check_cache_source(name: str, cache: tuple, source_len: int) -> None:
    """A cache's cross-attention keys/values must cover the encoder output they were made from, and its
    self-attention keys/values one common length: a cache from another input is refused by name."""
    self_lens = {entry[i].shape[2] for entry in cache for i in (0, 1)}
    if len(self_lens) > 1:
        raise ValueError(f"{name} self-attention keys/values disagree on the cached length: {sorted(self_lens)}")
    for layer, entry in enumerate(cache):
        for t in entry[2:]:
            if t.shape[2] != source_len:
                raise ValueError(f"{name}[{layer}] cross-attention keys/values cover {t.shape[2]} source positions "
                                 f"but the encoder output has {source_len} (a cache from another input?)")
