"""`led-parity audit`: a real checkpoint and a text through led_ref, led_torch (and HF), every output compared."""

from __future__ import annotations

import argparse
import os

from parity.commands.exits import UsageError, exit_code
from parity.commands.flags import Command, positions, positive, sides_for
from parity.harness.tolerances import DTYPE_ORDER

# What --outputs may name (parity.harness.checkpoints.ALL_OUTPUTS, spelled here so that --help imports nothing).
OUTPUTS = ("hidden", "attentions", "logits", "generation")


def outputs_list(text: str) -> tuple[str, ...]:
    """--outputs: `all`, or comma-separated names of OUTPUTS (kept in model order)."""
    names = {n.strip() for n in text.split(",") if n.strip()}
    if names == {"all"}:
        return OUTPUTS
    unknown = sorted(names - set(OUTPUTS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"--outputs takes 'all' or comma-separated names from {', '.join(OUTPUTS)}; "
                                         f"got {text!r}")
    return tuple(n for n in OUTPUTS if n in names)


def add_audit_arguments(parser) -> None:
    parser.add_argument("--checkpoint", required=True,
                        help="HF-format LED folder (config, safetensors, tokenizer) or a hub id in the local HF cache")
    parser.add_argument("--text", required=True, help="a text file to run through the model")
    parser.add_argument("--hf", action="store_true", help="also compare HF transformers (float32)")
    parser.add_argument("--backend", action="append", default=None)
    parser.add_argument("--dtype", default="float32", choices=DTYPE_ORDER)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--max-tokens", type=positive("--max-tokens"), default=None,
                        help="use at most this many input tokens (default: the model's limit; a cut is reported)")
    parser.add_argument("--global", dest="global_positions", type=positions, default=[0],
                        help="comma-separated input positions with global attention (default 0)")
    parser.add_argument("--num-beams", type=positive("--num-beams"), default=None,
                        help="default: the checkpoint's generation settings")
    parser.add_argument("--max-new-tokens", type=positive("--max-new-tokens"), default=None,
                        help="default: the checkpoint's generation settings")
    parser.add_argument("--outputs", type=outputs_list, default=OUTPUTS,
                        help="what to compare: 'all' (default) or comma-separated from " + ", ".join(OUTPUTS))
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (never drawn off a terminal)")
    parser.add_argument("--json", default=None, help="write the JSON report (with versions, device, positions)")


def check_writable(flag: str, path: str) -> None:
    """A UsageError naming `path` unless it can be written, found before anything runs: the file is opened for
    appending (created and removed again if it was not there), which also catches read-only file systems."""
    if os.path.isdir(path):
        raise UsageError(f"{flag} {path!r} is a folder; give a file name")
    existed = os.path.exists(path)
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as err:
        raise UsageError(f"{flag} {path!r} cannot be written: {err.strerror or err}") from None
    if not existed:
        os.remove(path)


def run(args) -> int:
    from parity.harness.checkpoints import audit
    from parity.hf.models import hf_available

    if args.hf and not hf_available():
        raise UsageError("--hf needs transformers (pip install 'led-parity[test]')")
    if not os.path.isfile(args.text):
        raise UsageError(f"--text {args.text!r} is not a file")
    if args.json:
        check_writable("--json", args.json)
    with open(args.text, encoding="utf-8") as fh:
        text = fh.read()
    return exit_code(audit(args.checkpoint, text, sides_for(args), args.device, args.dtype, json_path=args.json,
                       progress=not args.no_progress, outputs=args.outputs, max_new_tokens=args.max_new_tokens,
                       num_beams=args.num_beams, global_positions=args.global_positions,
                       max_tokens=args.max_tokens))


COMMAND = Command("audit", "a real checkpoint + text through every implementation", add_audit_arguments, run)
