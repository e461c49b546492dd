"""led_ref's encoder-decoder against HF's LED (every output field), a plain encoder over parity.gate.reference,
and its own incremental decoding. Helpers here (`run_hf`, `assert_matches_hf`) are reused by the other test_ref_*
files."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from led_ref import LEDConfig, LEDForConditionalGeneration, LEDModel
from led_ref.functional import activation, ffn, layer_norm
from led_ref.init import random_weights
from led_ref.io.outputs import LEDEncoderBaseModelOutput
from parity.gate.reference import reference_attention
from parity.harness.strategies import encoder_inputs, led_configs, model_cases
from parity.hf.models import defined_loss
from tests.hf_oracle import hf_dtype_scope, hf_model, scaled_error, to_numpy, torch

HF_TOL = 1e-6  # HF takes its encoder softmaxes in float32 (docs/contract.md)
SELF_TOL = 1e-9  # float64 against float64


def hf_tolerance(weight_std: float) -> float:
    """HF rounds every encoder attention score to float32 before its softmax: an error of |score| * 6e-8.
    Weights of std 1.0 give scores near 100, so probabilities (and all that follows) move by up to ~1e-6
    there; 1e-6 holds for the smaller stds."""
    return HF_TOL if weight_std <= 0.3 else 10 * HF_TOL


# ------------------------------------------------------------------------------------------- helpers
def run_hf(model, inputs: dict, **flags):
    """Call an HF model on numpy inputs in float64; returns its output object."""
    with hf_dtype_scope(torch.float64):
        return model(**{k: torch.as_tensor(v) for k, v in inputs.items()}, **flags)


def hf_field(out, name: str):
    value = getattr(out, name, None)
    if name == "past_key_values" and value is not None and hasattr(value, "to_legacy_cache"):
        value = value.to_legacy_cache()
    if isinstance(value, float) or (torch.is_tensor(value) and value.ndim == 0):
        return float(value)
    return to_numpy(value)


def global_counts(inputs: dict) -> np.ndarray:
    """How many global tokens each row has (what HF's global_attentions slots are filled for)."""
    batch_seq = np.shape(inputs["input_ids"])
    mask = np.asarray(inputs.get("attention_mask", np.ones(batch_seq, np.int64)))
    glob = np.asarray(inputs.get("global_attention_mask", np.zeros(batch_seq, np.int64)))
    return (mask * glob).sum(axis=1)


def assert_close(ours, theirs, name: str, tol: float) -> float:
    """Recursively compare arrays / tuples; returns the worst scaled error."""
    if isinstance(ours, tuple):
        assert isinstance(theirs, (tuple, list)) and len(ours) == len(theirs), f"{name}: lengths differ"
        return max([assert_close(a, b, f"{name}[{i}]", tol) for i, (a, b) in enumerate(zip(ours, theirs, strict=True))],
                   default=0.0)
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert ours.shape == theirs.shape, f"{name}: shape {ours.shape} != HF {theirs.shape}"
    undefined = np.isnan(theirs)  # a loss over labels that are all -100 is 0/0 for both
    assert np.array_equal(np.isnan(ours), undefined), f"{name}: NaN where HF has none (or the reverse)"
    assert np.all(np.isfinite(ours[~undefined])), f"{name}: non-finite values"
    if undefined.all():
        return 0.0
    err = scaled_error(ours[~undefined], theirs[~undefined])
    assert err < tol, f"{name}: scaled error {err:.3g} >= {tol}"
    return err


def assert_global_attentions_match(ours, theirs, counts: np.ndarray, tol: float) -> None:
    """Slots s < counts[b] must match HF; the others (HF garbage) must be zero here (docs/contract.md)."""
    assert len(ours) == len(theirs)
    for layer, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert a.shape == b.shape, f"global_attentions[{layer}]: {a.shape} != {b.shape}"
        for row, count in enumerate(counts):
            assert_close(a[row, :, :, :count], b[row, :, :, :count], f"global_attentions[{layer}][{row}]", tol)
            assert np.all(a[row, :, :, count:] == 0)


def assert_matches_hf(ours, theirs, inputs: dict, tol: float = HF_TOL) -> float:
    """Every field of our output equals HF's; both set the same fields. Returns the worst error."""
    their_keys = [k for k in theirs.keys() if getattr(theirs, k) is not None]
    assert sorted(ours.keys()) == sorted(their_keys), f"fields {ours.keys()} != HF {their_keys}"
    worst = 0.0
    for name in ours.keys():
        if name in ("encoder_global_attentions", "global_attentions"):
            assert_global_attentions_match(ours[name], hf_field(theirs, name), global_counts(inputs), tol)
        else:
            expected = hf_field(theirs, name)
            if name == "loss":  # HF's NaN over labels that are all -100 is defined as 0 here
                expected = defined_loss(expected, inputs)
            worst = max(worst, assert_close(ours[name], expected, name, tol))
    return worst


# ------------------------------------------------------------------------------------------- HF parity
@given(model_cases(architectures=("LEDModel", "LEDForConditionalGeneration"), hf_compatible=True))
def test_every_output_field_matches_hf(case):
    weights = case.weights()
    cls = LEDModel if case.architecture == "LEDModel" else LEDForConditionalGeneration
    inputs = dict(case.inputs)
    if case.architecture == "LEDModel":
        inputs.pop("labels", None)
    ours = cls(case.config, weights)(**inputs, output_attentions=True, output_hidden_states=True)
    theirs = run_hf(hf_model(case.config, weights, case.architecture), inputs,
                    output_attentions=True, output_hidden_states=True)
    assert_matches_hf(ours, theirs, inputs, hf_tolerance(case.weight_std))


@pytest.mark.parametrize("case", ["fully_padded_row", "all_global", "window_wider_than_text", "one_token"])
def test_degenerate_inputs_are_finite_and_match_hf(case):
    config = LEDConfig(vocab_size=20, d_model=8, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                       decoder_attention_heads=2, encoder_ffn_dim=8, decoder_ffn_dim=8, attention_window=[4, 8],
                       max_encoder_position_embeddings=32, max_decoder_position_embeddings=8)
    weights = random_weights(config, "LEDForConditionalGeneration", seed=3, std=0.3)
    ids = np.array([[5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 15, 16]])
    mask, glob = np.ones_like(ids), np.zeros_like(ids)
    if case == "fully_padded_row":
        mask[1] = 0
        glob[0, 2] = 1
    elif case == "all_global":
        glob[:] = 1
    elif case == "window_wider_than_text":
        ids, mask, glob = ids[:, :3], mask[:, :3], glob[:, :3]
    else:
        ids, mask, glob = ids[:, :1], mask[:, :1], glob[:, :1]
    inputs = {"input_ids": ids, "attention_mask": mask, "global_attention_mask": glob,
              "decoder_input_ids": np.array([[2, 5, 6], [2, 7, 8]])}
    ours = LEDForConditionalGeneration(config, weights)(**inputs, output_attentions=True, output_hidden_states=True)
    theirs = run_hf(hf_model(config, weights, "LEDForConditionalGeneration"), inputs,
                    output_attentions=True, output_hidden_states=True)
    assert assert_matches_hf(ours, theirs, inputs) < HF_TOL


# ------------------------------------------------------------------------------------------- incremental decoding
@given(model_cases(architectures=("LEDForConditionalGeneration",)), st.data())
def test_incremental_decoding_equals_full_pass(case, data):
    """Feeding the decoder a prefix, then chunks/one token at a time with the cache, gives the full pass."""
    model = LEDForConditionalGeneration(case.config, case.weights())
    inputs = {k: v for k, v in case.inputs.items() if k not in ("labels", "decoder_attention_mask")}
    full = model(**inputs, use_cache=True)
    dec_ids = inputs.pop("decoder_input_ids")
    length = dec_ids.shape[1]
    cuts = sorted(data.draw(st.sets(st.integers(1, length - 1), max_size=3)) if length > 1 else set())
    pieces = np.split(dec_ids, cuts, axis=1)
    encoder_outputs = model.get_encoder()(inputs["input_ids"], inputs["attention_mask"],
                                          inputs["global_attention_mask"], inputs.get("head_mask"))
    past, logits = None, []
    for piece in pieces:
        out = model(**inputs, decoder_input_ids=piece, encoder_outputs=encoder_outputs, past_key_values=past,
                    use_cache=True)
        past = out.past_key_values
        logits.append(out.logits)
    assert scaled_error(np.concatenate(logits, axis=1), full.logits) < SELF_TOL
    for layer_ours, layer_full in zip(past, full.past_key_values, strict=True):
        for a, b in zip(layer_ours, layer_full, strict=True):
            assert scaled_error(a, b) < SELF_TOL


def test_chunked_decoding_with_masks_matches_hf():
    """A cached prefix, then a 2-token chunk with a decoder mask over all 5 positions; a left-padded decoder
    row and a fully padded encoder row (HF spreads such rows evenly over the keys masked once)."""
    config = LEDConfig(vocab_size=30, d_model=8, encoder_layers=1, decoder_layers=2, encoder_attention_heads=2,
                       decoder_attention_heads=2, encoder_ffn_dim=8, decoder_ffn_dim=8, attention_window=4)
    weights = random_weights(config, "LEDForConditionalGeneration", seed=1, std=0.3)
    model, hf = LEDForConditionalGeneration(config, weights), hf_model(config, weights, "LEDForConditionalGeneration")
    ids = np.array([[5, 6, 7, 8, 2], [9, 10, 2, 1, 1]])
    dec = np.array([[2, 5, 6, 7, 8], [2, 9, 10, 11, 12]])
    dec_mask = np.array([[1, 1, 1, 1, 1], [0, 1, 1, 1, 0]])
    for enc_mask in ((ids != 1).astype(int), np.array([[1, 1, 1, 1, 1], [0, 0, 0, 0, 0]])):
        first = {"input_ids": ids, "attention_mask": enc_mask, "decoder_input_ids": dec[:, :3],
                 "decoder_attention_mask": dec_mask[:, :3]}
        ours1, theirs1 = model(**first), run_hf(hf, first)
        second = {**first, "decoder_input_ids": dec[:, 3:], "decoder_attention_mask": dec_mask}
        ours2 = model(**second, past_key_values=ours1.past_key_values, output_attentions=True)
        theirs2 = run_hf(hf, second, past_key_values=theirs1.past_key_values, output_attentions=True)
        assert_matches_hf(ours2, theirs2, second)
        whole = {**first, "decoder_input_ids": dec, "decoder_attention_mask": dec_mask}
        assert_matches_hf(model(**whole, output_attentions=True), run_hf(hf, whole, output_attentions=True), whole)


# ------------------------------------------------------------------------------------------- dense encoder
def dense_encoder(weights: dict, config: LEDConfig, ids, attention_mask, global_mask, head_mask=None):
    """An encoder written plainly: embeddings, then per layer the attention of parity.gate.reference (the contract
    by definition, float64) on this layer's projections, output projection, residuals, norms, feed-forward.
    No padding to the window: it cannot matter.
    """
    kind = attention_mask * (global_mask + 1)
    w = {k: v for k, v in weights.items()}
    seq = ids.shape[1]
    x = w["shared.weight"][ids] + w["encoder.embed_positions.weight"][:seq]
    x = layer_norm(x, w, "encoder.layernorm_embedding")
    states = [x]
    heads = config.encoder_attention_heads
    hd = config.d_model // heads
    act = activation(config.activation_function)
    for layer, window in enumerate(config.layer_windows):
        p = {k.split(f"encoder.layers.{layer}.", 1)[1]: v for k, v in w.items()
             if k.startswith(f"encoder.layers.{layer}.")}

        def proj(name, h, p=p):
            name = f"self_attn.longformer_self_attn.{name}"
            a = h @ p[f"{name}.weight"].T + p[f"{name}.bias"]
            return a.reshape(a.shape[0], seq, heads, hd).transpose(0, 2, 1, 3)

        scale = hd**-0.5
        layer_mask = None if head_mask is None else head_mask[layer]
        context = reference_attention(proj("query", x) * scale, proj("key", x), proj("value", x),
                                      proj("query_global", x) * scale, proj("key_global", x),
                                      proj("value_global", x), kind, window, head_mask=layer_mask).numpy()
        merged = context.transpose(0, 2, 1, 3).reshape(x.shape[0], seq, config.d_model)
        attn = merged @ p["self_attn.output.weight"].T + p["self_attn.output.bias"]
        x = layer_norm(x + attn, p, "self_attn_layer_norm")
        x = layer_norm(x + ffn(x, p, act), p, "final_layer_norm")
        states.append(x)
    return states


@given(led_configs(max_heads=2, max_head_dim=3), st.data())
def test_encoder_matches_the_plain_encoder(config, data):
    """Any windows (2, non-dividing lists, wider than the text), padding anywhere, any globals."""
    weights = random_weights(config, "LEDModel", seed=data.draw(st.integers(0, 99)), std=0.5)
    inputs = data.draw(encoder_inputs(config))
    head_mask = data.draw(st.sampled_from([None, np.array([[1.0, 0.0], [0.5, 1.0]])]))
    if head_mask is not None:
        head_mask = np.resize(head_mask, (config.encoder_layers, config.encoder_attention_heads))
    model = LEDModel(config, weights)
    out = model.get_encoder()(**inputs, head_mask=head_mask, output_hidden_states=True)
    expected = dense_encoder(weights, config, inputs["input_ids"], inputs["attention_mask"],
                             inputs["global_attention_mask"], head_mask)
    real = inputs["attention_mask"].astype(bool)  # padding rows carry no meaning (and differ by design)
    for ours, ref in zip(out.hidden_states, expected, strict=True):
        assert scaled_error(ours[real], ref[real]) < SELF_TOL
    assert scaled_error(out.last_hidden_state[real], expected[-1][real]) < SELF_TOL


@given(model_cases(architectures=("LEDForConditionalGeneration",), with_head_masks=False), st.integers(1, 9))
def test_extra_right_padding_changes_nothing(case, extra):
    """Appending padding tokens (mask 0) leaves every real position's outputs unchanged."""
    model = LEDForConditionalGeneration(case.config, case.weights())
    inputs = {k: v for k, v in case.inputs.items() if k != "labels"}
    limit = case.config.max_encoder_position_embeddings
    extra = min(extra, limit - inputs["input_ids"].shape[1])
    base = model(**inputs, use_cache=False)
    padded = dict(inputs)
    for name, fill in (("input_ids", case.config.pad_token_id), ("attention_mask", 0), ("global_attention_mask", 0)):
        padded[name] = np.pad(inputs[name], ((0, 0), (0, extra)), constant_values=fill)
    out = model(**padded, use_cache=False)
    seq = inputs["input_ids"].shape[1]
    real = inputs["attention_mask"].astype(bool)
    assert scaled_error(out.encoder_last_hidden_state[:, :seq][real], base.encoder_last_hidden_state[real]) < SELF_TOL
    assert scaled_error(out.logits, base.logits) < SELF_TOL


# ------------------------------------------------------------------------------------------- API behaviour
def tiny_model(cls=LEDForConditionalGeneration, **overrides):
    config = LEDConfig(**{**dict(vocab_size=24, d_model=8, encoder_layers=2, decoder_layers=2,
                                 encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=8,
                                 decoder_ffn_dim=8, attention_window=[2, 6], max_encoder_position_embeddings=24,
                                 max_decoder_position_embeddings=10), **overrides})
    return cls(config, seed=7)


def test_encoder_outputs_object_or_tuple_give_the_same_logits():
    model = tiny_model()
    ids = np.array([[4, 5, 6, 7, 2]])
    glob = np.array([[1, 0, 0, 0, 0]])
    full = model(input_ids=ids, global_attention_mask=glob)
    enc = model.get_encoder()(input_ids=ids, global_attention_mask=glob)
    assert isinstance(enc, LEDEncoderBaseModelOutput)
    dec = {"decoder_input_ids": np.array([[2, 4, 5, 6, 7]])}
    for given_outputs in (enc, (enc.last_hidden_state,), [enc.last_hidden_state, None]):
        out = model(encoder_outputs=given_outputs, **dec)
        np.testing.assert_array_equal(out.logits, full.logits)


def test_default_decoder_inputs_are_shifted_input_ids_or_labels():
    model = tiny_model()
    c = model.config
    ids = np.array([[4, 5, 6, 2]])
    shifted = np.array([[c.decoder_start_token_id, 4, 5, 6]])
    np.testing.assert_array_equal(model(input_ids=ids).logits, model(input_ids=ids, decoder_input_ids=shifted).logits)
    labels = np.array([[7, -100, 9, 2]])
    from_labels = np.array([[c.decoder_start_token_id, 7, c.pad_token_id, 9]])
    out = model(input_ids=ids, labels=labels)
    np.testing.assert_array_equal(out.logits, model(input_ids=ids, decoder_input_ids=from_labels).logits)
    assert out.past_key_values is None  # labels switch the cache off, as in HF


def test_loss_is_mean_cross_entropy_over_kept_labels():
    model = tiny_model()
    ids = np.array([[4, 5, 6, 2], [8, 9, 2, 1]])
    labels = np.array([[7, -100, 9, 2], [3, 4, -100, -100]])
    out = model(input_ids=ids, attention_mask=(ids != 1).astype(int), labels=labels)
    logits = out.logits
    picked = [np.log(np.exp(logits[b, t]).sum()) - logits[b, t, labels[b, t]]
              for b in range(2) for t in range(4) if labels[b, t] != -100]
    assert abs(out.loss - np.mean(picked)) < 1e-12


def test_inputs_embeds_equal_input_ids():
    model = tiny_model()
    ids = np.array([[4, 5, 6, 7, 2]])
    dec = np.array([[2, 4, 5]])
    table = model.weights["led.shared.weight"]
    a = model(input_ids=ids, decoder_input_ids=dec)
    b = model(inputs_embeds=table[ids], decoder_inputs_embeds=table[dec])
    assert scaled_error(b.logits, a.logits) < SELF_TOL


def test_output_access_by_attribute_key_and_position():
    model = tiny_model()
    ids = np.array([[4, 5, 6, 2]])
    out = model(input_ids=ids)
    assert out[0] is out.logits and out["logits"] is out.logits
    assert out.loss is None and "loss" not in out
    with_loss = model(input_ids=ids, labels=ids)
    assert with_loss[0] == with_loss.loss and with_loss[1] is with_loss.logits
    with pytest.raises(KeyError):
        out["loss"]


def test_use_cache_defaults_to_config():
    ids = np.array([[4, 5, 6, 2]])
    assert tiny_model()(input_ids=ids).past_key_values is not None
    assert tiny_model(use_cache=False)(input_ids=ids).past_key_values is None
    assert tiny_model()(input_ids=ids, use_cache=False).past_key_values is None


def test_float32_model_is_close_to_float64():
    config = tiny_model().config
    ids = np.array([[4, 5, 6, 7, 2]])
    a = LEDForConditionalGeneration(config, seed=1)
    b = LEDForConditionalGeneration(config, a.weights, dtype=np.float32)
    out32 = b(input_ids=ids)
    assert out32.logits.dtype == np.float32
    assert scaled_error(out32.logits, a(input_ids=ids).logits) < 1e-4


def test_save_and_load_round_trip_and_hf_reads_it(tmp_path):
    model = tiny_model(attention_window=4)
    model.save_pretrained(tmp_path)
    again = LEDForConditionalGeneration.from_pretrained(tmp_path)
    assert again.config.to_dict() == model.config.to_dict()
    ids = np.array([[4, 5, 6, 7, 2]])
    np.testing.assert_array_equal(again(input_ids=ids).logits, model(input_ids=ids).logits)
    import transformers

    with hf_dtype_scope(torch.float64):
        hf = transformers.LEDForConditionalGeneration.from_pretrained(tmp_path, torch_dtype=torch.float64).eval()
        theirs = hf(input_ids=torch.as_tensor(ids)).logits.numpy()
    assert scaled_error(model(input_ids=ids).logits, theirs) < HF_TOL


def test_head_class_loads_a_base_checkpoint_with_a_fresh_head(tmp_path):
    from led_ref import LEDForSequenceClassification

    base = tiny_model(LEDModel)
    base.save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match="classification_head"):
        clf = LEDForSequenceClassification.from_pretrained(tmp_path)
    for name, value in base.weights.items():
        np.testing.assert_array_equal(clf.weights["led." + name], value)


