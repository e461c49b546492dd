"""led_torch models against HF transformers' LED (the oracle) and against an encoder running parity.gate.reference."""

from __future__ import annotations

import warnings
from unittest import mock

import numpy as np
import pytest
import torch
from hf_oracle import hf_dtype_scope, hf_model, scaled_error, to_numpy
from hypothesis import event, given
from hypothesis import strategies as st

from led_ref.init import random_weights
from led_ref.io.config import LEDConfig
from led_torch import (
    LEDForConditionalGeneration,
    LEDForQuestionAnswering,
    LEDForSequenceClassification,
    LEDModel,
)
from led_torch.backends.rule import GLOBAL, global_slots, token_kinds
from parity.gate.reference import reference_attention
from parity.harness.strategies import encoder_inputs, led_configs, model_cases

pytestmark = pytest.mark.hf
torch.set_num_threads(1)
HF_BUDGET = 1e-6  # HF takes the encoder softmax in float32 even for float64 models


def hf_budget(std: float) -> float:
    """The same budget for every weight scale (measured max over the thorough profile: ~1e-7)."""
    return HF_BUDGET


def tensors(inputs: dict, dtype=torch.float64) -> dict:
    """numpy inputs -> torch (ids long, head masks in `dtype`)."""
    out = {}
    for name, value in inputs.items():
        t = torch.as_tensor(np.asarray(value))
        out[name] = t.to(dtype) if "head_mask" in name else t.long()
    return out


def both(config, weights, architecture, dtype=torch.float64, **kwargs):
    """(ours, HF) models of `architecture` carrying `weights`."""
    cls = {"LEDModel": LEDModel, "LEDForConditionalGeneration": LEDForConditionalGeneration,
           "LEDForSequenceClassification": LEDForSequenceClassification,
           "LEDForQuestionAnswering": LEDForQuestionAnswering}[architecture]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        hf = hf_model(config, weights, architecture, dtype)
    return cls.from_weights(config, weights, dtype=dtype, **kwargs), hf


def run_hf(hf, dtype=torch.float64, **kwargs):
    with hf_dtype_scope(dtype):
        return hf(**kwargs)


def assert_close(ours, ref, budget=HF_BUDGET, what=""):
    err = scaled_error(to_numpy(ours.double()), to_numpy(ref.double()))
    assert err < budget, f"{what}: scaled error {err:.3g} >= {budget}"
    return err


def assert_encoder_attentions(ours, kind, what="encoder", budget=HF_BUDGET):
    """Local attentions exactly in HF's layout; global ones on the valid slots, ours exactly 0 elsewhere."""
    _, valid = global_slots(torch.as_tensor(kind))
    local_o, local_r, glob_o, glob_r = ours
    for layer, (a, b) in enumerate(zip(local_o, local_r, strict=True)):
        assert a.shape == b.shape, f"{what} attentions[{layer}] shape {a.shape} != {b.shape}"
        assert_close(a, b, budget, what=f"{what} attentions[{layer}]")
    if glob_r is None:
        assert glob_o is None
        return
    for layer, (a, b) in enumerate(zip(glob_o, glob_r, strict=True)):
        assert a.shape == b.shape, f"{what} global_attentions[{layer}] shape {a.shape} != {b.shape}"
        slots = valid[:, None, None, :].expand_as(a)
        assert_close(a[slots], b[slots], budget, what=f"{what} global_attentions[{layer}] valid slots")
        assert (a[~slots] == 0).all(), "unused global slots must be exactly 0"


