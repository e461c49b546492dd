"""led_ref.attention: the scalable path (`longformer_attention`, `banded_attention`) equal to the definition
(`longformer_attention_definition`, float64, 1e-12); the definition against the gate's float64 reference,
parity.gate.reference; the layer's block against HF's `LEDEncoderAttention` called the way HF's LEDEncoder
calls it (float64 model, float32 softmax: 1e-6)."""

from __future__ import annotations

import inspect
import pathlib
import re
from unittest import mock

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from led_ref import attention, attention_banded, layout
from led_ref.attention import longformer_attention_definition
from parity.gate.reference import reference_attention
from parity.harness.strategies import attention_cases
from parity.harness.strategies import token_kinds as token_kind_arrays
from parity.harness.tolerances import strict_scaled_error as scaled_error

# Windows beyond the shared strategy's default: up to 16, window 2 included.
ALL_WINDOWS = tuple(range(2, 17, 2))
HEAD_MASK_VALUES = st.sampled_from([1.0, 0.0, 0.5, 0.25])
CHUNKS = st.sampled_from([1, 3, 5, attention_banded.QUERY_CHUNK])  # small chunks put chunk borders inside seq


def head_masks(heads: int):
    return st.none() | st.lists(HEAD_MASK_VALUES, min_size=heads, max_size=heads).map(np.array)


@st.composite
def free_cases(draw):
    """A contract case (`attention_cases`: padding tails and holes, none/one/many/all global) freed from the
    contract's shape rule: cut to any length, odd ones included, and run at any window up to 40, so also
    wider than the sequence. -> (six arrays (batch, heads, seq, d), token_kind (batch, seq), window)."""
    case = draw(attention_cases(max_batch=3, max_heads=4, max_head_dim=5, windows=ALL_WINDOWS))
    seq = draw(st.integers(1, case.query.shape[2]))
    window = draw(st.sampled_from(ALL_WINDOWS + (40,)))
    return [a[:, :, :seq] for a in case.arrays()], case.token_kind[:, :seq], window


# ------------------------------------------------------------------------------------------ the definition
def definition(arrays, kinds, window, head_mask=None):
    """The definition's context (b, h, s, d) and probabilities (b, h, s, s); a head mask multiplies a head's
    probabilities, hence its context."""
    context, probs = longformer_attention_definition(*arrays, kinds, window, return_probs=True)
    if head_mask is None:
        return context, probs
    scale = np.asarray(head_mask, np.float64)[None, :, None, None]
    return scale * context, scale * probs


def test_definition_docstring_picture():
    """The picture in the definition's docstring is what it attends: dense_mask, and probability > 0 there."""
    lines = longformer_attention_definition.__doc__.splitlines()
    start = next(n for n, line in enumerate(lines) if line.split()[:1] == ["key"]) + 1
    drawn = [re.search(r"[#.]( [#.]){5}", line).group().replace(" ", "") for line in lines[start:start + 6]]
    kinds = np.array([[1, 2, 1, 1, 1, 0]])
    assert drawn == ["".join("#" if v else "." for v in row) for row in layout.dense_mask(kinds, 2)[0]]
    arrays = [np.random.default_rng(n).standard_normal((1, 2, 6, 3)) for n in range(6)]
    _, probs = definition(arrays, kinds, 2)
    np.testing.assert_array_equal(probs > 0, np.broadcast_to(layout.dense_mask(kinds, 2)[:, None], probs.shape))
    np.testing.assert_allclose(probs.sum(-1), [[[1, 1, 1, 1, 1, 0]] * 2], rtol=1e-15)


def test_docs_show_the_definition_as_written():
    """docs/spec.md's "The definition" shows the function's code, docstring left out."""
    source = inspect.getsource(longformer_attention_definition)
    code = re.sub(r'\n    """.*?"""\n', "\n", source, count=1, flags=re.S)
    spec = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "spec.md").read_text(encoding="utf-8")
    shown = re.search(r"## The definition\n.*?```python\n(.*?)```", spec, flags=re.S).group(1)
    assert shown == code


@given(free_cases())
def test_definition_matches_the_gates_reference(problem):
    """Two statements of the contract, NumPy dense and parity's blocked torch float64, agree (parity's is held
    to a per-row loop in tests/test_reference.py)."""
    arrays, kinds, window = problem
    context, probs = definition(arrays, kinds, window)
    expected_context, expected_probs = reference_attention(*arrays, kinds, window, return_probs=True)
    assert scaled_error(context, expected_context.numpy()) < 1e-12
    assert scaled_error(probs, expected_probs.numpy()) < 1e-12


