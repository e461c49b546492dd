"""The kernel gate: does a user's attention kernel meet the contract of docs/contract.md on hypothesis cases?

    from parity.gate import gate
    result = gate(my_kernel, examples=100, seed=0)
    assert result.passed, result.message()

Each case (parity.strategies.attention_cases) is run through the kernel as torch tensors and through the
reference, led_ref's NumPy `longformer_attention`, in float64 on the same (dtype-rounded) values; the scaled
error must stay within parity.tolerances for the kernel's dtype. On the first disagreement hypothesis
shrinks the case, and the result carries the SHRUNK counterexample: shapes, window, token kinds, where
the error is largest, and the hypothesis reproducer. The seed is always explicit (drawn and printed when
not given), so every run can be replayed.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.reporting import with_reporter

from .strategies import AttentionCase, attention_cases
from .tolerances import dtype_name, scaled_error, tolerance

KIND_NAMES = {0: "padding", 1: "local", 2: "global"}
ARGUMENTS = ("query", "key", "value", "global_query", "global_key", "global_value", "token_kind")


NO_EXPLAIN = [p for p in Phase if p.name != "explain"]  # hypothesis' line-coverage notes are noise here


class KernelMismatch(AssertionError):
    """Raised inside the hypothesis test when a kernel disagrees with the spec on one case."""

    def __init__(self, case: AttentionCase, error: float, detail: str):
        super().__init__(f"mismatch: scaled error {error:.3e}; {detail}; case {case.describe()}")
        self.case, self.error, self.detail = case, error, detail


@dataclass
class GateResult:
    """Outcome of `gate`. `counterexample` is the shrunk failing case (None when passed)."""

    kernel: str
    passed: bool
    seed: int
    examples: int
    dtype: str
    tolerance: float
    max_error: float = 0.0
    cases_run: int = 0
    counterexample: AttentionCase | None = None
    error: float = 0.0
    detail: str = ""
    reproducer: list[str] = field(default_factory=list)

    def message(self) -> str:
        if self.passed:
            return (f"ok: {self.kernel} matches the spec on {self.cases_run} cases ({self.dtype}, seed {self.seed}); "
                    f"max scaled error {self.max_error:.2e} <= {self.tolerance:.0e}")
        lines = [
            f"mismatch: {self.kernel} disagrees with the spec (seed {self.seed}, {self.dtype}, "
            f"tolerance {self.tolerance:.0e})",
            f"  scaled error: {self.error:.3e}",
            f"  where: {self.detail}",
        ]
        if self.counterexample is not None:
            lines.append(f"  shrunk counterexample: {self.counterexample.describe()}")
        lines.append(f"  replay: python -m parity gate --attention {self.kernel} --seed {self.seed} "
                     f"--examples {self.examples} --dtype {self.dtype}")
        lines += [f"  {line}" for line in self.reproducer if line.strip()]
        return "\n".join(lines)


def spec_attention(case: AttentionCase) -> np.ndarray:
    """The reference context (batch, heads, seq, head_dim) from led_ref's NumPy kernel, float64."""
    from led_ref.attention import longformer_attention

    out = longformer_attention(*case.arrays(), case.token_kind, case.window)
    return np.asarray(out, dtype=np.float64)


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
    arrays = [torch.as_tensor(a).to(torch_dtype).double().numpy() for a in case.arrays()]
    return AttentionCase(*arrays, token_kind=case.token_kind, window=case.window, seed=case.seed)


def case_error(kernel: Callable, case: AttentionCase, dtype="float64", device="cpu",
               reference: Callable = spec_attention) -> tuple[float, str]:
    """(scaled error of kernel vs reference on `case`, where the largest error is)."""
    import torch

    case = rounded(case, dtype)
    args = case.torch_args(getattr(torch, dtype_name(dtype)), device)
    before = [a.clone() for a in args[:7]]
    try:
        out = kernel(*args)
    except Exception as err:  # a crash on a valid input is a disagreement too
        return float("inf"), f"kernel raised {type(err).__name__}: {err}"
    for name, old, new in zip(ARGUMENTS, before, args, strict=False):
        if not torch.equal(old, new):  # the caller may still need them (and the spec reads the same values)
            return float("inf"), f"kernel modified its input {name!r} in place"
    got = out.detach().double().cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out, np.float64)
    expected = reference(case)
    if got.shape != expected.shape:
        return float("inf"), f"kernel returned shape {tuple(got.shape)}, the contract says {tuple(expected.shape)}"
    error = scaled_error(got, expected)
    return error, _where(got, expected, case.token_kind)


def _where(got: np.ndarray, expected: np.ndarray, token_kind: np.ndarray) -> str:
    diff = np.abs(np.nan_to_num(got - expected, nan=np.inf))
    b, h, i, _ = np.unravel_index(int(np.argmax(diff)), diff.shape)
    kind = KIND_NAMES[int(token_kind[b, i])]
    return (f"batch {b} head {h} query {i} ({kind} row): kernel {np.round(got[b, h, i], 6).tolist()} "
            f"vs spec {np.round(expected[b, h, i], 6).tolist()}")


def gate(
    kernel: Callable,
    examples: int = 100,
    seed: int | None = None,
    dtype="float64",
    device: str = "cpu",
    reference: Callable = spec_attention,
    cases=None,
    atol: float | None = None,
    name: str | None = None,
) -> GateResult:
    """Run `kernel` against the contract on `examples` hypothesis cases; shrink and report the first failure.

    `cases` defaults to `attention_cases()`; `atol` defaults to the tolerance for `dtype`.
    """
    if isinstance(examples, bool) or not isinstance(examples, int) or examples < 1:
        raise ValueError(f"examples must be a positive int, got {examples!r}")
    if not callable(kernel):
        raise TypeError(f"kernel must be callable, got {type(kernel).__name__}")
    seed = random.SystemRandom().randrange(2**32) if seed is None else int(seed)
    dtype = dtype_name(dtype)
    budget = tolerance(dtype, kind="context") if atol is None else atol
    name = name or f"{getattr(kernel, '__module__', '?')}:{getattr(kernel, '__qualname__', repr(kernel))}"
    result = GateResult(kernel=name, passed=True, seed=seed, examples=examples, dtype=dtype, tolerance=budget)

    @settings(max_examples=examples, database=None, deadline=None, print_blob=True, report_multiple_bugs=False,
              suppress_health_check=list(HealthCheck),
              phases=NO_EXPLAIN, derandomize=False)
    @given(case=cases if cases is not None else attention_cases())
    def check(case: AttentionCase) -> None:
        error, detail = case_error(kernel, case, dtype, device, reference)
        result.cases_run += 1
        if not error > budget:  # NaN counts as a failure
            result.max_error = max(result.max_error, error)
            return
        raise KernelMismatch(case, error, detail)

    report: list[str] = []
    with with_reporter(report.append):
        try:
            hypothesis_seed(seed)(check)()
        except KernelMismatch as failure:
            result.passed = False
            result.counterexample, result.error, result.detail = failure.case, failure.error, failure.detail
            result.reproducer = report + [str(n) for n in getattr(failure, "__notes__", [])]
    return result


def assert_gate(kernel: Callable, **kwargs) -> GateResult:
    """`gate` that raises AssertionError with the mismatch message when the kernel disagrees."""
    result = gate(kernel, **kwargs)
    if not result.passed:
        raise AssertionError(result.message())
    return result
