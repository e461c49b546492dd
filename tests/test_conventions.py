"""led_ref.explore.conventions: the contract's window in other libraries' parameters, and the explorer's
`--convention` (docs/contract.md#window-conventions)."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from led_ref.explore import conventions
from led_ref.explore.conventions import NAMES, band, contract_band, contract_window, identify, parameters
from led_ref.layout import dense_mask
from tests.explore_cases import run_cli

EXACT = ("led", "hf", "longformer", "flash", "local-attention")  # express the whole band
windows = st.integers(1, 10).map(lambda half: 2 * half)


def _natten_by_hand(window: int, seq: int) -> np.ndarray:
    """Neighbourhood attention written out: w + 1 keys centred on i, the start slid back inside the sequence."""
    size, seen = window + 1, np.zeros((seq, seq), bool)
    for i in range(seq):
        start = min(max(i - window // 2, 0), max(seq - size, 0))
        seen[i, start:start + size] = True
    return seen


def test_the_docstring_examples_hold():
    assert doctest.testmod(conventions).failed == 0


@given(windows, st.integers(1, 40))
def test_exact_conventions_give_the_specs_band(window, seq):
    spec = dense_mask(np.ones((1, seq), np.int64), window)[0]  # led_ref's own layout, all tokens local
    assert np.array_equal(contract_band(window, seq), spec)
    for name in EXACT:
        assert np.array_equal(band(name, parameters(window, name), seq), spec), name


@given(windows)
def test_every_convention_reads_its_parameters_back(window):
    for name in NAMES:
        assert contract_window(name, **parameters(window, name)) == window, name


def test_the_parameter_names_and_values_of_each_library():
    assert parameters(8, "hf") == {"attention_window": 8}
    assert parameters(8, "longformer") == {"attention_window": 4}
    assert parameters(8, "flash") == {"window_size": (4, 4)}
    assert parameters(8, "flashinfer") == {"window_left": 5}
    assert parameters(8, "natten") == {"kernel_size": 9}
    assert parameters(8, "local-attention")["window_size"] == 4


@given(windows, st.integers(1, 40))
def test_neighbourhood_attention_is_shifted_at_the_edges_only(window, seq):
    got = band("natten", parameters(window, "natten"), seq)
    assert np.array_equal(got, _natten_by_hand(window, seq))
    r = window // 2
    inside = [i for i in range(seq) if i >= r and i + r < seq]
    assert np.array_equal(got[inside], contract_band(window, seq)[inside])
    # NATTEN always sees min(seq, w + 1) keys, a window containing the clipped one: rows with fewer differ
    clipped = [min(i + r, seq - 1) - max(i - r, 0) + 1 for i in range(seq)]
    expected = [i for i in range(seq) if clipped[i] < min(seq, window + 1)]
    assert all(i < r or i + r >= seq for i in expected)
    assert conventions.differing_rows(window, "natten", seq) == expected


@given(windows, st.integers(1, 40))
def test_flashinfer_window_left_counts_the_query_and_bounds_the_left_side_only(window, seq):
    got = band("flashinfer", parameters(window, "flashinfer"), seq)
    i, j = np.indices((seq, seq))
    left = j <= i
    assert np.array_equal(got[left], contract_band(window, seq)[left])
    assert got[~left].all()  # no right bound without causal


def test_identify_names_the_wrong_layouts():
    assert identify(contract_band(4, 16), 4) is None
    assert "shifted" in identify(_natten_by_hand(4, 16), 4)
    assert "window_size=(4, 4)" in identify(contract_band(8, 16), 4)  # a two-sided window read as one-sided
    assert "buckets" in identify(band("local-attention", {"window_size": 2}, 16), 4)
    odd = np.eye(16, dtype=bool)
    odd[0, 15] = True
    assert "neither" in identify(odd, 4)


@pytest.mark.parametrize(("name", "params", "words"), [
    ("flash", {"window_size": (2, 3)}, "asymmetric"),
    ("local-attention", {"window_size": 2, "exact_windowsize": False}, "exact_windowsize"),
    ("local-attention", {"window_size": 2, "look_backward": 2, "exact_windowsize": True}, "look_backward 2"),
    ("natten", {"kernel_size": 4}, "odd"),
    ("hf", {"attention_window": 3}, "even"),
    ("longformer", {"attention_window": 0}, "attention_window"),
])
def test_parameters_that_are_no_contract_window_are_refused_by_name(name, params, words):
    with pytest.raises(ValueError, match=words):
        contract_window(name, **params)


def test_unknown_convention_names_the_choices():
    with pytest.raises(ValueError, match="natten"):
        parameters(4, "xformers")


def test_explorer_prints_the_layout_in_a_librarys_parameters():
    code, out, _ = run_cli(["layout", "--seq-len", "12", "--window", "4", "--convention", "natten"])
    assert code == 0 and "kernel_size=5" in out
    rows = [i for i in range(12) if (_natten_by_hand(4, 12)[i] != contract_band(4, 12)[i]).any()]
    assert f"{len(rows)} of 12 query rows" in out and ", ".join(map(str, rows)) in out
    code, out, _ = run_cli(["layout", "--seq-len", "12", "--window", "4", "--convention", "hf"])
    assert code == 0 and "attention_window=4" in out and "expresses the whole contract" in out
    code, out, _ = run_cli(["layout", "--seq-len", "12", "--window", "4", "--global", "0", "--convention", "flash"])
    assert code == 0 and "window_size=(2, 2)" in out and "cannot express: global tokens" in out


@pytest.mark.parametrize("args", [
    ("--seq-len", "12", "--window", "4", "--convention", "flash", "--format", "mask"),
    ("--seq-len", "12", "--window", "4", "--convention", "bogus"),
    ("--from-model", "--convention", "flash"),
])
def test_explorer_convention_misuse_exits_2(args):
    code, _, err = run_cli(["layout", *args])
    assert code == 2 and "--convention" in err
