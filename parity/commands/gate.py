"""`led-parity gate`: judge an attention kernel against the kernel contract (parity.gate)."""

from __future__ import annotations

import json
import sys

from parity.commands.exits import EXIT_MISMATCH, EXIT_OK, EXIT_USAGE
from parity.commands.flags import Command, add_common, int_list, seed_of
from parity.gate.profiles import PROFILE_CHOICES


def add_gate_arguments(parser) -> None:
    add_common(parser, examples=100)
    parser.add_argument("--attention", required=True, help="the kernel to gate, as package.module:function")
    parser.add_argument("--profile", default="all", choices=PROFILE_CHOICES,
                        help="shape profile (default all, within --max-seconds)")
    parser.add_argument("--block", type=int_list("--block"), default=None,
                        help="tile sizes the boundary profile aims at (default 16,32,64,128)")
    parser.add_argument("--backward", action="store_true", help="also gate the gradients of all six inputs")
    parser.add_argument("--max-seconds", type=float, default=600.0,
                        help="bound on the whole run, shrinking included (default 600)")
    parser.add_argument("--max-heads", type=int, default=None, help="cap the heads of every shape")
    parser.add_argument("--atol", type=float, default=None,
                        help="replaces the forward budget (scaled error), looser or tighter, in every dtype")
    parser.add_argument("--json", default=None, help="write the verdict, seed, support, errors ... here")
    support = parser.add_argument_group("declared support (narrows what the kernel declares)")
    support.add_argument("--head-dims", type=int_list("--head-dims"), default=None,
                         help="allowed head dims, e.g. 64,128")
    support.add_argument("--head-dim-multiple", type=int, default=None, help="head_dim must be a multiple of N")
    support.add_argument("--min-window", type=int, default=None)
    support.add_argument("--max-window", type=int, default=None)
    support.add_argument("--max-seq", type=int, default=None)
    support.add_argument("--max-globals", type=int, default=None, help="most global tokens in one row")
    support.add_argument("--forward-only", action="store_true", help="the kernel has no backward")


def run(args) -> int:
    from parity.gate.judge import gate, load_kernel
    from parity.gate.profiles import DEFAULT_BLOCKS
    from parity.gate.support import Support

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
    seed = seed_of(args)
    result = gate(kernel, examples=args.examples, seed=seed, dtype=args.dtype, device=args.device,
                  profile=args.profile, support=support, blocks=args.block or DEFAULT_BLOCKS,
                  backward=args.backward, max_seconds=args.max_seconds, max_heads=args.max_heads, atol=args.atol,
                  name=args.attention)
    print(result.message())
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result.to_dict(), fh, indent=2)
    return EXIT_OK if result.passed else EXIT_MISMATCH


COMMAND = Command("gate", "check an attention kernel against the kernel contract", add_gate_arguments, run)
