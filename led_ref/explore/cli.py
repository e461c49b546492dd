"""`python -m led_ref layout ...`: print or draw the Longformer attention layout.

    python -m led_ref layout --seq-len 12 --window 4 --global 0 --pad 2            # grid + compact layout
    python -m led_ref layout --seq-len 12 --window 4 --global 0 --format mask      # N lines of 0/1
    python -m led_ref layout --seq-len 12 --layer-windows 4,8 --png layout.png     # picture (matplotlib)
    python -m led_ref layout --from-model --text "Hello world" --png heat.png      # real attentions
    python -m led_ref layout --seq-len 16384 --window 1024 --global 0 --rows 1,8000    # LED-base scale, blocks
    python -m led_ref layout --seq-len 12 --window 4 --batch 0,5 3/2 /4            # a batch: x slots, unused 0
    python -m led_ref layout --seq-len 12 --window 4 --batch 0,5 3/2 /4 --png b.png  # every batch row drawn
    python -m led_ref layout --seq-len 64 --layer-windows 4,4,8 --global 40 --reach 5  # reach across layers
    python -m led_ref layout --seq-len 4096 --window 512 --global 0 --html out.html   # interactive page
    python -m led_ref layout --seq-len 12 --window 4 --convention natten       # in NATTEN's terms, and its limits

Bad arguments exit with status 2 and a message naming the value (argparse's convention).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from ..io.validation import check_window
from .batch_slots import MAX_BATCH_ROWS, batch_report
from .blocks import BLOCK_GRID_CELLS, check_block
from .cells import MAX_MASK_SEQ_LEN, mask_text, pattern_cells
from .compact import MAX_ROWS_SHOWN, check_rows
from .conventions import NAMES as CONVENTION_NAMES
from .conventions import describe as describe_convention
from .examples import MAX_EXPLORER_SEQ_LEN, check_example, example_kinds, padding_note
from .explorer import layout_report
from .from_model import (
    MAX_MODEL_TOKENS,
    MAX_ROUNDTRIP_TOKENS,
    block_heat,
    dense_layer,
    encode_text,
    model_attentions,
    model_pattern,
    model_token_limit,
    roundtrip_error,
    top_keys_text,
)
from .grid import TOKEN_GRID_MAX
from .reach import reach_text


def even_window(text: str) -> int:
    """argparse type: an even int >= 2."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"window must be an even int >= 2, got {text!r}") from None
    try:
        return check_window(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def window_list(text: str) -> list[int]:
    """argparse type: comma-separated even windows, one per encoder layer."""
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"expected comma-separated even windows such as 4,8, got {text!r}")
    return [even_window(p.strip()) for p in parts]


def index_list(text: str) -> list[int]:
    """argparse type: comma-separated non-negative positions (empty string = none)."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            value = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated positions such as 0,5, got {part!r}") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"positions must be >= 0, got {value}")
        out.append(value)
    return out


def row_list(text: str) -> list[int]:
    """argparse type: comma-separated rows and ranges A..B (inclusive), e.g. 0,5,100..103."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        first, dots, last = part.partition("..")
        try:
            lo, hi = int(first), int(last) if dots else int(first)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected rows such as 0,5,100..103, got {part!r}") from None
        if lo < 0 or hi < lo:
            raise argparse.ArgumentTypeError(f"rows must be >= 0 and ranges increasing, got {part!r}")
        if hi - lo >= 1000:
            raise argparse.ArgumentTypeError(f"range {part!r} is too long (at most 1000 rows)")
        out.extend(range(lo, hi + 1))
    if not out:
        raise argparse.ArgumentTypeError(f"expected rows such as 0,5,100..103, got {text!r}")
    return out


def batch_row(text: str) -> tuple[list[int], int]:
    """argparse type: one batch row as GLOBALS[/PAD], e.g. 0,5 or 3/2 or /4 (no global, 4 padding)."""
    globals_text, _, pad_text = text.partition("/")
    try:
        pad = int(pad_text) if pad_text.strip() else 0
    except ValueError:
        raise argparse.ArgumentTypeError(f"batch row must be GLOBALS[/PAD] such as 0,5/2, got {text!r}") from None
    if pad < 0:
        raise argparse.ArgumentTypeError(f"batch row {text!r}: padding must be >= 0, got {pad}")
    try:
        return index_list(globals_text), pad
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(f"batch row {text!r}: {err}") from None


