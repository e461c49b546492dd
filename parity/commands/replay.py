"""`led-parity replay`: re-run a reproducer saved by `check` (parity.harness.report), or a gate reproducer folder
(parity.gate.case_files: inputs.npz beside case.json); does it still diverge?"""

from __future__ import annotations

import json
import os

from parity.commands.exits import exit_code
from parity.commands.flags import Command


def gate_folder(path: str) -> bool:
    """True when `path` (a folder or its case.json) is a gate reproducer folder."""
    directory = os.path.dirname(path) if os.path.basename(path) == "case.json" else path
    record = os.path.join(directory, "case.json")
    if not (os.path.isfile(os.path.join(directory, "inputs.npz")) and os.path.isfile(record)):
        return False
    try:
        with open(record, encoding="utf-8") as fh:
            return "kernel" in json.load(fh)
    except (OSError, ValueError):
        return False


def replay_gate(path: str) -> bool:
    """The gate's verdict on the saved case with the kernel named in it (printed); True when it passes now."""
    from parity.gate.case_files import load_case
    from parity.gate.judge import load_kernel, replay_case

    _, record = load_case(path)
    result = replay_case(load_kernel(record["kernel"]), path, name=record["kernel"])
    print(result.message(decorator_advice=False))
    return result.passed


def replay(path: str) -> bool:
    """Compare the saved sides on the saved case (and generation, for the generation model, with the case's
    tokens and beams); print the tables. True when the case agrees now. A gate folder replays its kernel."""
    if gate_folder(path):
        return replay_gate(path)
    from parity.harness.check import generation_beams, run_case
    from parity.harness.generation import generation_parity
    from parity.harness.implementations import Side
    from parity.harness.report import generation_summary, load_reproducer, text_table

    case = load_reproducer(path)
    print(f"replaying {case['actual']} vs {case['expected']} on {case['architecture']} "
          f"(seed {case.get('seed')}, weight_seed {case.get('weight_seed')})")
    actual, expected = Side.parse(case["actual"]), Side.parse(case["expected"])
    comparisons = run_case(case["config"], case["architecture"], case["weights"], case["inputs"], [actual], expected)
    for c in comparisons:
        print(text_table(c))
    generations = []
    if case["architecture"] == "LEDForConditionalGeneration":
        _, generations = generation_parity(case["config"], case["weights"], case["inputs"], [actual], expected,
                                           max_new_tokens=case.get("max_new_tokens", 3),
                                           num_beams=generation_beams(int(case.get("weight_seed") or 0)))
        print(generation_summary(generations))
    if all(c.passed for c in comparisons) and all(g.passed for g in generations):
        print("no mismatch: the saved case agrees now")
        return True
    print("mismatch reproduced")
    return False


def add_replay_arguments(parser) -> None:
    parser.add_argument("file", help="a reproducer folder or its case.json")


def run(args) -> int:
    return exit_code(replay(args.file))


COMMAND = Command("replay", "re-run a saved reproducer", add_replay_arguments, run)