# ------------------------------------------------------------------------------------------ full model vs HF
@given(model_cases(hf_compatible=True))
def test_conditional_generation_matches_hf(case):
    weights = case.weights()
    ours, hf = both(case.config, weights, case.architecture)
    inputs = tensors(case.inputs)
    kwargs = dict(inputs, output_attentions=True, output_hidden_states=True, use_cache=True)
    ref = run_hf(hf, **kwargs)
    out = ours(**kwargs)
    budget = hf_budget(case.weight_std)
    assert_close(out.logits, ref.logits, budget=budget, what="logits")
    if "labels" in inputs and (inputs["labels"] != -100).any():
        assert_close(out.loss, ref.loss, budget=budget, what="loss")
    assert_close(out.encoder_last_hidden_state, ref.encoder_last_hidden_state, budget=budget, what="encoder output")
    for name in ("encoder_hidden_states", "decoder_hidden_states", "decoder_attentions", "cross_attentions"):
        for layer, (a, b) in enumerate(zip(getattr(out, name), getattr(ref, name), strict=True)):
            assert_close(a, b, budget=budget, what=f"{name}[{layer}]")
    kind = inputs["attention_mask"] * (inputs["global_attention_mask"] + 1)
    kind = torch.nn.functional.pad(kind, (0, (-kind.shape[1]) % case.config.max_window))
    assert_encoder_attentions((out.encoder_attentions, ref.encoder_attentions, out.encoder_global_attentions,
                               ref.encoder_global_attentions), kind,
                              budget=budget)


@given(model_cases(hf_compatible=True, with_head_masks=False), st.integers(1, 3))
def test_incremental_decoding_matches_hf_and_full_pass(case, split):
    """Decoding in two calls through past_key_values gives the one-call logits, and HF's cache tensors."""
    weights = case.weights()
    ours, hf = both(case.config, weights, case.architecture)
    inputs = tensors(case.inputs)
    inputs.pop("labels", None)
    inputs.pop("decoder_attention_mask", None)
    dec = inputs.pop("decoder_input_ids")
    split = min(split, dec.shape[1])
    full = ours(**inputs, decoder_input_ids=dec).logits
    first = ours(**inputs, decoder_input_ids=dec[:, :split], use_cache=True)
    ref_first = run_hf(hf, **inputs, decoder_input_ids=dec[:, :split], use_cache=True)
    ref_cache = ref_first.past_key_values.to_legacy_cache()
    for layer, (a, b) in enumerate(zip(first.past_key_values, ref_cache, strict=True)):
        for i in range(4):
            assert_close(a[i], b[i], hf_budget(case.weight_std), what=f"past_key_values[{layer}][{i}]")
    logits = [first.logits]
    past = first.past_key_values
    encoder_outputs = (first.encoder_last_hidden_state,)
    for t in range(split, dec.shape[1]):
        step = ours(encoder_outputs=encoder_outputs, attention_mask=inputs["attention_mask"],
                    decoder_input_ids=dec[:, t:t + 1], past_key_values=past, use_cache=True)
        past = step.past_key_values
        logits.append(step.logits)
    assert_close(torch.cat(logits, dim=1), full, budget=1e-10, what="incremental vs full logits")


@pytest.mark.parametrize("architecture", ["LEDModel", "LEDForSequenceClassification", "LEDForQuestionAnswering"])
@given(data=st.data())
def test_other_heads_match_hf(architecture, data):
    config = data.draw(led_configs(hf_compatible=True))
    inputs = tensors(data.draw(encoder_inputs(config, inside_padding=False)))
    # The decoder reads the shifted input ids: keep them within its position table.
    inputs = {k: v[:, : config.max_decoder_position_embeddings] for k, v in inputs.items()}
    weights = random_weights(config, architecture, seed=data.draw(st.integers(0, 99)), std=0.3)
    ours, hf = both(config, weights, architecture)
    kwargs = dict(inputs)
    if architecture == "LEDForSequenceClassification":
        kwargs["input_ids"][:, -1] = config.eos_token_id  # one eos per row, last position
        kwargs["input_ids"][:, :-1] = torch.where(kwargs["input_ids"][:, :-1] == config.eos_token_id, 0,
                                                  kwargs["input_ids"][:, :-1])
        kwargs["labels"] = torch.tensor(data.draw(st.lists(st.integers(0, config.num_labels - 1),
                                                           min_size=len(kwargs["input_ids"]),
                                                           max_size=len(kwargs["input_ids"]))))
    if architecture == "LEDForQuestionAnswering":
        n = kwargs["input_ids"].shape
        kwargs["start_positions"] = torch.randint(0, n[1] + 2, (n[0],))
        kwargs["end_positions"] = torch.randint(0, n[1] + 2, (n[0],))
    ref = run_hf(hf, **kwargs)
    out = ours(**kwargs)
    for name in ("last_hidden_state", "logits", "start_logits", "end_logits", "loss"):
        if getattr(ref, name, None) is not None and not torch.isnan(getattr(ref, name)).any():
            assert_close(getattr(out, name), getattr(ref, name), what=name)
    assert_close(out.encoder_last_hidden_state, ref.encoder_last_hidden_state, what="encoder output")


