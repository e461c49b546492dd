"""`python -m parity` / `led-parity`: check, gate, replay, audit, convert, info, bench.

With no subcommand it runs `check` on the embedded default model. Exit status: 0 agreement, 1 a
divergence (the message says "mismatch"), 2 bad usage. Subcommands are registered in COMMANDS, one entry
each (name, help, add_arguments, run); a new one (e.g. `bench`) is one more entry.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

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
    from .implementations import Side, available_torch_backends, torch_sides

    if args.backend:
        from led_torch.backends import BACKENDS

        unknown = [b for b in args.backend if b not in BACKENDS]
        if unknown:
            raise UsageError(f"--backend {unknown[0]} is not a led_torch backend; choose from {', '.join(BACKENDS)} "
                             f"(usable here: {', '.join(available_torch_backends(args.device, args.dtype))})")
    backends = args.backend or available_torch_backends(args.device, args.dtype)
    sides = torch_sides(backends, args.dtype, args.device)
    if getattr(args, "hf", False):
        sides.append(Side("hf", None, "float32"))
    return sides


def run_check(args) -> int:
    from .check import check_random
    from .report import summary_table, to_json

    seed = _seed(args)
    sides = sides_for(args)
    if not sides:
        print("mismatch: no led_torch backend is importable here, nothing to compare", file=sys.stderr)
        return EXIT_MISMATCH
    print(f"comparing led_ref (float64) with {', '.join(s.label for s in sides)}", file=sys.stderr)
    rows, generations, ok = [], [], True
    if not args.no_default:
        default = default_model_check(sides, progress=not args.no_progress)
        if default is not None:
            rows += default[0]
            generations += default[1]
            ok &= all(c.passed for _, c in default[0]) and all(g.passed for g in default[1])
    result = check_random(sides, args.examples, seed, repro_dir=args.repro_dir, progress=not args.no_progress,
                          shrink_seconds=args.shrink_seconds)
    rows += result.rows
    generations += [g for _, g in result.generations]
    print(summary_table(rows))
    print(generation_summary(generations))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            fh.write(to_json(rows, seed=seed, reproducer=result.reproducer,
                             generation=[g.to_dict() for g in generations]))
    if not result.passed:
        print(result.failure, file=sys.stderr)
    ok &= result.passed
    print(("all agree" if ok else "mismatch") + f" (seed {seed})")
    return EXIT_OK if ok else EXIT_MISMATCH


def generation_summary(generations) -> str:
    """Counts of identical / tie / MISMATCH generations, then every one that was not identical."""
    counts = {status: sum(g.status == status for g in generations) for status in ("identical", "tie", "MISMATCH")}
    scored = sum(getattr(g, "scores_compared", 0) for g in generations)
    lines = ["generation: " + ", ".join(f"{n} {status}" for status, n in counts.items())
             + (f"; beam scores compared on {scored} rows" if scored else "")]
    return "\n".join(lines + [g.describe() for g in generations if not g.identical])


def token_limit(config) -> int:
    """The longest input the model takes: its encoder positions, rounded down to a multiple of the largest
    window (the input is padded to one)."""
    return max(2, (config.max_encoder_position_embeddings // config.max_window) * config.max_window)


def default_inputs(tokenizer, config, text: str, global_positions=(0,), max_tokens: int | None = None) -> dict:
    """Tokenized `text` up to the model's limit (or `max_tokens`), `global_positions` global, teacher-forced
    decoder inputs. Also returns what was cut: (inputs, {"text_tokens", "used_tokens", "limit"})."""
    limit = token_limit(config) if max_tokens is None else min(token_limit(config), max_tokens)
    whole = len(tokenizer(text)["input_ids"])
    enc = tokenizer(text, truncation=True, max_length=limit, return_tensors="np")
    input_ids = np.asarray(enc["input_ids"], dtype=np.int64)
    used = input_ids.shape[1]
    global_mask = np.zeros_like(input_ids)
    for position in global_positions:
        if not 0 <= position < used:
            raise UsageError(f"--global position {position} is outside the {used} input tokens [0, {used})")
        global_mask[:, position] = 1
    target = input_ids[:, : min(input_ids.shape[1], config.max_decoder_position_embeddings)]
    decoder = np.concatenate([[[config.decoder_start_token_id]], target[:, :-1]], axis=1).astype(np.int64)
    inputs = {"input_ids": input_ids, "attention_mask": np.asarray(enc["attention_mask"], dtype=np.int64),
              "global_attention_mask": global_mask, "decoder_input_ids": decoder, "labels": target}
    return inputs, {"text_tokens": whole, "used_tokens": used, "limit": limit}


def checkpoint_parity(directory: str, text: str, sides, progress: bool = True, max_new_tokens: int | None = 8,
                      num_beams: int | None = None, global_positions=(0,), max_tokens: int | None = None,
                      details: dict | None = None):
    """Every side vs led_ref on a checkpoint + text: forward outputs, then generation (tie-aware, beam scores
    compared). Generation uses the checkpoint's settings (generation_config.json, else config.json) with
    `max_new_tokens` / `num_beams` overriding them; every side gets them explicitly. `details`, if given, is
    filled with the token counts, global positions and generation settings used."""
    from led_ref.io.checkpoint import load_checkpoint, resolve_checkpoint
    from led_ref.io.generation_settings import explicit_arguments, model_generation_config, resolve
    from led_ref.io.tokenizer import LEDTokenizer

    from .check import Progress, run_case
    from .generation import generation_parity
    from .implementations import Side

    directory = resolve_checkpoint(directory)
    config, weights = load_checkpoint(directory)
    architecture = _architecture_of(config, weights)
    if architecture != "LEDForConditionalGeneration":
        from led_ref.io.checkpoint import load_checkpoint as _load

        config, weights = _load(directory, "LEDForConditionalGeneration", allow_missing_head=True)
    inputs, counts = default_inputs(LEDTokenizer.from_pretrained(directory), config, text, global_positions,
                                    max_tokens)
    if counts["used_tokens"] < counts["text_tokens"]:
        print(f"note: the text has {counts['text_tokens']} tokens; using the first {counts['used_tokens']} "
              f"(limit {counts['limit']}: the model's encoder positions, or --max-tokens)", file=sys.stderr)
    settings = resolve(config, model_generation_config(config, directory), max_new_tokens=max_new_tokens,
                       num_beams=num_beams)
    generate_kwargs = explicit_arguments(settings)
    if details is not None:
        details.update(counts, global_positions=list(global_positions), generation_settings=generate_kwargs)
    bar = Progress(2, "checkpoint", progress)
    comparisons = run_case(config, "LEDForConditionalGeneration", weights, inputs, sides)
    bar.step("forward")
    _, generations = generation_parity(config, weights, inputs, sides, Side("ref"), **generate_kwargs)
    bar.step("generate")
    bar.close()
    return [(os.path.basename(os.path.normpath(directory)) or directory, c) for c in comparisons], generations


def _architecture_of(config, weights) -> str:
    return "LEDForConditionalGeneration" if "final_logits_bias" in weights else "LEDModel"


def default_model_check(sides, progress: bool = True):
    """checkpoint_parity on the embedded default model and its DEFAULT_TEXT (None if it is not there)."""
    try:
        from led_ref.io.default_model import DEFAULT_TEXT, default_checkpoint_dir
    except ImportError:
        print("note: led_ref.io.default_model is not available; skipping the embedded default model", file=sys.stderr)
        return None
    return checkpoint_parity(default_checkpoint_dir(), DEFAULT_TEXT, sides, progress, max_new_tokens=8,
                             num_beams=1)


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
    from .check import run_case
    from .implementations import Side
    from .report import load_reproducer, text_table

    case = load_reproducer(args.file)
    print(f"replaying {case['actual']} vs {case['expected']} on {case['architecture']} "
          f"(seed {case.get('seed')}, weight_seed {case.get('weight_seed')})")
    comparisons = run_case(case["config"], case["architecture"], case["weights"], case["inputs"],
                           [Side.parse(case["actual"])], Side.parse(case["expected"]))
    for c in comparisons:
        print(text_table(c))
    generations = []
    if case["architecture"] == "LEDForConditionalGeneration":
        from .generation import generation_parity

        _, generations = generation_parity(case["config"], case["weights"], case["inputs"],
                                           [Side.parse(case["actual"])], Side.parse(case["expected"]),
                                           max_new_tokens=case.get("max_new_tokens", 3),
                                           num_beams=1 + int(case.get("weight_seed") or 0) % 2)
        print(generation_summary(generations))
    if all(c.passed for c in comparisons) and all(g.passed for g in generations):
        print("no mismatch: the saved case agrees now")
        return EXIT_OK
    print("mismatch reproduced")
    return EXIT_MISMATCH


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


def versions() -> dict:
    """Versions of what took part in a run (for the JSON report)."""
    import platform
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("led-parity", "numpy", "torch", "transformers", "tokenizers", "safetensors"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_description(device: str) -> str:
    if device == "cuda":
        import torch

        return f"cuda ({torch.cuda.get_device_name()})"
    import platform

    return f"cpu ({platform.processor() or platform.machine()})"


def run_audit(args) -> int:
    from .hf import hf_available
    from .report import text_table, to_json

    if args.hf and not hf_available():
        raise UsageError("--hf needs transformers (pip install 'led-parity[test]')")
    if not os.path.isfile(args.text):
        raise UsageError(f"--text {args.text!r} is not a file")
    with open(args.text, encoding="utf-8") as fh:
        text = fh.read()
    details: dict = {}
    rows, generations = checkpoint_parity(args.checkpoint, text, sides_for(args), progress=not args.no_progress,
                                          max_new_tokens=args.max_new_tokens, num_beams=args.num_beams,
                                          global_positions=args.global_positions, max_tokens=args.max_tokens,
                                          details=details)
    for _, c in rows:
        print(text_table(c))
    print(generation_summary(generations))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            fh.write(to_json(rows, checkpoint=args.checkpoint, versions=versions(),
                             device=device_description(args.device), dtype=args.dtype,
                             seed=None,  # an audit draws nothing at random
                             **details, generation=[g.to_dict() for g in generations]))
    ok = all(c.passed for _, c in rows) and all(g.passed for g in generations)
    print("all agree" if ok else "mismatch")
    return EXIT_OK if ok else EXIT_MISMATCH


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
    from .implementations import available_torch_backends
    from .tolerances import table_text

    info: dict = {"torch_backends_cpu": available_torch_backends("cpu")}
    try:
        from led_ref.io.checkpoint import load_checkpoint
        from led_ref.io.default_model import DEFAULT_TEXT, default_checkpoint_dir

        directory = default_checkpoint_dir()
        config, weights = load_checkpoint(directory)
        info.update(checkpoint=str(directory), files=sorted(os.listdir(directory)),
                    parameters=int(sum(w.size for w in weights.values())),
                    architecture=_architecture_of(config, weights),
                    d_model=config.d_model, encoder_layers=config.encoder_layers, decoder_layers=config.decoder_layers,
                    heads=config.encoder_attention_heads, windows=config.layer_windows, vocab_size=config.vocab_size,
                    max_encoder_positions=config.max_encoder_position_embeddings, default_text=DEFAULT_TEXT)
    except ImportError:
        info["checkpoint"] = None
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    for key, value in info.items():
        print(f"{key:<22} {value}")
    print("\ntolerances (scaled error max|a-b|/max(1,max|b|)):")
    print(table_text())
    return EXIT_OK


def _bench_arguments(parser) -> None:
    from .bench import add_arguments

    add_arguments(parser)


def _bench_run(args) -> int:
    from .bench import run

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
    Command("bench", "time HF, led_torch backends and led_ref side by side (parity.bench)", _bench_arguments,
            _bench_run),
    Command("gpu-check", "everything a GPU must confirm, one <= 8 min run with a markdown + JSON summary "
            "(parity.gpu_check)", lambda p: __import__("parity.gpu_check").gpu_check.add_arguments(p),
            lambda a: __import__("parity.gpu_check").gpu_check.run(a)),
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
