"""The kernel gate: does a user's attention kernel meet the contract of docs/contract.md?

    from parity.gate.judge import gate
    result = gate(my_kernel, profile="realistic", dtype="bfloat16", seed=0, backward=True)
    assert result.passed, result.message()

Cases come from the shape profiles of parity.gate.profiles (toy, boundary, realistic; every shape of the grid
visited, hypothesis varying the layout and the values), inside the kernel's declared support
(parity.gate.support). Each case runs through the kernel as torch tensors and through the float64 reference
(parity.gate.reference) on the same dtype-rounded values. The verdict:

    pass      every case within budget
    mismatch  the numbers are wrong: an output (or, with backward, a gradient) beyond its budget, or
              non-finite output on valid input
    error     the kernel broke the interface on a supported case: it raised, returned something other than
              one tensor, the wrong shape, dtype or device, wrote into an input, or gave no gradient

Budgets (parity.harness.tolerances): float64 and float32 fixed; float16/bfloat16 per case, `HALF_K` times the error
of the straightforward implementation in the same dtype (the reference run in that dtype) plus
`half_floor(dtype)`, capped by the fixed budget. On the first failure hypothesis shrinks the case (within
the time budget) and the result carries the shrunk counterexample, the seed and a replay command.
"""

from __future__ import annotations

import importlib
import platform
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from hypothesis import strategies as st

from parity.gate.profiles import (
    DEFAULT_BLOCKS,
    MIN_PER_SHAPE,
    check_blocks,
    grid,
    profile_examples,
    profile_names,
    shape_cases,
)
from parity.gate.support import Support, support_of
from parity.harness.hypothesis_runs import ShrinkBudget, run_seeded
from parity.harness.strategies import AttentionCase
from parity.harness.tolerances import dtype_name, scaled_error, tolerance

KIND_NAMES = {0: "padding", 1: "local", 2: "global"}
ARGUMENTS = ("query", "key", "value", "global_query", "global_key", "global_value", "token_kind")
OUTPUTS = ("context",) + tuple(f"grad_{name}" for name in ARGUMENTS[:6])
HALF_K = 3.0  # half precision: at most 3x the error of a straightforward implementation in the same dtype
SHRINK_SECONDS = 120.0  # shrinking stops after this long (or at max_seconds) with the smallest case so far



def half_floor(dtype: str) -> float:
    """The absolute slack added to HALF_K x the plain implementation's error: half the dtype's epsilon."""
    import torch

    return float(torch.finfo(getattr(torch, dtype)).eps) / 2


class KernelFailure(AssertionError):
    """Raised inside the hypothesis test when a kernel fails one case; `verdict` is mismatch or error."""

    verdict = "mismatch"

    def __init__(self, case, detail: str, output: str = "context", error: float = float("inf"),
                 budget: float = 0.0, plain: float | None = None):
        super().__init__(f"{self.verdict}: {detail}; case {case.describe()}")
        self.case, self.detail, self.output = case, detail, output
        self.error, self.budget, self.plain = error, budget, plain


class KernelMismatch(KernelFailure):
    verdict = "mismatch"


