"""The kernel gate as a CI citizen (docs/contract.md, docs/parity.md):

- a run the time budget cuts short is `incomplete` (exit 1) unless allowed;
- the JSON report is strict (no Infinity/NaN), versioned, with the failure and counterexample as fields;
- the printed replay reproduces the verdict (support, atol, ... carried), a custom-cases failure is saved and
  `--replay-case` replays it, the CLI prints no `@reproduce_failure` advice, and one seed shrinks to one case;
- the half-precision backward rule accepts torch's SDPA kernel and still rejects planted backward bugs.
"""

from __future__ import annotations

import json
import shlex
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from parity.commands import build_parser, main
from parity.gate import judge
from parity.gate.broken_kernels import BROKEN_KERNELS, BUGS, TILED_BUGS, TILED_KERNELS, dense_attention
from parity.gate.judge import HALF_K, SCHEMA_VERSION, check_case, gate, half_floor, replay_case, strict_json
from parity.gate.profiles import CaseRecipe, Shape, shape_cases
from parity.gate.support import Support
from parity.harness import hypothesis_runs

TINY_TOY = Shape("toy", window=4, seq=8, head_dim=2, heads=2, max_batch=2)
DOCS = Path(__file__).resolve().parent.parent / "docs" / "parity.md"


@pytest.fixture(autouse=True)
def case_folders_in_tmp(tmp_path, monkeypatch):
    """Failing custom runs save their case to a fresh temp folder: keep this module's under tmp_path."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


def slow_attention(*args):
    """A correct kernel slow enough that a one-second budget ends a toy run early."""
    time.sleep(0.05)
    return dense_attention(*args)


def nan_on_first_row(*args):
    """Wrong in a way JSON cannot hold: NaN context on the first row."""
    out = dense_attention(*args).clone()
    out[:, :, 0] = float("nan")
    return out


def sdpa_attention(query, key, value, global_query, global_key, global_value, token_kind, window):
    """The contract on torch's scaled_dot_product_attention: the dense allowed mask per row kind, local rows
    with query/key/value, global rows with the global projections, padding rows 0 (its backward is torch's)."""
    seq = query.shape[-2]
    pos = torch.arange(seq, device=query.device)
    near = (pos[:, None] - pos[None, :]).abs() <= window // 2
    kind = token_kind.to(query.device)
    local_row, global_row = kind == 1, kind == 2
    local_keys = (near[None] & (kind == 1)[:, None, :]) | (kind == 2)[:, None, :]
    global_keys = (kind != 0)[:, None, :].expand(-1, seq, -1)
    # Rows of the other kinds see every key there, so no softmax is empty; their result is thrown away.
    local_ok = (local_keys | ~local_row[:, :, None])[:, None]
    global_ok = (global_keys | ~global_row[:, :, None])[:, None]
    local = F.scaled_dot_product_attention(query, key, value, attn_mask=local_ok, scale=1.0)
    glob = F.scaled_dot_product_attention(global_query, global_key, global_value, attn_mask=global_ok, scale=1.0)
    context = torch.where(global_row[:, None, :, None], glob, local)
    return torch.where((local_row | global_row)[:, None, :, None], context, torch.zeros_like(context))


def _reject_constant(name):
    raise ValueError(f"the report holds {name}, which strict JSON has no word for")


def _strict_loads(text: str):
    return json.loads(text, parse_constant=_reject_constant)


def _gate_cli(capsys, *argv) -> tuple[int, str]:
    code = main(["gate", *argv])
    return code, capsys.readouterr().out


# ------------------------------------------------------------------------------------------ incomplete
def test_a_run_cut_short_is_incomplete_with_exit_1_unless_allowed(tmp_path, capsys):
    report = tmp_path / "gate.json"
    argv = ["--attention", "test_gate_ci:slow_attention", "--profile", "toy", "--examples", "200", "--seed", "0",
            "--max-seconds", "1", "--json", str(report)]
    code, out = _gate_cli(capsys, *argv)
    data = _strict_loads(report.read_text())
    assert code == 1 and out.startswith("incomplete: test_gate_ci:slow_attention ran ")
    assert f"ran {data['shapes_run']} of {data['planned_shapes']} planned shapes" in out.splitlines()[0]
    assert data["verdict"] == "incomplete" and not data["passed"] and not data["complete"]
    assert 0 < data["shapes_run"] < data["planned_shapes"] and data["shapes_not_run"]
    assert "--max-seconds 1.0" in data["replay"]  # the budget shaped the run, so the replay carries it

    code, out = _gate_cli(capsys, *argv, "--allow-incomplete")
    data = _strict_loads(report.read_text())
    assert code == 0 and out.startswith("pass: ") and "incomplete run allowed" in out
    assert data["verdict"] == "pass" and not data["complete"] and data["notes"]


def test_a_complete_run_passes_and_says_so():
    result = gate(dense_attention, examples=5, seed=0, cases=shape_cases(TINY_TOY))
    assert result.passed and result.complete and result.shapes_run == ["custom"]
    assert result.to_dict()["complete"] is True


# ------------------------------------------------------------------------------------------ strict JSON
def test_every_report_is_strict_json_with_the_failure_as_fields(tmp_path, capsys):
    result = gate(nan_on_first_row, examples=10, seed=0, profile="toy")
    assert result.verdict == "mismatch" and result.error == float("inf")
    text = json.dumps(result.to_dict(), allow_nan=False)  # raises on any Infinity/NaN left
    data = _strict_loads(text)
    assert data["schema_version"] == SCHEMA_VERSION == 1
    failure = data["failure"]
    assert failure["error"] is None and failure["error_kind"] == "non-finite"
    at = failure["location"]
    assert {"batch", "head", "query", "dim", "token_kind", "kernel", "spec"} <= set(at)
    assert at["query"] == 0 and at["kernel"] is None and at["kernel_kind"] == "non-finite"
    assert isinstance(at["spec"], float) and at["token_kind"] in ("local", "global")
    case = failure["counterexample"]
    batch, heads, seq, head_dim = case["shape"]
    assert (case["batch"], case["heads"], case["seq"], case["head_dim"]) == (batch, heads, seq, head_dim)
    assert case["window"] == result.counterexample.window and len(case["token_kind"]) == batch
    assert all(len(row) == seq and set(row) <= set(".lg") for row in case["token_kind"])
    assert {"seed", "scale", "mean", "outliers", "strided"} <= set(case["values"])
    assert case["values"]["scale"] == result.recipe.scale and case["values"]["seed"] == result.recipe.seed

    report = tmp_path / "pass.json"
    code, _ = _gate_cli(capsys, "--attention", "parity.gate.broken_kernels:dense_attention", "--profile", "toy",
                        "--examples", "5", "--seed", "1", "--dtype", "bfloat16", "--json", str(report))
    data = _strict_loads(report.read_text())
    assert code == 0 and data["failure"] is None and data["replay"] is None
    worst = data["worst_error"]["context"]
    assert worst["budget"] == pytest.approx(HALF_K * worst["plain"] + half_floor("bfloat16"))


def test_the_documented_json_example_has_the_reports_fields():
    section = DOCS.read_text().split("### The gate's JSON report")[1].split("\n### ")[0].split("\n## ")[0]
    documented = _strict_loads(section.split("```json\n")[1].split("\n```")[0])
    real = _strict_loads(json.dumps(gate(nan_on_first_row, examples=5, seed=0, profile="toy").to_dict()))
    assert set(documented) == set(real) and documented["schema_version"] == real["schema_version"]
    assert set(documented["failure"]) == set(real["failure"])
    assert set(documented["failure"]["location"]) == set(real["failure"]["location"])
    assert set(documented["failure"]["counterexample"]) == set(real["failure"]["counterexample"])


def test_strict_json_names_every_non_finite_number():
    data = strict_json({"a": float("inf"), "b": [1.0, float("nan")], "c": {"d": np.float32("-inf")}, "e": (1, 2)})
    assert data == {"a": None, "a_kind": "non-finite", "b": [1.0, None], "c": {"d": None, "d_kind": "non-finite"},
                    "e": [1, 2]}
    json.dumps(data, allow_nan=False)


# ------------------------------------------------------------------------------------------ replays
def test_the_replay_command_carries_every_option_that_shaped_the_run():
    result = judge.GateResult(kernel="pkg.mod:fn", verdict="mismatch", seed=7, examples=9, dtype="float16",
                              tolerance=1e-2, profile="boundary", blocks=(16, 64), backward=True, max_heads=1,
                              atol=3e-3, max_seconds=42.0, time_bound=True, allow_incomplete=True,
                              support=Support(head_dims=(16, 64), head_dim_multiple=16, min_window=32,
                                              max_window=256, max_seq=1024, max_globals=20, backward=False))
    command = result.replay_command()
    for flag in ("--seed 7", "--examples 9", "--profile boundary", "--dtype float16", "--block 16,64", "--backward",
                 "--max-heads 1", "--atol 0.003", "--head-dims 16,64", "--head-dim-multiple 16", "--min-window 32",
                 "--max-window 256", "--max-seq 1024", "--max-globals 20", "--forward-only", "--max-seconds 42.0",
                 "--allow-incomplete"):
        assert flag in command, flag
    args = build_parser().parse_args(shlex.split(command)[3:])  # after `python -m parity`
    assert (args.seed, args.examples, args.block, args.max_heads, args.atol, args.max_seconds) == (7, 9, (16, 64), 1,
                                                                                                     3e-3, 42.0)
    assert (args.head_dims, args.min_window, args.max_globals, args.forward_only) == ((16, 64), 32, 20, True)
    untimed = judge.GateResult(kernel="pkg.mod:fn", verdict="mismatch", seed=7, examples=9, dtype="float64",
                               tolerance=1e-9, max_seconds=42.0)
    assert "--max-seconds" not in untimed.replay_command() and "--head-dims" not in untimed.replay_command()


def test_extra_shapes_run_and_are_replayed(capsys):
    from parity.gate.profiles import ExtraShapes

    result = gate(BROKEN_KERNELS["window_wider"], examples=5, seed=0, profile="toy", extra=ExtraShapes(windows=(10,)),
                  support=Support(min_window=10))
    assert result.verdict == "mismatch" and result.counterexample.window == 10, result.message()
    assert "--windows 10" in result.replay_command() and "--min-window 10" in result.replay_command()
    code, out = _gate_cli(capsys, *shlex.split(result.replay_command())[4:])
    assert code == 1 and result.counterexample.describe() in out


def test_the_replay_of_an_api_run_with_narrowed_support_gives_the_same_verdict_and_case(tmp_path, capsys):
    bug = TILED_KERNELS["tile_end_off_by_one"]
    api = gate(bug, examples=20, seed=3, profile="boundary", blocks=(16,), atol=1e-6,
               support=Support(head_dims=(16,), min_window=32, max_globals=5))
    assert api.verdict == "mismatch", api.message()
    command = api.replay_command()
    assert "--head-dims 16" in command and "--min-window 32" in command and "--max-globals 5" in command
    assert "--atol 1e-06" in command
    report = tmp_path / "replay.json"
    code, out = _gate_cli(capsys, *shlex.split(command)[4:], "--json", str(report))
    replayed = _strict_loads(report.read_text())
    assert code == 1 and out.startswith("mismatch: ") and replayed["verdict"] == api.verdict
    assert replayed["failure"]["counterexample"]["description"] == api.counterexample.describe()
    assert replayed["failure"]["output"] == api.output and replayed["support"] == api.to_dict()["support"]


def test_a_custom_case_failure_is_saved_and_replays_with_the_same_verdict(tmp_path, capsys):
    bug = BROKEN_KERNELS["window_wider"]
    result = gate(bug, examples=20, seed=0, dtype="float32", cases=shape_cases(TINY_TOY))
    assert result.verdict == "mismatch" and result.case_dir, result.message()
    command = result.replay_command()
    assert command == (f"python -m parity gate --attention parity.gate.broken_kernels:window_wider "
                       f"--replay-case {result.case_dir}") and f"replay: {command}" in result.message()
    record = json.loads(open(f"{result.case_dir}/case.json").read())
    batch, heads, seq, head_dim = result.counterexample.query.shape
    assert record["shapes"]["query"] == [batch, heads, seq, head_dim] and record["dtypes"]["token_kind"] == "int64"
    assert record["window"] == 4 and record["dtype"] == "float32" and len(record["token_kind"]) == batch
    assert record["values"]["scale"] == result.recipe.scale and record["support"]["min_window"] == 2
    report = tmp_path / "case.json"
    code, out = _gate_cli(capsys, *shlex.split(command)[4:], "--json", str(report))
    replayed = _strict_loads(report.read_text())
    assert code == 1 and out.startswith("mismatch: ") and replayed["failure"]["output"] == result.output
    assert replayed["failure"]["error"] == pytest.approx(result.error) and replayed["dtype"] == "float32"
    fixed = replay_case(dense_attention, result.case_dir)
    assert fixed.passed and fixed.cases_run == 1, fixed.message()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["gate", "--attention", "parity.gate.broken_kernels:dense_attention", "--replay-case", str(empty)]) == 2
    assert "no case.json there" in capsys.readouterr().err


