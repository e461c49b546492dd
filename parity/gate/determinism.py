"""Does a kernel give the same bits every time on the same inputs?

A reduction whose order depends on scheduling (atomic adds of split-K partial sums, a tree reduction over
however many thread blocks ran first) gives results that differ in the last bits from run to run. That is
within any numeric budget, so the value checks cannot see it, but it breaks bitwise reproducible training
and makes every other failure flaky. `gate(..., deterministic=True)` (`--deterministic`) runs each case's
forward (and backward with `--backward`) `RUNS` times on freshly handed inputs and requires bitwise-equal
results; without it the first case of every shape is run twice and a difference is only a note.
"""

from __future__ import annotations

import numpy as np

from parity.gate.poison import hand_over

RUNS = 3  # runs compared per case when determinism is required (the first is the reference)
NOTE_RUNS = 2  # runs of the first case of each shape otherwise


def same_bits(old, new) -> bool:
    """Two tensors of one shape and dtype hold the same bits, whatever their strides or devices (a float compare
    misses -0.0 written over 0.0, and NaN never equals itself)."""
    import torch

    if old.shape != new.shape or old.dtype != new.dtype:
        return False
    if old.is_floating_point():
        as_int = {8: torch.int64, 4: torch.int32, 2: torch.int16, 1: torch.int8}[old.element_size()]
        old, new = old.view(as_int), new.view(as_int)
    return torch.equal(old, new.to(old.device))


def _run_once(kernel, case, torch_dtype, device, backward):
    import torch

    handed = hand_over(case, torch_dtype, device, requires_grad=backward)
    with torch.enable_grad() if backward else torch.no_grad():
        out = kernel(*handed.tensors, handed.token_kind, handed.window)
    results = {"context": out.detach().to("cpu")}
    if backward and isinstance(out, torch.Tensor) and out.requires_grad:
        rng = np.random.default_rng(case.seed + 1)  # the upstream gradient the value check uses
        upstream = torch.as_tensor(rng.standard_normal(tuple(out.shape))).to(out.dtype).to(out.device)
        grads = torch.autograd.grad(out, handed.tensors, upstream, allow_unused=True)
        names = ("query", "key", "value", "global_query", "global_key", "global_value")
        results |= {f"grad_{n}": g.detach().to("cpu") for n, g in zip(names, grads, strict=True) if g is not None}
    return results


def first_difference(kernel, case, dtype, device: str = "cpu", backward: bool = False, runs: int = RUNS) -> str | None:
    """Run `kernel` `runs` times on `case` (already rounded to `dtype`); None when every run gave the same
    bits, else which output differed first and where."""
    import torch

    torch_dtype = getattr(torch, dtype)
    first = _run_once(kernel, case, torch_dtype, device, backward)
    for run in range(2, runs + 1):
        again = _run_once(kernel, case, torch_dtype, device, backward)
        for name, bits in first.items():
            other = again.get(name)
            if other is None or not same_bits(bits, other):
                return (f"{name} differs between run 1 and run {run} on identical inputs (a reduction whose order "
                        "changes from run to run: atomic adds, split-K partial sums combined as they finish)")
    return None


class DeterminismCheck:
    """The determinism check of one gate run: `required` (every case, a failure is a verdict) or not (the first
    case of each shape, a difference is a note). Remembers the cases it found differing, so hypothesis, shrinking,
    sees a failing case fail again even when a repeat happens to agree."""

    def __init__(self, required: bool):
        self.required = required
        self.checked_shapes: set[str] = set()
        self.differing: dict = {}
        self.notes: list[str] = []

    def check(self, kernel, case, key, label: str, dtype, device, backward) -> str | None:
        """The difference that fails this case (required mode only), else None; notes go to `self.notes`."""
        if key in self.differing:
            return self.differing[key] if self.required else None
        if not self.required:
            if label in self.checked_shapes:
                return None
            self.checked_shapes.add(label)
        found = first_difference(kernel, case, dtype, device, backward, RUNS if self.required else NOTE_RUNS)
        if found is None:
            return None
        self.differing[key] = found
        if self.required:
            return found
        if not self.notes:
            self.notes.append(f"nondeterministic: {found} on [{label}]; not a failure without --deterministic "
                              "(deterministic=True)")
        return None
