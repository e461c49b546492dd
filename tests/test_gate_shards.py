"""The gate in CI: shards that merge into the unsharded verdict, JUnit XML, per-case JSON, reproducer folders
(docs/contract.md#ci-shards-reports-and-reproducers).

- `--shard K/N` partitions every profile's grid; N shards merged by `gate-merge` run exactly the cases of the
  unsharded run and give its verdict (passing and failing kernels);
- `gate-merge` refuses reports of different runs (exit 2) and calls a missing shard `incomplete` (exit 1);
- `--junit-xml` writes testsuites/testsuite/testcase/failure with the attributes CI systems read;
- the JSON holds per-case errors, budgets, the plain error, the device and library versions;
- a failure writes a reproducer folder whose one command replays the failure in a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from parity.commands import main
from parity.gate.judge import gate
from parity.gate.profiles import PROFILES, grid
from parity.gate.shards import Shard, owned_labels, parse_shard

ROOT = Path(__file__).resolve().parent.parent
DENSE = "parity.gate.broken_kernels:dense_attention"
BUGGY = "parity.gate.broken_kernels:padding_keys_visible"
TOY = ["--profile", "toy", "--examples", "10", "--seed", "3"]


def _gate(capsys, *argv) -> tuple[int, str]:
    code = main(["gate", *argv])
    return code, capsys.readouterr().out


def _report(path) -> dict:
    return json.loads(Path(path).read_text())


# ------------------------------------------------------------------------------------------ shards
@pytest.mark.parametrize("text", ["0/2", "3/2", "a/b", "2", "1/0", "-1/2"])
def test_a_bad_shard_names_the_value(text):
    with pytest.raises(ValueError, match=repr(text).strip("'").replace("/", "/")):
        parse_shard(text)


@pytest.mark.parametrize("count", [1, 2, 3, 5])
@pytest.mark.parametrize("profile", PROFILES)
def test_the_shards_of_a_grid_partition_it(profile, count):
    labels = [s.label for s in grid(profile).shapes]
    parts = [owned_labels(labels, Shard(k, count)) for k in range(1, count + 1)]
    assert sorted(label for part in parts for label in part) == sorted(labels)  # each shape in exactly one
    assert max(map(len, parts)) - min(map(len, parts)) <= 1  # round robin: balanced


@pytest.mark.parametrize("kernel", [DENSE, BUGGY])
def test_two_shards_merged_give_the_unsharded_verdict_and_cases(kernel, capsys, tmp_path):
    whole_code, _ = _gate(capsys, "--attention", kernel, *TOY, "--json", str(tmp_path / "all.json"),
                          "--reproducer-dir", str(tmp_path / "r0"))
    codes = [_gate(capsys, "--attention", kernel, *TOY, "--shard", f"{k}/2", "--json", str(tmp_path / f"{k}.json"),
                   "--reproducer-dir", str(tmp_path / f"r{k}"))[0] for k in (1, 2)]
    merged_code = main(["gate-merge", str(tmp_path / "1.json"), str(tmp_path / "2.json"), "--json",
                        str(tmp_path / "merged.json"), "--junit-xml", str(tmp_path / "merged.xml")])
    out = capsys.readouterr().out
    whole, merged = _report(tmp_path / "all.json"), _report(tmp_path / "merged.json")
    assert merged["verdict"] == whole["verdict"] and merged_code == whole_code, out
    assert out.startswith(whole["verdict"] + ":")
    assert sorted(merged["planned"]) == sorted(whole["planned"])
    if whole["verdict"] == "pass":
        assert sorted(c["id"] for c in merged["cases"]) == sorted(c["id"] for c in whole["cases"])
        assert merged["cases_per_shape"] == whole["cases_per_shape"] and merged["cases_run"] == whole["cases_run"]
        assert codes == [0, 0] and all(len(_report(tmp_path / f"{k}.json")["cases"]) for k in (1, 2))
    else:
        assert 1 in codes and merged["failure"]["output"] == whole["failure"]["output"]
        assert "--shard" in merged["replay"]
    validate_junit(tmp_path / "merged.xml")


def test_merge_refuses_reports_of_different_runs_and_flags_a_missing_shard(capsys, tmp_path):
    _gate(capsys, "--attention", DENSE, *TOY, "--shard", "1/2", "--json", str(tmp_path / "1.json"))
    other = [a if a != "3" else "4" for a in TOY]  # another seed: another run
    _gate(capsys, "--attention", DENSE, *other, "--shard", "2/2", "--json", str(tmp_path / "2.json"))
    assert main(["gate-merge", str(tmp_path / "1.json"), str(tmp_path / "2.json")]) == 2
    assert "seed differs" in capsys.readouterr().err
    assert main(["gate-merge", str(tmp_path / "1.json"), str(tmp_path / "1.json")]) == 2
    assert main(["gate-merge", str(tmp_path / "1.json")]) == 1  # shard 2/2 missing: not a pass
    out = capsys.readouterr().out
    assert out.startswith("incomplete:") and "shards missing: 2/2" in out
    (tmp_path / "bad.json").write_text("{not json")
    assert main(["gate-merge", str(tmp_path / "bad.json")]) == 2


def test_a_shard_of_custom_cases_is_a_usage_error():
    from parity.gate.broken_kernels import dense_attention
    from parity.gate.profiles import Shape, shape_cases

    with pytest.raises(ValueError, match="custom"):
        gate(dense_attention, examples=2, seed=0, shard="1/2",
             cases=shape_cases(Shape("toy", window=4, seq=8, head_dim=2, heads=2, max_batch=2)))


# ------------------------------------------------------------------------------------------ JSON and JUnit
def test_the_json_holds_per_case_errors_budgets_device_and_versions(capsys, tmp_path):
    _gate(capsys, "--attention", DENSE, "--profile", "toy", "--examples", "4", "--seed", "1", "--dtype", "float16",
          "--json", str(tmp_path / "r.json"))
    report = _report(tmp_path / "r.json")
    assert report["cases"] and len(report["cases"]) == report["cases_run"]
    for case in report["cases"]:
        assert case["shape"] in report["planned"] and len(case["id"]) == 16
        context = case["outputs"]["context"]
        assert 0 <= context["error"] <= context["budget"] and context["plain"] is not None  # float16: plain error
    assert {"python", "torch", "numpy", "hypothesis"} <= set(report["versions"]) and report["device"].startswith("cpu")
    assert report["report"].startswith("pass:")


def validate_junit(path) -> ET.Element:
    """The structure CI systems read from JUnit XML: <testsuites> of <testsuite>s of <testcase>s, each with at most
    one <failure>/<error>/<skipped>; integer counts that add up, non-negative times, the required names."""
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites", root.tag
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in root:
        assert suite.tag == "testsuite" and suite.get("name")
        counted = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        assert float(suite.get("time")) >= 0 and suite.get("timestamp")
        for child in suite:
            if child.tag == "properties":
                assert all(p.tag == "property" and p.get("name") and p.get("value") is not None for p in child)
                continue
            assert child.tag == "testcase", child.tag
            assert child.get("name") and child.get("classname") and float(child.get("time")) >= 0
            counted["tests"] += 1
            outcomes = [c for c in child if c.tag in ("failure", "error", "skipped")]
            assert len(outcomes) <= 1 and all(c.tag in ("failure", "error", "skipped", "system-out") for c in child)
            for outcome in outcomes:
                key = {"failure": "failures", "error": "errors", "skipped": "skipped"}[outcome.tag]
                counted[key] += 1
                if outcome.tag != "skipped":
                    assert outcome.get("message") and outcome.get("type")
        for key, value in counted.items():
            assert int(suite.get(key)) == value, (key, suite.get(key), value)
            totals[key] += value
    for key, value in totals.items():
        assert int(root.get(key)) == value
    return root


def test_junit_xml_has_one_testcase_per_planned_shape_and_the_failure(capsys, tmp_path):
    code, _ = _gate(capsys, "--attention", BUGGY, *TOY, "--junit-xml", str(tmp_path / "bad.xml"), "--json",
                    str(tmp_path / "bad.json"), "--reproducer-dir", str(tmp_path / "r"))
    assert code == 1
    root = validate_junit(tmp_path / "bad.xml")
    report = _report(tmp_path / "bad.json")
    cases = root.findall("./testsuite/testcase")
    assert {c.get("name") for c in cases} >= set(report["planned"])
    failures = root.findall("./testsuite/testcase/failure")
    assert len(failures) == 1 and failures[0].get("type") == "mismatch"
    assert failures[0].get("message").startswith("mismatch:") and "replay:" in failures[0].text
    assert _gate(capsys, "--attention", DENSE, *TOY, "--junit-xml", str(tmp_path / "good.xml"))[0] == 0
    good = validate_junit(tmp_path / "good.xml")
    assert good.get("failures") == "0" and good.get("errors") == "0"


def test_a_broken_junit_file_fails_the_validator(tmp_path):
    (tmp_path / "x.xml").write_text('<testsuites tests="2" failures="0" errors="0" skipped="0" time="1">'
                                    '<testsuite name="s" tests="1" failures="0" errors="0" skipped="0" time="1" '
                                    'timestamp="t"><testcase name="a" classname="c" time="0"/></testsuite>'
                                    '</testsuites>')
    with pytest.raises(AssertionError):
        validate_junit(tmp_path / "x.xml")


# ------------------------------------------------------------------------------------------ reproducer folders
def test_a_failure_writes_a_reproducer_that_replays_in_a_fresh_interpreter(capsys, tmp_path):
    folder = tmp_path / "repro"
    code, out = _gate(capsys, "--attention", BUGGY, *TOY, "--reproducer-dir", str(folder))
    assert code == 1 and f"reproducer folder: {folder}" in out
    record = json.loads((folder / "case.json").read_text())
    assert {"shapes", "dtypes", "handed", "support", "window", "token_kind", "kernel", "verdict"} <= set(record)
    assert set(record["handed"]["strides"]) == {"query", "key", "value", "global_query", "global_key", "global_value"}
    command = (folder / "command.txt").read_text().strip()
    assert command == record["command"] and command.startswith("python -m parity gate --attention")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    replayed = subprocess.run(shlex.split(command), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert replayed.returncode == 1, replayed.stderr
    assert replayed.stdout.startswith("mismatch:") and record["detail"].split(":")[0] in replayed.stdout
    again = subprocess.run([sys.executable, "-m", "parity", "replay", str(folder)], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 1 and again.stdout.startswith("mismatch:"), again.stdout + again.stderr


# ------------------------------------------------------------------------------------------ pytest plugin
def test_the_plugin_gives_one_test_id_per_shard_and_the_parts_cover_the_run():
    from parity.gate.broken_kernels import dense_attention
    from parity.gate.pytest_plugin import assert_kernel_matches_spec, gate_shards

    params = gate_shards(3)
    assert [p.id for p in params] == ["shard1of3", "shard2of3", "shard3of3"]
    runs = [assert_kernel_matches_spec(dense_attention, examples=6, seed=2, profile="toy", shard=p.values[0])
            for p in params]
    whole = gate(dense_attention, examples=6, seed=2, profile="toy")
    assert sorted(c["id"] for r in runs for c in r.case_log) == sorted(c["id"] for c in whole.case_log)
    with pytest.raises(ValueError, match="count"):
        gate_shards(0)


# ------------------------------------------------------------------------------------------ the CI flag set
# The per-commit tier of docs/contract.md at CI size (grid_rows_capped needs `long`: tests/test_gate_long.py).
CI_FLAGS = ["--profile", "boundary", "--block", "16", "--examples", "10", "--seed", "0"]
FULL = ["--backward", "--deterministic"]  # float64 (the default dtype)
FLOAT32 = ["--dtype", "float32"]  # forward: every sink style overflows a stale max
CAUGHT_PER_COMMIT = [("tail_read_past_end", FULL, "mismatch"), ("split_k_unordered", FULL, "nondeterministic"),
                     ("strided_grad_layout", FULL, "mismatch"), ("backward_ignores_window", FULL, "mismatch"),
                     ("tiled_attention", FULL, "pass"), ("stale_running_max", FLOAT32, "mismatch"),
                     ("tiled_attention", FLOAT32, "pass")]


@pytest.mark.parametrize("kernel,flags,verdict", CAUGHT_PER_COMMIT,
                         ids=[f"{k}-{'full' if f is FULL else 'float32'}" for k, f, _ in CAUGHT_PER_COMMIT])
def test_the_ci_flag_set_rejects_each_latent_bug_and_passes_the_tiled_kernel(kernel, flags, verdict, capsys,
                                                                              tmp_path):
    code, out = _gate(capsys, "--attention", f"parity.gate.broken_kernels:{kernel}", *CI_FLAGS, *flags,
                      "--reproducer-dir", str(tmp_path / "r"))
    assert out.startswith(f"{verdict}:") and code == (0 if verdict == "pass" else 1), out
    if kernel == "tail_read_past_end":
        assert "reads outside its inputs" in out
    if kernel in ("strided_grad_layout", "backward_ignores_window"):
        assert "grad_" in out.splitlines()[0]


def crashes(*args):
    raise RuntimeError("no kernel here")


def test_an_error_verdict_is_a_junit_error_and_a_time_cut_run_a_failing_completeness_case(capsys, tmp_path):
    code, _ = _gate(capsys, "--attention", "tests.test_gate_shards:crashes", *TOY, "--junit-xml",
                    str(tmp_path / "e.xml"), "--reproducer-dir", str(tmp_path / "r"))
    root = validate_junit(tmp_path / "e.xml")
    assert code == 1 and root.get("errors") == "1" and root.find("./testsuite/testcase/error").get("type") == "error"
    from parity.gate.junit import junit_tree

    cut = gate(dense_attention_slow, examples=50, seed=0, profile="toy", max_seconds=0.5).to_dict()
    assert cut["verdict"] == "incomplete"
    tree = junit_tree(cut)
    tree.write(tmp_path / "i.xml")
    root = validate_junit(tmp_path / "i.xml")
    assert root.find("./testsuite/testcase[@name='every planned shape ran']/failure").get("type") == "incomplete"
    assert int(root.get("skipped")) >= 1


def dense_attention_slow(*args):
    import time

    from parity.gate.broken_kernels import dense_attention

    time.sleep(0.05)
    return dense_attention(*args)
