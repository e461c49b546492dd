"""`led-parity audit` for auditors: the whole text up to the model's limit (a cut is reported), global
positions, beams and new tokens from the checkpoint unless given, a report that says what it audited (header,
generated tokens and text per side, timings) and a JSON report with versions, device and positions, no progress
bar off a terminal; --outputs chooses what is compared; exit 2 with one line for every input error, an
unwritable --json before anything runs."""

from __future__ import annotations

import json
import shutil

import pytest

from led_ref.io.default_model import DEFAULT_TEXT, default_checkpoint_dir
from led_ref.io.generation_settings import GenerationConfig
from led_ref.io.tokenizer import LEDTokenizer
from parity import commands as cli


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """The default model with fine-tuned-like generation settings in generation_config.json."""
    folder = tmp_path_factory.mktemp("ckpt") / "led"
    shutil.copytree(default_checkpoint_dir(), folder)
    GenerationConfig(num_beams=2, max_length=5, no_repeat_ngram_size=3, length_penalty=2.0,
                     decoder_start_token_id=2, bos_token_id=0, eos_token_id=2, pad_token_id=1).save_pretrained(folder)
    return folder


def test_audit_reads_settings_and_reports_cuts_and_positions(checkpoint, tmp_path, capsys):
    text = tmp_path / "long.txt"
    text.write_text(DEFAULT_TEXT * 3)
    whole = len(LEDTokenizer.from_pretrained(checkpoint)(DEFAULT_TEXT * 3)["input_ids"])
    report = tmp_path / "audit.json"
    code = cli.main(["audit", "--checkpoint", str(checkpoint), "--text", str(text), "--backend", "banded",
                     "--max-tokens", "40", "--global", "0,7,12", "--json", str(report)])
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    assert f"the text has {whole} tokens; using the first 40 (--max-tokens 40)" in captured.err
    data = json.loads(report.read_text())
    assert data["passed"] is True and data["used_tokens"] == 40 and data["text_tokens"] == whole
    assert data["limit"] == 512 and data["max_tokens"] == 40  # the model's limit, and the cut asked for
    assert f"40 of the text's {whole} tokens, up to --max-tokens 40; the model's limit is 512" in captured.out
    assert data["global_positions"] == [0, 7, 12] and data["seed"] is None
    assert data["versions"]["numpy"] and data["device"].startswith("cpu")
    settings = data["generation_settings"]
    assert (settings["num_beams"], settings["max_length"], settings["length_penalty"]) == (2, 5, 2.0)
    assert "beam scores compared on 1 rows" in captured.out
    assert "global     positions 0, 7, 12" in captured.out
    assert "\r" not in captured.err  # no progress bar drawn into a captured (non-terminal) stream