def test_get_encoder_and_tuple_encoder_outputs():
    config = LEDConfig(vocab_size=30, d_model=8, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                       decoder_attention_heads=2, encoder_ffn_dim=8, decoder_ffn_dim=8, attention_window=[4, 8],
                       max_encoder_position_embeddings=32, max_decoder_position_embeddings=16)
    weights = random_weights(config, seed=3, std=0.3)
    ours, hf = both(config, weights, "LEDForConditionalGeneration")
    ids = torch.tensor([[0, 5, 6, 7, 8, 9, 2], [0, 5, 6, 2, 1, 1, 1]])
    mask = (ids != 1).long()
    glob = torch.zeros_like(ids)
    glob[0, [0, 3]] = 1
    glob[1, 0] = 1
    enc = ours.get_encoder()(input_ids=ids, attention_mask=mask, global_attention_mask=glob,
                             output_attentions=True, output_hidden_states=True)
    with hf_dtype_scope(torch.float64):
        ref = hf.get_encoder()(input_ids=ids, attention_mask=mask, global_attention_mask=glob,
                               output_attentions=True, output_hidden_states=True)
    assert_close(enc.last_hidden_state, ref.last_hidden_state, what="encoder")
    assert len(enc.hidden_states) == 3 and enc.hidden_states[0].shape == (2, 7, 8)
    kind = torch.nn.functional.pad(mask * (glob + 1), (0, 1))
    assert_encoder_attentions((enc.attentions, ref.attentions, enc.global_attentions, ref.global_attentions), kind)
    dec = torch.tensor([[2, 0, 5], [2, 0, 6]])
    via_tuple = ours(encoder_outputs=(enc.last_hidden_state,), attention_mask=mask, decoder_input_ids=dec).logits
    via_object = ours(encoder_outputs=enc, attention_mask=mask, decoder_input_ids=dec).logits
    direct = ours(input_ids=ids, attention_mask=mask, global_attention_mask=glob, decoder_input_ids=dec).logits
    assert torch.equal(via_tuple, direct) and torch.equal(via_object, direct)
    assert enc[0] is enc.last_hidden_state


def test_long_inputs_take_the_blocked_feed_forward_and_match_hf():
    """CPU inference runs the encoder FFN in row blocks once batch x seq exceeds led_torch.encoder._FFN_ROWS;
    2 x 700 tokens = 1,400 rows: two full blocks and a partial one, padding and global tokens inside."""
    import led_torch.encoder as encoder_module

    config = LEDConfig(vocab_size=50, d_model=16, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                       decoder_attention_heads=2, encoder_ffn_dim=40, decoder_ffn_dim=8, attention_window=[8, 16],
                       max_encoder_position_embeddings=1024, max_decoder_position_embeddings=16)
    assert 2 * 700 > 2 * encoder_module._FFN_ROWS
    weights = random_weights(config, seed=5, std=0.3)
    ours, hf = both(config, weights, "LEDForConditionalGeneration")
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 50, (2, 700), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 650:] = 0
    glob = torch.zeros_like(ids)
    glob[:, 0] = 1
    glob[0, 399] = 1
    kwargs = dict(input_ids=ids, attention_mask=mask, global_attention_mask=glob)
    with hf_dtype_scope(torch.float64):
        ref = hf.get_encoder()(**kwargs).last_hidden_state
    with torch.no_grad():
        blocked = ours.get_encoder()(**kwargs).last_hidden_state
        assert_close(blocked, ref, what="float64 encoder, blocked FFN")
        ours32 = LEDForConditionalGeneration.from_weights(config, weights, dtype=torch.float32)
        blocked32 = ours32.get_encoder()(**kwargs).last_hidden_state
        original, encoder_module._FFN_ROWS = encoder_module._FFN_ROWS, 10**9
        try:
            whole32 = ours32.get_encoder()(**kwargs).last_hidden_state
        finally:
            encoder_module._FFN_ROWS = original
    assert_close(blocked32, whole32, budget=1e-6, what="float32 encoder, blocked vs one-pass FFN")
    assert_close(blocked32, ref, budget=1e-5, what="float32 encoder, blocked FFN vs HF float64")


