"""ONNX export and audit (parity.onnx, `export-onnx`, `audit-onnx`): an export of a tiny random LED, traced at one
shape, agrees with led_ref at other lengths, global counts, paddings and batches; exports that are wrong
(a length baked in by the tracer, a corrupted attention mask, HF's own encoder through the TorchScript exporter)
are rejected with exit 1 and a report naming the first failing shape; bad folders are exit 2."""

from __future__ import annotations

import json
import os
import shutil

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
torch = pytest.importorskip("torch")

from led_ref.io.default_model import DEFAULT_TEXT  # noqa: E402
from parity import commands as cli  # noqa: E402
from parity.onnx import export  # noqa: E402
from parity.onnx.sessions import OnnxLED  # noqa: E402
from tests.onnx_cases import tiny_checkpoint  # noqa: E402


def encoder_only(onnx_checkpoint, folder, attention_fn, dynamo=False):
    """An encoder_model.onnx of `checkpoint` with a planted attention, traced at the default length (19)."""
    import led_torch
    from parity.harness.checkpoints import load_for_generation

    config, weights = load_for_generation(onnx_checkpoint)
    model = led_torch.LEDForConditionalGeneration.from_weights(config, weights, dtype=torch.float32).eval()
    os.makedirs(folder, exist_ok=True)
    export.export_encoder(model, os.path.join(folder, export.ENCODER_FILE), export.default_export_length(config),
                          dynamo=dynamo, attention_fn=attention_fn)
    return str(folder)


