"""LED's encoder self-attention (Longformer): a sliding window plus global tokens, in plain NumPy.

The module opens on the definition, `longformer_attention_definition`: the kernel contract of docs/contract.md
as dense masked attention, one (seq, seq) score matrix per head, masked by `layout.dense_mask`. It is O(seq^2)
in memory and is the function to check against the paper.

The rest computes that same function at scale. `longformer_attention`, the contract's entry point, is the
definition in O(seq x (w + x)) memory (the slab-and-band pass of `led_ref.attention_banded`), tested equal to
it; it can also return the probabilities in HF's compact layout (`led_ref.layout`). `banded_attention` is the
same pass without the contract's `seq % window == 0` rule. `encoder_self_attention` wraps it with the seven
linear projections of `self_attn.*`, exactly as an HF encoder layer calls its attention block.
"""

from __future__ import annotations

import numpy as np

from .attention_banded import (  # the scalable path; its pieces stay importable from here
    QUERY_CHUNK,
    LocalPass,
    banded_attention,
    check_projections,
    gather_band,
    gather_positions,
    global_rows,
    local_chunk,
    local_rows,
    masked_softmax,
    scatter_band,
)
from .functional import linear, merge_heads, softmax, split_heads
from .layout import GLOBAL, check_token_kind, check_window, dense_mask, global_slots

__all__ = [
    "longformer_attention_definition", "longformer_attention", "banded_attention", "encoder_self_attention",
    "PARAM_NAMES", "PROJECTIONS", "QUERY_CHUNK", "LocalPass", "check_projections", "gather_band",
    "gather_positions", "global_rows", "local_chunk", "local_rows", "masked_softmax", "scatter_band",
]


# ------------------------------------------------------------------------------------------ the definition
def longformer_attention_definition(query, key, value, global_query, global_key, global_value, token_kind,
                                    window, return_probs=False):
    """The kernel contract (docs/contract.md) as dense masked attention; O(seq^2), for reading and testing.

    query, key, value, global_query, global_key, global_value: (batch, heads, seq, head_dim) floats, the
        queries already scaled by head_dim**-0.5. token_kind: (batch, seq) 0 padding / 1 local / 2 global.
        window: w, even >= 2 (here seq need not be a multiple of it).
    Returns context (batch, heads, seq, head_dim); with return_probs also the probabilities
    (batch, heads, seq, seq), row = query, column = key.

    Each row is one softmax over the keys `layout.dense_mask` allows it:
      local row    scores query[i] . key[j], keys |i - j| <= w/2 or global, never padding; context from value
      global row   scores global_query[i] . global_key[j], every non-padding key; context from global_value
      padding row  no key: probabilities and context 0
    Six tokens, w = 2, token 1 global, token 5 padding (# = query i attends key j):

        token_kind   1 2 1 1 1 0
        key          0 1 2 3 4 5
        query 0      # # . . . .      local: window 0..1
              1      # # # # # .      global: every non-padding key
              2      . # # # . .      local: window 1..3 (key 1 is global, counted once)
              3      . # # # # .      local: window 2..4, plus global key 1
              4      . # . # # .      local: window 3..5 minus padding, plus global key 1
              5      . . . . . .      padding: nothing
    """
    token_kind = check_token_kind(token_kind)
    allowed = dense_mask(token_kind, window)[:, None]  # (batch, 1, seq, seq): the same for every head
    global_row = (token_kind == GLOBAL)[:, None, :, None]  # (batch, 1, seq, 1)
    local_scores = query @ np.swapaxes(key, -1, -2)  # (batch, heads, seq, seq)
    global_scores = global_query @ np.swapaxes(global_key, -1, -2)
    scores = np.where(global_row, global_scores, local_scores)
    with np.errstate(invalid="ignore"):  # a padding row allows no key: its softmax is NaN, zeroed by the where
        probs = np.where(allowed, softmax(np.where(allowed, scores, -np.inf)), 0.0)
    context = np.where(global_row, probs @ global_value, probs @ value)
    return (context, probs) if return_probs else context


