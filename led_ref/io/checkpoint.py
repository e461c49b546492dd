"""Reading and writing HF-format LED checkpoints with NumPy and safetensors only (never pickle, never torch).

A checkpoint is a folder holding `config.json` and the weights, either one `model.safetensors` or shards
listed by `model.safetensors.index.json`. Tensor names are HF's (see `led_ref.io.names`): head models keep
the encoder-decoder under `led.`, the tied embeddings (`*.embed_tokens.weight`, `lm_head.weight`) are not
stored. The functions here go one step at a time, so each can be used and tested alone:

    read_state_dict(path)            file names -> arrays, exactly as stored
    infer_architecture(names)        which HF class wrote them
    adapt_state_dict(w, cfg, arch)   map them onto the class you want (tied copies, `led.` prefix, heads)
    check_state_dict(w, cfg, arch)   every missing / unexpected / misshapen / non-finite tensor, in one error
                                     (non-finite in the dtype the weights are loaded as, too: see FloatRange)

`adapt_state_dict` and `check_state_dict` are the one naming and checking policy of both packages: they work
on names and shapes, and take the few array operations they need (`ArrayOps`) as an argument, NumPy's by
default; led_torch passes torch's, so its tensors are adapted and checked here without led_ref importing torch.
    load_checkpoint(dir)             all of the above plus config.json
    save_checkpoint(dir, ...)        the inverse, atomically, optionally sharded
    save_model(dir, ...)             what both packages' save_pretrained write (+ generation_config.json)
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save as safetensors_bytes

from .config import LEDConfig
from .files import describe, parse_json, read_json, remove_stale_temps, write_temp
from .generation_settings import GenerationConfig, split_for_saving
from .names import ARCHITECTURES, TIED_NAMES, TIED_TOP_LEVEL, base_prefix, checkpoint_shapes, head_shapes

WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
CONFIG_NAME = "config.json"
PICKLE_NAMES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
SHARD_PATTERN = re.compile(r"^model-\d{5}-of-\d{5}\.safetensors$")
# HF's loader requires this metadata to accept a safetensors file as PyTorch weights.
SAFETENSORS_METADATA = {"format": "pt"}

# Head weights by the class that owns them (top-level names, no prefix).
_HEAD_MARKERS = {
    "final_logits_bias": "LEDForConditionalGeneration",
    "classification_head.": "LEDForSequenceClassification",
    "qa_outputs.": "LEDForQuestionAnswering",
}


class CheckpointError(ValueError):
    """The weights do not fit the model: the message lists every offending tensor."""


@dataclass(frozen=True)
class ArrayOps:
    """What the naming and checking policy needs from an array type (NumPy arrays here, torch tensors in
    led_torch); everything else it reads is names and `.shape`."""

    equal: Callable[[Any, Any], bool]  # same shape and the same values (a tied copy of shared.weight)
    non_finite: Callable[[Any], int]  # how many entries are inf or nan
    # (smallest, largest) entry as floats: nan when any entry is nan, (0.0, 0.0) when there is none
    bounds: Callable[[Any], tuple[float, float]]
    zeros: Callable[[tuple[int, ...], Mapping[str, Any]], Any]  # zeros of a shape, in the weights' float dtype


def _numpy_bounds(a) -> tuple[float, float]:
    a = np.asarray(a)
    if a.size == 0:
        return 0.0, 0.0
    if a.dtype.kind not in "biuf":  # complex, strings, objects: non_finite judges them, as before
        return math.nan, math.nan
    return float(a.min()), float(a.max())


NUMPY_OPS = ArrayOps(
    equal=lambda a, b: bool(np.array_equal(a, b)),
    non_finite=lambda a: int(np.size(a) - np.count_nonzero(np.isfinite(a))),
    bounds=_numpy_bounds,
    zeros=lambda shape, weights: np.zeros(shape, dtype=_float_dtype(weights)),
)


@dataclass(frozen=True)
class FloatRange:
    """How far the float dtype that weights are cast to reaches: `max` is its largest finite value, and the cast
    turns every magnitude from `overflow` up into inf. A weight finite in the file but past `overflow` (1e39
    stored as float64, loaded as float32) would load as inf, so the checks refuse it like a stored inf."""

    name: str
    max: float
    overflow: float


def float_range(dtype, via_float32: bool = False) -> FloatRange:
    """The FloatRange of a NumPy float dtype, of "bfloat16", or of a torch dtype (read by name: led_ref does not
    import torch).

    Round to nearest sends everything from max + half a step to inf (the tie too: max ends in an odd bit).
    `via_float32`: the cast rounds to float32 first, as torch's float64 -> float16/bfloat16 does; a float64
    less than half a float32 step below that threshold then rounds onto it (an even float32) and on to inf, so
    the threshold moves down by that half step. Both are exact: every threshold here is a float64.
    """
    key = str(dtype).removeprefix("torch.") if type(dtype).__module__ == "torch" else dtype
    if isinstance(key, str) and key == "bfloat16":  # not a NumPy dtype
        nmant, maxexp = 7, 128  # float32's exponent range, 7 stored mantissa bits
    else:
        np_dtype = float_dtype(key)
        info = np.finfo(np_dtype)
        key, nmant, maxexp = np_dtype.name, info.nmant, info.maxexp
    if nmant > 52:  # wider than float64: every float64 fits
        return FloatRange(key, math.inf, math.inf)
    largest = math.ldexp(2.0 - math.ldexp(1.0, -nmant), maxexp - 1)
    overflow = largest + math.ldexp(1.0, maxexp - 2 - nmant)  # inf for float64, which nothing finite overflows
    if via_float32 and nmant < 23:
        overflow -= math.ldexp(1.0, maxexp - 2 - 23)
    return FloatRange(key, largest, overflow)


def shape_of(value: Any) -> tuple[int, ...]:
    """The shape of an array, a tensor or a nested list, as a tuple of ints."""
    shape = getattr(value, "shape", None)
    return tuple(int(n) for n in shape) if shape is not None else tuple(np.shape(value))


# ------------------------------------------------------------------------------------------- reading
def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every tensor stored under `path` (a checkpoint folder or one `.safetensors` file), names as stored.

    Folders: `model.safetensors`, else the shards named by `model.safetensors.index.json`. PyTorch pickles
    (`pytorch_model.bin`) are refused: unpickling runs arbitrary code. bfloat16 tensors come back float32.
    """
    path = os.fspath(path)
    if os.path.isfile(path):
        if not path.endswith(".safetensors"):
            if os.path.basename(path) in PICKLE_NAMES or path.endswith((".bin", ".pt", ".pth")):
                raise CheckpointError(_pickle_refusal(path))
            raise CheckpointError(f"path={path!r} is not a .safetensors file or a checkpoint folder")
        return read_safetensors_file(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"checkpoint path {path!r} does not exist")
    single = os.path.join(path, WEIGHTS_NAME)
    if os.path.isfile(single):
        return read_safetensors_file(single)
    index = os.path.join(path, WEIGHTS_INDEX_NAME)
    if os.path.isfile(index):
        return _read_sharded(path, index)
    pickles = [n for n in PICKLE_NAMES if os.path.isfile(os.path.join(path, n))]
    if pickles:
        raise CheckpointError(_pickle_refusal(os.path.join(path, pickles[0])))
    raise FileNotFoundError(
        f"no weights in checkpoint folder {path!r}: looked for {WEIGHTS_NAME} and {WEIGHTS_INDEX_NAME}"
    )


