"""The Python API of parity.onnx as docs/onnx.md shows it (the example runs as written), float16 exports audited
with the float16 budget, and `bench --onnx` on a tiny export."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("torch")

from parity import commands as cli  # noqa: E402
from parity.harness.tolerances import tolerance  # noqa: E402
from parity.onnx import export  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLE_MARK = "<!-- the example below runs in tests/test_onnx_api.py -->"


def docs_example() -> str:
    text = (ROOT / "docs" / "onnx.md").read_text(encoding="utf-8")
    after = text.split(EXAMPLE_MARK, 1)[1]
    return re.search(r"```python\n(.*?)```", after, re.S).group(1)


def test_the_documented_example_runs(tmp_path):
    script = tmp_path / "example.py"
    script.write_text(docs_example())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.rstrip().endswith("(1, 4, 64)") and "[2, 19]" in done.stdout
    assert {"encoder_model.onnx", "decoder_model.onnx", "decoder_with_past_model.onnx", "config.json",
            "vocab.json"} <= set(os.listdir(tmp_path / "exported"))


def test_the_package_names_its_api_without_loading_torch():
    code = ("import sys, parity.onnx as o; "
            "print(sorted(o.__all__), 'torch' in sys.modules, 'onnxruntime' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.stdout.split("]")[1].split() == ["False", "False"], done.stdout + done.stderr
    for name in ("audit_onnx", "export_onnx", "check_export", "OnnxLED"):
        assert name in done.stdout


def test_a_float16_export_passes_its_audit_with_the_float16_budget(onnx_checkpoint, tmp_path, capsys):
    report = tmp_path / "audit.json"
    code = cli.main(["export-onnx", onnx_checkpoint, str(tmp_path / "f16"), "--dtype", "float16", "--exporter",
                     "torchscript", "--examples", "2", "--seed", "0", "--json", str(report)])
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    data = json.loads(report.read_text())
    assert data["files"]["encoder_model.onnx"]["outputs"]["last_hidden_state"]  # declared
    errors = [o["error"] for c in data["comparisons"] for o in c["outputs"]]
    budgets = {o["tolerance"] for c in data["comparisons"] for o in c["outputs"]}
    # half precision shows (a float32 budget would fail it), and the float16 budget holds
    assert max(errors) > tolerance("float32", "float64")
    assert budgets == {tolerance("float16", "float64", kind) for kind in ("hidden", "logits", "cache")}
    assert all(c["passed"] for c in data["comparisons"])
    assert [g["status"] for g in data["generation"]] == ["identical", "identical"]


def test_bad_dtype_is_a_value_error(onnx_checkpoint, tmp_path):
    with pytest.raises(ValueError, match="dtype must be one of float32, float16; got 'bfloat16'"):
        export.export_model(onnx_checkpoint, str(tmp_path / "x"), dtype="bfloat16")


def test_bench_onnx_times_every_implementation_and_compares_tokens(onnx_checkpoint, tmp_path, capsys):
    out = tmp_path / "export"
    export.export_model(onnx_checkpoint, str(out), dynamo=False)
    report = tmp_path / "bench.json"
    code = cli.main(["bench", "--onnx", str(out), "--seq", "16,40", "--gen-source", "30", "--new-tokens", "4",
                     "--beams", "2", "--repeats", "1", "--warmup", "0", "--json", str(report)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    rows = json.loads(report.read_text())["rows"]
    assert {(r["task"], r["impl"]) for r in rows} == {
        (task, impl) for task in ("encoder 16", "encoder 40", "generate 2 beams, 4 tokens, 30 source")
        for impl in ("led_torch", "hf", "onnx-dense")}
    assert all(r["median"] > 0 for r in rows)
    generated = [line for line in printed.splitlines() if line.startswith("generate")]
    assert len(generated) == 3 and all(line.rstrip().endswith("yes") for line in generated)
    assert "load average" in printed and "cores" in printed
