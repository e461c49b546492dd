"""`led-parity gpu-check`: everything a GPU must confirm, in one run of at most 8 minutes on one H100/H200.

Steps, in order, each a subprocess with its own time limit (killed past it, recorded as a timeout; time a
step leaves unused is added to the next one's limit, so the run still ends within the sum of the limits):

  1. the CUDA tests (`pytest -m cuda`): compiled Triton in every dtype and tile width, compiled flex forward
     and backward, the whole model in float16/bfloat16 against the float64 spec per backend;
  2. `led-parity gate --device cuda --dtype bfloat16` for each CUDA backend (banded, flex, triton), with
     `--profile realistic` when this version of `gate` has profiles;
  3. `led-parity bench --device cuda --shape large --seq 16384 --dtype bfloat16 --hf-dtype float16 --task all`:
     LED-large encoder at 16,384 tokens and beam-4 generation, against HF in float16, with the bf16 matmul
     ceiling measured in the same run (`--no-spec-tokens`: the float64 spec's CPU generation at LED-large,
     ~1.5 minutes, does not fit the step's limit; `led-parity bench --device cuda --task generate` judges the
     tokens against it).

It writes `summary.md` and `summary.json` (plus one log per step) to `--out`: per step its command, limit,
status, wall time and numbers (test counts, gate verdicts, bench times / peak memory / TFLOP/s / share of
the matmul ceiling), and the README targets met or missed. `--dry-run` prints the plan and exits 0 anywhere;
without a CUDA device it exits 2. Exit 0 when every step passed, 1 otherwise. Run it from a checkout (the
first step runs the repository's tests).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from parity.commands.exits import UsageError
from parity.commands.flags import Command

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 480  # the whole run on one H100/H200: 8 minutes
GATE_KERNELS = {
    "banded": "led_torch.backends.banded:banded_longformer_attention",
    "flex": "led_torch.backends.flex:flex_longformer_attention",
    "triton": "led_torch.backends.triton_banded:triton_longformer_attention",
}
# Files holding the tests marked `cuda` (pytest -m cuda selects within them).
CUDA_TEST_FILES = ("tests/test_cuda.py", "tests/test_backend_triton.py", "tests/test_backend_flex.py")
LIMITS = {"pytest": 150, "gate": 45, "bench": 180}  # seconds; 150 + 3 x 45 + 180 = 465 <= BUDGET_S
GATE_EXAMPLES = 8
# README targets: encoder bf16 >= 40% of the matmul ceiling and >= 3x HF fp16, generation >= 3x HF
# fp16, peak memory <= 1/4 of HF's.
TARGETS = {"encoder_fraction_of_ceiling": 0.40, "encoder_speedup": 3.0, "generate_speedup": 3.0,
           "memory_fraction_of_hf": 0.25}


@dataclass
class Step:
    name: str
    command: list[str]
    limit_s: int
    kind: str  # pytest | gate | bench (how its numbers are read)
    artifact: str | None = None  # a JSON file the step writes, read for its numbers


@dataclass
class StepResult:
    name: str
    command: str
    limit_s: int
    status: str = "not run"  # passed | failed | timeout | error | not run
    returncode: int | None = None
    wall_s: float = 0.0
    numbers: dict = field(default_factory=dict)
    log: str = ""


# ------------------------------------------------------------------------------------------ the plan
def plan(out_dir: Path, python: str = sys.executable) -> list[Step]:
    """The steps of one gpu-check, in order."""
    out = Path(out_dir)
    steps = [Step("pytest (cuda)", [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda",
                                    "-o", "addopts=", f"--junitxml={out / 'pytest.xml'}", *CUDA_TEST_FILES],
                  LIMITS["pytest"], "pytest", str(out / "pytest.xml"))]
    for backend, spec in GATE_KERNELS.items():
        json_path = str(out / f"gate-{backend}.json")
        steps.append(Step(f"gate {backend}", [python, "-m", "parity", "gate", "--attention", spec, "--device", "cuda",
                                              "--dtype", "bfloat16", "--examples", str(GATE_EXAMPLES), "--seed", "0",
                                              "--profile", "realistic", "--max-seconds",
                                              str(LIMITS["gate"] - 15), "--allow-incomplete", "--json", json_path],
                          LIMITS["gate"], "gate", json_path))
    bench_json = str(out / "bench.json")
    steps.append(Step("bench", [python, "-m", "parity", "bench", "--device", "cuda", "--shape", "large", "--seq",
                                "16384", "--dtype", "bfloat16", "--hf-dtype", "float16", "--task", "all",
                                "--json", bench_json, "--markdown", "--no-spec-tokens"],
                      LIMITS["bench"], "bench", bench_json))
    return steps


def describe(steps: list[Step]) -> str:
    lines = [f"led-parity gpu-check: {len(steps)} steps, at most {sum(s.limit_s for s in steps)} s "
             f"(budget {BUDGET_S} s); time a step leaves unused is added to the next step's limit"]
    for i, step in enumerate(steps, 1):
        lines.append(f"{i}. [{step.limit_s:>3} s] {step.name}: {shlex.join(step.command)}")
    return "\n".join(lines)


def describe_outputs(out_dir: Path) -> str:
    return f"summary: {Path(out_dir) / 'summary.md'} and {Path(out_dir) / 'summary.json'}, one .log per step"


# ------------------------------------------------------------------------------------------ running
def step_env() -> dict:
    """The steps' environment: compiled Triton (never the interpreter), this checkout importable, and `auto`
    strict (a backend that cannot serve a call raises instead of quietly handing it to the next one)."""
    from led_torch.backends import STRICT_ENV

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env[STRICT_ENV] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("HYPOTHESIS_PROFILE", "ci")
    return env


def run_step(step: Step, out_dir: Path, limit_s: float | None = None) -> StepResult:
    """Run one step (its own process group, killed after `limit_s`, default the step's own limit); its output
    goes to <out>/<name>.log."""
    limit_s = step.limit_s if limit_s is None else limit_s
    log = Path(out_dir) / (re.sub(r"[^a-z0-9]+", "-", step.name.lower()).strip("-") + ".log")
    result = StepResult(step.name, shlex.join(step.command), round(limit_s), log=str(log))
    missing = [a for a in step.command if a.startswith("tests/") and not (ROOT / a).exists()]
    if missing:  # an installed package without its tests: the CUDA tests live in a checkout
        result.status, result.numbers = "error", {"reason": f"{', '.join(missing)} not found under {ROOT}"}
        return result
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as fh:
        proc = subprocess.Popen(step.command, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, env=step_env(),
                                start_new_session=True)
        try:
            result.returncode = proc.wait(timeout=limit_s)
            result.status = "passed" if result.returncode == 0 else "failed"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            result.status = "timeout"
    result.wall_s = round(time.perf_counter() - start, 1)
    try:
        result.numbers = read_numbers(step, log.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError, KeyError) as err:
        result.numbers = {"unreadable": f"{type(err).__name__}: {err}"}
    return result


def read_numbers(step: Step, output: str) -> dict:
    if step.kind == "pytest":
        return pytest_numbers(step.artifact, output)
    if step.kind == "gate":
        return gate_numbers(step.artifact, output)
    if step.kind == "bench":
        return bench_numbers(json.loads(Path(step.artifact).read_text())) if Path(step.artifact).exists() else {}
    return {}


def pytest_numbers(junit_path: str | None, output: str) -> dict:
    """Counts from the JUnit XML (tests, failures, errors, skipped), else from pytest's last line."""
    if junit_path and Path(junit_path).exists():
        import xml.etree.ElementTree as ET

        root = ET.parse(junit_path).getroot()
        suite = root if root.tag == "testsuite" else root.find("testsuite")
        counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
        counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
        counts["failed_tests"] = [f"{c.get('classname')}::{c.get('name')}" for c in suite.iter("testcase")
                                  if c.find("failure") is not None or c.find("error") is not None]
        return counts
    return {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?)", output)}


def gate_numbers(json_path: str | None, output: str) -> dict:
    """The gate's verdict: its JSON when this version writes one, else read from its printed message
    ("ok: ... max scaled error E <= T" or "mismatch: ... scaled error: E")."""
    if json_path and Path(json_path).exists():
        data = json.loads(Path(json_path).read_text())
        keys = ("verdict", "profile", "cases_run", "shapes_run", "planned_shapes", "complete", "worst_error",
                "max_error", "tolerance", "seconds")
        return {k: data[k] for k in keys if k in data}
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    verdict = next((line.split(":")[0] for line in lines if line.startswith(("ok:", "mismatch:", "error:"))), None)
    numbers = {"verdict": verdict or "no verdict printed"}
    match = re.search(r"scaled error:? ([0-9.]+e[-+]?[0-9]+)", output)
    if match:
        numbers["max_error"] = float(match.group(1))
    return numbers


def bench_numbers(data: dict) -> dict:
    """Per (task, seq, impl): median s, speed-up over HF, peak MB, TFLOP/s and share of the bf16 matmul
    ceiling measured in the same run; plus the README targets for the best led_torch backend."""
    ceiling = data.get("matmul_ceiling", {})
    rows = []
    for r in data.get("rows", []):
        rows.append({"task": r["task"], "seq": r["seq"], "impl": r["impl"], "dtype": r["dtype"],
                     "median_s": r.get("median_s"), "speedup_vs_hf": r.get("speedup_vs_hf"),
                     "peak_mb": r["peak_bytes"] / 2**20 if r.get("peak_bytes") is not None else None,
                     "tflops": r["gflops"] / 1e3 if r.get("gflops") else None,
                     "fraction_of_ceiling": r.get("fraction_of_ceiling"), "matched": r.get("matched"),
                     "note": r.get("note", "")})
    return {"ceiling_tflops": ceiling["gflops"] / 1e3 if ceiling.get("gflops") else None,
            "ceiling": {k: ceiling.get(k) for k in ("dtype", "size", "kernel", "device")},
            "gpu": data.get("machine", {}).get("gpu"), "rows": rows, "all_matched": data.get("all_matched"),
            "backends_served": data.get("backends_served", {}), "targets": targets(rows)}


def targets(rows: list[dict]) -> dict:
    """Each README target: the best led_torch backend's value and whether it is met (None: not measured)."""
    def best(task, key, higher=True):
        values = [(r[key], r["impl"]) for r in rows if r["task"] == task and r["impl"] not in ("hf", "led_ref")
                  and r.get(key) is not None]
        return (max if higher else min)(values) if values else (None, None)

    hf_peak = {r["task"]: r["peak_mb"] for r in rows if r["impl"] == "hf" and r.get("peak_mb")}
    memory = [(r["peak_mb"] / hf_peak["encoder"], r["impl"]) for r in rows if r["task"] == "encoder"
              and r["impl"] not in ("hf", "led_ref") and r.get("peak_mb") and hf_peak.get("encoder")]
    found = {"encoder_fraction_of_ceiling": best("encoder", "fraction_of_ceiling"),
             "encoder_speedup": best("encoder", "speedup_vs_hf"),
             "generate_speedup": best("generate", "speedup_vs_hf"),
             "memory_fraction_of_hf": min(memory) if memory else (None, None)}
    out = {}
    for name, (value, impl) in found.items():
        goal = TARGETS[name]
        met = None if value is None else (value <= goal if name == "memory_fraction_of_hf" else value >= goal)
        out[name] = {"value": value, "impl": impl, "target": goal, "met": met}
    return out


def device_info() -> dict:
    import torch

    info = {"torch": torch.__version__, "cuda": torch.version.cuda}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["capability"] = "sm_{}{}".format(*torch.cuda.get_device_capability(0))
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    return info


# ------------------------------------------------------------------------------------------ the summary
def _fmt(value, spec="{:.3g}") -> str:
    return "-" if value is None else spec.format(value)


def step_numbers_text(result: StepResult) -> str:
    n = result.numbers
    if "tests" in n:
        text = f"{n['passed']} passed, {n['failures'] + n['errors']} failed, {n['skipped']} skipped"
        return text + (f" ({', '.join(n['failed_tests'][:3])})" if n.get("failed_tests") else "")
    if "verdict" in n:
        text = ", ".join(f"{k} {v}" for k, v in n.items() if k in ("verdict", "max_error", "worst_error",
                                                                    "cases_run"))
        if n.get("planned_shapes"):
            text += f", {n.get('shapes_run')} of {n['planned_shapes']} shapes in its time limit"
        return text
    if "rows" in n:
        served = ", ".join(f"{k} x{v}" for k, v in n.get("backends_served", {}).items()) or "none recorded"
        return f"matmul ceiling {_fmt(n['ceiling_tflops'], '{:.0f}')} TFLOP/s; attention calls served by: {served}"
    return ", ".join(f"{k} {v}" for k, v in n.items())


def markdown(summary: dict) -> str:
    d = summary["device"]
    lines = ["# led-parity gpu-check", "",
             f"{d.get('gpu', 'no GPU')} ({d.get('capability', '-')}), torch {d.get('torch')} (CUDA {d.get('cuda')}), "
             f"triton {d.get('triton')}; {summary['started']}; total {summary['wall_s']:.0f} s "
             f"(budget {BUDGET_S} s); **{summary['status']}**", "",
             "| step | status | wall s | limit s | numbers |", "| --- | --- | --- | --- | --- |"]
    for r in summary["steps"]:
        lines.append(f"| {r['name']} | {r['status']} | {r['wall_s']} | {r['limit_s']} | "
                     f"{step_numbers_text(StepResult(**r))} |")
    bench = next((r["numbers"] for r in summary["steps"] if "rows" in r["numbers"]), None)
    if bench:
        lines += ["", f"## bench: LED-large, bf16 against HF fp16 ({bench.get('gpu')})", "",
                  f"bf16 matmul ceiling measured in the run: {_fmt(bench['ceiling_tflops'], '{:.1f}')} TFLOP/s "
                  f"({bench['ceiling'].get('size')}x{bench['ceiling'].get('size')}, {bench['ceiling'].get('kernel')})",
                  "", "| task | seq | impl | dtype | median s | vs HF | peak MB | TFLOP/s | % of ceiling | match |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in bench["rows"]:
            match = {True: "yes", False: "NO", None: "ref"}[r["matched"]] + (f" ({r['note']})" if r["note"] else "")
            lines.append(f"| {r['task']} | {r['seq']} | {r['impl']} | {r['dtype']} | {_fmt(r['median_s'])} | "
                         f"{_fmt(r['speedup_vs_hf'], '{:.2f}x')} | {_fmt(r['peak_mb'], '{:.0f}')} | "
                         f"{_fmt(r['tflops'], '{:.1f}')} | {_fmt(r['fraction_of_ceiling'], '{:.0%}')} | {match} |")
        lines += ["", "| target | goal | measured | backend | met |", "| --- | --- | --- | --- | --- |"]
        for name, t in bench["targets"].items():
            met = {True: "yes", False: "**no**", None: "not measured"}[t["met"]]
            lines.append(f"| {name} | {t['target']} | {_fmt(t['value'])} | {t['impl'] or '-'} | {met} |")
    return "\n".join(lines) + "\n"


def run_all(steps: list[Step], out_dir: Path, carry_over: bool = True) -> dict:
    """Run every step (a failure does not stop the next), write summary.json and summary.md, return the summary.
    With `carry_over`, time a step leaves unused is added to the next step's limit, so the run still ends
    within the sum of the limits."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    start = time.perf_counter()
    results, spare = [], 0.0
    for step in steps:
        limit = step.limit_s + spare
        print(f"gpu-check: {step.name} (limit {limit:.0f} s) ...", file=sys.stderr, flush=True)
        result = run_step(step, out_dir, limit)
        spare = max(0.0, limit - result.wall_s) if carry_over else 0.0
        print(f"gpu-check: {step.name}: {result.status} in {result.wall_s} s", file=sys.stderr, flush=True)
        results.append(result)
    summary = {"started": started, "wall_s": round(time.perf_counter() - start, 1), "device": device_info(),
               "status": "passed" if all(r.status == "passed" for r in results) else "failed",
               "steps": [asdict(r) for r in results]}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    (out_dir / "summary.md").write_text(markdown(summary), encoding="utf-8")
    return summary


# ------------------------------------------------------------------------------------------ CLI
def run(args: argparse.Namespace) -> int:
    out = Path(args.out).resolve()  # the steps run in the repository root, the summary goes where asked
    steps = plan(out)
    if args.dry_run:
        print(describe(steps))
        print(describe_outputs(out))
        return 0
    import torch

    if not torch.cuda.is_available():
        raise UsageError("gpu-check needs a CUDA device and torch sees none here (--dry-run prints the plan)")
    summary = run_all(steps, out)
    print(markdown(summary))
    print(describe_outputs(out))
    return 0 if summary["status"] == "passed" else 1


def add_gpu_check_arguments(parser) -> None:
    parser.add_argument("--out", default="gpu-check", help="folder for summary.md, summary.json and the logs "
                        "(default ./gpu-check)")
    parser.add_argument("--dry-run", action="store_true", help="print the steps (commands, limits) and exit 0")


COMMAND = Command("gpu-check", "everything a GPU must confirm, one <= 8 min run with a markdown + JSON summary",
                  add_gpu_check_arguments, run)
