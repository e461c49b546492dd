"""Degenerate but valid input stays finite and means something: fully padded rows and batches, global flags on
padding, every token global, one-token sequences, windows wider than the text, labels that are all ignored.
Checked against the other implementation, against invariances that hold by construction, and against HF.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from led_ref.init import random_weights
from led_ref.io.config import LEDConfig
from tests.hf_oracle import scaled_error
from tests.reliability_cases import (
    CLASSES,
    CONFIG,
    DEC,
    IDS,
    IMPLS,
    MASK,
    Impl,
    assert_agree,
    assert_finite,
    call,
    model_for,
    with_value,
)


def _outputs(impl: Impl, architecture: str, config: LEDConfig, kwargs: dict, weights=None) -> dict[str, np.ndarray]:
    """Every float output of one forward pass (attentions included), as float64 numpy."""
    model = impl.build(architecture, config=config, weights=weights)
    out = model(**impl.arrays(kwargs), output_attentions=True, output_hidden_states=True, use_cache=False)
    flat = {}
    for name in out.keys():
        value = getattr(out, name)
        items = value if isinstance(value, tuple) else (value,)
        for i, item in enumerate(items):
            if item is not None and not isinstance(item, (float, int)):
                flat[f"{name}[{i}]"] = impl.numpy(item)
            elif isinstance(item, float):
                flat[f"{name}[{i}]"] = np.asarray(item)
    return flat


def _both(architecture: str, kwargs: dict, config: LEDConfig = CONFIG, weights=None):
    ref = _outputs(IMPLS[0], architecture, config, kwargs, weights)
    ours = _outputs(IMPLS[1], architecture, config, kwargs, weights)
    return ref, ours


# HF (and this project) leaves the key axis of global_attentions padded and fills slots without a global token
# differently; compare the rest exactly.
GLOBAL = "encoder_global_attentions"


@pytest.mark.parametrize("architecture", CLASSES)
def test_fully_padded_row_is_finite_and_has_zero_attention(architecture):
    mask = MASK.copy()
    mask[1] = 0
    glob = np.zeros_like(IDS)
    glob[0, 1] = 1
    kwargs = dict(input_ids=IDS, attention_mask=mask, global_attention_mask=glob)
    ref, ours = _both(architecture, kwargs)
    for what, out in (("led_ref", ref), ("led_torch", ours)):
        assert_finite(out, what)
        for layer in range(CONFIG.encoder_layers):
            assert np.all(out[f"encoder_attentions[{layer}]"][1] == 0), f"{what}: padded row attends"
            assert np.all(out[f"{GLOBAL}[{layer}]"][1] == 0), f"{what}: padded row has global attention"
    assert_agree(ref, ours, 1e-9, f"{architecture} padded row, led_ref vs led_torch")
    # The padded row does not change the other row: same as running row 0 alone.
    alone = _outputs(IMPLS[0], architecture, CONFIG, {k: v[:1] for k, v in kwargs.items()})
    assert scaled_error(ref["encoder_last_hidden_state[0]"][:1], alone["encoder_last_hidden_state[0]"]) < 1e-12


def test_fully_padded_batch_generates_the_same_tokens():
    mask = np.zeros_like(IDS)
    tokens = [IMPLS[i].numpy(model_for(IMPLS[i], "LEDForConditionalGeneration").generate(
        IMPLS[i].array(IDS), attention_mask=IMPLS[i].array(mask), max_length=5, num_beams=2)) for i in (0, 1)]
    np.testing.assert_array_equal(tokens[0], tokens[1])


@pytest.mark.parametrize("impl", IMPLS, ids=lambda i: i.name)
@pytest.mark.parametrize("architecture", ["LEDForConditionalGeneration", "LEDForSequenceClassification"])
def test_global_flag_on_padding_is_ignored(impl, architecture):
    base = dict(input_ids=IDS, attention_mask=MASK, global_attention_mask=with_value(np.zeros_like(IDS), (0, 1), 1))
    flagged = dict(base, global_attention_mask=with_value(base["global_attention_mask"], (1, 5), 1))  # (1, 5): padding
    a = _outputs(impl, architecture, CONFIG, base)
    b = _outputs(impl, architecture, CONFIG, flagged)
    assert_finite(b, impl.name)
    assert_agree(b, a, 1e-12, f"{impl.name}: global flag on a padding token")


def test_all_global_is_finite_agrees_and_ignores_the_window():
    """With every token global, each attends to all tokens with the global projections: the window is moot."""
    kwargs = dict(input_ids=IDS, attention_mask=MASK, global_attention_mask=np.ones_like(IDS))
    weights = random_weights(CONFIG, "LEDForConditionalGeneration", seed=3, std=0.3)
    ref, ours = _both("LEDForConditionalGeneration", kwargs, weights=weights)
    assert_finite(ref, "led_ref")
    assert_finite(ours, "led_torch")
    assert_agree(ref, ours, 1e-9, "all global, led_ref vs led_torch")
    wide = LEDConfig.from_dict(CONFIG.to_dict() | {"attention_window": [8, 6]})
    for impl, out in zip(IMPLS, (ref, ours), strict=True):
        other = _outputs(impl, "LEDForConditionalGeneration", wide, kwargs, weights)
        for name in ("logits[0]", "encoder_last_hidden_state[0]"):
            assert scaled_error(other[name], out[name]) < 1e-9, f"{impl.name}: {name} depends on the window"


def test_window_wider_than_sequence_equals_any_covering_window():
    """A window wider than the text sees every token: windows 12 and 40 over 6 tokens give the same result."""
    kwargs = dict(input_ids=IDS, attention_mask=MASK, global_attention_mask=with_value(np.zeros_like(IDS), (0, 0), 1))
    configs = {window: LEDConfig.from_dict(CONFIG.to_dict() | {"attention_window": window,
                                                                "max_encoder_position_embeddings": 40})
               for window in (12, 40)}
    weights = random_weights(configs[40], "LEDForConditionalGeneration", seed=4, std=0.3)
    results = {window: _both("LEDForConditionalGeneration", kwargs, config, weights)
               for window, config in configs.items()}
    for out in (*results[12], *results[40]):
        assert_finite(out, "window > sequence")
    for i, impl in enumerate(IMPLS):
        for name in ("logits[0]", "encoder_last_hidden_state[0]"):
            assert scaled_error(results[40][i][name], results[12][i][name]) < 1e-9, f"{impl.name}: {name}"
    assert_agree(*results[40], 1e-9, "window 40, led_ref vs led_torch", skip=("encoder_attentions",))


@pytest.mark.parametrize("global_first", [False, True])
@pytest.mark.parametrize("architecture", CLASSES)
def test_one_token_sequence(architecture, global_first):
    ids = np.array([[2], [2]])  # a lone eos, so classification can pool
    kwargs = dict(input_ids=ids, global_attention_mask=np.full_like(ids, int(global_first)))
    ref, ours = _both(architecture, kwargs)
    assert_finite(ref, "led_ref")
    assert_finite(ours, "led_torch")
    assert_agree(ref, ours, 1e-9, f"{architecture} one token")
    # A lone token attends only to itself: probability 1 at the self column (local) or global slot.
    column = ref["encoder_attentions[0]"].shape[-1] // 2 if not global_first else 0
    probs = ref[f"{GLOBAL}[0]"] if global_first else ref["encoder_attentions[0]"]
    np.testing.assert_allclose(probs[..., 0, column], 1.0, rtol=0, atol=1e-12)


def test_sequence_that_fits_the_table_but_not_once_padded():
    """17 tokens fit a position table of 18; the padding to a window multiple (20) never reaches an output,
    so both packages accept it (HF raises an IndexError here) and agree."""
    ids = np.full((1, 17), 4)
    ids[0, -1] = 2
    ref, ours = _both("LEDForConditionalGeneration", dict(input_ids=ids, decoder_input_ids=DEC[:1]))
    assert_finite(ref, "led_ref")
    assert_agree(ref, ours, 1e-9, "17 tokens, table 18, led_ref vs led_torch")


HF_CONFIG = LEDConfig.from_dict(CONFIG.to_dict() | {"attention_window": [4, 8], "max_encoder_position_embeddings": 16})


@pytest.mark.hf
@pytest.mark.parametrize("case", ["padded_row", "global_on_padding", "all_global", "one_token"])
def test_degenerate_inputs_match_the_hf_oracle(case):
    """The values, not just their finiteness: led_ref and led_torch against HF transformers (windows HF accepts)."""
    from tests.hf_oracle import hf_dtype_scope, hf_model

    weights = random_weights(HF_CONFIG, "LEDForConditionalGeneration", seed=7, std=0.3)
    ids, mask, glob = IDS.copy(), MASK.copy(), np.zeros_like(IDS)
    glob[0, 1] = 1
    if case == "padded_row":
        mask[1] = 0
    elif case == "global_on_padding":
        glob[1, 5] = 1
    elif case == "all_global":
        glob[:] = 1
    else:
        ids, mask, glob = ids[:, -2:-1], mask[:, :1], glob[:, :1]
    kwargs = dict(input_ids=ids, attention_mask=mask, global_attention_mask=glob, decoder_input_ids=DEC)
    hf = hf_model(HF_CONFIG, weights, "LEDForConditionalGeneration")
    with hf_dtype_scope(torch.float64):
        want = hf(**{k: torch.from_numpy(v) for k, v in kwargs.items()})
    for impl in IMPLS:
        model = impl.build("LEDForConditionalGeneration", config=HF_CONFIG, weights=weights)
        with torch.no_grad():
            got = model(**impl.arrays(kwargs))
        for name in ("logits", "encoder_last_hidden_state"):
            error = scaled_error(impl.numpy(getattr(got, name)), getattr(want, name).numpy())
            assert error < 1e-6, f"{impl.name} {case}: {name} differs from HF by {error:.3g}"  # HF softmax: float32


# A window as large as the position table ("full attention") over a 4-token input: both packages run it at the
# narrowest window that attends the same (led_ref.layout.effective_window), never a (16384, 16385) index map.
WIDE = LEDConfig(vocab_size=20, d_model=8, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                 decoder_attention_heads=2, encoder_ffn_dim=8, decoder_ffn_dim=8, attention_window=[16384, 2],
                 max_encoder_position_embeddings=16384, max_decoder_position_embeddings=20)
NARROW = LEDConfig.from_dict(WIDE.to_dict() | {"attention_window": [6, 2]})
WIDE_INPUTS = dict(input_ids=np.array([[0, 4, 5, 2], [0, 6, 2, 1]]),
                   attention_mask=np.array([[1, 1, 1, 1], [1, 1, 1, 0]]),
                   global_attention_mask=np.array([[1, 0, 0, 0], [0, 0, 0, 0]]), decoder_input_ids=DEC[:, :2])


@pytest.mark.parametrize("impl", IMPLS, ids=lambda i: i.name)
def test_a_window_wider_than_the_input_costs_what_the_input_costs(impl):
    import tracemalloc

    from parity.perf.peak_memory import cpu_peak_bytes

    weights = random_weights(WIDE, "LEDForConditionalGeneration", seed=0, std=0.3)
    wide = impl.build("LEDForConditionalGeneration", config=WIDE, weights=weights)
    narrow = impl.build("LEDForConditionalGeneration", config=NARROW, weights=weights)
    kwargs = impl.arrays(WIDE_INPUTS)
    if impl.name == "led_ref":
        tracemalloc.start()
        try:
            out = wide(**kwargs)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    else:
        with torch.no_grad():
            box = []
            peak, _ = cpu_peak_bytes(lambda: box.append(wide(**kwargs)))
            out = box[0]
    assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MiB for a 4-token input"
    want = narrow(**kwargs)
    np.testing.assert_allclose(impl.numpy(out.logits), impl.numpy(want.logits), rtol=0, atol=1e-12)


@pytest.mark.parametrize("impl", IMPLS, ids=lambda i: i.name)
def test_a_wide_window_keeps_hf_attention_layouts(impl):
    """attentions keep the layer's own window columns (x + w + 1), global attentions HF's padded key axis;
    the cells the narrower run computed are the same, the added ones zero."""
    weights = random_weights(WIDE, "LEDForConditionalGeneration", seed=0, std=0.3)
    kwargs = impl.arrays(WIDE_INPUTS | dict(output_attentions=True))
    with torch.no_grad():
        out = impl.build("LEDForConditionalGeneration", config=WIDE, weights=weights)(**kwargs)
        want = impl.build("LEDForConditionalGeneration", config=NARROW, weights=weights)(**kwargs)
    wide_probs, narrow_probs = impl.numpy(out.encoder_attentions[0]), impl.numpy(want.encoder_attentions[0])
    assert wide_probs.shape == (2, 2, 4, 1 + 16385) and narrow_probs.shape == (2, 2, 4, 1 + 7)
    centre = 1 + 8192 - 3
    np.testing.assert_allclose(wide_probs[..., centre:centre + 7], narrow_probs[..., 1:], atol=1e-12)
    np.testing.assert_array_equal(wide_probs[..., 0], narrow_probs[..., 0])
    assert np.abs(wide_probs).sum() == pytest.approx(np.abs(narrow_probs).sum(), abs=1e-9)
    glob = impl.numpy(out.encoder_global_attentions[0])
    assert glob.shape == (2, 2, 16384, 1)
    narrow_glob = impl.numpy(want.encoder_global_attentions[0])  # padded to 6, a multiple of its window
    np.testing.assert_allclose(glob[:, :, :6], narrow_glob, atol=1e-12)
    assert not np.any(glob[:, :, 6:])


@pytest.mark.parametrize("impl", IMPLS, ids=lambda i: i.name)
def test_all_ignored_labels_give_a_zero_loss(impl):
    """HF returns NaN (0 / 0) when every label is -100; both packages define the loss as 0 (nothing to learn)."""
    ignored = np.full_like(DEC, -100)
    lm = call(impl, "LEDForConditionalGeneration", dict(input_ids=IDS, decoder_input_ids=DEC, labels=ignored))
    cls = call(impl, "LEDForSequenceClassification", dict(input_ids=IDS, labels=np.array([-100, -100])))
    qa = call(impl, "LEDForQuestionAnswering", dict(input_ids=IDS, decoder_input_ids=DEC,
                                                    start_positions=np.array([9, 9]), end_positions=np.array([1, 2])))
    some = call(impl, "LEDForQuestionAnswering", dict(input_ids=IDS, decoder_input_ids=DEC,
                                                      start_positions=np.array([1, 1]), end_positions=np.array([1, 2])))
    assert float(lm.loss) == 0.0 and float(cls.loss) == 0.0
    assert np.isfinite(float(qa.loss)) and 0 < float(qa.loss) < float(some.loss)  # the end half only


def test_all_ignored_labels_give_zero_gradients_in_led_torch():
    model = Impl("led_torch").build("LEDForConditionalGeneration")
    model.train()
    loss = model(input_ids=torch.from_numpy(IDS), decoder_input_ids=torch.from_numpy(DEC),
                 labels=torch.full((2, 3), -100)).loss
    loss.backward()
    assert float(loss) == 0.0
    assert all(float(p.grad.abs().max()) == 0.0 for p in model.parameters() if p.grad is not None)
