"""led_torch under HF's Seq2SeqTrainer, and the PreTrainedModel methods Trainer, PEFT and users call.

End to end: a few fine-tuning steps of a tiny led_torch model with gradient checkpointing, evaluation with
`predict_with_generate`, `save_model`, then the folder loaded by HF and by led_torch (same logits and tokens), and
a resumed run that ends on the same weights. Then each method against HF 4.57's on the same weights."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import torch
from hf_oracle import hf_dtype_scope, hf_model, scaled_error, transformers
from tokenizers import Tokenizer
from tokenizers.models import WordLevel

import led_ref
import led_torch
from led_ref.init import random_weights
from led_ref.io.config import LEDConfig
from parity.hf.trainer import Seq2SeqTrainer

pytestmark = pytest.mark.hf
torch.set_num_threads(1)
logging.getLogger("transformers").setLevel(logging.ERROR)

CONFIG = LEDConfig(vocab_size=50, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                   decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, attention_window=4,
                   max_encoder_position_embeddings=64, max_decoder_position_embeddings=32)
SOURCE_LENGTH = 10


def tiny_model(dtype=torch.float32, seed=0):
    config = dataclasses.replace(CONFIG)  # its own: resize_token_embeddings changes the model's config, as HF's
    weights = random_weights(config, "LEDForConditionalGeneration", seed=seed, dtype="float64")
    return led_torch.LEDForConditionalGeneration.from_weights(config, weights, dtype=dtype)


def tokenizer():
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3} | {f"t{i}": i for i in range(4, CONFIG.vocab_size)}
    return transformers.PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="<unk>")),
                                                bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                                unk_token="<unk>")


def examples(count: int, seed: int) -> list[dict]:
    """Sources padded to one length (global attention on <s>); labels of varying length (the collator pads
    them with -100): the source's first tokens, so there is something to learn."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        n = int(rng.integers(5, SOURCE_LENGTH - 1))
        tokens = [int(t) for t in rng.integers(4, CONFIG.vocab_size, n)]
        padding = SOURCE_LENGTH - n - 2
        out.append({"input_ids": [0, *tokens, 2] + [1] * padding, "attention_mask": [1] * (n + 2) + [0] * padding,
                    "global_attention_mask": [1] + [0] * (SOURCE_LENGTH - 1), "labels": [0, *tokens[:n - 3], 2]})
    return out


def trainer(model, output_dir, save_strategy="no"):
    args = transformers.Seq2SeqTrainingArguments(
        output_dir=str(output_dir), per_device_train_batch_size=8, per_device_eval_batch_size=8, max_steps=12,
        learning_rate=1e-2, seed=0, gradient_checkpointing=True, predict_with_generate=True,
        generation_max_length=8, generation_num_beams=2, save_strategy=save_strategy, save_steps=6,
        report_to="none", use_cpu=True, disable_tqdm=True, logging_steps=1)  # Trainer's default optimizer
    tok = tokenizer()
    return Seq2SeqTrainer(model=model, args=args, train_dataset=examples(32, seed=0),
                          eval_dataset=examples(8, seed=1), processing_class=tok,
                          data_collator=transformers.DataCollatorForSeq2Seq(tok, model=model))


def batch(rows: list[dict]) -> dict:
    return {k: torch.tensor([r[k] for r in rows]) for k in ("input_ids", "attention_mask", "global_attention_mask")}


