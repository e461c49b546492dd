"""led_ref.attention against the one float64 reference, parity.reference (dense, 1e-12), and against HF's
`LEDEncoderAttention` module called the way HF's LEDEncoder calls it (float64 model, float32 softmax: 1e-6)."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from led_ref import attention, layout
from parity.reference import reference_attention
from parity.strategies import attention_cases
from parity.strategies import token_kinds as token_kind_arrays
from parity.tolerances import strict_scaled_error as scaled_error

# Windows beyond the shared strategy's default: up to 16, window 2 included.
ALL_WINDOWS = tuple(range(2, 17, 2))
HEAD_MASK_VALUES = st.sampled_from([1.0, 0.0, 0.5, 0.25])


def head_masks(heads: int):
    return st.none() | st.lists(HEAD_MASK_VALUES, min_size=heads, max_size=heads).map(np.array)


# ------------------------------------------------------------------------------------------ the reference
def dense_reference(q, k, v, gq, gk, gv, kinds, window, head_mask=None):
    """parity.reference's dense (context (b, h, s, d), probabilities (b, h, s, s)), float64 numpy."""
    context, probs = reference_attention(q, k, v, gq, gk, gv, kinds, window, head_mask=head_mask, return_probs=True)
    return context.numpy(), probs.numpy()


def check_against_reference(arrays, kinds, window, head_mask, fn):
    context, attentions, global_attentions = fn(*arrays, kinds, window, head_mask=head_mask, return_probs=True)
    expected_context, expected_probs = dense_reference(*arrays, kinds, window, head_mask)
    assert scaled_error(context, expected_context) < 1e-12
    assert (context[(kinds == 0)[:, None].repeat(context.shape[1], 1)] == 0).all()  # padding rows 0
    attention_mask, global_mask = (kinds > 0).astype(int), (kinds == 2).astype(int)
    dense = layout.to_dense(attentions, global_attentions, global_mask, window, attention_mask)
    assert scaled_error(dense, expected_probs) < 1e-12
    positions, valid = layout.global_slots(kinds)
    assert global_attentions.shape == attentions.shape[:3] + (positions.shape[1],)
    assert (global_attentions.transpose(0, 3, 1, 2)[~valid] == 0).all()  # unused global slots are exactly 0
    return context


# ------------------------------------------------------------------------------------------ kernel vs the reference
@given(attention_cases(max_batch=3, max_heads=4, max_head_dim=8, windows=ALL_WINDOWS), st.data(),
       st.sampled_from([1, 3, 5, attention.QUERY_CHUNK]))
def test_longformer_attention_matches_the_reference(case, data, chunk):
    heads = case.query.shape[1]
    head_mask = data.draw(head_masks(heads))
    with mock.patch.object(attention, "QUERY_CHUNK", chunk):  # small chunks exercise the chunk borders
        check_against_reference(case.arrays(), case.token_kind, case.window, head_mask,
                                  attention.longformer_attention)


@given(st.data())
def test_windows_that_do_not_divide_the_length(data):
    """Per-layer windows need not divide the padded length (e.g. windows [4, 6] pad to a multiple of 6)."""
    window = data.draw(st.sampled_from([4, 8, 10, 12, 16]))
    seq = 6 * data.draw(st.integers(1, 3))
    if seq % window == 0:
        seq += 2
    batch, heads = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3))
    kinds = data.draw(token_kind_arrays(batch, seq))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31 - 1)))
    arrays = [rng.standard_normal((batch, heads, seq, 3)) for _ in range(6)]
    check_against_reference(arrays, kinds, window, None, attention.banded_attention)
    with pytest.raises(ValueError, match=f"seq={seq} must be a multiple of window={window}"):
        attention.longformer_attention(*arrays, kinds, window)


def test_dtype_is_kept_and_context_alone():
    case_rng = np.random.default_rng(0)
    kinds = np.array([[2, 1, 1, 1, 1, 1, 0, 0]])
    arrays = [case_rng.standard_normal((1, 2, 8, 4)).astype(np.float32) for _ in range(6)]
    context, attentions, global_attentions = attention.longformer_attention(*arrays, kinds, 4, return_probs=True)
    assert context.dtype == attentions.dtype == global_attentions.dtype == np.float32
    alone = attention.longformer_attention(*arrays, kinds, 4)
    np.testing.assert_array_equal(alone, context)
    expected, _ = dense_reference(*[a.astype(np.float64) for a in arrays], kinds, 4)
    assert scaled_error(context, expected) < 1e-5


