"""Export led_torch's LED to ONNX files that are right at every length, global count and padding pattern.

HF's sliding-window code builds its band with `as_strided`, whose strides an exporter records as constants of
the traced length: the graph is wrong at every other length. The modules here run led_torch's own parameters
(its projections, layer norms and feed-forward blocks, HF's names) around an attention written with no
data-dependent Python control flow and no baked strides, so the traced graph is the same function at every
shape. Two formulations, both the kernel contract (docs/contract.md), chosen with `attention=`:

    dense_longformer_attention    one (seq, seq) score matrix per head, masked by the token kinds: correct by
                                  construction, O(seq^2) memory (docs/onnx.md gives the numbers)
    banded_longformer_attention   query blocks of `window` rows against slabs of 2 x window keys gathered at
                                  position + offset (clipped, masked), plus one column per global slot:
                                  O(seq x (window + globals)) memory (the dynamo exporter only)

The files and their input/output names are optimum's (ORTModelForSeq2SeqLM reads them):

    encoder_model.onnx              input_ids, attention_mask, global_attention_mask -> last_hidden_state
    decoder_model.onnx              input_ids, encoder_attention_mask, encoder_hidden_states
                                    -> logits, present.{i}.decoder.key/value, present.{i}.encoder.key/value
    decoder_with_past_model.onnx    input_ids, encoder_attention_mask, past_key_values.{i}.{decoder,encoder}.{key,value}
                                    -> logits, present.{i}.decoder.key/value

Each file records the shapes it was traced at in its metadata (`led_parity.traced_shapes`), which the audit
reads to choose shapes that differ from them.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from led_torch.backends.rule import (  # the project's one Longformer rule (token kinds, which keys a row attends)
    GLOBAL,
    LOCAL,
    PADDING,
    longformer_global_mask,
    longformer_local_mask,
    sliding_window,
    token_kinds,
)
from parity.onnx.sessions import (
    ATTENTION_KEY,
    CHECKPOINT_KEY,
    DECODER_FILE,
    DECODER_WITH_PAST_FILE,
    ENCODER_FILE,
    TRACED_SHAPES_KEY,
)

OPSET = 18
DTYPES = ("float32", "float16")
# What export-onnx copies next to the ONNX files, when the checkpoint has it (ORTModelForSeq2SeqLM and
# led_ref.LEDTokenizer read them from the same folder).
COPIED_FILES = ("config.json", "generation_config.json", "vocab.json", "merges.txt", "tokenizer.json",
                "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")


# ------------------------------------------------------------------------------------------- attention
def positions_along(like: torch.Tensor, dim: int) -> torch.Tensor:
    """0 .. n-1 (int64) for the n entries of `like` along `dim`, computed from the tensor rather than from its
    Python shape, so that neither exporter can fold the length into a constant of the graph."""
    index = [0] * like.dim()
    index[dim] = slice(None)
    return torch.ones_like(like[tuple(index)], dtype=torch.long).cumsum(0) - 1


def _masked_softmax(scores: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """softmax over the allowed keys, 0 elsewhere; a row with no allowed key gets zeros (its context is never
    read), never NaN."""
    masked = torch.where(allowed, scores, torch.finfo(scores.dtype).min)
    return torch.where(allowed, torch.softmax(masked, dim=-1), 0.0)


def dense_longformer_attention(query, key, value, global_query, global_key, global_value, token_kind, window):
    """The kernel contract as dense masked attention (led_ref.attention.longformer_attention_definition, in torch),
    with led_torch's one Longformer rule (`led_torch.backends.rule`'s mask_mods) evaluated on index grids made
    from the tensors.

    query ... global_value (batch, heads, seq, head_dim), queries pre-scaled; token_kind (batch, seq); window
    even. -> context (batch, heads, seq, head_dim): a local row attends keys |i - j| <= w/2 or global, never
    padding (query . key, value); a global row every non-padding key (global projections); padding rows 0.
    Memory: two (batch, heads, seq, seq) score matrices."""
    positions = positions_along(token_kind, 1)
    b = positions_along(token_kind, 0)[:, None, None, None]
    q_idx, kv_idx = positions[None, None, :, None], positions[None, None, None, :]
    local_allowed = longformer_local_mask(token_kind, window)(b, None, q_idx, kv_idx)  # (batch, 1, seq, seq)
    global_allowed = longformer_global_mask(token_kind)(b, None, q_idx, kv_idx)  # (batch, 1, 1, seq)
    local = _masked_softmax(query @ key.transpose(-1, -2), local_allowed) @ value
    glob = _masked_softmax(global_query @ global_key.transpose(-1, -2), global_allowed) @ global_value
    rows = token_kind[:, None, :, None]
    return torch.where(rows == GLOBAL, glob, torch.where(rows == LOCAL, local, 0.0))


def banded_longformer_attention(query, key, value, global_query, global_key, global_value, token_kind, window):
    """The same function as `dense_longformer_attention` in O(seq x (window + x)) memory, x = the most global
    tokens in any row; every shape is read from the inputs at run time (the dynamo exporter only: the number of
    global slots is data, which the TorchScript tracer would record as a constant).

    Queries go in blocks of `window` rows; block k reads the slab of 2 * window keys starting at position
    k * window - window / 2 (positions outside 0..seq-1 clipped and masked), where row r may attend slab columns
    r .. r + window that are LOCAL tokens: its band. The global keys come as one more column per global slot
    (the row's global tokens in order; unused slots masked), so a global key in the window is counted once. A
    global row attends every non-padding key with the global projections: (x, seq) scores per head, put back
    at its token by a gather."""
    batch, heads, seq, head_dim = query.shape
    half = window // 2
    positions = positions_along(token_kind, 1)
    blocks = (seq + window - 1) // window
    padded = blocks * window
    block_starts = torch.arange(blocks, device=query.device) * window - half
    slab_positions = block_starts[:, None] + torch.arange(2 * window, device=query.device)[None, :]  # (blocks, 2w)
    inside = (slab_positions >= 0) & (slab_positions < seq)
    slab_positions = slab_positions.clamp(0, seq - 1)
    slab_local = inside[None] & (token_kind[:, slab_positions] == LOCAL)  # (batch, blocks, 2w)
    block_rows = torch.arange(window, device=query.device)[:, None]
    columns = torch.arange(2 * window, device=query.device)[None, :]
    # (w, 2w): row r of a block sits half a window after slab column r (as in rule.band_parts)
    in_window = sliding_window(window)(None, None, block_rows + half, columns)
    band_allowed = in_window[None, None] & slab_local[:, :, None, :]  # (batch, blocks, w, 2w)

    flat = slab_positions.reshape(-1)
    slab_keys = key.index_select(2, flat).view(batch, heads, blocks, 2 * window, head_dim)
    slab_values = value.index_select(2, flat).view(batch, heads, blocks, 2 * window, head_dim)
    # the last block's rows past the end repeat the last query (their results are dropped): a gather, where padding
    # would make the exporter guard on whether the length is a multiple of the window
    row_index = torch.arange(padded, device=query.device).clamp(max=seq - 1)
    block_queries = query.index_select(2, row_index).view(batch, heads, blocks, window, head_dim)
    band_scores = block_queries @ slab_keys.transpose(-1, -2)  # (batch, heads, blocks, w, 2w)

    # Global slots: each row's global tokens in order, then one slot that is never valid, so that there is always
    # a slot to read (x + 1 of them; x = the most global tokens in any row, read from the data at run time).
    is_global = token_kind == GLOBAL
    counts = is_global.sum(dim=1)  # (batch,)
    order = torch.argsort((~is_global).to(torch.int64) * (seq + 1) + positions[None, :], dim=1)
    order = torch.cat([order, torch.zeros_like(order[:, :1])], dim=1)  # (batch, seq + 1)
    slots = counts.max().item() + 1
    torch._check(slots >= 1)
    torch._check(slots <= seq + 1)
    slot_positions = order[:, :slots]  # (batch, x + 1)
    slot_valid = positions_along(slot_positions, 1)[None, :] < counts[:, None]
    slot_gather = slot_positions[:, None, :, None].expand(batch, heads, slots, head_dim)
    slot_keys = torch.gather(key, 2, slot_gather)  # (batch, heads, x + 1, d)
    slot_values = torch.gather(value, 2, slot_gather)
    slot_scores = block_queries @ slot_keys[:, :, None].transpose(-1, -2)  # (batch, heads, blocks, w, x + 1)

    scores = torch.cat([band_scores, slot_scores], dim=-1)
    slot_allowed = slot_valid[:, None, None, :].expand(batch, blocks, window, slots)
    probs = _masked_softmax(scores, torch.cat([band_allowed, slot_allowed], dim=-1)[:, None])
    local = probs[..., : 2 * window] @ slab_values + probs[..., 2 * window:] @ slot_values[:, :, None]
    local = local.reshape(batch, heads, padded, head_dim).index_select(2, positions)

    # global rows: each slot's global query against every non-padding key, then put back at its token
    slot_queries = torch.gather(global_query, 2, slot_gather)  # (batch, heads, x + 1, d)
    key_real = (token_kind != PADDING)[:, None, None, :]  # longformer_global_mask
    slot_context = _masked_softmax(slot_queries @ global_key.transpose(-1, -2), key_real) @ global_value
    slot_of_token = (is_global.cumsum(dim=1) - 1).clamp(min=0)  # global token p: the number of globals before p
    glob = torch.gather(slot_context, 2, slot_of_token[:, None, :, None].expand(batch, heads, seq, head_dim))
    rows = token_kind[:, None, :, None]
    return torch.where(rows == GLOBAL, glob, torch.where(rows == LOCAL, local, 0.0))


ATTENTIONS = {"dense": dense_longformer_attention, "banded": banded_longformer_attention}


# ------------------------------------------------------------------------------------------- modules
def _linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """`layer`'s affine map as one exportable op (led_torch's Linear may route CPU inference to oneDNN)."""
    return F.linear(x, layer.weight, layer.bias)


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(batch, seq, d) -> (batch, heads, seq, d / heads), the batch and length read at run time."""
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(1, 2).flatten(2)