class KernelError(KernelFailure):
    verdict = "error"


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
    cases_run: int = 0
    cases_per_shape: dict[str, int] = field(default_factory=dict)
    worst: dict[str, dict] = field(default_factory=dict)  # output -> {error, budget, plain}
    excluded: dict[str, str] = field(default_factory=dict)  # profile -> what the support left out
    not_run: list[str] = field(default_factory=list)  # shapes the time budget did not reach
    counterexample: AttentionCase | None = None
    error: float = 0.0
    detail: str = ""
    output: str = ""
    budget: float = 0.0
    plain: float | None = None
    reproducer: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    @property
    def max_error(self) -> float:
        return self.worst.get("context", {}).get("error", 0.0)

    def replay_command(self) -> str:
        parts = [f"python -m parity gate --attention {self.kernel} --seed {self.seed} --examples {self.examples}",
                 f"--profile {self.profile} --dtype {self.dtype} --device {self.device}"]
        if self.profile in ("boundary", "all") and self.blocks != DEFAULT_BLOCKS:
            parts.append("--block " + ",".join(map(str, self.blocks)))
        if self.backward:
            parts.append("--backward")
        if self.max_heads is not None:
            parts.append(f"--max-heads {self.max_heads}")
        if self.atol is not None:
            parts.append(f"--atol {self.atol!r}")
        return " ".join(parts)

    def _worst_text(self) -> str:
        bits = []
        for name, w in self.worst.items():
            text = f"{name} {w['error']:.2e} <= {w['budget']:.1e}"
            if w.get("plain") is not None:
                text += f" (plain {self.dtype} {w['plain']:.2e})"
            bits.append(text)
        return "; ".join(bits)

    def message(self) -> str:
        where = f"profile {self.profile}, {self.dtype} on {self.device}, seed {self.seed}"
        if self.passed:
            lines = [f"pass: {self.kernel} meets the contract on {self.cases_run} cases in "
                     f"{len(self.cases_per_shape)} shapes ({where})"]
            if self.worst:
                lines.append(f"  worst scaled error: {self._worst_text()}")
        elif self.verdict == "error":
            lines = [f"error: {self.kernel} breaks the contract: {self.detail} ({where})"]
        else:
            plain = ""
            if self.plain is not None:
                ratio = self.error / self.plain if self.plain > 0 else float("inf")
                plain = f", plain {self.dtype} implementation {self.plain:.3e} (ratio {ratio:.2f}, allowed {HALF_K})"
            given = " (atol given)" if self.atol is not None and self.output == "context" else ""
            lines = [f"mismatch: {self.kernel} disagrees with the spec on {self.output} ({where})",
                     f"  scaled error: {self.error:.3e} > budget {self.budget:.3e}{given}{plain}",
                     f"  where: {self.detail}"]
        if self.forward_only:
            lines.append("  forward-only: the kernel declares no backward; gradients were not gated")
        lines.append(f"  support: {self.support.describe()}")
        for profile, text in self.excluded.items():
            lines.append(f"  {profile}: the support excluded {text}")
        if self.not_run:
            lines.append(f"  time budget reached: {len(self.not_run)} shapes not run (first: {self.not_run[0]})")
        if self.counterexample is not None:
            lines.append(f"  shrunk counterexample: {self.counterexample.describe()}")
        if not self.passed:
            lines.append(f"  replay: {self.replay_command()}")
            lines += [f"  {line}" for line in self.reproducer if line.strip()]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        import hypothesis
        import torch

        device = self.device
        if device == "cuda" and torch.cuda.is_available():
            device = f"cuda ({torch.cuda.get_device_name()})"
        else:
            device = f"{device} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
        return {
            "kernel": self.kernel, "verdict": self.verdict, "seed": self.seed, "profile": self.profile,
            "blocks": list(self.blocks), "dtype": self.dtype, "examples": self.examples, "backward": self.backward,
            "atol": self.atol,
            "forward_only": self.forward_only, "support": self.support.to_dict(), "excluded": self.excluded,
            "cases_run": self.cases_run, "cases_per_shape": self.cases_per_shape, "worst_error": self.worst,
            "shapes_not_run": self.not_run, "seconds": round(self.seconds, 3),
            "failure": None if self.passed else {
                "output": self.output, "error": self.error, "budget": self.budget, "plain": self.plain,
                "detail": self.detail,
                "counterexample": None if self.counterexample is None else self.counterexample.describe(),
                "replay": self.replay_command()},
            "versions": {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__,
                         "hypothesis": hypothesis.__version__},
            "device": device,
        }


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
    return AttentionCase(*arrays, token_kind=case.token_kind, window=case.window, seed=case.seed,
                         strided=case.strided, label=case.label)


def _where(got: np.ndarray, expected: np.ndarray, token_kind: np.ndarray, what: str = "query") -> str:
    """The worst element: its index, both values to full precision, the absolute and the scaled difference."""
    diff = np.abs(np.nan_to_num(got - expected, nan=np.inf))
    b, h, i, d = np.unravel_index(int(np.argmax(diff)), diff.shape)
    kind = KIND_NAMES[int(token_kind[b, i])]
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    return (f"batch {b} head {h} {what} {i} ({kind} token) dim {d}: kernel {float(got[b, h, i, d])!r} vs spec "
            f"{float(expected[b, h, i, d])!r} (|diff| {float(diff[b, h, i, d]):.3e}, scaled "
            f"{float(diff[b, h, i, d]) / scale:.3e})")


