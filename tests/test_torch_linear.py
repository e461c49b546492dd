"""led_torch.linear: the oneDNN inference path computes what F.linear computes, and is only taken where it
should be (CPU float32/bfloat16 inference, outside torch.compile, switched on)."""

import platform

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch.profiler import ProfilerActivity, profile

from led_torch.linear import _DTYPES, Linear, linear, onednn_linear_enabled, set_onednn_linear

needs_onednn = pytest.mark.skipif(not onednn_linear_enabled(), reason="this torch build has no oneDNN")


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64") or not torch.backends.mkldnn.is_available(),
                    reason="oneDNN's linear op is expected on x86-64 builds with oneDNN only")
def test_the_onednn_op_is_there_on_x86_builds_with_onednn():
    """The path rests on a private op: if a torch upgrade drops or renames it, this fails instead of every
    other test here skipping quietly (led_torch itself would fall back to F.linear, correct but slower)."""
    assert hasattr(torch.ops.mkldnn, "_linear_pointwise")
    assert onednn_linear_enabled()


def _ops(fn) -> set[str]:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return {event.key for event in prof.key_averages()}


def _inputs(shape, dtype=torch.float32, seed=0, out_features=48):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g).to(dtype)
    weight = (torch.randn(out_features, shape[-1], generator=g) * 0.1).to(dtype)
    bias = torch.randn(out_features, generator=g).to(dtype)
    return x, weight, bias


# big enough for oneDNN: a (512, 512) weight has 2^18 elements (led_torch.linear._MIN_WEIGHT)
BIG = 512