def _pickle_refusal(path: str) -> str:
    return (
        f"{path!r} is a PyTorch pickle; led_ref never unpickles (it can run arbitrary code). Convert the folder "
        "to safetensors with `led-parity convert SRC_FOLDER NEW_FOLDER` (torch's weights-only loader, no code "
        "runs), or load it through led_torch, which uses the same loader."
    )


def read_safetensors_file(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The tensors of one safetensors file, in file order; bfloat16 (unknown to NumPy) widened to float32."""
    path = os.fspath(path)
    header = safetensors_header(path)
    tensors: dict[str, np.ndarray] = {}
    try:
        with safe_open(path, framework="np") as fh:
            for name, info in header.items():
                if info["dtype"] == "BF16":
                    tensors[name] = _read_bfloat16(path, header, name)
                else:
                    tensors[name] = fh.get_tensor(name)
    except (SafetensorError, OSError, KeyError, TypeError, ValueError) as err:  # truncated or damaged file
        if isinstance(err, CheckpointError):
            raise
        raise CheckpointError(f"{path!r} is not a readable safetensors file (truncated or damaged?): {err}") from None
    return tensors


def safetensors_header(path: str | os.PathLike) -> dict[str, dict]:
    """The JSON header of a safetensors file (name -> dtype, shape, data_offsets), without metadata.

    Every entry is checked (dtype known, shape of non-negative ints, offsets inside the data and as long as
    dtype and shape say, no two tensors overlapping): a damaged or crafted header is a CheckpointError
    naming the file, the tensor and what is wrong, never a TypeError/KeyError from deep inside.
    """
    path = os.fspath(path)
    file_size = os.path.getsize(path)
    with open(path, "rb") as fh:
        raw = fh.read(8)
        if len(raw) != 8:
            raise CheckpointError(f"{path!r} is not a safetensors file (shorter than 8 bytes)")
        (size,) = struct.unpack("<Q", raw)
        if size > file_size - 8:
            raise CheckpointError(f"{path!r} is not a safetensors file (header size {size} is more than the "
                                  f"{file_size - 8} bytes after the size field)")
        header = parse_json(fh.read(size), path, "safetensors header", dict, CheckpointError)
    metadata = header.pop("__metadata__", None)
    if metadata is not None and not (isinstance(metadata, dict)
                                     and all(isinstance(v, str) for v in metadata.values())):
        raise CheckpointError(f"{path!r}: the safetensors header's __metadata__ must map strings to strings, "
                              f"found {describe(metadata)}")
    _check_header_entries(path, header, file_size - 8 - size)
    return header


# Bytes per element of every dtype safetensors stores.
_DTYPE_SIZES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
                "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


def _check_header_entries(path: str, header: dict, data_size: int) -> None:
    spans = []
    for name, info in header.items():
        where = f"{path!r}: tensor {name!r} in the safetensors header"
        if not isinstance(info, dict):
            raise CheckpointError(f"{where} must be an object with dtype, shape and data_offsets, "
                                  f"found {describe(info)}")
        missing = [key for key in ("dtype", "shape", "data_offsets") if key not in info]
        if missing:
            raise CheckpointError(f"{where} lacks {', '.join(missing)}")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dtype, str) or dtype not in _DTYPE_SIZES:
            raise CheckpointError(f"{where} has an unknown dtype {dtype!r}; known: {', '.join(_DTYPE_SIZES)}")
        if not isinstance(shape, list) or not all(_is_count(n) for n in shape):
            raise CheckpointError(f"{where} has shape {shape!r}; a shape is a list of non-negative ints")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(n) for n in offsets)):
            raise CheckpointError(f"{where} has data_offsets {offsets!r}; expected [begin, end], ints >= 0")
        begin, end = offsets
        nbytes = _DTYPE_SIZES[dtype] * math.prod(shape)
        if not begin <= end <= data_size:
            raise CheckpointError(f"{where} has data_offsets [{begin}, {end}] outside the {data_size} data bytes "
                                  "(truncated file?)")
        if end - begin != nbytes:
            raise CheckpointError(f"{where} has data_offsets [{begin}, {end}] ({end - begin} bytes) but dtype "
                                  f"{dtype} and shape {shape} need {nbytes} bytes")
        spans.append((begin, end, name))
    spans.sort()
    for (_, end, first), (begin, _, second) in zip(spans, spans[1:], strict=False):
        if begin < end:
            raise CheckpointError(f"{path!r}: tensors {first!r} and {second!r} overlap in the safetensors data")


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _read_bfloat16(path: str, header: dict, name: str) -> np.ndarray:
    # bfloat16 is the top half of a float32: widen by shifting the 16 bits into the high half.
    with open(path, "rb") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
        start, end = header[name]["data_offsets"]
        fh.seek(8 + size + start)
        raw = np.frombuffer(fh.read(end - start), dtype="<u2")
    return (raw.astype(np.uint32) << 16).view(np.float32).reshape(header[name]["shape"])


def _read_sharded(folder: str, index_path: str) -> dict[str, np.ndarray]:
    index = read_json(index_path, "shard index", dict, CheckpointError)
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, Mapping):
        raise CheckpointError(f"{index_path!r} has no 'weight_map' object (found {describe(weight_map)})")
    for name, shard in weight_map.items():
        if not isinstance(shard, str) or not shard:
            raise CheckpointError(f"{index_path!r}: weight_map[{name!r}] must be a shard file name, "
                                  f"found {describe(shard)}")
    shards = sorted(set(weight_map.values()))
    for shard in shards:
        if os.path.basename(shard) != shard or shard in (".", "..") \
                or not os.path.isfile(os.path.join(folder, shard)):
            raise FileNotFoundError(f"shard {shard!r} named in {index_path!r} is missing from {folder!r}")
    tensors: dict[str, np.ndarray] = {}
    for shard in shards:
        content = read_safetensors_file(os.path.join(folder, shard))
        listed = {name for name, owner in weight_map.items() if owner == shard}
        if set(content) != listed:
            raise CheckpointError(
                f"shard {shard!r} does not match {WEIGHTS_INDEX_NAME}: listed but absent "
                f"{sorted(listed - set(content))}, present but not listed {sorted(set(content) - listed)}"
            )
        tensors.update(content)
    return {name: tensors[name] for name in weight_map}


# ------------------------------------------------------------------------------- names and architectures
def infer_architecture(names: Iterable[str]) -> str:
    """The HF class that stores exactly these names: its head's weights, else the `led.` prefix."""
    names = list(names)
    found = {arch for name in names for marker, arch in _HEAD_MARKERS.items() if name.startswith(marker)}
    if len(found) > 1:
        raise CheckpointError(f"names hold the weights of several heads: {sorted(found)}")
    if found:
        return found.pop()
    if any(name.startswith("led.") for name in names):
        # A head model without its own head weights: generation's final_logits_bias may be left out.
        return "LEDForConditionalGeneration"
    return "LEDModel"


def split_names(name: str) -> tuple[str, str]:
    """('base', name without `led.`) for encoder-decoder weights, ('head', name) for a task head's."""
    if any(name.startswith(marker) for marker in _HEAD_MARKERS) or name in TIED_TOP_LEVEL:
        return "head", name
    return "base", name[len("led."):] if name.startswith("led.") else name


def adapt_state_dict(
    weights: Mapping[str, np.ndarray],
    config: LEDConfig,
    architecture: str,
    allow_missing_head: bool = False,
    ops: ArrayOps = NUMPY_OPS,
) -> dict[str, np.ndarray]:
    """Rename a file's tensors for `architecture`: the result has exactly the names that class stores.

    - tied copies (`*.embed_tokens.weight`, `lm_head.weight`) are dropped after checking they equal
      `shared.weight` (a copy that differs is an error: the model could not honour it);
    - the `led.` prefix is added or stripped, so base and head checkpoints load into each other;
    - other heads' weights are dropped; this head's missing weights are an error unless
      `allow_missing_head` (the caller then initialises them); a missing `final_logits_bias` becomes zeros,
      as HF does. Unknown names are kept, for `check_state_dict` to report.
    """
    _check_architecture(architecture)
    base: dict[str, np.ndarray] = {}
    heads: dict[str, np.ndarray] = {}
    for name, value in weights.items():
        kind, short = split_names(name)
        target = base if kind == "base" else heads
        if short in target:
            raise CheckpointError(f"tensor {short!r} is stored twice (with and without the 'led.' prefix)")
        target[short] = value
    _drop_tied_copies(base, heads, ops)
    own_head = head_shapes(config, architecture)
    prefix = base_prefix(architecture)
    adapted = {prefix + name: value for name, value in base.items()}
    for name, value in heads.items():
        owner = next((arch for marker, arch in _HEAD_MARKERS.items() if name.startswith(marker)), architecture)
        if owner == architecture:  # another head's weights are dropped, as HF does
            adapted[name] = value
    missing_head = [name for name in own_head if name not in adapted]
    if architecture == "LEDForConditionalGeneration" and "final_logits_bias" in missing_head:
        adapted["final_logits_bias"] = ops.zeros(own_head["final_logits_bias"], weights)
        missing_head.remove("final_logits_bias")
    if missing_head and not allow_missing_head:
        raise CheckpointError(
            f"the checkpoint has no {architecture} head weights (missing {missing_head}); pass "
            "allow_missing_head=True to initialise them yourself"
        )
    order = list(checkpoint_shapes(config, architecture))
    rank = {name: i for i, name in enumerate(order)}
    return dict(sorted(adapted.items(), key=lambda item: rank.get(item[0], len(rank))))


def _drop_tied_copies(base: dict[str, Any], heads: dict[str, Any], ops: ArrayOps) -> None:
    copies = [(base, n) for n in TIED_NAMES if n in base] + [(heads, n) for n in TIED_TOP_LEVEL if n in heads]
    if "shared.weight" not in base and copies:
        # Some exports keep only a tied copy: it is then the shared embedding.
        store, name = copies[0]
        base["shared.weight"] = store[name]
    for store, name in copies:
        value = store.pop(name)
        shared = base["shared.weight"]
        if shape_of(value) != shape_of(shared) or not ops.equal(value, shared):
            raise CheckpointError(
                f"{name} differs from shared.weight (shapes {shape_of(value)} and {shape_of(shared)}); "
                "LED ties them, so the checkpoint cannot be loaded faithfully"
            )


def _float_dtype(weights: Mapping[str, np.ndarray]) -> np.dtype:
    for value in weights.values():
        if np.issubdtype(np.asarray(value).dtype, np.floating):
            return np.asarray(value).dtype
    return np.dtype(np.float32)


def check_state_dict(
    weights: Mapping[str, np.ndarray],
    config: LEDConfig,
    architecture: str,
    allow_missing_head: bool = False,
    allow_non_finite: bool = False,
    ops: ArrayOps = NUMPY_OPS,
    dtype: Any = None,
) -> None:
    """Raise `CheckpointError` listing every missing, unexpected, misshapen and non-finite tensor at once.

    `dtype` (anything `float_range` takes, or a FloatRange) is what the weights are about to be cast to: a
    weight that is finite but beyond its range is refused too, with its value and the dtype's limit.
    """
    _check_architecture(architecture)
    target = dtype if dtype is None or isinstance(dtype, FloatRange) else float_range(dtype)
    expected = checkpoint_shapes(config, architecture)
    optional = set(head_shapes(config, architecture)) if allow_missing_head else set()
    problems: list[str] = []
    for name, shape in expected.items():
        if name not in weights:
            if name not in optional:
                problems.append(f"missing {name} (expected shape {shape})")
        elif shape_of(weights[name]) != shape:
            problems.append(f"wrong shape {name}: expected {shape}, found {shape_of(weights[name])}")
    for name, value in weights.items():
        if name not in expected:
            problems.append(f"unexpected {name} (shape {shape_of(value)})")
        elif not allow_non_finite and (problem := _finiteness_problem(name, value, target, ops)):
            problems.append(problem)
    if problems:
        raise CheckpointError(
            f"{len(problems)} problem(s) with the weights for {architecture}:\n  " + "\n  ".join(problems)
        )


def _finiteness_problem(name: str, value: Any, target: FloatRange | None, ops: ArrayOps) -> str | None:
    """Why `value` is not finite, or would not be once cast to `target`; None when it is and would be."""
    low, high = ops.bounds(value)
    extreme = high if high >= -low else low  # the entry farthest from zero; nan or inf when any entry is
    if not math.isfinite(extreme):
        bad = ops.non_finite(value)
        return f"non-finite values in {name} ({bad} of {math.prod(shape_of(value))} entries are inf/nan)" \
            if bad else None
    # Rounding is monotone: if the farthest entry stays finite in the cast, every entry does.
    if target is not None and abs(extreme) >= target.overflow:
        return (f"{name} holds {extreme!r}: finite as stored, inf once cast to {target.name} (largest finite "
                f"{target.name} {target.max!r})")
    return None


# ------------------------------------------------------------------------------------------ whole checkpoints
def checkpoint_path(path) -> str:
    """`path` as a string, or a TypeError naming the argument."""
    try:
        return os.fspath(path)
    except TypeError:
        raise TypeError(f"path must be a str or os.PathLike checkpoint folder, got {path!r}") from None


def float_dtype(dtype) -> np.dtype:
    """A NumPy floating dtype from anything np.dtype understands, or a TypeError naming the argument."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be a NumPy floating type such as np.float64, got {dtype!r}") from None
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"dtype must be a NumPy floating type, got {dtype}")
    return dtype


def load_checkpoint(
    directory: str | os.PathLike,
    architecture: str | None = None,
    dtype: np.dtype | type = np.float64,
    allow_missing_head: bool = False,
    allow_non_finite: bool = False,
    cast_to: FloatRange | None = None,
) -> tuple[LEDConfig, dict[str, np.ndarray]]:
    """(config, weights) of an HF-format folder, weights named for `architecture` and cast to `dtype`.

    `architecture=None` uses the class that wrote the file. The weights are exactly the stored tensors of
    that class (tied embeddings absent), checked by `check_state_dict`: finite in the file and in `dtype`
    (1e39 is a finite float64 but an inf float32). A caller that casts the arrays on to a narrower dtype
    (led_torch: float16, bfloat16) passes that dtype's range as `cast_to`, to be checked against instead.
    """
    directory = checkpoint_path(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"checkpoint folder {directory!r} does not exist")
    if not os.path.isfile(os.path.join(directory, CONFIG_NAME)):
        raise FileNotFoundError(f"no {CONFIG_NAME} in checkpoint folder {directory!r}")
    dtype = float_dtype(dtype)
    config = LEDConfig.from_pretrained(directory)
    stored = read_state_dict(directory)
    try:
        architecture = architecture or infer_architecture(stored)
        weights = adapt_state_dict(stored, config, architecture, allow_missing_head=allow_missing_head)
        check_state_dict(weights, config, architecture, allow_missing_head, allow_non_finite,
                         dtype=cast_to or dtype)
    except CheckpointError as err:  # the weights and config.json of this folder disagree: say which files
        raise CheckpointError(f"checkpoint {directory!r} (weights in {_weights_file(directory)}): {err}") \
            from None
    return config, {name: np.asarray(value, dtype=dtype) for name, value in weights.items()}


def _weights_file(directory: str) -> str:
    """The file `read_state_dict` takes a folder's weights from (the index, for shards)."""
    single = os.path.join(directory, WEIGHTS_NAME)
    return WEIGHTS_NAME if os.path.isfile(single) else WEIGHTS_INDEX_NAME


def save_checkpoint(
    directory: str | os.PathLike,
    config: LEDConfig,
    weights: Mapping[str, np.ndarray],
    architecture: str,
    max_shard_size: int | str | None = None,
    allow_non_finite: bool = False,
) -> None:
    """Write `config.json` and the weights (dtype as given, tied copies left out) in HF's layout.

    With `max_shard_size` (bytes, or "10MB"/"2GiB") the weights are split into `model-0000i-of-0000n`
    shards plus `model.safetensors.index.json`. Every file is first written in full to a temp file in the same
    folder; only then are they renamed into place, config.json last, so an interrupted save leaves the previous
    checkpoint as it was (and no temp files). The config and every weight are checked first (non-finite
    weights too, which the loader would refuse, unless `allow_non_finite`): a save that fails on them writes
    nothing. Temp files left by a save that was killed (`led_ref.io.files.TEMP_PREFIX`) are removed.
    """
    # Everything is checked and every byte prepared before the first one is written: a save that fails
    # leaves the folder exactly as it was.
    directory = checkpoint_path(directory)
    if not isinstance(config, LEDConfig):
        raise TypeError(f"config must be an LEDConfig, got {type(config).__name__}")
    _check_architecture(architecture)
    config.validate()  # configs are mutable: one broken after construction is refused here
    to_save = LEDConfig.from_dict(config.to_dict() | {"architectures": [architecture]})
    config_bytes = to_save.to_json_string().encode("utf-8")
    weights = adapt_state_dict(weights, config, architecture)
    check_state_dict(weights, config, architecture, allow_non_finite=allow_non_finite)
    for name, value in weights.items():
        if np.asarray(value).dtype.kind not in "biuf":
            raise CheckpointError(f"weight {name} has dtype {np.asarray(value).dtype}; safetensors stores numbers")
    limit = None if max_shard_size is None else parse_size(max_shard_size)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise FileExistsError(f"cannot save a checkpoint to {directory!r}: it is a file, not a folder")
    shards = plan_shards(weights, limit)
    # File name -> its bytes, produced only when written (one shard in memory at a time).
    files: dict[str, Callable[[], bytes]] = {}
    if len(shards) == 1:
        files[WEIGHTS_NAME] = partial(_safetensors_bytes, weights, shards[0])
    else:
        weight_map: dict[str, str] = {}
        for i, names in enumerate(shards, start=1):
            shard = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
            files[shard] = partial(_safetensors_bytes, weights, names)
            weight_map |= {name: shard for name in names}
        total = sum(np.asarray(v).nbytes for v in weights.values())
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        files[WEIGHTS_INDEX_NAME] = (json.dumps(index, indent=2) + "\n").encode
    files[CONFIG_NAME] = lambda: config_bytes  # renamed last
    os.makedirs(directory, exist_ok=True)
    remove_stale_temps(directory)  # left by a save that was killed mid-write
    _write_files_atomic(directory, files)
    _remove_stale_weights(directory, set(files))


def save_model(directory: str | os.PathLike, config: LEDConfig, generation_config: GenerationConfig | None,
               weights: Mapping[str, np.ndarray], architecture: str) -> None:
    """A model folder as HF's save_pretrained writes it, for both packages: generation parameters move from
    the config into generation_config.json (null in config.json), then the checkpoint, then that file."""
    config_dict, generation = split_for_saving(config, generation_config)
    save_checkpoint(directory, LEDConfig.from_dict(config_dict), weights, architecture)
    generation.save_pretrained(directory)


def plan_shards(weights: Mapping[str, np.ndarray], limit: int | None) -> list[list[str]]:
    """Names grouped into consecutive shards of at most `limit` bytes (a bigger tensor gets its own)."""
    shards: list[list[str]] = [[]]
    size = 0
    for name, value in weights.items():
        nbytes = np.asarray(value).nbytes
        if limit is not None and shards[-1] and size + nbytes > limit:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += nbytes
    return shards


def parse_size(size: int | str) -> int:
    """Bytes from an int or a string such as "500KB", "10MB", "2GiB" (HF's convention: KB=1000, KiB=1024)."""
    if isinstance(size, bool) or not isinstance(size, (int, str)):
        raise TypeError(f"max_shard_size must be an int or a string like '10MB', got {size!r}")
    if isinstance(size, int):
        value = size
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*", size, flags=re.IGNORECASE)
        if not match:
            raise ValueError(f"max_shard_size={size!r} is not a size like '500KB', '10MB' or '2GiB'")
        unit = (match.group(2) or "B").upper()
        powers = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
                  "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
        value = int(float(match.group(1)) * powers[unit])
    if value <= 0:
        raise ValueError(f"max_shard_size must be > 0 bytes, got {size!r}")
    return value


def _safetensors_bytes(weights: Mapping[str, np.ndarray], names: list[str]) -> bytes:
    return safetensors_bytes({n: np.ascontiguousarray(weights[n]) for n in names}, metadata=SAFETENSORS_METADATA)


def _write_files_atomic(directory: str, files: dict[str, Callable[[], bytes]]) -> None:
    """Every file is written in full to a temp file first; only then are they all renamed into place, so an
    interrupted write (disk full, killed process) leaves the previous checkpoint untouched and no temp files."""
    staged: list[tuple[str, str]] = []
    try:
        for name, produce in files.items():
            staged.append((write_temp(directory, produce()), os.path.join(directory, name)))
        for tmp, path in staged:
            os.replace(tmp, path)
    finally:
        for tmp, _ in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)


