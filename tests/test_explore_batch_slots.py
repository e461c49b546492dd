"""`--batch` (`led_ref.explore.batch_slots`): the batch's x global slots, each row's slots and the unused ones.
"""

from __future__ import annotations

from led_ref import layout
from led_ref.explore.batch_slots import batch_kinds
from tests.explore_cases import run_cli


def test_batch_shows_x_and_the_unused_slots():
    status, out, err = run_cli(["layout", "--seq-len", "12", "--window", "4", "--batch", "0,5", "3/2", "/4"])
    assert status == 0, err
    assert "A batch of 3 rows, 12 tokens, window 4: x = 2" in out
    assert "(batch=3, heads, 12, x + w + 1 = 7)" in out
    assert "  1      3              10..11        key 3          unused: 0" in out
    assert "  2      none           8..11         unused: 0      unused: 0" in out
    # batch row 1's table: its one global key in slot 0, slot 1 unused, the window from column x = 2
    kinds = batch_kinds(12, [4], [([0, 5], 0), ([3], 2), ([], 4)])
    keys, _ = layout.compact_columns(kinds, 4)
    section = out.split("-- batch row 1")[1].split("-- batch row 2")[0]
    assert "     1    -1  global slot 1: unused in this batch row, always 0" in section
    for c in range(7):
        key = keys[1, 0, c]
        line = next(line for line in section.splitlines() if line.startswith(f"  {c:4d} "))
        if key != layout.UNUSED:
            assert int(line.split()[1]) == key, line
        else:
            assert "always 0" in line or "is global" in line, line