def audit(capsys, onnx_dir, onnx_checkpoint, *extra):
    code = cli.main(["audit-onnx", str(onnx_dir), "--checkpoint", str(onnx_checkpoint), "--seed", "0", *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ------------------------------------------------------------------------------------------- formulations
@pytest.mark.parametrize("attention", [export.dense_longformer_attention, export.banded_longformer_attention],
                         ids=["dense", "banded"])
def test_export_attentions_meet_the_kernel_contract(attention):
    from parity.gate import gate

    for dtype in ("float64", "float32"):
        result = gate(attention, profile="toy", dtype=dtype, seed=0, examples=10)
        assert result.verdict == "pass", result.message()


# ------------------------------------------------------------------------------------------- a right export
def test_export_agrees_at_shapes_it_was_not_traced_at(onnx_export, onnx_checkpoint, tmp_path, capsys):
    report = tmp_path / "audit.json"
    text = tmp_path / "doc.txt"
    text.write_text(DEFAULT_TEXT)
    code, out, err = audit(capsys, onnx_export, onnx_checkpoint, "--examples", "4", "--text", str(text), "--json",
                           str(report))
    assert code == 0, out + err
    assert out.rstrip().endswith("all agree")
    data = json.loads(report.read_text())
    assert data["passed"] is True and data["first_failures"] == {}
    traced = data["files"]["encoder_model.onnx"]["traced"]
    assert traced["inputs"]["input_ids"] == [2, 19] and traced["global_counts"] == [2, 1]
    cases = data["cases"]
    # the sweep leaves the traced shape in every direction
    assert {c["length"] for c in cases} >= {1, 2, 3, 4, 8, 9, 17, 20, 39, 64}
    assert {max(c["global_counts"]) for c in cases} >= {0, 1, 2, 3, 8, 19}
    assert {c["batch"] for c in cases} >= {1, 2, 3, 4}
    assert any(p and p < c["length"] for c in cases for p in c["padding"])
    assert cases[-1]["kind"] == "text" and cases[-1]["length"] > 40
    # every file ran on every case (with past: when the target has two tokens), and agreed closely
    files = {c["actual"] for c in data["comparisons"]}
    assert files == {"onnx:encoder_model.onnx", "onnx:decoder_model.onnx", "onnx:decoder_with_past_model.onnx"}
    errors = [o["error"] for c in data["comparisons"] for o in c["outputs"]]
    assert len(errors) > 3 * len(cases) and max(errors) < 1e-5
    assert [g["status"] for g in data["generation"]] == ["identical"] * 3  # traced, batch, text
    assert data["versions"]["onnxruntime"]


def test_sessions_map_optimum_names(onnx_export):
    onnx = OnnxLED.open(onnx_export)
    assert list(onnx.encoder.inputs) == ["input_ids", "attention_mask", "global_attention_mask"]
    assert onnx.layers == 1 and onnx.decoder is not None and onnx.decoder_with_past is not None
    assert set(onnx.decoder_with_past.inputs) == {"input_ids", "encoder_attention_mask",
                                                  "past_key_values.0.decoder.key", "past_key_values.0.decoder.value",
                                                  "past_key_values.0.encoder.key", "past_key_values.0.encoder.value"}
    assert {"logits", "present.0.decoder.key", "present.0.encoder.value"} <= set(onnx.decoder.outputs)
    for name in ("config.json", "vocab.json", "merges.txt"):  # what ORTModelForSeq2SeqLM and the tokenizer read
        assert os.path.isfile(os.path.join(onnx_export, name))


def test_generation_without_a_past_decoder_reruns_the_whole_prefix(onnx_export, onnx_checkpoint, tmp_path, capsys):
    folder = tmp_path / "no_past"
    shutil.copytree(onnx_export, folder)
    os.remove(folder / "decoder_with_past_model.onnx")
    code, out, err = audit(capsys, folder, onnx_checkpoint, "--examples", "1", "--max-length", "24")
    assert code == 0, out + err
    assert "generation on traced shape" in out and "identical" in out


def test_banded_dynamo_export_agrees_everywhere(onnx_checkpoint, tmp_path, capsys):
    """export-onnx with the banded attention through the dynamo exporter (the number of global slots is data),
    layers of window 4 and 8: audited before success."""
    report = tmp_path / "audit.json"
    code = cli.main(["export-onnx", onnx_checkpoint, str(tmp_path / "out"), "--attention", "banded", "--encoder-only",
                     "--examples", "3", "--seed", "0", "--json", str(report)])
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    data = json.loads(report.read_text())
    assert data["files"]["encoder_model.onnx"]["traced"]["exporter"] == "dynamo"
    assert len(data["cases"]) > 25 and max(o["error"] for c in data["comparisons"] for o in c["outputs"]) < 1e-5
    assert "exported and audited" in captured.out


@pytest.mark.slow
def test_default_export_end_to_end(onnx_checkpoint, tmp_path, capsys):
    """`export-onnx CHECKPOINT OUT_DIR` as a user runs it: dense attention, the dynamo exporter, all three files."""
    report = tmp_path / "audit.json"
    code = cli.main(["export-onnx", onnx_checkpoint, str(tmp_path / "out"), "--seed", "0", "--json", str(report)])
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    data = json.loads(report.read_text())
    assert {f["traced"]["exporter"] for f in data["files"].values()} == {"dynamo"} and len(data["files"]) == 3
    assert max(o["error"] for c in data["comparisons"] for o in c["outputs"]) < 1e-5
    assert [g["status"] for g in data["generation"]] == ["identical", "identical"]


# ------------------------------------------------------------------------------------------- wrong exports
def length_baked_in(query, key, value, global_query, global_key, global_value, token_kind, window):
    """The dense attention with its band built from the Python length: the TorchScript tracer records it as a
    constant, as HF's as_strided strides are recorded (the export is right only at the traced length)."""
    seq = query.shape[2]
    positions = torch.arange(seq)
    band = (positions[:, None] - positions[None, :]).abs() <= window // 2
    return _dense_with_band(band, query, key, value, global_query, global_key, global_value, token_kind)


def globals_unseen_by_local_rows(query, key, value, global_query, global_key, global_value, token_kind, window):
    """A corrupted mask: local rows attend their window only, never the global keys outside it."""
    positions = export.positions_along(token_kind, 1)
    band = (positions[:, None] - positions[None, :]).abs() <= window // 2
    return _dense_with_band(band, query, key, value, global_query, global_key, global_value, token_kind,
                            local_sees_globals=False)


def _dense_with_band(band, query, key, value, global_query, global_key, global_value, token_kind,
                     local_sees_globals=True):
    key_real = (token_kind != export.PADDING)[:, None, None, :]
    key_global = (token_kind == export.GLOBAL)[:, None, None, :]
    allowed = ((band[None, None] | key_global) if local_sees_globals else band[None, None]) & key_real
    local = export._masked_softmax(query @ key.transpose(-1, -2), allowed) @ value
    glob = export._masked_softmax(global_query @ global_key.transpose(-1, -2), key_real) @ global_value
    rows = token_kind[:, None, :, None]
    return torch.where(rows == export.GLOBAL, glob, torch.where(rows == export.LOCAL, local, 0.0))


def rejected_encoder(onnx_checkpoint, tmp_path, capsys, attention):
    """An encoder-only export around `attention`, audited on 2 random cases: it must be rejected (exit 1) ->
    (stdout, the JSON report, the encoder's first failure)."""
    folder = encoder_only(onnx_checkpoint, tmp_path / attention.__name__, attention)
    report = tmp_path / "audit.json"
    code, out, err = audit(capsys, folder, onnx_checkpoint, "--examples", "2", "--json", str(report))
    assert code == 1, out + err
    data = json.loads(report.read_text())
    return out, data, data["first_failures"]["encoder_model.onnx"]


def test_a_length_baked_into_the_graph_is_named(onnx_checkpoint, tmp_path, capsys):
    out, data, first = rejected_encoder(onnx_checkpoint, tmp_path, capsys, length_baked_in)
    assert first["case"] == 1 and first["kind"] == "length" and first["shape"]["length"] == 1
    assert "length 1 (traced 19)" in first["differs"] and first["suspects"] == ["length"]
    assert "cases that pass share its global counts, batch, padding, which leaves its length" in first["differs"]
    traced_case = data["comparisons"][0]
    assert traced_case["passed"] and traced_case["max_error"] < 1e-5  # right at the traced shape only
    assert "encoder_model.onnx first fails at case 1 (length: batch 1, length 1" in out
    assert out.rstrip().endswith("mismatch")


def test_a_corrupted_mask_is_rejected_at_the_traced_shape(onnx_checkpoint, tmp_path, capsys):
    out, data, first = rejected_encoder(onnx_checkpoint, tmp_path, capsys, globals_unseen_by_local_rows)
    assert first["kind"] == "traced shape" and first["differs"] == "it is the traced shape itself"
    assert first["suspects"] == []
    assert first["output"]["name"] == "last_hidden_state" and first["output"]["error"] > 1e-3
    # with no global token, or one inside every window, the bug is invisible: those cases agree
    by_case = {c["case"]: c for c in data["comparisons"]}
    no_globals = next(i for i, c in enumerate(data["cases"]) if c["kind"] == "global count"
                      and max(c["global_counts"]) == 0)
    assert by_case[f"case {no_globals} (global count: batch 1, length 19, globals [0], padding [0])"]["passed"]


def test_hf_encoder_through_the_torchscript_exporter_is_rejected(onnx_checkpoint, tmp_path, capsys):
    """What optimum's LED export did: HF's encoder through torch.onnx's TorchScript exporter with dynamic axes."""
    pytest.importorskip("transformers")
    from parity.harness.checkpoints import load_for_generation
    from parity.hf.models import hf_model

    config, weights = load_for_generation(onnx_checkpoint)
    encoder = hf_model(config, weights, "LEDForConditionalGeneration", "float32").eval().get_encoder()

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids, attention_mask, global_attention_mask):
            return self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                global_attention_mask=global_attention_mask).last_hidden_state

    folder = tmp_path / "hf"
    folder.mkdir()
    ids = torch.randint(3, config.vocab_size, (1, 32))
    names = ["input_ids", "attention_mask", "global_attention_mask"]
    axes = {n: {0: "batch_size", 1: "encoder_sequence_length"} for n in [*names, "last_hidden_state"]}
    glob = torch.zeros_like(ids)
    glob[:, 0] = 1
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Encoder(), (ids, torch.ones_like(ids), glob), str(folder / "encoder_model.onnx"),
                          input_names=names, output_names=["last_hidden_state"], dynamic_axes=axes,
                          opset_version=17, dynamo=False)
    report = tmp_path / "audit.json"
    code, out, err = audit(capsys, folder, onnx_checkpoint, "--examples", "1", "--json", str(report))
    assert code == 1, out + err
    data = json.loads(report.read_text())
    first = data["first_failures"]["encoder_model.onnx"]
    assert first["case"] == 0 and first["differs"] == "the file records no traced shape to compare with"
    assert "encoder_model.onnx first fails at case 0" in out
    assert not any(c["passed"] for c in data["comparisons"])


