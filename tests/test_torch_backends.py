"""The banded backend against the one float64 reference (parity.reference, dense probabilities); the registry."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from led_torch.backends import available_backends, get_backend, resolve_backend
from led_torch.backends.banded import banded_longformer_attention
from led_torch.backends.rule import global_slots
from parity.reference import reference_attention
from parity.strategies import attention_cases
from parity.tolerances import scaled_error

torch.set_num_threads(1)


def dense_reference(q, k, v, gq, gk, gv, kind, window):
    """parity.reference's context and dense probabilities split by row kind: (context, local rows' (b, h, s, s),
    global rows' (b, h, s, s)), float64."""
    ctx, probs = reference_attention(q, k, v, gq, gk, gv, kind, window, return_probs=True)
    row = kind[:, None, :, None]
    return ctx, probs * (row == 1), probs * (row == 2)


def compact_from_dense(p_local, p_global, kind, window):
    """HF's compact layout from dense probabilities, by the index rules of docs/contract.md."""
    b, h, seq, _ = p_local.shape
    positions, valid = global_slots(kind)
    x = positions.shape[1]
    att = torch.zeros(b, h, seq, x + window + 1, dtype=torch.float64)
    glob = torch.zeros(b, h, seq, x, dtype=torch.float64)
    for bi in range(b):
        for s in range(x):
            if valid[bi, s]:
                p = positions[bi, s]
                att[bi, :, :, s] = p_local[bi, :, :, p]
                glob[bi, :, :, s] = p_global[bi, :, p, :]
        for i in range(seq):
            for off in range(-(window // 2), window // 2 + 1):
                j = i + off
                if 0 <= j < seq and kind[bi, j] == 1:
                    att[bi, :, i, x + window // 2 + off] = p_local[bi, :, i, j]
    return att, glob


@st.composite
def attention_problems(draw, max_seq=24):
    window = draw(st.sampled_from([2, 4, 6, 8, 10, 16, 40]))
    batch = draw(st.integers(1, 3))
    heads = draw(st.integers(1, 3))
    head_dim = draw(st.integers(1, 5))
    seq = draw(st.integers(1, max_seq))
    kinds = draw(st.lists(st.lists(st.sampled_from([0, 1, 1, 1, 2]), min_size=seq, max_size=seq),
                          min_size=batch, max_size=batch))
    seed = draw(st.integers(0, 2**16))
    block = draw(st.sampled_from([None, 1, 3, 7]))
    return window, batch, heads, head_dim, seq, torch.tensor(kinds), seed, block


def _tensors(batch, heads, seq, head_dim, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, heads, seq, head_dim, generator=g, dtype=dtype) for _ in range(6)]


@given(attention_problems())
def test_banded_matches_the_reference(problem):
    window, batch, heads, head_dim, seq, kind, seed, block = problem
    tensors = _tensors(batch, heads, seq, head_dim, seed)
    ctx, att, glob = banded_longformer_attention(*tensors, kind, window, return_probs=True, block=block)
    ref_ctx, p_local, p_global = dense_reference(*tensors, kind, window)
    ref_att, ref_glob = compact_from_dense(p_local, p_global, kind, window)
    torch.testing.assert_close(ctx, ref_ctx, rtol=0, atol=1e-12)
    torch.testing.assert_close(att, ref_att, rtol=0, atol=1e-12)
    if ref_glob.shape[-1] == 0:
        assert glob is None
    else:
        torch.testing.assert_close(glob, ref_glob, rtol=0, atol=1e-12)
    assert (ctx.transpose(1, 2)[kind == 0] == 0).all()
    assert ctx.shape == (batch, heads, seq, head_dim)


@pytest.mark.parametrize("dtype,budget", [(torch.float32, 1e-5), (torch.bfloat16, 3e-2), (torch.float16, 4e-3)])
def test_low_precision_within_budget(dtype, budget):
    kind = torch.tensor([[2, 1, 1, 1, 2, 1, 1, 1, 1, 1, 0, 0], [1] * 12])
    tensors = _tensors(2, 2, 12, 8, seed=3)
    ref, _, _ = dense_reference(*tensors, kind, 4)
    out = banded_longformer_attention(*(t.to(dtype) for t in tensors), kind, 4)
    assert out.dtype == dtype
    err = (out.double() - ref).abs().max() / max(1.0, ref.abs().max())
    assert err < budget, f"{dtype} error {err} over budget {budget}"


def test_gradients_match_dense():
    kind = torch.tensor([[1, 2, 1, 1, 1, 1, 0, 0]])
    a = [t.requires_grad_() for t in _tensors(1, 2, 8, 3, seed=5)]
    b = [t.detach().clone().requires_grad_() for t in a]
    banded_longformer_attention(*a, kind, 2).square().sum().backward()
    reference_attention(*b, kind, 2, grad=True).square().sum().backward()
    for ta, tb in zip(a, b, strict=True):
        torch.testing.assert_close(ta.grad, tb.grad, rtol=0, atol=1e-12)


def test_bad_inputs_name_the_argument():
    t = _tensors(1, 1, 4, 2, seed=0)
    kind = torch.ones(1, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="window"):
        banded_longformer_attention(*t, kind, 3)
    with pytest.raises(ValueError, match="token_kind"):
        banded_longformer_attention(*t, torch.ones(1, 5, dtype=torch.long), 2)
    with pytest.raises(TypeError, match="token_kind"):
        banded_longformer_attention(*t, kind.float(), 2)
    with pytest.raises(ValueError, match="key"):
        banded_longformer_attention(t[0], t[1][:, :, :2], *t[2:], kind, 2)


def test_registry():
    assert get_backend("banded") is banded_longformer_attention
    with pytest.raises(ValueError, match="nope"):
        get_backend("nope")
    assert available_backends("cpu", torch.float32, need_probs=False) == ["banded"]
    assert resolve_backend("auto", "cpu", torch.float32, need_probs=False) == "banded"
    with pytest.raises(ValueError, match="'flex' cannot return attention probabilities"):
        resolve_backend("flex", "cpu", torch.float32, need_probs=True)  # a named backend is never swapped
    # On CUDA: only banded returns probabilities, triton is forward-only and has no float64.
    assert available_backends("cuda", torch.float32, need_probs=True) == ["banded"]
    assert "triton" not in available_backends("cuda", torch.float32, need_grad=True)
    assert "triton" not in available_backends("cuda", torch.float64)
    assert available_backends("cuda", torch.float16)[-1] == "banded"
    for name in ("flex", "triton"):
        try:
            fn = get_backend(name)
        except RuntimeError as err:  # not written yet / not importable: the error says which backend
            assert name in str(err)
        else:
            assert callable(fn)


# ------------------------------------------------------------------------------------------ fast CPU kernel path
# The performance work added a fused inference path to led_torch's banded backend (no probabilities, no grad);
# these tests hold it to the spec and to the backend's own probability path.
@given(attention_cases(max_chunks=3, windows=(2, 4, 6, 8, 16)), st.sampled_from([None, 1, 3, 64]),
       st.sampled_from(["float64", "float32"]))
def test_banded_inference_path_matches_the_spec_and_the_probability_path(case, block, dtype):
    from led_ref.attention import longformer_attention
    from led_torch.backends.banded_flash_cpu import flash_applies

    args = case.torch_args(getattr(torch, dtype))
    assert flash_applies(*args[:3], return_probs=False, dropout_p=0.0, training=False)
    with torch.no_grad():
        fast = banded_longformer_attention(*args, block=block)
        slow = banded_longformer_attention(*args, return_probs=True, block=block)[0]
    spec = longformer_attention(*case.arrays(), case.token_kind, case.window)
    budget = 1e-12 if dtype == "float64" else 1e-5
    assert torch.isfinite(fast).all()
    assert scaled_error(fast.numpy(), spec) <= budget, case.describe()
    assert scaled_error(fast.numpy(), slow.numpy()) <= budget, case.describe()


def test_banded_inference_path_is_not_taken_for_gradients_probabilities_or_cuda_dtypes():
    from led_torch.backends.banded_flash_cpu import flash_applies

    q = torch.zeros(1, 1, 4, 2, requires_grad=True)
    assert not flash_applies(q, q, q, return_probs=False, dropout_p=0.0, training=False)
    with torch.no_grad():
        assert flash_applies(q, q, q, return_probs=False, dropout_p=0.0, training=False)
        assert not flash_applies(q, q, q, return_probs=True, dropout_p=0.0, training=False)
        assert not flash_applies(q, q, q, return_probs=False, dropout_p=0.1, training=True)
        bf16 = q.detach().to(torch.bfloat16)  # bfloat16 takes the fused kernel too (tests/test_torch_bf16.py)
        assert flash_applies(bf16, bf16, bf16, return_probs=False, dropout_p=0.0, training=False)
        half = q.detach().to(torch.float16)
        assert not flash_applies(half, half, half, return_probs=False, dropout_p=0.0, training=False)


# The CPU inference path computes all rows in one call where that is cheaper than blocks and slabs (a 1,024-token
# source under a 1,024 window), sharing one additive mask between the encoder's layers.
def test_one_call_is_taken_where_it_computes_fewer_scores():
    from led_torch.backends.banded_flash_cpu import one_call_applies

    assert one_call_applies(1, 1024, 1024, 256, torch.float32)  # 1,024^2 scores against 4 x 256 x 1,280
    assert not one_call_applies(1, 2048, 1024, 256, torch.float32)  # 2,048^2 against 8 x 256 x 1,280
    assert not one_call_applies(64, 1024, 1024, 256, torch.float32)  # a 256 MB mask


def _case_tensors(kinds, heads=2, head_dim=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    batch, seq = kinds.shape
    return [torch.randn(batch, heads, seq, head_dim, generator=g, dtype=torch.float64) for _ in range(6)]


def test_one_call_path_matches_the_slabs_and_the_reference_and_sees_kinds_change():
    """One call (block=None, seq = window) against explicit blocks and the reference, with interior padding and
    several global tokens; then the token kinds change in place and the shared mask is rebuilt."""
    from led_torch.backends.banded_flash_cpu import one_call_applies

    kinds = torch.tensor([[2, 1, 1, 0, 1, 1, 2, 1, 1, 1, 1, 1, 0, 0, 0, 0],
                          [1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]])
    args = _case_tensors(kinds)
    assert one_call_applies(2, 16, 16, 4, torch.float64)
    with torch.no_grad():
        for _ in range(2):  # the second call reads the shared mask
            one_call = banded_longformer_attention(*args, kinds, 16)
            torch.testing.assert_close(one_call, banded_longformer_attention(*args, kinds, 16, block=4),
                                       rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(one_call, reference_attention(*args, kinds, 16), rtol=1e-12, atol=1e-12)
        kinds[1, 3] = 0
        kinds[0, 9] = 2
        changed = banded_longformer_attention(*args, kinds, 16)
    torch.testing.assert_close(changed, reference_attention(*args, kinds, 16), rtol=1e-12, atol=1e-12)


def test_global_context_given_is_used_and_refused_with_probabilities():
    """A caller that computed the global rows (the encoder, rule.global_rows_from_states) hands them over: the
    result is the backend's own, on both paths; asking for probabilities as well is a ValueError."""
    from led_torch.backends.rule import global_rows

    kinds = torch.tensor([[2, 1, 1, 1, 0, 1, 2, 1], [1, 1, 2, 1, 1, 1, 1, 1]])
    q, k, v, gq, gk, gv = _case_tensors(kinds)
    global_context, _ = global_rows(gq, gk, gv, kinds, global_slots(kinds))
    expected = reference_attention(q, k, v, gq, gk, gv, kinds, 4)
    with torch.no_grad():  # the fused CPU path
        given_rows = banded_longformer_attention(q, k, v, gq, k, v, kinds, 4, global_context=global_context)
    torch.testing.assert_close(given_rows, expected, rtol=1e-12, atol=1e-12)
    q.requires_grad_(True)  # the general path
    given_rows = banded_longformer_attention(q, k, v, gq, k, v, kinds, 4, global_context=global_context)
    torch.testing.assert_close(given_rows.detach(), expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="global_context cannot be combined with return_probs"):
        banded_longformer_attention(q, k, v, gq, k, v, kinds, 4, return_probs=True, global_context=global_context)


def test_shared_masks_die_with_their_token_kinds_and_big_batches_build_them_per_row(monkeypatch):
    """The layers' shared mask is dropped when the token-kind tensor it was built for goes (no mask outlives its
    forward); past the size cap each batch row's slab mask is built when needed, with the same result."""
    import gc

    from led_torch.backends import banded_flash_cpu

    kinds = torch.tensor([[2, 1, 1, 1, 0, 1, 1, 1] * 4, [1, 1, 2, 1, 1, 1, 1, 1] * 4])
    args = _case_tensors(kinds)
    expected = reference_attention(*args, kinds, 4)
    with torch.no_grad():
        shared = banded_longformer_attention(*args, kinds, 4)
        assert banded_flash_cpu._last_mask[3] is not None
        monkeypatch.setattr(banded_flash_cpu, "_MASK_BYTES", 0)
        per_row = banded_longformer_attention(*args, kinds.clone(), 4)
    torch.testing.assert_close(shared, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(per_row, expected, rtol=1e-12, atol=1e-12)
    del kinds
    gc.collect()
    assert banded_flash_cpu._last_mask is banded_flash_cpu._NO_MASK