# ------------------------------------------------------------------------------------------ beyond HF's limits
def dense_backend(q, k, v, gq, gk, gv, kind, window):
    """parity.gate.reference as an attention backend (float64 context in the input dtype)."""
    return reference_attention(q, k, v, gq, gk, gv, kind, window).to(q.dtype)


@given(data=st.data())
def test_any_windows_match_the_reference(data):
    """Window 2, windows wider than the text, per-layer windows that do not divide each other."""
    import led_torch.backends as backends_module

    config = data.draw(led_configs(hf_compatible=False))
    inputs = tensors(data.draw(encoder_inputs(config)))
    weights = random_weights(config, "LEDModel", seed=data.draw(st.integers(0, 99)), std=0.3)
    model = LEDModel.from_weights(config, weights, dtype=torch.float64, attn_implementation="banded")
    out = model.get_encoder()(**inputs).last_hidden_state
    original = backends_module.get_backend
    backends_module.get_backend = lambda name: dense_backend
    try:
        ref = model.get_encoder()(**inputs).last_hidden_state
    finally:
        backends_module.get_backend = original
    assert_close(out, ref, budget=1e-10, what=f"windows {config.layer_windows}")


@given(data=st.data())
def test_global_rows_from_states_give_the_references_encoder(data):
    """CPU inference with few global tokens skips the global key/value projections of every token
    (rule.global_rows_from_states): the encoder output is the reference's, and the shortcut is taken exactly
    where it applies (global tokens present, 2 x heads x most globals per row <= d_model, no gradients)."""
    import led_torch.backends as backends_module
    import led_torch.encoder as encoder_module

    config = data.draw(led_configs(hf_compatible=False))
    inputs = tensors(data.draw(encoder_inputs(config)))
    weights = random_weights(config, "LEDModel", seed=data.draw(st.integers(0, 99)), std=0.3)
    model = LEDModel.from_weights(config, weights, dtype=torch.float64, attn_implementation="banded")
    calls = []
    original_rows, original_backend = encoder_module.global_rows_from_states, backends_module.get_backend

    def counted(*args, **kwargs):
        calls.append(1)
        return original_rows(*args, **kwargs)

    encoder_module.global_rows_from_states = counted
    try:
        with torch.no_grad():
            out = model.get_encoder()(**inputs).last_hidden_state
        backends_module.get_backend = lambda name: dense_backend
        ref = model.get_encoder()(**inputs).last_hidden_state  # gradients recorded: no shortcut
    finally:
        encoder_module.global_rows_from_states = original_rows
        backends_module.get_backend = original_backend
    kinds = token_kinds(inputs["attention_mask"], inputs.get("global_attention_mask"))
    most = int((kinds == GLOBAL).sum(dim=1).max())
    expected = most > 0 and 2 * config.encoder_attention_heads * most <= config.d_model
    assert bool(calls) == expected
    assert len(calls) in (0, config.encoder_layers)
    event(f"global rows from the hidden states: {expected}")
    assert_close(out, ref, budget=1e-10, what="global rows from the hidden states")


