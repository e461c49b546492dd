"""The one float64 reference (parity.gate.reference) and led_ref's explicit backward, each against independent
derivations: a per-row loop written from the definition, led_ref's NumPy spec, finite differences, and
autograd of led_torch's banded backend."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import led_ref.attention_backward as attention_backward
from led_ref import attention, layout
from led_ref.attention_backward import longformer_attention_backward
from parity.gate.profiles import grid, shape_cases
from parity.gate.reference import reference_attention, reference_gradients
from parity.harness.strategies import attention_cases, token_kinds
from parity.harness.tolerances import scaled_error

ALL_WINDOWS = tuple(range(2, 17, 2))


def loop_attention(query, key, value, global_query, global_key, global_value, token_kind, window):
    """The contract one row at a time in NumPy (float64), keys listed by hand; independent of the rest."""
    q, k, v, gq, gk, gv = (np.asarray(t.double().numpy() if torch.is_tensor(t) else t, np.float64)
                           for t in (query, key, value, global_query, global_key, global_value))
    kinds = np.asarray(token_kind)
    out = np.zeros_like(q)
    batch, heads, seq, _ = q.shape
    for b in range(batch):
        for i in range(seq):
            if kinds[b, i] == 0:
                continue
            is_global = kinds[b, i] == 2
            if is_global:
                keys = [j for j in range(seq) if kinds[b, j] != 0]
            else:
                near = [j for j in range(max(0, i - window // 2), min(seq, i + window // 2 + 1)) if kinds[b, j] == 1]
                keys = sorted(set(near) | {j for j in range(seq) if kinds[b, j] == 2})
            for h in range(heads):
                qi = (gq if is_global else q)[b, h, i]
                kk, vv = (gk, gv) if is_global else (k, v)
                scores = np.array([qi @ kk[b, h, j] for j in keys])
                p = np.exp(scores - scores.max())
                out[b, h, i] = (p / p.sum()) @ vv[b, h, keys]
    return out


@st.composite
def free_cases(draw, max_seq: int = 20):
    """Any seq (not a multiple of the window), windows wider than seq, head_dim 1..5."""
    window = draw(st.sampled_from(ALL_WINDOWS + (40,)))
    seq = draw(st.integers(1, max_seq))
    batch, heads, head_dim = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 5))
    kinds = draw(token_kinds(batch, seq))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    arrays = [rng.standard_normal((batch, heads, seq, head_dim)) for _ in range(6)]
    return arrays, kinds, window


# ------------------------------------------------------------------------------------------ forward
@given(attention_cases(max_batch=3, max_heads=3, max_head_dim=5, windows=ALL_WINDOWS))
def test_reference_matches_the_loop_and_the_spec(case):
    ours = reference_attention(*case.arrays(), case.token_kind, case.window)
    assert ours.dtype == torch.float64
    assert scaled_error(ours.numpy(), loop_attention(*case.arrays(), case.token_kind, case.window)) < 1e-12
    spec = attention.longformer_attention(*case.arrays(), case.token_kind, case.window)
    assert scaled_error(ours.numpy(), spec) < 1e-12


@given(free_cases(), st.sampled_from([1, 3, 128]), st.booleans())
def test_blocks_dense_probabilities_and_head_mask_agree(problem, block, masked):
    arrays, kinds, window = problem
    head_mask = np.linspace(0.0, 1.0, arrays[0].shape[1]) if masked else None
    with mock.patch("parity.gate.reference.QUERY_BLOCK", block):  # block borders inside the sequence
        blocked = reference_attention(*arrays, kinds, window, head_mask=head_mask)
    dense, probs = reference_attention(*arrays, kinds, window, head_mask=head_mask, return_probs=True)
    assert scaled_error(blocked.numpy(), dense.numpy()) < 1e-12
    spec, attentions, global_attentions = attention.banded_attention(*arrays, kinds, window, head_mask=head_mask,
                                                                      return_probs=True)
    assert scaled_error(blocked.numpy(), spec) < 1e-12
    from_spec = layout.to_dense(attentions, global_attentions, (kinds == 2).astype(int), window,
                                (kinds > 0).astype(int))
    assert scaled_error(probs.numpy(), from_spec) < 1e-12
    assert (blocked.numpy().transpose(0, 2, 1, 3)[kinds == 0] == 0).all()  # padding rows are exactly 0


@pytest.mark.parametrize("dtype,budget", [(torch.float32, 1e-5), (torch.bfloat16, 6e-2), (torch.float16, 1e-2)])
def test_reference_in_a_lower_dtype_is_the_plain_implementation(dtype, budget):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((2, 2, 48, 16)) for _ in range(6)]
    kinds = np.ones((2, 48), np.int64)
    kinds[0, [3, 17]] = 2
    kinds[1, 40:] = 0
    exact = reference_attention(*arrays, kinds, 16)
    low = reference_attention(*arrays, kinds, 16, dtype=dtype)
    assert low.dtype == dtype
    error = scaled_error(low.double().numpy(), exact.numpy())
    assert 0 < error < budget


def plain_blocks(arrays, kinds, window):
    """reference_attention through its plain blocks (the form autograd records), detached."""
    leaves = [torch.as_tensor(a).requires_grad_(True) for a in arrays]
    with torch.enable_grad():
        return reference_attention(*leaves, kinds, window, grad=True).detach()


_GATE_SHAPES = [s for s in grid("boundary").shapes if s.seq <= 160]


@given(st.sampled_from(_GATE_SHAPES).flatmap(shape_cases), st.sampled_from([1.0, 60.0]), st.sampled_from([16, 128]))
def test_in_place_float64_blocks_equal_the_plain_blocks_on_gate_cases(recipe, scale, block):
    """The inference form (in-place blocks, ones column, no max shift while every |score| <= EXP_SAFE) gives the
    plain blocks' answer to float64 rounding; a scale of 60 makes scores past EXP_SAFE (the shifted form)."""
    case = recipe.materialize()
    arrays = [a * scale for a in case.arrays()]
    with mock.patch("parity.gate.reference.QUERY_BLOCK", block):
        fast = reference_attention(*arrays, case.token_kind, case.window)
        plain = plain_blocks(arrays, case.token_kind, case.window)
    assert scaled_error(fast.numpy(), plain.numpy()) < 1e-13
    assert (fast.numpy().transpose(0, 2, 1, 3)[case.token_kind == 0] == 0).all()


