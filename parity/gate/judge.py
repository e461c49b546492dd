"""The kernel gate: does a user's attention kernel meet the contract of docs/contract.md?

    from parity.gate.judge import gate
    result = gate(my_kernel, profile="realistic", dtype="bfloat16", seed=0, backward=True)
    assert result.passed, result.message()

Cases come from the shape profiles of parity.gate.profiles (toy, boundary, realistic; every shape of the grid
visited, hypothesis varying the layout and the values), inside the kernel's declared support
(parity.gate.support). Each case runs through the kernel as torch tensors and through the float64 reference
(parity.gate.reference) on the same dtype-rounded values. The verdict:

    pass        every case within budget, every planned shape run
    mismatch    the numbers are wrong: an output (or, with backward, a gradient) beyond its budget, or
                non-finite output on valid input
    error       the kernel broke the interface on a supported case: it raised, returned something other than
                one tensor, the wrong shape, dtype or device, wrote into an input, or gave no gradient
    incomplete  no case failed, but the time budget ended the run before every planned shape ran
                (`allow_incomplete=True` makes that a pass with a note)
    nondeterministic  with `deterministic=True`, repeated runs of one case gave different bits

Inputs arrive contiguous, packed, inside NaN-filled buffers or with head_dim not unit-stride
(parity.gate.poison); values may be activation-like and a real model's (parity.gate.activations); `shard=` runs
one part of the plan
(parity.gate.shards); a failure can be saved as a reproducer folder (parity.gate.case_files).

Budgets (parity.harness.tolerances): float64 and float32 fixed; float16/bfloat16 per case, `HALF_K` times the error
of the straightforward implementation in the same dtype (the reference run in that dtype) plus
`half_floor(dtype)`, with no cap; gradients of the query and key projections also get what a standard
backward inherits from the kernel's own forward output (parity.gate.backward_rule). On the first failure
hypothesis shrinks the case (a bounded number of tries, so one seed gives one counterexample on any machine)
and the result carries the shrunk counterexample, the seed and a replay command; a run on caller-given
`cases=` also saves the case to a folder that `--replay-case` replays.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import platform
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from hypothesis import strategies as st

from parity.gate.activations import MODEL_LABEL, model_cases, read_text
from parity.gate.case_files import case_id
from parity.gate.determinism import DeterminismCheck, same_bits
from parity.gate.poison import as_torch, hand_over, outside_read_cause
from parity.gate.profiles import (
    DEFAULT_BLOCKS,
    MIN_PER_SHAPE,
    check_blocks,
    grid,
    profile_examples,
    profile_names,
    shape_cases,
)
from parity.gate.shards import owned_labels, parse_shard
from parity.gate.support import Support, support_of
from parity.harness.hypothesis_runs import ShrinkBudget, run_seeded, stable_draws
from parity.harness.strategies import AttentionCase
from parity.harness.tolerances import dtype_name, finite_scaled_error, scaled_error, tolerance

COSTLY_PROFILES = ("realistic", "long")  # without --deterministic their shapes are not repeated (the cost)
SCHEMA_VERSION = 1  # of GateResult.to_dict(); raised when a field changes meaning or goes away
KIND_NAMES = {0: "padding", 1: "local", 2: "global"}
ARGUMENTS = ("query", "key", "value", "global_query", "global_key", "global_value", "token_kind")
OUTPUTS = ("context",) + tuple(f"grad_{name}" for name in ARGUMENTS[:6])
FAILURES = ("mismatch", "error", "nondeterministic")  # verdicts that stop the run at one case
HALF_K = 3.0  # half precision: at most 3x the error of a straightforward implementation in the same dtype
# Shrinking counts tries, so a seed shrinks to the same case on a fast and a slow machine; the seconds only
# stop a runaway shrink (hypothesis itself gives up after 300 s).
SHRINK_TRIES = 300
SHRINK_SAFETY_SECONDS = 600.0
DIAGNOSIS_SECONDS = 60.0  # probing the failing row's keys (parity.gate.diagnosis) stops after this long
DECORATOR_ADVICE = ("reproduce_failure", "print_blob")  # hypothesis' advice for test functions, not for the CLI


def half_floor(dtype: str) -> float:
    """The absolute slack added to HALF_K x the plain implementation's error: half the dtype's epsilon."""
    import torch

    return float(torch.finfo(getattr(torch, dtype)).eps) / 2


class KernelFailure(AssertionError):
    """Raised inside the hypothesis test when a kernel fails one case; `verdict` is mismatch or error."""

    verdict = "mismatch"

    def __init__(self, case, detail: str, output: str = "context", error: float = float("inf"),
                 budget: float = 0.0, plain: float | None = None, location: dict | None = None,
                 inherited: float | None = None):
        super().__init__(f"{self.verdict}: {detail}; case {case.describe()}")
        self.case, self.detail, self.output = case, detail, output
        self.error, self.budget, self.plain = error, budget, plain
        self.location, self.inherited = location, inherited
        self.recipe = None  # the CaseRecipe the case was drawn as, set by the gate


class KernelMismatch(KernelFailure):
    verdict = "mismatch"


class KernelError(KernelFailure):
    verdict = "error"


class KernelNondeterministic(KernelFailure):
    """Repeated runs of one case gave results that differ in some bit (parity.gate.determinism)."""

    verdict = "nondeterministic"


@dataclass
class GateResult:
    """Outcome of `gate`: the verdict, what ran, the worst error per output and the shrunk counterexample."""

    kernel: str
    verdict: str
    seed: int
    examples: int
    dtype: str
    tolerance: float
    device: str = "cpu"
    profile: str = "all"
    blocks: tuple[int, ...] = DEFAULT_BLOCKS
    support: Support = field(default_factory=Support)
    backward: bool = False
    forward_only: bool = False
    max_heads: int | None = None
    atol: float | None = None  # given: it replaced the forward budget
    max_seconds: float | None = None
    allow_incomplete: bool = False
    extra: object = None  # parity.gate.profiles.ExtraShapes added to the profiles' axes, or None
    reference: str | None = None  # the name of a caller-given forward reference (None: parity.gate.reference)
    adapter: str | None = None  # parity.gate.adapters name the kernel was wrapped with (None: the contract's own)
    layout: str | None = None  # a forward mismatch whose visible keys are a wrong window layout: which one
    cases_run: int = 0
    cases_per_shape: dict[str, int] = field(default_factory=dict)
    worst: dict[str, dict] = field(default_factory=dict)  # output -> {error, budget, plain, inherited}
    excluded: dict[str, str] = field(default_factory=dict)  # profile -> what the support left out
    planned: list[str] = field(default_factory=list)  # the shapes the run set out to visit ("custom": cases=)
    not_run: list[str] = field(default_factory=list)  # shapes the time budget did not reach
    time_bound: bool = False  # the deadline (max_seconds) cut drawing, the grid or shrinking
    counterexample: AttentionCase | None = None
    recipe: object = None  # the counterexample as drawn (parity.gate.profiles.CaseRecipe), when it was one
    error: float = 0.0
    detail: str = ""
    output: str = ""
    budget: float = 0.0
    plain: float | None = None
    inherited: float | None = None
    location: dict | None = None  # the worst element of the failing output (batch, head, position, dim, ...)
    keys: list[dict] | None = None  # parity.gate.diagnosis of the failing row (forward mismatches)
    case_dir: str | None = None  # the saved failing case of a custom run (replayed by --replay-case)
    notes: list[str] = field(default_factory=list)
    reproducer: list[str] = field(default_factory=list)
    seconds: float = 0.0
    shard: str | None = None  # "K/N": this run is the K-th of N jobs (parity.gate.shards)
    deterministic: bool = False  # repeated runs of every case must give the same bits (parity.gate.determinism)
    activations: list[str] | None = None  # [checkpoint or "default", text file or "default"] of model cases
    case_log: list[dict] = field(default_factory=list)  # per case run: id, shape, seconds, error per output

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    @property
    def budget_dtype(self) -> str:
        """The dtype whose budget judged the run (a declared lower compute_dtype, else the run's dtype)."""
        return self.support.budget_dtype(self.dtype)

    @property
    def max_error(self) -> float:
        return self.worst.get("context", {}).get("error", 0.0)

    @property
    def shapes_run(self) -> list[str]:
        """The planned shapes that ran at least one case."""
        if self.planned == ["custom"]:
            return ["custom"] if self.cases_run else []
        return [label for label in self.planned if label in self.cases_per_shape]

    @property
    def complete(self) -> bool:
        return not self.not_run and len(self.shapes_run) == len(self.planned)

    # ---------------------------------------------------------------------------- replay
    def replay_command(self) -> str:
        """The CLI command that runs this gate again with every option that shaped it."""
        if self.profile == "custom":
            if self.case_dir:
                adapter = f" --adapter {self.adapter}" if self.adapter else ""
                return f"python -m parity gate --attention {self.kernel}{adapter} --replay-case {self.case_dir}"
            return f"(custom cases: pass the same cases= with seed={self.seed} to parity.gate.gate)"
        parts = [f"python -m parity gate --attention {self.kernel} --seed {self.seed} --examples {self.examples}",
                 f"--profile {self.profile} --dtype {self.dtype} --device {self.device}"]
        if self.adapter:
            parts.append(f"--adapter {self.adapter}")
        if self.profile in ("boundary", "all") and self.blocks != DEFAULT_BLOCKS:
            parts.append("--block " + ",".join(map(str, self.blocks)))
        if self.backward:
            parts.append("--backward")
        if self.max_heads is not None:
            parts.append(f"--max-heads {self.max_heads}")
        if self.atol is not None:
            parts.append(f"--atol {self.atol!r}")
        parts += _support_flags(self.support)
        if self.extra:
            parts.append(self.extra.flags())
        if self.time_bound and self.max_seconds is not None:
            parts.append(f"--max-seconds {self.max_seconds!r}")
        if self.allow_incomplete:
            parts.append("--allow-incomplete")
        parts += _run_flags(self)
        return " ".join(parts)

    # ---------------------------------------------------------------------------- text
    def _worst_text(self) -> str:
        bits = []
        for name, w in self.worst.items():
            text = f"{name} {w['error']:.2e} <= {w['budget']:.1e}"
            if w.get("plain") is not None:
                text += f" (plain {self.budget_dtype} {w['plain']:.2e}"
                text += f", inherited {w['inherited']:.1e})" if w.get("inherited") else ")"
            bits.append(text)
        return "; ".join(bits)

    def message(self, decorator_advice: bool = True) -> str:
        """The report: verdict line first, then the evidence, the counterexample and the replay command.
        decorator_advice=False leaves out hypothesis' `@reproduce_failure` advice (meant for test functions)."""
        where = f"profile {self.profile}, {self.dtype} on {self.device}, seed {self.seed}"
        shapes = f"{len(self.shapes_run)} of {len(self.planned)} planned shapes"
        if self.passed:
            lines = [f"pass: {self.kernel} meets the contract on {self.cases_run} cases in "
                     f"{len(self.cases_per_shape)} shapes ({where})"]
            if self.worst:
                lines.append(f"  worst scaled error: {self._worst_text()}")
        elif self.verdict == "incomplete":
            budget = "the time budget" if self.max_seconds is None else f"--max-seconds {self.max_seconds:g}"
            ran = f"its {self.cases_run} cases were within budget" if self.cases_run else "no case ran"
            lines = [f"incomplete: {self.kernel} ran {shapes} before {budget} ran out; {ran} ({where})",
                     "  a partial run is not a pass: raise --max-seconds, narrow the run, or accept it with "
                     "--allow-incomplete (allow_incomplete=True)"]
        elif self.verdict == "error":
            lines = [f"error: {self.kernel} breaks the contract: {self.detail} ({where})"]
        elif self.verdict == "nondeterministic":
            lines = [f"nondeterministic: {self.kernel} gives different bits on identical inputs: {self.detail} "
                     f"({where})"]
        elif self.layout:
            lines = [f"mismatch: {self.kernel} has the wrong window layout: {self.layout} ({where})",
                     f"  scaled error: {self.error:.3e} > budget {self.budget:.3e}{self._budget_text()}",
                     f"  where: {self.detail}"]
            lines += self._keys_text()
        else:
            lines = [f"mismatch: {self.kernel} disagrees with the spec on {self.output} ({where})",
                     f"  scaled error: {self.error:.3e} > budget {self.budget:.3e}{self._budget_text()}",
                     f"  where: {self.detail}"]
            lines += self._keys_text()
        if self.forward_only:
            lines.append("  forward-only: the kernel declares no backward; gradients were not gated")
        if self.budget_dtype != self.dtype:
            lines.append(f"  judged by the {self.budget_dtype} budget: the kernel declares compute_dtype "
                         f"{self.budget_dtype} for {self.dtype} inputs")
        lines.append(f"  support: {self.support.describe()}")
        for profile, text in self.excluded.items():
            lines.append(f"  {profile}: the support excluded {text}")
        if self.not_run:
            lines.append(f"  time budget reached: {len(self.not_run)} shapes not run (first: {self.not_run[0]})")
        lines += [f"  note: {note}" for note in self.notes]
        if self.counterexample is not None:
            lines.append(f"  shrunk counterexample: {self._counterexample_text()}")
        if not self.passed:
            lines.append(f"  replay: {self.replay_command()}")
            if self.case_dir and self.profile != "custom":
                lines.append(f"  reproducer folder: {self.case_dir} (python -m parity gate --attention {self.kernel} "
                             f"--replay-case {self.case_dir})")
            report = "\n".join(self.reproducer).splitlines()
            lines += [f"  {line}" for line in report if line.strip()
                      and (decorator_advice or not any(word in line for word in DECORATOR_ADVICE))]
        return "\n".join(lines)

    def _budget_text(self) -> str:
        given = " (atol given)" if self.atol is not None and self.output == "context" else ""
        if self.plain is None:
            return given
        ratio = self.error / self.plain if self.plain > 0 else float("inf")
        text = f", plain {self.budget_dtype} implementation {self.plain:.3e} (ratio {ratio:.2f}, allowed {HALF_K})"
        if self.inherited:
            text += f", inherited from the kernel's forward output {self.inherited:.3e}"
        return given + text

    def _keys_text(self) -> list[str]:
        if not self.keys:
            return []
        lines = ["  keys of that row the kernel weighs differently (spec vs kernel probability):"]
        for k in self.keys:
            lines.append(f"    key {k.get('key')} ({k.get('rule')}): spec {_number(k.get('spec'))} "
                         f"kernel {_number(k.get('kernel'))}")
        return lines

    def _counterexample_text(self) -> str:
        if self.recipe is not None and hasattr(self.recipe, "describe"):
            return f"{self.counterexample.describe()}; values {_values_text(self.recipe)}"
        return self.counterexample.describe()

    # ---------------------------------------------------------------------------- JSON
    def to_dict(self) -> dict:
        """The report as strict JSON data: no Infinity or NaN anywhere (a non-finite number is null with a
        `<name>_kind` beside it), `schema_version` first. docs/parity.md shows the schema."""
        import hypothesis
        import torch

        device = self.device
        if device == "cuda" and torch.cuda.is_available():
            device = f"cuda ({torch.cuda.get_device_name()})"
        else:
            device = f"{device} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
        data = {
            "schema_version": SCHEMA_VERSION,
            "kernel": self.kernel, "verdict": self.verdict, "passed": self.passed, "seed": self.seed,
            "profile": self.profile, "blocks": list(self.blocks), "dtype": self.dtype, "examples": self.examples,
            "backward": self.backward, "atol": self.atol, "max_seconds": self.max_seconds,
            "allow_incomplete": self.allow_incomplete, "forward_only": self.forward_only,
            "support": self.support.to_dict(), "adapter": self.adapter, "excluded": self.excluded,
            "complete": None if self.verdict in FAILURES else self.complete,  # a failure stops the run
            "planned_shapes": len(self.planned), "shapes_run": len(self.shapes_run),
            "shapes_not_run": self.not_run, "cases_run": self.cases_run, "cases_per_shape": self.cases_per_shape,
            "worst_error": self.worst, "notes": self.notes, "seconds": round(self.seconds, 3),
            "replay": None if self.passed else self.replay_command(),
            "failure": self._failure_dict(),
            "shard": self.shard, "deterministic": self.deterministic, "activations": self.activations,
            "planned": self.planned, "cases": self.case_log, "report": self.message(decorator_advice=False),
            "versions": {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__,
                         "hypothesis": hypothesis.__version__},
            "device": device,
        }
        return strict_json(data)

    def _failure_dict(self) -> dict | None:
        if self.verdict not in FAILURES:
            return None
        return {
            "output": self.output, "error": self.error, "budget": self.budget, "plain": self.plain,
            "inherited": self.inherited, "detail": self.detail, "location": self.location,
            "counterexample": None if self.counterexample is None else
            counterexample_dict(self.counterexample, self.recipe),
            "keys": self.keys, "replay": self.replay_command(), "replay_case": self.case_dir, "layout": self.layout,
        }


def _run_flags(result: GateResult) -> list[str]:
    """The flags of the checks added on top of the profiles: shard, determinism, model activations."""
    import shlex

    flags = [f"--shard {result.shard}"] if result.shard else []
    if result.deterministic:
        flags.append("--deterministic")
    if result.activations:
        checkpoint, text = result.activations
        flags.append("--activations-from " + shlex.quote(checkpoint))
        if text != "default":
            flags.append("--text " + shlex.quote(text))
    return flags


def _number(value) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else str(value)


def _support_flags(support: Support) -> list[str]:
    """The CLI flags that narrow a kernel's declared support to `support` (nothing for the defaults)."""
    flags, default = [], Support()
    if support.head_dims is not None:
        flags.append("--head-dims " + ",".join(map(str, support.head_dims)))
    for name in ("head_dim_multiple", "min_window", "max_window", "max_seq", "max_globals"):
        value = getattr(support, name)
        if value != getattr(default, name):
            flags.append(f"--{name.replace('_', '-')} {value}")
    if not support.backward:
        flags.append("--forward-only")
    if support.dtypes is not None:
        flags.append("--dtypes " + ",".join(support.dtypes))
    if support.compute_dtype is not None:
        flags.append(f"--compute-dtype {support.compute_dtype}")
    if support.padding is not True:
        from parity.gate.support import PADDING_FLAGS

        flags.append(f"--padding {PADDING_FLAGS[support.padding]}")
    return flags


def _recipe_values(recipe) -> dict:
    """How the recipe draws its values: every field but the shape, batch, heads and token layout."""
    if recipe is None or not dataclasses.is_dataclass(recipe):
        return {}
    skip = {"shape", "batch", "heads", "token_kind"}
    return {f.name: getattr(recipe, f.name) for f in dataclasses.fields(recipe) if f.name not in skip}


def _values_text(recipe) -> str:
    return " ".join(f"{name}={value}" for name, value in _recipe_values(recipe).items())


def counterexample_dict(case: AttentionCase, recipe=None) -> dict:
    """A counterexample as structured JSON fields: sizes, window, token kinds per row, value parameters."""
    from parity.gate.case_files import kind_rows

    batch, heads, seq, head_dim = case.query.shape
    values = {"seed": int(case.seed), "scale": None, "mean": None, "outliers": None, "strided": bool(case.strided)}
    values.update(_recipe_values(recipe))
    shape = getattr(recipe, "shape", None)
    return {
        "label": case.label or None, "profile": getattr(shape, "profile", None), "block": getattr(shape, "block", None),
        "batch": int(batch), "heads": int(heads), "seq": int(seq), "head_dim": int(head_dim),
        "window": int(case.window), "shape": [int(batch), int(heads), int(seq), int(head_dim)],
        "token_kind": kind_rows(case.token_kind), "token_kind_legend": ". padding, l local, g global",
        "values": values, "description": case.describe(),
    }


def strict_json(value):
    """`value` with every non-finite float replaced by None (and `<key>_kind: "non-finite"` beside a dict
    entry), numpy scalars and tuples made plain, so `json.dumps(..., allow_nan=False)` always works."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if _non_finite(item):
                out[key], out[f"{key}_kind"] = None, "non-finite"
            else:
                out[key] = strict_json(item)
        return out
    if isinstance(value, (list, tuple)):
        return [None if _non_finite(item) else strict_json(item) for item in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return value


def _non_finite(value) -> bool:
    return isinstance(value, (float, np.floating)) and not math.isfinite(float(value))


# ------------------------------------------------------------------------------------------ references
def spec_attention(case: AttentionCase) -> np.ndarray:
    """led_ref's NumPy spec (float64) on the case: (batch, heads, seq, head_dim)."""
    from led_ref.attention import longformer_attention

    return np.asarray(longformer_attention(*case.arrays(), case.token_kind, case.window), dtype=np.float64)


def reference_context(case: AttentionCase, dtype="float64") -> np.ndarray:
    """parity.gate.reference on the case, computed in `dtype`, returned as float64 numpy."""
    import torch

    from parity.gate.reference import reference_attention

    out = reference_attention(*case.arrays(), case.token_kind, case.window, dtype=getattr(torch, dtype_name(dtype)))
    return out.double().numpy()


def load_kernel(spec: str) -> Callable:
    """'package.module:function' -> the function (ValueError naming the spec when it cannot be found)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--attention must look like package.module:function, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"--attention {spec!r}: cannot import {module_name!r} ({err})") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"--attention {spec!r}: {module_name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"--attention {spec!r} is a {type(obj).__name__}, not a function")
    return obj


def rounded(case: AttentionCase, dtype) -> AttentionCase:
    """The case with its values rounded to `dtype` (so the spec sees exactly what the kernel saw)."""
    import torch

    torch_dtype = getattr(torch, dtype_name(dtype))
    if torch_dtype == torch.float64:
        return case
    arrays = [torch.as_tensor(a).to(torch_dtype).double().numpy() for a in case.arrays()]
    names = ("query", "key", "value", "global_query", "global_key", "global_value")
    return dataclasses.replace(case, **dict(zip(names, arrays, strict=True)))  # keeps the layout fields


def worst_element(got: np.ndarray, expected: np.ndarray, token_kind: np.ndarray, position_of: str = "query") -> dict:
    """The element of (batch, heads, seq, d) arrays where `got` is furthest from `expected`: its index, the
    token kind of its position, both values, the absolute and the scaled difference (NaN counts as inf)."""
    diff = np.abs(np.nan_to_num(got - expected, nan=np.inf))
    b, h, i, d = (int(x) for x in np.unravel_index(int(np.argmax(diff)), diff.shape))
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    return {"batch": b, "head": h, "position": i, "position_of": position_of,
            "query": i if position_of == "query" else None, "dim": d,
            "token_kind": KIND_NAMES[int(token_kind[b, i])], "kernel": float(got[b, h, i, d]),
            "spec": float(expected[b, h, i, d]), "abs_diff": float(diff[b, h, i, d]),
            "scaled_diff": float(diff[b, h, i, d]) / scale}


def _where_text(at: dict, gradient: bool = False) -> str:
    what = f"{at['position_of']} position" if gradient else at["position_of"]
    return (f"batch {at['batch']} head {at['head']} {what} {at['position']} ({at['token_kind']} token) "
            f"dim {at['dim']}: kernel {at['kernel']!r} vs spec {at['spec']!r} (|diff| {at['abs_diff']:.3e}, "
            f"scaled {at['scaled_diff']:.3e})")


# ------------------------------------------------------------------------------------------ one case
def _budget(dtype: str, plain: float | None, kind: str, atol: float | None = None, inherited: float = 0.0) -> float:
    """`atol` when given; else the fixed budget for float64/float32, and for half precision HALF_K times what
    the plain same-dtype implementation loses on this very case (+ half_floor), plus for gradients what a
    standard backward inherits from the kernel's forward output. The half rule has no cap: a kernel as
    accurate as the plain one always passes, however hard the case is for the dtype."""
    if atol is not None:
        return atol
    if plain is None:
        return tolerance(dtype, kind=kind)
    return HALF_K * plain + inherited + half_floor(dtype)


def _check_tensor(case, out, like, what: str) -> None:
    import torch

    if not isinstance(out, torch.Tensor):
        raise KernelError(case, f"{what} is a {type(out).__name__}, the contract says one tensor")
    if tuple(out.shape) != tuple(like.shape):
        raise KernelError(case, f"{what} has shape {tuple(out.shape)}, the contract says {tuple(like.shape)}")
    if out.dtype != like.dtype:
        raise KernelError(case, f"{what} has dtype {dtype_name(out.dtype)}, the contract says "
                                f"{dtype_name(like.dtype)} (the input dtype)")
    if out.device != like.device:
        raise KernelError(case, f"{what} is on {out.device}, the contract says {like.device} (the input device)")


def check_case(kernel: Callable, case, dtype="float64", device: str = "cpu", backward: bool = False,
               reference: Callable | None = None, atol: float | None = None,
               compute_dtype: str | None = None) -> dict[str, dict]:
    """Run one case; return {output: {error, budget, plain, inherited}} or raise KernelMismatch / KernelError.

    `case` is an AttentionCase or a parity.gate.profiles.CaseRecipe. `reference(case) -> float64 array` replaces
    parity.gate.reference for the forward (e.g. `spec_attention`, led_ref's NumPy kernel). `atol` replaces the
    forward budget (looser or tighter). `compute_dtype`, when less precise than `dtype`, is the dtype whose
    budget judges the outputs (a kernel computing in it on `dtype` inputs)."""
    import torch

    if hasattr(case, "materialize"):
        case = case.materialize()
    dtype = dtype_name(dtype)
    torch_dtype = getattr(torch, dtype)
    case = rounded(case, dtype)
    # contiguous, packed, transposed or in NaN-filled buffers (parity.gate.poison); with backward the buffers are the
    # autograd leaves and the inputs views of them, whatever the layout
    handed = hand_over(case, torch_dtype, device, requires_grad=backward)
    args = (*handed.tensors, handed.token_kind, handed.window)
    inputs = list(args[:6])
    before = _pristine(case, handed) + [args[6].clone()]
    try:
        with torch.enable_grad() if backward else torch.no_grad():
            out = kernel(*inputs, args[6], args[7])
    except Exception as err:  # noqa: BLE001 - any crash on a supported case is the verdict `error`
        raise KernelError(case, f"kernel raised {type(err).__name__}: {' '.join(str(err).split())[:300]}") from None
    _check_tensor(case, out, inputs[0], "the result")
    for name, old, new in zip(ARGUMENTS, before, [*inputs, args[6]], strict=True):
        if not same_bits(old, new.detach()):  # the caller may still need them (and the spec reads the same)
            raise KernelError(case, f"kernel modified its input {name!r} in place")
    if handed.wrote_outside():
        raise KernelError(case, f"kernel wrote outside its inputs (into the NaN memory around the {handed.layout} "
                                "views)")

    got = out.detach().to("cpu", torch.float64).numpy()
    reference = reference or reference_context
    spec_case = received_case(kernel, case, dtype)  # what the spec computes on (the kernel's inputs, as handed over)
    expected = reference(spec_case)
    error = finite_scaled_error(got, expected)  # None: something is not finite, the checks below say what
    if error is None:
        valid = (case.token_kind != 0)[:, None, :, None]
        cause = None if np.isfinite(got).all() else outside_read_cause(kernel, case, dtype, device)
        if cause is not None:  # NaN from the memory around the inputs: name the likely cause first
            at = worst_element(got, expected, case.token_kind)
            raise KernelMismatch(case, f"{cause}: " + _where_text(at), error=float("inf"), location=at)
        if not np.isfinite(np.where(valid, got, 0.0)).all():
            at = worst_element(got, expected, case.token_kind)
            raise KernelMismatch(case, "non-finite output on a valid token: " + _where_text(at),
                                 error=float("inf"), location=at)
    judged = Support(compute_dtype=compute_dtype).budget_dtype(dtype)
    plain = (scaled_error(reference_context(spec_case, judged), expected)
             if judged in ("float16", "bfloat16") else None)
    results = {"context": _judge(case, "context", got, expected, judged, plain, "context", atol=atol, error=error)}

    if backward:
        results.update(_check_backward(spec_case, out, got, inputs, judged))
    return results


def received_case(kernel, case, dtype: str):
    """The case as the kernel received it: an adapter whose interface re-rounds an input on the way (HF's
    module takes unscaled queries: parity.gate.adapters.hf_module) says so with `received(arrays, dtype)`, and
    the spec is computed on those values, so the adapter's rounding is not counted against the kernel. Only the
    project's own adapters are trusted with this: a user's kernel cannot excuse its own rounding."""
    from parity.gate.adapters.hf_module import HFModuleKernel

    if not isinstance(kernel, HFModuleKernel):
        return case
    hand_over = kernel.received
    return dataclasses.replace(case, **dict(zip(ARGUMENTS[:6], hand_over(case.arrays(), dtype), strict=True)))


def _pristine(case, handed) -> list:
    """What the six float inputs must still hold after the call: the case's own arrays where the kernel got
    exact copies of them (float64 on the CPU), else clones of what it got."""
    import torch

    tensors = [t.detach() for t in handed.tensors]
    if all(t.dtype == torch.float64 and t.device.type == "cpu" for t in tensors):
        arrays = [as_torch(a) for a in case.arrays()]
        if all(a.dtype == torch.float64 for a in arrays):
            return arrays
    return [t.clone() for t in tensors]


def _judge(case, output, got, expected, dtype, plain, kind, position_of="query", atol=None, inherited=None,
           error=None) -> dict:
    """The output's record, or KernelMismatch when its scaled error (given, or computed here) is over budget."""
    if error is None:
        error = scaled_error(got, expected)
    budget = _budget(dtype, plain, kind, atol, inherited or 0.0)
    if not error <= budget:  # NaN fails too
        at = worst_element(got, expected, case.token_kind, position_of)
        raise KernelMismatch(case, _where_text(at, gradient=output != "context"), output, error, budget, plain,
                             location=at, inherited=inherited)
    return {"error": error, "budget": budget, "plain": plain, "inherited": inherited}


def _check_backward(case, out, got, inputs, dtype) -> dict[str, dict]:
    import torch

    from parity.gate.backward_rule import inherited_gradient_shift
    from parity.gate.reference import reference_gradients

    rng = np.random.default_rng(case.seed + 1)
    upstream = torch.as_tensor(rng.standard_normal(out.shape)).to(out.dtype)
    if not out.requires_grad:
        raise KernelError(case, "the result carries no gradient (a forward-only kernel declares "
                                "@parity.supports(backward=False))")
    try:
        grads = torch.autograd.grad(out, inputs, upstream.to(out.device), allow_unused=True)
    except Exception as err:  # noqa: BLE001
        raise KernelError(case, f"backward raised {type(err).__name__}: {' '.join(str(err).split())[:300]}") from None
    upstream64 = upstream.double()
    expected = reference_gradients(*case.arrays(), case.token_kind, case.window, upstream64)
    plains, inherited = [None] * 6, [None] * 6
    if dtype in ("float16", "bfloat16"):
        low = reference_gradients(*case.arrays(), case.token_kind, case.window, upstream64,
                                  dtype=getattr(torch, dtype))
        plains = [scaled_error(a.double().numpy(), b.numpy()) for a, b in zip(low, expected, strict=True)]
        shifts = inherited_gradient_shift(case, got, upstream64)
        inherited = [float(s.abs().max()) / max(1.0, float(e.abs().max())) if s.numel() else 0.0
                     for s, e in zip(shifts, expected, strict=True)]
    results = {}
    for name, grad, ref, plain, inh, like in zip(ARGUMENTS[:6], grads, expected, plains, inherited, inputs,
                                                 strict=True):
        output = f"grad_{name}"
        if grad is None:
            grad = torch.zeros_like(like)
        _check_tensor(case, grad, like, f"the gradient of {name}")
        low_got = grad.detach().to("cpu", torch.float64).numpy()
        results[output] = _judge(case, output, low_got, ref.numpy(), dtype, plain, "*", position_of=name,
                                 inherited=inh)
    return results


# ------------------------------------------------------------------------------------------ the gate
def gate(
    kernel: Callable,
    examples: int = 100,
    seed: int | None = None,
    dtype="float64",
    device: str = "cpu",
    profile: str = "all",
    support: Support | None = None,
    blocks=DEFAULT_BLOCKS,
    backward: bool = False,
    max_seconds: float | None = None,
    max_heads: int | None = None,
    reference: Callable | None = None,
    cases=None,
    atol: float | None = None,
    name: str | None = None,
    allow_incomplete: bool = False,
    extra=None,
    adapter: str | None = None,
    shard=None,
    deterministic: bool = False,
    reproducer=False,
    activations=None,
) -> GateResult:
    """Judge `kernel` on the shape profile(s); shrink and report the first failure.

    support: limits on top of what the kernel declares with @parity.supports (they intersect).
    examples: cases per profile, shapes drawn by hypothesis (realistic spends a fifth); then every shape of the
        grid not drawn runs on its own (MIN_PER_SHAPE cases), so each shape is visited.
    backward: also compare the gradients of all six inputs for a random upstream gradient.
    max_seconds: bound on the whole run including shrinking (shapes not reached are listed); a run it cuts
        short is `incomplete` unless `allow_incomplete` (then a pass with a note).
    max_heads: cap the heads of the realistic shapes (CI runs them with fewer heads).
    reference(case) -> float64 array: the forward reference (default parity.gate.reference).
    cases: a hypothesis strategy of AttentionCase/CaseRecipe to use instead of the profiles (profile "custom");
        a failing case is saved to a folder that `python -m parity gate --replay-case` replays.
    atol: replaces the forward budget (every dtype).
    extra: parity.gate.profiles.ExtraShapes, values added to every profile's axes.
    adapter: a parity.gate.adapters name ("hf-module", "local", "local-varlen"): `kernel` has that interface and
        the adapter turns it into the contract's (docs/contract.md#adapters).
    shard: "K/N" (or parity.gate.shards.Shard): run the K-th of N deterministic parts of the profiles' shapes;
        `led-parity gate-merge` combines the N JSON reports (parity.gate.shards).
    deterministic: every case's forward (and backward) runs several times and must give the same bits
        (verdict `nondeterministic`); without it the first case of each toy/boundary shape runs twice and a
        difference is a note (parity.gate.determinism).
    reproducer: True or a folder: a failure is saved there (a fresh temp folder for True) as inputs.npz,
        case.json and command.txt, replayed by `--replay-case` (a custom run always saves it).
    activations: model cases (parity.gate.activations.model_cases) run before the profiles, one per layer;
        or (checkpoint or None, text or None) to compute them.
    """
    _check_arguments(kernel, examples, max_seconds, device, atol)
    name = name or _kernel_name(kernel)
    if adapter is not None:
        from parity.gate.adapters import adapt

        kernel = adapt(kernel, adapter)
    dtype = dtype_name(dtype)
    profiles = profile_names(profile)
    blocks = check_blocks(blocks)
    support = _support(kernel, support)
    support.check_run(dtype, device)
    seed = random.SystemRandom().randrange(2**32) if seed is None else int(seed)
    result = GateResult(kernel=name, verdict="pass", seed=seed, examples=examples, dtype=dtype, device=device,
                        tolerance=tolerance(support.budget_dtype(dtype), kind="context") if atol is None else atol,
                        adapter=adapter,
                        profile=profile if cases is None else "custom", blocks=blocks, support=support,
                        backward=backward, max_heads=max_heads, atol=atol, max_seconds=max_seconds,
                        allow_incomplete=bool(allow_incomplete), extra=extra or None,
                        reference=None if reference is None else _kernel_name(reference))
    result.forward_only = backward and not support.backward
    stable_draws()  # imports every project module once: not the kernel's time
    started = time.monotonic()
    deadline = None if max_seconds is None else started + max_seconds
    run_backward = backward and support.backward
    shard = parse_shard(shard)
    result.shard, result.deterministic = (str(shard) if shard else None), bool(deterministic)
    model = _model_cases(activations, result)
    runs = _plan(cases, examples, profiles, profile, support, blocks, max_heads, extra, result)
    runs, owned = _apply_shard(runs, model, shard, result)
    checker = DeterminismCheck(required=bool(deterministic))
    judge = partial(_judge_case, kernel, result, dtype, device, run_backward, reference, atol, owned=owned,
                    determinism=checker)
    failure = _run_model_cases(model, judge, owned, result, deadline) or _run_plan(runs, judge, result, seed, deadline)
    result.notes += checker.notes
    result.time_bound = deadline is not None and time.monotonic() > deadline
    if failure is not None:
        _record_failure(result, *failure)
        _explain(kernel, result, deadline)
        if result.profile == "custom" or reproducer:
            _save_custom_case(result, run_backward, None if reproducer is True else reproducer or None)
    else:
        _judge_completeness(result)
    result.time_bound = result.time_bound or bool(result.not_run)
    result.seconds = time.monotonic() - started
    return result


def _kernel_name(kernel) -> str:
    return f"{getattr(kernel, '__module__', '?')}:{getattr(kernel, '__qualname__', repr(kernel))}"


def _check_arguments(kernel, examples, max_seconds, device, atol) -> None:
    if atol is not None and not (isinstance(atol, (int, float)) and 0 < atol < float("inf")):
        raise ValueError(f"atol must be a finite number > 0, got {atol!r}")
    if isinstance(examples, bool) or not isinstance(examples, int) or examples < 1:
        raise ValueError(f"examples must be a positive int, got {examples!r}")
    if not callable(kernel):
        raise TypeError(f"kernel must be callable, got {type(kernel).__name__}")
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"max_seconds must be > 0, got {max_seconds!r}")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu or cuda, got {device!r}")


def _support(kernel, asked: Support | None) -> Support:
    """What the kernel declares (@parity.supports), narrowed by the caller's `support=` (they intersect)."""
    declared = support_of(kernel)
    if asked is None:
        return declared
    if not isinstance(asked, Support):
        raise TypeError(f"support must be a parity.Support, got {type(asked).__name__}")
    return declared.narrowed(**{k: v for k, v in asked.to_dict().items() if v != getattr(Support(), k)})


def _judge_case(kernel, result: GateResult, dtype, device, run_backward, reference, atol, case, owned=None,
                determinism=None) -> None:
    """One case: compare every output, raise the KernelFailure of the first wrong one, else record the worst.
    A case of a shape outside `owned` (another shard's) is skipped; `determinism` repeats the case."""
    label = _case_label(case)
    if owned is not None and label not in owned:
        return
    case = result.support.drawn(case)  # padding=False / "edges": the layouts the kernel takes
    started = time.monotonic()
    try:
        outputs = check_case(kernel, case, dtype, device, run_backward, reference, atol=atol,
                             compute_dtype=result.support.compute_dtype)
        if determinism is not None and (determinism.required or not label.startswith(COSTLY_PROFILES)):
            concrete = rounded(case.materialize() if hasattr(case, "materialize") else case, dtype)
            found = determinism.check(kernel, concrete, case_id(case), label, dtype, device, run_backward)
            if found:
                raise KernelNondeterministic(concrete, found)
    except KernelFailure as failure:
        failure.recipe = case if hasattr(case, "materialize") else None
        raise
    result.case_log.append({"id": case_id(case), "shape": label, "seconds": round(time.monotonic() - started, 4),
                            "outputs": {name: dict(w) for name, w in outputs.items()}})
    result.cases_run += 1
    result.cases_per_shape[label] = result.cases_per_shape.get(label, 0) + 1
    for output, w in outputs.items():
        old = result.worst.get(output)
        if old is None or w["error"] / max(w["budget"], 1e-300) > old["error"] / max(old["budget"], 1e-300):
            result.worst[output] = w


def _case_label(case) -> str:
    """The shape a case belongs to: its profile shape, its model layer, or "custom"."""
    if hasattr(case, "shape"):
        return case.shape.label
    label = getattr(case, "label", "") or ""
    return label if label.startswith(MODEL_LABEL) else "custom"


def _model_cases(activations, result: GateResult) -> list:
    """The model cases of `activations` (a list of cases, or (checkpoint, text) to compute them), planned."""
    if activations is None:
        return []
    if isinstance(activations, tuple):
        checkpoint, text_file = activations
        result.activations = [checkpoint or "default", text_file or "default"]
        activations = model_cases(checkpoint, read_text(text_file))
    cases = []
    for case in activations:
        if not (getattr(case, "label", "") or "").startswith(MODEL_LABEL):
            raise ValueError(f"activations must be model cases labelled '{MODEL_LABEL} ...', got {case!r}")
        reason = result.support.why_not(case.window, case.query.shape[2], case.query.shape[3])
        if reason is None:
            cases.append(case)
        else:
            result.excluded[MODEL_LABEL] = f"{case.label.split(' window')[0]}: {reason}" if MODEL_LABEL not in \
                result.excluded else result.excluded[MODEL_LABEL] + f"; {case.label.split(' window')[0]}: {reason}"
    result.planned += [case.label for case in cases]
    return cases


def _apply_shard(runs, model, shard, result: GateResult):
    """Keep this shard's shapes of every run and of the model cases (parity.gate.shards); returns (runs, the
    labels this shard owns or None without a shard)."""
    if shard is None:
        return runs, None
    if result.profile == "custom":
        raise ValueError("shard splits the profiles' shapes; a run on custom cases= has none to split")
    owned = set(owned_labels([c.label for c in model], shard))
    kept = []
    for label, strategy, n, shapes, per_missed in runs:
        mine = set(owned_labels([s.label for s in shapes], shard))
        owned |= mine
        if mine:
            kept.append((label, strategy, n, [s for s in shapes if s.label in mine], per_missed))
    result.planned = [label for label in result.planned if label in owned]
    return kept, owned


def _run_model_cases(cases, judge, owned, result: GateResult, deadline):
    """Each model case once, before the profiles (a real model's values fail fastest). (failure, []) or None."""
    for case in cases:
        if owned is not None and case.label not in owned:
            continue
        if deadline is not None and time.monotonic() > deadline:
            result.not_run.append(case.label)
            continue
        try:
            judge(case)
        except KernelFailure as failure:
            return failure, []
    return None


def _plan(cases, examples, profiles, profile, support, blocks, max_heads, extra, result: GateResult) -> list:
    """[(label, strategy, examples, the grid's shapes, cases per shape hypothesis missed)], one per profile
    (or the caller's `cases`); what a profile's grid excludes goes into result.excluded, the shapes to visit
    into result.planned."""
    if cases is not None:
        result.planned = ["custom"]
        return [("custom", cases, examples, [], 0)]
    runs = []
    for p in profiles:
        g = grid(p, support, blocks, max_heads, extra=extra) if extra else grid(p, support, blocks, max_heads)
        if g.excluded:
            result.excluded[p] = g.excluded_text()
        if g.shapes:
            strategy = st.sampled_from(g.shapes).flatmap(partial(shape_cases, support=support))
            runs.append((p, strategy, profile_examples(p, examples), g.shapes, MIN_PER_SHAPE[p]))
            result.planned += [s.label for s in g.shapes]
    if not runs:
        raise ValueError(f"the support ({support.describe()}) excludes every shape of profile {profile}: "
                         + "; ".join(f"{p}: {t}" for p, t in result.excluded.items()))
    return runs


def _run_plan(runs, judge, result: GateResult, seed, deadline):
    """Hypothesis over each run, then every grid shape it did not draw. Returns (the first failure, hypothesis'
    report lines), or None; at the deadline what was not reached goes into result.not_run."""
    def run(strategy, n):
        budget = ShrinkBudget(SHRINK_SAFETY_SECONDS, deadline, tries=SHRINK_TRIES)
        return run_seeded(judge, strategy, n, seed, budget, key=_case_key, failure=KernelFailure)

    for label, strategy, n, shapes, per_missed in runs:
        if deadline is not None and time.monotonic() > deadline:
            result.not_run += [s.label for s in shapes] or [label]
            continue
        failure = run(strategy, n)
        if failure is not None:
            return failure
        # Hypothesis drew the shapes; every shape of the grid is visited, so the ones it missed run now.
        missed = [s for s in shapes if s.label not in result.cases_per_shape]
        for shape in missed:
            if deadline is not None and time.monotonic() > deadline:
                result.not_run.append(shape.label)
                continue
            failure = run(shape_cases(shape, result.support), per_missed)
            if failure is not None:
                return failure
    return None


def _case_key(case):
    return case.key() if hasattr(case, "key") else id(case)


def _record_failure(result: GateResult, exc: KernelFailure, report: list[str]) -> None:
    result.verdict = exc.verdict
    result.counterexample, result.recipe, result.error, result.detail = exc.case, exc.recipe, exc.error, exc.detail
    result.output, result.budget, result.plain, result.inherited = exc.output, exc.budget, exc.plain, exc.inherited
    result.location = exc.location
    result.reproducer = report + [str(n) for n in getattr(exc, "__notes__", [])]
    if result.reference is not None:
        result.notes.append(f"the run used the reference {result.reference}; a replay uses parity.gate.reference")


def _judge_completeness(result: GateResult) -> None:
    """A run without a failure that did not visit every planned shape is `incomplete` (or, allowed, a note)."""
    result.not_run += [label for label in result.planned
                       if label not in result.shapes_run and label not in result.not_run]
    if result.complete:
        return
    if result.allow_incomplete:
        result.notes.append(f"incomplete run allowed: {len(result.shapes_run)} of {len(result.planned)} planned "
                            "shapes ran before the time budget ran out")
    else:
        result.verdict = "incomplete"


def _explain(kernel, result: GateResult, deadline: float | None = None) -> None:
    """For a forward mismatch, which keys of the failing row the kernel weighs differently, within the run's
    deadline (never changes the verdict: any failure of the diagnosis leaves `keys` None)."""
    at = result.location
    if result.verdict != "mismatch" or result.output != "context" or not at or result.counterexample is None:
        return
    seconds = DIAGNOSIS_SECONDS if deadline is None else min(DIAGNOSIS_SECONDS, deadline - time.monotonic())
    if seconds <= 0:
        return
    try:
        from parity.gate.diagnosis import diagnose_keys

        bound = {"max_seconds": seconds} if "max_seconds" in inspect.signature(diagnose_keys).parameters else {}
        keys = diagnose_keys(kernel, result.counterexample, result.dtype, result.device, at["batch"], at["head"],
                             at["position"], **bound)
        result.keys = [dict(k) for k in keys]
    except Exception:  # noqa: BLE001 - an explanation that fails must not turn into a verdict
        result.keys = None
    try:  # a wrong band of visible keys is named as a layout (an edge-shifted window, a one-sided one, ...)
        from parity.gate.window_layout import wrong_layout

        result.layout = wrong_layout(kernel, result.counterexample, result.dtype, result.device,
                                     result.support.max_seq)
    except Exception:  # noqa: BLE001
        result.layout = None


def _save_custom_case(result: GateResult, run_backward: bool, directory: str | None = None) -> None:
    """Save the failing case (a custom run's, or any run's asked for a reproducer) to `directory` (default a
    fresh temp folder), so `--replay-case` reproduces it without the strategy or the seed."""
    from parity.gate.case_files import save_case

    record = {"kernel": result.kernel, "verdict": result.verdict, "output": result.output, "dtype": result.dtype,
              "device": result.device, "backward": result.backward, "forward_only": not run_backward and
              result.backward, "atol": result.atol, "seed": result.seed, "support": result.support.to_dict(),
              "values": _recipe_values(result.recipe), "reference": result.reference or "parity.gate.reference",
              "adapter": result.adapter, "deterministic": result.deterministic, "shard": result.shard,
              "detail": result.detail, "gate_replay": result.replay_command() if result.profile != "custom" else None}
    try:
        result.case_dir = save_case(result.counterexample, strict_json(record), directory)
    except OSError as err:
        result.notes.append(f"could not save the failing case: {err}")


def replay_case(kernel: Callable, path: str, name: str | None = None) -> GateResult:
    """Run `kernel` once on a case saved by a custom gate run (`path`: its folder), with the dtype, device,
    backward and atol recorded there; the verdict is the gate's on that case."""
    from parity.gate.case_files import load_case

    case, record = load_case(path)
    dtype, device = dtype_name(record.get("dtype", "float64")), record.get("device", "cpu")
    atol, backward = record.get("atol"), bool(record.get("backward", False))
    _check_arguments(kernel, 1, None, device, atol)
    support = _support(kernel, None)
    compute_dtype = (record.get("support") or {}).get("compute_dtype")
    if compute_dtype:  # a declaration that changes the budget travels with the case
        support = support.narrowed(compute_dtype=compute_dtype)
    support.check_run(dtype, device)
    result = GateResult(kernel=name or _kernel_name(kernel), verdict="pass", seed=int(record.get("seed", 0)),
                        examples=1, dtype=dtype, device=device, profile="custom", support=support, backward=backward,
                        tolerance=tolerance(dtype, kind="context") if atol is None else atol, atol=atol,
                        planned=["custom"])
    result.forward_only = backward and not support.backward
    result.case_dir = path
    result.deterministic = bool(record.get("deterministic", False))
    checker = DeterminismCheck(required=True) if result.deterministic else None
    started = time.monotonic()
    try:
        _judge_case(kernel, result, dtype, device, backward and support.backward, None, atol, case,
                    determinism=checker)
    except KernelFailure as exc:
        _record_failure(result, exc, [])
        _explain(kernel, result)
    result.seconds = time.monotonic() - started
    return result


def assert_gate(kernel: Callable, **kwargs) -> GateResult:
    """`gate` that raises AssertionError with the verdict message unless the kernel passes."""
    result = gate(kernel, **kwargs)
    if not result.passed:
        raise AssertionError(result.message())
    return result
