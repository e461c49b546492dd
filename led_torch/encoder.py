"""The LED encoder: Longformer self-attention blocks behind a pluggable attention backend.

Module attribute names follow HF's checkpoint names exactly (`layers.0.self_attn.longformer_self_attn.query`,
`layers.0.self_attn.output`, ...), so `state_dict()` keys are HF's with no mapping table.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from led_ref.io.config import LEDConfig
from led_ref.io.lengths import padded_length
from led_ref.io.outputs import LEDEncoderBaseModelOutput

from . import backends
from .activations import activation
from .backends import BACKENDS, attend, resolve_backend
from .backends.banded import banded_longformer_attention
from .backends.banded_flash_cpu import MaskCache
from .backends.rule import (
    GLOBAL,
    PADDING,
    at_global_tokens,
    gather_rows,
    global_rows_from_states,
    global_rows_pay_from_states,
    global_slots,
    rows_where,
    token_kinds,
)
from .linear import Linear
from .validation import (
    as_model_dtype,
    check_embeds,
    check_exactly_one,
    check_flag,
    check_head_mask,
    check_ids,
    check_length,
    check_mask,
)


def effective_window(window: int, seq_len: int) -> int:
    """The narrowest window that attends exactly as `window` over `seq_len` real tokens: once the one-sided
    reach w/2 covers seq_len - 1, every real key is already in reach. (led_torch's own copy of the rule, so the
    two packages narrow independently and the parity checks compare the results.)"""
    return min(window, 2 * max(seq_len - 1, 1))


def widen_window_columns(probs: torch.Tensor, narrow: int, wide: int) -> torch.Tensor:
    """Compact probabilities computed at window `narrow` in the layout of window `wide`: the window columns
    centred, zeros around (as `led_ref.layout.widen_window_columns`)."""
    if narrow == wide:
        return probs
    x = probs.shape[-1] - narrow - 1
    side = (wide - narrow) // 2
    return torch.cat([probs[..., :x], F.pad(probs[..., x:], (side, side))], dim=-1)


def split_heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    """(batch, seq, d_model) -> (batch, heads, seq, head_dim)."""
    b, n, d = t.shape
    return t.view(b, n, heads, d // heads).transpose(1, 2)


def merge_heads(t: torch.Tensor) -> torch.Tensor:
    """(batch, heads, seq, head_dim) -> (batch, seq, d_model)."""
    b, h, n, hd = t.shape
    return t.transpose(1, 2).reshape(b, n, h * hd)


def apply_head_mask(head_mask, context, probs, global_probs):
    """Scale each head by its head_mask entry (heads,): a per-head scalar on the probabilities is the same
    scalar on that head's context. probs/global_probs may be None (not asked for)."""
    if head_mask is None:
        return context, probs, global_probs
    m = head_mask.to(context.dtype)[None, :, None, None]
    return (context * m, None if probs is None else probs * m,
            None if global_probs is None else global_probs * m)


# Dtypes whose CPU inference takes the global rows from the hidden states (float16 stays on the projections).
_STATES_DTYPES = (torch.float32, torch.float64, torch.bfloat16)


