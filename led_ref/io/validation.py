"""Input checks: every bad input is refused with a message naming the argument, the value and the limit.

Two layers. The *rules* (`*_rule` functions: shapes, vocabulary range, 0/1 masks, finiteness, head-mask
shape, position limits, batch agreement, caches) are written once, against shapes and the operations NumPy
arrays and torch tensors share (comparisons, `|`, `&`, `~`, `.any()`, `.sum()`, boolean indexing, `.item()`),
so `led_torch.validation` applies the same rules, with the same messages, to tensors; only dtype and device
checks are its own. The `check_*` functions below them are led_ref's: they convert as well as check (lists
become arrays, masks become int64), so callers write
`ids = check_token_ids("input_ids", input_ids, config.vocab_size)` and use the result.
"""

from __future__ import annotations

import math
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


# ------------------------------------------------------------------ rules shared with led_torch (any array type)
def shape_tuple(array: Any) -> tuple[int, ...]:
    """`array.shape` as a plain tuple, printed the same for NumPy and torch ("(2, 5)", not "torch.Size")."""
    return tuple(int(n) for n in array.shape)


def sequence_rule(name: str, shape: tuple[int, ...]) -> None:
    """Token ids and masks are (batch, sequence), with at least one sequence of at least one token."""
    if len(shape) != 2:
        raise ValueError(f"{name} must have shape (batch, sequence), got shape {shape}")
    if shape[0] == 0 or shape[1] == 0:
        raise ValueError(f"{name} must hold at least one sequence of at least one token, got shape {shape}")


def vocab_rule(name: str, ids: Any, vocab_size: int, allow_ignore: bool = False) -> None:
    """Every id lies in [0, vocab_size); labels may also be IGNORE_INDEX."""
    range_rule(name, ids, "vocab_size", vocab_size, allow_ignore)


def range_rule(name: str, values: Any, limit_name: str, limit: int, allow_ignore: bool = False) -> None:
    """Every value lies in [0, limit) (token ids, class labels); labels may also be IGNORE_INDEX."""
    bad = (values < 0) | (values >= limit)
    if allow_ignore:
        bad = bad & (values != IGNORE_INDEX)
    if bad.any():
        allowed = f"[0, {limit_name}={limit})" + (f" or be {IGNORE_INDEX}" if allow_ignore else "")
        raise ValueError(f"{name} must lie in {allowed}, found {int(values[bad][0])}")


def per_row_rule(name: str, shape: tuple[int, ...], batch: int) -> None:
    """Classification labels hold one entry per row (a scalar passes for a batch of one)."""
    if tuple(shape[:1]) != (batch,) and not (len(shape) == 0 and batch == 1):
        raise ValueError(f"{name} must hold one entry per row (batch={batch}), got shape {tuple(shape)}")


def positions_rule(name: str, shape: tuple[int, ...], batch: int) -> None:
    """Question-answering span positions: one per row, shaped (batch,) or (batch, 1) (HF squeezes the last axis)."""
    shape = tuple(shape)
    if shape[1:] == (1,) and len(shape) == 2:
        shape = shape[:1]
    if shape != (batch,):
        raise ValueError(f"{name} must have shape (batch={batch},), got {shape}")


def same_shape_rule(name: str, shape: tuple[int, ...], expected: tuple[int, ...], of: str = "the logits") -> None:
    if tuple(shape) != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)} (that of {of}), got {tuple(shape)}")


def eos_rule(eos_counts: Any, eos_token_id: int) -> None:
    """Sequence classification pools at the last <eos> of each row: every row needs the same, non-zero count."""
    counts = eos_counts.tolist()
    if any(c != counts[0] for c in counts):
        raise ValueError(f"All examples must have the same number of <eos> tokens; eos_token_id={eos_token_id} "
                         f"counts per row are {counts}")
    if counts[0] == 0:
        raise ValueError(f"input_ids hold no <eos> token (eos_token_id={eos_token_id}) to pool at")


