"""Positions as short text: [3, 4, 5, 9] -> '3..5, 9', cut after a few ranges so output stays bounded."""

from __future__ import annotations

from collections.abc import Sequence


def short_ranges(positions: Sequence[int], parts: int = 8) -> str:
    """`position_ranges`, cut after `parts` ranges with a count of what is left (bounded output at any length)."""
    text = position_ranges(list(positions)).split(", ")
    if len(text) <= parts:
        return ", ".join(text)
    return ", ".join(text[:parts]) + f", ... ({len(text) - parts} more ranges)"


def position_ranges(positions: Sequence[int]) -> str:
    """[3, 4, 5, 9] -> '3..5, 9'."""
    positions = list(positions)
    if not positions:
        return ""
    out, start = [], None
    for a, b in zip(positions, list(positions[1:]) + [None], strict=True):
        start = a if start is None else start
        if b != a + 1:
            out.append(f"{start}" if start == a else f"{start}..{a}")
            start = None
    return ", ".join(out)
