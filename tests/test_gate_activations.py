"""Activation-like inputs (parity.gate.activations, docs/contract.md#activation-like-values):

- each drawn value style has the property it is named after (massive channels, sink keys far above the
  rest, low rank, heavy tails), and the profiles draw every style;
- a stale running max passes ordinary values and is rejected on sink values (float64 and float32), and by
  the gate's default settings in float32; the correct kernels pass every style;
- `model_cases` gives the q, k, v of each layer of the embedded trained model, which reproduce led_ref's
  own attention output of that layer; `--activations-from`/`--text` gate a kernel on them.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from led_ref.attention import encoder_self_attention, longformer_attention
from led_ref.encoder import embed_encoder_inputs
from led_ref.functional import linear, merge_heads, subtree
from parity.commands import main
from parity.gate.activations import VALUE_STYLES, model_cases
from parity.gate.broken_kernels import LATENT_KERNELS, dense_attention, tiled_attention
from parity.gate.judge import KernelFailure, check_case, gate
from parity.gate.profiles import CaseRecipe, Shape, grid, shape_cases

SHAPE = Shape("boundary", window=64, seq=256, head_dim=32, heads=2, max_batch=2, block=64)
STALE = LATENT_KERNELS["stale_running_max"]


def recipe(values: str, seed: int = 4) -> CaseRecipe:
    kinds = np.ones((2, 256), np.int64)
    kinds[1, 200:] = 0
    kinds[0, 17] = 2
    return CaseRecipe(SHAPE, 2, 2, kinds, seed=seed, values=values)


def scores(case) -> np.ndarray:
    return case.query @ np.swapaxes(case.key, -1, -2)


def test_massive_channels_are_a_few_channels_far_larger_than_the_rest():
    key = recipe("massive_channels").materialize().key
    per_channel = np.abs(key).mean(axis=(0, 1, 2))
    big = per_channel > 5 * np.median(per_channel)
    assert 1 <= big.sum() <= 3


@pytest.mark.parametrize("style,score", [("sinks_200", 200), ("sinks_1500", 1500)])
def test_sink_keys_score_far_above_the_rest(style, score):
    s = scores(recipe(style).materialize())[0, 0]
    top = np.sort(s, axis=-1)
    assert np.median(top[:, -1] - top[:, -4]) > 0.5 * score  # the strongest sink over every ordinary key
    assert np.median(top[:, -1]) > (88.7 if score == 200 else 709.8)  # exp overflows without the running max


def test_low_rank_queries_and_keys_have_rank_at_most_four():
    case = recipe("low_rank").materialize()
    singular = np.linalg.svd(case.key[0, 0], compute_uv=False)
    assert singular[4] < 1e-2 * singular[0]


def test_heavy_tails_have_entries_far_past_a_normal_distribution():
    values = recipe("heavy_tails").materialize().value.ravel()
    kurtosis = np.mean((values - values.mean()) ** 4) / np.var(values) ** 2
    assert kurtosis > 6  # a normal distribution has 3


def test_the_profiles_draw_every_value_style():
    seen = set()

    @settings(max_examples=80, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(shape_cases(grid("boundary", blocks=(16,)).shapes[0]))
    def collect(r):
        seen.add(r.values)

    collect()
    assert seen == set(VALUE_STYLES)


@pytest.mark.parametrize("style", VALUE_STYLES)
@pytest.mark.parametrize("kernel", [dense_attention, tiled_attention], ids=["dense", "tiled"])
def test_correct_kernels_pass_every_style(kernel, style):
    for dtype in ("float64", "float32"):
        assert check_case(kernel, recipe(style), dtype)["context"]["error"] < (1e-9 if dtype == "float64" else 1e-4)


@pytest.mark.parametrize("style,dtype", [("sinks_1500", "float64"), ("sinks_200", "float32"),
                                         ("sinks_200", "bfloat16")])
def test_a_stale_running_max_overflows_on_sinks_only(style, dtype):
    ordinary = check_case(STALE, recipe("normal"), dtype)["context"]  # exact up to rounding on ordinary values
    assert ordinary["error"] <= ordinary["budget"]
    with pytest.raises(KernelFailure, match="non-finite|mismatch"):
        check_case(STALE, recipe(style), dtype)


def test_the_gate_rejects_a_stale_running_max_on_default_settings_in_float32():
    result = gate(STALE, examples=10, seed=0, profile="boundary", blocks=(16,), dtype="float32")
    assert result.verdict == "mismatch" and "non-finite" in result.detail, result.message()


# ------------------------------------------------------------------------------------------ a real model
def test_model_cases_reproduce_led_refs_attention_of_each_layer():
    from led_ref.io.default_model import default_config, default_weights

    config = default_config()
    weights = {k.removeprefix("led."): v.astype(np.float64) for k, v in default_weights(config).items()}
    cases = model_cases()
    assert len(cases) == config.encoder_layers
    first = cases[0]
    assert first.label.startswith("model layer 0") and first.token_kind[0, 0] == 2
    # layer 0's input is the embedding output: its attention through led_ref equals the case's context
    seq = int((first.token_kind != 0).sum())
    params = subtree(weights, "encoder.layers.0.self_attn.")
    context = longformer_attention(*first.arrays(), first.token_kind, first.window)
    projected = linear(merge_heads(context), params, "output")
    hidden, kinds, _ = _layer0_input(weights, config, first)
    expected, _, _ = encoder_self_attention(hidden, params, kinds, first.window, config.encoder_attention_heads)
    assert np.allclose(projected[:, :seq], expected[:, :seq], atol=1e-10)


def _layer0_input(weights, config, case):
    from led_ref.io.default_model import DEFAULT_TEXT, default_checkpoint_dir
    from led_ref.io.tokenizer import LEDTokenizer

    tokenizer = LEDTokenizer.from_pretrained(str(default_checkpoint_dir()))
    ids = np.asarray([tokenizer.encode(DEFAULT_TEXT)])
    glob = np.zeros_like(ids)
    glob[0, 0] = 1
    hidden, kinds, pad = embed_encoder_inputs(weights, config, ids, None, np.ones_like(ids), glob,
                                              window=case.window)
    return hidden, kinds, pad


def test_the_cli_gates_a_kernel_on_model_activations(capsys, tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("A short text about windows and global tokens, read by the embedded model.")
    argv = ["gate", "--attention", "parity.gate.broken_kernels:dense_attention", "--profile", "toy", "--examples",
            "3", "--seed", "0", "--activations-from", "default", "--text", str(text),
            "--json", str(tmp_path / "r.json")]
    assert main(argv) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    import json

    report = json.loads((tmp_path / "r.json").read_text())
    model = [label for label in report["planned"] if label.startswith("model layer")]
    assert len(model) == 2 and all(report["cases_per_shape"][label] == 1 for label in model), out
    bad = main([*argv[:2], "parity.gate.broken_kernels:global_double_counted", *argv[3:]])
    assert bad == 1 and "model layer" in capsys.readouterr().out  # the model cases run first
    assert main([*argv[:-4], "--text", str(tmp_path / "missing.txt")]) == 2