def non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an int >= 0, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m led_ref", description="Tools of the LED reference.")
    commands = parser.add_subparsers(dest="command", required=True)
    lay = commands.add_parser(
        "layout",
        help="show the Longformer attention pattern and HF's compact layout",
        description="Print (or draw) which keys every query of the LED encoder attends, and where HF's compact "
        "`attentions`/`global_attentions` store each probability.",
    )
    shape = lay.add_argument_group("synthetic pattern")
    shape.add_argument("--seq-len", type=non_negative, metavar="N",
                       help=f"tokens N (1..{MAX_EXPLORER_SEQ_LEN}; beyond {TOKEN_GRID_MAX} the grid "
                       "shows blocks of keys)")
    shape.add_argument("--window", type=even_window, metavar="W",
                       help="attention window w (even; reach w/2 each side)")
    shape.add_argument("--layer-windows", type=window_list, metavar="W0,W1,...",
                       help="one window per encoder layer (one grid per layer)")
    shape.add_argument("--pad", type=non_negative, default=0, metavar="K",
                       help="the last K of the N positions are padding")
    shape.add_argument("--format", choices=("grid", "mask"), default="grid",
                       help="grid: picture + legend + compact layout; mask: exactly N lines of N 0/1 "
                       f"(N <= {MAX_MASK_SEQ_LEN})")
    shape.add_argument("--block", type=non_negative, metavar="B",
                       help=f"keys per grid column (default: 1 up to {TOKEN_GRID_MAX} tokens, else a power "
                       f"of 2 giving <= {BLOCK_GRID_CELLS} blocks)")
    shape.add_argument("--batch", type=batch_row, nargs="+", metavar="GLOBALS[/PAD]",
                       help="several batch rows, each its global positions and padding (e.g. 0,5 3/2 /4): shows x, "
                       "the slots of every row and the unused ones (0)")
    shape.add_argument("--reach", type=non_negative, metavar="I",
                       help="how far token I's information reaches after each layer")
    shape.add_argument("--convention", choices=CONVENTION_NAMES,
                       help="also give each window in that library's parameters and say what it cannot express")
    lay.add_argument("--global", dest="global_positions", type=index_list, metavar="I,J,...",
                     help="positions with global attention (default: none; --from-model: 0, the <s> token)")
    lay.add_argument("--row", type=non_negative, metavar="I",
                     help="query row whose compact layout is shown (default: first local)")
    lay.add_argument("--rows", type=row_list, metavar="I,J,A..B",
                     help=f"several query rows (at most {MAX_ROWS_SHOWN}); --from-model: the rows summarised")
    lay.add_argument("--layer", type=non_negative, metavar="L",
                     help="layer to use (--format mask with --layer-windows: default 0; --from-model: default all)")
    lay.add_argument("--png", metavar="FILE", help="also draw the picture to FILE (needs matplotlib)")
    lay.add_argument("--html", metavar="FILE",
                     help="also write an interactive, self-contained HTML explorer to FILE (no network needed)")
    real = lay.add_argument_group("real attentions (--from-model)")
    real.add_argument("--from-model", action="store_true", help="run a model and draw its encoder attentions")
    real.add_argument("--checkpoint", metavar="DIR", help="HF-format checkpoint (default: the embedded model)")
    real.add_argument("--text", help="input text (default: the embedded model's DEFAULT_TEXT)")
    real.add_argument("--text-file", metavar="F", help="read the input text from F")
    real.add_argument("--head", type=non_negative, metavar="H", help="only this head (default: all)")
    real.add_argument("--check-roundtrip", action="store_true",
                      help="exit 1 unless to_compact(to_dense(x)) == x exactly on the model's attentions")
    parser.set_defaults(layout_parser=lay)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "layout":
        parser = args.layout_parser  # errors below print the `layout` usage
        if args.from_model:
            return run_from_model(args, parser)
        return run_layout(args, parser)
    parser.error(f"unknown command {args.command!r}")
    return 2