@needs_onednn
@pytest.mark.parametrize("shape", [(4, BIG), (1, BIG), (3, 1, BIG), (2, 300, BIG), (700, BIG)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_onednn_path_matches_float64(shape, with_bias):
    x, weight, bias = _inputs(shape, out_features=BIG)
    bias = bias if with_bias else None
    with torch.no_grad():
        out = linear(x, weight, bias)
    exact = F.linear(x.double(), weight.double(), None if bias is None else bias.double())
    assert out.shape == exact.shape and out.dtype == torch.float32
    # float32 rounding of a 512-term dot product: a few ulps of the result's scale
    assert (out.double() - exact).abs().max() <= 1e-6 * max(1.0, exact.abs().max())
    assert "mkldnn::_linear_pointwise" in _ops(lambda: linear(x, weight, bias))


@needs_onednn
def test_onednn_path_accepts_strided_inputs():
    x, _, _ = _inputs((6, 2 * BIG))
    _, weight, bias = _inputs((3, BIG), out_features=BIG)
    view = x[::2, ::2]  # (3, BIG), neither dimension contiguous
    out = linear(view, weight, bias)
    assert torch.allclose(out, F.linear(view.contiguous(), weight, bias), atol=1e-5, rtol=0)


@needs_onednn
@pytest.mark.skipif(torch.bfloat16 not in _DTYPES, reason="oneDNN has no bfloat16 kernels on this CPU")
def test_bfloat16_path_matches_float64_within_bf16_rounding():
    x, weight, bias = _inputs((4, BIG), torch.bfloat16, out_features=BIG)
    out = linear(x, weight, bias)
    exact = F.linear(x.double(), weight.double(), bias.double())
    assert out.dtype == torch.bfloat16
    assert (out.double() - exact).abs().max() <= 2 ** -7 * max(1.0, exact.abs().max())
    assert "mkldnn::_linear_pointwise" in _ops(lambda: linear(x, weight, bias))


def _same_as_f_linear(x, weight, bias):
    expected = F.linear(x, weight, bias)
    out = linear(x, weight, bias)
    assert torch.equal(out, expected)
    return out


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_float64_and_float16_take_f_linear_bit_for_bit(dtype):
    x, weight, bias = _inputs((4, BIG), dtype, out_features=BIG)
    _same_as_f_linear(x, weight, bias)
    assert "mkldnn::_linear_pointwise" not in _ops(lambda: linear(x, weight, bias))


def test_autograd_takes_f_linear_and_gives_its_gradients():
    layer = Linear(BIG, BIG)
    reference = torch.nn.Linear(BIG, BIG)
    reference.load_state_dict(layer.state_dict())
    x = torch.randn(5, BIG)
    assert "mkldnn::_linear_pointwise" not in _ops(lambda: layer(x))
    layer(x).square().sum().backward()
    reference(x).square().sum().backward()
    assert torch.equal(layer.weight.grad, reference.weight.grad)
    assert torch.equal(layer.bias.grad, reference.bias.grad)


def test_switching_off_gives_f_linear_and_the_setting_comes_back():
    x, weight, bias = _inputs((4, BIG), out_features=BIG)
    before = onednn_linear_enabled()
    with set_onednn_linear(False), torch.no_grad():
        assert not onednn_linear_enabled()
        _same_as_f_linear(x, weight, bias)
        assert "mkldnn::_linear_pointwise" not in _ops(lambda: linear(x, weight, bias))
    assert onednn_linear_enabled() == before


def test_switch_rejects_non_bool():
    with pytest.raises(TypeError, match="enabled must be a bool, got 1"):
        with set_onednn_linear(1):
            pass


def test_empty_input_gives_an_empty_output():
    x, weight, bias = _inputs((0, 32))
    with torch.no_grad():
        assert linear(x, weight, bias).shape == (0, 48)


def test_linear_is_a_drop_in_nn_linear():
    layer = Linear(32, 48, bias=False)
    assert isinstance(layer, torch.nn.Linear)
    assert list(layer.state_dict()) == ["weight"]
    assert repr(layer) == "Linear(in_features=32, out_features=48, bias=False)"


@needs_onednn
def test_strided_weight_takes_f_linear():
    x, weight, bias = _inputs((4, BIG), out_features=BIG)
    strided = torch.randn(BIG, BIG).t()  # transposed view
    with torch.no_grad():
        _same_as_f_linear(x, strided, bias)


def test_mismatched_shapes_get_f_linears_error():
    x, weight, bias = _inputs((4, BIG), out_features=BIG)
    with torch.no_grad():
        with pytest.raises(RuntimeError, match="cannot be multiplied"):
            linear(torch.randn(4, BIG - 1), weight, bias)
        with pytest.raises(RuntimeError, match="expanded size of the tensor .512. must match the existing size .511."):
            linear(x, weight, bias[:-1])


def test_mixed_dtypes_take_f_linear_and_its_error():
    x, weight, bias = _inputs((4, BIG), out_features=BIG)
    with torch.no_grad(), pytest.raises(RuntimeError):
        F.linear(x, weight, bias.double())  # what F.linear says about it ...
    with torch.no_grad(), pytest.raises(RuntimeError):
        linear(x, weight, bias.double())  # ... is what the layer says (oneDNN is not asked)
    assert "mkldnn::_linear_pointwise" not in _ops(lambda: _try(linear, x, weight, bias.double()))


def _try(fn, *args):
    try:
        fn(*args)
    except RuntimeError:
        pass


def test_a_bias_that_needs_a_gradient_gets_one():
    x, weight, bias = _inputs((4, BIG), out_features=BIG)
    bias.requires_grad_(True)
    linear(x, weight, bias).sum().backward()
    assert torch.equal(bias.grad, torch.full((BIG,), 4.0))


@needs_onednn
@pytest.mark.parametrize("rows, features, out_features, onednn", [
    (4, 32, 48, False),  # tiny: oneDNN's per-call cost would dominate
    (1000, 128, 256, False),  # 2^25 multiply-adds, weight 2^15: below both limits
    (2048, 128, 256, True),  # 2^26 multiply-adds
    (1, BIG, BIG, True),  # weight 2^18
])
def test_only_big_enough_products_go_to_onednn(rows, features, out_features, onednn):
    x, weight, bias = _inputs((rows, features), out_features=out_features)
    with torch.no_grad():
        assert ("mkldnn::_linear_pointwise" in _ops(lambda: linear(x, weight, bias))) is onednn
        if not onednn:
            _same_as_f_linear(x, weight, bias)


@needs_onednn
def test_a_model_on_the_onednn_path_agrees_with_the_spec():
    """d_model 512: every projection is big enough for oneDNN (the tiny test models elsewhere stay on F.linear).
    led_torch float32 against led_ref float64: every output within the float32 budgets, generation identical
    or an honest tie."""
    import numpy as np

    from led_ref.init import random_weights
    from led_ref.io.config import LEDConfig
    from parity.harness.check import run_case
    from parity.harness.generation import generation_parity
    from parity.harness.implementations import Side

    config = LEDConfig(vocab_size=64, d_model=BIG, encoder_layers=1, decoder_layers=1, encoder_attention_heads=8,
                       decoder_attention_heads=8, encoder_ffn_dim=BIG, decoder_ffn_dim=BIG, attention_window=16,
                       max_encoder_position_embeddings=128, max_decoder_position_embeddings=16)
    weights = random_weights(config, seed=0, std=0.05)
    rng = np.random.default_rng(0)
    ids = rng.integers(3, 64, size=(2, 40))
    mask = np.ones_like(ids)
    mask[1, 30:] = 0
    glob = np.zeros_like(ids)
    glob[:, 0] = 1
    glob[0, 17] = 1
    inputs = dict(input_ids=ids, attention_mask=mask, global_attention_mask=glob,
                  decoder_input_ids=rng.integers(3, 64, size=(2, 5)))
    side, spec = Side("torch", "banded", "float32"), Side("ref")
    (comparison,) = run_case(config, "LEDForConditionalGeneration", weights, inputs, [side], spec)
    assert comparison.passed, comparison.first_divergence
    assert 0 < comparison.max_error < 1e-5

    model = side.build(config, weights, "LEDForConditionalGeneration")
    assert "mkldnn::_linear_pointwise" in _ops(lambda: side.forward(model, inputs))
    encoder_only = {k: inputs[k] for k in ("input_ids", "attention_mask", "global_attention_mask")}
    _, (result,) = generation_parity(config, weights, encoder_only, [side], spec, max_new_tokens=6, num_beams=2)
    assert result.passed, result.describe()


def test_cpu_autocast_is_honoured():
    x, weight, bias = _inputs((4, BIG), out_features=BIG)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = linear(x, weight, bias)
        assert out.dtype == torch.bfloat16  # what F.linear gives under autocast
        assert torch.equal(out, F.linear(x, weight, bias))


@needs_onednn
@given(rows=st.integers(1, 70), lead=st.sampled_from([(), (2,), (1, 3)]), features=st.sampled_from([256, 512, 640]),
       out_features=st.sampled_from([128, 512, 768]), with_bias=st.booleans(), seed=st.integers(0, 2**16))
def test_any_shape_agrees_with_float64_and_routes_by_size(rows, lead, features, out_features, with_bias, seed):
    x, weight, bias = _inputs((*lead, rows, features), seed=seed, out_features=out_features)
    bias = bias if with_bias else None
    with torch.no_grad():
        out = linear(x, weight, bias)
        used_onednn = "mkldnn::_linear_pointwise" in _ops(lambda: linear(x, weight, bias))
    exact = F.linear(x.double(), weight.double(), None if bias is None else bias.double())
    assert out.shape == (*lead, rows, out_features)
    assert (out.double() - exact).abs().max() <= 2e-6 * max(1.0, exact.abs().max())
    total_rows = rows * (lead[0] if lead else 1) * (lead[1] if len(lead) > 1 else 1)
    big = out_features * features >= 512 * 512 or total_rows * out_features * features >= 2**26
    assert used_onednn is big


@needs_onednn
@pytest.mark.parametrize("rows", [1, 4, 64, 512, 1500])
@pytest.mark.parametrize("dtype", _DTYPES)
def test_fused_gelu_is_bitwise_the_separate_activation(rows, dtype):
    """fc1's "gelu" runs as oneDNN's post-op where that is bit for bit F.gelu of the plain product (float32, 2
    rows or more: few-row packed and many-row products alike; no separate aten::gelu), and as F.gelu after the
    product elsewhere (a float32 single row, bfloat16), so the result is always torch's own."""
    x, weight, bias = _inputs((rows, BIG), dtype=dtype, out_features=768)
    layer = Linear(BIG, 768).to(dtype)
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
        fused = layer(x, activation="gelu")
        separate = F.gelu(layer(x))
        ops = _ops(lambda: layer(x, activation="gelu"))
    assert torch.equal(fused, separate)
    assert "mkldnn::_linear_pointwise" in ops
    assert ("aten::gelu" not in ops) is (dtype == torch.float32 and rows >= 2)


@pytest.mark.parametrize("name", ["relu", "gelu_new", "silu"])
def test_other_activations_are_applied_after_the_product(name):
    from led_torch.activations import activation

    x, weight, bias = _inputs((5, BIG), out_features=768)
    with torch.no_grad():
        assert torch.equal(linear(x, weight, bias, activation=name), activation(name)(linear(x, weight, bias)))
    with pytest.raises(ValueError, match="activation_function must be one of"):
        linear(x, weight, bias, activation="gelu_wrong")
