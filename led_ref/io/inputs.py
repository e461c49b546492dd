"""The inputs every LED class takes, by HF's keyword names, as one value both packages pass around.

Each public forward keeps HF's signature (so `model(input_ids=..., labels=...)` reads as in HF) and collects
the shared arguments with `Seq2SeqInputs.pick(locals())`; the heads add only their own (labels, positions).
Array-type agnostic: the fields hold NumPy arrays in led_ref and torch tensors in led_torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from .outputs import LEDEncoderBaseModelOutput
from .validation import check_flag


@dataclass(frozen=True)
class Seq2SeqInputs:
    """LEDModel's forward arguments (HF's names and defaults), shared by the four classes of each package."""

    input_ids: Any = None
    attention_mask: Any = None
    global_attention_mask: Any = None
    decoder_input_ids: Any = None
    decoder_attention_mask: Any = None
    head_mask: Any = None
    decoder_head_mask: Any = None
    cross_attn_head_mask: Any = None
    encoder_outputs: Any = None
    past_key_values: Any = None
    inputs_embeds: Any = None
    decoder_inputs_embeds: Any = None
    use_cache: Any = None
    output_attentions: Any = False
    output_hidden_states: Any = False

    @classmethod
    def pick(cls, arguments: Mapping[str, Any]) -> Seq2SeqInputs:
        """The shared inputs among a call's arguments (`locals()` of a forward with HF's signature); a name the
        forward does not take (past_key_values on the classification heads) keeps its default."""
        return cls(**{f.name: arguments[f.name] for f in fields(cls) if f.name in arguments})

    def kwargs(self) -> dict[str, Any]:
        """The fields as keyword arguments (no copies, unlike dataclasses.asdict)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def but(self, **changes: Any) -> Seq2SeqInputs:
        """A copy with `changes` (e.g. `use_cache=False` for a call with labels)."""
        return replace(self, **changes)

    def with_switches(self, default_use_cache: bool) -> Seq2SeqInputs:
        """The three switches checked (None, a bool or 0/1) and resolved: the output switches become bools,
        use_cache=None takes `default_use_cache` (the config's), as HF does."""
        use_cache = check_flag("use_cache", self.use_cache)
        return replace(self, use_cache=default_use_cache if use_cache is None else use_cache,
                       output_attentions=bool(check_flag("output_attentions", self.output_attentions)),
                       output_hidden_states=bool(check_flag("output_hidden_states", self.output_hidden_states)))


def as_encoder_output(encoder_outputs: Any, tensor_type: type) -> LEDEncoderBaseModelOutput:
    """A given `encoder_outputs`: the encoder's output object, a bare last hidden state of `tensor_type`
    (np.ndarray or torch.Tensor), or HF's tuple habit (last_hidden_state, hidden_states, attentions, global).
    The caller checks the hidden state's shape and values."""
    if isinstance(encoder_outputs, LEDEncoderBaseModelOutput):
        return encoder_outputs
    if isinstance(encoder_outputs, tensor_type):
        return LEDEncoderBaseModelOutput(encoder_outputs)
    if isinstance(encoder_outputs, (tuple, list)) and len(encoder_outputs) > 0:
        items = tuple(encoder_outputs) + (None,) * 3
        return LEDEncoderBaseModelOutput(*items[:4])
    raise TypeError("encoder_outputs must be the encoder's output or a tuple whose first item is the last hidden "
                    f"state, got {type(encoder_outputs).__name__}")


def generate_input_ids(input_ids: Any, inputs: Any) -> Any:
    """generate's token ids, given as `input_ids` or by HF's name `inputs` (exactly one)."""
    if inputs is not None:
        if input_ids is not None:
            raise ValueError("generate got both inputs and input_ids (the same argument under HF's two names); "
                             "give one")
        return inputs
    if input_ids is None:
        raise ValueError("generate needs input_ids (the encoder's token ids, also accepted as inputs=)")
    return input_ids