def shown_rows(args, parser) -> list[int] | None:
    """--row and --rows together, or None for the default."""
    if args.row is not None and args.rows is not None:
        parser.error(f"give --row ({args.row}) or --rows, not both")
    return [args.row] if args.row is not None else args.rows


def synthetic_windows(args, parser) -> list[int]:
    """The per-layer windows of a synthetic pattern, after checking --seq-len/--window/--pad/--global/--row."""
    if args.seq_len is None:
        parser.error("layout needs --seq-len N (or --from-model)")
    if args.window is None and args.layer_windows is None:
        parser.error("layout needs --window W or --layer-windows W0,W1,...")
    if args.window is not None and args.layer_windows is not None:
        parser.error(f"give --window ({args.window}) or --layer-windows ({args.layer_windows}), not both")
    for name in ("checkpoint", "text", "text_file", "head"):
        if getattr(args, name) is not None:
            parser.error(f"--{name.replace('_', '-')} only applies with --from-model")
    if args.check_roundtrip:
        parser.error("--check-roundtrip only applies with --from-model")
    if args.batch is not None and (args.global_positions is not None or args.pad):
        parser.error("--batch gives each row its own globals and padding: drop --global/--pad")
    args.global_positions = args.global_positions or []
    try:
        check_example(args.seq_len, args.global_positions, args.pad, ("--seq-len", "--global", "--pad"))
        for b, (g, pad) in enumerate(args.batch or ()):
            check_example(args.seq_len, g, pad, ("--seq-len", f"--batch row {b}: global", f"--batch row {b}: pad"))
        args.rows = shown_rows(args, parser)
        if args.rows is not None:
            check_rows(args.rows, args.seq_len, "--rows" if args.row is None else "--row")
        args.block = check_block(args.block, args.seq_len, "--block")
        if args.reach is not None and args.reach >= args.seq_len:
            raise ValueError(f"--reach {args.reach} is out of range 0..{args.seq_len - 1} (--seq-len {args.seq_len})")
    except ValueError as err:
        parser.error(str(err))
    if args.batch is not None and len(args.batch) > MAX_BATCH_ROWS:
        parser.error(f"--batch takes 1..{MAX_BATCH_ROWS} rows, got {len(args.batch)}")
    if args.format == "mask" and args.convention is not None:
        parser.error(f"--convention {args.convention} adds lines to the grid report: drop --format mask")
    if args.format == "mask" and args.seq_len > MAX_MASK_SEQ_LEN:
        parser.error(f"--format mask prints N lines of N characters: --seq-len must be <= "
                     f"{MAX_MASK_SEQ_LEN}, got {args.seq_len} (the grid and --html have no such limit)")
    windows = args.layer_windows or [args.window]
    if args.layer is not None and args.layer >= len(windows):
        parser.error(f"--layer {args.layer} is out of range 0..{len(windows) - 1} ({len(windows)} layer windows)")
    return windows


def run_layout(args, parser) -> int:
    windows = synthetic_windows(args, parser)
    layers = None if args.layer is None else [args.layer]
    batch = args.batch or [(args.global_positions, args.pad)]
    if args.format == "mask":
        kinds = example_kinds(args.seq_len, windows, batch[0][0], batch[0][1])
        window = windows[args.layer or 0]
        sys.stdout.write(mask_text(pattern_cells(kinds, window, args.seq_len)))
    elif args.batch is not None:
        sys.stdout.write(batch_report(args.seq_len, windows, args.batch, args.rows, layers, args.block))
    else:
        sys.stdout.write(layout_report(args.seq_len, windows, args.global_positions, args.pad,
                                       rows=args.rows, layers=layers, block=args.block))
    if args.reach is not None and args.format != "mask":
        sys.stdout.write("\n" + reach_text(args.seq_len, windows, batch[0][0], batch[0][1], args.reach))
    if args.convention is not None and args.format != "mask":
        for window in dict.fromkeys(windows):
            sys.stdout.write("\n" + describe_convention(window, args.convention, args.seq_len))
    if args.png:
        from . import pictures

        try:
            if args.reach is not None:
                pictures.save_reach_png(args.png, args.seq_len, windows, batch[0][0], batch[0][1], args.reach)
            elif args.batch is not None:
                pictures.save_batch_layout_png(args.png, args.seq_len, windows, args.batch,
                                               None if args.rows is None else args.rows[0], layers)
            else:
                pictures.save_layout_png(args.png, args.seq_len, windows, batch[0][0], batch[0][1],
                                         None if args.rows is None else args.rows[0], layers)
        except pictures.PicturesUnavailable as err:
            parser.exit(1, f"{parser.prog}: error: {err}\n")
        if args.format != "mask":
            print(f"wrote {args.png}")
    if args.html:
        from . import page as explorer_html

        explorer_html.write_html(args.html, explorer_html.synthetic_state(
            args.seq_len, windows, batch, 0 if args.layer is None else args.layer,
            None if args.rows is None else args.rows[0], args.reach))
        if args.format != "mask":
            print(f"wrote {args.html}")
    return 0


