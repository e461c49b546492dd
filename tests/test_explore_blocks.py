"""The block overview of long inputs (`led_ref.explore.blocks`): every block classified as a cell-by-cell
brute force does, and LED-base's 16,384 tokens in a few kB of terminal output.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from led_ref.explore.blocks import BLOCK_CHARS
from led_ref.explore.examples import example_kinds
from tests.explore_cases import brute_force_mask, layout_args, layout_cases, run_cli


def brute_force_block_kind(mask: np.ndarray, kinds, i0: int, i1: int, j0: int, j1: int) -> str:
    """The block character class of queries i0..i1-1 x keys j0..j1-1, cell by cell from the brute-force mask."""
    kinds = np.asarray(kinds)
    if all(kinds[i] == 0 for i in range(i0, i1)):
        return "pad"
    cells = [(i, j) for i in range(i0, i1) for j in range(j0, j1)]
    attended = [(i, j) for i, j in cells if mask[i, j]]
    if len(attended) == len(cells):
        return "full"
    if any(kinds[i] == 1 and kinds[j] == 1 for i, j in attended):
        return "window"
    if any(kinds[i] == 2 for i, _ in attended):
        return "global_row"
    return "global_key" if attended else "none"


@given(layout_cases(max_len=40), st.integers(1, 9))
def test_block_grid_classifies_blocks_like_brute_force(case, block):
    seq_len, window, globals_, pad = case
    status, out, err = run_cli(layout_args(seq_len, window, globals_, pad, "--block", str(block)))
    assert status == 0, err
    if block == 1:
        return  # the token grid is checked by test_grid_cells_agree_with_brute_force
    mask = brute_force_mask(seq_len, window, globals_, pad)
    kinds = example_kinds(seq_len, [window], globals_, pad)
    lines = out.split("\n")
    start = next(k for k, line in enumerate(lines) if "key blocks of" in line) + 1
    blocks = -(-seq_len // block)
    chars = {v: k for k, v in BLOCK_CHARS.items()}
    for r in range(blocks):
        label = f"{r * block}..{min(seq_len, (r + 1) * block) - 1}"
        line = lines[start + r]
        assert line.strip().startswith(label), (line, label)
        width = line.index(label) + len(label)
        line = line.ljust(width + 3 + blocks)
        tag, body = line[width + 1], line[width + 3:]
        assert tag == ("g" if any(kinds[i] == 2 for i in range(r * block, min(seq_len, (r + 1) * block))) else " ")
        for c in range(blocks):
            want = brute_force_block_kind(mask, kinds, r * block, min(seq_len, (r + 1) * block), c * block,
                                          min(seq_len, (c + 1) * block))
            assert chars[body[c]] == want, (r, c, body, want)


def test_led_base_scale_in_the_terminal_is_bounded():
    """16,384 tokens, window 1024 (LED-base): a block grid and collapsed column runs, a few kB of output."""
    status, out, err = run_cli(["layout", "--seq-len", "16384", "--window", "1024", "--global", "0,5000",
                                "--pad", "2", "--rows", "1,5000,9000,16383"])
    assert status == 0, err
    assert len(out) < 12_000 and out.count("\n") < 150, (len(out), out.count("\n"))
    assert "rows: blocks of 256 queries; columns: blocks of 256 keys" in out
    assert "token kinds: 0 global, 1..4999 local, 5000 global, 5001..16381 local, 16382..16383 pad" in out
    # row 9000: x = 2 global columns, then 512 window keys on each side of self (column x + w/2 = 514)
    assert "     2..513 (512 columns)  window slots -512..-1: keys 8488..8999, window keys" in out
    assert "   514  9000  window slot +0: self (column x + w/2 = 514)" in out
    assert "   515..1026 (512 columns)  window slots +1..+512: keys 9001..9512, window keys" in out
    assert "Row 5000 is global (slot 1 of x = 2)" in out and "Row 16383 is padding" in out
    assert "     2..512 (511 columns)  window slots -512..-2: keys -511..-1 are before position 0, always 0" in out