def test_all_padding_row_and_window_covering_the_sequence():
    kinds = np.array([[0] * 8, [1, 2, 1, 0, 1, 1, 2, 0], [2] * 8])
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal((3, 2, 8, 3)) for _ in range(6)]
    for window in (8, 2):
        context = check_against_reference(arrays, kinds, window, np.array([0.5, 1.0]),
                                            attention.longformer_attention)
        assert (context[0] == 0).all()


def test_bad_inputs_name_the_argument():
    a = np.zeros((1, 1, 4, 2))
    kinds = np.ones((1, 4), int)
    with pytest.raises(ValueError, match="window must be an even int >= 2, got 3"):
        attention.longformer_attention(a, a, a, a, a, a, kinds, 3)
    with pytest.raises(ValueError, match=r"global_key has shape \(1, 1, 4, 3\)"):
        attention.longformer_attention(a, a, a, a, np.zeros((1, 1, 4, 3)), a, kinds, 2)
    with pytest.raises(ValueError, match=r"token_kind must be \(batch, seq\) = \(1, 4\)"):
        attention.longformer_attention(a, a, a, a, a, a, np.ones((1, 5), int), 2)
    with pytest.raises(ValueError, match="token_kind must hold only 0"):
        attention.longformer_attention(a, a, a, a, a, a, kinds * 3, 2)
    with pytest.raises(ValueError, match=r"head_mask must have shape \(heads,\) = \(1,\)"):
        attention.longformer_attention(a, a, a, a, a, a, kinds, 2, head_mask=np.ones(2))
    with pytest.raises(ValueError, match="params is missing"):
        attention.encoder_self_attention(np.zeros((1, 4, 2)), {}, kinds, 2, 1)


# ------------------------------------------------------------------------------------------ vs HF's module
torch = pytest.importorskip("torch")
modeling_led = pytest.importorskip("transformers.models.led.modeling_led")


@st.composite
def hf_cases(draw):
    """A layer's inputs: any length (padded here to the window as HF's encoder does), windows 4..16."""
    window = draw(st.sampled_from(range(4, 17, 2)))
    length = draw(st.integers(1, 2 * window + 3))
    batch, heads, head_dim = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(2, 8))
    kinds = draw(token_kind_arrays(batch, length))
    _, mask, glob, _ = layout.pad_to_window(np.zeros((batch, length), int), kinds > 0, kinds == 2, window, 1)
    seed = draw(st.integers(0, 2**31 - 1))
    std = draw(st.sampled_from([0.1, 0.3, 1.0]))
    return dict(kinds=layout.token_kinds(mask, glob), window=window, heads=heads, head_dim=head_dim,
                seed=seed, std=std, head_mask=draw(head_masks(heads)))


def random_params(d_model: int, std: float, rng) -> dict[str, np.ndarray]:
    params = {}
    for name in attention.PARAM_NAMES:
        shape = (d_model, d_model) if name.endswith("weight") else (d_model,)
        params[name] = std * rng.standard_normal(shape)
    return params


def hf_encoder_attention(params, kinds, window, heads, d_model, head_mask, hidden):
    """HF's LEDEncoderAttention, given the mask exactly as LEDEncoder.forward prepares it."""
    config = modeling_led.LEDConfig(d_model=d_model, encoder_attention_heads=heads, encoder_layers=1,
                                    attention_window=[window], attention_dropout=0.0)
    module = modeling_led.LEDEncoderAttention(config, layer_id=0).double().eval()
    module.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()}, strict=True)
    with torch.no_grad():
        float_mask = modeling_led._prepare_4d_attention_mask_inverted(torch.from_numpy(kinds), torch.float64)
        float_mask = float_mask[:, 0, 0, :]  # 0 local, very negative padding, very positive global
        is_index_global_attn = float_mask > 0
        outputs = module(
            torch.from_numpy(hidden), attention_mask=float_mask,
            layer_head_mask=None if head_mask is None else torch.from_numpy(head_mask),
            is_index_masked=float_mask < 0, is_index_global_attn=is_index_global_attn,
            is_global_attn=bool(is_index_global_attn.any()), output_attentions=True,
        )
    out = outputs[0].numpy()
    probs = outputs[1].transpose(1, 2).numpy()  # HF's encoder transposes to (batch, heads, seq, x + w + 1)
    global_probs = outputs[2].transpose(2, 3).numpy() if len(outputs) > 2 else None
    return out, probs, global_probs


