"""led_ref: an executable NumPy specification of the Longformer-Encoder-Decoder (LED).

    from led_ref import LEDConfig, LEDForConditionalGeneration
    model = LEDForConditionalGeneration.from_pretrained("path/to/checkpoint")
    out = model(input_ids=ids, global_attention_mask=glob)
    summary = model.generate(ids, global_attention_mask=glob, num_beams=4, max_length=64)

See docs/spec.md. Imports numpy, scipy, safetensors and tokenizers only.
"""

from .config import LEDConfig
from .model import (
    LEDForConditionalGeneration,
    LEDForQuestionAnswering,
    LEDForSequenceClassification,
    LEDModel,
)

__all__ = [
    "LEDConfig",
    "LEDModel",
    "LEDForConditionalGeneration",
    "LEDForSequenceClassification",
    "LEDForQuestionAnswering",
    "LEDTokenizer",
]


def __getattr__(name: str):
    # The tokenizer is imported on first use: it needs `tokenizers`, which the numerics do not.
    if name == "LEDTokenizer":
        from .tokenizer import LEDTokenizer

        return LEDTokenizer
    raise AttributeError(f"module 'led_ref' has no attribute {name!r}")
