"""What a bench run is asked to do: the model shapes, the tasks, the options and their defaults, checked once."""

from __future__ import annotations

from dataclasses import dataclass

from led_ref.io import lengths
from led_ref.io.config import LEDConfig
from parity.harness.implementations import SHORT_NAMES
from parity.harness.tolerances import DTYPE_ORDER

ARCHITECTURE = "LEDForConditionalGeneration"


TASKS = ("encoder", "generate")


# A batch of documents of different lengths and global counts through the encoder in one call, reported in
# documents per second; not part of `--task all` (a 4k batch of 8 costs HF minutes).
THROUGHPUT = "throughput"


# A ceiling that moves more than this between its samples in one run means the machine was busy: said in a
# `warning:` line and in the JSON, since every rate and speed-up of such a run is suspect.
CEILING_SPREAD_WARNING = 0.20


# Model shapes. vocab_size is cut to 1000 for base/large: the vocabulary only changes the embedding table and
# the lm_head (not timed in the encoder; a small share of a decode step), and saves ~300 MB per copy.
SHAPES: dict[str, dict] = {
    "tiny": dict(vocab_size=64, d_model=32, encoder_attention_heads=4, decoder_attention_heads=4,
                 encoder_layers=2, decoder_layers=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                 attention_window=[8, 16], max_encoder_position_embeddings=256,
                 max_decoder_position_embeddings=64),
    "base": dict(vocab_size=1000, d_model=768, encoder_attention_heads=12, decoder_attention_heads=12,
                 encoder_layers=6, decoder_layers=6, encoder_ffn_dim=3072, decoder_ffn_dim=3072,
                 attention_window=1024, max_encoder_position_embeddings=16384,
                 max_decoder_position_embeddings=1024),
    "large": dict(vocab_size=1000, d_model=1024, encoder_attention_heads=16, decoder_attention_heads=16,
                  encoder_layers=12, decoder_layers=12, encoder_ffn_dim=4096, decoder_ffn_dim=4096,
                  attention_window=1024, max_encoder_position_embeddings=16384,
                  max_decoder_position_embeddings=1024),
}


def bench_config(shape: str) -> LEDConfig:
    """The LEDConfig of a named bench shape ("tiny", "base", "large"), dropout off."""
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {', '.join(SHAPES)}; got {shape!r}")
    return LEDConfig(**SHAPES[shape], dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)


@dataclass(frozen=True)
class Options:
    """Everything one bench run depends on (also what a memory subprocess is told)."""

    shape: str = "base"
    seqs: tuple[int, ...] = (1024, 4096)
    tasks: tuple[str, ...] = ("encoder",)
    impls: tuple[str, ...] | None = None  # None: hf + every led_torch backend for the device + led_ref on CPU
    device: str = "cpu"
    dtype: str = "float32"
    hf_dtype: str | None = None  # None: the same as dtype
    ref_dtype: str = "float32"
    repeats: int = 3
    warmup: int = 1
    memory: str = "subprocess"  # subprocess | inprocess | off (CUDA always measures in process)
    seed: int = 0
    gen_source: int = 1024
    new_tokens: int = 32
    beams: int = 4
    ceiling_size: int | None = None
    baseline_dtype: str | None = None  # also time led_torch's backends in this dtype (rows "banded@float32")
    batch_docs: int = 8  # documents per call of the throughput task
    gen_batch: int = 1  # sources per call of the generate task
    # judge half-precision generations against led_ref's float64 tokens (generated once, untimed)
    spec_tokens: bool = True


# What --quick and the plain command default to (parity.commands.bench reads the flags; a flag given wins).
QUICK = dict(shape="tiny", seq="32,64", task="all", repeats=2, warmup=1, memory="inprocess", gen_source=24,
             new_tokens=4, beams=2, ceiling_size=256, batch_docs=3, gen_batch=1)


DEFAULTS = dict(shape="base", seq="1024,4096", task="encoder", repeats=3, warmup=1, memory="subprocess",
                gen_source=1024, new_tokens=32, beams=4, ceiling_size=None, batch_docs=8, gen_batch=1)


def padded_length(config: LEDConfig, seq: int) -> int:
    return lengths.padded_length(seq, config.max_window)


def check_batch_options(options: Options) -> None:
    """The options of the batched cases and the baseline rows (ValueError naming the option and the limit)."""
    for name in ("batch_docs", "gen_batch"):
        value = getattr(options, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name.replace('_', '-')} must be an integer >= 1, got {value!r}")
    if options.baseline_dtype is not None and options.baseline_dtype not in DTYPE_ORDER:
        raise ValueError(f"baseline-dtype must be one of {', '.join(DTYPE_ORDER)}; got {options.baseline_dtype!r}")


def check_options(options: Options) -> None:
    if options.repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {options.repeats}")
    if options.warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {options.warmup}")
    # generate is timed on these: 0 tokens or 0 beams would time nothing and then report a mismatch
    if options.new_tokens < 1:
        raise ValueError(f"new-tokens must be >= 1 (tokens generated per timed call), got {options.new_tokens}")
    if options.beams < 1:
        raise ValueError(f"beams must be >= 1 (1 is greedy search), got {options.beams}")
    if options.memory not in ("subprocess", "inprocess", "off"):
        raise ValueError(f"memory must be subprocess, inprocess or off; got {options.memory!r}")
    for task in options.tasks:
        if task not in (*TASKS, THROUGHPUT):
            raise ValueError(f"task must be one of {', '.join(TASKS)} or all; got {task!r}")
    for name in options.impls or ():
        if name not in SHORT_NAMES:
            raise ValueError(f"impls must be among {', '.join(SHORT_NAMES)}; got {name!r}")
    for dtype in (options.dtype, options.hf_dtype or options.dtype, options.ref_dtype):
        if dtype not in DTYPE_ORDER:
            raise ValueError(f"dtype must be one of {', '.join(DTYPE_ORDER)}; got {dtype!r}")
    config = bench_config(options.shape)
    limit = config.max_encoder_position_embeddings
    for seq in (*options.seqs, options.gen_source):
        if seq < 1 or padded_length(config, seq) > limit:
            raise ValueError(f"seq must be in 1..{limit} for shape {options.shape!r} "
                             f"(padded to a multiple of the window {config.max_window}), got {seq}")
    if options.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"device={options.device!r} asked for, but torch sees no CUDA device here")
    elif options.device != "cpu":
        raise ValueError(f"device must be cpu or cuda, got {options.device!r}")
