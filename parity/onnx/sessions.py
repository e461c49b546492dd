"""ONNX Runtime sessions over an LED export folder, with the files' input and output names mapped onto LED's.

The folder layout and names are optimum's (what ORTModelForSeq2SeqLM loads):

    encoder_model.onnx              input_ids, [attention_mask], [global_attention_mask] -> last_hidden_state
    decoder_model.onnx              input_ids, [encoder_attention_mask], encoder_hidden_states
                                    -> logits, [present.{i}.decoder.key/value, present.{i}.encoder.key/value]
    decoder_with_past_model.onnx    input_ids, [encoder_attention_mask],
                                    past_key_values.{i}.{decoder,encoder}.{key,value}
                                    -> logits, present.{i}.decoder.key/value

Each file's own input names are read and mapped; an input that is not one of these (optimum's merged decoder's
`use_cache_branch`, a `token_type_ids`, a renamed mask) is a usage error naming it, never guessed at. Inputs are
fed in the dtype the file declares (int64 or int32 ids, float32 or float16 states).

    onnx = OnnxLED.open("exported/")
    hidden = onnx.encode(input_ids, attention_mask, global_attention_mask)   # (batch, seq, d) numpy
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

import numpy as np

ENCODER_FILE = "encoder_model.onnx"
DECODER_FILE = "decoder_model.onnx"
DECODER_WITH_PAST_FILE = "decoder_with_past_model.onnx"
NOT_AUDITED = ("decoder_model_merged.onnx",)  # optimum's merged decoder (`use_cache_branch`): not supported yet
TRACED_SHAPES_KEY = "led_parity.traced_shapes"  # written by parity.onnx.export
ATTENTION_KEY = "led_parity.attention"  # written by parity.onnx.export: dense or banded
CHECKPOINT_KEY = "led_parity.checkpoint"  # written by parity.onnx.export: the folder the weights came from

ENCODER_INPUTS = ("input_ids", "attention_mask", "global_attention_mask")
DECODER_INPUTS = ("input_ids", "encoder_attention_mask", "encoder_hidden_states")
PAST = re.compile(r"^past_key_values\.(\d+)\.(decoder|encoder)\.(key|value)$")
PRESENT = re.compile(r"^present\.(\d+)\.(decoder|encoder)\.(key|value)$")
ONNX_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(float)": np.float32,
              "tensor(float16)": np.float16, "tensor(double)": np.float64, "tensor(bool)": np.bool_}
DTYPE_NAMES = {np.float32: "float32", np.float16: "float16", np.float64: "float64"}


class OnnxFolderError(ValueError):
    """The folder or a file in it cannot be audited as an LED export (an input error: exit 2)."""


class OnnxRunError(RuntimeError):
    """ONNX Runtime refused or failed a run (a finding of the audit, not a usage error)."""


@dataclass
class OnnxFile:
    """One ONNX file in an ONNX Runtime session: its inputs (name -> (numpy dtype, declared shape)), its outputs,
    and the shapes it was traced at when the exporter recorded them."""

    name: str
    session: object
    inputs: dict[str, tuple[type, list]]
    outputs: dict[str, tuple[type, list]]
    traced: dict | None = None

    def output_dtype(self, name: str) -> str:
        return DTYPE_NAMES.get(self.outputs[name][0], "float32")

    def fixed_axes(self) -> dict[str, dict[int, int]]:
        """Axes the file declares with a fixed size: {input: {axis: size}} (the hidden size excluded)."""
        fixed = {}
        for name, (_, shape) in self.inputs.items():
            axes = {axis: size for axis, size in enumerate(shape[:2]) if isinstance(size, int)}
            if axes:
                fixed[name] = axes
        return fixed

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The file's outputs by name, for `feed` cast to the declared dtypes; an ONNX Runtime failure is an
        OnnxRunError with its message on one line."""
        cast = {name: np.ascontiguousarray(value, dtype=self.inputs[name][0]) for name, value in feed.items()
                if name in self.inputs}
        try:
            values = self.session.run(None, cast)
        except Exception as err:  # noqa: BLE001 - ORT's own exception types carry no common base
            raise OnnxRunError(f"{self.name}: onnxruntime raised {short_message(err)}") from None
        return dict(zip(self.outputs, values, strict=True))


