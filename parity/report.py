"""Reports of a comparison (text table, JSON) and reproducers that replay with `python -m parity replay DIR`.

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

from led_ref.config import LEDConfig, write_text_atomic

from .compare import Comparison

CASE_FILE = "case.json"


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
    """Write the reproducer folder (see module docstring) and return the path of its case.json."""
    from safetensors.numpy import save_file

    os.makedirs(directory, exist_ok=True)
    config.save_pretrained(directory)
    save_file({k: np.ascontiguousarray(v, dtype=np.float64) for k, v in weights.items()},
              os.path.join(directory, "model.safetensors"))
    np.savez(os.path.join(directory, "inputs.npz"), **{k: np.asarray(v) for k, v in inputs.items()})
    case = {"architecture": architecture, "actual": actual, "expected": expected, **meta,
            "report": None if comparison is None else comparison.to_dict()}
    path = os.path.join(directory, CASE_FILE)
    write_text_atomic(path, json.dumps(case, indent=2) + "\n")
    return path


def load_reproducer(path: str) -> dict:
    """The reproducer at `path` (its folder or its case.json): case fields plus config, weights, inputs."""
    from safetensors.numpy import load_file

    directory = path if os.path.isdir(path) else os.path.dirname(path) or "."
    case_path = os.path.join(directory, CASE_FILE)
    if not os.path.isfile(case_path):
        raise FileNotFoundError(f"replay FILE must be a reproducer folder or its {CASE_FILE}; got {path!r}")
    with open(case_path, encoding="utf-8") as fh:
        case = json.load(fh)
    case["config"] = LEDConfig.from_pretrained(directory)
    case["weights"] = load_file(os.path.join(directory, "model.safetensors"))
    with np.load(os.path.join(directory, "inputs.npz")) as data:
        case["inputs"] = {k: data[k] for k in data.files}
    return case