def mask_rule(name: str, mask: Any, shape: tuple[int, ...], of: str = "the ids it masks") -> None:
    """A mask has exactly the shape of what it masks (`of`) and holds only 0 and 1 (a NaN is neither)."""
    if shape_tuple(mask) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} (that of {of}), got {shape_tuple(mask)}")
    bad = (mask != 0) & (mask != 1)
    if bad.any():
        raise ValueError(f"{name} values must be 0 or 1, found {mask[bad][0].item()!r}")


def embeds_rule(name: str, shape: tuple[int, ...], d_model: int) -> None:
    """Input embeddings are (batch > 0, sequence > 0, d_model)."""
    if len(shape) != 3 or shape[-1] != d_model:
        raise ValueError(f"{name} must have shape (batch, sequence, d_model={d_model}), got {shape}")
    if shape[0] == 0 or shape[1] == 0:
        raise ValueError(f"{name} must hold at least one sequence of at least one token, got shape {shape}")


def encoder_hidden_rule(name: str, shape: tuple[int, ...], d_model: int) -> None:
    """A given encoder output is (batch > 0, source > 0, d_model)."""
    if len(shape) != 3 or shape[-1] != d_model:
        raise ValueError(f"{name} must be (batch, seq, d_model={d_model}), got {shape}")
    if shape[0] == 0 or shape[1] == 0:
        raise ValueError(f"{name} must hold at least one row of at least one source position, got shape {shape}")


def head_mask_rule(name: str, shape: tuple[int, ...], layers: int, heads: int) -> None:
    if tuple(shape) != (layers, heads):
        raise ValueError(f"{name} must have shape (layers={layers}, heads={heads}), got {tuple(shape)}")


def finite_rule(name: str, array: Any) -> None:
    """NaN or inf in an input would silently turn every output it reaches into NaN: refuse it by position."""
    bad = (array != array) | (abs(array) == math.inf)  # NaN is the one value unequal to itself
    if bad.any():
        first = int(bad.reshape(-1).nonzero()[0][0])  # the first flat index, for NumPy and torch alike
        where = tuple(int(i) for i in np.unravel_index(first, shape_tuple(array)))
        raise ValueError(f"{name} must be finite, found {array.reshape(-1)[first].item()!r} at index {where} "
                         f"({int(bad.sum())} of {math.prod(shape_tuple(array))} entries are nan/inf)")


def overflow_rule(name: str, array: Any, cast: Any, dtype: Any) -> None:
    """An input cast to the model's dtype must stay finite: values beyond that dtype's range are refused."""
    if ((cast != cast) | (abs(cast) == math.inf)).any():
        raise ValueError(f"{name} holds values beyond the range of the model's dtype {dtype} "
                         f"(largest magnitude {float(abs(array).max()):.3g})")


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


def cache_layout_rule(name: str, cache: Any, layers: int) -> None:
    """A cache as a previous call returned it: one (self_k, self_v, cross_k, cross_v) per decoder layer."""
    if not isinstance(cache, (tuple, list)):
        raise TypeError(f"{name} must be the tuple a previous call returned, got {type(cache).__name__}")
    if len(cache) != layers:
        raise ValueError(f"{name} must hold one entry per decoder layer ({layers}), got {len(cache)}")
    for layer, entry in enumerate(cache):
        if not isinstance(entry, (tuple, list)) or len(entry) != 4:
            got = f"{len(entry)} items" if isinstance(entry, (tuple, list)) else type(entry).__name__
            raise ValueError(f"{name}[{layer}] must be a tuple (self_k, self_v, cross_k, cross_v), got {got}")


def cache_shape_rule(name: str, layer: int, shape: tuple[int, ...], batch: int, heads: int, head_dim: int) -> None:
    """Every cached key/value is (batch, heads, seq, head_dim)."""
    if len(shape) != 4 or shape[0] != batch or shape[1] != heads or shape[3] != head_dim:
        raise ValueError(f"{name}[{layer}] tensors must be (batch={batch}, heads={heads}, seq, "
                         f"head_dim={head_dim}), got {shape}")


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