# ------------------------------------------------------------------------------------------ dtypes
# Budgets against float64 on this tiny random model (std 0.3); measured on CPU (torch 2.13): float32 3.5e-7,
# bfloat16 1.5e-2, float16 2.0e-3 (encoder output; logits lower). Budgets leave ~3x headroom.
LOW_PRECISION_BUDGETS = {torch.float32: 1e-5, torch.bfloat16: 0.05, torch.float16: 0.006}


@pytest.mark.parametrize("dtype", list(LOW_PRECISION_BUDGETS))
def test_low_precision_against_float64(dtype):
    config = LEDConfig(vocab_size=50, d_model=16, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                       decoder_attention_heads=4, encoder_ffn_dim=32, decoder_ffn_dim=32, attention_window=[4, 8],
                       max_encoder_position_embeddings=64, max_decoder_position_embeddings=32)
    weights = random_weights(config, seed=11, std=0.3)
    ids = torch.randint(3, 50, (2, 21), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 15:] = 0
    glob = torch.zeros_like(ids)
    glob[:, 0] = 1
    dec = torch.randint(3, 50, (2, 7), generator=torch.Generator().manual_seed(1))
    kwargs = dict(input_ids=ids, attention_mask=mask, global_attention_mask=glob, decoder_input_ids=dec)
    ref = LEDForConditionalGeneration.from_weights(config, weights, dtype=torch.float64)(**kwargs)
    out = LEDForConditionalGeneration.from_weights(config, weights, dtype=dtype)(**kwargs)
    assert out.logits.dtype == dtype
    budget = LOW_PRECISION_BUDGETS[dtype]
    assert_close(out.encoder_last_hidden_state, ref.encoder_last_hidden_state, budget, f"{dtype} encoder")
    assert_close(out.logits, ref.logits, budget, f"{dtype} logits")


def test_bfloat16_global_rows_from_the_hidden_states_lose_no_more_than_the_projections():
    """bfloat16 CPU inference takes the global rows from the hidden states (in float32): taken in every layer,
    and its encoder output is as close to float64 as the same forward's with the global projections."""
    import led_torch.encoder as encoder_module

    config = LEDConfig(vocab_size=50, d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=4,
                       decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, attention_window=[4, 8],
                       max_encoder_position_embeddings=64, max_decoder_position_embeddings=32)
    weights = random_weights(config, seed=5, std=0.3)
    ids = torch.randint(3, 50, (2, 29), generator=torch.Generator().manual_seed(2))
    mask, glob = torch.ones_like(ids), torch.zeros_like(ids)
    mask[1, 20:] = 0
    glob[:, [0, 9]] = 1
    inputs = dict(input_ids=ids, attention_mask=mask, global_attention_mask=glob)
    exact = LEDModel.from_weights(config, weights, dtype=torch.float64).get_encoder()(**inputs).last_hidden_state
    model = LEDModel.from_weights(config, weights, dtype=torch.bfloat16)
    calls, original = [], encoder_module.global_rows_from_states

    def counted(*args, **kwargs):
        calls.append(args[1].dtype)  # the hidden states' dtype it ran in
        return original(*args, **kwargs)

    with torch.no_grad(), mock.patch.object(encoder_module, "global_rows_from_states", counted):
        shortcut = model.get_encoder()(**inputs).last_hidden_state
        with mock.patch.object(encoder_module, "global_rows_pay_from_states", lambda *args: False):
            projected = model.get_encoder()(**inputs).last_hidden_state
    assert calls == [torch.float32] * config.encoder_layers
    valid = mask.bool()[..., None]
    errors = [float((out.double() - exact).abs().masked_fill(~valid, 0).max()) for out in (shortcut, projected)]
    assert errors[0] <= 1.25 * errors[1] + 1e-3, errors
    assert_close(shortcut, exact, LOW_PRECISION_BUDGETS[torch.bfloat16], "bfloat16 global rows from the states")


# ------------------------------------------------------------------------------------------ degenerate inputs
def _small(window=4, **extra):
    config = LEDConfig(vocab_size=30, d_model=8, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                       decoder_attention_heads=2, encoder_ffn_dim=8, decoder_ffn_dim=8, attention_window=window,
                       max_encoder_position_embeddings=64, max_decoder_position_embeddings=16, **extra)
    return config, LEDForConditionalGeneration.from_weights(config, random_weights(config, seed=0, std=0.3),
                                                            dtype=torch.float64)


