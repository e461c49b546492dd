"""`led-parity` / `python -m parity`: one module per command, each with its own flags; this package dispatches.

    check      led_ref vs every led_torch backend (and HF) on the default model and hypothesis cases
    gate       an attention kernel against the kernel contract
    gate-merge   one verdict from the JSON reports of a gate run split with --shard
    replay     a saved reproducer
    audit      a real checkpoint and text through every implementation
    info       what the embedded default model contains
    convert    pytorch_model.bin -> safetensors, weights-only loading
    bench      speed and memory side by side with HF
    gpu-check  everything a GPU must confirm, in one run
    audit-onnx   LED ONNX files in ONNX Runtime against led_ref, at shapes unlike the traced one
    export-onnx  led_torch's LED as ONNX files right at every length and global count, audited before success

With no subcommand it runs `check` on the embedded default model. Exit codes: parity.commands.exits.
"""

from __future__ import annotations

import argparse
import os
import sys

from parity.commands import (
    audit,
    audit_onnx,
    bench,
    check,
    convert,
    export_onnx,
    gate,
    gate_merge,
    gpu_check,
    info,
    replay,
)
from parity.commands.exits import EXIT_MISMATCH, EXIT_OK, EXIT_USAGE, INPUT_ERRORS, one_line
from parity.commands.flags import Command

__all__ = ["COMMANDS", "EXIT_MISMATCH", "EXIT_OK", "EXIT_USAGE", "Command", "build_parser", "main"]

COMMANDS: list[Command] = [m.COMMAND for m in (check, gate, gate_merge, replay, audit, info, convert, bench, gpu_check,
                                                 audit_onnx, export_onnx)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="led-parity", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    for command in COMMANDS:
        add = sub.add_parser(command.name, help=command.help)
        try:
            command.add_arguments(add)
        except ImportError as err:  # an optional subcommand whose module is missing: say so when it is used
            add.set_defaults(run=lambda args, err=err: _unavailable(args, err))
            continue
        add.set_defaults(run=command.run)
    return parser


def _unavailable(args, err) -> int:
    print(f"error: `{args.command}` is unavailable here: {err}", file=sys.stderr)
    return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    """Every command's exit status: 0 agreement, 1 disagreement (or a crash inside a comparison), 2 bad usage
    or input. Each failure is one line on stderr and no traceback (LED_PARITY_TRACEBACK=1 shows it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["check", *argv]  # the default run: check on the embedded default model
    args = build_parser().parse_args(argv)
    if args.command in ("check", "gate") and (isinstance(args.examples, int) and args.examples < 1):
        print(f"error: --examples must be >= 1, got {args.examples}", file=sys.stderr)
        return EXIT_USAGE
    if getattr(args, "device", "cpu") == "cuda" and not _cuda_available():
        print("error: --device cuda asked for, but torch sees no CUDA device here", file=sys.stderr)
        return EXIT_USAGE
    try:
        return args.run(args)
    except INPUT_ERRORS as err:
        if os.environ.get("LED_PARITY_TRACEBACK"):
            raise
        print(f"error: {one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as err:  # a crash is never reported as agreement, and never as a traceback wall
        if os.environ.get("LED_PARITY_TRACEBACK"):
            raise
        print(f"error: {type(err).__name__}: {one_line(err)} (LED_PARITY_TRACEBACK=1 shows where)", file=sys.stderr)
        return EXIT_MISMATCH


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
