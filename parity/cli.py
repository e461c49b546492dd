"""`python -m parity` / `led-parity`: check, gate, replay, audit, convert, info, bench.

With no subcommand it runs `check` on the embedded default model. Exit status: 0 agreement, 1 a
divergence (the message says "mismatch"), 2 bad usage. Subcommands are registered in COMMANDS, one entry
each (name, help, add_arguments, run); a new one is one more entry.

This module only parses arguments (every flag of every command is defined here) and dispatches; the work
lives in modules named after it: parity.check_run (check), parity.gate, parity.replay,
parity.checkpoint_run (audit), parity.convert, parity.info, parity.bench, parity.gpu_check. The
implementations they run come from one registry, parity.implementations.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass

from .tolerances import DTYPE_ORDER

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _seed(args) -> int:
    seed = random.SystemRandom().randrange(2**32) if args.seed is None else args.seed
    print(f"seed: {seed}  (replay with --seed {seed})", file=sys.stderr)
    return seed


def _common(parser, examples: int) -> None:
    parser.add_argument("--examples", type=int, default=examples, help="hypothesis cases to draw")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (drawn and printed if absent)")
    parser.add_argument("--dtype", default="float64", choices=DTYPE_ORDER)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))


# ---------------------------------------------------------------------------------------------- check
def add_check_arguments(parser) -> None:
    _common(parser, examples=5)
    parser.add_argument("--backend", action="append", default=None,
                        help="led_torch backend to check (repeatable; default: every one available)")
    parser.add_argument("--hf", action="store_true", help="also compare HF transformers (float32)")
    parser.add_argument("--no-default", action="store_true", help="skip the embedded default model")
    parser.add_argument("--json", default=None, help="write the JSON report here")
    parser.add_argument("--repro-dir", default=None, help="where to save the reproducer of a divergence")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--shrink-seconds", type=float, default=60.0,
                        help="stop shrinking a divergent case after this long (default 60)")


def sides_for(args):
    from .implementations import check_sides

    return check_sides(args.backend, args.dtype, args.device, hf=getattr(args, "hf", False))


def run_check(args) -> int:
    from . import check_run

    seed = _seed(args)
    return _exit(check_run.run_check(sides_for(args), args.examples, seed, default_model=not args.no_default,
                                     json_path=args.json, repro_dir=args.repro_dir, progress=not args.no_progress,
                                     shrink_seconds=args.shrink_seconds))


# ---------------------------------------------------------------------------------------------- gate
def _int_list(flag: str):
    def parse(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} takes comma-separated ints, got {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError(f"{flag} takes comma-separated ints, got {text!r}")
        return values
    return parse


def add_gate_arguments(parser) -> None:
    from .profiles import PROFILE_CHOICES

    _common(parser, examples=100)
    parser.add_argument("--attention", required=True, help="the kernel to gate, as package.module:function")
    parser.add_argument("--profile", default="all", choices=PROFILE_CHOICES,
                        help="shape profile (default all, within --max-seconds)")
    parser.add_argument("--block", type=_int_list("--block"), default=None,
                        help="tile sizes the boundary profile aims at (default 16,32,64,128)")
    parser.add_argument("--backward", action="store_true", help="also gate the gradients of all six inputs")
    parser.add_argument("--max-seconds", type=float, default=600.0,
                        help="bound on the whole run, shrinking included (default 600)")
    parser.add_argument("--max-heads", type=int, default=None, help="cap the heads of every shape")
    parser.add_argument("--json", default=None, help="write the verdict, seed, support, errors ... here")
    support = parser.add_argument_group("declared support (narrows what the kernel declares)")
    support.add_argument("--head-dims", type=_int_list("--head-dims"), default=None,
                         help="allowed head dims, e.g. 64,128")
    support.add_argument("--head-dim-multiple", type=int, default=None, help="head_dim must be a multiple of N")
    support.add_argument("--min-window", type=int, default=None)
    support.add_argument("--max-window", type=int, default=None)
    support.add_argument("--max-seq", type=int, default=None)
    support.add_argument("--max-globals", type=int, default=None, help="most global tokens in one row")
    support.add_argument("--forward-only", action="store_true", help="the kernel has no backward")


def run_gate(args) -> int:
    from .gate import gate, load_kernel
    from .profiles import DEFAULT_BLOCKS
    from .support import Support

    try:
        kernel = load_kernel(args.attention)
    except (ValueError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    limits = {"head_dims": args.head_dims, "head_dim_multiple": args.head_dim_multiple,
              "min_window": args.min_window, "max_window": args.max_window, "max_seq": args.max_seq,
              "max_globals": args.max_globals}
    support = Support(**{k: v for k, v in limits.items() if v is not None},
                      **({"backward": False} if args.forward_only else {}))
    seed = _seed(args)
    result = gate(kernel, examples=args.examples, seed=seed, dtype=args.dtype, device=args.device,
                  profile=args.profile, support=support, blocks=args.block or DEFAULT_BLOCKS,
                  backward=args.backward, max_seconds=args.max_seconds, max_heads=args.max_heads,
                  name=args.attention)
    print(result.message())
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result.to_dict(), fh, indent=2)
    return EXIT_OK if result.passed else EXIT_MISMATCH


# ---------------------------------------------------------------------------------------------- replay
def add_replay_arguments(parser) -> None:
    parser.add_argument("file", help="a reproducer folder or its case.json")


def run_replay(args) -> int:
    from .replay import replay

    return _exit(replay(args.file))


# ---------------------------------------------------------------------------------------------- audit
def add_audit_arguments(parser) -> None:
    parser.add_argument("--checkpoint", required=True,
                        help="HF-format LED folder (config, safetensors, tokenizer) or a hub id in the local HF cache")
    parser.add_argument("--text", required=True, help="a text file to run through the model")
    parser.add_argument("--hf", action="store_true", help="also compare HF transformers (float32)")
    parser.add_argument("--backend", action="append", default=None)
    parser.add_argument("--dtype", default="float32", choices=DTYPE_ORDER)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--max-tokens", type=_positive("--max-tokens"), default=None,
                        help="use at most this many input tokens (default: the model's limit; a cut is reported)")
    parser.add_argument("--global", dest="global_positions", type=_positions, default=[0],
                        help="comma-separated input positions with global attention (default 0)")
    parser.add_argument("--num-beams", type=_positive("--num-beams"), default=None,
                        help="default: the checkpoint's generation settings")
    parser.add_argument("--max-new-tokens", type=_positive("--max-new-tokens"), default=None,
                        help="default: the checkpoint's generation settings")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (never drawn off a terminal)")
    parser.add_argument("--json", default=None, help="write the JSON report (with versions, device, positions)")


def _positive(flag: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be a positive integer, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{flag} must be a positive integer, got {value}")
        return value
    return parse


def _positions(text: str) -> list[int]:
    try:
        positions = sorted({int(p) for p in text.split(",") if p.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--global takes comma-separated token positions, got {text!r}") from None
    if not positions or positions[0] < 0:
        raise argparse.ArgumentTypeError(f"--global positions must be integers >= 0, got {text!r}")
    return positions


def run_audit(args) -> int:
    from .checkpoint_run import audit
    from .hf import hf_available

    if args.hf and not hf_available():
        raise UsageError("--hf needs transformers (pip install 'led-parity[test]')")
    if not os.path.isfile(args.text):
        raise UsageError(f"--text {args.text!r} is not a file")
    with open(args.text, encoding="utf-8") as fh:
        text = fh.read()
    return _exit(audit(args.checkpoint, text, sides_for(args), args.device, args.dtype, json_path=args.json,
                       progress=not args.no_progress, max_new_tokens=args.max_new_tokens, num_beams=args.num_beams,
                       global_positions=args.global_positions, max_tokens=args.max_tokens))


# ---------------------------------------------------------------------------------------------- convert
def add_convert_arguments(parser) -> None:
    parser.add_argument("source", help="checkpoint folder with pytorch_model.bin (or its shards), or a cached hub id")
    parser.add_argument("destination", help="new folder for the safetensors checkpoint")


def run_convert(args) -> int:
    from .convert import convert_checkpoint

    done = convert_checkpoint(args.source, args.destination)
    print(f"wrote {args.destination}: {done['tensors']} tensors of {done['architecture']} as safetensors"
          + (f"; copied {', '.join(done['copied'])}" if done["copied"] else ""))
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- info
def add_info_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def run_info(args) -> int:
    from .info import default_model_info, info_text

    info = default_model_info()
    print(json.dumps(info, indent=2) if args.json else info_text(info))
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- bench
def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    from .bench import SHAPES, TASKS, THROUGHPUT
    from .implementations import SHORT_NAMES

    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--shape", default=None, choices=tuple(SHAPES), help="model shape (default base)")
    parser.add_argument("--seq", default=None, help="encoder lengths, comma separated (default 1024,4096)")
    parser.add_argument("--task", default=None, choices=(*TASKS, THROUGHPUT, "all"),
                        help="default encoder; all = encoder and generate; throughput = a batch of --batch-docs "
                             "documents of up to --seq tokens (different lengths and global counts) per call")
    parser.add_argument("--impls", default=None, help=f"comma separated among {','.join(SHORT_NAMES)} "
                        "(default: hf, led_torch backends for the device, led_ref on cpu)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per implementation (default 3)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed rounds first (default 1)")
    parser.add_argument("--dtype", default="float32", choices=DTYPE_ORDER, help="led_torch dtype")
    parser.add_argument("--hf-dtype", default=None, choices=DTYPE_ORDER, help="HF dtype (default --dtype)")
    parser.add_argument("--ref-dtype", default="float32", choices=DTYPE_ORDER[:2], help="led_ref dtype")
    parser.add_argument("--memory", default=None, choices=("subprocess", "inprocess", "off"),
                        help="CPU peak-memory method (default subprocess; --quick: inprocess)")
    parser.add_argument("--gen-source", type=int, default=None, help="source tokens for generate (default 1024)")
    parser.add_argument("--new-tokens", type=int, default=None, help="generated tokens (default 32)")
    parser.add_argument("--beams", type=int, default=None, help="beam width for generate (default 4)")
    parser.add_argument("--baseline-dtype", default=None, choices=DTYPE_ORDER,
                        help="also time led_torch's backends in this dtype, as rows NAME@DTYPE (e.g. float32 "
                             "next to --dtype bfloat16)")
    parser.add_argument("--batch-docs", type=int, default=None,
                        help="documents per call of --task throughput (default 8; --quick 3)")
    parser.add_argument("--gen-batch", type=int, default=None, help="sources per generate call (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="weights and inputs seed")
    parser.add_argument("--json", default=None, help="also write the results as JSON here")
    parser.add_argument("--markdown", action="store_true", help="also print the table as markdown")
    parser.add_argument("--quick", action="store_true", help="tiny shapes, a few seconds (CI)")


def bench_options(args: argparse.Namespace):
    """parity.bench.Options of the flags: each one given, else its --quick or plain default."""
    from .bench import DEFAULTS, QUICK, TASKS, Options

    base = QUICK if args.quick else DEFAULTS
    pick = lambda name: base[name] if getattr(args, name, None) is None else getattr(args, name)  # noqa: E731
    task = pick("task")
    try:
        seqs = tuple(int(s) for s in str(pick("seq")).split(",") if s.strip())
    except ValueError as err:
        raise ValueError(f"seq must be comma separated integers, got {args.seq!r}") from err
    impls = tuple(s.strip() for s in args.impls.split(",") if s.strip()) if args.impls else None
    return Options(shape=pick("shape"), seqs=seqs, tasks=TASKS if task == "all" else (task,), impls=impls,
                   device=args.device, dtype=args.dtype, hf_dtype=args.hf_dtype, ref_dtype=args.ref_dtype,
                   repeats=pick("repeats"), warmup=pick("warmup"), memory=pick("memory"), seed=args.seed,
                   gen_source=pick("gen_source"), new_tokens=pick("new_tokens"), beams=pick("beams"),
                   ceiling_size=base["ceiling_size"], baseline_dtype=getattr(args, "baseline_dtype", None),
                   batch_docs=pick("batch_docs"), gen_batch=pick("gen_batch"))


def run_bench(args) -> int:
    from .bench import run_and_print

    return _exit(run_and_print(bench_options(args), json_path=args.json, markdown=args.markdown))


# -------------------------------------------------------------------------------------------- gpu-check
def add_gpu_check_arguments(parser) -> None:
    parser.add_argument("--out", default="gpu-check", help="folder for summary.md, summary.json and the logs "
                        "(default ./gpu-check)")
    parser.add_argument("--dry-run", action="store_true", help="print the steps (commands, limits) and exit 0")


def run_gpu_check(args) -> int:
    from .gpu_check import run

    return run(args)


COMMANDS: list[Command] = [
    Command("check", "led_ref vs led_torch (each backend) on hypothesis cases + the default model",
            add_check_arguments, run_check),
    Command("gate", "check an attention kernel against the kernel contract", add_gate_arguments, run_gate),
    Command("replay", "re-run a saved reproducer", add_replay_arguments, run_replay),
    Command("audit", "a real checkpoint + text through every implementation", add_audit_arguments, run_audit),
    Command("info", "what the embedded default model contains", add_info_arguments, run_info),
    Command("convert", "rewrite a pytorch_model.bin checkpoint as safetensors (weights-only loading, no code runs)",
            add_convert_arguments, run_convert),
    Command("bench", "time HF, led_torch backends and led_ref side by side (parity.bench)", add_bench_arguments,
            run_bench),
    Command("gpu-check", "everything a GPU must confirm, one <= 8 min run with a markdown + JSON summary "
            "(parity.gpu_check)", add_gpu_check_arguments, run_gpu_check),
]


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


def _exit(passed: bool) -> int:
    return EXIT_OK if passed else EXIT_MISMATCH


def _unavailable(args, err) -> int:
    print(f"error: `{args.command}` is unavailable here: {err}", file=sys.stderr)
    return EXIT_USAGE


class UsageError(ValueError):
    """Bad usage or input that a command found itself (exit 2, one line); raise it with the whole message."""


# Errors that mean "the input is wrong" (a missing or malformed file, a bad value): exit 2 with one line.
INPUT_ERRORS = (UsageError, ValueError, TypeError, OSError, UnicodeError)


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
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as err:  # a crash is never reported as agreement, and never as a traceback wall
        if os.environ.get("LED_PARITY_TRACEBACK"):
            raise
        print(f"error: {type(err).__name__}: {_one_line(err)} (LED_PARITY_TRACEBACK=1 shows where)", file=sys.stderr)
        return EXIT_MISMATCH


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, OSError) and err.filename and str(err.filename) not in text:
        text += f": {err.filename}"
    return text


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
