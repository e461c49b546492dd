"""LEDConfig: the hyper-parameters of an LED model, shared by `led_ref` and `led_torch`.

Field names and defaults are those of the public `transformers.LEDConfig`; `config.json` files written
by HF load here and the other way round. Keys this class does not know are kept in `extra` and written
back, so a round trip never loses anything.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .files import read_json, write_text_atomic
from .validation import check_window

# Activations the spec and the torch implementation both know (HF names).
ACTIVATIONS = ("gelu", "relu", "silu", "swish", "gelu_new", "tanh", "gelu_fast", "quick_gelu")
# What HF's sequence-classification head accepts (None: chosen from num_labels and the labels' dtype).
PROBLEM_TYPES = (None, "regression", "single_label_classification", "multi_label_classification")


# Keys of a transformers config's to_dict() that describe the Python object, not the model.
_HF_RUNTIME_KEYS = ("_commit_hash", "_attn_implementation_autoset", "_name_or_path", "_attn_implementation_internal")


MAX_LABELS = 1 << 20  # labels of a classification head; config.json lists each one in id2label


class ConfigError(ValueError):
    """A configuration value is out of its allowed range; the message names the field and value."""


@dataclass
class LEDConfig:
    vocab_size: int = 50265
    max_encoder_position_embeddings: int = 16384
    max_decoder_position_embeddings: int = 1024
    encoder_layers: int = 12
    encoder_ffn_dim: int = 4096
    encoder_attention_heads: int = 16
    decoder_layers: int = 12
    decoder_ffn_dim: int = 4096
    decoder_attention_heads: int = 16
    encoder_layerdrop: float = 0.0
    decoder_layerdrop: float = 0.0
    use_cache: bool = True
    is_encoder_decoder: bool = True
    activation_function: str = "gelu"
    d_model: int = 1024
    dropout: float = 0.1
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    init_std: float = 0.02
    decoder_start_token_id: int = 2
    classifier_dropout: float = 0.0
    pad_token_id: int = 1
    bos_token_id: int = 0
    eos_token_id: int = 2
    attention_window: int | list[int] = 512
    num_labels: int = 2
    problem_type: str | None = None
    # Generation parameters HF keeps on the model config (the older layout; None = unset, as HF writes them
    # next to a generation_config.json). `led_ref.io.generation_settings` decides which values generate uses.
    max_length: int | None = 20
    min_length: int | None = 0
    num_beams: int | None = 1
    length_penalty: float | None = 1.0
    early_stopping: bool | str | None = False
    no_repeat_ngram_size: int | None = 0
    forced_bos_token_id: int | None = None
    forced_eos_token_id: int | None = None
    # Everything else found in a config.json, written back untouched.
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.attention_window, tuple):
            self.attention_window = list(self.attention_window)
        self.validate()

    # ---------------------------------------------------------------- validation
    def validate(self) -> None:
        """Every non-generation field checked against what the models need (docs/reliability.md has the table,
        with HF's behaviour beside each). Raises ConfigError naming the field, the value and the limit."""
        positive = (
            "vocab_size", "max_encoder_position_embeddings", "max_decoder_position_embeddings",
            "encoder_ffn_dim", "encoder_attention_heads", "decoder_ffn_dim", "decoder_attention_heads",
            "d_model", "num_labels",
        )
        for name in positive:
            _check_int(name, getattr(self, name), minimum=1)
        if self.num_labels > MAX_LABELS:  # HF's config holds one id2label entry per label: 2**31 of them is ~100 GB
            raise ConfigError(f"num_labels must be <= {MAX_LABELS:,} (one id2label entry each), got {self.num_labels}")
        _check_int("encoder_layers", self.encoder_layers, minimum=0)
        # No decoder layer: no cross-attention (the output ignores the input) and no cache for generate.
        _check_int("decoder_layers", self.decoder_layers, minimum=1)
        for name in ("dropout", "attention_dropout", "activation_dropout", "classifier_dropout",
                     "encoder_layerdrop", "decoder_layerdrop"):
            value = getattr(self, name)
            if value is None and name == "classifier_dropout":  # HF: None means no dropout in the head
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be a probability in [0, 1], got {value!r}")
        if isinstance(self.init_std, bool) or not isinstance(self.init_std, (int, float)) \
                or not math.isfinite(self.init_std) or self.init_std < 0:
            raise ConfigError(f"init_std must be a finite number >= 0 (the std of freshly initialised weights), "
                              f"got {self.init_std!r}")
        for name in ("use_cache", "is_encoder_decoder"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if not self.is_encoder_decoder:
            raise ConfigError("is_encoder_decoder must be true: LED is an encoder-decoder model")
        for heads in ("encoder_attention_heads", "decoder_attention_heads"):
            if self.d_model % getattr(self, heads):
                raise ConfigError(
                    f"d_model={self.d_model} must be divisible by {heads}={getattr(self, heads)}"
                )
        if not isinstance(self.activation_function, str) or self.activation_function not in ACTIVATIONS:
            raise ConfigError(
                f"activation_function must be one of {', '.join(ACTIVATIONS)}; got {self.activation_function!r}"
            )
        self._check_attention_window()
        if self.problem_type not in PROBLEM_TYPES:
            raise ConfigError(f"problem_type must be one of {PROBLEM_TYPES}, got {self.problem_type!r}")
        # The encoder pads its input to a window multiple with pad_token_id, and labels' -100 become it.
        _check_int("pad_token_id", self.pad_token_id, minimum=0, below=self.vocab_size)
        for name in ("bos_token_id", "eos_token_id", "decoder_start_token_id"):
            value = getattr(self, name)
            if value is not None:
                _check_int(name, value, minimum=0, below=self.vocab_size)
        if not isinstance(self.extra, Mapping):
            raise ConfigError(f"extra must be a dict of the config.json keys LEDConfig does not know, "
                              f"got {self.extra!r}")
        _check_labels(self.extra, self.num_labels)
        from .generation_settings import check_model_config_fields

        try:
            check_model_config_fields(self)
        except (TypeError, ValueError) as err:
            raise ConfigError(str(err)) from None

    def _check_attention_window(self) -> None:
        window = self.attention_window
        if isinstance(window, list):
            if len(window) != self.encoder_layers:
                raise ConfigError(
                    f"attention_window has {len(window)} entries but encoder_layers={self.encoder_layers}; "
                    "give one even window per encoder layer or a single int"
                )
            for layer, w in enumerate(window):
                _check_window(f"attention_window[{layer}]", w)
        else:
            _check_window("attention_window", window)

    # ---------------------------------------------------------------- derived values
    @property
    def layer_windows(self) -> list[int]:
        """The (even) window of every encoder layer."""
        if isinstance(self.attention_window, list):
            return list(self.attention_window)
        return [self.attention_window] * self.encoder_layers

    @property
    def max_window(self) -> int:
        """The encoder input is padded to a multiple of this (the largest per-layer window)."""
        return max(self.layer_windows, default=self.attention_window if isinstance(self.attention_window, int) else 2)

    @property
    def hidden_size(self) -> int:
        return self.d_model

    @property
    def num_attention_heads(self) -> int:
        return self.encoder_attention_heads

    @property
    def num_hidden_layers(self) -> int:
        return self.encoder_layers

    def classification_problem(self, integer_labels: bool) -> str:
        """The sequence-classification loss for these labels: `problem_type` when set, else HF's choice,
        regression for num_labels == 1, single-label for integer labels, multi-label otherwise (both packages)."""
        if self.problem_type is not None:
            return self.problem_type
        if self.num_labels == 1:
            return "regression"
        return "single_label_classification" if integer_labels else "multi_label_classification"

    # ---------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "extra"}
        data.pop("num_labels")
        merged = dict(self.extra)
        merged.update(data)
        # HF stores the label count as id2label; keep one if the file had it, else derive it.
        if not isinstance(merged.get("id2label"), Mapping) or len(merged["id2label"]) != self.num_labels:
            merged["id2label"] = {str(i): f"LABEL_{i}" for i in range(self.num_labels)}
            merged["label2id"] = {f"LABEL_{i}": i for i in range(self.num_labels)}
        merged.setdefault("model_type", "led")
        merged.setdefault("architectures", ["LEDForConditionalGeneration"])
        merged.setdefault("tie_word_embeddings", True)
        if "num_hidden_layers" in merged:  # HF writes this alias of encoder_layers; never let it go stale
            merged["num_hidden_layers"] = self.encoder_layers
        return merged

    @classmethod
    def coerce(cls, config: Any) -> LEDConfig:
        """An LEDConfig from ours, a plain dict, or any config object with `to_dict()` (e.g. transformers'
        LEDConfig; duck-typed, transformers is never imported)."""
        if isinstance(config, LEDConfig):
            return config
        if isinstance(config, Mapping):
            return cls.from_dict(config)
        to_dict = getattr(config, "to_dict", None)
        if callable(to_dict):
            data = to_dict()
            if isinstance(data, Mapping):
                return cls.from_dict({k: v for k, v in data.items() if k not in _HF_RUNTIME_KEYS})
        raise TypeError(f"config must be an LEDConfig, a dict or a config object with to_dict() (such as "
                        f"transformers.LEDConfig), got {type(config).__module__}.{type(config).__name__}")

    @classmethod
    def for_model(cls, config: Any) -> LEDConfig:
        """The config a model is built from (both packages): coerced as above, and validated again, since configs
        are mutable and one changed after construction must be refused before it shapes a model."""
        config = cls.coerce(config)
        config.validate()
        return config

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LEDConfig:
        if not isinstance(data, Mapping):
            raise TypeError(f"config must be a mapping, got {type(data).__name__}")
        data = dict(data)
        model_type = data.get("model_type", "led")
        if model_type != "led":
            raise ConfigError(f"model_type must be 'led', got {model_type!r}")
        known = {f.name for f in fields(cls)} - {"extra"}
        kwargs = {k: data[k] for k in known if k in data}
        if "num_labels" not in data and isinstance(data.get("id2label"), Mapping):
            if not data["id2label"]:
                raise ConfigError("id2label is empty: it must name at least one label (num_labels is its length)")
            kwargs["num_labels"] = len(data["id2label"])
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(**kwargs, extra=extra)

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write `config.json` atomically (a temp file renamed into place); a config that no longer validates
        (changed after construction) is refused before anything is written."""
        self.validate()
        text = self.to_json_string()
        os.makedirs(directory, exist_ok=True)
        write_text_atomic(os.path.join(directory, "config.json"), text)

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> LEDConfig:
        data = read_json(path, what="model config", error=ConfigError)
        try:
            return cls.from_dict(data)
        except ConfigError as err:  # a value out of range: say which file holds it
            raise ConfigError(f"{os.fspath(path)!r}: {err}") from None

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> LEDConfig:
        directory = os.fspath(directory)
        if os.path.isfile(directory):
            return cls.from_json_file(directory)
        path = os.path.join(directory, "config.json")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no config.json in {directory!r}: not an HF-format LED checkpoint")
        return cls.from_json_file(path)


def _check_int(name: str, value: Any, minimum: int, below: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    if below is not None and value >= below:
        raise ConfigError(f"{name} must be < vocab_size={below}, got {value}")


def _check_labels(extra: Mapping[str, Any], num_labels: int) -> None:
    """id2label / label2id, when a file has them: HF reads id2label's keys as ints and label2id's values."""
    id2label = extra.get("id2label")
    if id2label is not None:
        if not isinstance(id2label, Mapping):
            raise ConfigError(f"id2label must be an object mapping label ids to names, got {id2label!r}")
        for key in id2label:
            if isinstance(key, bool) or not (isinstance(key, int) or (isinstance(key, str) and key.isdigit())):
                raise ConfigError(f"id2label keys must be label ids (0, 1, ...), got {key!r}")
    label2id = extra.get("label2id")
    if label2id is not None and not isinstance(label2id, Mapping):
        raise ConfigError(f"label2id must be an object mapping label names to ids, got {label2id!r}")


def _check_window(name: str, value: Any) -> None:
    """The project's one window rule (`validation.check_window`), reported as a ConfigError."""
    try:
        check_window(value, name)
    except (TypeError, ValueError) as err:
        raise ConfigError(str(err)) from None
