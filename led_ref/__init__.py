"""led_ref: an executable NumPy specification of the Longformer-Encoder-Decoder (LED).

    from led_ref import LEDConfig, LEDForConditionalGeneration
    model = LEDForConditionalGeneration.from_pretrained("path/to/checkpoint")
    out = model(input_ids=ids, global_attention_mask=glob)
    summary = model.generate(ids, global_attention_mask=glob, num_beams=4, max_length=64)

See docs/spec.md. Imports numpy, scipy, safetensors and tokenizers only.
"""

from .io.config import LEDConfig

__all__ = [
    "LEDConfig",
    "LEDModel",
    "LEDForConditionalGeneration",
    "LEDForSequenceClassification",
    "LEDForQuestionAnswering",
    "LEDTokenizer",
]

_MODELS = ("LEDModel", "LEDForConditionalGeneration", "LEDForSequenceClassification", "LEDForQuestionAnswering")


def __getattr__(name: str):
    # Imported on first use, so `import led_ref.io.config` (what led_torch reads) stays light and the
    # tokenizer's `tokenizers` dependency is only needed by those who use it.
    if name in _MODELS:
        from . import model

        return getattr(model, name)
    if name == "LEDTokenizer":
        from .io.tokenizer import LEDTokenizer

        return LEDTokenizer
    raise AttributeError(f"module 'led_ref' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