@pytest.mark.parametrize("case", ["padded_row", "all_global", "one_token", "window_wider_than_seq"])
def test_degenerate_inputs_stay_finite(case):
    config, model = _small(window=40 if case == "window_wider_than_seq" else 4)
    ids = torch.tensor([[0, 5, 6, 7, 2], [0, 8, 9, 2, 1]])
    mask = torch.ones_like(ids)
    glob = torch.zeros_like(ids)
    if case == "padded_row":
        mask[1] = 0
    if case == "all_global":
        glob[:] = 1
    if case == "one_token":
        ids, mask, glob = ids[:, :1], mask[:, :1], glob[:, :1]
    out = model(input_ids=ids, attention_mask=mask, global_attention_mask=glob, output_attentions=True,
                decoder_input_ids=torch.tensor([[2, 0], [2, 0]]))
    assert torch.isfinite(out.logits).all()
    assert torch.isfinite(out.encoder_last_hidden_state).all()
    assert all(torch.isfinite(a).all() for a in out.encoder_attentions)
    if case == "padded_row":
        assert (out.encoder_attentions[0][1] == 0).all()


# ------------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize("kwargs,error,match", [
    (dict(input_ids=torch.tensor([[0, 30]])), ValueError, "input_ids.*30"),
    (dict(input_ids=torch.tensor([[0, -1]])), ValueError, "input_ids"),
    (dict(input_ids=torch.tensor([[0.0, 1.0]])), TypeError, "input_ids"),
    (dict(input_ids=torch.zeros(1, 0, dtype=torch.long)), ValueError, "input_ids"),
    (dict(input_ids=torch.tensor([[0, 5]]), attention_mask=torch.ones(1, 3)), ValueError, "attention_mask"),
    (dict(input_ids=torch.tensor([[0, 5]]), attention_mask=torch.tensor([[1, 2]])), ValueError, "attention_mask"),
    (dict(input_ids=torch.tensor([[0, 5]]), global_attention_mask=torch.ones(2, 2)), ValueError,
     "global_attention_mask"),
    (dict(input_ids=torch.tensor([[0, 5]]), inputs_embeds=torch.zeros(1, 2, 8)), ValueError, "input_ids"),
    (dict(input_ids=torch.zeros(1, 65, dtype=torch.long)), ValueError, "max_encoder_position_embeddings"),
    (dict(input_ids=torch.tensor([[0, 5]]), decoder_input_ids=torch.tensor([[2], [2]])), ValueError, "batch"),
    (dict(input_ids=torch.tensor([[0, 5]]), labels=torch.tensor([[3, 31]])), ValueError, "labels.*31"),
    (dict(input_ids=torch.tensor([[0, 5]]), decoder_input_ids=torch.zeros(1, 17, dtype=torch.long)), ValueError,
     "max_decoder_position_embeddings"),
    (dict(input_ids=torch.tensor([[0, 5]]), head_mask=torch.ones(2, 2)), ValueError, "head_mask"),
])
def test_bad_inputs_raise_naming_the_argument(kwargs, error, match):
    _, model = _small()
    with pytest.raises(error, match=match):
        model(**kwargs)


def test_generate_validation():
    _, model = _small()
    ids = torch.tensor([[0, 5, 2]])
    with pytest.raises(ValueError, match="num_return_sequences"):
        model.generate(ids, num_beams=2, num_return_sequences=3, max_length=5)
    with pytest.raises(ValueError, match="max_length"):
        model.generate(ids, max_length=1)
    with pytest.raises(ValueError, match="max_decoder_position_embeddings"):
        model.generate(ids, max_length=40)
    with pytest.raises(ValueError, match="early_stopping"):
        model.generate(ids, num_beams=2, early_stopping="sometimes", max_length=5)


