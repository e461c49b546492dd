"""The terminal grid (`led_ref.explore.grid`): the worked example's marks and legend, and every cell against a
brute-force mask.
"""

from __future__ import annotations

from hypothesis import given

from tests.explore_cases import brute_force_mask, layout_args, layout_cases, parse_grid, run_cli


def test_grid_marks_and_legend_of_the_worked_example():
    status, out, err = run_cli(layout_args(12, 4, [0], 2))
    assert status == 0, err
    rows = parse_grid(out, 12)
    assert rows[0] == "g" * 10 + "pp"  # global row: every non-padding key
    assert rows[1] == "G\\WW......pp"  # local row 1: global key 0, self, window 2..3
    assert rows[4] == "G.WW\\WW...pp"  # window 2..6 around 4, global 0 far away
    assert rows[9] == "G......WW\\pp"  # window 7..11 cut by padding 10, 11
    assert rows[10] == " " * 12 and rows[11] == " " * 12  # padding rows are blank
    for char, meaning in (("W", "window key"), ("G", "global key"), ("g", "global row"), (".", "outside"),
                          ("p", "padding key"), ("\\", "self")):
        assert f"'{char}'  " in out and meaning in out
    # the compact row of the first local row (1): x = 1, window slots hold keys -1..3, self at column 3
    assert "Row 1 is local" in out and "width x + w + 1 = 6" in out
    for line in ("     0     0  global key 0", "     1    -1  window slot -2: before position 0",
                 "     2     0  window slot -1: key 0 is global", "     3     1  window slot +0: self"):
        assert line in out


@given(layout_cases(max_len=30))
def test_grid_cells_agree_with_brute_force(case):
    seq_len, window, globals_, pad = case
    status, out, err = run_cli(layout_args(seq_len, window, globals_, pad))
    assert status == 0, err
    rows = parse_grid(out, seq_len)
    mask = brute_force_mask(seq_len, window, globals_, pad)
    for i in range(seq_len):
        for j in range(seq_len):
            c = rows[i][j]
            if i >= seq_len - pad:
                expected = " "
            elif not mask[i, j]:
                expected = "p" if j >= seq_len - pad else "."
            elif i in globals_:
                expected = "g"
            elif j in globals_:
                expected = "G"
            else:
                expected = "\\" if i == j else "W"
            assert c == expected, (i, j, c, expected)