def test_the_cli_prints_no_decorator_advice_the_api_keeps_it(capsys):
    argv = ["--attention", "parity.gate.broken_kernels:padding_keys_visible", "--profile", "toy", "--examples",
            "15", "--seed", "5"]
    code, out = _gate_cli(capsys, *argv)
    assert code == 1 and out.startswith("mismatch: ") and "replay: python -m parity gate" in out
    assert "reproduce_failure" not in out and "print_blob" not in out
    api = gate(BROKEN_KERNELS["padding_keys_visible"], profile="toy", examples=15, seed=5)
    assert "reproduce_failure" in api.message() and "reproduce_failure" not in api.message(decorator_advice=False)


def test_one_seed_shrinks_to_one_case_on_a_fast_and_a_slow_machine(monkeypatch):
    kernel = BROKEN_KERNELS["padding_rows_not_zeroed"]  # at seed 1 its shrink takes ~40 tries
    first = gate(kernel, examples=40, seed=1, profile="toy")
    again = gate(kernel, examples=40, seed=1, profile="toy")
    # A machine where every case takes 4 s: shrinking is bounded by tries, not by the clock (a 120 s shrink
    # budget stops it after 30 cases there, on another case than a fast machine reaches).
    clock = iter(range(0, 10**9, 4))
    monkeypatch.setattr(hypothesis_runs, "time", types.SimpleNamespace(monotonic=lambda: float(next(clock))))
    slow = gate(kernel, examples=40, seed=1, profile="toy")
    assert first.verdict == again.verdict == slow.verdict == "mismatch"
    assert first.counterexample.describe() == again.counterexample.describe() == slow.counterexample.describe()
    assert first.recipe.key() == slow.recipe.key()


