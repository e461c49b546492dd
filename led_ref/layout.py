"""The Longformer attention layout as explicit index maps: who attends whom, and where HF stores it.

Everything in LED's encoder attention is one of three kinds of token (`token_kinds`): padding (0),
local (1) and global (2). A local token i looks at the keys of its window, i - w/2 .. i + w/2, plus every
global token; a global token looks at every non-padding token. HF does not return the (seq, seq)
probabilities but a compact layout (`compact_columns`):

    attentions         (batch, heads, seq, x + w + 1)   x global columns, then the w + 1 window columns
    global_attentions  (batch, heads, seq, x)           column s = what the s-th global token attends to

with x the largest number of global tokens in any row of the batch. The running example of this module
has 8 tokens, window w = 4 (reach 2), token 1 global and tokens 6, 7 padding:

    position    0 1 2 3 4 5 6 7
    token_kind  1 2 1 1 1 1 0 0        (0 padding, 1 local, 2 global)

    dense_mask (row = query, column = key, # = may attend)
          0 1 2 3 4 5 6 7
      0   # # # . . . . .      local: window 0..2
      1   # # # # # # . .      global: every non-padding key
      2   # # # # # . . .      local: window 0..4
      3   . # # # # # . .      local: window 1..5 (1 is also global, counted once)
      4   . # # # # # . .      local: window 2..6, plus global key 1, minus padding 6
      5   . # . # # # . .      local: window 3..7 minus padding, plus global key 1
      6   . . . . . . . .      padding: nothing
      7   . . . . . . . .

Every function here is plain numpy with explicit integer index maps (no stride tricks), so each picture in
a docstring can be printed by calling the function.
"""

from __future__ import annotations

import numpy as np

from .io.lengths import padded_length
from .io.validation import check_mask, check_window, sequence_rule  # check_window re-exported: layout.check_window

PADDING, LOCAL, GLOBAL = 0, 1, 2
UNUSED = -1  # marks an index-map cell that holds no key (outside the sequence, or an unused global slot)


