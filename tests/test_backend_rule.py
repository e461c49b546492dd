"""The Longformer rule every backend takes (led_torch/backends/rule.py): token kinds, the key rule in its two
forms (flex's "window or global key, not padding" and the blocked backends' band keys + global columns, also in
slab coordinates), global slots, the global-row pass and rows by kind. Each is checked against the project's
references on hypothesis layouts (parity.harness.strategies): led_ref.layout (the spec's dense mask and token kinds)
and parity.gate.reference (the float64 kernel reference: its dense probabilities and its context). A last test
keeps the rule in this one home: no backend module compares token kinds with bare integers.
"""

from __future__ import annotations

import ast
import pathlib

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import parity.gate.reference
from led_ref import layout
from led_torch.backends import rule
from parity.gate.reference import reference_attention
from parity.harness.strategies import attention_cases, token_kinds

WINDOWS = (2, 4, 6, 8, 10, 12, 14, 16)
BACKENDS_DIR = pathlib.Path(rule.__file__).parent


def rule_dense_mask(kinds: torch.Tensor, window: int) -> torch.Tensor:
    """(batch, seq, seq) bool: the rule's mask for every row by its kind (local rows the local mask, global rows
    the global mask, padding rows nothing)."""
    batch, seq = kinds.shape
    local = rule.dense_mask(rule.longformer_local_mask(kinds, window), batch, 1, seq, seq)[:, 0]
    glob = rule.dense_mask(rule.longformer_global_mask(kinds), batch, 1, seq, seq)[:, 0]
    row = kinds[:, :, None]
    return torch.where(row == rule.LOCAL, local, (row == rule.GLOBAL) & glob)


def global_columns(kinds: torch.Tensor) -> torch.Tensor:
    """(batch, seq, seq) bool: the keys a local row reaches through the global slots, every query alike."""
    positions, valid = rule.global_slots(kinds)
    batch, seq = kinds.shape
    cols = torch.zeros(batch, seq, dtype=torch.bool)
    for b in range(batch):
        cols[b, positions[b][valid[b]]] = True
    return cols[:, None, :].expand(batch, seq, seq)


# ---------------------------------------------------------------------------------------------- token kinds
def test_token_kind_values_are_the_specs_and_the_references():
    assert (rule.PADDING, rule.LOCAL, rule.GLOBAL) == (layout.PADDING, layout.LOCAL, layout.GLOBAL) == (0, 1, 2)
    assert (rule.PADDING, rule.LOCAL, rule.GLOBAL) == (parity.gate.reference.PADDING, parity.gate.reference.LOCAL,
                                                       parity.gate.reference.GLOBAL)


@given(st.integers(1, 3), st.integers(1, 20), st.data())
def test_token_kinds_from_masks_are_the_specs(batch, seq, data):
    """led_torch's token kinds from the masks equal led_ref.layout's, also with global flags on padding (ignored)
    and float masks; without a global mask every real token is local."""
    kinds = data.draw(token_kinds(batch, seq))
    attention = (kinds != layout.PADDING).astype(np.int64)
    flags = data.draw(st.lists(st.booleans(), min_size=batch * seq, max_size=batch * seq))
    on_padding = np.array(flags).reshape(batch, seq) & (attention == 0)
    global_mask = ((kinds == layout.GLOBAL) | on_padding).astype(np.int64)
    got = rule.token_kinds(torch.as_tensor(attention, dtype=torch.float32), torch.as_tensor(global_mask))
    assert got.dtype == torch.long
    np.testing.assert_array_equal(got.numpy(), layout.token_kinds(attention, global_mask))
    np.testing.assert_array_equal(got.numpy(), kinds)
    no_globals = rule.token_kinds(torch.as_tensor(attention), None).numpy()
    np.testing.assert_array_equal(no_globals, layout.token_kinds(attention, None))