@dataclass
class OnnxLED:
    """The LED files of an export folder, each in its own ONNX Runtime session."""

    directory: str
    encoder: OnnxFile
    decoder: OnnxFile | None = None
    decoder_with_past: OnnxFile | None = None
    layers: int = 0  # decoder layers, from the names of the cached keys and values
    not_audited: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, directory: str) -> OnnxLED:
        """Every LED file in `directory`; a missing folder or encoder, a file ONNX Runtime cannot load, or a name
        that cannot be mapped is an OnnxFolderError (exit 2)."""
        if not os.path.isdir(directory):
            raise OnnxFolderError(f"ONNX_DIR {directory!r} is not a folder")
        if not os.path.isfile(os.path.join(directory, ENCODER_FILE)):
            found = sorted(f for f in os.listdir(directory) if f.endswith(".onnx"))
            raise OnnxFolderError(f"no {ENCODER_FILE} in {directory!r} (ONNX files there: "
                                  f"{', '.join(found) or 'none'}); an LED export has optimum's layout: "
                                  f"{ENCODER_FILE}, {DECODER_FILE}, {DECODER_WITH_PAST_FILE}")
        encoder = load_file(directory, ENCODER_FILE)
        check_names(encoder, ENCODER_INPUTS, ("input_ids",), ("last_hidden_state",))
        onnx = cls(directory, encoder)
        for name in (DECODER_FILE, DECODER_WITH_PAST_FILE):
            if os.path.isfile(os.path.join(directory, name)):
                setattr(onnx, "decoder" if name == DECODER_FILE else "decoder_with_past", load_file(directory, name))
        if onnx.decoder is not None:
            check_names(onnx.decoder, DECODER_INPUTS, ("input_ids", "encoder_hidden_states"), ("logits",))
            onnx.layers = layer_count(onnx.decoder.outputs, PRESENT)
        if onnx.decoder_with_past is not None:
            past = onnx.decoder_with_past
            check_names(past, DECODER_INPUTS, ("input_ids",), ("logits",))
            layers = layer_count(past.inputs, PAST)
            if not layers:
                raise OnnxFolderError(f"{DECODER_WITH_PAST_FILE} takes no past_key_values.N.(decoder|encoder)."
                                      f"(key|value) inputs; its inputs are {', '.join(past.inputs)}")
            missing = [n for i in range(layers) for n in (f"present.{i}.decoder.key", f"present.{i}.decoder.value")
                       if n not in past.outputs]
            if missing:
                raise OnnxFolderError(f"{DECODER_WITH_PAST_FILE} does not output {missing[0]} (the extended cache)")
            if onnx.layers and layers != onnx.layers:
                raise OnnxFolderError(f"{DECODER_FILE} has {onnx.layers} decoder layers but {DECODER_WITH_PAST_FILE} "
                                      f"{layers}")
            onnx.layers = layers
        onnx.not_audited = [f for f in NOT_AUDITED if os.path.isfile(os.path.join(directory, f))]
        return onnx

    @property
    def files(self) -> list[OnnxFile]:
        return [f for f in (self.encoder, self.decoder, self.decoder_with_past) if f is not None]

    def check_config(self, config) -> None:
        """The hidden size and vocabulary the files declare must be the checkpoint's (OnnxFolderError otherwise)."""
        checks = [(self.encoder, "last_hidden_state", config.d_model, "d_model")]
        for f in (self.decoder, self.decoder_with_past):
            if f is not None:
                checks.append((f, "logits", config.vocab_size, "vocab_size"))
        for f, output, expected, field_name in checks:
            size = f.outputs[output][1][-1] if f.outputs[output][1] else None
            if isinstance(size, int) and size != expected:
                raise OnnxFolderError(f"{f.name} outputs {output} of size {size} on its last axis, but the "
                                      f"checkpoint's {field_name} is {expected}: the ONNX files are not an export "
                                      f"of this checkpoint")
        if self.layers and self.layers != config.decoder_layers:
            raise OnnxFolderError(f"the decoder files have {self.layers} layers, the checkpoint "
                                  f"{config.decoder_layers}")

    # ------------------------------------------------------------------------------------- runs
    def encode(self, input_ids, attention_mask, global_attention_mask) -> np.ndarray:
        feed = {"input_ids": input_ids, "attention_mask": attention_mask,
                "global_attention_mask": global_attention_mask}
        return self.encoder.run(feed)["last_hidden_state"]

    def decode(self, input_ids, encoder_attention_mask, encoder_hidden_states):
        """decoder_model.onnx -> (logits, presents: {layer: {"decoder.key": ..., ...}})."""
        out = self.decoder.run({"input_ids": input_ids, "encoder_attention_mask": encoder_attention_mask,
                                "encoder_hidden_states": encoder_hidden_states})
        return out["logits"], presents(out)

    def decode_with_past(self, input_ids, encoder_attention_mask, past: dict, encoder_hidden_states=None):
        """decoder_with_past_model.onnx with `past` ({layer: {"decoder.key": ..., "encoder.key": ..., ...}})
        -> (logits, presents of the self-attention)."""
        feed = {"input_ids": input_ids, "encoder_attention_mask": encoder_attention_mask,
                "encoder_hidden_states": encoder_hidden_states}
        for layer, parts in past.items():
            for part, value in parts.items():
                feed[f"past_key_values.{layer}.{part}"] = value
        missing = [n for n in self.decoder_with_past.inputs if n not in feed or feed[n] is None]
        if missing:
            raise OnnxRunError(f"{DECODER_WITH_PAST_FILE}: no value for its input {missing[0]}")
        out = self.decoder_with_past.run(feed)
        return out["logits"], presents(out)


