"""An LED-base-shaped checkpoint with random weights and a trained vocabulary, and a long text, for measuring
`led-parity audit` at LED's real length without a download:

    python -m parity.perf.audit_checkpoint OUT_DIR [--vocab 4096] [--text-from docs]

writes OUT_DIR/led-base-random (config, float32 weights, vocab.json, merges.txt, generation_config.json) and
OUT_DIR/long.txt (the project's docs, which tokenize to far more than the model's 16,384 positions).

The shape is LED-base's (d_model 768, 12 heads, 6+6 layers, FFN 3072, window 1024, 16,384 encoder and 1,024
decoder positions); only the vocabulary is smaller (BART's is not available offline), which changes the
embedding table and the LM head, not the attention this audit is about.
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np

from led_ref.init import random_weights
from led_ref.io.checkpoint import save_checkpoint
from led_ref.io.config import LEDConfig
from led_ref.io.generation_settings import GenerationConfig
from led_ref.io.tokenizer import LEDTokenizer, train_byte_level_bpe

ARCHITECTURE = "LEDForConditionalGeneration"
ROOT = pathlib.Path(__file__).resolve().parents[2]
BASE_SHAPE = dict(d_model=768, encoder_attention_heads=12, decoder_attention_heads=12, encoder_layers=6,
                  decoder_layers=6, encoder_ffn_dim=3072, decoder_ffn_dim=3072, attention_window=1024,
                  max_encoder_position_embeddings=16384, max_decoder_position_embeddings=1024)


def project_text(root: pathlib.Path = ROOT) -> str:
    """The README and every page of docs/, in name order: real English with code, numbers and tables."""
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    return "\n\n".join(p.read_text(encoding="utf-8") for p in pages if p.is_file())


def base_config(vocab_size: int, **overrides) -> LEDConfig:
    """LED-base's shape with `vocab_size` tokens, dropout off."""
    return LEDConfig(vocab_size=vocab_size, **{**BASE_SHAPE, **overrides}, dropout=0.0, attention_dropout=0.0,
                     activation_dropout=0.0)


def build(directory: str | pathlib.Path, text: str, vocab_size: int = 4096, seed: int = 0, **overrides) -> LEDConfig:
    """Train a byte-level BPE vocabulary on `text`, then save a random-weight checkpoint (float32) of LED-base's
    shape (`overrides` change it: tests build a tiny one) with beam-search generation settings (8 new tokens)."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = train_byte_level_bpe([text], vocab_size, directory)
    config = base_config(len(tokenizer), **overrides)
    LEDTokenizer(tokenizer.vocab, tokenizer.merges, model_max_length=config.max_encoder_position_embeddings
                 ).save_pretrained(directory)
    save_checkpoint(directory, config, random_weights(config, ARCHITECTURE, seed=seed, dtype=np.float32),
                    ARCHITECTURE)
    # min_length: random weights favour eos at once; the audit should compare 8 generated tokens
    GenerationConfig(num_beams=2, max_length=9, min_length=9, length_penalty=1.0, no_repeat_ngram_size=3,
                     decoder_start_token_id=config.decoder_start_token_id, bos_token_id=config.bos_token_id,
                     eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id).save_pretrained(directory)
    return config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m parity.perf.audit_checkpoint", description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder to write led-base-random/ and long.txt into")
    parser.add_argument("--vocab", type=int, default=4096, help="vocabulary size to train (default 4096)")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    text = project_text()
    config = build(out / "led-base-random", text, args.vocab)
    (out / "long.txt").write_text(text, encoding="utf-8")
    tokens = len(LEDTokenizer.from_pretrained(out / "led-base-random")(text)["input_ids"])
    print(f"{out / 'led-base-random'}: vocab {config.vocab_size}; {out / 'long.txt'}: {tokens} tokens")


if __name__ == "__main__":
    main()