# ------------------------------------------------------------------------------------------ end to end
def test_seq2seq_trainer_fine_tunes_evaluates_saves_and_resumes(tmp_path):
    model = tiny_model().train()
    run = trainer(model, tmp_path, save_strategy="steps")
    before = run.evaluate()["eval_loss"]
    run.train()
    after = run.evaluate()["eval_loss"]
    assert model.is_gradient_checkpointing
    assert after < before - 0.1, (before, after)

    # predict_with_generate: the Trainer's generate call (labels, synced_gpus, its length and beams) gives the
    # tokens a direct call gives
    model.eval()
    rows = examples(8, seed=1)
    predicted = run.predict(rows).predictions
    with torch.no_grad():
        direct = model.generate(**batch(rows), max_length=8, num_beams=2)
    np.testing.assert_array_equal(predicted[:, :direct.shape[1]], direct.numpy())
    assert (predicted[:, direct.shape[1]:] == CONFIG.pad_token_id).all()

    run.save_model(tmp_path / "final")
    inputs = batch(rows) | {"decoder_input_ids": torch.tensor([[2, 0, 7, 9]] * 8)}
    again = led_torch.LEDForConditionalGeneration.from_pretrained(tmp_path / "final")
    with torch.no_grad():
        assert torch.equal(again(**inputs).logits, model(**inputs).logits)
        assert torch.equal(again.generate(**batch(rows), num_beams=2, max_length=8), direct)
    # HF reads the folder: float64 on both sides, so the comparison is held to HF's float64 budget
    ours = led_torch.LEDForConditionalGeneration.from_pretrained(tmp_path / "final", dtype=torch.float64)
    hf = transformers.LEDForConditionalGeneration.from_pretrained(tmp_path / "final", dtype=torch.float64).eval()
    with hf_dtype_scope(torch.float64):
        want = hf(**inputs).logits.numpy()
        want_tokens = hf.generate(**batch(rows), num_beams=2, max_length=8)
    with torch.no_grad():
        assert scaled_error(ours(**inputs).logits.numpy(), want) < 1e-6
        assert torch.equal(ours.generate(**batch(rows), num_beams=2, max_length=8), want_tokens)

    # a run resumed from the checkpoint at step 6 ends on the same weights, tied as before
    resumed = tiny_model().train()
    trainer(resumed, tmp_path / "resumed").train(resume_from_checkpoint=str(tmp_path / "checkpoint-6"))
    for (name, a), b in zip(model.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert resumed.lm_head.weight is resumed.led.shared.weight


def test_inference_caches_see_fused_adamw_steps():
    model = tiny_model()
    inputs = batch(examples(2, seed=5)) | {"decoder_input_ids": torch.tensor([[2, 0, 7], [2, 0, 9]])}
    with torch.no_grad():
        model(**inputs)  # an eval before training (Trainer's eval_strategy) builds the caches
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, fused=True)
    model.train()
    model(**inputs, labels=inputs["decoder_input_ids"]).loss.backward()
    optimizer.step()
    model.eval()
    fresh = tiny_model()
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, fresh(**inputs).logits)


def test_generate_takes_what_the_trainer_passes():
    model = tiny_model()
    ids = batch(examples(2, seed=3))
    with torch.no_grad():
        want = model.generate(**ids, num_beams=2, max_length=6)
        got = model.generate(**ids, num_beams=2, max_length=6, labels=torch.zeros(2, 3, dtype=torch.long),
                             synced_gpus=False)
        assert torch.equal(got, want)
        assert torch.equal(model.generate(**ids, num_beams=2, max_length=6, synced_gpus=True), want)  # one process
    with pytest.raises(TypeError, match="synced_gpus must be True or False, got 'yes'"):
        model.generate(**ids, synced_gpus="yes")
    # the spec shares the resolution, so it takes the same call
    spec = led_ref.LEDForConditionalGeneration(model.config, weights=random_weights(model.config, seed=0))
    arrays = {k: v.numpy() for k, v in ids.items()}
    np.testing.assert_array_equal(spec.generate(**arrays, num_beams=2, max_length=6, labels=arrays["input_ids"],
                                                synced_gpus=False), spec.generate(**arrays, num_beams=2, max_length=6))


# ------------------------------------------------------------------------------------------ resize
def pair(seed=0):
    """led_torch and HF (float64) on the same weights."""
    weights = random_weights(CONFIG, "LEDForConditionalGeneration", seed=seed, dtype="float64", std=0.3)
    return (led_torch.LEDForConditionalGeneration.from_weights(dataclasses.replace(CONFIG), weights,
                                                               dtype=torch.float64),
            hf_model(CONFIG, weights, "LEDForConditionalGeneration", torch.float64))


@pytest.mark.parametrize("arguments", [dict(new_num_tokens=57), dict(new_num_tokens=57, mean_resizing=False),
                                       dict(new_num_tokens=40), dict(new_num_tokens=53, pad_to_multiple_of=8),
                                       dict(new_num_tokens=None, pad_to_multiple_of=16)], ids=str)