def test_a_shrink_budget_of_tries_counts_cases_not_seconds():
    budget = hypothesis_runs.ShrinkBudget(seconds=float("inf"), tries=2)
    assert not budget.skips("a")  # drawing, before any failure: not counted
    budget.failed("a")
    assert not budget.skips("b") and not budget.skips("c") and budget.skips("d")
    assert not budget.skips("a") and budget.tried == 2  # the failing case always runs again
    with pytest.raises(ValueError, match="tries must be an int >= 0 or None, got -1"):
        hypothesis_runs.ShrinkBudget(seconds=1.0, tries=-1)


# ------------------------------------------------------------------------------------------ backward rule
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_torch_sdpa_meets_the_contract_forward_and_backward_in_half_precision(dtype):
    for profile in ("toy", "boundary"):
        result = gate(sdpa_attention, examples=10, seed=0, dtype=dtype, profile=profile, blocks=(16,), backward=True)
        assert result.passed, result.message()
        assert set(result.worst) == set(judge.OUTPUTS)


def test_what_sdpa_inherits_from_its_rounded_output_is_in_the_budget():
    # A case where torch's SDPA backward (D from its float16 output) loses 4.7x the plain implementation's
    # error on grad_query: beyond HALF_K x plain + eps/2, within the budget with the inherited term.
    shape = Shape("boundary", window=24, seq=24, head_dim=16, heads=1, max_batch=1, block=16)
    recipe = CaseRecipe(shape, 1, 1, np.ones((1, 24), np.int64), seed=0, scale=0.3, mean=-1.0)
    grad_query = check_case(sdpa_attention, recipe, "float16", backward=True)["grad_query"]
    assert grad_query["error"] > HALF_K * grad_query["plain"] + half_floor("float16")
    assert grad_query["inherited"] > 0 and grad_query["error"] <= grad_query["budget"]
    assert grad_query["budget"] == pytest.approx(HALF_K * grad_query["plain"] + grad_query["inherited"]
                                                 + half_floor("float16"))


