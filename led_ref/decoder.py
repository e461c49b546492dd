"""LED's decoder: BART-style post-LN layers with causal self-attention, cross-attention and a KV cache.

    y0 = LN_emb(shared[ids] + pos[past .. past+t))
    y  = LN(y + self_attn(y))                  causal, masked by decoder_attention_mask
    y  = LN(y + cross_attn(y, encoder_out))    masked by the encoder's attention_mask
    y  = LN(y + fc2(act(fc1(y))))

Masks are additive biases as in HF: 0 where allowed and the dtype's most negative finite number where not.
Two reasons to mask a key (causal and padding) add up to -inf. A row with no allowed key therefore spreads
its probability evenly over the keys masked for exactly one reason, HF's behaviour, which this spec keeps
(it only happens for a fully padded encoder row or a left-padded decoder row).

The cache (`past_key_values`) is a tuple with one entry per layer, (self_k, self_v, cross_k, cross_v),
each (batch, heads, seq, head_dim): HF's legacy layout. With a cache the cross-attention keys and values
are read from it, not recomputed.

Generation (`decoder_step`) keeps the two halves apart: the self-attention keys/values grow by one token
per step and belong to a beam; the cross-attention keys/values (`CrossAttentionCache`) depend only on the
source, so they are computed once per source and every beam of that source reads them.

`weights` are the base model's (names without the `led.` prefix).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .functional import activation, embedding, ffn, layer_norm, linear, merge_heads, softmax, split_heads, subtree

LayerCache = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # HF's legacy (self_k, self_v, cross_k, cross_v)
SelfAttentionCache = tuple[np.ndarray, np.ndarray]  # the keys and values of the tokens decoded so far


# ------------------------------------------------------------------------------------------- masks
def masked_bias(allowed: np.ndarray, dtype) -> np.ndarray:
    """0 where `allowed`, the most negative finite value of `dtype` elsewhere."""
    return np.where(allowed, 0.0, np.finfo(dtype).min).astype(dtype)


def causal_bias(tgt_len: int, past_len: int, dtype) -> np.ndarray:
    """(tgt, past + tgt): query i (at absolute position past + i) may see keys 0 .. past + i."""
    keys = np.arange(past_len + tgt_len)
    queries = past_len + np.arange(tgt_len)
    return masked_bias(keys[None, :] <= queries[:, None], dtype)


def padding_bias(mask: np.ndarray, dtype) -> np.ndarray:
    """(batch, 1, 1, keys) from a 0/1 key mask (batch, keys)."""
    return masked_bias(mask[:, None, None, :] != 0, dtype)


def self_attention_bias(
    decoder_attention_mask: np.ndarray | None, tgt_len: int, past_len: int, dtype
) -> np.ndarray | None:
    """The additive mask of the decoder self-attention, (batch | 1, 1, tgt, past + tgt), or None.

    As in HF, a single new token (tgt_len == 1) gets no mask at all: it may see every cached key, and
    `decoder_attention_mask` is ignored. Otherwise the mask must cover past + tgt keys.
    """
    if tgt_len == 1:
        return None
    bias = causal_bias(tgt_len, past_len, dtype)[None, None]
    if decoder_attention_mask is not None:
        if decoder_attention_mask.shape[1] != past_len + tgt_len:
            raise ValueError(
                f"decoder_attention_mask covers {decoder_attention_mask.shape[1]} positions but the decoder "
                f"sees {past_len} cached + {tgt_len} new = {past_len + tgt_len}"
            )
        with np.errstate(over="ignore"):  # min + min = -inf on purpose (see module docstring)
            bias = bias + padding_bias(decoder_attention_mask, dtype)
    return bias


# ------------------------------------------------------------------------------------------- attention
def scaled_dot_product_attention(
    query: np.ndarray,
    key: np.ndarray,
    value: np.ndarray,
    bias: np.ndarray | None,
    head_mask: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """softmax(q k^T + bias) * head_mask, then @ v; the query is already scaled.

    query (..., heads, tgt, hd), key/value (..., heads, src, hd), bias broadcastable to
    (..., heads, tgt, src), head_mask (heads,) -> (context (..., heads, tgt, hd), probs (..., heads, tgt, src)).
    """
    scores = query @ np.swapaxes(key, -1, -2)
    if bias is not None:
        scores = scores + bias
    probs = softmax(scores, axis=-1)
    if head_mask is not None:
        probs = probs * head_mask[:, None, None]
    return probs @ value, probs


def project_kv(source: np.ndarray, params: Mapping[str, np.ndarray], num_heads: int) -> tuple[np.ndarray, np.ndarray]:
    """Keys and values of `source` (batch, src, d), each (batch, heads, src, head_dim)."""
    return (split_heads(linear(source, params, "k_proj"), num_heads),
            split_heads(linear(source, params, "v_proj"), num_heads))


def multi_head_attention(
    hidden: np.ndarray,
    params: Mapping[str, np.ndarray],
    key: np.ndarray,
    value: np.ndarray,
    bias: np.ndarray | None,
    num_heads: int,
    head_mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Queries from `hidden` (rows, tgt, d) against given keys/values (sources, heads, src, head_dim), bias
    broadcastable to (sources, heads, tgt, src) -> (output (rows, tgt, d), probs (rows, heads, tgt, src)).

    rows = sources * beams: each run of `beams` consecutive rows (the beams of one source) reads its source's
    keys and values, so those are stored once per source, not once per beam. Outside beam search beams = 1.
    """
    head_dim = hidden.shape[-1] // num_heads
    sources = key.shape[0]
    query = split_heads(linear(hidden, params, "q_proj") * head_dim**-0.5, num_heads)
    by_source = query.reshape(sources, -1, *query.shape[1:])  # (sources, beams, heads, tgt, head_dim)
    # key[:, None] broadcasts one source's keys over its beams: the same products as keys repeated per beam
    context, probs = scaled_dot_product_attention(
        by_source, key[:, None], value[:, None], None if bias is None else bias[:, None], head_mask
    )
    context = context.reshape(query.shape)
    probs = probs.reshape(query.shape[0], *probs.shape[2:])  # (rows, heads, tgt, src)
    return linear(merge_heads(context), params, "out_proj"), probs


