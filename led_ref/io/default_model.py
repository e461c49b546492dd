"""The embedded default model: a small, deterministic LED checkpoint built on first use, no download needed.

What defines it: the config (`default_config`), the corpus its byte-level BPE vocabulary is trained on
(`DEFAULT_CORPUS`), and its float32 weights, committed as `led_ref/io/assets/default_model.safetensors` (1 MB).
The weights were trained by `led_torch/train_default_model.py` (deterministic, a few CPU minutes, starting
from `led_ref.init.random_weights(seed=WEIGHTS_SEED)`) on a synthetic task made from the corpus, where the
window and the global `<s>` token matter: restore masked tokens of a span (from its neighbours) and name the
paragraph it comes from (from the whole input). So its attention maps have learned structure and its
generations are text, and every implementation must compute the same numbers from it.

    >>> from led_ref.io.default_model import default_checkpoint_dir, DEFAULT_TEXT
    >>> path = default_checkpoint_dir()          # doctest: +SKIP
    >>> # path holds config.json, model.safetensors (float32 LEDForConditionalGeneration), vocab.json, merges.txt

The folder is `$LED_PARITY_CACHE/default-<hash>` (else `~/.cache/led-parity/default-<hash>`); the hash
covers the whole recipe, so a changed recipe gets a new folder. It is built in a temp folder and renamed
into place, so a reader never sees a half-built model; two builds give byte-identical files.
Rebuild with `python -m led_ref.io.default_model --rebuild`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import shutil
import tempfile

import numpy as np

from ..init import random_weights
from .checkpoint import read_safetensors_file, save_checkpoint
from .config import LEDConfig
from .tokenizer import LEDTokenizer, train_byte_level_bpe

RECIPE_VERSION = 3  # bump when the build changes in a way the hash below cannot see
ARCHITECTURE = "LEDForConditionalGeneration"
WEIGHTS_SEED = 20240601
VOCAB_SIZE = 512
CACHE_ENV = "LED_PARITY_CACHE"
WEIGHTS_FILE = pathlib.Path(__file__).resolve().parent / "assets" / "default_model.safetensors"

DEFAULT_CORPUS = (
    "The Longformer is a transformer for long documents. Instead of letting every token attend to every "
    "other token, each token looks at a small window of neighbours on both sides, and a few chosen tokens "
    "attend to the whole document. Those global tokens are how information travels far: a question, a "
    "title, or the first token of a summary can see everything, and everything can see them.",
    "The Longformer-Encoder-Decoder, or LED, puts this attention in the encoder of a sequence-to-sequence "
    "model. The decoder is an ordinary one: it attends to the tokens it has already written and, through "
    "cross-attention, to the encoder's output. LED was trained to summarise scientific papers that are "
    "thousands of tokens long, and it can also answer questions or classify documents.",
    "A window of size w lets a token see w/2 tokens to its left and w/2 tokens to its right. Padding is "
    "added at the end so that the length of the input is a multiple of the window. Padding tokens are never "
    "attended to, and their outputs are thrown away. The window may differ from layer to layer.",
    "Reference implementations are written to be read. They are slow, but every step is visible: the "
    "index of each key in the window, the position of each global token, and the softmax over them. An "
    "optimised implementation must give the same numbers, within a tolerance that is written down. When it "
    "does not, the difference is a bug, and a test should say exactly where it is.",
    "Numbers, dates and names appear in real text: 12 layers, 16 heads, 1024 dimensions, 16384 positions, "
    "the year 2020, 3.14159, and 50,265 tokens in the vocabulary. People write quickly; they say \"don't\", "
    "\"it's\", \"we're\" and \"they've\"! Some lines are short. Others go on, and on, and on.",
    "Once upon a time, a long document was too long to read. The reader took a small window, moved it "
    "along the text, and kept a few notes that could see the whole story. At the end, the notes were "
    "enough to write a short summary, and the summary was checked, word by word, against the original.",
)

DEFAULT_TEXT = (
    "The Longformer reads a long document with a sliding window of attention, and a few global tokens "
    "see the whole text. LED puts this encoder in front of an ordinary decoder, so that it can write a "
    "short summary of a long paper. This sample is what the command line and the examples run on."
)


def default_config() -> LEDConfig:
    """The embedded model's configuration: 2+2 layers, d_model 64, 4 heads, windows 4 and 8."""
    return LEDConfig(
        vocab_size=VOCAB_SIZE,
        d_model=64,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=128,
        decoder_ffn_dim=128,
        attention_window=[4, 8],
        max_encoder_position_embeddings=512,
        max_decoder_position_embeddings=128,
        max_length=32,
    )