def test_both_packages_give_a_base_checkpoint_the_same_fresh_head(tmp_path):
    """A head missing from the file gets led_ref.init.missing_head_weights in led_ref and in led_torch (weights
    N(0, init_std) drawn per tensor name, biases 0), so the two classify the same checkpoint alike."""
    import torch

    import led_torch
    from led_ref import LEDForSequenceClassification
    from led_ref.init import missing_head_weights

    base = tiny_model(LEDModel)
    base.save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match="classification_head"):
        ours = LEDForSequenceClassification.from_pretrained(tmp_path)
    with pytest.warns(UserWarning, match="classification_head"):
        theirs = led_torch.LEDForSequenceClassification.from_pretrained(tmp_path, dtype=torch.float64)
    state = theirs.state_dict()
    head = [name for name in ours.weights if name.startswith("classification_head.")]
    assert len(head) == 4
    for name in head:
        np.testing.assert_array_equal(ours.weights[name], state[name].numpy())
    fresh = missing_head_weights(base.config, "LEDForSequenceClassification", head)
    assert not fresh["classification_head.dense.bias"].any() and fresh["classification_head.dense.weight"].std() > 0
    ids = np.array([[0, 5, 6, 7, 2]])
    with torch.no_grad():
        torch_logits = theirs(input_ids=torch.as_tensor(ids)).logits.numpy()
    np.testing.assert_allclose(ours(input_ids=ids).logits, torch_logits, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="is not a head tensor of LEDForSequenceClassification"):
        missing_head_weights(base.config, "LEDForSequenceClassification", ["lm_head.weight"])


def test_window_padding_may_run_past_the_position_table():
    """9 tokens, window 8, 10 positions: the padded 16 do not fit, yet the real outputs are those of a model
    whose table is long enough (HF raises here; padding never reaches a real output)."""
    short = tiny_model(attention_window=8, max_encoder_position_embeddings=10)
    table = short.weights["led.encoder.embed_positions.weight"]
    long_config = LEDConfig.from_dict({**short.config.to_dict(), "max_encoder_position_embeddings": 16})
    weights = dict(short.weights)
    weights["led.encoder.embed_positions.weight"] = np.concatenate([table, np.ones((6, table.shape[1]))])
    long = LEDForConditionalGeneration(long_config, weights)
    ids = np.array([[4, 5, 6, 7, 8, 9, 10, 11, 2]])
    assert scaled_error(short(input_ids=ids).logits, long(input_ids=ids).logits) < SELF_TOL
