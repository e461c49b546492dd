"""`--format mask` (`led_ref.explore.cells`): the printed 0/1 mask against a brute-force mask written from the
rules of docs/contract.md, for random lengths, windows, global positions and padding.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.explore_cases import brute_force_mask, layout_args, layout_cases, parse_mask, run_cli

# The CLI is cheap: check many more cases than the profile's default.
MANY = max(60, settings.default.max_examples)


@settings(max_examples=MANY)
@given(layout_cases())
def test_mask_output_equals_brute_force(case):
    seq_len, window, globals_, pad = case
    status, out, err = run_cli(layout_args(seq_len, window, globals_, pad, "--format", "mask"))
    assert status == 0, err
    np.testing.assert_array_equal(parse_mask(out, seq_len), brute_force_mask(seq_len, window, globals_, pad))


@given(layout_cases(max_len=24), st.lists(st.sampled_from([2, 4, 6, 8, 10]), min_size=2, max_size=3), st.data())
def test_mask_of_each_layer_uses_its_own_window(case, windows, data):
    seq_len, _, globals_, pad = case
    layer = data.draw(st.integers(0, len(windows) - 1))
    argv = ["layout", "--seq-len", str(seq_len), "--layer-windows", ",".join(map(str, windows)), "--pad", str(pad),
            "--global", ",".join(map(str, globals_)), "--format", "mask", "--layer", str(layer)]
    status, out, err = run_cli(argv)
    assert status == 0, err
    np.testing.assert_array_equal(parse_mask(out, seq_len), brute_force_mask(seq_len, windows[layer], globals_, pad))