def test_resize_token_embeddings_gives_hfs_weights(arguments):
    ours, hf = pair()
    with torch.no_grad():
        hf.final_logits_bias.normal_()
        ours.final_logits_bias.copy_(hf.final_logits_bias)
    parameter = ours.get_input_embeddings().weight
    torch.manual_seed(5)  # added rows come from the global generator, in HF's order of draws
    got = ours.resize_token_embeddings(**arguments)
    torch.manual_seed(5)
    want = hf.resize_token_embeddings(**arguments)
    count = want.weight.shape[0]
    assert count != CONFIG.vocab_size and got is ours.get_input_embeddings() and got.num_embeddings == count
    assert torch.equal(got.weight, want.weight)
    assert got.weight is parameter  # the same Parameter: an optimizer holding it keeps training it
    assert ours.config.vocab_size == hf.config.vocab_size == count
    assert torch.equal(ours.final_logits_bias, hf.final_logits_bias) and ours.final_logits_bias.shape == (1, count)
    assert ours.lm_head.weight is got.weight and ours.lm_head.out_features == count
    assert ours.led.encoder.embed_tokens is got and ours.led.decoder.embed_tokens is got
    ids = torch.tensor([[0, count - 1, 5, 2]])
    with hf_dtype_scope(torch.float64):
        logits = hf(input_ids=ids, decoder_input_ids=ids).logits.numpy()
    with torch.no_grad():
        assert scaled_error(ours(input_ids=ids, decoder_input_ids=ids).logits.numpy(), logits) < 1e-6


def test_resize_token_embeddings_keeps_rows_and_refuses_bad_sizes():
    model = tiny_model()
    old = model.get_input_embeddings().weight.detach().clone()
    assert model.resize_token_embeddings() is model.get_input_embeddings()  # nothing asked: nothing changes
    assert torch.equal(model.get_input_embeddings().weight, old)
    model.resize_token_embeddings(60)
    assert torch.equal(model.get_input_embeddings().weight[:50], old)
    added = model.get_input_embeddings().weight[50:].detach()
    # drawn around the old rows' mean with 1e-9 x their covariance: close to the mean, not all equal
    torch.testing.assert_close(added, old.mean(0).expand(10, -1), rtol=0, atol=1e-3)
    assert not torch.equal(added[0], added[1])
    with pytest.raises(ValueError, match=r"new_num_tokens=2 would drop token id 2 \(config.eos_token_id\)"):
        model.resize_token_embeddings(2)
    with pytest.raises(ValueError, match="pad_to_multiple_of must be >= 1, got 0"):
        model.resize_token_embeddings(64, pad_to_multiple_of=0)
    with pytest.raises(TypeError, match="new_num_tokens must be an int or None, got 6.5"):
        model.resize_token_embeddings(6.5)
    with pytest.raises(TypeError, match="mean_resizing must be True or False, got 'no'"):
        model.resize_token_embeddings(64, mean_resizing="no")
    assert model.config.vocab_size == 60


def test_resized_model_trains_and_round_trips(tmp_path):
    model = tiny_model()
    model.resize_token_embeddings(56)
    model.train()
    labels = torch.tensor([[55, 4, 2]])  # a new token: in range after the resize
    loss = model(input_ids=torch.tensor([[0, 55, 2]]), labels=labels).loss
    loss.backward()
    assert model.get_input_embeddings().weight.grad[55].abs().sum() > 0
    model.eval().save_pretrained(tmp_path)
    again = led_torch.LEDForConditionalGeneration.from_pretrained(tmp_path)
    assert again.config.vocab_size == 56 and torch.equal(again.final_logits_bias, model.final_logits_bias)
    with torch.no_grad():
        assert torch.equal(again(input_ids=torch.tensor([[0, 55, 2]]), labels=labels).logits,
                           model(input_ids=torch.tensor([[0, 55, 2]]), labels=labels).logits)


# ------------------------------------------------------------------------------------------ the other methods
def test_embedding_accessors_and_flags():
    model = tiny_model()
    assert model.get_input_embeddings() is model.led.shared and model.get_output_embeddings() is model.lm_head
    assert led_torch.LEDModel.from_weights(CONFIG, random_weights(CONFIG, "LEDModel")).get_output_embeddings() is None
    assert led_torch.LEDForConditionalGeneration.can_generate()
    assert not led_torch.LEDModel.can_generate() and not led_torch.LEDForSequenceClassification.can_generate()
    assert model.main_input_name == "input_ids" == transformers.LEDForConditionalGeneration.main_input_name
    fresh = torch.nn.Embedding(CONFIG.vocab_size, CONFIG.d_model).double()
    model.set_input_embeddings(fresh)
    assert model.led.encoder.embed_tokens is fresh and model.led.decoder.embed_tokens is fresh
    assert model.lm_head.weight is fresh.weight  # led_torch keeps the head tied (it saves one copy)
    with pytest.raises(ValueError, match=r"value has weight shape \(7, 16\), the model needs \(50, 16\)"):
        model.set_input_embeddings(torch.nn.Embedding(7, 16))
    with pytest.raises(TypeError, match="value must be a torch.nn.Embedding, got Linear"):
        model.set_input_embeddings(torch.nn.Linear(16, 50))