# ---------------------------------------------------------------------------------------------- key rule
@given(st.sampled_from(WINDOWS), st.integers(1, 3), st.integers(1, 20), st.data())
def test_longformer_local_mask_is_window_or_global_not_padding(window, batch, seq, data):
    kinds = torch.as_tensor(data.draw(token_kinds(batch, seq)))
    got = rule.dense_mask(rule.longformer_local_mask(kinds, window), batch, 2, seq, seq)
    i, j = np.arange(seq)[:, None], np.arange(seq)[None, :]
    k = kinds.numpy()[:, None, None, :]
    expected = (k != 0) & ((np.abs(i - j) <= window // 2) | (k == 2))
    np.testing.assert_array_equal(got.numpy(), np.broadcast_to(expected, (batch, 2, seq, seq)))


@given(st.sampled_from(WINDOWS), st.integers(1, 3), st.integers(1, 20), st.data())
def test_masks_agree_with_the_spec_layout(window, batch, seq, data):
    """Local rows use longformer_local_mask, global rows longformer_global_mask: led_ref's dense_mask."""
    kinds = data.draw(token_kinds(batch, seq))
    t = torch.as_tensor(kinds)
    local = rule.dense_mask(rule.longformer_local_mask(t, window), batch, 1, seq, seq)[:, 0].numpy()
    glob = rule.dense_mask(rule.longformer_global_mask(t), batch, 1, seq, seq)[:, 0].numpy()
    row = kinds[:, :, None]
    ours = np.where(row == 1, local, np.where(row == 2, glob, False))
    np.testing.assert_array_equal(ours, layout.dense_mask(kinds, window))


def test_mask_combinators_on_a_small_grid():
    kinds = torch.tensor([[1, 1, 1, 1, 2, 0]])
    grid = rule.dense_mask(rule.longformer_local_mask(kinds, 2), 1, 1, 6, 6)[0, 0]
    expected = torch.tensor([
        [1, 1, 0, 0, 1, 0],
        [1, 1, 1, 0, 1, 0],
        [0, 1, 1, 1, 1, 0],
        [0, 0, 1, 1, 1, 0],
        [0, 0, 0, 1, 1, 0],
        [0, 0, 0, 0, 1, 0],
    ], dtype=torch.bool)  # the picture in rule.py, plus rows 4 (global) and 5 (padding) as local rows
    assert torch.equal(grid, expected)
    everything = rule.or_masks(rule.sliding_window(2), rule.not_padding(kinds))
    nothing = rule.and_masks(rule.sliding_window(2), rule.global_key(kinds), rule.not_padding(kinds))
    assert rule.dense_mask(everything, 1, 1, 6, 6)[0, 0, :, :5].all()
    assert rule.dense_mask(nothing, 1, 1, 6, 6)[0, 0].sum() == 3  # key 4 from rows 3, 4, 5


@pytest.mark.parametrize("bad, error", [(0, ValueError), (3, ValueError), (-2, ValueError), (2.0, TypeError),
                                        (True, TypeError)])
def test_sliding_window_rejects_bad_windows(bad, error):
    """The project's one window rule (led_ref.io.validation.check_window): a bad value is a ValueError, a value
    that is no int a TypeError, each naming the window."""
    with pytest.raises(error, match=f"window must be an even int >= 2, got {bad!r}"):
        rule.sliding_window(bad)


def test_combinators_need_a_mask():
    with pytest.raises(ValueError, match="or_masks"):
        rule.or_masks()
    with pytest.raises(ValueError, match="and_masks"):
        rule.and_masks()


@given(st.sampled_from(WINDOWS), st.integers(1, 3), st.integers(1, 16), st.data())
def test_the_rule_is_the_support_of_the_references_dense_probabilities(window, batch, seq, data):
    """With all scores equal, parity.gate.reference's dense probabilities are uniform over exactly the keys each row
    may attend: their support is the rule's mask, row kind by row kind."""
    kinds = data.draw(token_kinds(batch, seq))
    zeros = np.zeros((batch, 1, seq, 2))
    _, probs = reference_attention(*(zeros,) * 6, kinds, window, return_probs=True)
    torch.testing.assert_close(rule_dense_mask(torch.as_tensor(kinds), window), probs[:, 0] > 0, rtol=0, atol=0)


@given(st.sampled_from(WINDOWS), st.integers(1, 3), st.integers(1, 20), st.data())
def test_band_keys_plus_global_columns_are_the_local_rule_each_key_once(window, batch, seq, data):
    """The blocked backends' split of a local row's keys: the band mask and the global slots' columns are
    disjoint and together are longformer_local_mask."""
    kinds = torch.as_tensor(data.draw(token_kinds(batch, seq)))
    local = rule.dense_mask(rule.longformer_local_mask(kinds, window), batch, 1, seq, seq)[:, 0]
    band = rule.dense_mask(rule.longformer_band_mask(kinds, window), batch, 1, seq, seq)[:, 0]
    cols = global_columns(kinds)
    assert not (band & cols).any()
    assert torch.equal(band | cols, local)


@given(st.sampled_from(WINDOWS), st.integers(1, 3), st.integers(1, 40), st.sampled_from([1, 2, 3, 5, 8, 32]),
       st.data())
def test_band_keys_are_the_band_mask_in_slab_coordinates(window, batch, seq, block, data):
    """Row r of block k is position k*block + r, slab column c is key k*block - window/2 + c: mapped back, the
    slab mask of every real row is exactly the dense band mask (keys outside the sequence never allowed)."""
    kinds = torch.as_tensor(data.draw(token_kinds(batch, seq)))
    slab = rule.band_keys(kinds, window, block)
    blocks = -(-seq // block)
    assert slab.shape == (batch, blocks, block, block + window)
    k = torch.arange(blocks)[:, None, None]
    query = (k * block + torch.arange(block)[None, :, None]).expand(blocks, block, block + window)
    key = (k * block - window // 2 + torch.arange(block + window)[None, None, :]).expand_as(query)
    b, kb, r, c = torch.nonzero(slab & (query < seq)[None], as_tuple=True)
    q_pos, k_pos = query[kb, r, c], key[kb, r, c]
    assert ((k_pos >= 0) & (k_pos < seq)).all()
    dense = torch.zeros(batch, seq, seq, dtype=torch.bool)
    dense[b, q_pos, k_pos] = True
    band = rule.dense_mask(rule.longformer_band_mask(kinds, window), batch, 1, seq, seq)[:, 0]
    assert torch.equal(dense, band)


# ---------------------------------------------------------------------------------------------- global slots
@given(st.integers(1, 4), st.integers(1, 20), st.data())
def test_global_slots_list_each_rows_globals_in_order(batch, seq, data):
    kinds = data.draw(token_kinds(batch, seq))
    positions, valid = rule.global_slots(torch.as_tensor(kinds))
    counts = (kinds == layout.GLOBAL).sum(axis=1)
    assert positions.shape == valid.shape == (batch, counts.max())
    for b in range(batch):
        np.testing.assert_array_equal(positions[b][valid[b]].numpy(), np.flatnonzero(kinds[b] == layout.GLOBAL))
        assert int(valid[b].sum()) == counts[b] and not positions[b][~valid[b]].any()
    t = torch.arange(batch * 2 * seq * 3, dtype=torch.float64).view(batch, 2, seq, 3)
    gathered = rule.gather_rows(t, positions)
    for b, s in zip(*np.nonzero(valid.numpy()), strict=True):
        assert torch.equal(gathered[b, :, s], t[b, :, positions[b, s]])


# ------------------------------------------------------------------------------------ global rows, rows by kind
@given(attention_cases(max_batch=3, max_heads=2, max_chunks=3, windows=(2, 4, 8)),
       st.sampled_from([None, torch.float64]))
def test_global_rows_and_rows_by_kind_give_the_references_context(case, matmul_dtype):
    """The global-row pass gives the reference's context at each global position (slot order); rows by kind
    put every row's context in place: local rows kept (their reference context), global rows from their slot,
    padding rows zero even where the local result is NaN."""
    q, k, v, gq, gk, gv, kinds, window = case.torch_args(torch.float64)
    expected = reference_attention(*case.arrays(), case.token_kind, case.window)
    slots = rule.global_slots(kinds)
    positions, valid = slots
    global_context, probs = rule.global_rows(gq, gk, gv, kinds, slots, matmul_dtype=matmul_dtype)
    if positions.shape[1] == 0:
        assert global_context is None and probs is None
    else:
        for b, s in zip(*np.nonzero(valid.numpy()), strict=True):
            torch.testing.assert_close(global_context[b, :, s], expected[b, :, positions[b, s]], rtol=1e-12,
                                       atol=1e-12)
        key_ok = (kinds != rule.PADDING)[:, None, None, :] & valid[:, None, :, None]
        assert not probs.masked_select(~key_ok).any()
        torch.testing.assert_close(probs.sum(-1), valid[:, None, :].expand_as(probs[..., 0]).double())
    local = torch.where((kinds == rule.LOCAL)[:, None, :, None], expected, torch.tensor(float("nan")))
    assembled = rule.assemble_rows(local, global_context, kinds)
    torch.testing.assert_close(assembled, expected, rtol=1e-12, atol=1e-12)
    assert torch.equal(assembled[(kinds == rule.PADDING)[:, None, :].expand(-1, q.shape[1], -1)],
                       torch.zeros(int((kinds == rule.PADDING).sum()) * q.shape[1], q.shape[3], dtype=q.dtype))


@given(attention_cases(max_batch=3, max_heads=2, max_chunks=3, windows=(2, 4, 8)))
def test_rows_by_kind_in_place_equal_rows_by_kind(case):
    """`assemble_rows_` (the CPU inference path writes into its own fresh result) gives `assemble_rows`' values
    exactly, NaN in padding rows included (zeroed)."""
    q, k, v, gq, gk, gv, kinds, window = case.torch_args(torch.float64)
    slots = rule.global_slots(kinds)
    global_context, _ = rule.global_rows(gq, gk, gv, kinds, slots)
    local = torch.where((kinds == rule.PADDING)[:, None, :, None], torch.tensor(float("nan")), v)
    expected = rule.assemble_rows(local, global_context, kinds)
    assert torch.equal(rule.assemble_rows_(local.clone(), global_context, kinds, slots), expected)


@given(attention_cases(max_batch=3, max_heads=3, max_head_dim=4, max_chunks=3, windows=(2, 4, 8)))
def test_global_rows_from_states_equal_the_projected_pass(case):
    """The global-row pass from the hidden states and the global key/value weights (no projection of every
    token) gives the projected pass's context at every used slot (float64, to rounding)."""
    q, *_, kinds, window = case.torch_args(torch.float64)
    batch, heads, seq, head_dim = q.shape
    d_model = heads * head_dim
    g = torch.Generator().manual_seed(case.seed % 2**31)
    hidden, key_weight, value_weight = (torch.randn(*shape, generator=g, dtype=torch.float64)
                                        for shape in ((batch, seq, d_model), (d_model, d_model), (d_model, d_model)))
    key_bias, value_bias = torch.randn(2, d_model, generator=g, dtype=torch.float64)
    gq = case.torch_args(torch.float64)[3]

    def heads_of(t):
        return t.view(batch, seq, heads, head_dim).transpose(1, 2)

    gk = heads_of(hidden @ key_weight.T + key_bias)
    gv = heads_of(hidden @ value_weight.T + value_bias)
    slots = rule.global_slots(kinds)
    expected, _ = rule.global_rows(gq, gk, gv, kinds, slots)
    queries = rule.gather_rows(gq, slots[0])  # the global tokens' queries in slot order
    got = rule.global_rows_from_states(queries, hidden, key_weight, key_bias, value_weight, value_bias, kinds, slots)
    if expected is None:
        assert got is None
        return
    valid = slots[1]
    assert got.shape == expected.shape
    torch.testing.assert_close(got.transpose(1, 2)[valid], expected.transpose(1, 2)[valid], rtol=1e-10,
                               atol=1e-10)


def test_global_rows_from_states_pay_for_few_global_tokens():
    """Taken while heads x global tokens is at most half of d_model (LED-base: up to 32 global tokens)."""
    assert rule.global_rows_pay_from_states(1, 12, 768) and rule.global_rows_pay_from_states(32, 12, 768)
    assert not rule.global_rows_pay_from_states(33, 12, 768)
    assert not rule.global_rows_pay_from_states(3, 2, 8)


# ---------------------------------------------------------------------------------------------- one home
def _bare_kind_comparisons(tree: ast.AST) -> list[int]:
    """Lines of `<...kind...> == 2`-style comparisons of a token kind with an integer literal."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any("kind" in ast.unparse(s) for s in sides) and any(
                    isinstance(s, ast.Constant) and type(s.value) is int for s in sides):
                found.append(node.lineno)
    return found


def _slot_placements(tree: ast.AST) -> list[int]:
    """Lines calling cumsum or a scatter (how global slots get put back at their tokens)."""
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Call)
            and any(word in ast.unparse(node.func) for word in ("cumsum", "scatter", "index_put"))]


@pytest.mark.parametrize("path", sorted(p for p in BACKENDS_DIR.glob("*.py") if p.name != "rule.py")
                         + [BACKENDS_DIR.parent / "encoder.py"], ids=lambda p: p.name)
def test_backends_name_token_kinds_and_leave_the_slot_scatter_to_the_rule(path):
    """The backends and the encoder that calls them compare token kinds by name and put global slots back at
    their tokens through the rule (no cumsum or scatter of their own)."""
    tree = ast.parse(path.read_text())
    assert _bare_kind_comparisons(tree) == [], f"{path.name} compares token kinds with bare integers"
    assert _slot_placements(tree) == [], f"{path.name} puts global slots back itself: use rule.at_global_tokens"