def test_audit_options_override_the_checkpoint(checkpoint, tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text(DEFAULT_TEXT)
    report = tmp_path / "a.json"
    assert cli.main(["audit", "--checkpoint", str(checkpoint), "--text", str(text), "--backend", "banded",
                     "--num-beams", "1", "--max-new-tokens", "3", "--no-progress", "--json", str(report)]) == 0
    settings = json.loads(report.read_text())["generation_settings"]
    assert (settings["num_beams"], settings["max_length"]) == (1, 4)
    out = capsys.readouterr().out
    assert "note: the text has" not in out


def test_the_report_says_what_it_audited(checkpoint, tmp_path, capsys):
    """Header (sides and what they are, tokens of the limit, settings used), every side's generated tokens and
    text, timings per side, each output's worst element; the same in the JSON."""
    text = tmp_path / "t.txt"
    text.write_text(DEFAULT_TEXT)
    report = tmp_path / "a.json"
    code = cli.main(["audit", "--checkpoint", str(checkpoint), "--text", str(text), "--backend", "banded",
                     "--no-progress", "--json", str(report)])
    out = capsys.readouterr().out
    assert code == 0, out
    data = json.loads(report.read_text())
    tokenizer = LEDTokenizer.from_pretrained(checkpoint)
    header = out.split("torch:banded:float32 vs ref:float64")[0]
    assert f"audit of led: {checkpoint}" in header and "ref:float64" in header and "the NumPy spec" in header
    assert f"{data['used_tokens']} of the text's {data['used_tokens']} tokens, up to the model's limit" in header
    assert "num_beams=2, " in header and "max_length=5" in header  # the settings every side was given
    assert [s["label"] for s in data["sides"]] == ["ref:float64", "torch:banded:float32"]
    assert data["sides"][0]["meaning"].startswith("led_ref, the NumPy spec")
    assert data["outputs"] == ["hidden", "attentions", "logits", "generation"]
    generated = {g["side"]: g for g in data["generated"]}
    assert generated["ref:float64"]["tokens"] == generated["torch:banded:float32"]["tokens"]
    for g in generated.values():
        [tokens] = g["tokens"]
        assert len(tokens) == 5 and g["text"] == [tokenizer.decode(tokens, skip_special_tokens=True)]
        assert f"{tokens}  {json.dumps(g['text'][0])}" in out
    assert set(data["timings"]) == {"ref:float64", "torch:banded:float32", "comparisons"}
    assert all(data["timings"][s]["forward_s"] > 0 and data["timings"][s]["generate_s"] > 0 for s in generated)
    phases = data["peak_rss_bytes_by_phase"]
    assert list(phases) == ["load", "forward", "generation"] and all(v > 0 for v in phases.values())
    assert data["peak_rss_bytes"] == max(phases.values())
    assert f"peak resident memory of this process: {data['peak_rss_bytes'] / 2**30:.2f} GiB (load " in out
    outputs = data["comparisons"][0]["outputs"]
    assert len(outputs) == 17 and all(len(o["worst"]["index"]) == len(o["shape"]) for o in outputs)
    assert f"at {outputs[0]['worst']['index']}" in out


@pytest.mark.parametrize("outputs, kinds, generates", [
    ("hidden,generation", {"hidden"}, True),
    ("attentions", {"attention"}, False),
    ("logits", {"logits", "loss"}, False),
])
def test_outputs_chooses_what_is_compared(outputs, kinds, generates, checkpoint, tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text(DEFAULT_TEXT)
    report = tmp_path / "a.json"
    assert cli.main(["audit", "--checkpoint", str(checkpoint), "--text", str(text), "--backend", "banded",
                     "--outputs", outputs, "--json", str(report)]) == 0, capsys.readouterr().out
    data = json.loads(report.read_text())
    assert {o["kind"] for o in data["comparisons"][0]["outputs"]} == kinds
    assert bool(data["generation"]) == generates and bool(data["generated"]) == generates
    assert data["outputs"] == outputs.split(",")


@pytest.mark.parametrize("where", ["missing/a.json", "."])
def test_an_unwritable_json_is_exit_2_before_any_model_is_built(where, checkpoint, tmp_path, capsys, monkeypatch):
    from parity.harness import checkpoints

    built = []
    monkeypatch.setattr(checkpoints, "load_for_generation", lambda *a: built.append(a))
    text = tmp_path / "t.txt"
    text.write_text(DEFAULT_TEXT)
    path = str(tmp_path / where)
    code = cli.main(["audit", "--checkpoint", str(checkpoint), "--text", str(text), "--json", path])
    err = capsys.readouterr().err
    assert code == 2 and built == []
    assert err.startswith("error: --json") and repr(path) in err and err.count("\n") == 1


@pytest.mark.parametrize("argv, message", [
    (["check", "--backend", "nope", "--no-default"], "--backend nope is not a led_torch backend; choose from banded"),
    (["audit", "--checkpoint", "{ckpt}", "--text", "{text}", "--outputs", "hidden,nope"], "--outputs takes 'all'"),
    (["audit", "--checkpoint", "{ckpt}", "--text", "{missing}"], "is not a file"),
    (["audit", "--checkpoint", "{missing}", "--text", "{text}"], "missing"),
    (["audit", "--checkpoint", "{ckpt}", "--text", "{text}", "--global", "999999"], "--global position 999999"),
    (["audit", "--checkpoint", "{ckpt}", "--text", "{text}", "--num-beams", "0"], "--num-beams must be a positive"),
    (["audit", "--checkpoint", "{text}", "--text", "{text}"], "does not exist"),
    (["replay", "{ckpt}"], "case.json"),
    (["convert", "{ckpt}", "{out}"], "no pytorch_model.bin"),
    (["audit", "--checkpoint", "{no_tokenizer}", "--text", "{text}"], "vocab"),
    (["audit", "--checkpoint", "{not_checkpoint}", "--text", "{text}"], "config.json"),
])
def test_input_errors_exit_2_with_one_line(argv, message, checkpoint, tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("a short text")
    no_tokenizer = tmp_path / "no_tokenizer"  # weights and config, but no tokenizer files
    shutil.copytree(checkpoint, no_tokenizer, ignore=shutil.ignore_patterns("*.txt", "vocab.json", "tokenizer*",
                                                                            "special_tokens_map.json"))
    not_checkpoint = tmp_path / "not_checkpoint"  # a folder, but nothing of a checkpoint in it
    not_checkpoint.mkdir()
    (not_checkpoint / "notes.md").write_text("hello")
    names = {"ckpt": str(checkpoint), "missing": str(tmp_path / "missing"), "text": str(text),
             "out": str(tmp_path / "out"), "no_tokenizer": str(no_tokenizer), "not_checkpoint": str(not_checkpoint)}
    argv = [a.format(**names) for a in argv]
    try:
        code = cli.main(argv)
    except SystemExit as exit:  # argparse refuses bad option values itself, also with status 2
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2, err
    last = err.strip().splitlines()[-1]  # argparse prints its usage first; the error is one line
    assert message in last and "Traceback" not in err
    assert last.startswith(("error: ", "led-parity "))


def test_progress_is_drawn_by_tqdm_on_a_terminal_only():
    import io

    pytest.importorskip("tqdm")
    from parity.harness.check import Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal, log = Terminal(), io.StringIO()
    for stream in (terminal, log):
        bar = Progress(2, "audit", True, stream)
        bar.step("forward")
        bar.step("generate")
        bar.close()
    assert "audit:" in terminal.getvalue() and "/2 [" in terminal.getvalue() and log.getvalue() == ""
    quiet = Terminal()
    Progress(2, "audit", False, quiet).step()
    assert quiet.getvalue() == ""


@pytest.mark.parametrize("architecture", ["LEDModel", "LEDForSequenceClassification"])
def test_a_base_or_other_heads_checkpoint_is_audited_as_the_generation_model(architecture, tmp_path, capsys):
    """The file is checked as the class that wrote it (infer_architecture), then loaded with the generation
    head HF would give it (zero final_logits_bias, lm_head tied to the embeddings): HF, which refuses weights
    that do not fit, agrees."""
    pytest.importorskip("transformers")
    from led_ref.init import random_weights
    from led_ref.io.checkpoint import (
        adapt_state_dict,
        infer_architecture,
        load_checkpoint,
        read_state_dict,
        save_checkpoint,
    )

    config, base = load_checkpoint(default_checkpoint_dir(), "LEDModel")
    head = {k: v for k, v in random_weights(config, architecture, seed=1).items() if k.startswith("classification")}
    folder = tmp_path / "led"
    shutil.copytree(default_checkpoint_dir(), folder, ignore=shutil.ignore_patterns("*.safetensors"))
    save_checkpoint(folder, config, adapt_state_dict({**base, **head}, config, architecture), architecture)
    assert infer_architecture(read_state_dict(folder)) == architecture
    text = tmp_path / "t.txt"
    text.write_text(DEFAULT_TEXT)
    report = tmp_path / "a.json"
    code = cli.main(["audit", "--checkpoint", str(folder), "--text", str(text), "--backend", "banded", "--hf",
                     "--max-new-tokens", "2", "--no-progress", "--json", str(report)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "torch:banded:float32 vs ref:float64: agree" in out and "hf:float32 vs ref:float64: agree" in out
    assert "generation: 2 identical" in out
    data = json.loads(report.read_text())
    assert data["passed"] is True and [c["case"] for c in data["comparisons"]] == ["led", "led"]
