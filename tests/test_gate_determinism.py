"""Determinism: `--deterministic` repeats every case and requires the same bits (parity.gate.determinism,
docs/contract.md#determinism).

- a reduction whose order changes from run to run is `nondeterministic` (exit 1) with the flag, and a pass
  with a note without it; the correct tiled kernel passes the flag, forward and backward;
- bits, not values: a one-ulp difference counts, NaN compared to NaN does not;
- the flag travels in the replay command and the reproducer folder.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from parity.commands import main
from parity.gate.broken_kernels import LATENT_KERNELS, dense_attention, tiled_attention
from parity.gate.determinism import DeterminismCheck, first_difference
from parity.gate.judge import gate, replay_case
from parity.gate.profiles import CaseRecipe, Shape

SPLIT_K = LATENT_KERNELS["split_k_unordered"]
BOUNDARY = dict(profile="boundary", blocks=(16,), examples=8, seed=0)
SHAPE = Shape("boundary", window=32, seq=128, head_dim=16, heads=2, max_batch=1, block=32)


def case(**fields):
    return CaseRecipe(SHAPE, 1, 2, np.ones((1, 128), np.int64), seed=2, **fields).materialize()


class OneUlpNoise:
    """Deterministic except for one element, one ulp off on every other call."""

    def __init__(self):
        self.calls = 0

    def __call__(self, *args):
        out = dense_attention(*args)
        self.calls += 1
        if self.calls % 2 == 0:
            out = out.clone()
            out[0, 0, 0, 0] = torch.nextafter(out[0, 0, 0, 0], torch.tensor(np.inf, dtype=out.dtype))
        return out


def nan_everywhere(*args):
    return torch.full_like(dense_attention(*args), float("nan"))


def test_bits_are_compared_not_values():
    assert first_difference(OneUlpNoise(), case(), "float64") is not None
    assert first_difference(nan_everywhere, case(), "float64") is None  # same bits: NaN == NaN here
    assert first_difference(tiled_attention, case(strided=True, poisoned=True), "float32", backward=True) is None


def test_a_run_to_run_reduction_order_is_found_in_forward_and_named():
    found = first_difference(SPLIT_K, case(), "float64")
    assert found is not None and found.startswith("context differs")


def test_the_flag_rejects_it_and_without_it_a_note_is_all():
    strict = gate(SPLIT_K, deterministic=True, **BOUNDARY)
    assert strict.verdict == "nondeterministic" and not strict.passed, strict.message()
    assert strict.message().startswith("nondeterministic:") and "--deterministic" in strict.replay_command()
    assert strict.to_dict()["failure"]["detail"] == strict.detail and strict.to_dict()["complete"] is None
    lenient = gate(SPLIT_K, **BOUNDARY)
    assert lenient.passed and any(n.startswith("nondeterministic:") for n in lenient.notes), lenient.message()


def test_the_correct_tiled_kernel_is_deterministic_forward_and_backward():
    result = gate(tiled_attention, deterministic=True, backward=True, **BOUNDARY)
    assert result.passed and not result.notes, result.message()


def test_the_cli_exits_1_and_the_reproducer_replays_with_the_check(capsys, tmp_path):
    code = main(["gate", "--attention", "parity.gate.broken_kernels:split_k_unordered", "--profile", "boundary",
                 "--block", "16", "--examples", "8", "--seed", "0", "--deterministic", "--reproducer-dir",
                 str(tmp_path / "r")])
    out = capsys.readouterr().out
    assert code == 1 and out.startswith("nondeterministic:") and "--deterministic" in out
    assert replay_case(SPLIT_K, str(tmp_path / "r")).verdict == "nondeterministic"
    assert replay_case(tiled_attention, str(tmp_path / "r")).passed


def test_a_case_found_differing_keeps_failing_while_hypothesis_shrinks():
    check = DeterminismCheck(required=True)
    calls = []

    def flaky_once(*args):
        calls.append(1)
        out = dense_attention(*args)
        return out + (1e-12 if len(calls) == 2 else 0.0)

    c = case()
    first = check.check(flaky_once, c, "k", "shape", "float64", "cpu", False)
    assert first and check.check(dense_attention, c, "k", "shape", "float64", "cpu", False) == first


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_a_deterministic_kernel_in_low_precision_passes(dtype):
    assert first_difference(tiled_attention, case(values="sinks_200"), dtype) is None
