"""What the explorer's tests share: a brute-force mask written from the rules of docs/contract.md, the CLI run
in-process with its output parsed, the cases it accepts, and a tiny LED checkpoint for `--from-model`.

`tiny_checkpoint` is a fixture: a test module imports it to use it.
"""

from __future__ import annotations

import contextlib
import io
import os

import numpy as np
import pytest
from hypothesis import strategies as st

from led_ref.explore.cli import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def brute_force_mask(seq_len: int, window: int, global_positions, pad: int) -> np.ndarray:
    """bool (N, N) from docs/contract.md, one cell at a time: kinds = attention_mask * (global + 1); a local row sees
    non-padding keys within w/2 plus every global key; a global row every non-padding key; padding nothing."""
    kind = []
    for p in range(seq_len):
        attention = 0 if p >= seq_len - pad else 1
        kind.append(attention * ((1 if p in global_positions else 0) + 1))
    mask = np.zeros((seq_len, seq_len), dtype=bool)
    for i in range(seq_len):
        for j in range(seq_len):
            if kind[i] == 0 or kind[j] == 0:
                continue
            if kind[i] == 2:
                mask[i, j] = True
            else:
                mask[i, j] = abs(i - j) <= window // 2 or kind[j] == 2
    return mask


def run_cli(argv) -> tuple[int, str, str]:
    """main(argv) with stdout/stderr captured: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as exc:
            status = exc.code
    return status, out.getvalue(), err.getvalue()


def parse_mask(text: str, seq_len: int) -> np.ndarray:
    lines = text.split("\n")
    assert lines[-1] == "", "mask output must end with a newline"
    lines = lines[:-1]
    assert len(lines) == seq_len, f"expected exactly {seq_len} lines, got {len(lines)}"
    assert all(len(line) == seq_len and set(line) <= {"0", "1"} for line in lines), lines
    return np.array([[c == "1" for c in line] for line in lines])


def parse_grid(text: str, seq_len: int) -> dict[int, str]:
    """Row i of the first grid in `text` -> its N cell characters (blank-padded)."""
    digits = len(str(seq_len - 1))
    rows: dict[int, str] = {}
    lines = text.split("\n")
    start = next(k for k, line in enumerate(lines) if line.strip().startswith("key j:"))
    for line in lines[start + 1:start + 1 + seq_len]:
        i = int(line[:digits])
        body = line[digits + 1 + 6 + 1:]
        rows[i] = body[::2].ljust(seq_len)
    return rows


def layout_args(seq_len, window, global_positions, pad, *extra):
    argv = ["layout", "--seq-len", str(seq_len), "--window", str(window), "--pad", str(pad)]
    if global_positions:
        argv += ["--global", ",".join(map(str, global_positions))]
    return argv + list(extra)


@st.composite
def layout_cases(draw, max_len: int = 40, windows=tuple(range(2, 13, 2))):
    """(seq_len, window, global positions, pad) the CLI accepts: globals are distinct non-padding positions."""
    seq_len = draw(st.integers(1, max_len))
    window = draw(st.sampled_from(windows))
    pad = draw(st.integers(0, seq_len))
    valid = seq_len - pad
    globals_ = sorted(draw(st.sets(st.integers(0, valid - 1), max_size=min(valid, 4)))) if valid else []
    return seq_len, window, globals_, pad


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def pixels_of(image: np.ndarray, hex_color: str) -> int:
    from led_ref.explore.pictures import rgb

    return int(np.sum(np.all(np.abs(image[..., :3] - rgb(hex_color)) < 1.5 / 255, axis=-1)))


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    return tiny_led(tmp_path_factory, 64)


def tiny_led(tmp_path_factory, max_positions: int) -> str:
    """A 2-layer LED with per-layer windows 4 and 6 (4 does not divide 6: beyond HF) and a byte-level tokenizer
    with no merges (one token per byte), saved in HF format."""
    from tokenizers import pre_tokenizers

    from led_ref.io.config import LEDConfig
    from led_ref.io.tokenizer import LEDTokenizer
    from led_ref.model import LEDForConditionalGeneration

    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {token: i for i, token in enumerate(specials + alphabet + ["<mask>"])}
    directory = tmp_path_factory.mktemp("tiny_led")
    config = LEDConfig(vocab_size=len(vocab), d_model=8, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                       decoder_attention_heads=2, encoder_ffn_dim=8, decoder_ffn_dim=8, attention_window=[4, 6],
                       max_encoder_position_embeddings=max_positions, max_decoder_position_embeddings=16)
    LEDForConditionalGeneration(config, seed=3).save_pretrained(directory)
    LEDTokenizer(vocab, []).save_pretrained(directory)
    return str(directory)
