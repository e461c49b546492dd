"""`led-parity gate`: judge an attention kernel against the kernel contract (parity.gate)."""

from __future__ import annotations

import json
import sys

from parity.commands.exits import EXIT_MISMATCH, EXIT_OK, EXIT_USAGE
from parity.commands.flags import Command, add_common, int_list, seed_of
from parity.gate.adapters import ADAPTERS
from parity.gate.profiles import PROFILE_CHOICES
from parity.gate.support import PADDING_FLAGS
from parity.harness.tolerances import DTYPE_ORDER


def add_gate_arguments(parser) -> None:
    add_common(parser, examples=100)
    parser.add_argument("--attention", required=True, help="the kernel to gate, as package.module:function")
    parser.add_argument("--adapter", default=None, choices=ADAPTERS,
                        help="the kernel's interface when it is not the contract's: hf-module (a module with "
                             "HF LEDEncoderSelfAttention's forward), local / local-varlen (FlashAttention-style "
                             "(batch, seq, heads, head_dim), window_size=(left, right), cu_seqlens)")
    parser.add_argument("--profile", default="all", choices=PROFILE_CHOICES,
                        help="shape profile (default all, within --max-seconds)")
    parser.add_argument("--block", type=int_list("--block"), default=None,
                        help="tile sizes the boundary profile aims at (default 16,32,64,128)")
    parser.add_argument("--backward", action="store_true", help="also gate the gradients of all six inputs")
    parser.add_argument("--max-seconds", type=float, default=600.0,
                        help="bound on the whole run, shrinking included (default 600); a run it cuts short is "
                             "`incomplete` (exit 1)")
    parser.add_argument("--allow-incomplete", action="store_true",
                        help="a run cut short by --max-seconds without a failure passes (with a note)")
    parser.add_argument("--max-heads", type=int, default=None, help="cap the heads of the realistic shapes")
    parser.add_argument("--atol", type=float, default=None,
                        help="replaces the forward budget (scaled error), looser or tighter, in every dtype")
    parser.add_argument("--json", default=None, help="write the verdict, seed, support, errors ... here (strict JSON)")
    parser.add_argument("--replay-case", default=None, metavar="DIR",
                        help="run the kernel once on a case saved by a failing gate run on custom cases (its "
                             "dtype, device, backward and atol come from the folder)")
    support = parser.add_argument_group("declared support (narrows what the kernel declares)")
    support.add_argument("--head-dims", type=int_list("--head-dims"), default=None,
                         help="allowed head dims, e.g. 64,128")
    support.add_argument("--head-dim-multiple", type=int, default=None, help="head_dim must be a multiple of N")
    support.add_argument("--min-window", type=int, default=None)
    support.add_argument("--max-window", type=int, default=None)
    support.add_argument("--max-seq", type=int, default=None)
    support.add_argument("--max-globals", type=int, default=None, help="most global tokens in one row")
    support.add_argument("--forward-only", action="store_true", help="the kernel has no backward")
    support.add_argument("--dtypes", default=None, help="the dtypes the kernel runs in, e.g. float32,bfloat16")
    support.add_argument("--compute-dtype", default=None, choices=DTYPE_ORDER,
                         help="the kernel computes in this (lower) precision: judged by its budget")
    support.add_argument("--padding", default=None, choices=tuple(PADDING_FLAGS.values()),
                         help="padding the kernel takes: any, edges (left/right only, no holes), none")
    checks = parser.add_argument_group("CI: shards, reports, reproducers and the checks beyond the profiles")
    checks.add_argument("--shard", default=None, metavar="K/N",
                        help="run the K-th of N deterministic parts of the profiles' shapes (merge the JSON "
                             "reports with `led-parity gate-merge`)")
    checks.add_argument("--deterministic", action="store_true",
                        help="repeat every case (forward, and backward with --backward) and require the same bits")
    checks.add_argument("--junit-xml", default=None, metavar="FILE", help="write a JUnit XML report here")
    checks.add_argument("--reproducer-dir", default=None, metavar="DIR",
                        help="on a failure, write the reproducer folder here (default a fresh temp folder)")
    checks.add_argument("--activations-from", default=None, metavar="CHECKPOINT",
                        help="also gate on the q, k, v each encoder layer of this checkpoint computes ('default': "
                             "the embedded trained model)")
    checks.add_argument("--text", default=None, metavar="FILE",
                        help="the text --activations-from runs on (default the embedded model's text)")
    extra = parser.add_argument_group("extra shapes (values added to every profile's axes)")
    extra.add_argument("--seq", default=None, help="extra sequence lengths, e.g. 8192,16384")
    extra.add_argument("--heads", default=None, help="extra head counts, e.g. 32")
    extra.add_argument("--windows", default=None, help="extra (even) windows, e.g. 10,2048")
    extra.add_argument("--add-head-dims", default=None, help="extra head dims, e.g. 80,96")


