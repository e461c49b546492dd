"""Hypothesis strategies for what a careless or hostile user hands the loaders: damaged files and config values.

    damaged_bytes(valid)        a valid file's bytes, damaged the ways files get damaged or crafted
    json_values()               any JSON value (nested objects and lists, numbers, strings, null)
    config_values(field)        boundary values, nulls and wrong types for one LEDConfig field

Used by tests/test_file_fuzz.py (every file format the project reads) and tests/test_config_fuzz.py (every
config field); each draw is small, so a test stays within seconds and a few MB.
"""

from __future__ import annotations

import json
import math

from hypothesis import strategies as st

# Nesting far beyond led_ref.io.files.MAX_DEPTH and beyond Python's recursion limit (the 100,000).
DEEP = (65, 2000, 100_000)


def json_values(max_leaves: int = 12):
    """Any JSON value: scalars (with NaN/Infinity, which Python's json writes), nested lists and objects."""
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6))
    return st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                        max_leaves=max_leaves)


def _flip(data: bytes, draw) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        if out:
            out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
    return bytes(out)


def _deep(data: bytes, draw) -> bytes:
    depth = draw(st.sampled_from(DEEP))
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
    return opener * depth + data + closer * depth


@st.composite
def damaged_bytes(draw, valid: bytes) -> bytes:
    """`valid` (a file's bytes) damaged one way: bytes overwritten, cut short, junk inserted, re-encoded as
    UTF-16/32 or Latin-1, wrapped in deep nesting, swapped for another JSON value, or for random bytes."""
    how = draw(st.sampled_from(["flip", "cut", "insert", "encode", "deep", "other_json", "random", "empty"]))
    if how == "flip":
        return _flip(valid, draw)
    if how == "cut":
        return valid[: draw(st.integers(0, max(len(valid) - 1, 0)))]
    if how == "insert":
        at = draw(st.integers(0, len(valid)))
        return valid[:at] + draw(st.binary(min_size=1, max_size=8)) + valid[at:]
    if how == "encode":
        text = valid.decode("utf-8", errors="replace")
        codec = draw(st.sampled_from(["utf-16", "utf-16-le", "utf-32", "latin-1"]))
        return (text + draw(st.sampled_from(["", "é", "\u00ff"]))).encode(codec, errors="replace")
    if how == "deep":
        return _deep(valid, draw)
    if how == "other_json":
        return json.dumps(draw(json_values())).encode()
    if how == "random":
        return draw(st.binary(max_size=64))
    return b""


# ------------------------------------------------------------------------------------------ config values
_WRONG_TYPES = st.one_of(st.none(), st.booleans(), st.text(max_size=4), st.lists(st.integers(0, 8), max_size=3),
                         st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                         st.sampled_from([math.nan, math.inf, -math.inf]))


def config_values(kind: str):
    """Values for a config field of `kind` ("count", "token", "probability", "number", "flag", "word",
    "window"): its boundaries (0, 1, -1, the largest int), small valid values, floats where ints belong,
    nulls and wrong types."""
    small_ints = st.integers(-3, 70)
    huge = st.sampled_from([2**31, 2**63, 2**80])
    ints = st.one_of(small_ints, huge, small_ints.map(float))
    if kind in ("count", "token"):
        return st.one_of(ints, _WRONG_TYPES)
    if kind == "window":
        return st.one_of(ints, st.lists(st.one_of(small_ints, small_ints.map(float)), max_size=4), _WRONG_TYPES)
    if kind in ("probability", "number"):
        return st.one_of(st.floats(-2, 2), st.sampled_from([0, 1, 0.0, 1.0, -0.0, 1e-300, 1e300]), _WRONG_TYPES)
    if kind == "flag":
        return st.one_of(st.booleans(), st.sampled_from([0, 1, 2, "true", "false"]), _WRONG_TYPES)
    return st.one_of(st.text(max_size=8), st.sampled_from(["gelu", "relu", "GELU", "regression", ""]),
                     _WRONG_TYPES)