# ------------------------------------------------------------------------------------------ checks
def _check_length(seq_len, name: str = "seq_len") -> int:
    if isinstance(seq_len, bool) or not isinstance(seq_len, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= 0, got {seq_len!r} ({type(seq_len).__name__})")
    if seq_len < 0:
        raise ValueError(f"{name} must be >= 0, got {seq_len}")
    return int(seq_len)


def _check_binary_mask(mask, name: str, shape: tuple[int, ...] | None = None,
                       of: str = "the inputs it masks") -> np.ndarray:
    """`mask` as int8 0/1 by the project's one mask rule (`io.validation.check_mask`): of `shape` (that of
    `of`) when given, else of any (batch, seq)."""
    if shape is None:
        shape = np.shape(mask)
        sequence_rule(name, shape)
    return check_mask(name, mask, shape, of).astype(np.int8)


def check_token_kind(token_kind, name: str = "token_kind") -> np.ndarray:
    """`token_kind` as an int8 (batch, seq) array of 0/1/2, or a ValueError/TypeError naming it."""
    token_kind = np.asarray(token_kind)
    if token_kind.ndim != 2:
        raise ValueError(f"{name} must be 2-D (batch, seq), got shape {token_kind.shape}")
    if token_kind.dtype.kind not in "biu":
        raise TypeError(f"{name} must be an integer array of 0/1/2, got dtype {token_kind.dtype}")
    bad = ~np.isin(token_kind, (PADDING, LOCAL, GLOBAL))
    if bad.any():
        value = token_kind[bad].flat[0].item()
        raise ValueError(f"{name} must hold only 0 (padding), 1 (local), 2 (global), got {value}")
    return token_kind.astype(np.int8)


# ------------------------------------------------------------------------------------------ padding
def effective_window(window: int, seq_len: int) -> int:
    """The narrowest window that attends exactly as `window` does over `seq_len` real tokens.

    A window reaches w/2 tokens each side, so once w/2 >= seq_len - 1 every real query already sees every
    real key; a wider window only adds cells over padding (probability 0) or outside the sequence. Computing
    at this width and widening the result (`widen_window_columns`) keeps the cost of a huge window, e.g.
    16,384 asked for "full attention" on a 4-token input, at that of the input's own length.

        effective_window(16384, 4) == 6      effective_window(4, 100) == 4
    """
    return min(check_window(window), 2 * max(_check_length(seq_len) - 1, 1))


def widen_window_columns(probs: np.ndarray, narrow: int, wide: int) -> np.ndarray:
    """Compact probabilities (..., x + narrow + 1) computed at window `narrow` laid out for window `wide`
    (..., x + wide + 1): the window columns centred (column x + wide/2 is the query itself), zeros around."""
    if narrow == wide:
        return probs
    x = probs.shape[-1] - narrow - 1
    out = np.zeros(probs.shape[:-1] + (x + wide + 1,), probs.dtype)
    out[..., :x] = probs[..., :x]
    start = x + (wide - narrow) // 2
    out[..., start:start + narrow + 1] = probs[..., x:]
    return out


def pad_to_window(input_ids_or_embeds, attention_mask, global_attention_mask, window, pad_token_id,
                  embedding_table=None):
    """Right-pad the encoder inputs to a multiple of `window`, the way HF's encoder does.

    input_ids_or_embeds: int (batch, seq) token ids, or float (batch, seq, d_model) input embeddings.
    attention_mask, global_attention_mask: (batch, seq) of 0/1 or None (None = all ones / all zeros).
    window: the largest per-layer window (`config.max_window`).
    pad_token_id: the id appended to `input_ids`.
    embedding_table: (vocab, d_model), only needed for embeddings: HF appends the *embedding of the pad
        token* (`shared.weight[pad_token_id]`) to `inputs_embeds`, not zeros.

    Returns (padded_inputs, attention_mask, global_attention_mask, pad_count): inputs (batch, seq + pad,
    ...), masks int8 (batch, seq + pad) with 0 on the added positions, so the added tokens are padding.

        ids  [[5, 6, 7]]   window 4, pad id 1  ->  [[5, 6, 7, 1]], mask [[1, 1, 1, 0]], pad_count 1
    """
    window = check_window(window)
    inputs = np.asarray(input_ids_or_embeds)
    if inputs.ndim not in (2, 3):
        raise ValueError(
            "input_ids_or_embeds must be (batch, seq) ids or (batch, seq, d_model) embeddings, "
            f"got shape {inputs.shape}"
        )
    batch, seq = inputs.shape[:2]
    attention_mask = np.ones((batch, seq), np.int8) if attention_mask is None else attention_mask
    global_attention_mask = np.zeros((batch, seq), np.int8) if global_attention_mask is None else global_attention_mask
    attention_mask = _check_binary_mask(attention_mask, "attention_mask", (batch, seq))
    global_attention_mask = _check_binary_mask(global_attention_mask, "global_attention_mask", (batch, seq))
    pad = padded_length(seq, window) - seq

    if inputs.ndim == 2:
        if inputs.dtype.kind not in "iu":
            raise TypeError(f"input ids must be integers, got dtype {inputs.dtype}")
        padded = np.concatenate([inputs, np.full((batch, pad), pad_token_id, inputs.dtype)], axis=1)
    else:
        if embedding_table is None:
            raise ValueError("embedding_table is required to pad inputs_embeds (HF appends the pad token's embedding)")
        table = np.asarray(embedding_table)
        if table.ndim != 2 or table.shape[1] != inputs.shape[2] or not 0 <= pad_token_id < table.shape[0]:
            raise ValueError(
                f"embedding_table must be (vocab > pad_token_id={pad_token_id}, d_model={inputs.shape[2]}), "
                f"got shape {table.shape}"
            )
        filler = np.broadcast_to(table[pad_token_id].astype(inputs.dtype), (batch, pad, inputs.shape[2]))
        padded = np.concatenate([inputs, filler], axis=1)
    zeros = np.zeros((batch, pad), np.int8)
    return (padded, np.concatenate([attention_mask, zeros], axis=1),
            np.concatenate([global_attention_mask, zeros], axis=1), pad)


def token_kinds(attention_mask, global_attention_mask) -> np.ndarray:
    """int8 (batch, seq): 0 padding, 1 local, 2 global = attention_mask * (global_attention_mask + 1).

    A global flag on a padding token is ignored (the token stays padding), as in HF. Either mask may be
    None (attention_mask None = all 1, global_attention_mask None = all 0).

        attention_mask         1 1 1 1 1 1 0 0
        global_attention_mask  0 1 0 0 0 0 0 1
        token_kinds            1 2 1 1 1 1 0 0
    """
    if attention_mask is None and global_attention_mask is None:
        raise ValueError("token_kinds needs attention_mask or global_attention_mask, got neither")
    if attention_mask is not None:
        attention_mask = _check_binary_mask(attention_mask, "attention_mask")
    if global_attention_mask is not None:
        shape = None if attention_mask is None else attention_mask.shape
        global_attention_mask = _check_binary_mask(global_attention_mask, "global_attention_mask", shape,
                                                   "attention_mask")
    if attention_mask is None:
        attention_mask = np.ones_like(global_attention_mask)
    if global_attention_mask is None:
        global_attention_mask = np.zeros_like(attention_mask)
    return (attention_mask * (global_attention_mask + 1)).astype(np.int8)


# ------------------------------------------------------------------------------------------ index maps
def window_key_positions(seq_len: int, window: int) -> np.ndarray:
    """int (seq, w + 1): the absolute key position held by window column c of query i, i - w/2 + c.

    Column w/2 is the query itself. Positions outside 0..seq-1 are `UNUSED` (-1); `window_key_valid`
    gives the same information as a boolean array. 8 tokens, window 4:

        query   columns 0  1  2  3  4
          0            -1 -1  0  1  2
          1            -1  0  1  2  3
          2             0  1  2  3  4
          ...
          7             5  6  7 -1 -1
    """
    seq_len, window = _check_length(seq_len), check_window(window)
    positions = np.arange(seq_len)[:, None] + np.arange(-(window // 2), window // 2 + 1)[None, :]
    return np.where((positions >= 0) & (positions < seq_len), positions, UNUSED)


def window_key_valid(seq_len: int, window: int) -> np.ndarray:
    """bool (seq, w + 1): whether window column c of query i holds a key inside the sequence."""
    return window_key_positions(seq_len, window) != UNUSED


def global_slots(token_kind) -> tuple[np.ndarray, np.ndarray]:
    """The global tokens of every row, in position order: (positions int (batch, x), valid bool (batch, x)).

    x is the largest number of global tokens in any row; rows with fewer have `UNUSED` (-1), valid False.

        token_kind  [[1, 2, 1, 2],        positions [[ 1,  3],     valid [[ True,  True],
                     [2, 1, 1, 1]]                   [ 0, -1]]            [ True, False]]
    """
    is_global = check_token_kind(token_kind) == GLOBAL
    counts = is_global.sum(axis=1)
    x = int(counts.max(initial=0))
    valid = np.arange(x)[None, :] < counts[:, None]
    positions = np.full(valid.shape, UNUSED, dtype=np.int64)
    # np.nonzero walks rows in order and positions in increasing order: exactly slot order.
    rows, cols = np.nonzero(is_global)
    slot = np.arange(len(rows)) - np.concatenate([[0], np.cumsum(counts)[:-1]])[rows]
    positions[rows, slot] = cols
    return positions, valid


def compact_columns(token_kind, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Which absolute key every column of HF's compact `attentions` holds, for every query.

    Returns (keys int (batch, seq, x + w + 1), valid bool (batch, seq, x + w + 1)). Columns 0..x-1 are the
    global slots (`global_slots`), columns x..x+w the window (`window_key_positions`), self at x + w/2.
    A cell is invalid (key `UNUSED`) when it is an unused global slot, lies outside the sequence, or is a
    window cell whose key is global (that key already has its global column, so HF stores 0 there).
    Running example (x = 1, w = 4), query 3:

        column   g0 | w0 w1 w2 w3 w4
        key       1 | -1  2  3  4  5        (window key 1 is global: held by column g0 instead)
    """
    token_kind = check_token_kind(token_kind)
    window = check_window(window)
    batch, seq = token_kind.shape
    positions, slot_valid = global_slots(token_kind)
    window_keys = np.broadcast_to(window_key_positions(seq, window), (batch, seq, window + 1))
    key_is_global = _kind_of_keys(token_kind, window_keys) == GLOBAL
    window_keys = np.where(key_is_global, UNUSED, window_keys)
    global_keys = np.broadcast_to(positions[:, None, :], (batch, seq, positions.shape[1]))
    keys = np.concatenate([global_keys, window_keys], axis=2)
    return keys, keys != UNUSED


def _kind_of_keys(token_kind: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """The kind of each key in `keys` (batch, ...) of row b, PADDING where the key is UNUSED."""
    flat = keys.reshape(keys.shape[0], -1)
    kinds = np.take_along_axis(token_kind, np.maximum(flat, 0), axis=1)
    return np.where(flat == UNUSED, PADDING, kinds).reshape(keys.shape)


# ------------------------------------------------------------------------------------------ dense views
def dense_mask(token_kind, window: int) -> np.ndarray:
    """bool (batch, seq, seq): may query i attend key j? For teaching and tests (it is O(seq^2)).

    Local rows: key in the window or global, and not padding. Global rows: every non-padding key.
    Padding rows: nothing. See the module docstring for the 8-token picture.
    """
    token_kind = check_token_kind(token_kind)
    window = check_window(window)
    seq = token_kind.shape[1]
    offset = np.abs(np.arange(seq)[:, None] - np.arange(seq)[None, :])
    key_ok = (token_kind != PADDING)[:, None, :]
    key_global = (token_kind == GLOBAL)[:, None, :]
    local_row = (token_kind == LOCAL)[:, :, None]
    global_row = (token_kind == GLOBAL)[:, :, None]
    return key_ok & ((local_row & ((offset <= window // 2)[None] | key_global)) | global_row)


def _kinds_for(global_attention_mask, attention_mask, seq: int) -> np.ndarray:
    token_kind = token_kinds(attention_mask, global_attention_mask)
    if token_kind.shape[1] != seq:
        raise ValueError(
            f"global_attention_mask has {token_kind.shape[1]} positions but the attentions have seq={seq}"
        )
    return token_kind


def to_dense(attentions, global_attentions, global_attention_mask, attention_window, attention_mask=None):
    """HF's compact attention layout -> dense (batch, heads, seq, seq) probabilities (query, key).

    attentions: (batch, heads, seq, x + w + 1), as in `encoder_attentions[l]`.
    global_attentions: (batch, heads, seq_k, x) with seq_k >= seq (HF leaves the key axis padded), or None
        when there are no global tokens (x = 0).
    global_attention_mask, attention_mask: (batch, seq) 0/1 as given to the model (attention_mask None = all 1).
    attention_window: the layer's window w.
    Local rows are scattered through `compact_columns`; the row of global token s is column s of
    `global_attentions`; padding rows stay 0.

        compact row 3 of the running example   g0 | w0 w1 w2 w3 w4      dense row 3   0  1  2  3  4  5  6  7
                                               .3 |  0 .1 .2 .2 .2   ->                0 .3 .1 .2 .2 .2  0  0
    """
    window = check_window(attention_window, "attention_window")
    attentions = np.asarray(attentions)
    if attentions.ndim != 4:
        raise ValueError(f"attentions must be (batch, heads, seq, x + w + 1), got shape {attentions.shape}")
    batch, heads, seq, width = attentions.shape
    token_kind = _kinds_for(global_attention_mask, attention_mask, seq)
    keys, valid = compact_columns(token_kind, window)
    if width != keys.shape[2]:
        raise ValueError(
            f"attentions has {width} columns, expected x + w + 1 = {keys.shape[2]} "
            f"(x={keys.shape[2] - window - 1} global tokens, attention_window={window})"
        )
    x = width - window - 1
    dense = np.zeros((batch, heads, seq, seq), dtype=attentions.dtype)
    b, i, c = np.nonzero(valid & (token_kind == LOCAL)[:, :, None])
    dense[b, :, i, keys[b, i, c]] = attentions[b, :, i, c]

    if x:
        if global_attentions is None:
            raise ValueError(f"global_attentions is None but the batch has {x} global tokens")
        global_attentions = np.asarray(global_attentions)
        if global_attentions.shape[:2] != (batch, heads) or global_attentions.shape[2] < seq or \
                global_attentions.shape[3] != x:
            raise ValueError(
                f"global_attentions must be (batch={batch}, heads={heads}, seq_k>={seq}, x={x}), "
                f"got shape {global_attentions.shape}"
            )
        positions, slot_valid = global_slots(token_kind)
        b, s = np.nonzero(slot_valid)
        dense[b, :, positions[b, s], :] = global_attentions[b, :, :seq, s]
    return dense


def to_compact(dense, global_attention_mask, attention_window, attention_mask=None):
    """Dense (batch, heads, seq, seq) probabilities -> HF's (attentions, global_attentions); see `to_dense`.

    Returns attentions (batch, heads, seq, x + w + 1) with global and padding rows 0 and invalid cells 0
    (`compact_columns`), and global_attentions (batch, heads, seq, x) with unused slots 0. Entries of
    `dense` outside `dense_mask` are dropped, so `to_dense(*to_compact(d), ...)` == d for any d that
    respects the mask, and `to_compact(to_dense(a, g, ...), ...)` == (a, g) for HF-layout arrays.
    """
    window = check_window(attention_window, "attention_window")
    dense = np.asarray(dense)
    if dense.ndim != 4 or dense.shape[2] != dense.shape[3]:
        raise ValueError(f"dense must be (batch, heads, seq, seq), got shape {dense.shape}")
    batch, heads, seq, _ = dense.shape
    token_kind = _kinds_for(global_attention_mask, attention_mask, seq)
    keys, valid = compact_columns(token_kind, window)
    attentions = np.zeros((batch, heads, seq, keys.shape[2]), dtype=dense.dtype)
    b, i, c = np.nonzero(valid & (token_kind == LOCAL)[:, :, None])
    attentions[b, :, i, c] = dense[b, :, i, keys[b, i, c]]

    positions, slot_valid = global_slots(token_kind)
    global_attentions = np.zeros((batch, heads, seq, positions.shape[1]), dtype=dense.dtype)
    b, s = np.nonzero(slot_valid)
    global_attentions[b, :, :, s] = dense[b, :, positions[b, s], :]
    return attentions, global_attentions