# ------------------------------------------------------------------------------------------- cross-attention cache
@dataclass(frozen=True)
class CrossAttentionCache:
    """The cross-attention keys and values of the encoder output: per decoder layer one array each,
    (sources, heads, src, head_dim). They depend on the source alone, so generation computes them once per
    source (`cross_attention_cache`) and every step and every beam of that source reads them."""

    keys: tuple[np.ndarray, ...]
    values: tuple[np.ndarray, ...]

    @classmethod
    def from_past(cls, past_key_values: tuple[LayerCache, ...]) -> CrossAttentionCache:
        """The cross halves of an HF-layout cache (self_k, self_v, cross_k, cross_v) per layer."""
        return cls(tuple(entry[2] for entry in past_key_values), tuple(entry[3] for entry in past_key_values))


def cross_attention_cache(weights: Mapping[str, np.ndarray], config, encoder_hidden: np.ndarray) -> CrossAttentionCache:
    """Every decoder layer's cross-attention keys and values of `encoder_hidden` (sources, src, d)."""
    layers = [project_kv(encoder_hidden, subtree(weights, f"decoder.layers.{layer}.encoder_attn."),
                         config.decoder_attention_heads) for layer in range(config.decoder_layers)]
    return CrossAttentionCache(tuple(key for key, _ in layers), tuple(value for _, value in layers))


# ------------------------------------------------------------------------------------------- layers
def decoder_embeddings(weights: Mapping[str, np.ndarray], embeds: np.ndarray, past_len: int) -> np.ndarray:
    """LN_emb(embeds + pos[past .. past + tgt)): token embeddings (batch, tgt, d) -> the first layer's input."""
    positions = weights["decoder.embed_positions.weight"][past_len:past_len + embeds.shape[1]]
    return layer_norm(embeds + positions, weights, "decoder.layernorm_embedding")


def decoder_layer(
    hidden: np.ndarray,
    params: Mapping[str, np.ndarray],
    self_cache: SelfAttentionCache | None,
    cross_key: np.ndarray,
    cross_value: np.ndarray,
    self_bias: np.ndarray | None,
    cross_bias: np.ndarray | None,
    num_heads: int,
    act,
    self_head_mask: np.ndarray | None = None,
    cross_head_mask: np.ndarray | None = None,
) -> tuple[np.ndarray, SelfAttentionCache, np.ndarray, np.ndarray]:
    """One decoder layer: hidden (rows, tgt, d) -> (hidden, self-attention keys/values of past + new tokens,
    self probs, cross probs).

    self_cache: (keys, values) (rows, heads, past, head_dim) or None; cross_key/cross_value (sources, heads,
    src, head_dim) with rows = sources * beams (see `multi_head_attention`).
    """
    self_params = subtree(params, "self_attn.")
    key, value = project_kv(hidden, self_params, num_heads)
    if self_cache is not None:
        key = np.concatenate([self_cache[0], key], axis=2)
        value = np.concatenate([self_cache[1], value], axis=2)
    out, self_probs = multi_head_attention(hidden, self_params, key, value, self_bias, num_heads, self_head_mask)
    hidden = layer_norm(hidden + out, params, "self_attn_layer_norm")

    out, cross_probs = multi_head_attention(hidden, subtree(params, "encoder_attn."), cross_key, cross_value,
                                            cross_bias, num_heads, cross_head_mask)
    hidden = layer_norm(hidden + out, params, "encoder_attn_layer_norm")

    hidden = layer_norm(hidden + ffn(hidden, params, act), params, "final_layer_norm")
    return hidden, (key, value), self_probs, cross_probs