BACKWARD_BUGS = sorted([("tiled", b) for b, text in TILED_BUGS.items() if "backward" in text or "grad" in b]
                       + [("toy", b) for b, text in BUGS.items() if "backward" in text or "grad" in b])
WRONG_GRADIENT = {"global_value_grad": "grad_global_value"}  # the gradient each planted backward bug breaks


@pytest.mark.parametrize("dtype", ["float64", "float16", "bfloat16"])
@pytest.mark.parametrize("family,bug", BACKWARD_BUGS)
def test_planted_backward_bugs_stay_rejected(family, bug, dtype):
    kernel = (TILED_KERNELS if family == "tiled" else BROKEN_KERNELS)[bug]
    options = dict(profile="boundary", blocks=(16,)) if family == "tiled" else dict(profile="toy")
    result = gate(kernel, examples=10, seed=9, dtype=dtype, backward=True, **options)
    assert result.verdict == "mismatch" and result.output == WRONG_GRADIENT.get(bug, result.output), result.message()
    assert result.output.startswith("grad_") and result.error > result.budget


def test_a_wrong_query_gradient_of_sdpa_is_rejected_in_half_precision():
    class ScaledQueryGrad(torch.autograd.Function):
        @staticmethod
        def forward(ctx, query):
            return query.view_as(query)

        @staticmethod
        def backward(ctx, grad):
            return grad * 1.05  # a backward 5% off on one input

    def off_by_5_percent(query, *rest):
        return sdpa_attention(ScaledQueryGrad.apply(query), *rest)

    for dtype in ("float16", "bfloat16"):
        result = gate(off_by_5_percent, examples=10, seed=0, dtype=dtype, profile="toy", backward=True)
        assert result.verdict == "mismatch" and result.output == "grad_query", result.message()


# ------------------------------------------------------------------------------------------ diagnosis
def test_a_forward_mismatch_names_the_keys_of_the_failing_row():
    pytest.importorskip("parity.gate.diagnosis")
    result = gate(BROKEN_KERNELS["window_narrower"], examples=20, seed=0, cases=shape_cases(TINY_TOY))
    assert result.verdict == "mismatch" and result.output == "context" and result.keys
    assert {"key", "rule"} <= set(result.keys[0]) and any(k["rule"] == "window edge" for k in result.keys)
    assert result.to_dict()["failure"]["keys"] == strict_json(result.keys)
    assert "keys of that row" in result.message()


def test_a_failing_diagnosis_never_changes_the_verdict(monkeypatch):
    diagnosis = pytest.importorskip("parity.gate.diagnosis")

    def broken(*args, **kwargs):
        raise RuntimeError("diagnosis broke")

    monkeypatch.setattr(diagnosis, "diagnose_keys", broken)
    result = gate(BROKEN_KERNELS["window_narrower"], examples=20, seed=0, cases=shape_cases(TINY_TOY))
    assert result.verdict == "mismatch" and result.keys is None and result.to_dict()["failure"]["keys"] is None
