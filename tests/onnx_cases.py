"""The tiny checkpoint the ONNX tests export (tests/test_onnx*.py); `onnx_checkpoint` and `onnx_export` in
conftest.py are it and its dense export, made once per test process."""

from __future__ import annotations

import os
import shutil

from led_ref.init import random_weights
from led_ref.io.checkpoint import save_checkpoint
from led_ref.io.config import LEDConfig
from led_ref.io.default_model import default_checkpoint_dir

TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json")


def tiny_checkpoint(folder, windows=(4, 8), encoder_layers=2, seed=0, d_model=16):
    """A random LED (d_model 16, 2 heads) with the default model's tokenizer (vocabulary 512)."""
    config = LEDConfig(vocab_size=512, d_model=d_model, encoder_layers=encoder_layers, decoder_layers=1,
                       encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
                       attention_window=list(windows), max_encoder_position_embeddings=64,
                       max_decoder_position_embeddings=32, dropout=0.0)
    os.makedirs(folder, exist_ok=True)
    # weights large enough that every attention pattern shows in the outputs (init_std 0.02 is near uniform)
    save_checkpoint(folder, config, random_weights(config, seed=seed, std=0.4), "LEDForConditionalGeneration")
    for name in TOKENIZER_FILES:
        shutil.copy(os.path.join(default_checkpoint_dir(), name), folder)
    return str(folder)
