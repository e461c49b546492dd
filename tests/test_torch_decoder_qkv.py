"""led_torch.decoder's inference shortcuts: self-attention's stacked q/k/v projection (one GEMM per decoder layer)
computes what the three projections compute and follows every change of the weights; a decode step's few-query
attention (3-D batched products) computes what the general softmax(q k^T + bias) v computes."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from led_ref.io.config import LEDConfig
from led_torch.decoder import DecoderAttention, few_query_context
from led_torch.encoder import split_heads
from led_torch.linear import _PACKED, _reorder, linear, onednn_linear_enabled


def _attention(d_model=512, seed=0, dtype=torch.float32):
    config = LEDConfig(d_model=d_model, decoder_attention_heads=8, encoder_attention_heads=8, vocab_size=32)
    torch.manual_seed(seed)
    module = DecoderAttention(config).to(dtype).eval()
    for p in module.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return module


def _separate(module, hidden):
    q = split_heads(module.q_proj(hidden) * module.scaling, module.heads)
    return (q, *module.project_kv(hidden))


@pytest.mark.parametrize("d_model, rows, dtype", [(512, 4, torch.float32), (512, 2, torch.bfloat16),
                                                  (64, 3, torch.float64)])
def test_stacked_projection_equals_the_three_projections(d_model, rows, dtype):
    module = _attention(d_model, dtype=dtype)
    hidden = torch.randn(rows, 5, d_model, dtype=dtype)
    with torch.no_grad():
        fused = module.project_qkv(hidden)
        assert module._stacked_qkv(hidden) is not None  # the stacked path was taken
        separate = _separate(module, hidden)
    exact = _separate(module.double(), hidden.double())
    ulps = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: 2e-2}[dtype]
    for a, b, e in zip(fused, separate, exact, strict=True):
        assert a.shape == b.shape == (rows, 8, 5, d_model // 8) and a.dtype == dtype
        assert (a.double() - e).abs().max() <= ulps * max(1.0, e.abs().max())
        assert (a.double() - b.double()).abs().max() <= 2 * ulps * max(1.0, e.abs().max())


def test_stacked_weights_follow_in_place_loads_and_replaced_parameters():
    module = _attention()
    hidden = torch.randn(4, 1, 512)
    other = _attention(seed=1)
    with torch.no_grad():
        module.project_qkv(hidden)
        module.load_state_dict(other.state_dict())  # in place: same storage, new version
        after_load = module.project_qkv(hidden)
        expected = _separate(other, hidden)
        for a, b in zip(after_load, expected, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
        module.k_proj.weight = torch.nn.Parameter(torch.zeros(512, 512))  # replaced
        assert module.project_qkv(hidden)[1].abs().max() == module.k_proj.bias.abs().max()


def test_training_keeps_three_projections_with_gradients():
    module = _attention(d_model=64).train()
    hidden = torch.randn(2, 3, 64, requires_grad=True)
    assert module._stacked_qkv(hidden) is None
    q, k, v = module.project_qkv(hidden)
    (q.sum() + k.sum() + v.sum()).backward()
    assert all(m.weight.grad is not None for m in (module.q_proj, module.k_proj, module.v_proj))


needs_onednn = pytest.mark.skipif(not onednn_linear_enabled() or _reorder is None,
                                  reason="this torch build has no oneDNN linear / weight packing")


@needs_onednn
def test_float32_few_row_products_read_a_packed_weight_bitwise_like_the_plain_one():
    """A decode step's projections (2 to 64 rows) and the stacked q/k/v read a oneDNN-packed copy of their weight,
    built once per weight version, with exactly the plain-weight results; one row and many rows stay plain."""
    module = _attention()
    layer = module.out_proj
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for rows in (1, 2, 4, 64, 65, 700):
            x = torch.randn(rows, 512, generator=g)
            _PACKED.pop(layer, None)
            assert torch.equal(layer(x), linear(x, layer.weight, layer.bias))
            assert (layer in _PACKED) is (2 <= rows <= 64), rows
        layer(x[:4])
        packed = _PACKED[layer][1]
        assert packed.is_mkldnn
        layer(x[:3])
        assert _PACKED[layer][1] is packed  # built once
        layer.weight.mul_(2)  # in place: the version counter moves
        assert torch.equal(layer(x[:4]), linear(x[:4], layer.weight, layer.bias))
        assert _PACKED[layer][1] is not packed

        hidden = torch.randn(4, 1, 512, generator=g)
        q, k, v = module.project_qkv(hidden)
        weight, bias = module._stacked_qkv(hidden)
        assert _PACKED[module][1].is_mkldnn  # the stacked weight has its own packed copy
        plain = linear(hidden, weight, bias).chunk(3, dim=-1)
        assert torch.equal(k, split_heads(plain[1], 8)) and torch.equal(v, split_heads(plain[2], 8))
        assert torch.equal(q, split_heads(plain[0] * module.scaling, 8))


@given(sources=st.integers(1, 3), heads=st.integers(1, 3), queries=st.integers(1, 6), keys=st.integers(1, 9),
       bias_kind=st.sampled_from(["none", "shared", "per_source_key", "per_source_query_key"]),
       transposed_keys=st.booleans(), seed=st.integers(0, 2**16))
def test_few_query_context_is_the_plain_attention(sources, heads, queries, keys, bias_kind, transposed_keys, seed):
    """Every bias layout a decode step or the tuple cache hands over (none; one causal (1, 1, n, keys); a source's
    padding (s, 1, 1, keys); a full (s, 1, n, keys)), and keys stored as the transpose of a contiguous tensor
    (the cross-attention layout): the same values as the 4-D reference in float64."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(sources, heads, queries, 4, generator=g, dtype=torch.float64)
    value = torch.randn(sources, heads, keys, 4, generator=g, dtype=torch.float64)
    key = torch.randn(sources, heads, keys, 4, generator=g, dtype=torch.float64)
    if transposed_keys:
        key = key.transpose(-1, -2).contiguous().transpose(-1, -2)
    shape = {"none": None, "shared": (1, 1, queries, keys), "per_source_key": (sources, 1, 1, keys),
             "per_source_query_key": (sources, 1, queries, keys)}[bias_kind]
    bias = None
    if shape is not None:
        bias = torch.zeros(shape, dtype=torch.float64).masked_fill_(torch.rand(shape, generator=g) < 0.3,
                                                                    torch.finfo(torch.float64).min)
        bias[..., 0] = 0.0  # every row keeps a key
    scores = q @ key.transpose(-1, -2) + (0.0 if bias is None else bias)
    expected = torch.softmax(scores, dim=-1) @ value
    torch.testing.assert_close(few_query_context(q, key, value, bias), expected, rtol=1e-12, atol=1e-12)
