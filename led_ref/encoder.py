"""LED's encoder: embeddings, padding to the window, post-LN Longformer layers, outputs cut back.

    x0 = LN_emb(shared[ids] + pos[0..n))                     no embedding scale, no position offset
    x  = LN(x + attn(x))         attn = Longformer self-attention (`led_ref.attention`)
    x  = LN(x + fc2(act(fc1(x))))

The sequence is right-padded with `pad_token_id` to a multiple of `config.max_window` before the first
layer (every layer then works on the same length) and the outputs are cut back to the input length:
hidden states and the query axis of `attentions`; the key axis of `global_attentions` stays padded, as HF
returns it.

`weights` are the base model's (names without the `led.` prefix: `shared.weight`, `encoder.layers.0.fc1.weight`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from . import attention, layout
from .functional import activation, embedding, ffn, layer_norm, subtree
from .io.config import LEDConfig
from .io.outputs import LEDEncoderBaseModelOutput


def encoder_layer(
    hidden: np.ndarray,
    params: Mapping[str, np.ndarray],
    token_kind: np.ndarray,
    window: int,
    num_heads: int,
    act,
    layer_head_mask: np.ndarray | None = None,
    output_attentions: bool = False,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """One post-LN encoder layer on the padded sequence.

    hidden (batch, seq, d), token_kind (batch, seq) -> (hidden (batch, seq, d), attentions, global_attentions),
    the probabilities in HF's compact layout when `output_attentions` (see `led_ref.layout`).
    """
    attn_out, probs, global_probs = attention.encoder_self_attention(
        hidden, subtree(params, "self_attn."), token_kind, window, num_heads,
        layer_head_mask=layer_head_mask, output_attentions=output_attentions,
    )
    hidden = layer_norm(hidden + attn_out, params, "self_attn_layer_norm")
    hidden = layer_norm(hidden + ffn(hidden, params, act), params, "final_layer_norm")
    return hidden, probs, global_probs


def encoder_positions(table: np.ndarray, length: int) -> np.ndarray:
    """Learned positions 0..length-1 (length, d).

    Positions past the table only ever belong to the padding added to reach a window multiple; padding
    never reaches a non-padding output, so they reuse the last row instead of failing (HF raises there).
    """
    index = np.minimum(np.arange(length), table.shape[0] - 1)
    return table[index]


def embed_encoder_inputs(
    weights: Mapping[str, np.ndarray],
    config: LEDConfig,
    input_ids: np.ndarray | None,
    inputs_embeds: np.ndarray | None,
    attention_mask: np.ndarray | None,
    global_attention_mask: np.ndarray | None,
    window: int | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Pad to a multiple of `window` (default `config.max_window`), embed, add positions, layer-norm.

    Returns (hidden (batch, padded, d), token_kind (batch, padded), pad_count).
    """
    table = weights["shared.weight"]
    inputs = input_ids if inputs_embeds is None else inputs_embeds
    padded, mask, global_mask, pad = layout.pad_to_window(
        inputs, attention_mask, global_attention_mask, window or config.max_window, config.pad_token_id,
        embedding_table=table
    )
    token_kind = layout.token_kinds(mask, global_mask)
    embeds = embedding(padded, table) if inputs_embeds is None else padded
    hidden = embeds + encoder_positions(weights["encoder.embed_positions.weight"], padded.shape[1])
    return layer_norm(hidden, weights, "encoder.layernorm_embedding"), token_kind, pad


def encoder_forward(
    weights: Mapping[str, np.ndarray],
    config: LEDConfig,
    input_ids: np.ndarray | None = None,
    attention_mask: np.ndarray | None = None,
    global_attention_mask: np.ndarray | None = None,
    head_mask: np.ndarray | None = None,
    inputs_embeds: np.ndarray | None = None,
    output_attentions: bool = False,
    output_hidden_states: bool = False,
) -> LEDEncoderBaseModelOutput:
    """The whole encoder on checked inputs (see `led_ref.io.validation`).

    input_ids (batch, seq) or inputs_embeds (batch, seq, d); masks (batch, seq) of 0/1 or None;
    head_mask (encoder_layers, heads) or None. Returns last_hidden_state (batch, seq, d) and, on request,
    hidden_states (layers + 1 of (batch, seq, d)), attentions and global_attentions per layer.
    """
    # Windows wider than the input attend as a narrower one does (layout.effective_window): they are run at
    # that width, on the length padded to it, so their cost is the input's, not the window's.
    seq = (input_ids if input_ids is not None else inputs_embeds).shape[1]
    windows = [layout.effective_window(w, seq) for w in config.layer_windows]
    hf_padded = layout.padded_length(seq, config.max_window)
    hidden, token_kind, pad = embed_encoder_inputs(
        weights, config, input_ids, inputs_embeds, attention_mask, global_attention_mask,
        window=max(windows, default=layout.effective_window(config.max_window, seq)),
    )
    any_global = bool(np.any(token_kind == layout.GLOBAL))
    act = activation(config.activation_function)
    states, probs, global_probs = [], [], []
    for layer, window in enumerate(windows):
        states.append(hidden)
        hidden, layer_probs, layer_global = encoder_layer(
            hidden, subtree(weights, f"encoder.layers.{layer}."), token_kind, window,
            config.encoder_attention_heads, act,
            layer_head_mask=None if head_mask is None else head_mask[layer],
            output_attentions=output_attentions,
        )
        if output_attentions:  # back to HF's layout: the layer's own window, the key axis padded as HF pads
            layer_probs = layout.widen_window_columns(layer_probs, window, config.layer_windows[layer])
            if layer_global is not None and layer_global.shape[2] < hf_padded:
                extra = np.zeros(layer_global.shape[:2] + (hf_padded - layer_global.shape[2],) + layer_global.shape[3:],
                                 layer_global.dtype)
                layer_global = np.concatenate([layer_global, extra], axis=2)
        probs.append(layer_probs)
        global_probs.append(layer_global)
    states.append(hidden)
    return LEDEncoderBaseModelOutput(
        last_hidden_state=hidden[:, :seq],
        hidden_states=tuple(s[:, :seq] for s in states) if output_hidden_states else None,
        attentions=tuple(p[:, :, :seq] for p in probs) if output_attentions else None,
        # HF returns no global attentions at all when the batch has no global token.
        global_attentions=tuple(global_probs) if output_attentions and any_global else None,
    )
