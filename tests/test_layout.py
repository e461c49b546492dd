"""led_ref.layout: every index map against a brute-force construction written here with plain loops,
and the compact <-> dense conversions as round trips."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from led_ref import layout
from parity.harness.strategies import token_kinds as token_kind_arrays

WINDOWS = st.sampled_from(range(2, 17, 2))


@st.composite
def kinds_and_window(draw, max_batch: int = 3, max_seq: int = 20):
    """(token_kind (batch, seq) int64, window): any even window, including wider than the sequence."""
    batch = draw(st.integers(1, max_batch))
    seq = draw(st.integers(1, max_seq))
    return draw(token_kind_arrays(batch, seq)), draw(WINDOWS)


# ------------------------------------------------------------------------------------------ brute force
def brute_may_attend(kinds_row, window: int, i: int, j: int) -> bool:
    """The definition in docs/contract.md, one cell at a time."""
    if kinds_row[i] == 0 or kinds_row[j] == 0:
        return False
    if kinds_row[i] == 2:
        return True
    return abs(i - j) <= window // 2 or kinds_row[j] == 2


def brute_compact_key(kinds_row, window: int, x: int, i: int, c: int) -> int:
    """Key held by compact column c of query i, -1 if none (recomputed from the layout description)."""
    globals_ = [p for p, k in enumerate(kinds_row) if k == 2]
    if c < x:
        return globals_[c] if c < len(globals_) else -1
    j = i - window // 2 + (c - x)
    if not 0 <= j < len(kinds_row) or kinds_row[j] == 2:
        return -1
    return j


def random_dense(kinds, window, heads, rng):
    """Row-normalised random probabilities (batch, heads, seq, seq) supported exactly on the dense mask."""
    batch, seq = kinds.shape
    mask = np.array([[[brute_may_attend(kinds[b], window, i, j) for j in range(seq)] for i in range(seq)]
                     for b in range(batch)])
    p = rng.random((batch, heads, seq, seq)) * mask[:, None]
    total = p.sum(-1, keepdims=True)
    return np.divide(p, total, out=np.zeros_like(p), where=total > 0)


# ------------------------------------------------------------------------------------------ padding
@given(st.integers(0, 100), WINDOWS)
def test_padded_length_is_the_next_multiple(seq_len, window):
    n = layout.padded_length(seq_len, window)
    assert n % window == 0 and seq_len <= n < seq_len + window


@given(st.integers(1, 3), st.integers(1, 11), WINDOWS, st.integers(0, 9))
def test_pad_to_window_ids(batch, seq, window, pad_id):
    rng = np.random.default_rng(seq)
    ids = rng.integers(0, 10, (batch, seq))
    mask = rng.integers(0, 2, (batch, seq))
    glob = rng.integers(0, 2, (batch, seq))
    padded, m, g, pad = layout.pad_to_window(ids, mask, glob, window, pad_id)
    assert pad == layout.padded_length(seq, window) - seq
    np.testing.assert_array_equal(padded[:, :seq], ids)
    assert (padded[:, seq:] == pad_id).all()
    np.testing.assert_array_equal(m[:, :seq], mask)
    np.testing.assert_array_equal(g[:, :seq], glob)
    assert not m[:, seq:].any() and not g[:, seq:].any()


def test_pad_to_window_defaults_and_embeddings_match_hf():
    """inputs_embeds are padded with the pad token's embedding, as HF's LEDEncoder does."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from transformers.models.led.modeling_led import LEDEncoder

    config = transformers.LEDConfig(vocab_size=12, d_model=4, encoder_layers=1, encoder_attention_heads=1,
                                    encoder_ffn_dim=4, attention_window=4, pad_token_id=3)
    encoder = LEDEncoder(config).double().eval()
    rng = np.random.default_rng(0)
    embeds = rng.standard_normal((2, 5, 4))
    mask = np.array([[1, 1, 1, 1, 0], [1, 0, 1, 1, 1]])
    with torch.no_grad():
        hf_pad, _, hf_mask, hf_embeds = encoder._pad_to_window_size(
            None, torch.tensor(mask), torch.tensor(embeds), config.pad_token_id)
    table = encoder.embed_tokens.weight.detach().numpy()
    padded, m, g, pad = layout.pad_to_window(embeds, mask, None, 4, 3, embedding_table=table)
    assert pad == hf_pad == 3
    np.testing.assert_array_equal(padded, hf_embeds.numpy())
    np.testing.assert_array_equal(m, hf_mask.numpy())
    assert g.shape == (2, 8) and not g.any()
    _, m_default, _, _ = layout.pad_to_window(embeds, None, None, 4, 3, embedding_table=table)
    np.testing.assert_array_equal(m_default, [[1] * 5 + [0] * 3] * 2)


