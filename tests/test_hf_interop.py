"""parity.hf.interop against unmodified HF 4.57: HF models with led_torch's encoder attention swapped in
give HF's encoder outputs (float64 budget) and HF's generated tokens, through HF's own generate and a
summarization pipeline; HF <-> led_torch conversion keeps weights, configs and outputs."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import torch
from hf_oracle import hf_model, scaled_error, transformers

from led_ref.init import random_weights
from parity.hf.interop import to_hf, to_led_torch, use_led_torch_attention
from tests.test_hf_checkpoints import FINE_TUNED, inputs, tiny_config

pytestmark = pytest.mark.hf
torch.set_num_threads(1)
logging.getLogger("transformers").setLevel(logging.ERROR)


def pair(seed=2, vocab_size=None, **generation):
    config = tiny_config(**generation)
    if vocab_size is not None:
        config = dataclasses.replace(config, vocab_size=vocab_size)
    weights = random_weights(config, seed=seed, std=0.5)
    return (hf_model(config, weights, "LEDForConditionalGeneration", torch.float64),
            hf_model(config, weights, "LEDForConditionalGeneration", torch.float64))


@pytest.mark.parametrize("backend", ["banded", "flex"])
def test_swapped_encoder_attention_matches_unmodified_hf(backend):
    pytest.importorskip("torch.nn.attention.flex_attention") if backend == "flex" else None
    reference, swapped = pair()
    use_led_torch_attention(swapped, backend)
    tensors = {k: torch.as_tensor(v) for k, v in inputs().items()}
    with torch.no_grad():
        want = reference.get_encoder()(**tensors, output_attentions=backend == "banded")
        got = swapped.get_encoder()(**tensors, output_attentions=backend == "banded")
    assert scaled_error(got.last_hidden_state.numpy(), want.last_hidden_state.numpy()) < 1e-6
    if backend == "banded":  # probabilities in HF's compact layout, layer by layer
        for a, b in zip(got.attentions, want.attentions, strict=True):
            assert scaled_error(a.numpy(), b.numpy()) < 1e-6
        for a, b in zip(got.global_attentions, want.global_attentions, strict=True):
            used = np.isfinite(b.numpy())  # HF leaves NaN in the slots of rows with fewer globals (we: zeros)
            assert scaled_error(a.numpy()[used], b.numpy()[used]) < 1e-6
    with torch.no_grad():
        for kwargs in ({}, dict(num_beams=3, max_new_tokens=8, no_repeat_ngram_size=2)):
            assert torch.equal(swapped.generate(**tensors, **kwargs), reference.generate(**tensors, **kwargs))


def test_swap_is_not_a_no_op():
    reference, swapped = pair()
    use_led_torch_attention(swapped)
    with torch.no_grad():  # breaking the led_torch side must show up in HF's outputs
        swapped.led.encoder.layers[0].self_attn.longformer_self_attn.query.weight.mul_(1.5)
    tensors = {k: torch.as_tensor(v) for k, v in inputs().items()}
    with torch.no_grad():
        a = swapped.get_encoder()(**tensors).last_hidden_state
        b = reference.get_encoder()(**tensors).last_hidden_state
    assert scaled_error(a.numpy(), b.numpy()) > 1e-3
    # HF's parameter names are kept, so the swapped model's state dict loads into an unmodified HF model
    assert set(swapped.state_dict()) == set(reference.state_dict())


def test_swapped_model_saves_what_unmodified_hf_loads(tmp_path):
    reference, swapped = pair()
    use_led_torch_attention(swapped)
    swapped.save_pretrained(tmp_path)
    plain = transformers.LEDForConditionalGeneration.from_pretrained(tmp_path, torch_dtype=torch.float64)
    for name, value in reference.state_dict().items():
        assert torch.equal(plain.state_dict()[name], value), name


def test_summarization_pipeline_runs_on_the_swapped_model(tmp_path):
    from led_ref.io.tokenizer import train_byte_level_bpe

    train_byte_level_bpe(["the quick brown fox jumps over the lazy dog"] * 20, 280, tmp_path)
    tokenizer = transformers.LEDTokenizerFast.from_pretrained(tmp_path)
    reference, swapped = pair(vocab_size=len(tokenizer), **FINE_TUNED)
    use_led_torch_attention(swapped)
    text = "the lazy dog jumps over the quick brown fox"
    run = [transformers.pipeline("summarization", model=m, tokenizer=tokenizer, device="cpu")(text)
           for m in (reference, swapped)]
    assert run[0] == run[1] and run[0][0]["summary_text"] is not None


def test_hf_to_led_torch_and_back():
    reference, _ = pair(**FINE_TUNED)
    fast = to_led_torch(reference)
    assert fast.generation_config.num_beams == 4 and fast.dtype == torch.float64
    tensors = {k: torch.as_tensor(v) for k, v in inputs().items()}
    with torch.no_grad():
        want = reference.generate(**tensors)
    np.testing.assert_array_equal(fast.generate(**tensors).numpy(), want.numpy())
    back = to_hf(fast)
    assert type(back) is type(reference) and back.generation_config.num_beams == 4
    for name, value in reference.state_dict().items():
        assert torch.equal(back.state_dict()[name], value), name
    with torch.no_grad():
        assert torch.equal(back.generate(**tensors), want)


def test_training_through_hf_gives_hf_gradients():
    reference, swapped = pair()
    use_led_torch_attention(swapped)
    tensors = {k: torch.as_tensor(v) for k, v in inputs().items()}
    labels = torch.tensor([[5, 9, 12, 2], [17, 4, 2, 1]])
    grads = []
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # HF's decoder mask builder follows the default dtype
    try:
        for model in (reference, swapped):  # eval mode: no dropout, gradients still flow
            model.zero_grad()
            model(**tensors, labels=labels).loss.backward()
            grads.append(model.led.encoder.layers[1].self_attn.longformer_self_attn.query_global.weight.grad.numpy())
    finally:
        torch.set_default_dtype(previous)
    assert np.abs(grads[0]).max() > 0
    assert scaled_error(grads[1], grads[0]) < 1e-6
