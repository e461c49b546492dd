"""Both packages take HF 4.57's positional argument order, so a call ported from HF keeps its meaning:
`model(ids, mask, decoder_ids)`, global_attention_mask as the 9th positional argument, the encoder's
`(ids, mask, global_mask)` and `generate(ids, generation_config)`. Arguments HF lacks are keyword-only."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from hf_oracle import hf_dtype_scope, hf_model, scaled_error, to_numpy  # noqa: E402
from transformers.models.led import modeling_led  # noqa: E402

from led_ref.init import random_weights  # noqa: E402
from tests.reliability_cases import CLASSES, IDS, IMPLS, MASK  # noqa: E402
from tests.reliability_cases import CONFIG as _CONFIG  # noqa: E402

pytestmark = pytest.mark.hf
HF_BUDGET = 1e-6  # HF takes the encoder softmax in float32 even for float64 models

# HF parameters a package does not take. Each sits at the end of HF's list, which the order check enforces,
# so leaving it out shifts no other position: a call that reaches it is refused, never misread.
HF_ONLY = {
    "led_ref": {"cache_position"},
    "led_torch": {"cache_position"},  # HF's static-cache write index; our cache needs none
}
# HF generate's positional parameters after generation_config: features neither package has.
GENERATE_HF_ONLY = {"logits_processor", "stopping_criteria", "prefix_allowed_tokens_fn", "synced_gpus",
                    "assistant_model", "streamer", "negative_prompt_ids", "negative_prompt_attention_mask",
                    "use_model_defaults", "custom_generate"}

CONFIG = dataclasses.replace(_CONFIG, attention_window=[4, 4])  # HF's banded attention fails at window 2
# Decoder ids as long as IDS: classification pools the decoder output at IDS' eos positions.
DEC = np.concatenate([np.full((2, 1), CONFIG.decoder_start_token_id), IDS[:, :-1]], axis=1)
GLOB = np.array([[1, 0, 0, 1, 0, 0], [1, 0, 0, 0, 0, 0]])
HEAD_FIELDS = {"LEDModel": ("last_hidden_state",), "LEDForConditionalGeneration": ("logits",),
               "LEDForSequenceClassification": ("logits",),
               "LEDForQuestionAnswering": ("start_logits", "end_logits")}


def positional(func) -> list[str]:
    """The names `func` takes by position, self left out."""
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [n for n, p in inspect.signature(func).parameters.items() if p.kind in kinds and n != "self"]


def assert_hf_order(ours: list[str], hf: list[str], hf_only: set[str], what: str) -> None:
    """Ours is a prefix of HF's positional list, and what HF has beyond it is allowed to be missing."""
    assert ours == hf[:len(ours)], f"{what}: positional {ours}, HF's order is {hf}"
    missing = hf[len(ours):]
    assert set(missing) <= hf_only, f"{what} lacks HF's positional {[n for n in missing if n not in hf_only]}"


def entry_point(impl, model):
    """What `model(...)` runs: led_ref's __call__, led_torch's forward."""
    return model.__call__ if impl.name == "led_ref" else model.forward


def build(impl, architecture: str, seed: int = 0):
    """(ours, HF) models of `architecture` on the same float64 weights."""
    weights = random_weights(CONFIG, architecture, seed=seed, std=0.3)
    return impl.build(architecture, CONFIG, weights), hf_model(CONFIG, weights, architecture)


def as_array(value) -> np.ndarray:
    return to_numpy(value) if isinstance(value, torch.Tensor) else np.asarray(value)


def head_outputs(out, architecture: str) -> dict[str, np.ndarray]:
    """The head's outputs and the encoder's, of ours or HF's output object."""
    return {name: as_array(out[name]) for name in HEAD_FIELDS[architecture] + ("encoder_last_hidden_state",)}


def assert_equal_outputs(got, want, architecture: str, what: str) -> None:
    want = head_outputs(want, architecture)
    for name, value in head_outputs(got, architecture).items():
        np.testing.assert_array_equal(value, want[name], err_msg=f"{what}: {name}")


def assert_matches_hf(ours, hf, architecture: str, what: str) -> None:
    hf = head_outputs(hf, architecture)
    for name, value in head_outputs(ours, architecture).items():
        err = scaled_error(value, hf[name])
        assert err < HF_BUDGET, f"{what}: {name} scaled error {err:.3g} against HF"


# ------------------------------------------------------------------------------------------ signatures
@pytest.mark.parametrize("architecture", CLASSES)
@pytest.mark.parametrize("impl", IMPLS, ids=lambda i: i.name)
def test_forward_takes_hfs_positional_order(impl, architecture):
    model = impl.build(architecture)
    assert_hf_order(positional(entry_point(impl, model)), positional(getattr(transformers, architecture).forward),
                    HF_ONLY[impl.name], f"{impl.name}.{architecture}")


@pytest.mark.parametrize("impl", IMPLS, ids=lambda i: i.name)
def test_encoder_takes_hfs_positional_order(impl):
    encoder = impl.build("LEDForConditionalGeneration").get_encoder()
    assert_hf_order(positional(entry_point(impl, encoder)), positional(modeling_led.LEDEncoder.forward),
                    HF_ONLY[impl.name], f"{impl.name} get_encoder()")


