"""Made-up examples (`led_ref.explore.examples`): their checks name the limit; the encoder's padding and global
flags on padding are explained, and drawn as the model treats them.
"""

from __future__ import annotations

import numpy as np
import pytest

from led_ref.explore.examples import example_kinds, example_masks
from led_ref.explore.explorer import layout_report
from tests.explore_cases import brute_force_mask, layout_args, parse_grid, parse_mask, run_cli


def test_explorer_functions_raise_value_errors_naming_the_limit():
    with pytest.raises(ValueError, match=r"pad must be in 0..4 \(seq_len\), got 5"):
        example_masks(4, [], 5)
    with pytest.raises(ValueError, match="window of layer 1 must be an even int >= 2, got 3"):
        example_kinds(4, [2, 3])
    with pytest.raises(ValueError, match="row must be in 0..3"):
        layout_report(4, [2], row=4)


def test_layer_windows_grid_per_layer_and_padding_note():
    status, out, err = run_cli(["layout", "--seq-len", "12", "--layer-windows", "4,6", "--global", "0"])
    assert status == 0, err
    assert "== layer 0: window 4" in out and "== layer 1: window 6" in out
    # 12 -> padded to 12 (a multiple of 6) but per-layer 4 does not divide 6: the project allows it
    assert "already a multiple of the largest window 6" in out
    status, out, _ = run_cli(["layout", "--seq-len", "10", "--layer-windows", "4,8"])
    assert "pads the 10 tokens to 16, a multiple of the largest window 8: positions 10..15" in out


def test_global_flag_on_padding_is_drawn_as_padding_with_a_note():
    status, out, err = run_cli(layout_args(12, 4, [0, 11], 2, "--format", "mask"))
    assert status == 0, err
    np.testing.assert_array_equal(parse_mask(out, 12), brute_force_mask(12, 4, [0], 2))  # 11 stays padding
    status, out, err = run_cli(layout_args(12, 4, [0, 11], 2))
    assert status == 0, err
    assert ("note: global position 11 is padding (pad=2): drawn as padding, because the model's token kind is "
            "attention_mask * (global_attention_mask + 1) = 0 there (HF does the same).") in out
    assert "token kinds: 2 1 1 1 1 1 1 1 1 1 0 0" in out and parse_grid(out, 12)[11] == " " * 12
