"""The banded backend against the one float64 reference (parity.gate.reference, dense probabilities); the registry."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from led_torch.backends import available_backends, get_backend, resolve_backend
from led_torch.backends.banded import banded_longformer_attention
from led_torch.backends.rule import global_slots
from parity.gate.reference import reference_attention
from parity.harness.strategies import attention_cases
from parity.harness.tolerances import scaled_error

torch.set_num_threads(1)


def dense_reference(q, k, v, gq, gk, gv, kind, window):
    """parity.gate.reference's context and dense probabilities split by row kind: (context, local rows' (b, h, s, s),
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


@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("need_probs, need_grad", [(False, False), (False, True), (True, False)])
def test_available_backends_are_the_auto_order_less_what_cannot_serve(device, dtype, need_probs, need_grad):
    """One statement of priority (`auto_candidates`): `available_backends` keeps its order, drops only backends
    that cannot be imported or computed in the dtype, and always ends on banded."""
    from led_torch.backends import auto_candidates, auto_is_banded_only

    order = auto_candidates(device, need_probs, need_grad)
    listed = available_backends(device, dtype, need_probs, need_grad)
    assert listed == [name for name in order if name in listed] and listed[-1] == order[-1] == "banded"
    if dtype == torch.float64:
        assert "triton" not in listed
    assert auto_is_banded_only("cpu") and not auto_is_banded_only("cuda")


# ------------------------------------------------------------------------------------------ fast CPU kernel path
# The banded backend's fused CPU inference path (no probabilities, no grad), held to the spec and to the
# backend's own probability path.
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


def _head_dim_strided(t):
    """The same values with the head_dim axis not unit-stride: the transpose of a (..., head_dim, seq) tensor."""
    view = t.transpose(-1, -2).contiguous().transpose(-1, -2)
    assert view.stride(-1) != 1 or t.shape[-1] == 1
    return view


@given(attention_cases(max_chunks=3, windows=(2, 4, 8, 16)), st.sampled_from([None, 3, 64]),
       st.sampled_from(["float64", "float32", "bfloat16"]), st.sampled_from([(0,), (1,), (2,), (0, 1, 2, 3, 4, 5)]))