class LongformerSelfAttention(nn.Module):
    """Six projections (local and global query/key/value) and one call to the attention backend."""

    def __init__(self, config: LEDConfig, layer: int):
        super().__init__()
        d = config.d_model
        self.heads = config.encoder_attention_heads
        self.head_dim = d // self.heads
        self.window = config.layer_windows[layer]
        self.dropout = config.attention_dropout
        for name in ("query", "key", "value", "query_global", "key_global", "value_global"):
            setattr(self, name, Linear(d, d))
        self.backend = None  # set by the model: "banded", "flex", "triton" or None for auto
        self.strict = False  # auto raises instead of falling back (set by the model)

    def forward(self, hidden, token_kind, any_global: bool, output_attentions: bool, window: int | None = None,
                mask_cache: MaskCache | None = None):
        """hidden (batch, seq, d) -> context (batch, heads, seq, head_dim), attentions, global_attentions.

        `window`: run at this narrower window, which attends exactly as the layer's own over the input
        (`effective_window`); attentions come back in the layout of the layer's own window. `mask_cache`: the
        forward's masks, shared by its layers (the encoder makes one per forward)."""
        run = window or self.window
        scale = math.sqrt(self.head_dim)
        q = split_heads(self.query(hidden) / scale, self.heads)
        k = split_heads(self.key(hidden), self.heads)
        v = split_heads(self.value(hidden), self.heads)
        dropout = self.dropout if self.training else 0.0
        if any_global:
            slots = global_slots(token_kind)
            if self._takes_global_rows_from_states(hidden, slots, output_attentions or dropout > 0):
                queries = split_heads(self._global_query_rows(hidden, slots) / scale, self.heads)  # (b, h, x, hd)
                global_context = self._global_rows_from_states(queries, hidden, token_kind, slots)
                # q/k/v stand in for the global projections, which the backend does not read given the global rows
                backends.USAGE.record("banded", q)
                return banded_longformer_attention(q, k, v, q, k, v, token_kind, run, global_context=global_context,
                                                   mask_cache=mask_cache), None, None
            gq = split_heads(self._global_queries(hidden, token_kind, slots) / scale, self.heads)
            gk = split_heads(self.key_global(hidden), self.heads)
            gv = split_heads(self.value_global(hidden), self.heads)
        else:
            gq, gk, gv = q, k, v  # never read: no row has a global token
        if output_attentions or dropout:
            # Only the banded backend hands back probabilities and drops them out in training; a model that
            # named another one is told so rather than silently served by banded.
            resolve_backend(self.backend, hidden.device, hidden.dtype, need_probs=True)
            backends.USAGE.record("banded", q)
            out = banded_longformer_attention(q, k, v, gq, gk, gv, token_kind, run,
                                              return_probs=output_attentions, dropout_p=dropout,
                                              training=self.training)
            if not output_attentions:
                return out, None, None
            context, probs, global_probs = out
            return context, widen_window_columns(probs, run, self.window), global_probs
        need_grad = torch.is_grad_enabled() and hidden.requires_grad
        args = (q, k, v, gq, gk, gv, token_kind, run)
        if self.backend in (None, "auto"):
            # Falls back to the next backend (with a one-time warning) when one cannot serve the call.
            return attend("auto", *args, need_grad=need_grad, strict=self.strict, mask_cache=mask_cache), None, None
        return attend(self.backend, *args, need_grad=need_grad, mask_cache=mask_cache), None, None

    def _global_rows_from_states(self, queries, hidden, token_kind, slots):
        """`rule.global_rows_from_states` with this layer's global key/value weights. bfloat16 runs it in float32:
        its matmuls are x rows per head (cheap), and rounding the pulled-back queries and both sums to bfloat16
        would add error the projected path does not have."""
        weights = (self.key_global.weight, self.key_global.bias, self.value_global.weight, self.value_global.bias)
        if hidden.dtype != torch.bfloat16:
            return global_rows_from_states(queries, hidden, *weights, token_kind, slots)
        wide = [t.float() for t in (queries, hidden, *weights)]
        return global_rows_from_states(*wide, token_kind, slots).to(hidden.dtype)

    def _takes_global_rows_from_states(self, hidden, slots, probs_or_dropout: bool) -> bool:
        """Whether this call's global rows come from `rule.global_rows_from_states` (no global key/value
        projection of every token): CPU inference through the banded backend (what "auto" takes on CPU), float32,
        float64 or bfloat16, no probabilities or dropout, and few enough global tokens that it pays. Then two of
        the layer's six seq x d x d projections (key_global, value_global) are never made."""
        if probs_or_dropout or hidden.device.type != "cpu" or hidden.dtype not in _STATES_DTYPES:
            return False
        banded = self.backend == "banded" or (self.backend in (None, "auto")
                                              and backends.auto_is_banded_only(hidden.device.type))
        if not banded or self.key_global.bias is None or self.value_global.bias is None:
            return False
        if torch.is_grad_enabled() and (hidden.requires_grad or self.key_global.weight.requires_grad):
            return False
        most_globals = slots[0].shape[1]  # the slots of the row with the most global tokens
        return global_rows_pay_from_states(most_globals, self.heads, hidden.shape[-1])

    def _global_query_rows(self, hidden, slots):
        """query_global of the global tokens only, in slot order (batch, x, d)."""
        return self.query_global(gather_rows(hidden[:, None], slots[0])[:, 0])

    def _global_queries(self, hidden, token_kind, slots):
        """query_global of the global tokens at their positions (zeros elsewhere: no backend reads them), saving
        one of the six seq x d x d projections."""
        rows = self._global_query_rows(hidden, slots)
        return rows_where(at_global_tokens(rows[:, None], token_kind), token_kind == GLOBAL)[:, 0]


