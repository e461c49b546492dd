"""The LED decoder: BART-style post-norm blocks with causal self-attention and cross-attention (SDPA).

Self-attention keys/values are extended through a small `extend(k_new, v_new) -> (k, v)` hook, so the same
layer code serves the HF-style tuple cache of `forward` (concatenate) and the preallocated static cache of
`generate` (write in place). Cross-attention takes precomputed keys/values; when there are fewer key rows than
query rows (beam search), the queries of each source are folded onto the query axis, so every beam reads the
one copy of its source's keys/values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from led_ref.io.config import LEDConfig

from .activations import activation
from .cache_keys import tensor_key
from .encoder import feed_forward, merge_heads, split_heads
from .linear import Linear, linear


def padding_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(batch, keys) 0/1 mask -> additive (batch, 1, 1, keys): 0 where attended, dtype-min where padding."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def causal_bias(queries: int, past: int, dtype: torch.dtype, device) -> torch.Tensor:
    """(1, 1, queries, past + queries) additive: query i (at position past + i) sees keys 0 .. past + i."""
    rows = torch.arange(queries, device=device)[:, None] + past
    cols = torch.arange(past + queries, device=device)[None, :]
    zero = torch.zeros((), dtype=dtype, device=device)
    return torch.where(cols > rows, torch.finfo(dtype).min, zero)[None, None]


def self_attention_bias(queries, past, decoder_attention_mask, dtype, device):
    """HF's rule: no mask at all for a single new token; otherwise causal + padding, both added in `dtype`
    (so a key that is both future and padding gets -inf, as in HF)."""
    if queries == 1:
        return None
    bias = causal_bias(queries, past, dtype, device)
    if decoder_attention_mask is not None:
        bias = bias + padding_bias(decoder_attention_mask, dtype)
    return bias


# Up to this many query rows per head (a decode step: 1 token, or one source's beams folded together), a plain
# matmul + softmax beats CPU flash attention, whose blocking only pays off for long query axes.
_FEW_QUERIES = 16


def few_query_context(q, key, value, bias):
    """softmax(q k^T + bias) v for a few query rows per head (a decode step), as 3-D batched products: one
    `baddbmm` adds the bias inside the score product and the operands are views of the caches (the 4-D `@` of
    the general path costs ~10 reshaping calls per product, which a decode step pays 24 times). q (s, h, n, hd),
    key/value (s, h, keys, hd), bias broadcastable to (s, h, n, keys) or None -> (s, h, n, hd)."""
    s, h, n, hd = q.shape
    keys = key.shape[2]
    queries = q.reshape(s * h, n, hd)
    keys_t = key.transpose(-1, -2).reshape(s * h, hd, keys)  # a view: caches are laid out for it
    if bias is None:
        scores = torch.bmm(queries, keys_t)
    else:
        bias = bias.reshape(1, -1, keys) if bias.shape[0] == 1 and bias.shape[1] == 1 else \
            bias.expand(s, h, bias.shape[2], keys).reshape(s * h, -1, keys)
        scores = torch.baddbmm(bias, queries, keys_t)
    probs = torch.softmax(scores, dim=-1)
    return torch.bmm(probs, value.reshape(s * h, keys, hd)).view(s, h, n, hd)


class DecoderAttention(nn.Module):
    def __init__(self, config: LEDConfig):
        super().__init__()
        d = config.d_model
        self.heads = config.decoder_attention_heads
        self.scaling = (d // self.heads) ** -0.5
        self.dropout = config.attention_dropout
        self.q_proj = Linear(d, d)
        self.k_proj = Linear(d, d)
        self.v_proj = Linear(d, d)
        self.out_proj = Linear(d, d)

    def project_kv(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, keys, d) -> keys, values (batch, heads, keys, head_dim)."""
        return split_heads(self.k_proj(states), self.heads), split_heads(self.v_proj(states), self.heads)

    def project_qkv(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Self-attention's scaled queries, keys and values of `hidden` (rows, queries, d), each (rows, heads,
        queries, head_dim). In inference one GEMM against the three weights stacked (cached, see `_stacked_qkv`)
        replaces three: a decode step reads its 4 beam rows once and makes one oneDNN call per layer instead of
        three. Each output column is the same dot product either way."""
        stacked = self._stacked_qkv(hidden)
        if stacked is None:
            q = split_heads(self.q_proj(hidden) * self.scaling, self.heads)
            return (q, *self.project_kv(hidden))
        q, k, v = linear(hidden, *stacked, packed_for=self).chunk(3, dim=-1)
        return (split_heads(q * self.scaling, self.heads), split_heads(k, self.heads), split_heads(v, self.heads))

    def _stacked_qkv(self, hidden):
        """(weight (3d, d), bias (3d,)) of q_proj, k_proj, v_proj stacked, or None where the three projections
        run separately (autograd recording, torch.compile tracing, a parameter without a bias). Rebuilt whenever
        a parameter is replaced or written in place (its storage or version counter moves), so loading,
        `.to()` and in-place edits are seen; costs 3 d^2 more memory per decoder layer."""
        parts = (self.q_proj, self.k_proj, self.v_proj)
        params = [p for m in parts for p in (m.weight, m.bias)]
        if any(p is None for p in params) or torch.compiler.is_compiling():
            return None
        if torch.is_grad_enabled() and (hidden.requires_grad or any(p.requires_grad for p in params)):
            return None
        key = tuple(tensor_key(p) for p in params)
        if None in key:
            return None  # inference-mode parameters have no version counter to keep a cache honest
        cached = getattr(self, "_qkv_cache", None)
        if cached is None or cached[0] != key:
            # a normal tensor even when called under inference_mode, so its own cache key (the packed copy) works
            with torch.inference_mode(False), torch.no_grad():
                weight = torch.cat([m.weight for m in parts]).contiguous()
                bias = torch.cat([m.bias for m in parts])
            cached = self._qkv_cache = (key, weight, bias)
        return cached[1], cached[2]

    def forward(self, hidden, key, value, bias=None, head_mask=None, output_attentions=False, query=None):
        """hidden (rows, queries, d); key/value (sources, heads, keys, hd) with rows = sources * group; `query`
        (rows, heads, queries, hd): the scaled queries if already projected (`project_qkv`).

        -> output (rows, queries, d), probabilities (rows, heads, queries, keys) or None.
        """
        rows, queries, _ = hidden.shape
        group = rows // key.shape[0]
        q = split_heads(self.q_proj(hidden) * self.scaling, self.heads) if query is None else query
        if group > 1:  # fold each source's beams onto the query axis: (sources, heads, group*queries, hd)
            q = q.reshape(key.shape[0], group, self.heads, queries, -1).transpose(1, 2).flatten(2, 3)
        dropout = self.dropout if self.training else 0.0
        probs = None
        few = q.shape[2] <= _FEW_QUERIES and not self.training
        if few and not output_attentions and head_mask is None:
            context = few_query_context(q, key, value, bias)
        elif output_attentions or few:
            scores = q @ key.transpose(-1, -2)
            if bias is not None:
                scores = scores + bias
            probs = torch.softmax(scores, dim=-1)
            if head_mask is not None:
                probs = probs * head_mask.to(probs.dtype)[None, :, None, None]
            context = F.dropout(probs, dropout, self.training) @ value
            if not output_attentions:
                probs = None
        else:
            context = F.scaled_dot_product_attention(q, key, value, attn_mask=bias, dropout_p=dropout, scale=1.0)
            if head_mask is not None:
                context = context * head_mask.to(context.dtype)[None, :, None, None]
        if group > 1:
            context = context.unflatten(2, (group, queries)).transpose(1, 2).flatten(0, 1)
            if probs is not None:
                probs = probs.unflatten(2, (group, queries)).transpose(1, 2).flatten(0, 1)
        return self.out_proj(merge_heads(context)), probs


def concat_extend(past_k, past_v):
    """The tuple-cache hook: new keys/values are appended to the past ones (or used alone)."""
    def extend(k, v):
        if past_k is None:
            return k, v
        return torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
    return extend


class DecoderLayer(nn.Module):
    def __init__(self, config: LEDConfig):
        super().__init__()
        d = config.d_model
        self.self_attn = DecoderAttention(config)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.encoder_attn = DecoderAttention(config)
        self.encoder_attn_layer_norm = nn.LayerNorm(d)
        self.fc1 = Linear(d, config.decoder_ffn_dim)
        self.fc2 = Linear(config.decoder_ffn_dim, d)
        self.final_layer_norm = nn.LayerNorm(d)
        self.activation_function = config.activation_function
        activation(config.activation_function)  # an unknown name is a ValueError here, not at the first forward
        self.dropout = config.dropout
        self.activation_dropout = config.activation_dropout

    def forward(self, hidden, self_bias, cross_k, cross_v, cross_bias, extend, head_mask=None,
                cross_head_mask=None, output_attentions=False):
        """-> hidden, (self_k, self_v) after extension, self probs, cross probs."""
        q, k, v = self.self_attn.project_qkv(hidden)
        k, v = extend(k, v)
        attn, self_probs = self.self_attn(hidden, k, v, self_bias, head_mask, output_attentions, query=q)
        hidden = self.self_attn_layer_norm(hidden + F.dropout(attn, self.dropout, self.training))
        cross_probs = None
        if cross_k is not None:
            attn, cross_probs = self.encoder_attn(hidden, cross_k, cross_v, cross_bias, cross_head_mask,
                                                  output_attentions)
            hidden = self.encoder_attn_layer_norm(hidden + F.dropout(attn, self.dropout, self.training))
        return feed_forward(self, hidden), (k, v), self_probs, cross_probs


def legacy_cache(past_key_values):
    """Accept HF's tuple layout ((self_k, self_v, cross_k, cross_v) per layer) or a cache object with
    `to_legacy_cache()` (what HF 4.x returns)."""
    if past_key_values is None:
        return None
    if hasattr(past_key_values, "to_legacy_cache"):
        past_key_values = past_key_values.to_legacy_cache()
    if not isinstance(past_key_values, (tuple, list)) or not all(len(p) == 4 for p in past_key_values):
        raise TypeError("past_key_values must be a tuple of (self_k, self_v, cross_k, cross_v) per decoder layer, "
                        f"as returned by a previous call; got {type(past_key_values).__name__}")
    return past_key_values


class LEDDecoder(nn.Module):
    def __init__(self, config: LEDConfig, embed_tokens: nn.Embedding):
        super().__init__()
        self.config = config
        self.embed_tokens = embed_tokens
        self.embed_positions = nn.Embedding(config.max_decoder_position_embeddings, config.d_model)
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.decoder_layers))
        self.layernorm_embedding = nn.LayerNorm(config.d_model)
        self.gradient_checkpointing = False

    def embed(self, input_ids, inputs_embeds, past: int):
        """Token + learned position embeddings (positions past .. past + len - 1, no offset), layer-normed."""
        if inputs_embeds is None:
            inputs_embeds = F.embedding(input_ids, self.embed_tokens.weight, padding_idx=self.config.pad_token_id)
        positions = torch.arange(past, past + inputs_embeds.shape[1], device=inputs_embeds.device)
        hidden = self.layernorm_embedding(inputs_embeds + self.embed_positions(positions))
        return F.dropout(hidden, self.config.dropout, self.training)

    def forward(self, input_ids=None, attention_mask=None, encoder_hidden_states=None, encoder_attention_mask=None,
                head_mask=None, cross_attn_head_mask=None, past_key_values=None, inputs_embeds=None,
                use_cache=False, output_attentions=False, output_hidden_states=False):
        """-> dict with last_hidden_state, past_key_values (tuple layout or None), hidden_states, attentions,
        cross_attentions."""
        past = legacy_cache(past_key_values)
        past_len = past[0][0].shape[2] if past else 0
        hidden = self.embed(input_ids, inputs_embeds, past_len)
        queries = hidden.shape[1]
        dtype, device = hidden.dtype, hidden.device
        self_bias = self_attention_bias(queries, past_len, attention_mask, dtype, device)
        cross_bias = None
        if encoder_hidden_states is not None and encoder_attention_mask is not None:
            cross_bias = padding_bias(encoder_attention_mask, dtype)
        use_cache = use_cache and not (self.gradient_checkpointing and self.training)
        states, self_probs, cross_probs, presents = [], [], [], []
        for i, layer in enumerate(self.layers):
            if output_hidden_states:
                states.append(hidden)
            if self.training and self.config.decoder_layerdrop and torch.rand([]) < self.config.decoder_layerdrop:
                continue
            if past:
                cross_k, cross_v = past[i][2], past[i][3]
            elif encoder_hidden_states is not None:
                cross_k, cross_v = layer.encoder_attn.project_kv(encoder_hidden_states)
            else:
                cross_k = cross_v = None
            extend = concat_extend(*(past[i][:2] if past else (None, None)))
            masks = (None if head_mask is None else head_mask[i],
                     None if cross_attn_head_mask is None else cross_attn_head_mask[i])
            if self.gradient_checkpointing and self.training:
                hidden, kv, sp, cp = checkpoint(layer, hidden, self_bias, cross_k, cross_v, cross_bias, extend,
                                                *masks, output_attentions, use_reentrant=False)
            else:
                hidden, kv, sp, cp = layer(hidden, self_bias, cross_k, cross_v, cross_bias, extend, *masks,
                                           output_attentions)
            presents.append((kv[0], kv[1], cross_k, cross_v))
            self_probs.append(sp)
            cross_probs.append(cp)
        if output_hidden_states:
            states.append(hidden)
        return dict(
            last_hidden_state=hidden,
            past_key_values=tuple(presents) if use_cache else None,
            hidden_states=tuple(states) if output_hidden_states else None,
            attentions=tuple(self_probs) if output_attentions else None,
            cross_attentions=tuple(cross_probs) if output_attentions else None,
        )