def test_parameter_counts_and_flops_are_hfs():
    ours, hf = pair()
    for module in (ours, hf):
        module.led.encoder.layers[0].fc1.weight.requires_grad_(False)
    for flags in ({}, dict(exclude_embeddings=True), dict(only_trainable=True),
                  dict(only_trainable=True, exclude_embeddings=True)):
        assert ours.num_parameters(**flags) == hf.num_parameters(**flags), flags
    inputs = {"input_ids": torch.ones(3, 7, dtype=torch.long)}
    assert ours.floating_point_ops(inputs) == hf.floating_point_ops(inputs) > 0
    assert ours.floating_point_ops({}) == 0


def test_gradient_checkpointing_kwargs_give_the_same_gradients():
    def gradients(checkpointing: dict | None):
        model = tiny_model(torch.float64).train()
        if checkpointing is not None:
            model.gradient_checkpointing_enable(**checkpointing)
        torch.manual_seed(0)  # dropout is on: checkpointing must replay the same masks
        model(**batch(examples(2, seed=4)), labels=torch.tensor([[0, 5, 2], [0, 6, 2]])).loss.backward()
        return [p.grad for p in model.parameters()]

    plain = gradients(None)
    for kwargs in ({}, dict(gradient_checkpointing_kwargs=None),
                   dict(gradient_checkpointing_kwargs={"use_reentrant": True}),
                   dict(gradient_checkpointing_kwargs={"use_reentrant": False, "preserve_rng_state": True})):
        for a, b in zip(gradients(kwargs), plain, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    model = tiny_model()
    with pytest.raises(ValueError, match=r"gradient_checkpointing_kwargs\['preserve_rng_state'\]=False"):
        model.gradient_checkpointing_enable({"preserve_rng_state": False})
    with pytest.raises(TypeError, match="gradient_checkpointing_kwargs must be a dict or None, got list"):
        model.gradient_checkpointing_enable([])
    assert not model.is_gradient_checkpointing


def test_input_require_grads_with_frozen_embeddings():
    model = tiny_model().train()
    model.get_input_embeddings().weight.requires_grad_(False)
    model.gradient_checkpointing_enable({"use_reentrant": True})
    ids = torch.tensor([[0, 5, 6, 2]])
    assert not model.get_input_embeddings()(ids).requires_grad
    model.enable_input_require_grads()
    assert model.get_input_embeddings()(ids).requires_grad
    model(input_ids=ids, labels=torch.tensor([[0, 5, 2]])).loss.backward()
    assert model.led.encoder.layers[0].fc1.weight.grad.abs().sum() > 0  # gradients reach checkpointed layers
    model.disable_input_require_grads()
    assert not model.get_input_embeddings()(ids).requires_grad


def test_save_pretrained_takes_trainers_keywords(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path / "skipped", is_main_process=False)
    assert not (tmp_path / "skipped").exists()
    other = tiny_model(seed=1)
    model.save_pretrained(tmp_path / "given", state_dict=other.state_dict(), safe_serialization=False)
    again = led_torch.LEDForConditionalGeneration.from_pretrained(tmp_path / "given")
    for (name, a), b in zip(again.state_dict().items(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(TypeError, match="safe_serialization must be True or False, got 'yes'"):
        model.save_pretrained(tmp_path / "bad", safe_serialization="yes")


def test_keys_left_out_on_save_are_the_tied_ones(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    from safetensors import safe_open

    with safe_open(str(tmp_path / "model.safetensors"), "pt") as fh:
        stored = set(fh.keys())
    assert set(model._keys_to_ignore_on_save) == set(model.state_dict()) - stored
    assert set(model._keys_to_ignore_on_save) == {"lm_head.weight", "led.encoder.embed_tokens.weight",
                                                  "led.decoder.embed_tokens.weight"}

