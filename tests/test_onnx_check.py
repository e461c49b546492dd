"""An ONNX export as an implementation `check` can name (`--impls onnx:DIR`, parity.onnx.check) and generation
through ONNX Runtime (parity.onnx.generate): a correct export of a tiny random LED agrees with led_ref on check's
random cases (exit 0), exports that are wrong away from the traced shape are rejected (exit 1) with the shrunk case
named, and ONNX Runtime's greedy and beam tokens are led_ref's."""

from __future__ import annotations

import os
import shutil
import warnings

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
torch = pytest.importorskip("torch")

from parity import commands as cli  # noqa: E402
from parity.harness.implementations import Side, side_named  # noqa: E402
from parity.onnx import export  # noqa: E402
from parity.onnx.sessions import OnnxLED  # noqa: E402
from tests.test_onnx import encoder_only, length_baked_in  # noqa: E402


def check(capsys, *impls, examples=4, seed=0):
    code = cli.main(["check", "--impls", ",".join(impls), "--seed", str(seed), "--examples", str(examples),
                     "--no-progress", "--shrink-seconds", "20"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def with_weights(onnx_checkpoint, folder):
    """A folder with the checkpoint's weights beside the ONNX files (how check finds them without metadata)."""
    for name in ("config.json", "model.safetensors", "generation_config.json"):
        if os.path.isfile(os.path.join(onnx_checkpoint, name)):
            shutil.copy(os.path.join(onnx_checkpoint, name), folder)
    return str(folder)


def test_onnx_sides_parse_and_label():
    side = Side.parse("onnx:some/dir:with colon")
    assert (side.family, side.backend, side.label) == ("onnx", "some/dir:with colon", "onnx:some/dir:with colon")
    assert side_named("onnx:exported") == Side("onnx", "exported", "float32")
    assert not side.returns_probabilities
    with pytest.raises(ValueError, match="onnx:DIR"):
        Side.parse("onnx:")
    with pytest.raises(ValueError, match="check_export"):
        side.build(None, {}, "LEDForConditionalGeneration")


def test_a_correct_export_agrees_on_checks_cases(onnx_export, capsys):
    code, out, err = check(capsys, f"onnx:{onnx_export}")
    assert code == 0, out + err
    assert f"comparing led_ref (float64) with onnx:{onnx_export}" in err
    rows = [line for line in out.splitlines() if line.startswith("onnx #")]
    # every case runs the three files; the decoder with past wherever the case has two decoder tokens
    assert {line.split()[2] for line in rows} >= {"onnx:encoder_model.onnx", "onnx:decoder_model.onnx",
                                                   "onnx:decoder_with_past_model.onnx"}
    assert all(line.endswith("ok") for line in rows) and len({line.split()[1] for line in rows}) == 4
    assert "generation: 4 identical, 0 tie, 0 MISMATCH" in out
    assert out.rstrip().endswith("all agree (seed 0)")


def test_check_runs_an_export_beside_a_led_torch_backend(onnx_export, capsys):
    code, out, err = check(capsys, "banded", f"onnx:{onnx_export}", examples=2)
    assert code == 0, out + err
    assert "torch:banded:float64" in out and "onnx:encoder_model.onnx" in out


def test_an_export_wrong_away_from_its_traced_length_is_rejected(onnx_checkpoint, tmp_path, capsys):
    folder = encoder_only(onnx_checkpoint, tmp_path / "baked", length_baked_in)
    code, out, err = check(capsys, f"onnx:{with_weights(onnx_checkpoint, folder)}", examples=6)
    assert code == 1, out + err
    assert "mismatch: onnx:encoder_model.onnx diverged from ref:float64" in err
    # the shrunk case is named by its shape, with the command that repeats it
    case = next(line for line in err.splitlines() if line.strip().startswith("case: batch"))
    assert "length" in case and "length 19," not in case  # the traced length (19) is the one that works
    assert f"repeat: led-parity check --impls onnx:{folder} --seed 0" in err
    assert out.rstrip().endswith("mismatch (seed 0)")


def test_an_export_traced_with_fixed_shapes_is_rejected(onnx_checkpoint, tmp_path, capsys):
    """The TorchScript exporter without dynamic axes: every input shape is fixed at the traced one, so ONNX
    Runtime refuses any other, a divergence of infinite error."""
    import led_torch
    from parity.harness.checkpoints import load_for_generation

    config, weights = load_for_generation(onnx_checkpoint)
    model = led_torch.LEDForConditionalGeneration.from_weights(config, weights, dtype=torch.float32).eval()
    inputs = export.example_encoder_inputs(config, 19)
    folder = tmp_path / "fixed"
    folder.mkdir()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notes
        torch.onnx.export(export.ExportEncoder(model), tuple(inputs.values()), str(folder / export.ENCODER_FILE),
                          input_names=list(inputs), output_names=["last_hidden_state"], dynamo=False)
    code, out, err = check(capsys, f"onnx:{with_weights(onnx_checkpoint, folder)}", examples=3)
    assert code == 1, out + err
    assert "<onnxruntime>" in err and "the file fixes input_ids axis" in err


def test_a_folder_without_weights_is_a_usage_error(onnx_checkpoint, tmp_path, capsys):
    folder = encoder_only(onnx_checkpoint, tmp_path / "bare", export.dense_longformer_attention)
    code, out, err = check(capsys, f"onnx:{folder}")
    assert code == 2
    assert "no weights to compare" in err and len(err.strip().splitlines()[-1]) > 0
    assert "Traceback" not in err


@pytest.mark.parametrize("beams", [1, 3])
def test_onnx_generation_gives_led_refs_tokens(onnx_export, onnx_checkpoint, beams):
    import led_ref
    from led_ref.io.generation_settings import explicit_arguments, resolve
    from parity.harness.checkpoints import load_for_generation
    from parity.onnx.generate import onnx_generate

    config, weights = load_for_generation(onnx_checkpoint)
    ref = led_ref.LEDForConditionalGeneration(config, weights=weights)
    rng = np.random.default_rng(1)
    inputs = {"input_ids": rng.integers(3, config.vocab_size, (2, 37)), "attention_mask": np.ones((2, 37), np.int64),
              "global_attention_mask": np.zeros((2, 37), np.int64)}
    inputs["attention_mask"][1, 25:] = 0
    inputs["input_ids"][1, 25:] = config.pad_token_id
    inputs["global_attention_mask"][:, 0] = 1
    settings = resolve(config, None, max_new_tokens=10, num_beams=beams, num_return_sequences=min(beams, 2),
                       min_new_tokens=10)
    actual = onnx_generate(OnnxLED.open(onnx_export), inputs, settings)
    expected = ref.generate(**inputs, **explicit_arguments(settings), return_dict_in_generate=True,
                            output_scores=True)
    tokens = actual[0] if beams > 1 else actual
    assert tokens.shape == (2 * min(beams, 2), 11)
    np.testing.assert_array_equal(tokens, expected.sequences)
    if beams > 1:
        np.testing.assert_allclose(actual[1], expected.sequences_scores, rtol=1e-5)
