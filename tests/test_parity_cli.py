"""The CLI end to end: exit codes, the default run, check/audit/info output, argument errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from parity import commands as cli


def run_cli(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "parity", *args], capture_output=True, text=True, timeout=timeout)


def test_check_subprocess_agrees_and_writes_json(tmp_path):
    report = tmp_path / "report.json"
    done = run_cli("check", "--examples", "2", "--seed", "3", "--no-default", "--backend", "banded",
                   "--dtype", "float32", "--no-progress", "--json", str(report))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "seed: 3" in done.stderr and "all agree (seed 3)" in done.stdout
    data = json.loads(report.read_text())
    assert data["passed"] is True and data["seed"] == 3 and data["comparisons"]
    assert all(c["first_divergence"] is None for c in data["comparisons"])


def test_default_run_is_check_on_the_default_model(capsys):
    assert cli.main(["--examples", "1", "--seed", "0", "--dtype", "float32", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "default-" in out and "generation" in out and "all agree" in out


def test_info(capsys):
    assert cli.main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert os.path.isfile(os.path.join(info["checkpoint"], "config.json")) and info["parameters"] > 0
    assert "banded" in info["torch_backends_cpu"]
    assert info["architecture"] == "LEDForConditionalGeneration"  # led_ref.io.checkpoint.infer_architecture


def test_audit_with_hf(tmp_path, capsys):
    pytest.importorskip("transformers")
    from led_ref.io.default_model import DEFAULT_TEXT, default_checkpoint_dir

    text = tmp_path / "text.txt"
    text.write_text(DEFAULT_TEXT)
    report = tmp_path / "audit.json"
    code = cli.main(["audit", "--checkpoint", str(default_checkpoint_dir()), "--text", str(text), "--hf",
                     "--max-new-tokens", "3", "--json", str(report)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "torch:banded:float32 vs ref:float64: agree" in out and "hf:float32 vs ref:float64: agree" in out
    assert json.loads(report.read_text())["passed"] is True


@pytest.mark.parametrize("argv, message", [
    (["gate", "--attention", "no_colon"], "package.module:function"),
    (["gate", "--attention", "parity.gate.broken_kernels:missing"], "missing"),
    (["gate", "--attention", "parity.gate.broken_kernels:dense_attention", "--examples", "0"], "--examples"),
])
def test_usage_errors_exit_2(argv, message, capsys):
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_replay_missing_file_exits_2_naming_it(tmp_path, capsys):
    assert cli.main(["replay", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "case.json" in err and err.count("\n") == 1 and "Traceback" not in err


def test_crash_inside_a_command_is_one_line_exit_1(monkeypatch, capsys):
    def boom(args):
        raise RuntimeError("kaboom\nsecond line")

    from parity.commands import info

    monkeypatch.setattr(cli, "COMMANDS", [cli.Command("info", "", info.add_info_arguments, boom)])
    assert cli.main(["info"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: RuntimeError: kaboom second line") and err.count("\n") == 1


def _raise_in_call(monkeypatch, package, method: str, error: Exception) -> None:
    """Every model class of `package` raises `error` when called (a crash of that implementation)."""
    def broken(self, *args, **kwargs):
        raise error

    for name in ("LEDModel", "LEDForConditionalGeneration", "LEDForSequenceClassification",
                 "LEDForQuestionAnswering"):
        monkeypatch.setattr(getattr(package, name), method, broken)


@pytest.mark.parametrize("side", ["led_ref", "led_torch"])
def test_a_crash_of_either_implementation_in_check_is_exit_1_with_a_reproducer(side, monkeypatch, tmp_path, capsys):
    # A ValueError is what a user's bad input would raise; inside a comparison it is a finding, not bad usage.
    import led_ref
    import led_torch

    package, method = (led_ref, "__call__") if side == "led_ref" else (led_torch, "forward")
    _raise_in_call(monkeypatch, package, method, ValueError(f"{side} broke on a generated case"))
    repro = tmp_path / "repro"
    code = cli.main(["check", "--examples", "1", "--seed", "3", "--no-default", "--no-progress", "--backend",
                     "banded", "--repro-dir", str(repro), "--shrink-seconds", "5"])
    out, err = capsys.readouterr()
    assert code == 1
    assert f"{side} broke on a generated case" in out + err
    assert (repro / "case.json").is_file() and "replay" in err