def test_pad_to_window_rejects_bad_input():
    with pytest.raises(ValueError, match="embedding_table"):
        layout.pad_to_window(np.zeros((1, 3, 4)), None, None, 4, 1)
    with pytest.raises(ValueError, match="window must be an even int >= 2, got 3"):
        layout.pad_to_window(np.zeros((1, 3), int), None, None, 3, 1)
    # Masks follow the project's one mask rule (led_ref.io.validation.check_mask), with its messages.
    with pytest.raises(ValueError, match="attention_mask values must be 0 or 1, found 2"):
        layout.pad_to_window(np.zeros((1, 3), int), np.array([[1, 2, 1]]), None, 4, 1)
    with pytest.raises(ValueError, match=r"attention_mask must have shape \(1, 3\) \(that of the inputs it masks\), "
                                         r"got \(1, 2\)"):
        layout.pad_to_window(np.zeros((1, 3), int), np.ones((1, 2)), None, 4, 1)


def test_token_kinds_rejects_bad_masks():
    with pytest.raises(ValueError, match="got neither"):
        layout.token_kinds(None, None)
    with pytest.raises(ValueError, match=r"attention_mask must have shape \(batch, sequence\), got shape \(3,\)"):
        layout.token_kinds(np.ones(3), None)
    with pytest.raises(ValueError, match=r"global_attention_mask must have shape \(1, 3\) \(that of attention_mask\), "
                                         r"got \(1, 2\)"):
        layout.token_kinds(np.ones((1, 3)), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="global_attention_mask values must be 0 or 1, found 0.5"):
        layout.token_kinds(None, np.array([[0, 0.5]]))
    with pytest.raises(TypeError, match="attention_mask must be a numeric or boolean array"):
        layout.token_kinds(np.array([["a"]]), None)
    assert layout.token_kinds([[True, False]], None).dtype == np.int8


# ------------------------------------------------------------------------------------------ kinds and maps
@given(st.integers(1, 3), st.integers(1, 12), st.integers(0, 2**31 - 1))
def test_token_kinds_cell_by_cell(batch, seq, seed):
    rng = np.random.default_rng(seed)
    mask, glob = rng.integers(0, 2, (2, batch, seq))
    kinds = layout.token_kinds(mask, glob)
    for b in range(batch):
        for i in range(seq):
            expected = 0 if mask[b, i] == 0 else (2 if glob[b, i] else 1)  # global flag on padding ignored
            assert kinds[b, i] == expected
    np.testing.assert_array_equal(layout.token_kinds(None, glob), glob + 1)


