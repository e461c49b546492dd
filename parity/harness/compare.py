"""Compare two model outputs tensor by tensor, in model order, against the tolerance table.

`flatten_outputs(out)` turns an output object (led_ref, led_torch or HF: anything with HF's field names)
into named float64 arrays in the order the model computes them, so the first row that fails is the
first place the two implementations diverged:

    encoder_hidden_states[0]  encoder_attentions[0]  encoder_global_attentions[0]  encoder_hidden_states[1] ...
    encoder_last_hidden_state  decoder_hidden_states[0]  decoder_attentions[0]  cross_attentions[0] ...
    last_hidden_state  logits | start_logits, end_logits  loss  past_key_values[l][0..3]

Encoder global attentions are compared on their valid slots only: row b has n_b global tokens, slots
s >= n_b hold nothing (HF fills them with garbage, this project with zeros), and they are zeroed on both
sides before comparing; the key axis is cut to the shorter of the two (HF keeps it padded).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from parity.harness.tolerances import scaled_error, tolerance

ENCODER_FIELDS = {"hidden_states": "encoder_hidden_states", "attentions": "encoder_attentions",
                  "global_attentions": "encoder_global_attentions", "last_hidden_state": "encoder_last_hidden_state"}
PER_LAYER = ("encoder_hidden_states", "encoder_attentions", "encoder_global_attentions",
             "decoder_hidden_states", "decoder_attentions", "cross_attentions")
SINGLE = ("encoder_last_hidden_state", "last_hidden_state", "logits", "start_logits", "end_logits", "loss")
CACHE_PARTS = ("self_key", "self_value", "cross_key", "cross_value")


def to_numpy(x) -> np.ndarray:
    """A torch tensor, numpy array or python number as a float64 numpy array."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        x = x.double() if x.is_floating_point() else x
        return x.numpy().astype(np.float64)
    return np.asarray(x, dtype=np.float64)


def _get(out, name):
    if isinstance(out, dict):
        return out.get(name)
    return getattr(out, name, None)


def _is_encoder_output(out) -> bool:
    """An encoder's own output (HF names without the `encoder_` prefix) rather than a seq2seq one."""
    return all(_get(out, n) is None for n in ("encoder_last_hidden_state", "logits", "start_logits",
                                              "past_key_values", "decoder_hidden_states"))


def _legacy_cache(cache):
    """past_key_values as ((self_k, self_v, cross_k, cross_v), ...) per layer, whatever container it came in."""
    if hasattr(cache, "to_legacy_cache"):
        cache = cache.to_legacy_cache()
    return tuple(tuple(layer) for layer in cache)


def flatten_outputs(out) -> dict[str, np.ndarray]:
    """Named float64 arrays of `out` in model order (see module docstring); absent fields are left out."""
    fields: dict[str, object] = {}
    encoder_only = _is_encoder_output(out)
    for name in (*PER_LAYER, *SINGLE, "past_key_values", *ENCODER_FIELDS):
        value = _get(out, name)
        if value is None:
            continue
        if encoder_only and name in ENCODER_FIELDS:
            name = ENCODER_FIELDS[name]
        fields.setdefault(name, value)
    flat: dict[str, np.ndarray] = {}
    encoder_layers = [n for n in ("encoder_hidden_states", "encoder_attentions", "encoder_global_attentions")
                      if n in fields]
    decoder_layers = [n for n in ("decoder_hidden_states", "decoder_attentions", "cross_attentions") if n in fields]
    for group, last in ((encoder_layers, "encoder_last_hidden_state"), (decoder_layers, None)):
        depth = max((len(fields[n]) for n in group), default=0)
        for layer in range(depth):
            for name in group:
                if layer < len(fields[name]):
                    flat[f"{name}[{layer}]"] = to_numpy(fields[name][layer])
        if last and last in fields:
            flat[last] = to_numpy(fields[last])
    for name in ("last_hidden_state", "logits", "start_logits", "end_logits", "loss"):
        if name in fields:
            flat[name] = to_numpy(fields[name])
    if "past_key_values" in fields:
        for layer, parts in enumerate(_legacy_cache(fields["past_key_values"])):
            for part, tensor in zip(CACHE_PARTS, parts, strict=False):
                flat[f"past_key_values[{layer}].{part}"] = to_numpy(tensor)
    return flat


def output_kind(name: str) -> str:
    """The tolerance-table kind of an output name."""
    if "attentions" in name:
        return "attention"
    if name.startswith("past_key_values"):
        return "cache"
    if "logits" in name:
        return "logits"
    if name == "loss":
        return "loss"
    return "hidden"


def global_counts(inputs: dict | None) -> np.ndarray | None:
    """Number of global tokens per row, (batch,), from the inputs' masks (None without a global mask)."""
    if not inputs or inputs.get("global_attention_mask") is None:
        return None
    glob = np.asarray(inputs["global_attention_mask"]) > 0
    if inputs.get("attention_mask") is not None:
        glob &= np.asarray(inputs["attention_mask"]) > 0
    return glob.sum(axis=1)