# ------------------------------------------------------------------------------------------ one case
def _budget(dtype: str, plain: float | None, kind: str, atol: float | None = None) -> float:
    """`atol` when given; else the fixed budget for float64/float32, and for half precision HALF_K times what
    the plain same-dtype implementation loses on this very case (+ half_floor). The half rule has no cap: a
    kernel as accurate as the plain one always passes, however hard the case is for the dtype."""
    if atol is not None:
        return atol
    if plain is None:
        return tolerance(dtype, kind=kind)
    return HALF_K * plain + half_floor(dtype)


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
               reference: Callable | None = None, atol: float | None = None) -> dict[str, dict]:
    """Run one case; return {output: {error, budget, plain}} or raise KernelMismatch / KernelError.

    `case` is an AttentionCase or a parity.gate.profiles.CaseRecipe. `reference(case) -> float64 array` replaces
    parity.gate.reference for the forward (e.g. `spec_attention`, led_ref's NumPy kernel). `atol` replaces the
    forward budget (looser or tighter)."""
    import torch

    if hasattr(case, "materialize"):
        case = case.materialize()
    dtype = dtype_name(dtype)
    torch_dtype = getattr(torch, dtype)
    case = rounded(case, dtype)
    args = case.torch_args(torch_dtype, device)
    inputs = list(args[:6])
    if backward:
        packed = inputs[0]._base if case.strided else None
        if packed is not None:
            packed.requires_grad_(True)
            inputs = [packed[:, :, i].transpose(1, 2) for i in range(6)]
        else:
            inputs = [t.requires_grad_(True) for t in inputs]
    before = [t.detach().clone() for t in inputs] + [args[6].clone()]
    try:
        with torch.enable_grad() if backward else torch.no_grad():
            out = kernel(*inputs, args[6], args[7])
    except Exception as err:  # noqa: BLE001 - any crash on a supported case is the verdict `error`
        raise KernelError(case, f"kernel raised {type(err).__name__}: {' '.join(str(err).split())[:300]}") from None
    _check_tensor(case, out, inputs[0], "the result")
    for name, old, new in zip(ARGUMENTS, before, [*inputs, args[6]], strict=True):
        if not torch.equal(old, new.detach()):  # the caller may still need them (and the spec reads the same)
            raise KernelError(case, f"kernel modified its input {name!r} in place")

    got = out.detach().to("cpu", torch.float64).numpy()
    reference = reference or reference_context
    expected = reference(case)
    valid = (case.token_kind != 0)[:, None, :, None]
    if not np.isfinite(np.where(valid, got, 0.0)).all():
        raise KernelMismatch(case, "non-finite output on a valid token: " + _where(got, expected, case.token_kind),
                             error=float("inf"))
    plain = scaled_error(reference_context(case, dtype), expected) if dtype in ("float16", "bfloat16") else None
    results = {"context": _judge(case, "context", got, expected, dtype, plain, "context", atol=atol)}

    if backward:
        results.update(_check_backward(case, out, inputs, dtype))
    return results


def _judge(case, output, got, expected, dtype, plain, kind, what="query", atol=None) -> dict:
    error = scaled_error(got, expected)
    budget = _budget(dtype, plain, kind, atol)
    if not error <= budget:  # NaN fails too
        raise KernelMismatch(case, _where(got, expected, case.token_kind, what), output, error, budget, plain)
    return {"error": error, "budget": budget, "plain": plain}


def _check_backward(case, out, inputs, dtype) -> dict[str, dict]:
    import torch

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
    plains = [None] * 6
    if dtype in ("float16", "bfloat16"):
        low = reference_gradients(*case.arrays(), case.token_kind, case.window, upstream64,
                                  dtype=getattr(torch, dtype))
        plains = [scaled_error(a.double().numpy(), b.numpy()) for a, b in zip(low, expected, strict=True)]
    results = {}
    for name, grad, ref, plain, like in zip(ARGUMENTS[:6], grads, expected, plains, inputs, strict=True):
        output = f"grad_{name}"
        if grad is None:
            grad = torch.zeros_like(like)
        _check_tensor(case, grad, like, f"the gradient of {name}")
        got = grad.detach().to("cpu", torch.float64).numpy()
        results[output] = _judge(case, output, got, ref.numpy(), dtype, plain, "*", what=f"{name} position")
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
) -> GateResult:
    """Judge `kernel` on the shape profile(s); shrink and report the first failure.

    support: limits on top of what the kernel declares with @parity.supports (they intersect).
    examples: cases per profile, shapes drawn by hypothesis (realistic spends a fifth); then every shape of the
        grid not drawn runs on its own (MIN_PER_SHAPE cases), so each shape is visited.
    backward: also compare the gradients of all six inputs for a random upstream gradient.
    max_seconds: bound on the whole run including shrinking (shapes not reached are listed).
    max_heads: cap the heads of every shape (CI runs realistic shapes with fewer heads).
    reference(case) -> float64 array: the forward reference (default parity.gate.reference).
    cases: a hypothesis strategy of AttentionCase to use instead of the profiles.
    atol: replaces the forward budget (every dtype).
    """
    _check_arguments(kernel, examples, max_seconds, device, atol)
    dtype = dtype_name(dtype)
    profiles = profile_names(profile)
    blocks = check_blocks(blocks)
    support = _support(kernel, support)
    support.check_run(dtype, device)
    seed = random.SystemRandom().randrange(2**32) if seed is None else int(seed)
    name = name or f"{getattr(kernel, '__module__', '?')}:{getattr(kernel, '__qualname__', repr(kernel))}"
    result = GateResult(kernel=name, verdict="pass", seed=seed, examples=examples, dtype=dtype, device=device,
                        tolerance=tolerance(dtype, kind="context") if atol is None else atol,
                        profile=profile if cases is None else "custom", blocks=blocks, support=support,
                        backward=backward, max_heads=max_heads, atol=atol)
    result.forward_only = backward and not support.backward
    started = time.monotonic()
    deadline = None if max_seconds is None else started + max_seconds
    judge = partial(_judge_case, kernel, result, dtype, device, backward and support.backward, reference, atol)
    runs = _plan(cases, examples, profiles, profile, support, blocks, max_heads, result)
    _run_plan(runs, judge, result, seed, deadline)
    result.seconds = time.monotonic() - started
    return result


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


