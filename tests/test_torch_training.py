"""Training: gradients equal HF's (float64, dropout 0), gradient checkpointing changes nothing, dropout and
layerdrop act only in train mode."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from hf_oracle import hf_model, scaled_error
from hypothesis import given

from led_ref.init import random_weights
from led_ref.io.config import LEDConfig
from led_torch import LEDForConditionalGeneration
from parity.harness.strategies import model_cases

pytestmark = pytest.mark.hf
torch.set_num_threads(1)


@contextlib.contextmanager
def default_dtype(dtype):
    """HF builds masks in the default dtype; gradients need autograd on, so not hf_dtype_scope."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _inputs(case):
    out = {}
    for name, value in case.inputs.items():
        if "head_mask" in name:
            continue
        out[name] = torch.as_tensor(np.asarray(value)).long()
    return out


def _grads(model):
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def _compare_gradients(config, weights, inputs, budget):
    """Backward through both models; returns the names whose HF gradient is NaN (HF defect, see below)."""
    ours = LEDForConditionalGeneration.from_weights(config, weights, dtype=torch.float64).train()
    hf = hf_model(config, weights, "LEDForConditionalGeneration", torch.float64).train()
    ours(**inputs).loss.backward()
    with default_dtype(torch.float64):
        hf(**inputs).loss.backward()
    ours_grads, hf_grads = _grads(ours), _grads(hf)
    assert set(ours_grads) == set(hf_grads)
    # HF's backward gives NaN when a padding row sees only padding keys (softmax of an all -inf row);
    # ours must stay finite, and every gradient HF gets right must match.
    hf_nan = {name for name, g in hf_grads.items() if not torch.isfinite(g).all()}
    for name, g in hf_grads.items():
        assert torch.isfinite(ours_grads[name]).all(), f"grad of {name} is not finite"
        if name not in hf_nan:
            err = scaled_error(ours_grads[name].numpy(), g.numpy())
            assert err < budget, f"grad of {name}: scaled error {err:.3g}"
    return hf_nan


@given(model_cases(hf_compatible=True, with_head_masks=False))
def test_gradients_match_hf(case):
    inputs = _inputs(case)
    if not (inputs["labels"] != -100).any():
        inputs["labels"][:, 0] = 3
    hf_nan = _compare_gradients(case.config, case.weights(), inputs, 1e-6)
    assert not any(name.startswith("led.decoder.layers") for name in hf_nan)


def test_all_gradients_match_hf_without_padding_rows():
    """Length a multiple of the window, no padding, equal global counts per row (HF's unused global slots
    hold NaN in float64): HF's gradients are all finite; compare every one."""
    config = _config(attention_window=[4, 8])
    batch = _batch()
    batch["attention_mask"] = torch.ones_like(batch["input_ids"])
    batch["global_attention_mask"][0, 3] = 1
    batch["global_attention_mask"][1, 5] = 1
    hf_nan = _compare_gradients(config, random_weights(config, seed=9, std=0.3), batch, 1e-6)
    assert not hf_nan


def _config(**extra):
    base = dict(vocab_size=30, d_model=8, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
                decoder_attention_heads=2, encoder_ffn_dim=8, decoder_ffn_dim=8, attention_window=[2, 6],
                max_encoder_position_embeddings=32, max_decoder_position_embeddings=16, dropout=0.0)
    return LEDConfig(**(base | extra))


def _batch():
    ids = torch.tensor([[0, 5, 6, 7, 8, 9, 10, 2], [0, 5, 6, 2, 1, 1, 1, 1]])
    glob = torch.zeros_like(ids)
    glob[:, 0] = 1
    labels = torch.tensor([[0, 7, 8, 2], [0, 9, 2, -100]])
    return dict(input_ids=ids, attention_mask=(ids != 1).long(), global_attention_mask=glob, labels=labels)


def test_gradient_checkpointing_gives_the_same_gradients():
    config = _config()
    weights = random_weights(config, seed=4, std=0.3)
    plain = LEDForConditionalGeneration.from_weights(config, weights, dtype=torch.float64).train()
    ckpt = LEDForConditionalGeneration.from_weights(config, weights, dtype=torch.float64).train()
    ckpt.gradient_checkpointing_enable()
    loss_plain = plain(**_batch()).loss
    loss_ckpt = ckpt(**_batch()).loss
    loss_plain.backward()
    loss_ckpt.backward()
    assert torch.equal(loss_plain, loss_ckpt)
    a, b = _grads(plain), _grads(ckpt)
    assert set(a) == set(b) and len(a) > 0
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-12, msg=name)


def test_dropout_only_in_train_mode():
    config = _config(dropout=0.3, attention_dropout=0.3, activation_dropout=0.3)
    weights = random_weights(config, seed=5, std=0.3)
    model = LEDForConditionalGeneration.from_weights(config, weights, dtype=torch.float64)
    quiet = LEDForConditionalGeneration.from_weights(_config(), weights, dtype=torch.float64)
    batch = _batch()
    eval_logits = model(**batch).logits
    assert torch.equal(eval_logits, model(**batch).logits)
    assert torch.equal(eval_logits, quiet(**batch).logits)  # eval ignores every dropout
    model.train()
    torch.manual_seed(0)
    first = model(**batch).logits
    second = model(**batch).logits
    assert not torch.equal(first, second) and not torch.equal(first, eval_logits)
    first.sum().backward()  # gradients flow through dropped-out banded attention


def test_layerdrop_only_in_train_mode():
    config = _config(encoder_layerdrop=1.0, decoder_layerdrop=1.0)
    model = LEDForConditionalGeneration.from_weights(config, random_weights(config, seed=6, std=0.3),
                                                     dtype=torch.float64)
    batch = {k: v for k, v in _batch().items() if k != "labels"}
    eval_out = model(**batch, decoder_input_ids=torch.tensor([[2, 0], [2, 0]]), output_hidden_states=True)
    assert not torch.equal(eval_out.encoder_last_hidden_state, eval_out.encoder_hidden_states[0])
    model.train()
    train_out = model(**batch, decoder_input_ids=torch.tensor([[2, 0], [2, 0]]), output_hidden_states=True)
    # Every layer dropped: the encoder output is its embedding layer's output.
    torch.testing.assert_close(train_out.encoder_last_hidden_state, eval_out.encoder_hidden_states[0])
