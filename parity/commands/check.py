"""`led-parity check`: the embedded default model, then hypothesis cases, through led_ref and every side.

Prints one summary line per comparison and the generation summary, writes the JSON report, and says
"all agree" or "mismatch" with the seed; a divergence's shrunk case is saved as a reproducer (parity.harness.check).
"""

from __future__ import annotations

import sys

from parity.commands.exits import UsageError, exit_code
from parity.commands.flags import Command, add_common, seed_of, sides_for


def run_check(sides, examples: int, seed: int, default_model: bool = True, json_path: str | None = None,
              repro_dir: str | None = None, progress: bool = True, shrink_seconds: float = 60.0) -> bool:
    """True when every side agreed with led_ref on the default model (unless `default_model` is off) and on
    `examples` random cases drawn with `seed`."""
    from parity.harness.check import check_random
    from parity.harness.checkpoints import default_model_check
    from parity.harness.report import generation_summary, summary_table, to_json

    if not sides:
        print("mismatch: no led_torch backend is importable here, nothing to compare", file=sys.stderr)
        return False
    print(f"comparing led_ref (float64) with {', '.join(s.label for s in sides)}", file=sys.stderr)
    exports = [s for s in sides if s.family == "onnx"]  # one set of weights each: parity.onnx.check
    sides = [s for s in sides if s.family != "onnx"]
    rows, generations, ok = [], [], True
    default = default_model_check(sides, progress=progress) if default_model and sides else None
    if default is not None:
        rows += default[0]
        generations += default[1]
        ok &= all(c.passed for _, c in default[0]) and all(g.passed for g in default[1])
    results = [check_random(sides, examples, seed, repro_dir=repro_dir, progress=progress,
                            shrink_seconds=shrink_seconds)] if sides else []
    if exports:
        from parity.onnx.check import check_export

        results += [check_export(s.backend, examples, seed, progress=progress, shrink_seconds=shrink_seconds)
                    for s in exports]
    result = results[0]
    for other in results[1:]:
        result.rows += other.rows
        result.generations += other.generations
        result.passed &= other.passed
        result.failure = "\n".join(f for f in (result.failure, other.failure) if f)
        result.reproducer = result.reproducer or other.reproducer
    rows += result.rows
    generations += [g for _, g in result.generations]
    print(summary_table(rows))
    print(generation_summary(generations))
    if json_path:
        with open(json_path, "w", encoding="utf-8") as fh:
            fh.write(to_json(rows, seed=seed, reproducer=result.reproducer,
                             generation=[g.to_dict() for g in generations]))
    if not result.passed:
        print(result.failure, file=sys.stderr)
    ok &= result.passed
    print(("all agree" if ok else "mismatch") + f" (seed {seed})")
    return ok


def add_check_arguments(parser) -> None:
    add_common(parser, examples=5)
    parser.add_argument("--backend", action="append", default=None,
                        help="led_torch backend to check (repeatable; default: every one available)")
    parser.add_argument("--hf", action="store_true", help="also compare HF transformers (float32)")
    parser.add_argument("--impls", default=None,
                        help="comma separated sides instead of --backend: led_torch backends, hf, or onnx:DIR (an "
                             "ONNX export folder, checked on its own weights; docs/onnx.md)")
    parser.add_argument("--no-default", action="store_true", help="skip the embedded default model")
    parser.add_argument("--json", default=None, help="write the JSON report here")
    parser.add_argument("--repro-dir", default=None, help="where to save the reproducer of a divergence")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--shrink-seconds", type=float, default=60.0,
                        help="stop shrinking a divergent case after this long (default 60)")


def run(args) -> int:
    sides = sides_for(args) if args.backend or args.hf or not args.impls else []
    if args.impls:
        from parity.harness.implementations import side_named

        try:
            sides += [side_named(name.strip(), args.dtype, args.device, hf_dtype="float32")
                      for name in args.impls.split(",") if name.strip()]
        except ValueError as err:
            raise UsageError(f"--impls: {err}") from None
    return exit_code(run_check(sides, args.examples, seed_of(args), default_model=not args.no_default,
                               json_path=args.json, repro_dir=args.repro_dir, progress=not args.no_progress,
                               shrink_seconds=args.shrink_seconds))


COMMAND = Command("check", "led_ref vs led_torch (each backend) on hypothesis cases + the default model",
                  add_check_arguments, run)