def _remove_stale_weights(directory: str, keep: set[str]) -> None:
    # A previous save in another layout would shadow or contradict the new one.
    for name in os.listdir(directory):
        stale = name in (WEIGHTS_NAME, WEIGHTS_INDEX_NAME) or SHARD_PATTERN.match(name)
        if stale and name not in keep:
            os.unlink(os.path.join(directory, name))


def _check_architecture(architecture: str) -> None:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}; got {architecture!r}")


# ------------------------------------------------------------------------------------------ the HF hub cache
HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<revision>[\w./-]+))?$")


def hub_cache_dir() -> str:
    """Where huggingface_hub keeps downloads: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub
    ($XDG_CACHE_HOME replacing ~/.cache)."""
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            return os.path.expanduser(os.environ[variable])
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.environ["HF_HOME"]), "hub")
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "huggingface", "hub")


def resolve_checkpoint(path: str | os.PathLike) -> str:
    """A checkpoint folder: `path` itself when it exists, else a hub id ("allenai/led-base-16384", optionally
    "@revision") looked up in the local HF cache without any network access:

        <cache>/models--allenai--led-base-16384/refs/main          -> the commit hash
        <cache>/models--allenai--led-base-16384/snapshots/<hash>/  -> config.json, ... (symlinks into blobs/)
    """
    path = checkpoint_path(path)
    match = HUB_ID.match(path)
    if os.path.exists(path) or match is None:
        return path
    repo, revision = match.group("repo"), match.group("revision") or "main"
    cache = hub_cache_dir()
    root = os.path.join(cache, "models--" + repo.replace("/", "--"))
    how = (f"download it first (with network), e.g. `hf download {repo}` or `huggingface-cli download {repo}`, "
           f"or in Python `huggingface_hub.snapshot_download({repo!r})`; set HF_HUB_CACHE or HF_HOME if your "
           "cache is elsewhere")
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{path!r} is neither a folder nor a model in the local HF cache {cache!r} "
                                f"(no {os.path.basename(root)}/): {how}")
    commit = revision
    ref = os.path.join(root, "refs", revision)
    if os.path.isfile(ref):
        with open(ref, encoding="utf-8") as fh:
            commit = fh.read().strip()
    snapshot = os.path.join(root, "snapshots", commit)
    if not re.fullmatch(r"[\w.-]+", commit) or not os.path.isdir(snapshot):
        raise FileNotFoundError(f"{repo!r} revision {revision!r} is not in the local HF cache {root!r} "
                                f"(no snapshot {commit!r}): {how}")
    if not os.path.isfile(os.path.join(snapshot, CONFIG_NAME)):
        raise FileNotFoundError(f"the cached snapshot {snapshot!r} of {repo!r} has no {CONFIG_NAME} (an "
                                f"incomplete download?): {how}")
    return snapshot