class EncoderAttention(nn.Module):
    def __init__(self, config: LEDConfig, layer: int):
        super().__init__()
        self.longformer_self_attn = LongformerSelfAttention(config, layer)
        self.output = Linear(config.d_model, config.d_model)

    def forward(self, hidden, token_kind, any_global, head_mask, output_attentions, window=None, mask_cache=None):
        context, probs, global_probs = self.longformer_self_attn(hidden, token_kind, any_global, output_attentions,
                                                                 window, mask_cache)
        context, probs, global_probs = apply_head_mask(head_mask, context, probs, global_probs)
        return self.output(merge_heads(context)), probs, global_probs


# CPU inference runs the feed-forward block over this many rows (tokens) at a time: 512 x 3072 floats (6 MB)
# stay in cache between fc1, the activation and fc2 (timings in docs/performance.md). Peak memory is set by the
# attention step, not the FFN, so it does not change.
_FFN_ROWS = 512


def feed_forward(layer: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """The post-norm feed-forward block of an encoder or decoder layer: fc1, activation, fc2, residual, final
    layer norm (activation and output dropout in train mode)."""
    ff = F.dropout(layer.fc1(hidden, activation=layer.activation_function), layer.activation_dropout,
                   layer.training)
    return layer.final_layer_norm(hidden + F.dropout(layer.fc2(ff), layer.dropout, layer.training))


class EncoderLayer(nn.Module):
    """Post-layer-norm block: attention, residual, norm; feed-forward, residual, norm."""

    def __init__(self, config: LEDConfig, layer: int):
        super().__init__()
        d = config.d_model
        self.self_attn = EncoderAttention(config, layer)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.fc1 = Linear(d, config.encoder_ffn_dim)
        self.fc2 = Linear(config.encoder_ffn_dim, d)
        self.final_layer_norm = nn.LayerNorm(d)
        self.activation_function = config.activation_function
        activation(config.activation_function)  # an unknown name is a ValueError here, not at the first forward
        self.dropout = config.dropout
        self.activation_dropout = config.activation_dropout

    def forward(self, hidden, token_kind, any_global: bool, head_mask=None, output_attentions: bool = False,
                window: int | None = None, mask_cache: MaskCache | None = None):
        attn, probs, global_probs = self.self_attn(hidden, token_kind, any_global, head_mask, output_attentions,
                                                   window, mask_cache)
        hidden = self.self_attn_layer_norm(hidden + F.dropout(attn, self.dropout, self.training))
        inference = not self.training and not (torch.is_grad_enabled() and hidden.requires_grad)
        if not inference or hidden.device.type != "cpu" or hidden.shape[0] * hidden.shape[1] <= _FFN_ROWS:
            hidden = feed_forward(self, hidden)
        else:
            # CPU inference: row blocks keep the (rows, ffn) activation in cache; every op here is row-wise,
            # so the blocks change nothing but the GEMM shapes.
            rows = hidden.reshape(-1, hidden.shape[-1])
            out = torch.empty_like(rows)
            for start in range(0, rows.shape[0], _FFN_ROWS):
                out[start:start + _FFN_ROWS] = feed_forward(self, rows[start:start + _FFN_ROWS])
            hidden = out.view(hidden.shape)
        if hidden.dtype == torch.float16 and not torch.isfinite(hidden).all():
            # fp16 overflow guard (HF does the same): clamp instead of propagating inf.
            limit = torch.finfo(torch.float16).max - 1000
            hidden = hidden.clamp(-limit, limit)
        return hidden, probs, global_probs


class LEDEncoder(nn.Module):
    def __init__(self, config: LEDConfig, embed_tokens: nn.Embedding):
        super().__init__()
        self.config = config
        self.embed_tokens = embed_tokens
        self.embed_positions = nn.Embedding(config.max_encoder_position_embeddings, config.d_model)
        self.layers = nn.ModuleList(EncoderLayer(config, i) for i in range(config.encoder_layers))
        self.layernorm_embedding = nn.LayerNorm(config.d_model)
        self.gradient_checkpointing = False

    def set_attn_implementation(self, name: str | None, strict: bool = False) -> None:
        if name not in (None, "auto", *BACKENDS):
            raise ValueError(f"attn_implementation must be one of auto, {', '.join(BACKENDS)}; got {name!r}")
        if not isinstance(strict, bool):
            raise TypeError(f"strict must be a bool, got {type(strict).__name__}")
        for layer in self.layers:
            layer.self_attn.longformer_self_attn.backend = name
            layer.self_attn.longformer_self_attn.strict = strict

    def embed(self, input_ids, inputs_embeds, padded: int):
        """Token + position embeddings of the sequence right-padded to `padded` tokens. (batch, padded, d)."""
        pad_id = self.config.pad_token_id
        weight = self.embed_tokens.weight
        if inputs_embeds is None:
            input_ids = F.pad(input_ids, (0, padded - input_ids.shape[1]), value=pad_id)
            inputs_embeds = F.embedding(input_ids, weight, padding_idx=pad_id)
        elif padded > inputs_embeds.shape[1]:
            fill = torch.full((inputs_embeds.shape[0], padded - inputs_embeds.shape[1]), pad_id,
                              device=inputs_embeds.device)
            inputs_embeds = torch.cat([inputs_embeds, F.embedding(fill, weight, padding_idx=pad_id)], dim=1)
        # Positions past the table only ever belong to window padding, which never reaches an output.
        positions = torch.arange(padded, device=inputs_embeds.device).clamp(max=self.embed_positions.num_embeddings - 1)
        return inputs_embeds + self.embed_positions(positions)

    def forward(self, input_ids=None, attention_mask=None, global_attention_mask=None, head_mask=None,
                inputs_embeds=None, output_attentions=False, output_hidden_states=False, return_dict=True):
        """Encoder outputs: last_hidden_state (batch, seq, d); hidden_states, attentions (query axis cut back to
        seq), global_attentions (key axis padded to a multiple of the largest window, as HF)."""
        config = self.config
        check_exactly_one("input_ids", input_ids, "inputs_embeds", inputs_embeds)
        if input_ids is not None:
            check_ids("input_ids", input_ids, config.vocab_size)
            batch, seq = input_ids.shape
            device = input_ids.device
        else:
            check_embeds("inputs_embeds", inputs_embeds, config.d_model)
            inputs_embeds = as_model_dtype("inputs_embeds", inputs_embeds, self.embed_tokens.weight.dtype)
            batch, seq = inputs_embeds.shape[:2]
            device = inputs_embeds.device
        check_mask("attention_mask", attention_mask, (batch, seq))
        check_mask("global_attention_mask", global_attention_mask, (batch, seq))
        check_head_mask("head_mask", head_mask, config.encoder_layers, config.encoder_attention_heads)
        check_length("input_ids" if input_ids is not None else "inputs_embeds", seq,
                     config.max_encoder_position_embeddings, "max_encoder_position_embeddings")
        output_attentions = bool(check_flag("output_attentions", output_attentions))
        output_hidden_states = bool(check_flag("output_hidden_states", output_hidden_states))
        # Windows wider than the input attend as a narrower one does: run at that width on the length padded
        # to it, so a 16,384 window costs a short input what the input's length costs (led_ref does the same).
        windows = [effective_window(w, seq) for w in config.layer_windows]
        window = max(windows, default=effective_window(config.max_window, seq))
        padded = padded_length(seq, window)
        hf_padded = padded_length(seq, config.max_window)
        if attention_mask is None:
            attention_mask = torch.ones(batch, seq, dtype=torch.long, device=device)
        kind = F.pad(token_kinds(attention_mask, global_attention_mask), (0, padded - seq), value=PADDING)
        any_global = bool((kind == GLOBAL).any())

        hidden = self.layernorm_embedding(self.embed(input_ids, inputs_embeds, padded))
        hidden = F.dropout(hidden, config.dropout, self.training)
        masks = MaskCache()  # the layers' shared attention masks, dropped with this forward
        states, attentions, global_attentions = [], [], []
        for i, layer in enumerate(self.layers):
            if output_hidden_states:
                states.append(hidden)
            if self.training and config.encoder_layerdrop and torch.rand([]) < config.encoder_layerdrop:
                continue
            layer_mask = None if head_mask is None else head_mask[i]
            if self.gradient_checkpointing and self.training:
                hidden, probs, global_probs = checkpoint(layer, hidden, kind, any_global, layer_mask,
                                                         output_attentions, windows[i], masks, use_reentrant=False)
            else:
                hidden, probs, global_probs = layer(hidden, kind, any_global, layer_mask, output_attentions,
                                                    windows[i], masks)
            if output_attentions:
                attentions.append(probs[:, :, :seq])
                if any_global:  # the key axis padded as HF pads it
                    global_attentions.append(F.pad(global_probs, (0, 0, 0, hf_padded - global_probs.shape[2])))
        if output_hidden_states:
            states.append(hidden)
        return LEDEncoderBaseModelOutput(
            last_hidden_state=hidden[:, :seq],
            hidden_states=tuple(s[:, :seq] for s in states) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
            global_attentions=tuple(global_attentions) if output_attentions and any_global else None,
        )
