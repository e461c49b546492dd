"""Reports of a comparison (text tables, generation summary, JSON with run metadata) and reproducers that
replay with `python -m parity replay DIR`.

A reproducer is a folder:

    case.json          what was compared (sides, architecture, seeds, the hypothesis seed, the report)
    config.json        the LEDConfig (HF format)
    model.safetensors  the weights (HF names, float64)
    inputs.npz         every model input (input_ids, masks, head masks, labels, ...)
"""

from __future__ import annotations

import json
import os

import numpy as np

from led_ref.io.config import LEDConfig
from led_ref.io.files import FileFormatError, describe, read_json, write_text_atomic
from parity.harness.compare import Comparison

CASE_FILE = "case.json"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
INPUTS_FILE = "inputs.npz"


def text_table(comparison: Comparison, only_failures: bool = False) -> str:
    """One line per output: name, shape, scaled error, tolerance, status; the first divergence marked."""
    first = comparison.first_divergence
    lines = [f"{comparison.actual} vs {comparison.expected}: "
             + ("agree" if comparison.passed else f"DIVERGED first at {first.name}"),
             f"  {'output':<36} {'shape':<20} {'error':>10} {'tolerance':>9}  status"]
    for d in comparison.diffs:
        if only_failures and d.passed:
            continue
        status = "ok" if d.passed else ("FIRST" if d is first else "FAIL")
        note = f"  ({d.note})" if d.note else ""
        lines.append(f"  {d.name:<36} {str(tuple(d.shape)):<20} {d.error:>10.2e} {d.tolerance:>9.0e}  {status}{note}")
    return "\n".join(lines)


def summary_table(rows: list[tuple[str, Comparison]]) -> str:
    """One line per (case, comparison): worst error, first divergence."""
    lines = [f"{'case':<28} {'actual':<24} {'outputs':>7} {'max error':>10}  result"]
    for case, c in rows:
        first = c.first_divergence
        result = "ok" if c.passed else f"DIVERGED at {first.name} ({first.error:.2e} > {first.tolerance:.0e})"
        lines.append(f"{case:<28} {c.actual:<24} {len(c.diffs):>7} {c.max_error:>10.2e}  {result}")
    return "\n".join(lines)


def generation_summary(generations) -> str:
    """Counts of identical / tie / MISMATCH generations, then every one that was not identical."""
    counts = {status: sum(g.status == status for g in generations) for status in ("identical", "tie", "MISMATCH")}
    scored = sum(getattr(g, "scores_compared", 0) for g in generations)
    lines = ["generation: " + ", ".join(f"{n} {status}" for status, n in counts.items())
             + (f"; beam scores compared on {scored} rows" if scored else "")]
    return "\n".join(lines + [g.describe() for g in generations if not g.identical])