@pytest.mark.parametrize("impl", IMPLS, ids=lambda i: i.name)
def test_generate_takes_hfs_positional_order_and_inputs_by_name(impl):
    generate = impl.build("LEDForConditionalGeneration").generate
    hf = ["input_ids" if n == "inputs" else n  # HF's first parameter is `inputs`; ours takes both names
          for n in positional(transformers.LEDForConditionalGeneration.generate)]
    assert_hf_order(positional(generate), hf, GENERATE_HF_ONLY, f"{impl.name} generate")
    params = inspect.signature(generate).parameters
    extra = ("attention_mask", "global_attention_mask", "inputs") + (("compile",) if impl.name == "led_torch" else ())
    for name in extra:
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, f"{impl.name} generate: {name}"


# ------------------------------------------------------------------------------------------ positional calls
@pytest.mark.parametrize("architecture", CLASSES)
@pytest.mark.parametrize("impl", IMPLS, ids=lambda i: i.name)
def test_positional_calls_mean_what_they_mean_in_hf(impl, architecture):
    ours, hf = build(impl, architecture)
    ids, mask, dec, glob = (impl.array(a) for a in (IDS, MASK, DEC, GLOB))
    t_ids, t_mask, t_dec, t_glob = (torch.as_tensor(a) for a in (IDS, MASK, DEC, GLOB))
    with torch.no_grad():
        three = ours(ids, mask, dec)
        nine = ours(ids, mask, dec, None, None, None, None, None, glob)
        assert_equal_outputs(three, ours(input_ids=ids, attention_mask=mask, decoder_input_ids=dec),
                             architecture, "model(ids, mask, dec)")
        assert_equal_outputs(nine, ours(input_ids=ids, attention_mask=mask, decoder_input_ids=dec,
                                        global_attention_mask=glob), architecture, "global mask 9th")
        with hf_dtype_scope(torch.float64):
            hf_three = hf(t_ids, t_mask, t_dec)
            hf_nine = hf(t_ids, t_mask, t_dec, None, None, None, None, None, t_glob)
    assert_matches_hf(three, hf_three, architecture, "model(ids, mask, dec)")
    assert_matches_hf(nine, hf_nine, architecture, "global mask 9th")
    # The global tokens change the result, so a misplaced global mask could not pass unnoticed.
    field = HEAD_FIELDS[architecture][0]
    assert not np.allclose(head_outputs(three, architecture)[field], head_outputs(nine, architecture)[field])


@pytest.mark.parametrize("impl", IMPLS, ids=lambda i: i.name)
def test_positional_encoder_call_means_what_it_means_in_hf(impl):
    ours, hf = build(impl, "LEDForConditionalGeneration")
    ids, mask, glob = (impl.array(a) for a in (IDS, MASK, GLOB))
    with torch.no_grad():
        got = ours.get_encoder()(ids, mask, glob).last_hidden_state
        want = ours.get_encoder()(input_ids=ids, attention_mask=mask, global_attention_mask=glob).last_hidden_state
        with hf_dtype_scope(torch.float64):
            ref = hf.get_encoder()(*(torch.as_tensor(a) for a in (IDS, MASK, GLOB))).last_hidden_state
    np.testing.assert_array_equal(as_array(got), as_array(want))
    assert scaled_error(as_array(got), to_numpy(ref)) < HF_BUDGET


# ------------------------------------------------------------------------------------------ generate
def test_generate_takes_the_generation_config_second_in_both_packages():
    options = dict(num_beams=2, max_length=5, no_repeat_ngram_size=2, do_sample=False)
    weights = random_weights(CONFIG, "LEDForConditionalGeneration", seed=0, std=0.3)
    hf = hf_model(CONFIG, weights, "LEDForConditionalGeneration")
    with torch.no_grad():
        want = hf.generate(torch.as_tensor(IDS), transformers.GenerationConfig(**options),
                           attention_mask=torch.as_tensor(MASK)).numpy()
    for impl in IMPLS:
        model = impl.build("LEDForConditionalGeneration", CONFIG, weights)
        ids, mask = impl.array(IDS), impl.array(MASK)
        with torch.no_grad():
            positional_call = impl.numpy(model.generate(ids, transformers.GenerationConfig(**options),
                                                        attention_mask=mask))
            keyword_call = impl.numpy(model.generate(input_ids=ids, generation_config=transformers.GenerationConfig(
                **options), attention_mask=mask))
            by_hfs_name = impl.numpy(model.generate(inputs=ids, generation_config=transformers.GenerationConfig(
                **options), attention_mask=mask))
            default = impl.numpy(model.generate(ids, attention_mask=mask))
        np.testing.assert_array_equal(positional_call, want, err_msg=f"{impl.name} generate(ids, config)")
        np.testing.assert_array_equal(keyword_call, want, err_msg=f"{impl.name} keyword generate")
        np.testing.assert_array_equal(by_hfs_name, want, err_msg=f"{impl.name} generate(inputs=ids)")
        assert default.shape != want.shape or not np.array_equal(default, want), "the config changed nothing"


@pytest.mark.parametrize("impl", IMPLS, ids=lambda i: i.name)
def test_generate_wants_its_ids_once(impl):
    model = impl.build("LEDForConditionalGeneration")
    ids = impl.array(IDS)
    with pytest.raises(ValueError, match="inputs and input_ids"):
        model.generate(ids, inputs=ids, max_length=4)
    with pytest.raises(ValueError, match="input_ids"):
        model.generate(max_length=4)