# ------------------------------------------------------------------------------------------ checkpoints
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_save_and_load_round_trip(tmp_path, dtype):
    config, model = _small()
    model = model.to(dtype)
    model.save_pretrained(tmp_path)
    loaded = LEDForConditionalGeneration.from_pretrained(tmp_path, dtype=dtype)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    base = LEDModel.from_pretrained(tmp_path, dtype=dtype)
    assert torch.equal(base.encoder.layers[0].fc1.weight, model.led.encoder.layers[0].fc1.weight)
    assert loaded.lm_head.weight is loaded.led.shared.weight is loaded.led.encoder.embed_tokens.weight
    # pytorch_model.bin (read with torch.load(weights_only=True))
    (tmp_path / "model.safetensors").unlink()
    torch.save({k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}, tmp_path / "pytorch_model.bin")
    from_bin = LEDForConditionalGeneration.from_pretrained(tmp_path, dtype=dtype)
    assert torch.equal(from_bin.final_logits_bias, model.final_logits_bias)
    assert torch.equal(from_bin.led.shared.weight, model.led.shared.weight)


def test_state_dict_names_are_hf_names():
    config, model = _small()
    hf = hf_model(config, random_weights(config, seed=0), "LEDForConditionalGeneration")
    assert list(model.state_dict()) == list(hf.state_dict()) or set(model.state_dict()) == set(hf.state_dict())
    for name, t in hf.state_dict().items():
        assert model.state_dict()[name].shape == t.shape, name


@pytest.mark.parametrize("architecture", ["LEDModel", "LEDForConditionalGeneration", "LEDForQuestionAnswering"])
def test_from_weights_is_exact_in_float64(architecture):
    config, _ = _small()
    weights = random_weights(config, architecture, seed=7)
    model = {"LEDModel": LEDModel, "LEDForConditionalGeneration": LEDForConditionalGeneration,
             "LEDForQuestionAnswering": LEDForQuestionAnswering}[architecture].from_weights(config, weights,
                                                                                             dtype=torch.float64)
    state = model.state_dict()
    for name, value in weights.items():
        assert state[name].dtype == torch.float64
        assert np.array_equal(state[name].numpy(), value), name


# ------------------------------------------------------------------------------------------ argument plumbing
@pytest.mark.parametrize("name", ["LEDModel", "LEDForConditionalGeneration", "LEDForSequenceClassification",
                                  "LEDForQuestionAnswering"])
def test_forwards_keep_hfs_keyword_names_and_share_one_set_of_inputs(name):
    """Both packages' forwards take HF's keyword names, with Seq2SeqInputs' defaults for the shared ones."""
    import dataclasses
    import inspect

    import transformers

    import led_ref
    import led_torch
    from led_ref.io.inputs import Seq2SeqInputs

    hf = set(inspect.signature(getattr(transformers, name).forward).parameters)
    shared = {f.name: f.default for f in dataclasses.fields(Seq2SeqInputs)}
    for forward in (getattr(led_ref, name).__call__, getattr(led_torch, name).forward):
        params = inspect.signature(forward).parameters
        # led_ref's classification and QA heads also take past_key_values (HF's do not; nothing else is extra)
        assert set(params) - {"self", "past_key_values"} <= hf, f"{forward.__qualname__} takes names HF lacks"
        taken = {n: params[n].default for n in shared if n in params}
        assert set(shared) - set(taken) <= {"past_key_values"}, f"{forward.__qualname__} lacks shared inputs"
        assert taken == {n: shared[n] for n in taken}


def test_seq2seq_inputs_pick_the_shared_arguments_by_name():
    from led_ref.io.inputs import Seq2SeqInputs

    ids = torch.tensor([[0, 5]])
    inputs = Seq2SeqInputs.pick({"self": object(), "input_ids": ids, "labels": ids, "use_cache": True})
    assert inputs.input_ids is ids and inputs.use_cache is True and inputs.output_attentions is False
    assert inputs.but(use_cache=False).use_cache is False and inputs.use_cache is True
    assert inputs.kwargs()["input_ids"] is ids and "labels" not in inputs.kwargs()