@pytest.mark.hf
@given(hf_cases())
def test_encoder_self_attention_matches_hf(case):
    kinds, window, heads = case["kinds"], case["window"], case["heads"]
    d_model = heads * case["head_dim"]
    rng = np.random.default_rng(case["seed"])
    params = random_params(d_model, case["std"], rng)
    hidden = rng.standard_normal(kinds.shape + (d_model,))
    out, attentions, global_attentions = attention.encoder_self_attention(
        hidden, params, kinds, window, heads, layer_head_mask=case["head_mask"], output_attentions=True)
    hf_out, hf_attentions, hf_global = hf_encoder_attention(params, kinds, window, heads, d_model,
                                                            case["head_mask"], hidden)
    assert scaled_error(out, hf_out) < 1e-6
    assert scaled_error(attentions, hf_attentions) < 1e-6
    positions, valid = layout.global_slots(kinds)
    if hf_global is None:
        assert global_attentions is None and positions.shape[1] == 0
    else:
        ours, theirs = global_attentions.transpose(0, 3, 1, 2), hf_global.transpose(0, 3, 1, 2)  # slot axis 2nd
        assert scaled_error(ours[valid], theirs[valid]) < 1e-6  # HF's unused slots hold garbage
        assert (ours[~valid] == 0).all()

    # An independent derivation: the dense probabilities from the projections through the reference.
    p = params
    scale = case["head_dim"] ** -0.5

    def proj(name):
        y = hidden @ p[f"longformer_self_attn.{name}.weight"].T + p[f"longformer_self_attn.{name}.bias"]
        return y.reshape(kinds.shape + (heads, -1)).transpose(0, 2, 1, 3)

    q, gq = proj("query") * scale, proj("query_global") * scale
    context, probs = dense_reference(q, proj("key"), proj("value"), gq, proj("key_global"), proj("value_global"),
                                     kinds, window, case["head_mask"])
    glob = (kinds == 2).astype(int)
    # HF's compact layout read through our index maps (to_dense never reads HF's garbage global slots).
    hf_dense = layout.to_dense(hf_attentions, hf_global, glob, window, (kinds > 0).astype(int))
    assert scaled_error(hf_dense, probs) < 1e-6
    merged = context.transpose(0, 2, 1, 3).reshape(hidden.shape)
    assert scaled_error(out, merged @ p["output.weight"].T + p["output.bias"]) < 1e-12


@given(st.data())
def test_encoder_self_attention_window_2_and_no_output_attentions(data):
    """Window 2 (HF crashes there) against the reference; output_attentions=False returns no probabilities."""
    heads, head_dim = data.draw(st.integers(1, 3)), data.draw(st.integers(2, 4))
    kinds = data.draw(token_kind_arrays(data.draw(st.integers(1, 3)), 2 * data.draw(st.integers(1, 5))))
    d_model = heads * head_dim
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31 - 1)))
    params = random_params(d_model, 0.5, rng)
    hidden = rng.standard_normal(kinds.shape + (d_model,))
    out, attentions, global_attentions = attention.encoder_self_attention(hidden, params, kinds, 2, heads)
    assert attentions is None and global_attentions is None

    def proj(name):
        y = hidden @ params[f"longformer_self_attn.{name}.weight"].T + params[f"longformer_self_attn.{name}.bias"]
        return y.reshape(kinds.shape + (heads, -1)).transpose(0, 2, 1, 3)

    scale = head_dim**-0.5
    context, _ = dense_reference(proj("query") * scale, proj("key"), proj("value"), proj("query_global") * scale,
                                 proj("key_global"), proj("value_global"), kinds, 2)
    merged = context.transpose(0, 2, 1, 3).reshape(hidden.shape)
    assert scaled_error(out, merged @ params["output.weight"].T + params["output.bias"]) < 1e-12


@pytest.mark.slow
def test_led_base_16k_memory():
    """LED-base shapes (12 heads, head_dim 64, window 1024) at 16,384 tokens stay within a few GB (float64)."""
    import tracemalloc

    rng = np.random.default_rng(0)
    batch, heads, seq, head_dim, window = 1, 12, 16384, 64, 1024
    arrays = [rng.standard_normal((batch, heads, seq, head_dim)) * 0.125 for _ in range(6)]
    kinds = np.ones((batch, seq), np.int64)
    kinds[0, [0, 100, 5000]] = 2
    kinds[0, -300:] = 0
    tracemalloc.start()
    context = attention.longformer_attention(*arrays, kinds, window)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 3 * 2**30, f"peak {peak / 2**30:.2f} GiB"
    # Spot-check three rows against a dense computation of just those rows.
    for i in (1, 8000, seq - 301):
        lo, hi = max(0, i - window // 2), min(seq, i + window // 2 + 1)
        keys = sorted((set(range(lo, hi)) & set(range(seq - 300))) - {0, 100, 5000}) + [0, 100, 5000]
        s = np.einsum("hd,hkd->hk", arrays[0][0, :, i], arrays[1][0][:, keys])
        p = np.exp(s - s.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        expected = np.einsum("hk,hkd->hd", p, arrays[2][0][:, keys])
        assert scaled_error(context[0, :, i], expected) < 1e-12
