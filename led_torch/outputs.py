"""Output records with HF's field names. Attribute access, `out["name"]`, and `out[0]` over the fields
that are set (HF's tuple habit: `encoder_outputs[0]` is the last hidden state)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch

Tensors = tuple[torch.Tensor, ...] | None


class _Output:
    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None)

    def __getitem__(self, item):
        if isinstance(item, str):
            return getattr(self, item)
        return self.to_tuple()[item]

    def __len__(self) -> int:
        return len(self.to_tuple())

    def __iter__(self):
        return iter(self.to_tuple())

    def keys(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]


@dataclass
class LEDEncoderBaseModelOutput(_Output):
    last_hidden_state: torch.Tensor = None
    hidden_states: Tensors = None
    attentions: Tensors = None
    global_attentions: Tensors = None


@dataclass
class LEDSeq2SeqModelOutput(_Output):
    last_hidden_state: torch.Tensor = None
    past_key_values: Any = None
    decoder_hidden_states: Tensors = None
    decoder_attentions: Tensors = None
    cross_attentions: Tensors = None
    encoder_last_hidden_state: torch.Tensor = None
    encoder_hidden_states: Tensors = None
    encoder_attentions: Tensors = None
    encoder_global_attentions: Tensors = None


@dataclass
class LEDSeq2SeqLMOutput(_Output):
    loss: torch.Tensor = None
    logits: torch.Tensor = None
    past_key_values: Any = None
    decoder_hidden_states: Tensors = None
    decoder_attentions: Tensors = None
    cross_attentions: Tensors = None
    encoder_last_hidden_state: torch.Tensor = None
    encoder_hidden_states: Tensors = None
    encoder_attentions: Tensors = None
    encoder_global_attentions: Tensors = None


@dataclass
class LEDSeq2SeqSequenceClassifierOutput(LEDSeq2SeqLMOutput):
    pass


@dataclass
class LEDSeq2SeqQuestionAnsweringModelOutput(_Output):
    loss: torch.Tensor = None
    start_logits: torch.Tensor = None
    end_logits: torch.Tensor = None
    past_key_values: Any = None
    decoder_hidden_states: Tensors = None
    decoder_attentions: Tensors = None
    cross_attentions: Tensors = None
    encoder_last_hidden_state: torch.Tensor = None
    encoder_hidden_states: Tensors = None
    encoder_attentions: Tensors = None
    encoder_global_attentions: Tensors = None

