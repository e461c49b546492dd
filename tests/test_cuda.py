"""What only a GPU can confirm, outside the per-backend files: compiled FlexAttention forward on CUDA, the
whole model in float16/bfloat16 against the float64 spec (parity.harness.tolerances budgets), and `auto` choosing
triton on CUDA without falling back. Every test here is marked `cuda` and skipped without a CUDA device;
`led-parity gpu-check` runs them (`pytest -m cuda`) together with the CUDA tests of test_backend_flex.py
and test_backend_triton.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from led_ref.init import random_weights
from led_ref.io.config import LEDConfig
from parity.harness.check import run_case
from parity.harness.implementations import Side
from tests.test_backend_flex import HALF_BUDGETS, brute_force_context, scaled_error
from tests.test_backend_triton import led_like_case

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize(("dtype", "head_dim"), [(torch.float32, 8), (torch.float16, 64), (torch.bfloat16, 64)])
def test_flex_compiled_on_cuda_against_float64(dtype, head_dim):
    """torch.compile'd flex (Triton on CUDA); head_dim 8 takes the zero-padding to 16."""
    from led_torch.backends.flex import flex_longformer_attention

    args, exact = led_like_case(head_dim, dtype)
    got = flex_longformer_attention(*args, compiled=True)
    budget = 1e-5 if dtype == torch.float32 else HALF_BUDGETS[dtype]
    assert got.dtype == dtype and scaled_error(got, brute_force_context(*exact)) < budget


def test_auto_serves_cuda_calls_with_triton_without_falling_back(monkeypatch):
    import led_torch.backends as backends
    from led_torch.backends.triton_banded import triton_longformer_attention

    log = backends._FallbackLog()
    monkeypatch.setattr(backends, "FALLBACK_LOG", log)
    args, _ = led_like_case(64, torch.bfloat16)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a fallback warning fails the test
        got = backends.attend("auto", *args)
    assert log.failed == {} and log.warned == set()
    assert torch.equal(got, triton_longformer_attention(*args))


def _model_case():
    config = LEDConfig(vocab_size=200, d_model=128, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
                       decoder_attention_heads=2, encoder_ffn_dim=256, decoder_ffn_dim=256, attention_window=64,
                       max_encoder_position_embeddings=1024, max_decoder_position_embeddings=64)
    weights = random_weights(config, seed=3, std=0.1)  # 0.3 makes d_model-128 attention too peaky for fp16
    rng = np.random.default_rng(4)
    ids = rng.integers(3, 200, size=(2, 700), dtype=np.int64)
    mask = np.ones_like(ids)
    mask[1, 600:] = 0
    glob = np.zeros_like(ids)
    glob[:, 0] = 1
    glob[0, 333] = 1
    decoder = rng.integers(3, 200, size=(2, 12), dtype=np.int64)
    return config, weights, dict(input_ids=ids, attention_mask=mask, global_attention_mask=glob,
                                 decoder_input_ids=decoder)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("backend", ["auto", "triton", "flex", "banded"])
def test_model_in_half_precision_on_cuda_within_the_budgets_against_float64(dtype, backend):
    """Every output of the whole model (head_dim 64) vs led_ref float64, held to parity.harness.tolerances."""
    config, weights, inputs = _model_case()
    side = Side("torch", backend, dtype, "cuda")
    (comparison,) = run_case(config, "LEDForConditionalGeneration", weights, inputs, [side])
    assert comparison.passed, comparison.first_divergence