def test_in_place_blocks_take_both_softmax_forms():
    """Scores past EXP_SAFE (exp would overflow unshifted), padding holes and a global key inside the window."""
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((1, 2, 40, 8)) * 30 for _ in range(6)]  # |scores| up to ~1e4
    kinds = np.ones((1, 40), np.int64)
    kinds[0, [2, 30]] = 2
    kinds[0, 10:20] = 0
    kinds[0, 34:] = 0
    fast = reference_attention(*arrays, kinds, 4)
    assert np.isfinite(fast.numpy()).all()
    assert scaled_error(fast.numpy(), plain_blocks(arrays, kinds, 4).numpy()) < 1e-13
    assert scaled_error(fast.numpy(), loop_attention(*arrays, kinds, 4)) < 1e-13


def test_bad_inputs_name_the_argument():
    t = np.zeros((1, 1, 4, 2))
    with pytest.raises(ValueError, match="window"):
        reference_attention(t, t, t, t, t, t, np.ones((1, 4), int), 3)
    with pytest.raises(ValueError, match="token_kind"):
        reference_attention(t, t, t, t, t, t, np.ones((1, 5), int), 2)


# ------------------------------------------------------------------------------------------ backward
@given(free_cases(), st.sampled_from([1, 3, attention.QUERY_CHUNK]))
def test_led_ref_backward_matches_autograd_of_the_reference(problem, chunk):
    arrays, kinds, window = problem
    upstream = np.random.default_rng(1).standard_normal(arrays[0].shape)
    with mock.patch.object(attention_backward, "QUERY_CHUNK", chunk):
        ours = longformer_attention_backward(*arrays, kinds, window, upstream)
    theirs = reference_gradients(*arrays, kinds, window, upstream)
    for name, a, b in zip(("q", "k", "v", "gq", "gk", "gv"), ours, theirs, strict=True):
        assert scaled_error(a, b.numpy()) < 1e-12, name


@given(attention_cases(max_batch=2, max_heads=2, max_head_dim=3, windows=(2, 4, 6)))
def test_led_ref_backward_matches_autograd_of_the_banded_backend(case):
    from led_torch.backends.banded import banded_longformer_attention

    upstream = np.random.default_rng(case.seed).standard_normal(case.query.shape)
    leaves = [torch.tensor(a, requires_grad=True) for a in case.arrays()]
    out = banded_longformer_attention(*leaves, torch.as_tensor(case.token_kind), case.window)
    grads = torch.autograd.grad(out, leaves, torch.as_tensor(upstream), allow_unused=True)
    ours = longformer_attention_backward(*case.arrays(), case.token_kind, case.window, upstream)
    for a, g, leaf in zip(ours, grads, leaves, strict=True):
        b = torch.zeros_like(leaf) if g is None else g
        assert scaled_error(a, b.numpy()) < 1e-12


def test_led_ref_backward_matches_finite_differences():
    """Central differences of sum(context * upstream) along every input entry of a small case."""
    rng = np.random.default_rng(5)
    kinds = np.array([[1, 2, 1, 1, 0, 1, 2, 1], [1, 1, 1, 1, 1, 1, 0, 0]])
    arrays = [rng.standard_normal((2, 2, 8, 3)) for _ in range(6)]
    upstream = rng.standard_normal((2, 2, 8, 3))
    grads = longformer_attention_backward(*arrays, kinds, 4, upstream)
    eps = 1e-6
    for which in range(6):
        numeric = np.zeros_like(arrays[which])
        for index in np.ndindex(arrays[which].shape):
            shifted = [a.copy() for a in arrays]
            shifted[which][index] += eps
            up = np.sum(attention.longformer_attention(*shifted, kinds, 4) * upstream)
            shifted[which][index] -= 2 * eps
            down = np.sum(attention.longformer_attention(*shifted, kinds, 4) * upstream)
            numeric[index] = (up - down) / (2 * eps)
        assert np.abs(grads[which] - numeric).max() < 1e-7, which
        assert np.abs(grads[which]).max() > 1e-3  # every input matters in this layout


def test_led_ref_backward_bad_inputs_name_the_argument():
    t = np.zeros((1, 1, 4, 2))
    with pytest.raises(ValueError, match="grad_context"):
        longformer_attention_backward(t, t, t, t, t, t, np.ones((1, 4), int), 2, np.zeros((1, 1, 4, 3)))
    with pytest.raises(ValueError, match="window"):
        longformer_attention_backward(t, t, t, t, t, t, np.ones((1, 4), int), 3, t)
