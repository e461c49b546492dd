"""`led-parity gate-merge A.json B.json ...`: one verdict from the JSON reports of a gate run split with --shard.

The reports must be of one run (same kernel, seed, profile, dtype, examples, support, ...; else exit 2). The
verdict is the first failure in shard order, else `incomplete` when a shard was cut short or is missing, else
`pass` (parity.gate.shards). Exit 0 pass, 1 anything else, 2 unreadable or mismatched reports.
"""

from __future__ import annotations

import json

from parity.commands.exits import EXIT_MISMATCH, EXIT_OK, UsageError
from parity.commands.flags import Command


def add_merge_arguments(parser) -> None:
    parser.add_argument("reports", nargs="+", help="the JSON reports written by `gate --shard K/N --json FILE`")
    parser.add_argument("--json", default=None, help="write the merged report here (strict JSON)")
    parser.add_argument("--junit-xml", default=None, metavar="FILE", help="write the merged JUnit XML report here")


def _load(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            report = json.load(fh)
    except json.JSONDecodeError as err:
        raise UsageError(f"{path}: not a JSON report ({err})") from None
    if not isinstance(report, dict) or "verdict" not in report or "kernel" not in report:
        raise UsageError(f"{path}: not a gate JSON report (no verdict or kernel)")
    return report


def run(args) -> int:
    from parity.gate.shards import merge_reports, merged_message

    merged = merge_reports([_load(path) for path in args.reports])
    print(merged_message(merged))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(merged, fh, indent=2, allow_nan=False)
    if args.junit_xml:
        from parity.gate.junit import write_junit

        write_junit(merged, args.junit_xml)
    return EXIT_OK if merged["passed"] else EXIT_MISMATCH


COMMAND = Command("gate-merge", "merge the JSON reports of a sharded gate run into one verdict", add_merge_arguments,
                  run)
