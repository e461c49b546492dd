"""Every parameter of an LED checkpoint, by its HF name, with its shape: the one place names live.

HF writes `LEDForConditionalGeneration` weights under a `led.` prefix; `LEDModel` has no prefix.
The token embedding is stored once as `shared.weight`; the encoder's and decoder's `embed_tokens` and
the `lm_head` are tied to it and are absent from a saved file (`TIED_NAMES`).
"""

from __future__ import annotations

from .config import LEDConfig

ARCHITECTURES = (
    "LEDModel",
    "LEDForConditionalGeneration",
    "LEDForSequenceClassification",
    "LEDForQuestionAnswering",
)

# Names that stand for `shared.weight` and are never stored (relative to the base model prefix,
# except lm_head which lives at the top level).
TIED_NAMES = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")
TIED_TOP_LEVEL = ("lm_head.weight",)

ENCODER_ATTENTION_PROJECTIONS = ("query", "key", "value", "query_global", "key_global", "value_global")
DECODER_ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")


def base_prefix(architecture: str) -> str:
    """Prefix of the encoder-decoder weights for a head architecture (`led.` or nothing)."""
    _check_architecture(architecture)
    return "" if architecture == "LEDModel" else "led."


def tied_names(architecture: str) -> set[str]:
    """The names in `architecture`'s full state dict that are `shared.weight` itself (never stored)."""
    names = {base_prefix(architecture) + n for n in TIED_NAMES}
    return names | set(TIED_TOP_LEVEL) if architecture == "LEDForConditionalGeneration" else names


def _linear(name: str, out_features: int, in_features: int) -> dict[str, tuple[int, ...]]:
    return {f"{name}.weight": (out_features, in_features), f"{name}.bias": (out_features,)}


def _layer_norm(name: str, dim: int) -> dict[str, tuple[int, ...]]:
    return {f"{name}.weight": (dim,), f"{name}.bias": (dim,)}


def encoder_layer_shapes(config: LEDConfig, layer: int) -> dict[str, tuple[int, ...]]:
    d, ffn = config.d_model, config.encoder_ffn_dim
    p = f"encoder.layers.{layer}."
    shapes: dict[str, tuple[int, ...]] = {}
    for proj in ENCODER_ATTENTION_PROJECTIONS:
        shapes |= _linear(f"{p}self_attn.longformer_self_attn.{proj}", d, d)
    shapes |= _linear(f"{p}self_attn.output", d, d)
    shapes |= _layer_norm(f"{p}self_attn_layer_norm", d)
    shapes |= _linear(f"{p}fc1", ffn, d)
    shapes |= _linear(f"{p}fc2", d, ffn)
    shapes |= _layer_norm(f"{p}final_layer_norm", d)
    return shapes


def decoder_layer_shapes(config: LEDConfig, layer: int) -> dict[str, tuple[int, ...]]:
    d, ffn = config.d_model, config.decoder_ffn_dim
    p = f"decoder.layers.{layer}."
    shapes: dict[str, tuple[int, ...]] = {}
    for block in ("self_attn", "encoder_attn"):
        for proj in DECODER_ATTENTION_PROJECTIONS:
            shapes |= _linear(f"{p}{block}.{proj}", d, d)
        shapes |= _layer_norm(f"{p}{block}_layer_norm", d)
    shapes |= _linear(f"{p}fc1", ffn, d)
    shapes |= _linear(f"{p}fc2", d, ffn)
    shapes |= _layer_norm(f"{p}final_layer_norm", d)
    return shapes


def base_model_shapes(config: LEDConfig) -> dict[str, tuple[int, ...]]:
    """Shapes of the stored (untied) weights of `LEDModel`, without prefix."""
    d = config.d_model
    shapes: dict[str, tuple[int, ...]] = {"shared.weight": (config.vocab_size, d)}
    shapes["encoder.embed_positions.weight"] = (config.max_encoder_position_embeddings, d)
    for layer in range(config.encoder_layers):
        shapes |= encoder_layer_shapes(config, layer)
    shapes |= _layer_norm("encoder.layernorm_embedding", d)
    shapes["decoder.embed_positions.weight"] = (config.max_decoder_position_embeddings, d)
    for layer in range(config.decoder_layers):
        shapes |= decoder_layer_shapes(config, layer)
    shapes |= _layer_norm("decoder.layernorm_embedding", d)
    return shapes


def head_shapes(config: LEDConfig, architecture: str) -> dict[str, tuple[int, ...]]:
    """Shapes of the task head's own stored weights (top level, no prefix)."""
    _check_architecture(architecture)
    d = config.d_model
    if architecture == "LEDForConditionalGeneration":
        return {"final_logits_bias": (1, config.vocab_size)}
    if architecture == "LEDForSequenceClassification":
        return _linear("classification_head.dense", d, d) | _linear(
            "classification_head.out_proj", config.num_labels, d
        )
    if architecture == "LEDForQuestionAnswering":
        return _linear("qa_outputs", 2, d)
    return {}


def checkpoint_shapes(config: LEDConfig, architecture: str) -> dict[str, tuple[int, ...]]:
    """Every stored tensor of `architecture`, in HF's naming and order, with its shape."""
    prefix = base_prefix(architecture)
    shapes = dict(head_shapes(config, architecture))
    if architecture == "LEDForConditionalGeneration":
        # HF puts final_logits_bias first; the others put the head last.
        out = dict(shapes)
        out |= {prefix + k: v for k, v in base_model_shapes(config).items()}
        return out
    out = {prefix + k: v for k, v in base_model_shapes(config).items()}
    return out | shapes


def _check_architecture(architecture: str) -> None:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}; got {architecture!r}")