def recipe_hash() -> str:
    """12 hex digits covering everything the default checkpoint is built from."""
    recipe = {
        "version": RECIPE_VERSION,
        "config": default_config().to_dict(),
        "corpus": DEFAULT_CORPUS,
        "seed": WEIGHTS_SEED,
        "weights": hashlib.sha256(WEIGHTS_FILE.read_bytes()).hexdigest(),
        "architecture": ARCHITECTURE,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode("utf-8")).hexdigest()[:12]


def cache_root() -> pathlib.Path:
    """`$LED_PARITY_CACHE` if set, else `~/.cache/led-parity`."""
    root = os.environ.get(CACHE_ENV)
    return pathlib.Path(root) if root else pathlib.Path.home() / ".cache" / "led-parity"


def default_checkpoint_dir(rebuild: bool = False) -> pathlib.Path:
    """The folder of the default checkpoint, built now if missing (or if `rebuild`)."""
    target = cache_root() / f"default-{recipe_hash()}"
    if target.is_dir() and not rebuild:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-building-"))
    try:
        build_default_checkpoint(staging)
        staging.chmod(0o755)  # mkdtemp makes it private
        if rebuild and target.is_dir():
            shutil.rmtree(target)
        try:
            os.rename(staging, target)
        except OSError:
            if not target.is_dir():
                raise
            # Another process finished first; its files are identical to ours.
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target


def build_default_checkpoint(directory: str | os.PathLike) -> None:
    """Write the default tokenizer, config and float32 weights into `directory` (which must be empty)."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # A small corpus: merge pairs seen once too, so the vocabulary reaches VOCAB_SIZE.
    tokenizer = train_byte_level_bpe(DEFAULT_CORPUS, VOCAB_SIZE, directory, min_frequency=1)
    config = default_config()
    if len(tokenizer) != config.vocab_size:
        raise RuntimeError(f"the default corpus gave {len(tokenizer)} tokens, the config expects {config.vocab_size}")
    # The tokenizer knows the encoder's limit, so truncation=True cuts there.
    LEDTokenizer(tokenizer.vocab, tokenizer.merges, model_max_length=config.max_encoder_position_embeddings
                 ).save_pretrained(directory)
    save_checkpoint(directory, config, default_weights(config), ARCHITECTURE)


def default_weights(config: LEDConfig | None = None) -> dict[str, np.ndarray]:
    """The committed trained float32 weights (HF names), checked against the names and shapes of the config."""
    config = default_config() if config is None else config
    if not WEIGHTS_FILE.is_file():
        raise FileNotFoundError(f"the default model's weights {WEIGHTS_FILE} are missing: run "
                                "led_torch/train_default_model.py (or restore the file from git)")
    weights = read_safetensors_file(WEIGHTS_FILE)  # safetensors: loading never runs code
    expected = random_weights(config, ARCHITECTURE, seed=WEIGHTS_SEED, dtype=np.float32)
    wrong = sorted(set(weights) ^ set(expected)) or sorted(
        n for n in expected if weights[n].shape != expected[n].shape or weights[n].dtype != np.float32)
    if wrong:
        raise ValueError(f"{WEIGHTS_FILE}: names/shapes/dtypes do not match the default config: {wrong[:5]}")
    return weights


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m led_ref.io.default_model", description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild", action="store_true", help="build the default checkpoint again")
    args = parser.parse_args(argv)
    print(default_checkpoint_dir(rebuild=args.rebuild))


if __name__ == "__main__":
    main()
