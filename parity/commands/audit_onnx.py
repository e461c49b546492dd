"""`led-parity audit-onnx`: the LED ONNX files of a folder in ONNX Runtime against led_ref, at many shapes."""

from __future__ import annotations

import os

from parity.commands.exits import UsageError, exit_code
from parity.commands.flags import Command, positive, seed_of


def add_audit_onnx_arguments(parser) -> None:
    parser.add_argument("onnx_dir", metavar="ONNX_DIR",
                        help="folder with encoder_model.onnx (and decoder_model.onnx, decoder_with_past_model.onnx)")
    parser.add_argument("--checkpoint", required=True,
                        help="the HF-format LED checkpoint the files were exported from (or a hub id in the local "
                             "HF cache)")
    parser.add_argument("--text", default=None, help="a text file to run as one more case (checkpoint's tokenizer)")
    parser.add_argument("--examples", type=positive("--examples"), default=10,
                        help="random cases after the one-factor sweep (default 10)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the cases (drawn and printed if absent)")
    parser.add_argument("--max-length", type=positive("--max-length"), default=None,
                        help="longest case (default: twice the traced length or the largest window, at least 64, "
                             "within the model's positions)")
    parser.add_argument("--max-new-tokens", type=positive("--max-new-tokens"), default=8,
                        help="greedy tokens generated per generation case (default 8)")
    parser.add_argument("--json", default=None, help="write the JSON report")


def run(args) -> int:
    text = None
    if args.text is not None:
        if not os.path.isfile(args.text):
            raise UsageError(f"--text {args.text!r} is not a file")
        with open(args.text, encoding="utf-8") as fh:
            text = fh.read()
    _require_onnxruntime()
    from parity.onnx.audit import audit_onnx

    return exit_code(audit_onnx(args.onnx_dir, args.checkpoint, text=text, examples=args.examples,
                                seed=seed_of(args), max_length=args.max_length, max_new_tokens=args.max_new_tokens,
                                json_path=args.json).passed)


def _require_onnxruntime() -> None:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise UsageError("audit-onnx needs onnxruntime (pip install 'led-parity[onnx]')") from None


COMMAND = Command("audit-onnx", "LED ONNX files in ONNX Runtime vs led_ref, at shapes unlike the traced one",
                  add_audit_onnx_arguments, run)
