"""`led-parity audit`: a real checkpoint and a text through led_ref, led_torch (and HF), every output compared."""

from __future__ import annotations

import os

from parity.commands.exits import UsageError, exit_code
from parity.commands.flags import Command, positions, positive, sides_for
from parity.harness.tolerances import DTYPE_ORDER


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
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (never drawn off a terminal)")
    parser.add_argument("--json", default=None, help="write the JSON report (with versions, device, positions)")


def run(args) -> int:
    from parity.harness.checkpoints import audit
    from parity.hf.models import hf_available

    if args.hf and not hf_available():
        raise UsageError("--hf needs transformers (pip install 'led-parity[test]')")
    if not os.path.isfile(args.text):
        raise UsageError(f"--text {args.text!r} is not a file")
    with open(args.text, encoding="utf-8") as fh:
        text = fh.read()
    return exit_code(audit(args.checkpoint, text, sides_for(args), args.device, args.dtype, json_path=args.json,
                       progress=not args.no_progress, max_new_tokens=args.max_new_tokens, num_beams=args.num_beams,
                       global_positions=args.global_positions, max_tokens=args.max_tokens))


COMMAND = Command("audit", "a real checkpoint + text through every implementation", add_audit_arguments, run)
