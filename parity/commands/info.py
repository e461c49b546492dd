"""`led-parity info`: what the embedded default model contains, led_torch's backends here, the tolerances."""

from __future__ import annotations

import json
import os

from parity.commands.exits import EXIT_OK
from parity.commands.flags import Command


def default_model_info() -> dict:
    """Backends usable on CPU, then the default checkpoint's folder, files, size and shape (checkpoint None
    when led_ref's default model is not installed)."""
    from parity.harness.implementations import available_torch_backends

    info: dict = {"torch_backends_cpu": available_torch_backends("cpu")}
    try:
        from led_ref.io.checkpoint import infer_architecture, load_checkpoint
        from led_ref.io.default_model import DEFAULT_TEXT, default_checkpoint_dir

        directory = default_checkpoint_dir()
        config, weights = load_checkpoint(directory)
    except ImportError:
        info["checkpoint"] = None
        return info
    info.update(checkpoint=str(directory), files=sorted(os.listdir(directory)),
                parameters=int(sum(w.size for w in weights.values())), architecture=infer_architecture(weights),
                d_model=config.d_model, encoder_layers=config.encoder_layers, decoder_layers=config.decoder_layers,
                heads=config.encoder_attention_heads, windows=config.layer_windows, vocab_size=config.vocab_size,
                max_encoder_positions=config.max_encoder_position_embeddings, default_text=DEFAULT_TEXT)
    return info


def info_text(info: dict) -> str:
    """`info` as aligned text lines, then the tolerance table."""
    from parity.harness.tolerances import table_text

    lines = [f"{key:<22} {value}" for key, value in info.items()]
    return "\n".join(lines + ["", "tolerances (scaled error max|a-b|/max(1,max|b|)):", table_text()])


def add_info_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def run(args) -> int:
    info = default_model_info()
    print(json.dumps(info, indent=2) if args.json else info_text(info))
    return EXIT_OK


COMMAND = Command("info", "what the embedded default model contains", add_info_arguments, run)
