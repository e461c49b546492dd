"""The comparison engine: model-order flattening, first divergence, valid global slots, tolerances, reports,
reproducers. HF's LED is the independent implementation the engine is exercised on."""

from __future__ import annotations

import json
import os
import tempfile
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parity import commands as cli
from parity.harness.check import check_random, run_case
from parity.harness.compare import compare_outputs, flatten_outputs, valid_global_slots
from parity.harness.implementations import Side
from parity.harness.report import load_reproducer, save_reproducer, summary_table, text_table, to_json
from parity.harness.strategies import led_configs, model_cases, profile_examples
from parity.harness.tolerances import TOLERANCES, finite_scaled_error, scaled_error, tolerance

pytest.importorskip("transformers")
ARCH = "LEDForConditionalGeneration"
HF64, HF32 = Side("hf", None, "float64"), Side("hf", None, "float32")


def hf_outputs(side, config, weights, inputs):
    return side.forward(side.build(config, weights, ARCH), inputs)


def test_tolerance_table_follows_design():
    assert tolerance("float64", "float64") == 1e-9
    assert tolerance("float64", "float64", hf=True) == 1e-6
    assert tolerance("float32", "float64") == 1e-4 and tolerance("float64", "float32", "logits") == 1e-4
    assert all(tolerance(d, "float64", k) > 1e-4 for d in ("float16", "bfloat16") for k in ("hidden", "logits"))
    assert set(TOLERANCES) == {"float64", "hf-float64", "float32", "float16", "bfloat16"}


def test_scaled_error_definition():
    assert scaled_error([3.0, 0.0], [1.0, 0.0]) == 2.0  # max|b| = 1 -> absolute
    assert scaled_error([30.0], [20.0]) == 0.5  # relative to max|b| = 20
    assert scaled_error([np.nan], [1.0]) == float("inf")
    assert scaled_error([np.nan, 1.0], [np.nan, 1.0]) == 0.0
    assert scaled_error(np.zeros(2), np.zeros(3)) == float("inf")


@settings(max_examples=profile_examples(20))
@given(st.lists(st.integers(1, 9), min_size=1, max_size=4), st.integers(0, 2**31 - 1), st.booleans())
def test_the_one_pass_scaled_error_is_the_definition(shape, seed, transposed):
    """scaled_error's chunked one-pass path (finite differences) gives the definition's number bit for bit, on
    strided views too; with a NaN or inf anywhere it steps aside for the rules above."""
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(shape) * 7, rng.standard_normal(shape) * 3
    if transposed:
        a, b = a.T, b.T
    definition = float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))
    assert finite_scaled_error(a, b) == definition and scaled_error(a, b) == definition
    a = a.copy()
    a.flat[rng.integers(a.size)] = rng.choice([np.nan, np.inf])
    assert finite_scaled_error(a, b) is None and scaled_error(a, b) == float("inf")


@settings(max_examples=profile_examples(3))
@given(model_cases(architectures=(ARCH,), hf_compatible=True, with_head_masks=False))
def test_same_model_agrees_and_orders_outputs(case):
    weights = case.weights()
    out = hf_outputs(HF64, case.config, weights, case.inputs)
    names = list(flatten_outputs(out))
    layers = case.config.encoder_layers
    # model order: embeddings, then per layer attentions before the layer's output, then the decoder
    assert names[0] == "encoder_hidden_states[0]" and names[1] == "encoder_attentions[0]"
    assert names.index(f"encoder_hidden_states[{layers}]") < names.index("encoder_last_hidden_state")
    assert names.index("encoder_last_hidden_state") < names.index("decoder_hidden_states[0]") < names.index("logits")
    comparison = compare_outputs(out, out, inputs=case.inputs)
    assert comparison.passed and comparison.max_error == 0.0 and comparison.first_divergence is None


@settings(max_examples=profile_examples(3))
@given(model_cases(architectures=(ARCH,), with_head_masks=False,
                   configs=led_configs(hf_compatible=True, min_head_dim=4)),  # layer norm of 2 features is a sign
       st.sampled_from(["fc2.bias", "self_attn.output.bias"]))
def test_first_divergence_is_the_perturbed_layer(case, tensor):
    """Perturbing a tensor of the last encoder layer: outputs before it agree exactly, the first one it
    feeds is named as the first divergence."""
    config, weights = case.config, case.weights()
    layer = config.encoder_layers - 1
    broken = dict(weights)
    name = f"led.encoder.layers.{layer}.{tensor}"
    broken[name] = weights[name] + np.linspace(-1.0, 1.0, weights[name].size)  # not constant: layer norm hides that
    expected = hf_outputs(HF64, config, weights, case.inputs)
    actual = hf_outputs(HF64, config, broken, case.inputs)
    comparison = compare_outputs(actual, expected, inputs=case.inputs, hf=True)
    assert comparison.first_divergence.name == f"encoder_hidden_states[{layer + 1}]"
    before = [d for d in comparison.diffs if d.name.startswith("encoder_") and d.name.endswith(f"[{layer}]")]
    assert before and all(d.error == 0.0 for d in before)
    assert "DIVERGED first at encoder_hidden_states" in text_table(comparison)
    report = json.loads(to_json([comparison], seed=1))
    assert report["passed"] is False and report["comparisons"][0]["first_divergence"]["name"] == (
        f"encoder_hidden_states[{layer + 1}]")


