"""Output containers with HF's field names: attribute, key and position access.

`out.logits`, `out["logits"]` and `out[0]` all work. As in HF, positions count only the fields that are
set (not None): without labels `out[0]` is the logits, with labels it is the loss.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

Arrays = tuple[np.ndarray, ...]


class ModelOutput:
    """Mixin for the dataclasses below: HF's ModelOutput access rules."""

    def to_tuple(self) -> tuple[Any, ...]:
        """The fields that are set, in declaration order."""
        return tuple(getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None)

    def keys(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]

    def items(self) -> list[tuple[str, Any]]:
        return [(k, getattr(self, k)) for k in self.keys()]

    def __getitem__(self, key: int | slice | str) -> Any:
        if isinstance(key, str):
            if key not in self.keys():
                raise KeyError(f"{type(self).__name__} has no field {key!r} set; it has {self.keys()}")
            return getattr(self, key)
        return self.to_tuple()[key]

    def __iter__(self):
        return iter(self.to_tuple())

    def __len__(self) -> int:
        return len(self.to_tuple())

    def __contains__(self, key: str) -> bool:
        return key in self.keys()


@dataclass(eq=False)
class LEDEncoderBaseModelOutput(ModelOutput):
    """last_hidden_state (batch, seq, d); hidden_states: embeddings + every layer, each (batch, seq, d);
    attentions[l] (batch, heads, seq, x + w_l + 1); global_attentions[l] (batch, heads, padded_seq, x),
    None when no token of the batch is global."""

    last_hidden_state: np.ndarray | None = None
    hidden_states: Arrays | None = None
    attentions: Arrays | None = None
    global_attentions: Arrays | None = None


@dataclass(eq=False)
class LEDSeq2SeqModelOutput(ModelOutput):
    last_hidden_state: np.ndarray | None = None
    past_key_values: tuple[Arrays, ...] | None = None
    decoder_hidden_states: Arrays | None = None
    decoder_attentions: Arrays | None = None
    cross_attentions: Arrays | None = None
    encoder_last_hidden_state: np.ndarray | None = None
    encoder_hidden_states: Arrays | None = None
    encoder_attentions: Arrays | None = None
    encoder_global_attentions: Arrays | None = None


@dataclass(eq=False)
class LEDSeq2SeqLMOutput(ModelOutput):
    loss: float | None = None
    logits: np.ndarray | None = None
    past_key_values: tuple[Arrays, ...] | None = None
    decoder_hidden_states: Arrays | None = None
    decoder_attentions: Arrays | None = None
    cross_attentions: Arrays | None = None
    encoder_last_hidden_state: np.ndarray | None = None
    encoder_hidden_states: Arrays | None = None
    encoder_attentions: Arrays | None = None
    encoder_global_attentions: Arrays | None = None


@dataclass(eq=False)
class LEDSeq2SeqSequenceClassifierOutput(ModelOutput):
    loss: float | None = None
    logits: np.ndarray | None = None
    past_key_values: tuple[Arrays, ...] | None = None
    decoder_hidden_states: Arrays | None = None
    decoder_attentions: Arrays | None = None
    cross_attentions: Arrays | None = None
    encoder_last_hidden_state: np.ndarray | None = None
    encoder_hidden_states: Arrays | None = None
    encoder_attentions: Arrays | None = None
    encoder_global_attentions: Arrays | None = None


@dataclass(eq=False)
class LEDSeq2SeqQuestionAnsweringModelOutput(ModelOutput):
    loss: float | None = None
    start_logits: np.ndarray | None = None
    end_logits: np.ndarray | None = None
    past_key_values: tuple[Arrays, ...] | None = None
    decoder_hidden_states: Arrays | None = None
    decoder_attentions: Arrays | None = None
    cross_attentions: Arrays | None = None
    encoder_last_hidden_state: np.ndarray | None = None
    encoder_hidden_states: Arrays | None = None
    encoder_attentions: Arrays | None = None
    encoder_global_attentions: Arrays | None = None


def seq2seq_fields(out: LEDSeq2SeqModelOutput) -> dict[str, Any]:
    """The fields a task head copies from the base model's output (everything but last_hidden_state)."""
    return {f.name: getattr(out, f.name) for f in fields(out) if f.name != "last_hidden_state"}
