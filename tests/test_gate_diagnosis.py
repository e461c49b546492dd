"""Key-level diagnosis (parity.gate.diagnosis): the planted bugs are named by the key and the rule they break."""

from __future__ import annotations

import time

import numpy as np
import pytest

from parity.gate.broken_kernels import BROKEN_KERNELS, TILED_KERNELS, dense_attention
from parity.gate.diagnosis import RULES, describe_keys, diagnose_keys, key_rule, probability_row, spec_probability_row
from parity.gate.profiles import CaseRecipe, Shape
from parity.gate.reference import reference_attention
from parity.harness.strategies import AttentionCase

# w = 4 (reach 2) over 12 tokens: token 2 global, token 9 a padding hole; query 7 is local and sees 5..9.
KINDS = np.array([[1, 1, 2, 1, 1, 1, 1, 1, 1, 0, 1, 1],
                  [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0]])


def make_case(kinds=KINDS, window=4, head_dim=3, heads=2, seed=0, strided=False) -> AttentionCase:
    rng = np.random.default_rng(seed)
    shape = (kinds.shape[0], heads, kinds.shape[1], head_dim)
    arrays = [rng.standard_normal(shape) for _ in range(6)]
    return AttentionCase(*arrays, token_kind=kinds, window=window, seed=seed, strided=strided)


def diagnose(bug: str, query: int, batch: int = 0, **kwargs) -> list[dict]:
    return diagnose_keys(BROKEN_KERNELS[bug], make_case(), "float64", "cpu", batch, 1, query, **kwargs)


def test_probing_reads_the_reference_probabilities_of_local_global_and_padding_rows():
    case = make_case()
    _, probs = reference_attention(*case.arrays(), case.token_kind, case.window, return_probs=True)
    for query in (7, 2, 9):  # local, global, padding
        row = probability_row(dense_attention, case, "float64", "cpu", 0, 1, query)
        np.testing.assert_allclose(row, probs[0, 1, query].numpy(), rtol=0, atol=1e-12)
    assert probs[0, 1, 7].numpy().max() > 0.1  # the rows compared are not all zero


def test_the_spec_row_is_the_references_dense_row():
    case = make_case()
    _, probs = reference_attention(*case.arrays(), case.token_kind, case.window, return_probs=True)
    for batch, head, query in [(0, 1, 7), (0, 0, 2), (0, 1, 9), (1, 0, 0), (1, 1, 11)]:
        row = spec_probability_row(case, batch, head, query)
        np.testing.assert_allclose(row, probs[batch, head, query].numpy(), rtol=0, atol=1e-12)


def test_a_window_one_narrower_loses_exactly_its_window_edge_keys():
    keys = diagnose("window_narrower", query=7, batch=1)
    lost = {k["key"]: k for k in keys if k["kernel"] == 0.0 and k["spec"] > 0}
    assert sorted(lost) == [5, 9]
    assert {k["rule"] for k in lost.values()} == {"window edge"}
    sizes = [abs(k["difference"]) for k in keys]
    assert sizes == sorted(sizes, reverse=True) and all(k["rule"] in RULES for k in keys)


def test_a_global_key_counted_twice_is_the_top_key():
    top = diagnose("global_double_counted", query=3)[0]  # key 2 is global and inside query 3's window
    assert (top["key"], top["rule"]) == (2, "global")
    p = top["spec"]  # its weight e enters the softmax twice: 2e / (Z + e) = 2p / (1 + p)
    assert top["kernel"] == pytest.approx(2 * p / (1 + p), abs=1e-12) and p > 0.1


def test_visible_padding_keys_are_named_padding():
    top = diagnose("padding_keys_visible", query=8)[0]  # the hole at 9 is inside query 8's window
    assert (top["key"], top["rule"], top["spec"]) == (9, "padding", 0.0) and top["kernel"] > 0


def test_a_global_row_reading_padding_is_diagnosed_through_global_value():
    keys = diagnose("global_rows_ignore_padding", query=2)
    assert (keys[0]["key"], keys[0]["rule"], keys[0]["spec"]) == (9, "padding", 0.0) and keys[0]["kernel"] > 0
    assert {k["rule"] for k in keys[1:]} == {"global row"}


def test_a_wider_window_reaches_keys_outside_the_window():
    outside = {k["key"] for k in diagnose("window_wider", query=6, batch=1) if k["rule"] == "outside window"}
    assert outside == {3, 9}  # reach 3 instead of 2


def test_a_padding_row_that_keeps_its_context_reads_keys_it_must_not():
    keys = diagnose("padding_rows_not_zeroed", query=9)
    assert keys and {k["rule"] for k in keys} == {"padding row"} and {k["spec"] for k in keys} == {0.0}


def test_top_limits_the_keys_returned():
    assert len(diagnose("window_wider", query=6, batch=1, top=2)) == 2


@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16"])
def test_a_correct_kernel_has_no_differing_keys(dtype):
    case = make_case(strided=True)  # strided views reach the kernel the way the gate hands them
    assert diagnose_keys(dense_attention, case, dtype, "cpu", 0, 0, 7) == []
    assert diagnose_keys(BROKEN_KERNELS["window_narrower"], case, dtype, "cpu", 0, 0, 7)  # the same probe can see


def test_a_case_recipe_and_a_tiled_kernel_bug():
    shape = Shape("boundary", window=24, seq=24, head_dim=16, heads=1, max_batch=1, block=16)
    recipe = CaseRecipe(shape, batch=1, heads=1, token_kind=np.ones((1, 24), np.int64), seed=3)
    keys = diagnose_keys(TILED_KERNELS["tile_end_off_by_one"], recipe, "float32", "cpu", 0, 0, 11)
    assert (keys[0]["key"], keys[0]["rule"], keys[0]["kernel"]) == (23, "window edge", 0.0)


def test_a_kernel_that_breaks_on_probing_gives_no_keys():
    def crashes(*args):
        raise RuntimeError("no")

    def wrong_shape(query, *args):
        return query[:, :, :1]

    def slow(*args):
        time.sleep(0.05)
        return dense_attention(*args)

    case = make_case()
    assert diagnose_keys(crashes, case, "float64", "cpu", 0, 0, 7) == []
    assert diagnose_keys(wrong_shape, case, "float64", "cpu", 0, 0, 7) == []
    assert diagnose_keys(slow, case, "float64", "cpu", 0, 0, 7, max_seconds=0.01) == []  # 4 probes needed


def test_bad_arguments_name_the_argument_and_its_range():
    with pytest.raises(ValueError, match=r"query must be an int in 0\.\.11, got 12"):
        diagnose("window_narrower", query=12)
    with pytest.raises(ValueError, match="top must be an int >= 1, got 0"):
        diagnose("window_narrower", query=7, top=0)


def test_key_rule_names_each_rule_of_the_contract():
    row = KINDS[0]  # w = 4 around query 7: keys 5..9
    rules = {j: key_rule(row, 4, 7, j) for j in (2, 4, 5, 6, 7, 9)}
    assert rules == {2: "global", 4: "outside window", 5: "window edge", 6: "window", 7: "self", 9: "padding"}
    assert key_rule(row, 4, 2, 11) == "global row" and key_rule(row, 4, 9, 8) == "padding row"


def test_describe_keys_gives_one_line_per_key():
    keys = [{"key": 7, "rule": "window edge", "spec": 0.1234, "kernel": 0.0, "difference": -0.1234}]
    assert describe_keys(keys) == ["key 7 (window edge): spec 0.1234 kernel 0.0000 (diff -1.23e-01)"]

