"""The gate's profiles generate every case class of the contract (docs/contract.md#profiles).

- every padding layout on toy and boundary: none, right, left (position 0 padding), runs of padding inside a
  row, and batch rows with no valid token (never every row);
- 1..16 heads on toy and on boundary's shortest seqs, whatever `max_heads` says (it caps realistic only);
- both parities of the block count for every toy window, with the simplest case of each shape a full row;
- a planted kernel for each class, which escaped the gate before these classes were drawn, is rejected;
  the correct kernels pass on every class;
- `ExtraShapes` adds seqs, heads, windows and head dims to every profile's axes.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from parity.gate.broken_kernels import BROKEN_KERNELS, BUGS, dense_attention, tiled_attention
from parity.gate.judge import check_case, gate
from parity.gate.profiles import (
    MANY_HEADS,
    CaseRecipe,
    ExtraShapes,
    Shape,
    grid,
    parse_extra_shapes,
    shape_cases,
)
from parity.gate.support import Support
from parity.harness.hypothesis_runs import ShrinkBudget, run_seeded
from parity.harness.strategies import attention_cases

CI_BLOCKS = (16, 64)
FIND = settings(max_examples=2000, database=None, suppress_health_check=list(HealthCheck))


def profile_cases(profile: str, **options):
    return st.sampled_from(grid(profile, **options).shapes).flatmap(shape_cases)


def has_empty_row(kinds) -> bool:
    return len(kinds) >= 2 and bool((kinds == 0).all(1).any())


def has_left_padding(kinds) -> bool:
    return any(row[0] == 0 and row.any() for row in kinds)


def longest_inner_run(kinds) -> int:
    """The longest run of padding between two valid tokens of a row."""
    longest = 0
    for row in kinds:
        valid = np.flatnonzero(row)
        if valid.size >= 2:
            inner = row[valid[0]:valid[-1] + 1] == 0
            runs = np.diff(np.flatnonzero(np.diff(np.r_[0, inner.astype(int), 0])))[::2]
            longest = max([longest, *runs.tolist()])
    return longest


# ------------------------------------------------------------------------------------------ what is drawn
def drawn(strategy, n: int = 150) -> list:
    """n examples of `strategy`, the same on every run (no shrinking: cheap)."""
    out = []

    @settings(max_examples=n, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(example):
        out.append(example)

    collect()
    return out


@pytest.mark.parametrize("profile", ["toy", "boundary"])
def test_every_padding_layout_is_drawn(profile):
    recipes = drawn(profile_cases(profile, blocks=CI_BLOCKS))
    assert sum(has_empty_row(r.token_kind) for r in recipes) >= 10
    assert sum(has_left_padding(r.token_kind) for r in recipes) >= 10
    # a run of padding longer than the one-sided reach: a query beside it sees no neighbour on that side
    assert any(longest_inner_run(r.token_kind) > r.shape.window // 2 for r in recipes)
    assert all((r.token_kind != 0).any(1).any() for r in recipes)  # never every row empty


def test_realistic_rows_keep_their_layouts():
    recipes = drawn(profile_cases("realistic", support=Support(max_seq=1024, head_dims=(64,))), 40)
    assert all((r.token_kind[:, 0] != 0).all() and (r.token_kind != 0).any(1).all() for r in recipes)


@pytest.mark.parametrize("profile", ["toy", "boundary"])
def test_sixteen_heads_are_drawn_whatever_max_heads_says(profile):
    recipes = drawn(profile_cases(profile, blocks=CI_BLOCKS, max_heads=1))
    assert max(r.heads for r in recipes) == MANY_HEADS and sum(r.heads > 4 for r in recipes) >= 20
    assert max(s.heads for s in grid(profile, blocks=CI_BLOCKS, max_heads=1).shapes) == MANY_HEADS


def test_max_heads_caps_the_realistic_heads_only():
    assert {s.heads for s in grid("realistic", max_heads=1).shapes} == {1}
    assert {s.heads for s in grid("realistic", max_heads=12).shapes} == {8, 12}
    boundary = grid("boundary", blocks=CI_BLOCKS)
    shortest = {(s.block, s.window): min(t.seq for t in boundary.shapes if (t.block, t.window) == (s.block, s.window))
                for s in boundary.shapes}
    # 16 heads on the shortest seq of each window (cheap), 2 on the longer ones
    assert all(s.heads == (MANY_HEADS if s.seq == shortest[s.block, s.window] else 2) for s in boundary.shapes)


def test_every_toy_window_has_odd_and_even_block_counts():
    shapes = grid("toy").shapes
    for window in {s.window for s in shapes}:
        counts = {s.seq // s.window for s in shapes if s.window == window}
        assert {c % 2 for c in counts if c > 1} == {0, 1} and 1 in counts


@pytest.mark.parametrize("profile", ["toy", "boundary"])
def test_a_shape_run_on_its_own_gets_full_rows(profile):
    """A shape hypothesis did not draw runs one case on its own (the gate's second pass): every token valid,
    so the last block of an odd block count holds tokens."""
    for shape in grid(profile, blocks=(16,)).shapes:
        seen = []
        run_seeded(seen.append, shape_cases(shape), 1, 0, ShrinkBudget(1.0), key=id, failure=AssertionError)
        assert len(seen) == 1 and (seen[0].token_kind == 1).all() and seen[0].heads == 1, shape.label


def test_attention_cases_draw_every_padding_only_when_asked():
    every = drawn(attention_cases(max_batch=3, every_padding=True))
    assert any(has_empty_row(c.token_kind) for c in every) and any(has_left_padding(c.token_kind) for c in every)
    default = drawn(attention_cases(max_batch=3), 50)  # right padding and single holes: position 0 valid
    assert all((c.token_kind[:, 0] != 0).all() for c in default)


# ------------------------------------------------------------------------------------------ the teeth
def _recipe(rows, heads=2, window=16) -> CaseRecipe:
    """A case inside tiled_attention's support (head_dim 16, window 16) with the given token kinds."""
    kinds = np.asarray(rows, np.int64)
    shape = Shape("toy", window, kinds.shape[1], 16, heads, len(kinds))
    return CaseRecipe(shape, len(kinds), heads, kinds, seed=5, scale=3.0, mean=0.5)


def _row(*runs) -> list[int]:
    """(kind, count) runs -> one row, e.g. _row((0, 3), (1, 29))."""
    return [kind for kind, count in runs for _ in range(count)]


CLASS_CASES = {
    "empty_row_nan": _recipe([_row((1, 3), (2, 1), (1, 16), (0, 12)), _row((0, 32))]),
    "first_token_assumed_valid": _recipe([_row((0, 3), (1, 7), (2, 1), (1, 21))]),
    "heads_past_4_wrapped": _recipe([_row((1, 32))], heads=16),
    "odd_block_count_last_block": _recipe([_row((1, 48))]),  # seq / window = 3
    "padding run inside a row": _recipe([_row((1, 6), (0, 10), (1, 5), (2, 1), (1, 10))]),  # run > w/2
}


@pytest.mark.parametrize("kernel", [dense_attention, tiled_attention], ids=["dense", "tiled"])
@pytest.mark.parametrize("name", sorted(CLASS_CASES))
def test_correct_kernels_pass_every_case_class(kernel, name):
    assert check_case(kernel, CLASS_CASES[name])["context"]["error"] < 1e-12


@pytest.mark.parametrize("bug", ["empty_row_nan", "first_token_assumed_valid", "heads_past_4_wrapped",
                                 "odd_block_count_last_block"])
def test_planted_bug_fails_its_own_case_class_only(bug):
    with pytest.raises(AssertionError, match="mismatch"):
        check_case(BROKEN_KERNELS[bug], CLASS_CASES[bug])
    full = _recipe([_row((1, 32))] * 2)  # two full rows, 2 heads, an even block count: the bug is invisible
    assert check_case(BROKEN_KERNELS[bug], full)["context"]["error"] < 1e-12, BUGS[bug]


# (bug, seed, gate options): each passed the gate with these settings (default examples) before its case
# class was drawn; odd_block_count_last_block escaped toy on seeds 0, 1 and 5 of 0..11.
ESCAPES = [
    ("empty_row_nan", 0, dict(profile="toy")),
    ("empty_row_nan", 0, dict(profile="boundary", blocks=CI_BLOCKS)),
    ("first_token_assumed_valid", 0, dict(profile="toy")),
    ("first_token_assumed_valid", 0, dict(profile="boundary", blocks=CI_BLOCKS)),
    ("heads_past_4_wrapped", 0, dict(profile="toy")),
    ("heads_past_4_wrapped", 0, dict(profile="boundary", blocks=CI_BLOCKS)),
    ("heads_past_4_wrapped", 0, dict(profile="all", max_heads=1, blocks=CI_BLOCKS, support=Support(max_seq=1024))),
    ("odd_block_count_last_block", 0, dict(profile="toy")),
    ("odd_block_count_last_block", 1, dict(profile="toy")),
    ("odd_block_count_last_block", 5, dict(profile="toy")),
]


@pytest.mark.parametrize("bug,seed,options", ESCAPES, ids=[f"{b}-{o['profile']}-{s}" for b, s, o in ESCAPES])
def test_gate_rejects_a_bug_that_escaped_it(bug, seed, options):
    result = gate(BROKEN_KERNELS[bug], seed=seed, name=bug, **options)
    assert result.verdict == "mismatch", f"{bug} ({BUGS[bug]}): {result.message()}"
    assert result.error > result.budget


# ------------------------------------------------------------------------------------------ extra shapes
def test_extra_shapes_add_values_to_every_profiles_axes():
    extra = parse_extra_shapes(seq="40", heads=[32], windows=10, head_dims=(5,))
    assert extra == ExtraShapes(seqs=(40,), heads=(32,), windows=(10,), head_dims=(5,))
    toy, plain = grid("toy", extra=extra).shapes, grid("toy").shapes
    assert {(s.window, s.seq, s.head_dim) for s in plain} < {(s.window, s.seq, s.head_dim) for s in toy}
    assert {(s.window, s.seq) for s in toy if s.window == 10} == {(10, 10), (10, 20), (10, 30), (10, 40)}
    assert {s.seq for s in toy if s.window == 6} == {6, 12, 18, 42}  # seq 40 rounded up to the window
    assert 5 in {s.head_dim for s in toy} and all(s.extra_heads == (32,) and s.heads == 32 for s in toy)
    realistic = grid("realistic", extra=extra).shapes
    labels = [s.label for s in realistic]
    # windows x seqs x head dims x (LED's, 32) heads; at window 1024 seq 40 rounds up to 1024 (one seq fewer)
    assert len(labels) == len(set(labels)) == (4 * 3 + 2) * 3 * 2
    assert "realistic window=10 seq=40 head_dim=5 heads=32 block=64" in labels
    assert {s.heads for s in realistic if s.head_dim == 5} == {204, 32}  # LED-large's d_model in heads of 5
    boundary = grid("boundary", blocks=(16,), extra=extra).shapes
    assert {s.window for s in boundary} == {10, 24, 32} and {(24, 48)} <= {(s.window, s.seq) for s in boundary}
    assert extra.flags() == "--seq 40 --heads 32 --windows 10 --add-head-dims 5"


def test_extra_values_equal_to_the_profiles_add_nothing_and_the_support_still_excludes():
    same = ExtraShapes(seqs=(4096,), windows=(512,), head_dims=(64,))
    assert grid("realistic", extra=same).shapes == grid("realistic").shapes and not ExtraShapes()
    narrowed = grid("toy", support=Support(max_window=8, max_seq=24), extra=ExtraShapes(windows=(16,), seqs=(100,)))
    assert max(s.window for s in narrowed.shapes) == 8 and max(s.seq for s in narrowed.shapes) == 24
    assert "window 16" in narrowed.excluded and "seq 104" in narrowed.excluded


def test_a_case_of_an_extra_shape_passes_the_correct_kernel():
    shape = next(s for s in grid("toy", extra=ExtraShapes(heads=(20,), windows=(10,))).shapes if s.window == 10)
    recipe = find(shape_cases(shape), lambda r: r.heads == 20 and r.batch == 2, settings=FIND)
    assert check_case(dense_attention, recipe)["context"]["error"] < 1e-12


@pytest.mark.parametrize("arguments,error,words", [
    (dict(windows=3), ValueError, "windows entries must be even ints >= 2, got 3"),
    (dict(windows="2,x"), TypeError, "windows takes comma-separated ints"),
    (dict(seq=0), ValueError, "seq entries must be ints >= 1, got 0"),
    (dict(heads=[2.5]), TypeError, "heads entries must be ints, got 2.5"),
    (dict(head_dims=[True]), TypeError, "head_dims entries must be ints, got True"),
])
def test_bad_extra_shapes_name_the_argument_value_and_limit(arguments, error, words):
    with pytest.raises(error, match=words):
        parse_extra_shapes(**arguments)


def test_grid_takes_only_extra_shapes():
    with pytest.raises(TypeError, match="extra must be a parity.gate.profiles.ExtraShapes, got dict"):
        grid("toy", extra={"seqs": (8,)})
