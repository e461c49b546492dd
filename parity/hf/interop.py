"""HF transformers <-> led_torch, for code written against HF (pipelines, Trainer, HF `generate`).

Needs the `hf` extra (transformers). Three tools:

    fast = to_led_torch(hf_model)                 an HF LED model as the led_torch class of the same name
    hf_model = to_hf(fast)                        and back (weights and generation config carried over)
    use_led_torch_attention(hf_model, "banded")   HF's model, its encoder self-attention computed by a
                                                  led_torch backend (in place; HF's parameters are shared)

The third keeps every HF API working (pipelines, `Trainer`, `generate`, `save_pretrained`) while the
encoder's Longformer attention runs on led_torch's backends ("banded", "flex", "triton", or None for the
best one for the device and dtype). `tests/test_hf_interop.py` gates it against unmodified HF: encoder
outputs within the float64 budget and generated tokens identical.
"""

from __future__ import annotations

import torch
from torch import nn

from led_ref.io.config import LEDConfig
from led_ref.io.generation_settings import GenerationConfig


def to_led_torch(hf_model, dtype=None, device=None, attn_implementation: str | None = None):
    """The led_torch model (same class name) carrying `hf_model`'s weights, config and generation config."""
    import led_torch

    name = type(hf_model).__name__
    if not hasattr(led_torch, name):
        raise TypeError(f"no led_torch class for {name}; expected one of LEDModel, LEDForConditionalGeneration, "
                        "LEDForSequenceClassification, LEDForQuestionAnswering")
    first = next(hf_model.parameters())
    config = LEDConfig.coerce(hf_model.config)
    model = getattr(led_torch, name).from_weights(config, dict(hf_model.state_dict()), dtype=dtype or first.dtype,
                                                   device=device or first.device,
                                                   attn_implementation=attn_implementation)
    if getattr(hf_model, "generation_config", None) is not None:
        model.generation_config = GenerationConfig.coerce(hf_model.generation_config)
    return model


def to_hf(model):
    """The transformers model (same class name) carrying a led_torch `model`'s weights and configs."""
    import transformers

    data = model.config.to_dict()
    data.pop("model_type", None)
    hf = getattr(transformers, type(model).__name__)(transformers.LEDConfig(**data))
    hf = hf.to(dtype=model.dtype, device=model.device)
    missing, unexpected = hf.load_state_dict(model.state_dict(), strict=False)
    if unexpected or [m for m in missing if not m.endswith(("embed_tokens.weight", "lm_head.weight"))]:
        raise ValueError(f"weights do not fit HF {type(model).__name__}: missing {missing}, unexpected {unexpected}")
    hf.tie_weights()
    if getattr(model, "generation_config", None) is not None and getattr(hf, "generation_config", None) is not None:
        values = {k: v for k, v in model.generation_config.to_dict().items() if not k.startswith("_")}
        hf.generation_config = transformers.GenerationConfig(**values)
    return hf.train(model.training)


def _adapter_class():
    from led_torch.backends.rule import token_kinds
    from led_torch.encoder import LongformerSelfAttention, apply_head_mask, merge_heads

    class LedTorchEncoderSelfAttention(LongformerSelfAttention):
        """Stands in for HF's `LEDEncoderSelfAttention`: same call, outputs and parameter names, led_torch's
        computation.

        HF's encoder hands each layer masks derived from attention_mask * (global_attention_mask + 1)
        (`is_index_masked`, `is_index_global_attn`); they become led_torch's token kinds 0/1/2. The six
        projections are HF's own modules, so the state dict keeps HF's names and training through HF updates
        the same tensors."""

        def __init__(self, hf_attention: nn.Module, config: LEDConfig, layer: int, backend: str | None):
            with torch.device("meta"):
                super().__init__(config, layer)
            for name in ("query", "key", "value", "query_global", "key_global", "value_global"):
                setattr(self, name, getattr(hf_attention, name))
            self.backend = backend

        def forward(self, hidden_states, attention_mask=None, layer_head_mask=None, is_index_masked=None,
                    is_index_global_attn=None, is_global_attn=None, output_attentions=False, **_):
            kind = token_kinds(~is_index_masked, is_index_global_attn)
            context, probs, global_probs = super().forward(hidden_states, kind, bool(is_global_attn),
                                                           output_attentions)
            context, probs, global_probs = apply_head_mask(layer_head_mask, context, probs, global_probs)
            out = (merge_heads(context),)
            if output_attentions:  # HF's layer layouts: (batch, seq, heads, x + w + 1), (batch, heads, x, seq)
                out += (probs.transpose(1, 2),)
                if is_global_attn:
                    out += (global_probs.transpose(2, 3),)
            return out

    return LedTorchEncoderSelfAttention


def use_led_torch_attention(hf_model, backend: str | None = "banded"):
    """Replace the encoder self-attention of every layer of an HF LED model by led_torch's (in place);
    returns the model. `backend`: "banded", "flex", "triton" or None (the best for device and dtype)."""
    adapter = _adapter_class()
    base = getattr(hf_model, "led", hf_model)
    config = LEDConfig.coerce(hf_model.config)
    for index, layer in enumerate(base.encoder.layers):
        attention = layer.self_attn
        if isinstance(attention.longformer_self_attn, adapter.__mro__[1]):  # already led_torch's
            attention.longformer_self_attn.backend = backend
        else:
            attention.longformer_self_attn = adapter(attention.longformer_self_attn, config, index, backend)
    return hf_model
