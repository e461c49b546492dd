"""Optimized PyTorch LED (CPU and CUDA): HF-named modules, pluggable encoder attention, fast generation.

    from led_torch import LEDForConditionalGeneration
    model = LEDForConditionalGeneration.from_pretrained("path/to/led", dtype=torch.float32)
"""

from led_ref.io.config import LEDConfig

from .model import (
    LEDForConditionalGeneration,
    LEDForQuestionAnswering,
    LEDForSequenceClassification,
    LEDModel,
    LEDPreTrainedModel,
    shift_tokens_right,
)

__all__ = [
    "LEDConfig",
    "LEDForConditionalGeneration",
    "LEDForQuestionAnswering",
    "LEDForSequenceClassification",
    "LEDModel",
    "LEDPreTrainedModel",
    "shift_tokens_right",
]
