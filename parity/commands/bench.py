"""`led-parity bench`: time HF, led_torch's backends and led_ref side by side (the measuring is parity.perf)."""

from __future__ import annotations

import argparse

from parity.commands.exits import exit_code
from parity.commands.flags import Command
from parity.harness.implementations import SHORT_NAMES
from parity.harness.tolerances import DTYPE_ORDER
from parity.perf.bench import run_and_print
from parity.perf.options import DEFAULTS, QUICK, SHAPES, TASKS, THROUGHPUT, Options


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
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
    parser.add_argument("--no-spec-tokens", dest="spec_tokens", action="store_false",
                        help="do not generate with led_ref in float64 (untimed) to judge half-precision tokens "
                             "tie-aware; report only their agreement with the reference row")
    parser.add_argument("--seed", type=int, default=0, help="weights and inputs seed")
    parser.add_argument("--json", default=None, help="also write the results as JSON here")
    parser.add_argument("--markdown", action="store_true", help="also print the table as markdown")
    parser.add_argument("--quick", action="store_true", help="tiny shapes, a few seconds (CI)")
    parser.add_argument("--onnx", default=None, metavar="DIR[,DIR]",
                        help="ONNX Runtime (CPU) on these export folders against led_torch and HF on the export's "
                             "own weights: encoder at --seq, beam generation (--gen-source, --new-tokens, --beams); "
                             "parity.onnx.bench, docs/onnx.md")


def bench_options(args: argparse.Namespace):
    """parity.perf.options.Options of the flags: each one given, else its --quick or plain default."""
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
                   batch_docs=pick("batch_docs"), gen_batch=pick("gen_batch"),
                   spec_tokens=getattr(args, "spec_tokens", True))


def run(args) -> int:
    if args.onnx:
        from parity.onnx.bench import run_onnx_bench_args

        return exit_code(run_onnx_bench_args(args))
    return exit_code(run_and_print(bench_options(args), json_path=args.json, markdown=args.markdown))


COMMAND = Command("bench", "time HF, led_torch backends and led_ref side by side (parity.perf)", add_bench_arguments,
                  run)
