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
