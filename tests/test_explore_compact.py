"""Compact rows (`led_ref.explore.compact`): which key each column of `attentions[b, h, row, :]` holds, against
the compact rule, `led_ref.layout`'s index map and the columns HF's LED really fills.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from led_ref import layout
from led_ref.explore.compact import RUN_MIN, compact_text, row_columns
from led_ref.explore.examples import example_kinds, example_masks
from tests.explore_cases import brute_force_mask, layout_cases


@given(layout_cases(max_len=24), st.data())
def test_row_columns_follow_the_compact_rule(case, data):
    """Local row i: columns 0..x-1 are the globals in order, then slot k holds key i - w/2 + k (brute force)."""
    seq_len, window, globals_, pad = case
    kinds = example_kinds(seq_len, [window], globals_, pad)
    local = [i for i in range(seq_len) if kinds[i] == 1]
    if not local:
        return
    i = data.draw(st.sampled_from(local))
    columns = row_columns(kinds, window, i)
    padded = len(kinds)
    assert [c.column for c in columns] == list(range(len(globals_) + window + 1))
    assert [c.key for c in columns[:len(globals_)]] == globals_
    for k, col in enumerate(columns[len(globals_):]):
        key = i - window // 2 + k
        assert col.key == key
        expected = ("outside" if not 0 <= key < padded else "padding" if key >= seq_len - pad
                    else "global-in-window" if key in globals_ else "self" if key == i else "window")
        assert col.role == expected
    # and the same cells the layout module's own index map marks as holding a key
    keys, valid = layout.compact_columns(kinds[None], window)
    holds = [c.holds_probability for c in columns]
    key_is_pad = [c.role == "padding" for c in columns]
    np.testing.assert_array_equal(np.array(holds) | np.array(key_is_pad), valid[0, i])


@functools.lru_cache(maxsize=4)
def _hf_encoder(window: int):
    """A 1-layer, 1-head HF LED (float32) with window `window` and fixed random weights."""
    torch = pytest.importorskip("torch")
    from led_ref.init import random_weights
    from led_ref.io.config import LEDConfig
    from tests.hf_oracle import hf_model

    config = LEDConfig(vocab_size=20, d_model=4, encoder_layers=1, decoder_layers=1, encoder_attention_heads=1,
                       decoder_attention_heads=1, encoder_ffn_dim=4, decoder_ffn_dim=4, attention_window=window,
                       max_encoder_position_embeddings=64, max_decoder_position_embeddings=8)
    return hf_model(config, random_weights(config, "LEDModel", seed=window, std=0.3), "LEDModel",
                    torch.float32).get_encoder()


@pytest.mark.hf
@given(layout_cases(max_len=14, windows=(4, 8)), st.integers(0, 2**16))
def test_explained_columns_are_the_ones_hf_fills(case, seed):
    """Every compact cell the explorer says holds a probability is > 0 in HF's output, every other one is 0,
    and the explorer's global-row story (attentions row 0, global_attentions slot s) holds too."""
    seq_len, window, globals_, pad = case
    if pad == seq_len:
        return  # HF cannot run an all-padding row
    torch = pytest.importorskip("torch")
    from tests.hf_oracle import to_numpy

    attention_mask, global_attention_mask = example_masks(seq_len, globals_, pad)
    ids = torch.from_numpy(np.random.default_rng(seed).integers(3, 20, (1, seq_len)))
    with torch.no_grad():
        out = _hf_encoder(window)(input_ids=ids, attention_mask=torch.from_numpy(attention_mask),
                                  global_attention_mask=torch.from_numpy(global_attention_mask),
                                  output_attentions=True)
    attentions = to_numpy(out.attentions[0])[0, 0]  # (seq, x + w + 1)
    kinds = example_kinds(seq_len, [window], globals_, pad)
    for i in range(seq_len):
        if kinds[i] == 1:
            holds = np.array([c.holds_probability for c in row_columns(kinds, window, i)])
            assert np.all(attentions[i][holds] > 0) and np.all(attentions[i][~holds] == 0), (i, attentions[i])
        else:
            assert np.all(attentions[i] == 0)
    if globals_:
        global_attentions = to_numpy(out.global_attentions[0])[0, 0]  # (padded seq, x)
        for s, g in enumerate(globals_):
            np.testing.assert_array_equal(global_attentions[:seq_len, s] > 0, brute_force_mask(
                seq_len, window, globals_, pad)[g])


@given(layout_cases(max_len=30, windows=(8, 10, 12)), st.data())
def test_collapsed_column_runs_cover_every_column_once(case, data):
    """Every line of a local row's table (single or collapsed) adds up to the columns of `row_columns`."""
    import re

    seq_len, window, globals_, pad = case
    kinds = example_kinds(seq_len, [window], globals_, pad)
    local = [i for i in range(seq_len) if kinds[i] == 1]
    if not local:
        return
    row = data.draw(st.sampled_from(local))
    text = compact_text(kinds, window, row, seq_len)
    columns = row_columns(kinds, window, row)
    covered = []
    for line in text.splitlines()[3:]:
        run = re.match(r"\s+(\d+)\.\.(\d+) \((\d+) columns\)  (.*)", line)
        if run:
            first, last = int(run[1]), int(run[2])
            assert int(run[3]) == last - first + 1 >= RUN_MIN
            group = columns[first:last + 1]
            assert len({c.role for c in group}) == 1
            if group[0].role != "global":
                assert f"keys {group[0].key}..{group[-1].key}" in run[4]
            covered.extend(range(first, last + 1))
        else:
            c, key = map(int, line.split()[:2])
            assert columns[c].key == key and columns[c].note in line
            covered.append(c)
    assert covered == list(range(len(columns)))