def run_from_model(args, parser) -> int:
    """Tokenize, run the encoder with output_attentions, convert with `to_dense`, summarise and draw."""
    refuse_layout_options(args, parser)
    rows = shown_rows(args, parser)
    model, tokenizer, checkpoint = load_model(args, parser)
    text = read_text(args, parser)
    config = model.config
    global_positions = [0] if args.global_positions is None else args.global_positions
    seq_len = len(encode_text(tokenizer, text, model_token_limit(config))[1])
    check_model_options(args, parser, config, seq_len, global_positions, rows)
    found = model_attentions(model, tokenizer, text, global_positions)
    layers = list(range(config.encoder_layers)) if args.layer is None else [args.layer]
    heads = None if args.head is None else [args.head]
    print(f"checkpoint: {'the embedded default model, ' if args.checkpoint is None else ''}{checkpoint}")
    full_len = len(tokenizer(text)["input_ids"])
    error = print_model_summary(args, found, config, full_len, global_positions, layers, heads, rows)
    if args.png:
        draw_model_png(args, parser, found, config, layers, heads)
        print(f"wrote {args.png}")
    if args.html:
        from . import page as explorer_html

        explorer_html.write_html(args.html, explorer_html.model_state(
            found, 0 if args.layer is None else args.layer, None if rows is None else rows[0], args.reach))
        print(f"wrote {args.html}")
    return 1 if args.check_roundtrip and error != 0.0 else 0


def refuse_layout_options(args, parser) -> None:
    """The options that describe a made-up layout: the model fixes them, so --from-model refuses them."""
    for name in ("seq_len", "window", "layer_windows", "batch", "block", "convention"):
        if getattr(args, name) is not None:
            parser.error(f"--{name.replace('_', '-')} does not apply with --from-model (the model fixes it)")
    if args.pad:
        parser.error(f"--pad {args.pad} does not apply with --from-model (the text has no padding)")
    if args.format != "grid":
        parser.error(f"--format {args.format} does not apply with --from-model")
    if args.text is not None and args.text_file is not None:
        parser.error("give --text or --text-file, not both")


def load_model(args, parser):
    """(LEDModel, tokenizer, checkpoint folder): --checkpoint, else the embedded default model."""
    from ..io.tokenizer import LEDTokenizer
    from ..model import LEDModel

    if args.checkpoint is None:
        from ..io.default_model import default_checkpoint_dir

        checkpoint = default_checkpoint_dir()
    else:
        checkpoint = args.checkpoint
    try:
        return LEDModel.from_pretrained(checkpoint), LEDTokenizer.from_pretrained(checkpoint), checkpoint
    except (OSError, ValueError) as err:
        parser.error(f"--checkpoint {checkpoint!r}: {err}")


def read_text(args, parser) -> str:
    """--text, the content of --text-file, or the default model's sample text."""
    if args.text_file is not None:
        try:
            with open(args.text_file, encoding="utf-8") as fh:
                return fh.read()
        except OSError as err:
            parser.error(f"--text-file {args.text_file!r}: {err.strerror}")
        except UnicodeDecodeError as err:
            parser.error(f"--text-file {args.text_file!r} is not UTF-8 text (byte {err.start}: {err.reason})")
    if args.text is not None:
        return args.text
    from ..io.default_model import DEFAULT_TEXT

    return DEFAULT_TEXT


