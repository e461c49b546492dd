"""`led-parity export-onnx`: led_torch's LED as ONNX files right at every shape, audited before success."""

from __future__ import annotations

import sys

from parity.commands.exits import EXIT_MISMATCH, EXIT_OK, UsageError
from parity.commands.flags import Command, positive, seed_of


def add_export_onnx_arguments(parser) -> None:
    parser.add_argument("checkpoint", metavar="CHECKPOINT",
                        help="HF-format LED folder or a hub id in the local HF cache")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder to write the ONNX files, config and tokenizer into")
    parser.add_argument("--attention", default="dense", choices=("dense", "banded"),
                        help="dense: O(seq^2) memory, correct by construction; banded: O(seq x (window + globals)) "
                             "(needs the dynamo exporter). Default dense")
    parser.add_argument("--exporter", default="dynamo", choices=("dynamo", "torchscript"),
                        help="torch.onnx exporter to try first (dynamo falls back to torchscript where it refuses)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16"),
                        help="weights and states of the files (float16: audited with the float16 budget)")
    parser.add_argument("--encoder-only", action="store_true", help="write encoder_model.onnx only")
    parser.add_argument("--length", type=positive("--length"), default=None,
                        help="tokens the encoder is traced at (default: twice the largest window + 3)")
    parser.add_argument("--examples", type=positive("--examples"), default=10, help="random cases of the audit")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the audit's cases (drawn and printed if absent)")
    parser.add_argument("--json", default=None, help="write the audit's JSON report")


def run(args) -> int:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as err:
        raise UsageError(f"export-onnx needs the onnx extra (pip install 'led-parity[onnx]'): {err}") from None
    if args.attention == "banded" and args.exporter == "torchscript":
        raise UsageError("--attention banded needs the dynamo exporter: the TorchScript tracer records the number "
                         "of global tokens as a constant")
    from parity.onnx.export import export_onnx

    result = export_onnx(args.checkpoint, args.out_dir, attention=args.attention, decoders=not args.encoder_only,
                         length=args.length, exporter=args.exporter, dtype=args.dtype, examples=args.examples,
                         seed=seed_of(args), json_path=args.json)
    for name, shapes in result.files.items():
        print(f"wrote {name} ({shapes.get('exporter')} exporter)", file=sys.stderr)
    if result.error:
        print(f"error: {result.error}", file=sys.stderr)
        return EXIT_MISMATCH
    if not result.passed:
        print(f"error: the export in {args.out_dir} failed its audit (see above); do not deploy it", file=sys.stderr)
        return EXIT_MISMATCH
    print(f"exported and audited: {args.out_dir}")
    return EXIT_OK


COMMAND = Command("export-onnx", "export led_torch's LED to ONNX (right at every shape) and audit it",
                  add_export_onnx_arguments, run)