def decoder_forward(
    weights: Mapping[str, np.ndarray],
    config,
    input_ids: np.ndarray | None = None,
    inputs_embeds: np.ndarray | None = None,
    attention_mask: np.ndarray | None = None,
    encoder_hidden_states: np.ndarray | None = None,
    encoder_attention_mask: np.ndarray | None = None,
    head_mask: np.ndarray | None = None,
    cross_attn_head_mask: np.ndarray | None = None,
    past_key_values: tuple[LayerCache, ...] | None = None,
) -> dict:
    """The whole decoder on checked inputs.

    input_ids (batch, tgt) or inputs_embeds (batch, tgt, d); attention_mask (batch, past + tgt) or None;
    encoder_hidden_states (batch, src, d); encoder_attention_mask (batch, src) or None; head masks
    (decoder_layers, heads) or None. Returns a dict with last_hidden_state (batch, tgt, d), past_key_values
    (the updated cache), hidden_states (layers + 1 of (batch, tgt, d)), attentions and cross_attentions
    (per layer, (batch, heads, tgt, past + tgt) and (batch, heads, tgt, src)).
    """
    embeds = embedding(input_ids, weights["shared.weight"]) if inputs_embeds is None else inputs_embeds
    dtype = embeds.dtype
    tgt = embeds.shape[1]
    past_len = 0 if past_key_values is None else past_key_values[0][0].shape[2]
    hidden = decoder_embeddings(weights, embeds, past_len)

    self_bias = self_attention_bias(attention_mask, tgt, past_len, dtype)
    cross_bias = None if encoder_attention_mask is None else padding_bias(encoder_attention_mask, dtype)
    cross = (cross_attention_cache(weights, config, encoder_hidden_states) if past_key_values is None
             else CrossAttentionCache.from_past(past_key_values))
    act = activation(config.activation_function)
    states, cache, self_probs, cross_probs = [], [], [], []
    for layer in range(config.decoder_layers):
        states.append(hidden)
        hidden, (key, value), p_self, p_cross = decoder_layer(
            hidden, subtree(weights, f"decoder.layers.{layer}."),
            None if past_key_values is None else past_key_values[layer][:2], cross.keys[layer], cross.values[layer],
            self_bias, cross_bias, config.decoder_attention_heads, act,
            self_head_mask=None if head_mask is None else head_mask[layer],
            cross_head_mask=None if cross_attn_head_mask is None else cross_attn_head_mask[layer],
        )
        cache.append((key, value, cross.keys[layer], cross.values[layer]))
        self_probs.append(p_self)
        cross_probs.append(p_cross)
    states.append(hidden)
    return {
        "last_hidden_state": hidden,
        "past_key_values": tuple(cache),
        "hidden_states": tuple(states),
        "attentions": tuple(self_probs),
        "cross_attentions": tuple(cross_probs),
    }


def decoder_step(
    weights: Mapping[str, np.ndarray],
    config,
    tokens: np.ndarray,
    self_caches: tuple[SelfAttentionCache, ...] | None,
    cross: CrossAttentionCache,
    encoder_attention_mask: np.ndarray | None,
) -> tuple[np.ndarray, tuple[SelfAttentionCache, ...]]:
    """One generation step: the next token of every row through the decoder, against the caches.

    tokens (rows,) with rows = sources * beams, the beams of a source adjacent; self_caches per layer
    (keys, values) (rows, heads, past, head_dim), None at the first step; cross from `cross_attention_cache`
    (sources, ...); encoder_attention_mask (sources, src) or None. -> (hidden (rows, d), self_caches extended
    by this token). A single new token needs no self-attention mask (it may see every cached key).
    """
    embeds = embedding(tokens[:, None], weights["shared.weight"])
    hidden = decoder_embeddings(weights, embeds, 0 if self_caches is None else self_caches[0][0].shape[2])
    cross_bias = None if encoder_attention_mask is None else padding_bias(encoder_attention_mask, embeds.dtype)
    act = activation(config.activation_function)
    extended = []
    for layer in range(config.decoder_layers):
        hidden, self_cache, _, _ = decoder_layer(
            hidden, subtree(weights, f"decoder.layers.{layer}."), None if self_caches is None else self_caches[layer],
            cross.keys[layer], cross.values[layer], self_bias=None, cross_bias=cross_bias,
            num_heads=config.decoder_attention_heads, act=act,
        )
        extended.append(self_cache)
    return hidden[:, -1], tuple(extended)