# ------------------------------------------------------------------------------------------ the scalable path
def longformer_attention(query, key, value, global_query, global_key, global_value, token_kind, window,
                         head_mask=None, return_probs=False):
    """The attention-kernel contract's entry point (docs/contract.md): `longformer_attention_definition`
    computed in O(seq x (w + x)) memory (`attention_banded`), tested equal to it.

    query, key, value: (batch, heads, seq, head_dim) local projections, query already scaled by
        head_dim**-0.5. global_query, global_key, global_value: the global projections of every token
        (global_query scaled too; only its rows at global tokens are read).
    token_kind: int (batch, seq), 0 padding / 1 local / 2 global (`layout.token_kinds`).
    window: even >= 2; seq must be a multiple of it (the contract; `banded_attention` is the general pass).
    head_mask: (heads,) multiplies the probabilities of local and global rows (also the returned ones).
    Returns context (batch, heads, seq, head_dim), zero on padding rows; with return_probs also
    attentions (batch, heads, seq, x + w + 1) and global_attentions (batch, heads, seq, x) in HF's compact
    layout (`layout.compact_columns`), unused global slots 0.
    """
    window = check_window(window)
    seq = np.shape(query)[2] if np.ndim(query) == 4 else None
    if seq is not None and seq % window:
        raise ValueError(f"seq={seq} must be a multiple of window={window} (pad with layout.pad_to_window)")
    return banded_attention(query, key, value, global_query, global_key, global_value, token_kind, window,
                            head_mask=head_mask, return_probs=return_probs)


# ------------------------------------------------------------------------------------------ the layer's block
PROJECTIONS = ("query", "key", "value", "query_global", "key_global", "value_global")
PARAM_NAMES = tuple(f"longformer_self_attn.{p}.{t}" for p in PROJECTIONS for t in ("weight", "bias")) + (
    "output.weight", "output.bias",
)


def encoder_self_attention(hidden, params, token_kind, window, num_heads, layer_head_mask=None,
                           output_attentions=False):
    """One encoder layer's `self_attn` block: projections, Longformer attention, output projection.

    hidden: (batch, seq, d_model) with seq already padded (to a multiple of the largest window; it need
        not be a multiple of this layer's `window`).
    params: HF names relative to `self_attn.` (`PARAM_NAMES`), weights (out, in).
    token_kind: (batch, seq) 0/1/2. layer_head_mask: (num_heads,) or None.
    Returns (output (batch, seq, d_model), attentions, global_attentions): the probabilities as in
    `longformer_attention` when output_attentions, else None; global_attentions is also None when the
    batch has no global token (as HF's encoder). Padding rows output the output-projection bias.
    """
    hidden = np.asarray(hidden)
    if hidden.ndim != 3:
        raise ValueError(f"hidden must be (batch, seq, d_model), got shape {hidden.shape}")
    missing = [name for name in PARAM_NAMES if name not in params]
    if missing:
        raise ValueError(f"params is missing {missing} (names relative to 'self_attn.')")
    d_model = hidden.shape[2]
    if isinstance(num_heads, bool) or not isinstance(num_heads, (int, np.integer)) or num_heads < 1 \
            or d_model % num_heads:
        raise ValueError(f"num_heads must be a positive divisor of d_model={d_model}, got {num_heads!r}")
    token_kind = check_token_kind(token_kind)
    p = {name: np.asarray(params[name]) for name in PARAM_NAMES}
    scale = (d_model // num_heads) ** -0.5

    def project(name: str, x: np.ndarray) -> np.ndarray:
        return split_heads(linear(x, p, f"longformer_self_attn.{name}"), num_heads)

    query = project("query", hidden) * scale
    key, value = project("key", hidden), project("value", hidden)
    positions, slot_valid = global_slots(token_kind)
    has_global = positions.shape[1] > 0
    if has_global:
        # Only global tokens ever read global_query; every token is a key/value of the global rows.
        global_query = np.zeros_like(query)
        b, s = np.nonzero(slot_valid)
        global_query[b, :, positions[b, s]] = project("query_global", hidden[b, positions[b, s]][:, None])[:, :, 0]
        global_query *= scale
        global_key, global_value = project("key_global", hidden), project("value_global", hidden)
    else:
        global_query, global_key, global_value = query, key, value  # never read without global tokens

    result = banded_attention(query, key, value, global_query, global_key, global_value, token_kind, window,
                              head_mask=layer_head_mask, return_probs=output_attentions)
    context, attentions, global_attentions = result if output_attentions else (result, None, None)
    output = linear(merge_heads(context), p, "output")
    return output, attentions, (global_attentions if has_global else None)