@given(st.integers(0, 20), WINDOWS)
def test_window_key_positions_cell_by_cell(seq, window):
    positions = layout.window_key_positions(seq, window)
    valid = layout.window_key_valid(seq, window)
    assert positions.shape == (seq, window + 1)
    for i in range(seq):
        for c in range(window + 1):
            j = i - window // 2 + c
            assert positions[i, c] == (j if 0 <= j < seq else layout.UNUSED)
            assert valid[i, c] == (0 <= j < seq)
        assert positions[i, window // 2] == i  # self in the middle column


@given(kinds_and_window())
def test_global_slots_in_position_order(case):
    kinds, _ = case
    positions, valid = layout.global_slots(kinds)
    rows = [[p for p, k in enumerate(row) if k == 2] for row in kinds]
    x = max(len(r) for r in rows)
    assert positions.shape == valid.shape == (kinds.shape[0], x)
    for b, row in enumerate(rows):
        assert list(positions[b][valid[b]]) == row
        assert (positions[b][~valid[b]] == layout.UNUSED).all()
        assert list(valid[b]) == [s < len(row) for s in range(x)]


@given(kinds_and_window())
def test_compact_columns_cell_by_cell(case):
    kinds, window = case
    keys, valid = layout.compact_columns(kinds, window)
    x = layout.global_slots(kinds)[0].shape[1]
    batch, seq = kinds.shape
    assert keys.shape == (batch, seq, x + window + 1)
    for b in range(batch):
        for i in range(seq):
            for c in range(keys.shape[2]):
                assert keys[b, i, c] == brute_compact_key(kinds[b], window, x, i, c)
    np.testing.assert_array_equal(valid, keys != layout.UNUSED)


@given(kinds_and_window())
def test_dense_mask_cell_by_cell(case):
    kinds, window = case
    mask = layout.dense_mask(kinds, window)
    batch, seq = kinds.shape
    for b in range(batch):
        for i in range(seq):
            for j in range(seq):
                assert mask[b, i, j] == brute_may_attend(kinds[b], window, i, j), (b, i, j)


def test_docstring_picture():
    """The picture in the module docstring is what dense_mask draws."""
    kinds = np.array([[1, 2, 1, 1, 1, 1, 0, 0]])
    drawn = ["".join("#" if v else "." for v in row) for row in layout.dense_mask(kinds, 4)[0]]
    assert drawn == ["###.....", "######..", "#####...", ".#####..", ".#####..", ".#.###..", "........",
                     "........"]
    keys, _ = layout.compact_columns(kinds, 4)
    assert list(keys[0, 3]) == [1, -1, 2, 3, 4, 5]


# ------------------------------------------------------------------------------------------ dense <-> compact
@given(kinds_and_window(), st.integers(1, 3), st.integers(0, 2**31 - 1))
def test_dense_compact_round_trip(case, heads, seed):
    kinds, window = case
    rng = np.random.default_rng(seed)
    dense = random_dense(kinds, window, heads, rng)
    attention_mask, global_mask = (kinds > 0).astype(int), (kinds == 2).astype(int)
    attentions, global_attentions = layout.to_compact(dense, global_mask, window, attention_mask)
    x = global_attentions.shape[-1]
    assert attentions.shape == kinds.shape[:1] + (heads, kinds.shape[1], x + window + 1)
    # Compact rows of local tokens still sum to 1: every attended key landed in exactly one column.
    local = kinds == 1
    np.testing.assert_allclose(attentions.sum(-1)[local[:, None].repeat(heads, 1)], 1.0, rtol=1e-12)
    assert (attentions[(kinds != 1)[:, None].repeat(heads, 1)] == 0).all()  # global and padding rows 0
    back = layout.to_dense(attentions, global_attentions, global_mask, window, attention_mask)
    np.testing.assert_array_equal(back, dense)
    again = layout.to_compact(back, global_mask, window, attention_mask)
    np.testing.assert_array_equal(again[0], attentions)
    np.testing.assert_array_equal(again[1], global_attentions)


@given(kinds_and_window(max_batch=2, max_seq=10), st.integers(0, 2**31 - 1))
def test_compact_cells_against_brute_force(case, seed):
    """Each compact cell is the dense probability of the key the layout description says it holds."""
    kinds, window = case
    rng = np.random.default_rng(seed)
    dense = random_dense(kinds, window, 1, rng)
    global_mask = (kinds == 2).astype(int)
    attentions, global_attentions = layout.to_compact(dense, global_mask, window, (kinds > 0).astype(int))
    x = global_attentions.shape[-1]
    for b in range(kinds.shape[0]):
        globals_ = [p for p, k in enumerate(kinds[b]) if k == 2]
        for i in range(kinds.shape[1]):
            for c in range(x + window + 1):
                j = brute_compact_key(kinds[b], window, x, i, c)
                expected = dense[b, 0, i, j] if j >= 0 and kinds[b, i] == 1 else 0.0
                assert attentions[b, 0, i, c] == expected
            for s in range(x):
                expected = dense[b, 0, globals_[s], i] if s < len(globals_) else 0.0  # unused slots are 0
                assert global_attentions[b, 0, i, s] == expected


def test_to_dense_accepts_padded_key_axis_and_rejects_wrong_width():
    kinds = np.array([[2, 1, 1, 1, 1, 0]])
    dense = random_dense(kinds, 2, 1, np.random.default_rng(1))
    attentions, global_attentions = layout.to_compact(dense, kinds == 2, 2, kinds > 0)
    padded_keys = np.concatenate([global_attentions, np.zeros((1, 1, 2, 1))], axis=2)  # HF keeps keys padded
    np.testing.assert_array_equal(layout.to_dense(attentions, padded_keys, kinds == 2, 2, kinds > 0), dense)
    with pytest.raises(ValueError, match="attentions has 6 columns, expected x \\+ w \\+ 1 = 4"):
        layout.to_dense(np.zeros((1, 1, 6, 6)), global_attentions, kinds == 2, 2, kinds > 0)
    with pytest.raises(ValueError, match="global_attentions is None"):
        layout.to_dense(attentions, None, kinds == 2, 2, kinds > 0)
    with pytest.raises(ValueError, match="token_kind must hold only 0"):
        layout.global_slots(np.array([[3, 1]]))