def run(args) -> int:
    from parity.gate.judge import gate, load_kernel, replay_case
    from parity.gate.profiles import DEFAULT_BLOCKS

    try:
        kernel = load_kernel(args.attention)
    except (ValueError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    if args.replay_case:
        if args.adapter:
            from parity.gate.adapters import adapt

            kernel = adapt(kernel, args.adapter)
        result = replay_case(kernel, args.replay_case, name=args.attention)
    else:
        seed = seed_of(args)
        result = gate(kernel, examples=args.examples, seed=seed, dtype=args.dtype, device=args.device,
                      profile=args.profile, support=_support(args), blocks=args.block or DEFAULT_BLOCKS,
                      backward=args.backward, max_seconds=args.max_seconds,
                      max_heads=args.max_heads, atol=args.atol, name=args.attention,
                      allow_incomplete=args.allow_incomplete, extra=_extra(args), adapter=args.adapter,
                      shard=args.shard, deterministic=args.deterministic, reproducer=args.reproducer_dir or True,
                      activations=_activations(args))
    print(result.message(decorator_advice=False))
    if args.json or args.junit_xml:
        report = result.to_dict()
        if args.json:
            with open(args.json, "w", encoding="utf-8") as fh:
                json.dump(report, fh, indent=2, allow_nan=False)
        if args.junit_xml:
            from parity.gate.junit import write_junit

            write_junit(report, args.junit_xml)
    return EXIT_OK if result.passed else EXIT_MISMATCH


def _activations(args):
    """(checkpoint, text file) for --activations-from/--text ('default' or no checkpoint: the embedded model)."""
    if args.activations_from is None and args.text is None:
        return None
    checkpoint = None if args.activations_from in (None, "default") else args.activations_from
    return checkpoint, args.text


def _support(args):
    from parity.gate.support import Support, padding_value

    limits = {"head_dims": args.head_dims, "head_dim_multiple": args.head_dim_multiple,
              "min_window": args.min_window, "max_window": args.max_window, "max_seq": args.max_seq,
              "max_globals": args.max_globals, "compute_dtype": args.compute_dtype,
              "dtypes": None if args.dtypes is None else tuple(d for d in args.dtypes.split(",") if d.strip()),
              "padding": None if args.padding is None else padding_value(args.padding)}
    return Support(**{k: v for k, v in limits.items() if v is not None},
                   **({"backward": False} if args.forward_only else {}))


def _extra(args):
    """The extra shapes of --seq/--heads/--windows/--add-head-dims (None when none is given)."""
    values = {"seq": args.seq, "heads": args.heads, "windows": args.windows, "head_dims": args.add_head_dims}
    if all(v is None for v in values.values()):
        return None
    from parity.gate.profiles import parse_extra_shapes

    return parse_extra_shapes(**values)


COMMAND = Command("gate", "check an attention kernel against the kernel contract", add_gate_arguments, run)