def versions() -> dict:
    """Versions of what took part in a run (for the JSON report)."""
    import platform
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("led-parity", "numpy", "torch", "transformers", "tokenizers", "safetensors"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_description(device: str) -> str:
    """The device a run used, with the GPU's or CPU's name (for the JSON report)."""
    if device == "cuda":
        import torch

        return f"cuda ({torch.cuda.get_device_name()})"
    import platform

    return f"cpu ({platform.processor() or platform.machine()})"


def to_json(rows: list, **meta) -> str:
    """The report as JSON: `passed`, then one entry per comparison (each with `first_divergence` and every
    output's error and tolerance). `rows` holds Comparisons or (case name, Comparison) pairs."""
    pairs = [row if isinstance(row, tuple) else (None, row) for row in rows]
    entries = [{"case": case, **c.to_dict()} for case, c in pairs]
    generation = meta.get("generation") or []
    passed = all(c.passed for _, c in pairs) and all(g.get("passed", True) for g in generation)
    return json.dumps({**meta, "passed": passed, "comparisons": entries}, indent=2) + "\n"


def save_reproducer(directory: str, config: LEDConfig, architecture: str, weights: dict[str, np.ndarray],
                    inputs: dict[str, np.ndarray], actual: str, expected: str, comparison: Comparison | None = None,
                    **meta) -> str:
    """Write the reproducer folder (see module docstring) and return the path of its case.json.

    case.json records the SHA-256 of the weights and inputs, so a replay refuses files changed since."""
    from safetensors.numpy import save_file

    os.makedirs(directory, exist_ok=True)
    config.save_pretrained(directory)
    save_file({k: np.ascontiguousarray(v, dtype=np.float64) for k, v in weights.items()},
              os.path.join(directory, WEIGHTS_FILE))
    np.savez(os.path.join(directory, INPUTS_FILE), **{k: np.asarray(v) for k, v in inputs.items()})
    case = {"architecture": architecture, "actual": actual, "expected": expected, **meta,
            "report": None if comparison is None else comparison.to_dict(),
            "sha256": {name: _sha256(os.path.join(directory, name)) for name in (WEIGHTS_FILE, INPUTS_FILE)}}
    path = os.path.join(directory, CASE_FILE)
    write_text_atomic(path, json.dumps(case, indent=2) + "\n")
    return path


def load_reproducer(path: str) -> dict:
    """The reproducer at `path` (its folder or its case.json): case fields plus config, weights, inputs.

    Anything wrong with the folder (not a reproducer, a file missing, damaged or changed since it was
    written, weights that do not fit the config) is a ValueError / FileNotFoundError naming the file."""
    from led_ref.io.checkpoint import adapt_state_dict, check_state_dict, read_safetensors_file
    from led_ref.io.names import ARCHITECTURES

    path = os.fspath(path)
    directory = path if os.path.isdir(path) else os.path.dirname(path) or "."
    case_path = os.path.join(directory, CASE_FILE)
    if not os.path.isfile(case_path):
        raise FileNotFoundError(f"replay FILE must be a reproducer folder or its {CASE_FILE}; got {path!r} "
                                f"(no {CASE_FILE} in {directory!r})")
    case = read_json(case_path, "reproducer case", dict)
    for key in ("architecture", "actual", "expected"):
        if not isinstance(case.get(key), str):
            raise FileFormatError(f"{case_path!r} must give {key!r} as a string, found {describe(case.get(key))}")
    if case["architecture"] not in ARCHITECTURES:
        raise FileFormatError(f"{case_path!r}: architecture must be one of {', '.join(ARCHITECTURES)}, "
                              f"got {case['architecture']!r}")
    for name in (CONFIG_FILE, WEIGHTS_FILE, INPUTS_FILE):
        if not os.path.isfile(os.path.join(directory, name)):
            raise FileNotFoundError(f"{directory!r} is not a complete reproducer: {name} is missing")
    recorded = case.get("sha256")
    if recorded is not None:
        if not isinstance(recorded, dict):
            raise FileFormatError(f"{case_path!r}: sha256 must map file names to digests, found {describe(recorded)}")
        for name in (WEIGHTS_FILE, INPUTS_FILE):
            if name in recorded and _sha256(os.path.join(directory, name)) != recorded[name]:
                raise FileFormatError(f"{os.path.join(directory, name)!r} was changed after the reproducer was "
                                      f"written (its SHA-256 differs from the one in {CASE_FILE})")
    config = LEDConfig.from_pretrained(directory)
    weights = read_safetensors_file(os.path.join(directory, WEIGHTS_FILE))
    check_state_dict(adapt_state_dict(weights, config, case["architecture"]), config, case["architecture"])
    inputs = _read_inputs(os.path.join(directory, INPUTS_FILE))
    case["config"], case["weights"], case["inputs"] = config, weights, inputs
    return case


def _read_inputs(path: str) -> dict[str, np.ndarray]:
    """The arrays of inputs.npz (numbers only: pickled objects are never loaded)."""
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as data:
            inputs = {k: data[k] for k in data.files}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise FileFormatError(f"{path!r} is not a readable .npz of input arrays (damaged?): {err}") from None
    for name, value in inputs.items():
        if value.dtype.kind not in "biuf":
            raise FileFormatError(f"{path!r}: input {name!r} has dtype {value.dtype}; inputs are numbers")
    return inputs


def _sha256(path: str) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------- the audit report
def side_meaning(side) -> str:
    """What a side's label stands for, in words (`side`: a parity.harness.implementations.Side)."""
    if side.family == "ref":
        return f"led_ref, the NumPy spec, in {side.dtype}: the reference every other side is held to"
    if side.family == "torch":
        return f"led_torch with its {side.backend} attention backend, in {side.dtype} on {side.device}"
    version = versions().get("transformers") or "?"
    return f"HF transformers {version} LEDForConditionalGeneration, in {side.dtype} on {side.device}"


def _settings_text(settings: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items()) or "(none)"


def _given_as(meta: dict) -> str:
    """` (given as ID)` when the checkpoint was named by a hub id rather than its folder."""
    given, path = meta["checkpoint"], meta["checkpoint_path"]
    same = os.path.exists(given) and os.path.samefile(given, path)
    return "" if same else f" (given as {given})"


def audit_header(meta: dict) -> str:
    """What an audit ran, so that its report stands alone: the checkpoint, how much of the text and of the model's
    limit it used, the global positions, the decoder's teacher-forced input, what was compared, the generation
    settings actually passed to every side, the sides and what they are. `meta`: the audit's JSON fields."""
    cut = meta["max_tokens"] is not None and meta["max_tokens"] < meta["limit"]
    bound = f"--max-tokens {meta['max_tokens']}" if cut else "the model's limit"
    sides = meta["sides"]
    width = max(len(s["label"]) for s in sides)
    lines = [
        f"audit of {meta['checkpoint_name']}: {meta['checkpoint_path']}{_given_as(meta)}",
        f"  input      {meta['used_tokens']} of the text's {meta['text_tokens']} tokens, up to {bound}; the model's "
        f"limit is {meta['limit']} (its encoder positions, in multiples of the window {meta['window']})",
        f"  global     positions {', '.join(str(p) for p in meta['global_positions'])}",
        f"  decoder    teacher-forced: labels the first {meta['decoder_tokens']} input tokens, inputs the same "
        f"shifted right after the start token ({meta['decoder_tokens']} of its {meta['decoder_limit']} positions)",
        f"  compared   {', '.join(meta['outputs'])}",
        f"  generate   {_settings_text(meta['generation_settings'])}",
        *[f"  {'sides' if i == 0 else '':<10} {s['label']:<{width}}  {s['meaning']}" for i, s in enumerate(sides)],
        "  error      max|side - ref| / max(1, max|ref|) per output, against the budget of the pair "
        "(python -m parity info)",
    ]
    return "\n".join(lines)


def located_table(comparison: Comparison) -> str:
    """text_table with each output's worst element: its index and both values (side vs reference)."""
    first = comparison.first_divergence
    lines = [f"{comparison.actual} vs {comparison.expected}: "
             + ("agree" if comparison.passed else f"DIVERGED first at {first.name}"),
             f"  {'output':<32} {'shape':<24} {'error':>9} {'tolerance':>9}  {'status':<6} worst element (side vs ref)"]
    for d in comparison.diffs:
        status = "ok" if d.passed else ("FIRST" if d is first else "FAIL")
        worst = getattr(d, "worst", None)
        where = d.note if d.note else ("" if worst is None else worst.describe())
        shape = str(tuple(d.shape))
        lines.append(f"  {d.name:<32} {shape:<24} {d.error:>9.2e} {d.tolerance:>9.0e}  {status:<6} {where}")
    return "\n".join(lines)


def generated_table(generated: list[dict]) -> str:
    """Each side's generated token ids and decoded text (one line per returned sequence)."""
    width = max((len(g["side"]) for g in generated), default=4)
    lines = ["generated (token ids, then the decoded text):"]
    for g in generated:
        if g.get("error"):
            lines.append(f"  {g['side']:<{width}}  raised {g['error']}")
            continue
        for row, (tokens, text) in enumerate(zip(g["tokens"], g["text"], strict=True)):
            label = g["side"] if row == 0 else ""
            lines.append(f"  {label:<{width}}  {tokens}  {json.dumps(text, ensure_ascii=False)}")
    return "\n".join(lines)


def timings_table(timings: dict, peak_rss_bytes: int | None = None, peaks: dict | None = None) -> str:
    """Wall and CPU seconds each side spent on the forward (streamed, compared as it went; `comparisons` is the
    comparing itself) and on generate; the process's peak resident memory, and per phase (`peaks`)."""
    width = max((len(label) for label in timings), default=4)
    keys = ("forward_s", "forward_cpu_s", "generate_s", "generate_cpu_s")
    lines = [f"time (s)  {'':<{width}}  {'forward':>8}  {'cpu':>8}  {'generate':>8}  {'cpu':>8}"]
    for label, t in timings.items():
        cells = [f"{t[k]:>8.1f}" if t.get(k) is not None else f"{'-':>8}" for k in keys]
        lines.append(f"          {label:<{width}}  {'  '.join(cells)}")
    if peak_rss_bytes is not None:
        phases = ", ".join(f"{phase} {value / 2**30:.2f}" for phase, value in (peaks or {}).items())
        lines.append(f"peak resident memory of this process: {peak_rss_bytes / 2**30:.2f} GiB"
                     + (f" ({phases})" if phases else ""))
    return "\n".join(lines)