def short_message(err: Exception, limit: int = 300) -> str:
    """ONNX Runtime's message on one line without its status prefix and C++ source locations, cut at `limit`."""
    text = " ".join(str(err).split())
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    text = re.sub(r"/onnxruntime_src/\S+:\d+ ", "", text)
    text = re.sub(r"[\w:]+::[\w]+\([^()]*\) ", "", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def presents(outputs: dict[str, np.ndarray]) -> dict[int, dict[str, np.ndarray]]:
    """present.{i}.{decoder,encoder}.{key,value} outputs grouped by layer: {i: {"decoder.key": array, ...}}."""
    grouped: dict[int, dict[str, np.ndarray]] = {}
    for name, value in outputs.items():
        match = PRESENT.match(name)
        if match:
            grouped.setdefault(int(match.group(1)), {})[f"{match.group(2)}.{match.group(3)}"] = value
    return grouped


def layer_count(names, pattern: re.Pattern) -> int:
    layers = {int(m.group(1)) for m in map(pattern.match, names) if m}
    return max(layers) + 1 if layers else 0


def load_file(directory: str, name: str) -> OnnxFile:
    """`name` in an ONNX Runtime CPU session (warnings silenced); a file it cannot load is a OnnxFolderError."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # fatal only: a failed run is reported by the audit, not logged to stderr
    path = os.path.join(directory, name)
    try:
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 - InvalidProtobuf, InvalidGraph, NotImplemented, ...
        raise OnnxFolderError(f"{path} is not an ONNX file ONNX Runtime can load: "
                              f"{' '.join(str(err).split())}") from None

    def described(args):
        out = {}
        for arg in args:
            if arg.type not in ONNX_TYPES:
                raise OnnxFolderError(f"{path}: {arg.name} has type {arg.type}, which an LED file does not use")
            out[arg.name] = (ONNX_TYPES[arg.type], list(arg.shape or []))
        return out

    traced = session.get_modelmeta().custom_metadata_map.get(TRACED_SHAPES_KEY)
    try:
        traced = json.loads(traced) if traced else None
    except ValueError:
        traced = None
    return OnnxFile(name, session, described(session.get_inputs()), described(session.get_outputs()), traced)


def check_names(f: OnnxFile, known: tuple[str, ...], required: tuple[str, ...], outputs: tuple[str, ...]) -> None:
    """Every input of `f` must be one of `known` (or a cached key/value), every `required` one present, and the
    `outputs` among its outputs; otherwise a OnnxFolderError naming what could not be mapped."""
    for name in f.inputs:
        if name not in known and not PAST.match(name):
            raise OnnxFolderError(f"{f.name} has an input {name!r} that is not an LED input (known: "
                                  f"{', '.join(known)}, past_key_values.N.(decoder|encoder).(key|value)); it cannot "
                                  f"be fed")
    for name in required:
        if name not in f.inputs:
            raise OnnxFolderError(f"{f.name} has no input {name!r} (its inputs: {', '.join(f.inputs)})")
    for name in outputs:
        if name not in f.outputs:
            raise OnnxFolderError(f"{f.name} has no output {name!r} (its outputs: {', '.join(f.outputs)})")