def check_model_options(args, parser, config, seq_len: int, global_positions: list[int],
                        rows: list[int] | None) -> None:
    """--layer, --head, --global, --rows, --reach and --check-roundtrip against the model and the text."""
    if args.layer is not None and args.layer >= config.encoder_layers:
        parser.error(f"--layer {args.layer} is out of range 0..{config.encoder_layers - 1} (encoder_layers)")
    if args.head is not None and args.head >= config.encoder_attention_heads:
        parser.error(f"--head {args.head} is out of range 0..{config.encoder_attention_heads - 1} "
                     "(encoder_attention_heads)")
    try:
        check_example(seq_len, global_positions, 0, ("the text's token count", "--global", "pad"))
    except ValueError as err:
        parser.error(str(err))
    if args.check_roundtrip and seq_len > MAX_ROUNDTRIP_TOKENS:
        parser.error(f"--check-roundtrip builds a dense (seq, seq) view per head: the text's {seq_len} tokens must "
                     f"be <= {MAX_ROUNDTRIP_TOKENS}")
    try:
        if rows is not None:
            check_rows(rows, seq_len, "--rows" if args.row is None else "--row")
        if args.reach is not None and args.reach >= seq_len:
            raise ValueError(f"--reach {args.reach} is out of range 0..{seq_len - 1} (the text's token count)")
    except ValueError as err:
        parser.error(str(err))


def print_model_summary(args, found, config, full_len: int, global_positions: list[int], layers: list[int],
                        heads: list[int] | None, rows: list[int] | None) -> float:
    """Tokens, windows, the cut note, top keys, reach and the round trip; returns the round trip's error
    (0.0 when the text is too long to check it)."""
    seq_len = len(found.tokens)
    print(f"{seq_len} tokens, global: {', '.join(map(str, global_positions)) or 'none'}, windows per layer: "
          f"{', '.join(map(str, found.windows))}")
    if full_len > seq_len:
        print(f"the text has {full_len} tokens; showing the first {seq_len} (the model's limit, "
              f"max_encoder_position_embeddings={config.max_encoder_position_embeddings})")
    print(padding_note(seq_len, found.windows), end="")
    print(top_keys_text(found, layers, heads, rows=rows), end="")
    if args.reach is not None:
        print(reach_text(seq_len, found.windows, global_positions, 0, args.reach), end="")
    if seq_len > MAX_ROUNDTRIP_TOKENS:
        print(f"round trip not checked: {seq_len} tokens > {MAX_ROUNDTRIP_TOKENS} (it builds a dense "
              "(seq, seq) view per head)")
        return 0.0
    error = roundtrip_error(found)
    exact = "exact" if error == 0.0 else "NOT exact"
    print(f"round trip to_compact(to_dense(x)) == x on every layer: max abs diff {error:.3g} ({exact})")
    return error


def draw_model_png(args, parser, found, config, layers: list[int], heads: list[int] | None) -> None:
    """The attention heat maps: dense up to MAX_MODEL_TOKENS, else pooled into blocks (never (seq, seq))."""
    from . import pictures

    seq_len = len(found.tokens)
    shown_heads = heads or list(range(config.encoder_attention_heads))
    title = f"encoder attention, {seq_len} tokens (row = query, column = key; grey: not attended)"
    try:
        if seq_len <= MAX_MODEL_TOKENS:
            dense = [dense_layer(found, layer) for layer in layers]
            patterns = [model_pattern(found, layer) for layer in layers]
            pictures.save_heatmaps_png(args.png, dense, layers, shown_heads, found.tokens, title, patterns)
            return
        block = -(-seq_len // pictures.HEAT_CELLS)  # one block row of queries at a time
        heats, patterns = [], []
        for layer in layers:
            heat, pattern = block_heat(found, layer, shown_heads, block)
            by_head = np.zeros((config.encoder_attention_heads, *heat.shape[1:]), dtype=heat.dtype)
            by_head[shown_heads] = heat  # draw_heatmaps indexes heads by id
            heats.append(by_head)
            patterns.append(pattern)
        pictures.save_heatmaps_png(args.png, heats, layers, shown_heads, None, title, patterns,
                                   pooled=block, seq_len=seq_len)
    except pictures.PicturesUnavailable as err:
        parser.exit(1, f"{parser.prog}: error: {err}\n")