# ------------------------------------------------------------------------------------------ the scalable path
def check_against_definition(fn, arrays, kinds, window, head_mask=None):
    """fn's context and compact probabilities (as dense) equal the definition's; padding rows and unused
    global slots are exactly 0. Returns fn's context."""
    context, attentions, global_attentions = fn(*arrays, kinds, window, head_mask=head_mask, return_probs=True)
    expected_context, expected_probs = definition(arrays, kinds, window, head_mask)
    assert scaled_error(context, expected_context) < 1e-12
    assert (context.transpose(0, 2, 1, 3)[kinds == 0] == 0).all()  # padding rows 0
    attention_mask, global_mask = (kinds > 0).astype(int), (kinds == 2).astype(int)
    dense = layout.to_dense(attentions, global_attentions, global_mask, window, attention_mask)
    assert scaled_error(dense, expected_probs) < 1e-12
    positions, valid = layout.global_slots(kinds)
    assert global_attentions.shape == attentions.shape[:3] + (positions.shape[1],)
    assert (global_attentions.transpose(0, 3, 1, 2)[~valid] == 0).all()  # unused global slots are exactly 0
    np.testing.assert_array_equal(fn(*arrays, kinds, window, head_mask=head_mask), context)  # context alone
    return context


@given(attention_cases(max_batch=3, max_heads=4, max_head_dim=8, windows=ALL_WINDOWS), st.data(), CHUNKS)
def test_longformer_attention_equals_the_definition(case, data, chunk):
    """The contract's entry point on the contract's shapes (seq a multiple of the window)."""
    head_mask = data.draw(head_masks(case.query.shape[1]))
    with mock.patch.object(attention_banded, "QUERY_CHUNK", chunk):
        check_against_definition(attention.longformer_attention, case.arrays(), case.token_kind, case.window,
                                 head_mask)


@given(free_cases(), st.data(), CHUNKS)
def test_banded_attention_equals_the_definition(problem, data, chunk):
    """The general pass on any length: odd ones, windows not dividing it and windows wider than it."""
    arrays, kinds, window = problem
    head_mask = data.draw(head_masks(arrays[0].shape[1]))
    with mock.patch.object(attention_banded, "QUERY_CHUNK", chunk):
        check_against_definition(attention.banded_attention, arrays, kinds, window, head_mask)


def test_longformer_attention_requires_a_window_multiple():
    """Per-layer windows need not divide the padded length (banded_attention); the contract's entry point
    keeps the rule."""
    a = np.zeros((1, 1, 10, 2))
    with pytest.raises(ValueError, match="seq=10 must be a multiple of window=4"):
        attention.longformer_attention(a, a, a, a, a, a, np.ones((1, 10), int), 4)


def test_dtype_is_kept():
    case_rng = np.random.default_rng(0)
    kinds = np.array([[2, 1, 1, 1, 1, 1, 0, 0]])
    arrays = [case_rng.standard_normal((1, 2, 8, 4)).astype(np.float32) for _ in range(6)]
    context, attentions, global_attentions = attention.longformer_attention(*arrays, kinds, 4, return_probs=True)
    assert context.dtype == attentions.dtype == global_attentions.dtype == np.float32
    assert longformer_attention_definition(*arrays, kinds, 4).dtype == np.float32
    expected, _ = definition([a.astype(np.float64) for a in arrays], kinds, 4)
    assert scaled_error(context, expected) < 1e-5


def test_all_padding_row_and_window_covering_the_sequence():
    kinds = np.array([[0] * 8, [1, 2, 1, 0, 1, 1, 2, 0], [2] * 8])
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal((3, 2, 8, 3)) for _ in range(6)]
    for window in (8, 2):
        context = check_against_definition(attention.longformer_attention, arrays, kinds, window,
                                           np.array([0.5, 1.0]))
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
    with pytest.raises(ValueError, match="window must be an even int >= 2, got 3"):
        longformer_attention_definition(a, a, a, a, a, a, kinds, 3)


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

    # An independent derivation: the dense probabilities from the projections through the definition.
    p = params
    scale = case["head_dim"] ** -0.5

    def proj(name):
        y = hidden @ p[f"longformer_self_attn.{name}.weight"].T + p[f"longformer_self_attn.{name}.bias"]
        return y.reshape(kinds.shape + (heads, -1)).transpose(0, 2, 1, 3)

    q, gq = proj("query") * scale, proj("query_global") * scale
    context, probs = definition((q, proj("key"), proj("value"), gq, proj("key_global"), proj("value_global")),
                                kinds, window, case["head_mask"])
    glob = (kinds == 2).astype(int)
    # HF's compact layout read through our index maps (to_dense never reads HF's garbage global slots).
    hf_dense = layout.to_dense(hf_attentions, hf_global, glob, window, (kinds > 0).astype(int))
    assert scaled_error(hf_dense, probs) < 1e-6
    merged = context.transpose(0, 2, 1, 3).reshape(hidden.shape)
    assert scaled_error(out, merged @ p["output.weight"].T + p["output.bias"]) < 1e-12


@given(st.data())
def test_encoder_self_attention_window_2_and_no_output_attentions(data):
    """Window 2 (HF crashes there) against the definition; output_attentions=False returns no probabilities."""
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
    context, _ = definition((proj("query") * scale, proj("key"), proj("value"), proj("query_global") * scale,
                             proj("key_global"), proj("value_global")), kinds, 2)
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