def _judge_case(kernel, result: GateResult, dtype, device, run_backward, reference, atol, case) -> None:
    """One case: compare every output, raise the KernelFailure of the first wrong one, else record the worst."""
    label = case.shape.label if hasattr(case, "shape") else "custom"
    outputs = check_case(kernel, case, dtype, device, run_backward, reference, atol=atol)
    result.cases_run += 1
    result.cases_per_shape[label] = result.cases_per_shape.get(label, 0) + 1
    for output, w in outputs.items():
        old = result.worst.get(output)
        if old is None or w["error"] / max(w["budget"], 1e-300) > old["error"] / max(old["budget"], 1e-300):
            result.worst[output] = w


def _plan(cases, examples, profiles, profile, support, blocks, max_heads, result: GateResult) -> list:
    """[(label, strategy, examples, the grid's shapes, cases per shape hypothesis missed)], one per profile
    (or the caller's `cases`); what a profile's grid excludes goes into result.excluded."""
    if cases is not None:
        return [("custom", cases, examples, [], 0)]
    runs = []
    for p in profiles:
        g = grid(p, support, blocks, max_heads)
        if g.excluded:
            result.excluded[p] = g.excluded_text()
        if g.shapes:
            strategy = st.sampled_from(g.shapes).flatmap(partial(shape_cases, support=support))
            runs.append((p, strategy, profile_examples(p, examples), g.shapes, MIN_PER_SHAPE[p]))
    if not runs:
        raise ValueError(f"the support ({support.describe()}) excludes every shape of profile {profile}: "
                         + "; ".join(f"{p}: {t}" for p, t in result.excluded.items()))
    return runs


def _run_plan(runs, judge, result: GateResult, seed, deadline) -> None:
    """Hypothesis over each run, then every grid shape it did not draw; stops at the first failure (recorded
    in `result`) or the deadline (what was not reached goes into result.not_run)."""
    def run(strategy, n) -> bool:
        failure = run_seeded(judge, strategy, n, seed, ShrinkBudget(SHRINK_SECONDS, deadline), key=_case_key,
                             failure=KernelFailure)
        if failure is None:
            return True
        exc, report = failure
        result.verdict = exc.verdict
        result.counterexample, result.error, result.detail = exc.case, exc.error, exc.detail
        result.output, result.budget, result.plain = exc.output, exc.budget, exc.plain
        result.reproducer = report + [str(n) for n in getattr(exc, "__notes__", [])]
        return False

    for label, strategy, n, shapes, per_missed in runs:
        if deadline is not None and time.monotonic() > deadline:
            result.not_run += [s.label for s in shapes] or [label]
            continue
        if not run(strategy, n):
            return
        # Hypothesis drew the shapes; every shape of the grid is visited, so the ones it missed run now.
        missed = [s for s in shapes if s.label not in result.cases_per_shape]
        for shape in missed:
            if deadline is not None and time.monotonic() > deadline:
                result.not_run.append(shape.label)
            elif not run(shape_cases(shape, result.support), per_missed):
                return


def _case_key(case):
    return case.key() if hasattr(case, "key") else id(case)


def assert_gate(kernel: Callable, **kwargs) -> GateResult:
    """`gate` that raises AssertionError with the verdict message unless the kernel passes."""
    result = gate(kernel, **kwargs)
    if not result.passed:
        raise AssertionError(result.message())
    return result
