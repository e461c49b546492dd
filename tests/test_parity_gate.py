"""The kernel gate has teeth: every planted bug is rejected, correct independent kernels pass.

Two correct kernels are written without led_torch: `parity.broken_kernels.dense_attention` (torch, masks)
and `loop_attention` below (NumPy, one query row at a time, keys listed by hand). They must agree with
each other and with led_ref's spec; every kernel of BROKEN_KERNELS must be rejected with the shrunk case.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings

from parity.broken_kernels import BROKEN_KERNELS, BUGS, dense_attention
from parity.gate import assert_gate, case_error, gate, load_kernel, spec_attention
from parity.strategies import AttentionCase, attention_cases
from parity.tolerances import scaled_error


def _row_keys(kinds: np.ndarray, i: int, window: int) -> list[int]:
    """Keys of query i, each once: a global row sees every non-padding key; a local row its window's
    local keys and every global key."""
    seq = len(kinds)
    if kinds[i] == 2:
        return [j for j in range(seq) if kinds[j] != 0]
    near = [j for j in range(max(0, i - window // 2), min(seq, i + window // 2 + 1)) if kinds[j] == 1]
    return sorted(set(near) | {j for j in range(seq) if kinds[j] == 2})


def loop_attention(query, key, value, global_query, global_key, global_value, token_kind, window):
    """The contract one row at a time in NumPy (float64), independent of every other kernel here."""
    q, k, v, gq, gk, gv = (np.asarray(t.double().numpy() if torch.is_tensor(t) else t, np.float64)
                           for t in (query, key, value, global_query, global_key, global_value))
    kinds = np.asarray(token_kind)
    out = np.zeros_like(q)
    batch, heads, seq, _ = q.shape
    for b in range(batch):
        for i in range(seq):
            if kinds[b, i] == 0:
                continue
            keys = _row_keys(kinds[b], i, window)
            is_global = kinds[b, i] == 2
            for h in range(heads):
                qi = (gq if is_global else q)[b, h, i]
                kk, vv = (gk, gv) if is_global else (k, v)
                scores = np.array([qi @ kk[b, h, j] for j in keys])
                p = np.exp(scores - scores.max())
                out[b, h, i] = (p / p.sum()) @ vv[b, h, keys]
    return out


def loop_reference(case: AttentionCase) -> np.ndarray:
    return loop_attention(*case.arrays(), case.token_kind, case.window)


def _spec_available() -> bool:
    try:
        import led_ref.attention  # noqa: F401
    except ImportError:
        return False
    return True


REFERENCES = [pytest.param(loop_reference, id="loop")] + (
    [pytest.param(spec_attention, id="spec")] if _spec_available() else [])


@given(attention_cases())
def test_independent_kernels_agree(case):
    dense = dense_attention(*case.torch_args()).numpy()
    assert scaled_error(dense, loop_reference(case)) < 1e-12


@pytest.mark.skipif(not _spec_available(), reason="led_ref.attention not written yet")
@given(attention_cases())
def test_spec_matches_independent_kernel(case):
    assert scaled_error(spec_attention(case), loop_reference(case)) < 1e-12


@pytest.mark.parametrize("reference", REFERENCES)
def test_gate_passes_correct_kernel(reference):
    examples = max(30, settings.default.max_examples)  # the `thorough` profile runs more
    result = assert_gate(dense_attention, examples=examples, seed=1, reference=reference)
    assert result.cases_run >= examples and result.max_error < 1e-12


def test_gate_passes_loop_kernel_in_float32():
    result = gate(loop_attention, examples=15, seed=2, dtype="float32", reference=loop_reference)
    assert result.passed and result.tolerance == 1e-4, result.message()


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_gate_rejects_planted_bug(bug):
    reference = spec_attention if _spec_available() else loop_reference
    result = gate(BROKEN_KERNELS[bug], examples=60, seed=3, reference=reference, name=bug)
    assert not result.passed, f"gate accepted the planted bug {bug!r}: {BUGS[bug]}"
    case = result.counterexample
    assert isinstance(case, AttentionCase) and result.error > result.tolerance
    # The reported case really fails, replayed outside hypothesis against the independent loop kernel.
    assert not case_error(BROKEN_KERNELS[bug], case, reference=loop_reference)[0] <= 1e-9
    message = result.message()
    assert "mismatch" in message and f"window={case.window}" in message and "token_kind=" in message


def test_counterexample_is_shrunk():
    result = gate(BROKEN_KERNELS["window_narrower"], examples=60, seed=4, reference=loop_reference)
    case = result.counterexample
    batch, heads, seq, head_dim = case.query.shape
    # The smallest case showing a narrower window: one row, one head, head_dim 2, a single chunk.
    assert (batch, heads, head_dim) == (1, 1, 2) and seq == case.window


def test_crashing_kernel_is_a_mismatch():
    def crashes(*args):
        raise RuntimeError("boom")

    result = gate(crashes, examples=5, seed=0, reference=loop_reference)
    assert not result.passed and "RuntimeError: boom" in result.detail


def test_in_place_writes_are_a_mismatch():
    result = gate(BROKEN_KERNELS["in_place_scaling"], examples=5, seed=0, reference=loop_reference)
    assert not result.passed and "modified its input 'query' in place" in result.detail


def test_wrong_shape_is_a_mismatch():
    result = gate(lambda q, *rest: q[..., :1], examples=5, seed=0, reference=loop_reference)
    assert not result.passed and "shape" in result.detail


def test_load_kernel_errors_name_the_argument():
    with pytest.raises(ValueError, match="package.module:function"):
        load_kernel("no_colon")
    with pytest.raises(ValueError, match="nope"):
        load_kernel("parity.broken_kernels:nope")
    assert load_kernel("parity.broken_kernels:window_wider") is BROKEN_KERNELS["window_wider"]


def test_gate_validates_arguments():
    with pytest.raises(ValueError, match="examples"):
        gate(dense_attention, examples=0)
    with pytest.raises(TypeError, match="kernel"):
        gate("not callable")
    with pytest.raises(ValueError, match="dtype"):
        gate(dense_attention, dtype="int8")


@pytest.mark.skipif(not _spec_available(), reason="the CLI gate needs led_ref.attention")
def test_cli_gate_rejects_broken_kernel_and_accepts_correct_one():
    def run(spec):
        return subprocess.run([sys.executable, "-m", "parity", "gate", "--attention", spec, "--examples", "15",
                               "--seed", "5"], capture_output=True, text=True, timeout=120)

    bad = run("parity.broken_kernels:padding_keys_visible")
    assert bad.returncode != 0 and "mismatch" in bad.stdout + bad.stderr
    assert "token_kind=" in bad.stdout + bad.stderr and "--seed 5" in bad.stdout + bad.stderr
    good = run("parity.broken_kernels:dense_attention")
    assert good.returncode == 0, good.stdout + good.stderr


@pytest.mark.parametrize("backend", ["banded", "flex"])
def test_led_torch_backends_pass_the_gate(backend):
    get_backend = pytest.importorskip("led_torch.backends").get_backend
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # flex without torch.compile warns that it is unfused
        result = gate(get_backend(backend), examples=10, seed=6, name=backend)
    assert result.passed, result.message()


def test_led_torch_triton_backend_passes_the_gate_interpreted():
    """The Triton kernel under TRITON_INTERPRET=1 (CPU), in float32 (the interpreter's natural dtype)."""
    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONWARNINGS="ignore")
    done = subprocess.run([sys.executable, "-m", "parity", "gate", "--attention",
                           "led_torch.backends.triton_banded:triton_longformer_attention", "--examples", "6",
                           "--seed", "7", "--dtype", "float32"], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0 and "ok:" in done.stdout, done.stdout + done.stderr
