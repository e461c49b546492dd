"""`led-parity gpu-check` on a machine without a GPU: the dry run lists real commands (pytest files holding
`cuda` tests, CLI commands the parser accepts) within the 8-minute budget; without CUDA the real run exits 2
with one line; the step runner, the readers of each step's numbers and the summary work on stand-in steps."""

from __future__ import annotations

import json
import pathlib
import re
import shlex
import subprocess
import sys

import pytest
import torch

from parity.commands import build_parser, gpu_check, main
from parity.perf.options import Options
from parity.perf.results import BenchResult, Row

ROOT = pathlib.Path(__file__).resolve().parents[1]


def dry_run(tmp_path, capsys) -> list[tuple[int, list[str]]]:
    assert main(["gpu-check", "--dry-run", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"budget {gpu_check.BUDGET_S} s" in out and str(tmp_path / "summary.md") in out
    steps = re.findall(r"^\d+\. \[\s*(\d+) s\] [^:]+: (.+)$", out, re.M)
    return [(int(limit), shlex.split(command)) for limit, command in steps]


def test_the_dry_run_lists_real_commands_within_the_budget(tmp_path, capsys):
    steps = dry_run(tmp_path, capsys)
    assert sum(limit for limit, _ in steps) <= gpu_check.BUDGET_S
    kinds = [cmd[2] if cmd[2] == "pytest" else cmd[3] for _, cmd in steps]
    assert kinds == ["pytest", "gate", "gate", "gate", "bench"]
    markers = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'"cuda: ', markers), "the cuda marker is registered"
    for _, cmd in steps:
        assert cmd[0] == sys.executable and cmd[1] == "-m"
        if cmd[2] == "pytest":
            files = [a for a in cmd if a.startswith("tests/")]
            assert files and all((ROOT / f).is_file() for f in files)
            assert cmd[cmd.index("-m", 2) + 1] == "cuda"
        else:
            assert cmd[2] == "parity"
            args = build_parser().parse_args(cmd[3:])  # exits (SystemExit) on anything the CLI does not take
            assert args.device == "cuda" and args.dtype == "bfloat16"
    gated = {cmd[cmd.index("--attention") + 1] for _, cmd in steps if "--attention" in cmd}
    assert gated == set(gpu_check.GATE_KERNELS.values())
    bench = steps[-1][1]
    for flag, value in (("--shape", "large"), ("--seq", "16384"), ("--hf-dtype", "float16")):
        assert bench[bench.index(flag) + 1] == value


def test_the_pytest_step_selects_cuda_tests_in_every_listed_file(tmp_path, capsys):
    (_, cmd), *_ = dry_run(tmp_path, capsys)
    collect = [a for a in cmd if not a.startswith("--junitxml")] + ["--collect-only"]
    proc = subprocess.run(collect, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    collected = [line.split("::")[0] for line in proc.stdout.splitlines() if "::" in line]
    assert set(collected) == {a for a in cmd if a.startswith("tests/")}, "each listed file holds cuda tests"
    assert len(collected) >= 20, proc.stdout[-2000:]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_without_cuda_it_exits_2_with_one_line(tmp_path, capsys):
    assert main(["gpu-check", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "CUDA" in err
    assert not (tmp_path / "summary.json").exists()


def test_every_gate_step_parses_as_a_gate_command_with_a_time_bound_and_a_json_verdict(tmp_path):
    from parity.commands import build_parser

    steps = [s for s in gpu_check.plan(tmp_path) if s.kind == "gate"]
    assert len(steps) == len(gpu_check.GATE_KERNELS)
    for step in steps:
        args = build_parser().parse_args(step.command[3:])  # after `python -m parity`
        assert (args.command, args.profile, args.json) == ("gate", "realistic", step.artifact)
        assert 0 < args.max_seconds < step.limit_s
        assert args.allow_incomplete  # a time-boxed smoke run: its JSON says how many shapes it reached


def test_steps_run_with_limits_and_the_summary_records_each(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "device_info", lambda: {"gpu": "stand-in", "torch": torch.__version__})
    py = sys.executable
    steps = [
        gpu_check.Step("ok", [py, "-c", "print('ok: k matches the spec on 8 cases; max scaled error 1.50e-03')"],
                       30, "gate"),
        gpu_check.Step("fails", [py, "-c", "print('mismatch: k; scaled error: 2.0e-01'); raise SystemExit(1)"],
                       30, "gate"),
        gpu_check.Step("hangs", [py, "-c", "import time; time.sleep(60)"], 1, "gate"),
    ]
    summary = gpu_check.run_all(steps, tmp_path, carry_over=False)
    status = {s["name"]: s["status"] for s in summary["steps"]}
    assert status == {"ok": "passed", "fails": "failed", "hangs": "timeout"}
    assert summary["status"] == "failed"
    numbers = {s["name"]: s["numbers"] for s in summary["steps"]}
    assert numbers["ok"] == {"verdict": "ok", "max_error": 1.5e-3}
    assert numbers["fails"] == {"verdict": "mismatch", "max_error": 0.2}
    walls = {s["name"]: s["wall_s"] for s in summary["steps"]}
    assert all(w >= 0 for w in walls.values()) and 1 <= walls["hangs"] < 30  # killed at its 1 s limit
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    md = (tmp_path / "summary.md").read_text()
    assert "| hangs | timeout |" in md and "| fails | failed |" in md and "stand-in" in md
    assert (tmp_path / "ok.log").read_text().startswith("ok: k matches")


def test_time_a_step_leaves_unused_goes_to_the_next(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "device_info", lambda: {})
    py = sys.executable
    steps = [gpu_check.Step("quick", [py, "-c", "pass"], 60, "gate"),
             gpu_check.Step("needs more than its own limit", [py, "-c", "import time; time.sleep(3)"], 1, "gate")]
    summary = gpu_check.run_all(steps, tmp_path)
    assert [s["status"] for s in summary["steps"]] == ["passed", "passed"]
    assert summary["steps"][1]["limit_s"] > 3


def test_a_pytest_step_without_its_test_files_is_an_error_not_a_run(tmp_path):
    step = gpu_check.Step("pytest (cuda)", [sys.executable, "-m", "pytest", "tests/no_such_test.py"], 30, "pytest")
    result = gpu_check.run_step(step, tmp_path)
    assert result.status == "error" and "tests/no_such_test.py not found" in result.numbers["reason"]


def test_pytest_counts_come_from_the_junit_file(tmp_path):
    xml = tmp_path / "pytest.xml"
    xml.write_text('<testsuites><testsuite name="pytest" tests="5" failures="1" errors="0" skipped="2">'
                   '<testcase classname="tests.test_cuda" name="test_a"><failure message="x"/></testcase>'
                   '<testcase classname="tests.test_cuda" name="test_b"/></testsuite></testsuites>')
    counts = gpu_check.pytest_numbers(str(xml), "")
    assert counts == {"tests": 5, "failures": 1, "errors": 0, "skipped": 2, "passed": 2,
                      "failed_tests": ["tests.test_cuda::test_a"]}
    assert gpu_check.pytest_numbers(None, "== 3 passed, 2 skipped in 1.0s ==") == {"passed": 3, "skipped": 2}


def bench_json(hf_encoder_s=3.0, ours_encoder_s=0.5, ours_peak=1000 * 2**20) -> dict:
    flops = 10**14
    rows = [Row("encoder", 16384, "hf", "float16", [hf_encoder_s], 6000 * 2**20, flops=flops),
            Row("encoder", 16384, "triton", "bfloat16", [ours_encoder_s], ours_peak, flops=flops, matched=True),
            Row("encoder", 16384, "banded", "bfloat16", [1.5], 2000 * 2**20, flops=flops, matched=True),
            Row("generate", 1024, "hf", "float16", [2.0]),
            Row("generate", 1024, "triton", "bfloat16", [1.0], matched=True)]
    for r in rows:
        hf = next(h for h in rows if h.impl == "hf" and h.task == r.task)
        r.speedup_vs_hf = hf.median / r.median
    result = BenchResult(Options(shape="large", seqs=(16384,), device="cuda", dtype="bfloat16"),
                         {"gpu": "stand-in H200"}, {"gflops": 500_000.0, "size": 8192, "dtype": "bfloat16",
                                                    "kernel": "torch.matmul", "device": "cuda"}, rows)
    return json.loads(json.dumps(result.to_dict()))


def test_bench_numbers_in_tflops_and_the_targets():
    numbers = gpu_check.bench_numbers(bench_json())
    assert numbers["ceiling_tflops"] == pytest.approx(500.0)
    triton = next(r for r in numbers["rows"] if r["impl"] == "triton" and r["task"] == "encoder")
    assert triton["tflops"] == pytest.approx(200.0) and triton["fraction_of_ceiling"] == pytest.approx(0.4)
    assert triton["peak_mb"] == pytest.approx(1000)
    t = numbers["targets"]
    assert t["encoder_fraction_of_ceiling"] == {"value": pytest.approx(0.4), "impl": "triton", "target": 0.4,
                                                "met": True}
    assert t["encoder_speedup"]["value"] == pytest.approx(6.0) and t["encoder_speedup"]["met"]
    assert t["generate_speedup"]["value"] == pytest.approx(2.0) and t["generate_speedup"]["met"] is False
    assert t["memory_fraction_of_hf"]["value"] == pytest.approx(1 / 6) and t["memory_fraction_of_hf"]["met"]

    slow = gpu_check.bench_numbers(bench_json(ours_encoder_s=2.0, ours_peak=5000 * 2**20))["targets"]
    assert slow["encoder_speedup"]["met"] is False and slow["encoder_fraction_of_ceiling"]["impl"] == "banded"
    assert slow["memory_fraction_of_hf"]["value"] == pytest.approx(2000 / 6000)

    summary = {"started": "now", "wall_s": 1.0, "status": "passed", "device": {"gpu": "stand-in H200"},
               "steps": [dict(name="bench", command="c", limit_s=180, status="passed", returncode=0, wall_s=1.0,
                              numbers=numbers, log="bench.log")]}
    md = gpu_check.markdown(summary)
    assert "500.0 TFLOP/s" in md and "| encoder | 16384 | triton | bfloat16 | 0.5 | 6.00x | 1000 | 200.0 | 40% |" in md
    assert "| generate_speedup | 3.0 | 2 | triton | **no** |" in md


def test_steps_run_strict_and_the_bench_step_reports_the_backends_served():
    from led_torch.backends import STRICT_ENV

    assert gpu_check.step_env()[STRICT_ENV] == "1"
    data = dict(bench_json(), backends_served={"triton:cuda:bfloat16": 24})
    numbers = gpu_check.bench_numbers(data)
    assert numbers["backends_served"] == {"triton:cuda:bfloat16": 24}
    result = gpu_check.StepResult("bench", "", 1, numbers=numbers)
    assert "triton:cuda:bfloat16 x24" in gpu_check.step_numbers_text(result)
