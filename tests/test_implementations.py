"""parity.harness.implementations, the one registry `check`, `audit`, `replay` and `bench` build their sides from:
names (short and long), the sides `check` compares, and the encoder / generate calls bench times, checked
against the float64 spec across families. Also the named steps of check_random (shrink budget, beams)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from parity import commands as cli
from parity.harness.check import ShrinkBudget, generation_beams
from parity.harness.generation import generation_parity
from parity.harness.implementations import (
    SHORT_NAMES,
    TORCH_BACKENDS,
    Side,
    available_torch_backends,
    check_sides,
    side_named,
    usable_names,
)
from parity.harness.strategies import model_cases
from parity.harness.tolerances import strict_scaled_error, tolerance

torch = pytest.importorskip("torch")


def test_backend_names_are_led_torchs():
    from led_torch.backends import BACKENDS

    assert TORCH_BACKENDS == BACKENDS
    assert SHORT_NAMES == ("hf", *BACKENDS, "led_ref")


@pytest.mark.parametrize("name, kwargs, side", [
    ("banded", dict(dtype="bfloat16"), Side("torch", "banded", "bfloat16", "cpu")),
    ("flex", dict(dtype="float32", device="cuda"), Side("torch", "flex", "float32", "cuda")),
    ("hf", dict(dtype="bfloat16"), Side("hf", None, "bfloat16", "cpu")),
    ("hf", dict(dtype="bfloat16", hf_dtype="float16"), Side("hf", None, "float16", "cpu")),
    ("led_ref", dict(dtype="bfloat16"), Side("ref", None, "float32", "cpu")),
    ("led_ref", dict(ref_dtype="float64"), Side("ref", None, "float64", "cpu")),
    ("banded@float32", dict(dtype="bfloat16", hf_dtype="float16"), Side("torch", "banded", "float32", "cpu")),
    ("hf@float64", dict(dtype="bfloat16", hf_dtype="float16"), Side("hf", None, "float64", "cpu")),
])
def test_short_names_give_the_side_in_its_dtype(name, kwargs, side):
    assert side_named(name, **kwargs) == side


@pytest.mark.parametrize("name, kwargs, message", [
    ("nope", {}, "impl must be one of hf, banded, flex, triton, led_ref; got 'nope'"),
    ("nope@float32", {}, "got 'nope'"),
    ("led_ref", dict(device="cuda"), "led_ref runs on cpu only, not on device='cuda'"),
])
def test_a_bad_short_name_is_a_value_error_naming_it(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        side_named(name, **kwargs)


def test_check_sides_default_to_every_usable_backend_then_hf():
    usable = available_torch_backends("cpu", "float32")
    assert [s.label for s in check_sides(None, "float32")] == [f"torch:{b}:float32" for b in usable]
    sides = check_sides(["banded", "banded"], "float64", hf=True)
    assert [s.label for s in sides] == ["torch:banded:float64", "torch:banded:float64", "hf:float32"]
    assert usable_names("cpu", "float32") == ("hf", *usable, "led_ref")
    assert "led_ref" not in usable_names("cuda", "float32")


def test_an_unknown_backend_exits_2_naming_it_and_the_choices(capsys):
    assert cli.main(["check", "--backend", "nope", "--examples", "1", "--seed", "0"]) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("error: --backend nope is not a led_torch backend; choose from banded, flex, triton")
    assert "(usable here: banded" in err


@settings(max_examples=3)
@given(case=model_cases(hf_compatible=True, with_head_masks=False))
def test_encode_and_generate_of_every_family_agree_with_the_spec(case):
    """What bench times: the encoder's last hidden state (float64, at the attended positions within the
    budget of the float64 spec) and generated ids (int64, the spec's up to ties: parity.harness.generation)."""
    pytest.importorskip("transformers")
    weights = case.weights()
    inputs = {k: case.inputs[k] for k in ("input_ids", "attention_mask", "global_attention_mask")}
    reference = Side("ref")
    ref_model = reference.build(case.config, weights, case.architecture)
    expected = reference.encode(ref_model, inputs)
    batch, seq = inputs["input_ids"].shape
    assert expected.shape == (batch, seq, case.config.d_model) and expected.dtype == np.float64
    attended = inputs["attention_mask"].astype(bool)
    sides = [Side("torch", "banded", "float64"), Side("hf", None, "float64")]
    for side in sides:
        model = side.build(case.config, weights, case.architecture)
        hidden = side.encode(model, inputs)
        assert hidden.shape == expected.shape and hidden.dtype == np.float64
        error = strict_scaled_error(hidden[attended], expected[attended])
        assert error <= tolerance("float64", "float64", "hidden", hf=side.family == "hf"), (side.label, error)
        ids = side.generate(model, inputs, max_new_tokens=3, num_beams=1)
        assert ids.dtype == np.int64 and ids.shape[0] == batch and 1 < ids.shape[1] <= 4
    expected_ids, generations = generation_parity(case.config, weights, inputs, sides, reference, max_new_tokens=3,
                                                  num_beams=1)
    assert expected_ids.shape[0] == batch and all(g.passed for g in generations), [g.describe() for g in generations]


def test_generation_beams_alternate_greedy_and_two_beams():
    assert [generation_beams(seed) for seed in range(4)] == [1, 2, 1, 2]


def test_shrink_budget_tries_only_known_failures_once_spent():
    budget = ShrinkBudget(seconds=float("inf"))
    assert not budget.shrinking and not budget.skips("a")
    budget.failed("a")
    assert budget.shrinking and not budget.skips("b")  # budget left: every smaller case is tried
    spent = ShrinkBudget(seconds=-1.0)
    spent.failed("a")
    assert spent.skips("b") and not spent.skips("a")