# ------------------------------------------------------------------ led_ref's converters (NumPy)
def _as_array(name: str, value: Any) -> np.ndarray:
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as err:  # ragged lists
        raise ValueError(f"{name} must be a rectangular array, got {type(value).__name__}: {err}") from None
    if array.dtype == object:
        raise TypeError(f"{name} must be a numeric array, got elements of type object (ragged or mixed list?)")
    return array


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
    sequence_rule(name, ids.shape)
    vocab_rule(name, ids, vocab_size)
    return ids


def check_labels(name: str, value: Any, vocab_size: int) -> np.ndarray:
    """LM labels (batch, seq): token ids in [0, vocab_size) or -100 (ignored)."""
    labels = integer_array(name, value)
    sequence_rule(name, labels.shape)
    vocab_rule(name, labels, vocab_size, allow_ignore=True)
    return labels


def _numeric_or_bool(name: str, array: np.ndarray, what: str = "a numeric or boolean array") -> None:
    if not (array.dtype == bool or np.issubdtype(array.dtype, np.number)):
        raise TypeError(f"{name} must be {what}, got dtype {array.dtype}")


def check_mask(name: str, value: Any, shape: tuple[int, ...], of: str = "the ids it masks") -> np.ndarray:
    """A 0/1 mask of exactly `shape` (that of `of`), as int64 (bool, int and float arrays are accepted)."""
    mask = _as_array(name, value)
    _numeric_or_bool(name, mask)
    mask_rule(name, mask, shape, of)
    return mask.astype(np.int64)


def check_embeds(name: str, value: Any, d_model: int) -> np.ndarray:
    """Input embeddings (batch, seq, d_model) of a floating dtype."""
    embeds = _as_array(name, value)
    if not np.issubdtype(embeds.dtype, np.floating):
        raise TypeError(f"{name} must be a floating array, got dtype {embeds.dtype}")
    embeds_rule(name, embeds.shape, d_model)
    finite_rule(name, embeds)
    return embeds


def check_finite(name: str, array: np.ndarray) -> None:
    """NaN or inf in an input would silently turn every output it reaches into NaN: refuse it by position."""
    finite_rule(name, np.asarray(array))


def check_head_mask(name: str, value: Any, layers: int, heads: int) -> np.ndarray | None:
    """A per-(layer, head) multiplier of shape (layers, heads), or None."""
    if value is None:
        return None
    mask = _as_array(name, value)
    _numeric_or_bool(name, mask, "a numeric array")
    head_mask_rule(name, mask.shape, layers, heads)
    mask = mask.astype(np.float64)
    finite_rule(name, mask)
    return mask


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
    encoder_hidden_rule(name, hidden.shape, d_model)
    finite_rule(name, hidden)
    return as_dtype(name, hidden, dtype)


def as_dtype(name: str, array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """`array` cast to the model's floating `dtype`; values that overflow it are refused by name."""
    with np.errstate(over="ignore"):
        cast = array.astype(dtype, copy=False)
    if cast.dtype != array.dtype:
        overflow_rule(name, array, cast, np.dtype(dtype))
    return cast


def check_cache(name: str, value: Any, layers: int, batch: int, heads: int, head_dim: int) -> tuple | None:
    """A cache as returned by a previous call, as NumPy arrays: one (self_k, self_v, cross_k, cross_v) per
    decoder layer, each (batch, heads, seq, head_dim)."""
    if value is None:
        return None
    cache_layout_rule(name, value, layers)
    cache = tuple(tuple(np.asarray(t) for t in entry) for entry in value)
    for layer, entry in enumerate(cache):
        for t in entry:
            cache_shape_rule(name, layer, t.shape, batch, heads, head_dim)
    return cache