def _feed_forward(layer: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    from led_torch.activations import activation

    act = activation(layer.activation_function)
    return layer.final_layer_norm(hidden + _linear(layer.fc2, act(_linear(layer.fc1, hidden))))


class ExportEncoder(nn.Module):
    """led_torch's encoder (its parameters, layer norms and feed-forward blocks) with an exportable attention.

    (input_ids, attention_mask, global_attention_mask) (batch, seq) int64 -> last_hidden_state (batch, seq, d).
    No padding to a window multiple: padding keys never reach a real row, so the real rows are the same
    function of the real tokens at any padded length (and padding rows are defined the same way as led_ref's)."""

    def __init__(self, model, attention=dense_longformer_attention):
        super().__init__()
        base = model.led if hasattr(model, "led") else model
        self.encoder = base.encoder
        self.config = base.config
        self.attention = attention

    def forward(self, input_ids, attention_mask, global_attention_mask):
        encoder = self.encoder
        kind = token_kinds(attention_mask, global_attention_mask)
        positions = positions_along(input_ids, 1)
        hidden = F.embedding(input_ids, encoder.embed_tokens.weight) + F.embedding(positions,
                                                                                    encoder.embed_positions.weight)
        hidden = encoder.layernorm_embedding(hidden)
        for layer in encoder.layers:
            attn = layer.self_attn.longformer_self_attn
            scale = math.sqrt(attn.head_dim)
            q = _split_heads(_linear(attn.query, hidden) / scale, attn.heads)
            k = _split_heads(_linear(attn.key, hidden), attn.heads)
            v = _split_heads(_linear(attn.value, hidden), attn.heads)
            gq = _split_heads(_linear(attn.query_global, hidden) / scale, attn.heads)
            gk = _split_heads(_linear(attn.key_global, hidden), attn.heads)
            gv = _split_heads(_linear(attn.value_global, hidden), attn.heads)
            context = self.attention(q, k, v, gq, gk, gv, kind, attn.window)
            hidden = layer.self_attn_layer_norm(hidden + _linear(layer.self_attn.output, _merge_heads(context)))
            hidden = _feed_forward(layer, hidden)
        return hidden


def _padding_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(batch, keys) 0/1 -> additive (batch, 1, 1, keys): 0 where attended, dtype-min where padding (HF's)."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def _attend(q, k, v, bias):
    scores = q @ k.transpose(-1, -2)
    if bias is not None:
        scores = scores + bias
    return torch.softmax(scores, dim=-1) @ v


class ExportDecoder(nn.Module):
    """led_torch's decoder and LM head, fed `past` cached self-attention keys/values or none.

    without past: (input_ids (batch, tgt), encoder_attention_mask (batch, src), encoder_hidden_states
    (batch, src, d)) -> logits (batch, tgt, vocab) and per layer the self and cross keys/values
    (batch, heads, tgt | src, head_dim); with past: (input_ids, encoder_attention_mask, then per layer
    self key, self value (batch, heads, past, head_dim), cross key, cross value) -> logits and the extended
    self keys/values. Causal within the new tokens, every cached key visible (HF's masks)."""

    def __init__(self, model, with_past: bool):
        super().__init__()
        self.led = model.led
        self.final_logits_bias = model.final_logits_bias
        self.config = model.config
        self.with_past = with_past

    def forward(self, input_ids, encoder_attention_mask, *states):
        decoder = self.led.decoder
        heads = self.config.decoder_attention_heads
        layers = len(decoder.layers)
        past = [states[4 * i: 4 * i + 4] for i in range(layers)] if self.with_past else None
        new = positions_along(input_ids, 1)  # (tgt,)
        if self.with_past:
            cached = positions_along(past[0][0], 2)  # (past,)
            new = new + torch.ones_like(cached).sum()  # the new tokens sit after the cached ones
            keys = torch.cat([cached, new])
        else:
            keys = new
        hidden = decoder.layernorm_embedding(F.embedding(input_ids, decoder.embed_tokens.weight)
                                             + F.embedding(new, decoder.embed_positions.weight))
        dtype = hidden.dtype
        causal = torch.where(keys[None, :] > new[:, None], torch.finfo(dtype).min, 0.0).to(dtype)[None, None]
        cross_bias = _padding_bias(encoder_attention_mask, dtype)
        outputs = []
        for i, layer in enumerate(decoder.layers):
            sa, ca = layer.self_attn, layer.encoder_attn
            q = _split_heads(_linear(sa.q_proj, hidden) * sa.scaling, heads)
            k = _split_heads(_linear(sa.k_proj, hidden), heads)
            v = _split_heads(_linear(sa.v_proj, hidden), heads)
            if self.with_past:
                k, v = torch.cat([past[i][0], k], dim=2), torch.cat([past[i][1], v], dim=2)
                cross_k, cross_v = past[i][2], past[i][3]
            else:
                encoder_hidden = states[0]
                cross_k = _split_heads(_linear(ca.k_proj, encoder_hidden), heads)
                cross_v = _split_heads(_linear(ca.v_proj, encoder_hidden), heads)
            context = _attend(q, k, v, causal)
            hidden = layer.self_attn_layer_norm(hidden + _linear(sa.out_proj, _merge_heads(context)))
            cq = _split_heads(_linear(ca.q_proj, hidden) * ca.scaling, heads)
            context = _attend(cq, cross_k, cross_v, cross_bias)
            hidden = layer.encoder_attn_layer_norm(hidden + _linear(ca.out_proj, _merge_heads(context)))
            hidden = _feed_forward(layer, hidden)
            outputs += [k, v] if self.with_past else [k, v, cross_k, cross_v]
        logits = F.linear(hidden, self.led.shared.weight) + self.final_logits_bias.to(dtype)
        return (logits, *outputs)


def decoder_output_names(layers: int, with_past: bool) -> list[str]:
    names = ["logits"]
    for i in range(layers):
        names += [f"present.{i}.decoder.key", f"present.{i}.decoder.value"]
        if not with_past:
            names += [f"present.{i}.encoder.key", f"present.{i}.encoder.value"]
    return names


def past_input_names(layers: int) -> list[str]:
    return [f"past_key_values.{i}.{part}.{kv}" for i in range(layers) for part in ("decoder", "encoder")
            for kv in ("key", "value")]


# ------------------------------------------------------------------------------------------- example inputs
def example_encoder_inputs(config, length: int, batch: int = 2) -> dict[str, torch.Tensor]:
    """What the encoder is traced on: `batch` rows of `length` tokens, the last row right-padded by a third,
    the first row with two global tokens and the others with one (any values work: nothing depends on them)."""
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(3, config.vocab_size, (batch, length), generator=generator)
    attention_mask = torch.ones(batch, length, dtype=torch.long)
    if batch > 1:
        attention_mask[-1, length - length // 3:] = 0
        input_ids[-1, length - length // 3:] = config.pad_token_id
    global_attention_mask = torch.zeros(batch, length, dtype=torch.long)
    global_attention_mask[:, 0] = 1
    global_attention_mask[0, min(length - 1, 5)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "global_attention_mask": global_attention_mask}


def traced_shapes(inputs: dict[str, torch.Tensor], extra: dict | None = None) -> dict:
    """The shapes an export was traced at, as the audit reads them back: batch, length, global counts."""
    shapes = {name: list(t.shape) for name, t in inputs.items() if isinstance(t, torch.Tensor)}
    out = {"inputs": shapes}
    if "global_attention_mask" in inputs and "attention_mask" in inputs:
        glob = (inputs["global_attention_mask"] != 0) & (inputs["attention_mask"] != 0)
        out["global_counts"] = glob.sum(dim=1).tolist()
        out["padding"] = (inputs["attention_mask"] == 0).sum(dim=1).tolist()
    return {**out, **(extra or {})}


# ------------------------------------------------------------------------------------------- export
def _export(module: nn.Module, args: tuple, path: str, input_names: list[str], output_names: list[str],
            dynamic_axes: dict[str, dict[int, str]], dynamo: bool, positional: int | None = None) -> str:
    """torch.onnx.export of `module` to `path`; -> the exporter that wrote it ("dynamo" or "torchscript").

    The dynamo exporter is tried first; where it refuses (or is not asked for) the TorchScript exporter is used
    with `dynamic_axes`. Both give a graph whose shapes are read at run time. `positional`: how many of the
    inputs are named arguments of the module's forward, the rest being one `*states` tuple."""
    if dynamo:
        try:
            _export_dynamo(module, args, path, input_names, output_names, dynamic_axes, positional)
            return "dynamo"
        except Exception as err:  # noqa: BLE001 - fall back to the TorchScript exporter, saying why
            first = str(err).splitlines()[0] if str(err) else ""
            warnings.warn(f"the dynamo exporter refused {os.path.basename(path)} ({type(err).__name__}: {first}); "
                          f"using the TorchScript exporter", stacklevel=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, path, input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=OPSET, dynamo=False, do_constant_folding=True)
    return "torchscript"


def _export_dynamo(module, args, path, input_names, output_names, dynamic_axes, positional) -> None:
    named: dict[str, object] = {}  # one Dim per axis name, shared by the inputs that name it
    dims = {name: {axis: named.setdefault(label, torch.export.Dim(_dim_name(label))) for axis, label in axes.items()}
            for name, axes in dynamic_axes.items() if name in input_names}
    # torch.onnx's op registry warns about torchvision ops LED never uses, and the symbolic-shape engine prints
    # the whole traced graph when it meets the (data-dependent) number of global slots of the banded attention
    quiet = [logging.getLogger(name) for name in ("torch.onnx", "torch.fx.experimental.symbolic_shapes")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, args, dynamo=True, input_names=input_names,
                                        output_names=output_names,
                                        dynamic_shapes=_by_position(dims, input_names, positional),
                                        opset_version=OPSET, optimize=True, verbose=False)
        program.save(path)
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)


def _dim_name(label: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in label)


def _by_position(dims: dict, input_names: list[str], positional: int | None) -> tuple:
    """Dynamic shapes in the structure of the module's forward: `positional` named arguments, then the rest
    gathered in one `*states` tuple (None: every input is a named argument)."""
    shapes = [dims.get(name) for name in input_names]
    if positional is None or positional >= len(shapes):
        return tuple(shapes)
    return (*shapes[:positional], tuple(shapes[positional:]))


def set_metadata(path: str, values: dict[str, str]) -> None:
    """Write `values` into the ONNX file's metadata_props (ONNX Runtime's custom_metadata_map)."""
    import onnx

    model = onnx.load(path, load_external_data=False)  # weights kept in an external file stay there
    kept = [p for p in model.metadata_props if p.key not in values]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in values.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, path)


def export_encoder(model, path: str, length: int, attention: str = "dense", dynamo: bool = True,
                   attention_fn=None, metadata: dict | None = None) -> dict:
    """Export the encoder of a led_torch LEDForConditionalGeneration (float32 or float16) to `path`, traced at `length`
    tokens. `attention_fn` overrides the named formulation (tests plant broken ones); `metadata` is written
    into the file beside the traced shapes. -> what was recorded."""
    module = ExportEncoder(model, attention_fn or ATTENTIONS[attention]).eval()
    inputs = example_encoder_inputs(model.config, length)
    names = list(inputs)
    axes = {name: {0: "batch_size", 1: "encoder_sequence_length"} for name in names}
    axes["last_hidden_state"] = {0: "batch_size", 1: "encoder_sequence_length"}
    with torch.no_grad():
        exporter = _export(module, tuple(inputs.values()), path, names, ["last_hidden_state"], axes, dynamo)
    shapes = traced_shapes(inputs, {"exporter": exporter})
    set_metadata(path, {TRACED_SHAPES_KEY: json.dumps(shapes), ATTENTION_KEY: attention, **(metadata or {})})
    return shapes


def export_decoders(model, directory: str, source_length: int, target_length: int = 3, dynamo: bool = True) -> dict:
    """Write decoder_model.onnx and decoder_with_past_model.onnx of a led_torch model into `directory` (the
    states in the model's dtype)."""
    dtype = model.led.shared.weight.dtype
    config = model.config
    layers, heads = config.decoder_layers, config.decoder_attention_heads
    head_dim = config.d_model // heads
    encoder_inputs = example_encoder_inputs(config, source_length)
    batch = encoder_inputs["input_ids"].shape[0]
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(3, config.vocab_size, (batch, target_length), generator=generator)
    encoder_hidden = torch.randn(batch, source_length, config.d_model, generator=generator).to(dtype)
    mask = encoder_inputs["attention_mask"]
    recorded = {}

    plain = ExportDecoder(model, with_past=False).eval()
    names = ["input_ids", "encoder_attention_mask", "encoder_hidden_states"]
    outputs = decoder_output_names(layers, with_past=False)
    axes = {"input_ids": {0: "batch_size", 1: "decoder_sequence_length"},
            "encoder_attention_mask": {0: "batch_size", 1: "encoder_sequence_length"},
            "encoder_hidden_states": {0: "batch_size", 1: "encoder_sequence_length"},
            "logits": {0: "batch_size", 1: "decoder_sequence_length"}}
    for name in outputs[1:]:
        axes[name] = {0: "batch_size", 2: "encoder_sequence_length" if ".encoder." in name
                      else "decoder_sequence_length"}
    path = os.path.join(directory, DECODER_FILE)
    with torch.no_grad():
        exporter = _export(plain, (input_ids, mask, encoder_hidden), path, names, outputs, axes, dynamo, positional=2)
    recorded[DECODER_FILE] = traced_shapes({"input_ids": input_ids, "encoder_attention_mask": mask,
                                            "encoder_hidden_states": encoder_hidden}, {"exporter": exporter})
    set_metadata(path, {TRACED_SHAPES_KEY: json.dumps(recorded[DECODER_FILE])})

    with_past = ExportDecoder(model, with_past=True).eval()
    past = []
    for _ in range(layers):
        past += [torch.randn(batch, heads, target_length, head_dim, generator=generator).to(dtype) for _ in range(2)]
        past += [torch.randn(batch, heads, source_length, head_dim, generator=generator).to(dtype) for _ in range(2)]
    step = input_ids[:, :2]  # two new tokens, so that neither exporter takes the step length for a constant
    names = ["input_ids", "encoder_attention_mask", *past_input_names(layers)]
    outputs = decoder_output_names(layers, with_past=True)
    axes = {"input_ids": {0: "batch_size", 1: "decoder_sequence_length"},
            "encoder_attention_mask": {0: "batch_size", 1: "encoder_sequence_length"},
            "logits": {0: "batch_size", 1: "decoder_sequence_length"}}
    for name in names[2:]:
        axes[name] = {0: "batch_size", 2: "encoder_sequence_length" if ".encoder." in name
                      else "past_decoder_sequence_length"}
    for name in outputs[1:]:
        axes[name] = {0: "batch_size", 2: "past_decoder_sequence_length + decoder_sequence_length"}
    path = os.path.join(directory, DECODER_WITH_PAST_FILE)
    with torch.no_grad():
        exporter = _export(with_past, (step, mask, *past), path, names, outputs, axes, dynamo, positional=2)
    recorded[DECODER_WITH_PAST_FILE] = traced_shapes({"input_ids": step, "encoder_attention_mask": mask,
                                                      "past_key_values.0.decoder.key": past[0]},
                                                     {"exporter": exporter})
    set_metadata(path, {TRACED_SHAPES_KEY: json.dumps(recorded[DECODER_WITH_PAST_FILE])})
    return recorded


def default_export_length(config) -> int:
    """The length the encoder is traced at: a little over two of the largest windows, not a window multiple
    (any length works; the audit then checks others), within the model's positions."""
    return max(2, min(config.max_encoder_position_embeddings, 2 * config.max_window + 3))


def export_model(checkpoint: str, out_dir: str, attention: str = "dense", decoders: bool = True,
                 length: int | None = None, dynamo: bool = True, dtype: str = "float32") -> dict:
    """export-onnx without the audit: the encoder (and both decoders) of `checkpoint` as ONNX files in `dtype`
    (float32, or float16: weights and states in half precision, ONNX Runtime's CPU provider runs it) in
    `out_dir`, with config.json, generation_config.json and the tokenizer files copied. -> {file: recorded}."""
    import led_torch
    from led_ref.io.checkpoint import resolve_checkpoint
    from parity.harness.checkpoints import load_for_generation

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
    if attention not in ATTENTIONS:
        raise ValueError(f"--attention must be one of {', '.join(ATTENTIONS)}; got {attention!r}")
    directory = resolve_checkpoint(checkpoint)
    config, weights = load_for_generation(directory)
    if length is not None and not 1 <= length <= config.max_encoder_position_embeddings:
        raise ValueError(f"--length must be in [1, {config.max_encoder_position_embeddings}] "
                         f"(max_encoder_position_embeddings), got {length}")
    model = led_torch.LEDForConditionalGeneration.from_weights(config, weights, dtype=getattr(torch, dtype)).eval()
    os.makedirs(out_dir, exist_ok=True)
    length = length or default_export_length(config)
    # where the weights are, so that `check --impls onnx:DIR` finds the checkpoint to compare with
    recorded = {ENCODER_FILE: export_encoder(model, os.path.join(out_dir, ENCODER_FILE), length, attention,
                                             dynamo, metadata={CHECKPOINT_KEY: os.path.abspath(directory)})}
    if decoders:
        recorded.update(export_decoders(model, out_dir, length, dynamo=dynamo))
    for name in COPIED_FILES:
        source = os.path.join(directory, name)
        if os.path.isfile(source) and os.path.abspath(source) != os.path.abspath(os.path.join(out_dir, name)):
            shutil.copyfile(source, os.path.join(out_dir, name))
    return recorded


@dataclass
class ExportResult:
    """What `export_onnx` did: the folder, per file what was recorded (exporter, traced shapes), the audit's
    result, and why the export stopped before its audit (`error`), if it did."""

    directory: str
    files: dict
    audit: object | None = None  # parity.onnx.audit.AuditResult
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and self.audit is not None and self.audit.passed


def export_onnx(checkpoint: str, out_dir: str, attention: str = "dense", decoders: bool = True,
                length: int | None = None, exporter: str = "dynamo", dtype: str = "float32", examples: int = 10,
                seed: int = 0, json_path: str | None = None, out=None) -> ExportResult:
    """`export-onnx` as a function: export `checkpoint` (a folder or a hub id in the local HF cache) into `out_dir`
    (export_model), then audit the folder against the checkpoint (parity.onnx.audit.audit_onnx, its report printed
    to `out`, default stdout) -> ExportResult; deploy the files only when `.passed`.

    `attention` dense or banded; `exporter` dynamo (falls back to TorchScript where it refuses) or torchscript;
    banded needs dynamo (the number of global slots is data): asked with torchscript it is a ValueError, and a
    refusal of the dynamo exporter is `error` (no audit run). `dtype` float16 is audited with the float16 budget
    (parity.harness.tolerances)."""
    from parity.onnx.audit import audit_onnx

    if exporter not in ("dynamo", "torchscript"):
        raise ValueError(f"exporter must be dynamo or torchscript, got {exporter!r}")
    if attention == "banded" and exporter == "torchscript":
        raise ValueError("attention='banded' needs the dynamo exporter: the TorchScript tracer records the number of "
                         "global tokens as a constant")
    recorded = export_model(checkpoint, out_dir, attention=attention, decoders=decoders, length=length,
                            dynamo=exporter == "dynamo", dtype=dtype)
    result = ExportResult(out_dir, recorded)
    if attention == "banded" and any(s.get("exporter") != "dynamo" for s in recorded.values()):
        result.error = "the dynamo exporter refused the banded attention; export with attention='dense'"
        return result
    result.audit = audit_onnx(out_dir, checkpoint, examples=examples, seed=seed, json_path=json_path, out=out)
    return result
