"""`--reach` (`led_ref.explore.reach`): how far a token's information spreads per layer, against the closure of
the layers' brute-force masks, as text and as a picture.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from led_ref.explore.examples import example_kinds
from led_ref.explore.reach import reach_per_layer
from tests.explore_cases import PNG_MAGIC, brute_force_mask, layout_cases, run_cli


def reach_by_brute_force(seq_len, windows, globals_, pad, token):
    """Positions whose output after layer l depends on token's input: closure of (mask_l or identity)."""
    reached = np.zeros(seq_len, dtype=bool)
    reached[token] = True
    out = []
    for w in windows:
        mask = brute_force_mask(seq_len, w, globals_, pad) | np.eye(seq_len, dtype=bool)
        reached = (mask & reached[None, :]).any(axis=1)
        out.append(reached.copy())
    return out


@given(layout_cases(max_len=40), st.lists(st.sampled_from([2, 4, 6, 8]), min_size=1, max_size=4), st.data())
def test_reach_per_layer_equals_brute_force(case, windows, data):
    seq_len, _, globals_, pad = case
    token = data.draw(st.integers(0, seq_len - 1))
    kinds = example_kinds(seq_len, windows, globals_, pad)
    got = reach_per_layer(kinds, windows, token, seq_len)
    want = reach_by_brute_force(seq_len, windows, globals_, pad, token)
    np.testing.assert_array_equal(np.array(got), np.array(want))


def test_reach_text_and_png_show_the_global_hop(tmp_path):
    path = tmp_path / "reach.png"
    status, out, err = run_cli(["layout", "--seq-len", "64", "--layer-windows", "4,4,8", "--global", "40",
                                "--reach", "5", "--png", str(path)])
    assert status == 0, err
    assert "How far token 5 (local)'s information reaches" in out
    assert "  after layer 0 (window 4): 3..7, 40  [6 of 64 tokens; windows alone: 3..7]" in out
    assert "  after layer 1 (window 4): 0..63  [64 of 64 tokens; windows alone: 1..9]" in out
    pytest.importorskip("matplotlib")
    from led_ref.explore.cells import Cell
    from led_ref.explore.pictures import CELL_COLORS, draw_reach, rgb

    assert path.read_bytes()[:8] == PNG_MAGIC
    fig = draw_reach(64, [4, 4, 8], [40], 0, 5)
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3] / 255.0
    ax = fig.axes[0]

    def colour_at(x, y):
        px, py = ax.transData.transform((x, y))
        return image[int(round(image.shape[0] - py)), int(round(px))]

    blue, white = rgb(CELL_COLORS[Cell.WINDOW]), rgb(CELL_COLORS[Cell.OUTSIDE])
    np.testing.assert_allclose(colour_at(5, 0), rgb(CELL_COLORS[Cell.SELF]), atol=1.5 / 255)  # the input row
    np.testing.assert_allclose(colour_at(20, 0), white, atol=1.5 / 255)
    np.testing.assert_allclose(colour_at(7, 1), blue, atol=1.5 / 255)  # layer 0: the window ...
    np.testing.assert_allclose(colour_at(40, 1), blue, atol=1.5 / 255)  # ... and the global token 40 reading all
    np.testing.assert_allclose(colour_at(20, 1), white, atol=1.5 / 255)
    np.testing.assert_allclose(colour_at(60, 2), blue, atol=1.5 / 255)  # layer 1: everyone reads token 40