def valid_global_slots(actual: np.ndarray, expected: np.ndarray, counts: np.ndarray | None):
    """Both global-attention tensors (batch, heads, keys, x) cut to common keys with unused slots zeroed."""
    keys = min(actual.shape[2], expected.shape[2]) if actual.ndim == 4 and expected.ndim == 4 else None
    if keys is None or actual.shape[:2] != expected.shape[:2] or actual.shape[3] != expected.shape[3]:
        return actual, expected
    actual, expected = actual[:, :, :keys].copy(), expected[:, :, :keys].copy()
    if counts is not None:
        unused = np.arange(actual.shape[3])[None, :] >= np.asarray(counts)[:, None]  # (batch, x)
        actual[np.broadcast_to(unused[:, None, None, :], actual.shape)] = 0.0
        expected[np.broadcast_to(unused[:, None, None, :], expected.shape)] = 0.0
    return actual, expected


@dataclass
class OutputDiff:
    """One output compared: its scaled error against its tolerance."""

    name: str
    kind: str
    shape: tuple
    error: float
    tolerance: float
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.error <= self.tolerance  # NaN fails

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "shape": list(self.shape), "error": _json_float(self.error),
                "tolerance": self.tolerance, "passed": self.passed, "note": self.note}


@dataclass
class Comparison:
    """All outputs of one case compared, `expected` being the reference side."""

    actual: str
    expected: str
    diffs: list[OutputDiff] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(d.passed for d in self.diffs)

    @property
    def first_divergence(self) -> OutputDiff | None:
        return next((d for d in self.diffs if not d.passed), None)

    @property
    def max_error(self) -> float:
        return max((d.error for d in self.diffs), default=0.0)

    def to_dict(self) -> dict:
        first = self.first_divergence
        return {"actual": self.actual, "expected": self.expected, "passed": self.passed,
                "first_divergence": None if first is None else first.to_dict(),
                "max_error": _json_float(self.max_error), "outputs": [d.to_dict() for d in self.diffs]}


def _json_float(x: float):
    return x if np.isfinite(x) else str(x)


def compare_outputs(actual, expected, actual_dtype="float64", expected_dtype="float64", hf: bool = False,
                    inputs: dict | None = None, actual_name: str = "actual", expected_name: str = "expected",
                    skip: tuple[str, ...] = ()) -> Comparison:
    """Compare every output `expected` has (in its model order) with the same output of `actual`.

    `hf=True` uses the HF budget for float64 (HF's encoder softmaxes are float32). `inputs` (with the
    masks) lets encoder global attentions be compared on valid slots only. Names starting with an entry
    of `skip` are left out.
    """
    left, right = flatten_outputs(actual), flatten_outputs(expected)
    counts = global_counts(inputs)
    comparison = Comparison(actual_name, expected_name)
    for name in [*right, *(n for n in left if n not in right)]:
        if name.startswith(skip):
            continue
        kind = output_kind(name)
        budget = tolerance(actual_dtype, expected_dtype, kind, hf=hf)
        if name not in left or name not in right:
            side = actual_name if name not in left else expected_name
            shape = (right if name in right else left)[name].shape
            comparison.diffs.append(OutputDiff(name, kind, shape, float("inf"), budget, f"missing in {side}"))
            continue
        a, b = left[name], right[name]
        if "global_attentions" in name:
            a, b = valid_global_slots(a, b, counts)
        note = "" if a.shape == b.shape else f"shape {a.shape} vs {b.shape}"
        comparison.diffs.append(OutputDiff(name, kind, b.shape, scaled_error(a, b), budget, note))
    return comparison


# ---------------------------------------------------------------------------------- one tensor at a time
# What `audit` streams: each output is compared the moment both sides have produced it, and only its error
# and worst element are kept. Large tensors are read in blocks, so a float32 tensor of a torch side is never
# copied whole to float64.
OUTPUT_GROUPS = ("hidden", "attentions", "logits")
BLOCK_ELEMENTS = 1 << 22  # 32 MiB of float64 per block and side


def output_group(name: str) -> str:
    """The `--outputs` group an output name belongs to: hidden, attentions or logits (logits and loss)."""
    kind = output_kind(name)
    return {"attention": "attentions", "loss": "logits"}.get(kind, kind)


@dataclass
class Worst:
    """Where two tensors differ most: the element's index and both values."""

    index: tuple
    actual: float
    expected: float

    def to_dict(self) -> dict:
        return {"index": list(self.index), "actual": _json_float(self.actual), "expected": _json_float(self.expected)}

    def describe(self) -> str:
        return f"at {list(self.index)}: {self.actual:.9g} vs {self.expected:.9g}"


@dataclass
class LocatedDiff(OutputDiff):
    """An OutputDiff that also says where the worst element is (None when nothing was compared)."""

    worst: Worst | None = None

    def to_dict(self) -> dict:
        return {**super().to_dict(), "worst": None if self.worst is None else self.worst.to_dict()}