def test_export_onnx_fails_when_its_audit_fails(onnx_checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(export.ATTENTIONS, "dense", globals_unseen_by_local_rows)
    code = cli.main(["export-onnx", onnx_checkpoint, str(tmp_path / "out"), "--exporter", "torchscript",
                     "--encoder-only", "--examples", "1", "--seed", "0"])
    captured = capsys.readouterr()
    assert code == 1
    assert "failed its audit" in captured.err and "exported and audited" not in captured.out


# ------------------------------------------------------------------------------------------- input errors
def test_bad_onnx_dirs_exit_2_with_one_line(onnx_checkpoint, onnx_export, tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "decoder_model.onnx").write_bytes(b"")
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "encoder_model.onnx").write_bytes(b"not an onnx file")
    foreign = tmp_path / "foreign"  # an encoder taking an input LED has no use for
    foreign.mkdir()
    graph = helper.make_graph([helper.make_node("Identity", ["token_type_ids"], ["last_hidden_state"])], "g",
                              [helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, ["b", "n"])],
                              [helper.make_tensor_value_info("last_hidden_state", TensorProto.INT64, ["b", "n"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(foreign / "encoder_model.onnx"))
    wider = tiny_checkpoint(tmp_path / "wider", d_model=32)  # a checkpoint the files were not exported from
    cases = [
        (tmp_path / "missing", onnx_checkpoint, "is not a folder"),
        (empty, onnx_checkpoint, "no encoder_model.onnx in"),
        (garbage, onnx_checkpoint, "is not an ONNX file ONNX Runtime can load"),
        (foreign, onnx_checkpoint, "has an input 'token_type_ids' that is not an LED input"),
        (onnx_export, str(wider), "the ONNX files are not an export of this checkpoint"),
        (onnx_export, str(tmp_path / "no_checkpoint"), "no_checkpoint"),
    ]
    for onnx_dir, ckpt, message in cases:
        code, out, err = audit(capsys, onnx_dir, ckpt)
        assert code == 2, (onnx_dir, out, err)
        assert message in err and len(err.strip().splitlines()) == 2, err  # the seed line, then the error
        assert "Traceback" not in err
    code = cli.main(["audit-onnx", onnx_export, "--checkpoint", onnx_checkpoint, "--text", str(tmp_path / "none.txt")])
    assert code == 2 and "is not a file" in capsys.readouterr().err
    code = cli.main(["export-onnx", onnx_checkpoint, str(tmp_path / "x"), "--attention", "banded", "--exporter",
                     "torchscript"])
    assert code == 2 and "needs the dynamo exporter" in capsys.readouterr().err


def test_onnx_errors_are_shortened():
    from parity.onnx.sessions import short_message

    raw = ("[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running Reshape node. "
           "Status Message: /onnxruntime_src/onnxruntime/core/providers/cpu/tensor/reshape_helper.h:91 "
           "onnxruntime::ReshapeHelper::ReshapeHelper(const onnxruntime::TensorShape&, bool) "
           "input_shape_size == requested_shape_size was false. Input shape:{1,1,1}, requested shape:{1,1,4,1}")
    assert short_message(RuntimeError(raw)) == (
        "Non-zero status code returned while running Reshape node. Status Message: input_shape_size == "
        "requested_shape_size was false. Input shape:{1,1,1}, requested shape:{1,1,4,1}")
    assert len(short_message(RuntimeError("x" * 1000))) == 300
