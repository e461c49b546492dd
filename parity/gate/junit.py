"""The gate's verdict as a JUnit XML report, the format CI systems (GitLab, Jenkins, GitHub test reporters,
Azure) read: one `<testcase>` per planned shape, so a CI page lists which shapes ran, which failed and which a
time budget or an earlier failure left out.

    <testsuites name="led-parity gate" tests= failures= errors= skipped= time=>
      <testsuite name="<kernel> <dtype> <profile>[ shard K/N]" tests= failures= errors= skipped= time= timestamp=>
        <properties> seed, dtype, profile, shard, verdict, replay </properties>
        <testcase classname="led_parity.gate.<profile>" name="<shape label>" time="<seconds>">
          <failure message="<verdict line>" type="mismatch|nondeterministic">the whole report</failure>
          | <error message= type="error">...</error> | <skipped message="..."/>
        </testcase>
        ...
        <testcase classname="led_parity.gate" name="every planned shape ran"> (a failure when incomplete)

It is written from the JSON report (`GateResult.to_dict()` or `shards.merge_reports`), so a merged run gets
one too.
"""

from __future__ import annotations

import datetime
import xml.etree.ElementTree as ET

SUITE = "led-parity gate"


def _shape_of(failure: dict | None) -> str | None:
    example = (failure or {}).get("counterexample") or {}
    label = example.get("label")
    return label if label else None


def junit_tree(report: dict) -> ET.ElementTree:
    """The JUnit XML tree of a gate JSON report."""
    planned = list(report.get("planned") or [])
    per_shape = report.get("cases_per_shape") or {}
    seconds: dict[str, float] = {}
    for case in report.get("cases") or []:
        seconds[case["shape"]] = seconds.get(case["shape"], 0.0) + float(case.get("seconds") or 0.0)
    verdict = report.get("verdict", "pass")
    failure = report.get("failure")
    failing = _shape_of(failure) if verdict not in ("pass", "incomplete") else None
    if failing is not None and failing not in planned:
        planned.append(failing)
    if failing is None and verdict not in ("pass", "incomplete"):
        failing = planned[0] if planned else "custom"
        planned = planned or [failing]
    not_run = set(report.get("shapes_not_run") or [])
    text = report.get("report") or ""
    first_line = text.splitlines()[0] if text else verdict

    shard = f" shard {', '.join(s for s in report['shards'] if s)}" if report.get("shards") else (
        f" shard {report['shard']}" if report.get("shard") else "")
    suite = ET.Element("testsuite", name=f"{report.get('kernel')} {report.get('dtype')} {report.get('profile')}{shard}",
                       timestamp=datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat())
    properties = ET.SubElement(suite, "properties")
    for name in ("seed", "dtype", "profile", "shard", "verdict", "replay", "deterministic", "backward"):
        if report.get(name) is not None:
            ET.SubElement(properties, "property", name=name, value=str(report[name]))
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for label in planned:
        case = ET.SubElement(suite, "testcase", classname=f"led_parity.gate.{label.split(' ')[0]}", name=label,
                             time=f"{seconds.get(label, 0.0):.3f}")
        counts["tests"] += 1
        if label == failing:
            kind = "error" if verdict == "error" else "failure"
            node = ET.SubElement(case, kind, message=first_line, type=verdict)
            node.text = text
            counts["errors" if kind == "error" else "failures"] += 1
        elif label not in per_shape:
            why = "the time budget ran out first" if label in not_run or verdict == "incomplete" else \
                "the run stopped at the first failure"
            ET.SubElement(case, "skipped", message=f"not run: {why}")
            counts["skipped"] += 1
    complete = ET.SubElement(suite, "testcase", classname="led_parity.gate", name="every planned shape ran",
                             time="0.000")
    counts["tests"] += 1
    if verdict == "incomplete":
        node = ET.SubElement(complete, "failure", message=first_line or "incomplete", type="incomplete")
        node.text = text
        counts["failures"] += 1
    total = f"{float(report.get('seconds') or 0.0):.3f}"
    for name, value in counts.items():
        suite.set(name, str(value))
    suite.set("time", total)
    root = ET.Element("testsuites", name=SUITE, time=total, **{k: str(v) for k, v in counts.items()})
    root.append(suite)
    return ET.ElementTree(root)


def write_junit(report: dict, path: str) -> None:
    """Write the JUnit XML of `report` to `path` (UTF-8, with the XML declaration)."""
    tree = junit_tree(report)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