def _blocks(shape: tuple, limit: int = BLOCK_ELEMENTS):
    """Index tuples cutting `shape` into blocks of at most ~`limit` elements along its first axis longer than 1."""
    axis = next((i for i, n in enumerate(shape) if n > 1), None)
    if axis is None:
        yield (slice(None),) * len(shape)
        return
    per_step = int(np.prod(shape[axis + 1:], dtype=np.int64))
    step = max(1, limit // max(per_step, 1))
    for start in range(0, shape[axis], step):
        yield (slice(None),) * axis + (slice(start, start + step),)


def _block_float64(x, index) -> np.ndarray:
    """One block of a numpy array or torch tensor (any dtype, any device) as float64 numpy (one copy at most)."""
    block = x[index]
    if hasattr(block, "detach"):
        import torch

        return block.detach().to(device="cpu", dtype=torch.float64).numpy()
    return np.asarray(block, dtype=np.float64)


def _located(a: np.ndarray, b: np.ndarray, flat: int, offset: tuple) -> Worst:
    """The Worst record of element `flat` of block (a, b), whose first element sits at `offset` in the tensor."""
    where = np.unravel_index(flat, a.shape)
    return Worst(tuple(int(o + w) for o, w in zip(offset, where, strict=True)), float(a[where]), float(b[where]))


def _block_worst(a: np.ndarray, b: np.ndarray) -> tuple[float, int, float, bool]:
    """(max|a-b|, where (flat), max|b|, bad) of one block over its finite pairs; NaN on both sides agrees.
    `bad`: a non-finite disagreement, then at `where`. The finite case (almost always) costs four passes."""
    with np.errstate(invalid="ignore"):  # inf - inf: handled below
        diff = np.abs(a - b)
    flat = int(np.argmax(diff))  # the first NaN if there is one
    if np.isfinite(diff.flat[flat]):
        return float(diff.flat[flat]), flat, float(max(np.max(b), -np.min(b))), False
    both_nan = np.isnan(a) & np.isnan(b)
    a, b = np.where(both_nan, 0.0, a), np.where(both_nan, 0.0, b)
    finite = np.isfinite(a) & np.isfinite(b)
    bad = ~finite & (a != b)
    if bad.any():
        return float("inf"), int(np.argmax(bad)), 0.0, True
    with np.errstate(invalid="ignore"):  # agreeing infinities never count as the worst (-1)
        diff = np.where(finite, np.abs(a - b), -1.0)
    flat = int(np.argmax(diff))
    return float(diff.flat[flat]), flat, float(np.max(np.abs(np.where(finite, b, 0.0)))), False


def located_error(actual, expected, limit: int = BLOCK_ELEMENTS) -> tuple[float, Worst | None]:
    """`scaled_error(actual, expected)` computed block by block, and the worst element.

    The same number as parity.harness.tolerances.scaled_error: max|a-b| / max(1, max|b|) over finite pairs, NaN
    on both sides at one place agreeing there, inf (located at the first offending element) for any other
    non-finite disagreement or different shapes."""
    if tuple(actual.shape) != tuple(expected.shape):
        return float("inf"), None
    worst_diff, worst, largest = -1.0, None, 0.0
    for index in _blocks(tuple(expected.shape), limit):
        a, b = _block_float64(actual, index), _block_float64(expected, index)
        if a.size == 0:
            continue
        offset = tuple(0 if s.start is None else s.start for s in index) + (0,) * (a.ndim - len(index))
        diff, flat, block_largest, bad = _block_worst(a, b)
        if bad:
            return float("inf"), _located(a, b, flat, offset)
        largest = max(largest, block_largest)
        if diff > worst_diff:
            worst_diff, worst = diff, _located(a, b, flat, offset)
    if worst is None:
        return 0.0, None
    return worst_diff / max(1.0, largest), worst


def compare_tensor(name: str, actual, expected, actual_dtype="float64", expected_dtype="float64",
                   hf: bool = False, counts: np.ndarray | None = None) -> LocatedDiff:
    """One output of two sides compared as `compare_outputs` compares it (global attentions on valid slots), with
    the worst element located. `counts`: global tokens per row (global_counts of the inputs)."""
    kind = output_kind(name)
    budget = tolerance(actual_dtype, expected_dtype, kind, hf=hf)
    actual, expected = (x if hasattr(x, "shape") else np.asarray(x, dtype=np.float64) for x in (actual, expected))
    if "global_attentions" in name:
        actual, expected = valid_global_slots(to_numpy(actual), to_numpy(expected), counts)
    shape = tuple(expected.shape)
    note = "" if tuple(actual.shape) == shape else f"shape {tuple(actual.shape)} vs {shape}"
    error, worst = located_error(actual, expected)
    return LocatedDiff(name, kind, shape, error, budget, note, worst)


def missing_output(name: str, shape: tuple, budget: float, side: str) -> LocatedDiff:
    """An output one side produced and the other did not: an infinite error, as compare_outputs reports it."""
    return LocatedDiff(name, output_kind(name), tuple(shape), float("inf"), budget, f"missing in {side}")