def test_global_attentions_compared_on_valid_slots_only():
    counts = np.array([2, 0])
    a = np.random.default_rng(0).random((2, 1, 6, 2))
    b = a.copy()
    b[0, :, :, :] += 0.0
    b[1] = np.nan  # row 1 has no global token: every slot is unused (HF float64 writes NaN there)
    a_valid, b_valid = valid_global_slots(a, b[:, :, :4], counts)
    assert a_valid.shape == (2, 1, 4, 2) and scaled_error(a_valid, b_valid) == 0.0
    b[0, 0, 1, 1] += 1.0  # a used slot
    assert scaled_error(*valid_global_slots(a, b, counts)) > 0.5


@settings(max_examples=profile_examples(4))
@given(model_cases(architectures=(ARCH,), hf_compatible=True))
def test_hf_float32_vs_float64_within_float32_budget(case):
    """HF in float32 against HF in float64 (NaN garbage in unused global slots) passes at the float32 budget."""
    config, weights = case.config, case.weights()
    comparison = compare_outputs(hf_outputs(HF32, config, weights, case.inputs),
                                 hf_outputs(HF64, config, weights, case.inputs), "float32", "float64",
                                 inputs=case.inputs)
    assert comparison.passed, text_table(comparison)


@settings(max_examples=profile_examples(3))
@given(model_cases(architectures=("LEDForConditionalGeneration", "LEDForSequenceClassification",
                                  "LEDForQuestionAnswering", "LEDModel"), hf_compatible=True))
def test_run_case_led_ref_against_hf(case):
    """The harness end to end on two independent implementations: led_ref (float64) vs HF (float64)."""
    comparisons = run_case(case.config, case.architecture, case.weights(), case.inputs, [HF64])
    assert len(comparisons) == 1 and comparisons[0].diffs
    assert comparisons[0].passed, text_table(comparisons[0])
    assert "ok" in summary_table([("case", comparisons[0])])


@settings(max_examples=1)
@given(model_cases(architectures=(ARCH,), with_head_masks=False))
def test_crashing_side_is_a_divergence(case):
    side = Side("torch", "no-such-backend", "float64")
    comparison = run_case(case.config, case.architecture, case.weights(), case.inputs, [side])[0]
    assert not comparison.passed and comparison.diffs[0].name in ("<build>", "<forward>")
    assert "no-such-backend" in comparison.diffs[0].note


@settings(max_examples=1, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(model_cases(architectures=(ARCH,), hf_compatible=True))
def test_reproducer_round_trip_and_replay_exit_codes(capsys, case):
    with tempfile.TemporaryDirectory() as tmp:
        path = save_reproducer(os.path.join(tmp, "repro"), case.config, ARCH, case.weights(), case.inputs,
                               "hf:float32", "ref:float64", seed=7, weight_seed=case.weight_seed)
        loaded = load_reproducer(path)
        assert loaded["seed"] == 7 and loaded["config"].to_dict() == case.config.to_dict()
        assert all(np.array_equal(loaded["inputs"][k], v) for k, v in case.inputs.items())
        assert all(np.array_equal(loaded["weights"][k], v) for k, v in case.weights().items())
        capsys.readouterr()
        assert cli.main(["replay", path]) == 0
        assert "no mismatch" in capsys.readouterr().out

        original = Side.forward

        def skewed(self, model, inputs, **kw):  # a planted divergence in the HF side's logits
            out = original(self, model, inputs, **kw)
            if self.family == "hf":
                out.logits = out.logits + 1e-2
            return out

        with mock.patch.object(Side, "forward", skewed):
            assert cli.main(["replay", os.path.join(tmp, "repro")]) == 1
        out = capsys.readouterr().out
        assert "mismatch reproduced" in out and "DIVERGED first at logits" in out


def test_check_random_shrinks_a_divergence_and_saves_it(tmp_path):
    """check_random on a side with a planted logits skew: it fails, names logits, and keeps a minimal case."""
    original = Side.forward

    def skewed(self, model, inputs, **kw):
        out = original(self, model, inputs, **kw)
        if self.backend == "skewed" and getattr(out, "logits", None) is not None:
            out.logits = out.logits + 1e-3
        return out

    with mock.patch.object(Side, "forward", skewed):
        result = check_random([Side("ref", "skewed", "float64")], examples=5, seed=0, architectures=(ARCH,),
                              repro_dir=str(tmp_path / "repro"), progress=False, shrink_seconds=20)
    assert not result.passed and "mismatch" in result.failure and "DIVERGED first at logits" in result.failure
    saved = load_reproducer(result.reproducer)
    assert saved["seed"] == 0 and saved["report"]["first_divergence"]["name"] == "logits"
    assert saved["inputs"]["input_ids"].shape == (1, 1)  # shrunk to the smallest input