def test_banded_inference_path_takes_any_strides(case, block, dtype, which):
    """torch's CPU flash kernel reads head_dim as contiguous whatever the strides say (keys handed as a
    transposed view came back 4.7 off); the fast path hands it unit-stride rows, so a view gives the result of
    the same values laid out contiguously, bit for bit, on the one-call path and the slabs alike."""
    args = list(case.torch_args(getattr(torch, dtype)))
    strided = [(_head_dim_strided(t) if i in which else t) for i, t in enumerate(args[:6])] + args[6:]
    with torch.no_grad():
        expected = banded_longformer_attention(*args, block=block)
        got = banded_longformer_attention(*strided, block=block)
    assert torch.equal(got, expected), case.describe()


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
    several global tokens; the second call reads the mask the first one left in the cache; then the token kinds
    change in place and the mask is rebuilt."""
    from led_torch.backends.banded_flash_cpu import MaskCache, one_call_applies

    kinds = torch.tensor([[2, 1, 1, 0, 1, 1, 2, 1, 1, 1, 1, 1, 0, 0, 0, 0],
                          [1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]])
    args = _case_tensors(kinds)
    masks = MaskCache()
    assert one_call_applies(2, 16, 16, 4, torch.float64)
    with torch.no_grad():
        for call in range(2):
            one_call = banded_longformer_attention(*args, kinds, 16, mask_cache=masks)
            if call == 0:
                first = masks.entry[-1]
            assert masks.entry[-1] is first  # built once, read by the second call
            torch.testing.assert_close(one_call, banded_longformer_attention(*args, kinds, 16, block=4),
                                       rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(one_call, reference_attention(*args, kinds, 16), rtol=1e-12, atol=1e-12)
        kinds[1, 3] = 0
        kinds[0, 9] = 2
        changed = banded_longformer_attention(*args, kinds, 16, mask_cache=masks)
    assert masks.entry[-1] is not first
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


def test_shared_masks_are_held_only_by_a_cache_and_big_batches_build_them_per_row(monkeypatch):
    """A call without a MaskCache keeps nothing; with one, the blocks' slab masks stay in it for the next layer
    (another token-kind tensor rebuilds them); past the size cap each batch row's slab mask is built when needed,
    with the same result, and none is kept."""
    from led_torch.backends import banded_flash_cpu

    kinds = torch.tensor([[2, 1, 1, 1, 0, 1, 1, 1] * 4, [1, 1, 2, 1, 1, 1, 1, 1] * 4])
    args = _case_tensors(kinds)
    expected = reference_attention(*args, kinds, 4)
    masks = banded_flash_cpu.MaskCache()
    with torch.no_grad():
        uncached = banded_longformer_attention(*args, kinds, 4)
        shared = banded_longformer_attention(*args, kinds, 4, block=8, mask_cache=masks)
        assert masks.entry[0] is kinds and masks.entry[2] == ("slabs", 4, 8, torch.float64)
        slabs = masks.entry[-1]
        banded_longformer_attention(*args, kinds.clone(), 4, block=8, mask_cache=masks)
        assert masks.entry[-1] is not slabs
        monkeypatch.setattr(banded_flash_cpu, "_MASK_BYTES", 0)
        per_row_masks = banded_flash_cpu.MaskCache()
        per_row = banded_longformer_attention(*args, kinds.clone(), 4, mask_cache=per_row_masks)
    assert per_row_masks.entry is None
    for got in (uncached, shared, per_row):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def _tiny_encoder_model(layers=3):
    from led_ref.init import random_weights
    from led_ref.io.config import LEDConfig
    from led_torch import LEDModel

    config = LEDConfig(vocab_size=40, d_model=8, encoder_layers=layers, decoder_layers=1, encoder_attention_heads=2,
                       decoder_attention_heads=2, encoder_ffn_dim=16, decoder_ffn_dim=16, attention_window=4,
                       max_encoder_position_embeddings=64, max_decoder_position_embeddings=16)
    return LEDModel.from_weights(config, random_weights(config, "LEDModel", seed=1, std=0.3), dtype=torch.float32)


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
@pytest.mark.parametrize("global_tokens", [False, True])
def test_the_encoder_shares_one_mask_per_forward_and_drops_it_after(monkeypatch, mode, global_tokens):
    """Each encoder forward makes its own MaskCache: the first layer builds the mask and the others read it, so a
    3-layer forward builds one; the cache is gone once the forward returns. Token kinds made under
    torch.inference_mode have no version counter: nothing is cached, every layer builds its own."""
    import gc
    import weakref

    from led_torch import encoder
    from led_torch.backends.banded_flash_cpu import MaskCache

    caches, builds = [], []

    class CountingMaskCache(MaskCache):
        def __init__(self):
            super().__init__()
            caches.append(weakref.ref(self))

        def get(self, token_kind, spec, build):
            return super().get(token_kind, spec, lambda: builds.append(spec) or build())

    monkeypatch.setattr(encoder, "MaskCache", CountingMaskCache)
    model = _tiny_encoder_model(layers=3).eval()
    ids = torch.randint(3, 40, (2, 11), generator=torch.Generator().manual_seed(0))
    glob = torch.zeros_like(ids)
    glob[:, 0] = int(global_tokens)
    context = torch.inference_mode() if mode == "inference_mode" else torch.no_grad()
    for forward in range(2):
        with context:
            model.encoder(input_ids=ids, global_attention_mask=glob)
        gc.collect()
        assert len(caches) == forward + 1 and all(ref() is None for ref in caches)  # one per forward, dropped
    assert len(builds) == (2 if mode == "no_grad" else 6)
