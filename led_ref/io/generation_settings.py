"""Generation settings as HF transformers 4.57 resolves them: policy shared by `led_ref` and `led_torch`.

Where a value comes from, first match wins:

    1. an explicit argument of `generate(...)`                       (None = not given)
    2. the `generation_config=` argument (a GenerationConfig, a dict, or anything with `to_dict()`); its
       values still at HF's global default are taken from the model's generation config (3), as HF >= 4.50
       does when the model's generation config was written by HF >= 4.50 (older: only the token ids). A None
       field is unset (HF 5.x leaves every field it was not given None) and takes the model's value; an
       object made by transformers >= 5 follows HF 5's rule: only its unset fields take the model's value
    3. the model's generation config: `generation_config.json` when the checkpoint has one, else the
       generation fields of `config.json` (null = unset)
    4. HF's defaults (max_length 20, num_beams 1, length_penalty 1.0, ...)

None in any config (a field HF gives a default) means unset: it reads as HF's default.

HF's legacy rule is kept too: a model whose generation config was derived from its model config (and not
changed since) follows later edits of the model config (`model.config.num_beams = 4`).

Lengths count the decoder start token, as HF's do: `max_new_tokens=n` means max_length = n + 1,
`min_new_tokens=n` means min_length = n + 1, and a max_length of exactly 20 that no argument set means 20
new tokens (21). This module decides settings only; each package applies them with its own numerics.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .outputs import ModelOutput

GENERATION_CONFIG_NAME = "generation_config.json"
FLOAT32_MAX = 3.4028234663852886e38

# HF's GenerationConfig() values for every field it knows (transformers 4.57).
HF_DEFAULTS: dict[str, Any] = {
    "max_length": 20, "max_new_tokens": None, "min_length": 0, "min_new_tokens": None, "early_stopping": False,
    "max_time": None, "stop_strings": None, "do_sample": False, "num_beams": 1, "use_cache": True,
    "cache_implementation": None, "cache_config": None, "return_legacy_cache": None, "prefill_chunk_size": None,
    "temperature": 1.0, "top_k": 50, "top_p": 1.0, "min_p": None, "typical_p": 1.0, "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0, "repetition_penalty": 1.0, "encoder_repetition_penalty": 1.0, "length_penalty": 1.0,
    "no_repeat_ngram_size": 0, "bad_words_ids": None, "renormalize_logits": False, "forced_bos_token_id": None,
    "forced_eos_token_id": None, "remove_invalid_values": False, "exponential_decay_length_penalty": None,
    "suppress_tokens": None, "begin_suppress_tokens": None, "sequence_bias": None, "token_healing": False,
    "guidance_scale": None, "watermarking_config": None, "num_return_sequences": 1, "output_attentions": False,
    "output_hidden_states": False, "output_scores": False, "output_logits": None, "return_dict_in_generate": False,
    "pad_token_id": None, "bos_token_id": None, "eos_token_id": None, "encoder_no_repeat_ngram_size": 0,
    "decoder_start_token_id": None, "is_assistant": False, "num_assistant_tokens": 20,
    "num_assistant_tokens_schedule": "constant", "assistant_confidence_threshold": 0.4,
    "prompt_lookup_num_tokens": None, "max_matching_ngram_size": None, "assistant_early_exit": None,
    "assistant_lookbehind": 10, "target_lookbehind": 10, "compile_config": None, "disable_compile": False,
    "low_memory": None, "penalty_alpha": None, "dola_layers": None, "diversity_penalty": 0.0,
    "num_beam_groups": 1, "constraints": None, "force_words_ids": None,
}

# What `generate(...)` takes as explicit arguments (each also readable from the configs).
SUPPORTED = (
    "max_length", "max_new_tokens", "min_length", "min_new_tokens", "num_beams", "length_penalty",
    "early_stopping", "no_repeat_ngram_size", "encoder_no_repeat_ngram_size", "repetition_penalty",
    "bad_words_ids", "forced_bos_token_id", "forced_eos_token_id", "num_return_sequences", "do_sample",
    "output_scores", "return_dict_in_generate", "bos_token_id", "eos_token_id", "pad_token_id",
    "decoder_start_token_id",
)
# Fields that change greedy/beam output but are not implemented: refused unless at HF's default.
UNSUPPORTED = (
    "max_time", "stop_strings", "encoder_repetition_penalty", "renormalize_logits", "remove_invalid_values",
    "exponential_decay_length_penalty", "suppress_tokens", "begin_suppress_tokens", "sequence_bias",
    "token_healing", "guidance_scale", "watermarking_config", "penalty_alpha", "dola_layers", "diversity_penalty",
    "num_beam_groups", "constraints", "force_words_ids", "prompt_lookup_num_tokens", "assistant_early_exit",
)
# HF's list of generation parameters a model config may carry (PretrainedConfig's global generation defaults).
MODEL_CONFIG_FIELDS = (
    "max_length", "min_length", "do_sample", "early_stopping", "num_beams", "temperature", "top_k", "top_p",
    "typical_p", "repetition_penalty", "length_penalty", "no_repeat_ngram_size", "encoder_no_repeat_ngram_size",
    "bad_words_ids", "num_return_sequences", "output_scores", "return_dict_in_generate", "forced_bos_token_id",
    "forced_eos_token_id", "remove_invalid_values", "exponential_decay_length_penalty", "suppress_tokens",
    "begin_suppress_tokens", "num_beam_groups", "diversity_penalty",
)
# generate() arguments HF's Seq2SeqTrainer passes that leave the tokens unchanged (accepted and ignored).
TRAINER_ARGUMENTS = ("labels", "synced_gpus")
TOKEN_FIELDS = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")
_METADATA = ("transformers_version",)


class GenerationConfig:
    """HF's generation configuration: the fields a file or a caller set, HF's defaults for the rest.

        gc = GenerationConfig(num_beams=4, length_penalty=2.0)
        gc.num_beams, gc.max_length          # 4, 20 (default)
        gc.to_dict()                         # only what was set (and metadata), as generation_config.json

    Unknown keys are kept and written back, so a round trip through a file loses nothing.
    """

    def __init__(self, **values: Any):
        object.__setattr__(self, "_values", {})
        object.__setattr__(self, "_original", None)
        for key, value in values.items():
            self._values[key] = value
        object.__setattr__(self, "_original", self._settings())

    # ---------------------------------------------------------------- attribute access like HF's object
    def __getattr__(self, name: str) -> Any:
        values = object.__getattribute__(self, "_values")
        if name in values and not _unset(name, values[name]):
            return values[name]
        if name in HF_DEFAULTS:
            return HF_DEFAULTS[name]
        if name == "_from_model_config":
            return False
        if name in _METADATA:
            return None
        raise AttributeError(f"GenerationConfig has no field {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        self._values[name] = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GenerationConfig) and self._settings() == other._settings()

    def __repr__(self) -> str:
        return f"GenerationConfig({json.dumps(self.to_dict(), sort_keys=True, default=str)})"

    def _settings(self) -> dict[str, Any]:
        """Every field's effective value (defaults included), without metadata."""
        merged = dict(HF_DEFAULTS)
        merged.update({k: v for k, v in self._values.items()
                       if not k.startswith("_") and k not in _METADATA and not _unset(k, v)})
        return merged

    def is_unset(self, name: str) -> bool:
        """Not given, or given as None (HF 5.x writes every field it was not given as None)."""
        return self._values.get(name) is None

    @property
    def modified(self) -> bool:
        """Changed since it was created (HF compares object hashes for the same purpose)."""
        return self._settings() != self._original

    def update(self, **values: Any) -> None:
        self._values.update(values)

    def copy(self) -> GenerationConfig:
        clone = GenerationConfig(**copy.deepcopy(self._values))
        object.__setattr__(clone, "_original", self._original)
        return clone

    # ---------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """What was set (defaults omitted, as HF writes), private keys such as `_from_model_config` included."""
        return {k: v for k, v in self._values.items() if k.startswith("_") or k in _METADATA
                or k not in HF_DEFAULTS or (v != HF_DEFAULTS[k] and not _unset(k, v))}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "generation_config") -> GenerationConfig:
        if not isinstance(data, Mapping):
            raise TypeError(f"{where} must be a mapping of field -> value, got {type(data).__name__}")
        bad = [k for k in data if not isinstance(k, str)]
        if bad:
            raise TypeError(f"{where} keys must be strings, got {bad[0]!r}")
        return cls(**dict(data))

    @classmethod
    def coerce(cls, value: Any, where: str = "generation_config") -> GenerationConfig:
        """A GenerationConfig from ours, a dict, or any object with `to_dict()` (e.g. transformers')."""
        if isinstance(value, GenerationConfig):
            return value.copy()
        if isinstance(value, Mapping):
            return cls.from_dict(value, where)
        to_dict = getattr(value, "to_dict", None)
        if callable(to_dict):
            data = {k: v for k, v in to_dict().items() if k not in ("_commit_hash", "_original_object_hash")}
            return cls.from_dict(data, where)
        raise TypeError(f"{where} must be a GenerationConfig, a dict or an object with to_dict(), "
                        f"got {type(value).__name__}")

    @classmethod
    def from_model_config(cls, config: Any) -> GenerationConfig:
        """HF's derivation from a model config: its generation and token fields that are not None."""
        data = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        values = {k: v for k, v in data.items() if k in HF_DEFAULTS and v is not None and k not in _METADATA}
        return cls(**values, _from_model_config=True)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> GenerationConfig:
        """Read `generation_config.json` from a checkpoint folder (or the file itself)."""
        path = os.fspath(directory)
        if os.path.isdir(path):
            path = os.path.join(path, GENERATION_CONFIG_NAME)
        from .files import read_json

        data = read_json(path, what="generation config")
        return cls.from_dict(data, where=path)

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        from .files import write_text_atomic

        os.makedirs(directory, exist_ok=True)
        write_text_atomic(os.path.join(os.fspath(directory), GENERATION_CONFIG_NAME), self.to_json_string())

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"


def _unset(name: str, value: Any) -> bool:
    """None for a field HF gives a non-None default: unset, so it reads as that default (HF 5.x style)."""
    return value is None and HF_DEFAULTS.get(name) is not None


def model_generation_config(config: Any, directory: str | os.PathLike | None = None) -> GenerationConfig:
    """What HF sets as `model.generation_config`: the folder's generation_config.json, else from config.json."""
    if directory is not None and os.path.isfile(os.path.join(os.fspath(directory), GENERATION_CONFIG_NAME)):
        return GenerationConfig.from_pretrained(directory)
    return GenerationConfig.from_model_config(config)


def non_default_model_config_fields(config: Any) -> dict[str, Any]:
    """Generation parameters a model config holds with a value other than None and HF's default."""
    data = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    return {k: data[k] for k in MODEL_CONFIG_FIELDS if k in data and data[k] is not None and data[k] != HF_DEFAULTS[k]}


def split_for_saving(config: Any, generation: GenerationConfig | None) -> tuple[dict[str, Any], GenerationConfig]:
    """(config.json content, generation config) as HF saves a model: generation parameters still on the
    model config move into the generation config (where it holds the default) and become null in config.json."""
    data = config.to_dict()
    generation = _as_ours(generation, config)
    misplaced = non_default_model_config_fields(config)
    if misplaced:
        generation = generation.copy()
        for key, value in misplaced.items():
            if getattr(generation, key) == HF_DEFAULTS[key]:
                setattr(generation, key, value)
    generation.to_json_string()  # fails here, before any file is written, if a value is not JSON
    return {k: (None if k in misplaced else v) for k, v in data.items()}, generation


# ------------------------------------------------------------------------------------------- resolution
@dataclass(eq=False)
class GenerateOutput(ModelOutput):
    """What generate returns with return_dict_in_generate=True (HF's field names), arrays of either package:
    sequences (rows, length); scores: one (rows * beams, vocab) array per step, the processed scores HF
    reports (log-probabilities for beam search), with output_scores=True; sequences_scores (rows,): the
    length-normalised beam scores of the returned sequences (beam search, output_scores=True)."""

    sequences: Any = None
    sequences_scores: Any = None
    scores: Any = None


@dataclass(frozen=True)
class GenerationSettings:
    """Everything that steers greedy and beam search, resolved and checked."""

    max_length: int
    min_length: int
    num_beams: int
    length_penalty: float
    early_stopping: bool | str
    no_repeat_ngram_size: int
    encoder_no_repeat_ngram_size: int
    repetition_penalty: float
    bad_words_ids: tuple[tuple[int, ...], ...]   # eos-only entries dropped, duplicates merged (as HF)
    forced_bos_token_id: int | None
    forced_eos_token_id: int | None
    num_return_sequences: int
    decoder_start_token_id: int
    eos_token_id: int | None
    pad_token_id: int | None
    output_scores: bool
    return_dict_in_generate: bool

    @property
    def fill_token_id(self) -> int:
        """What HF writes after a finished beam hypothesis: pad (if set and not 0), else eos, else -1."""
        if self.eos_token_id is None:
            return -1
        return self.pad_token_id or self.eos_token_id


def resolve(config: Any, model_generation: GenerationConfig | None = None, generation_config: Any = None,
            **arguments: Any) -> GenerationSettings:
    """The settings `generate` uses, from the explicit `arguments` (None = not given), the `generation_config`
    argument, the model's generation config and HF's defaults; every value checked against `config`."""
    arguments = _without_trainer_arguments(arguments)
    unknown = sorted(set(arguments) - set(SUPPORTED))
    if unknown:
        raise TypeError(f"generate() got unsupported argument(s) {unknown}; supported: {', '.join(SUPPORTED)}")
    explicit = {k: v for k, v in arguments.items() if v is not None}
    base = _follow_model_config(_as_ours(model_generation, config), config)
    if generation_config is None:
        chosen = base.copy()
    else:
        chosen = _with_model_defaults(GenerationConfig.coerce(generation_config), base)
    chosen.update(**explicit)
    return _settings(chosen, config, max_length_given="max_length" in explicit)


def _as_ours(generation: Any, config: Any) -> GenerationConfig:
    """A model's generation config as ours: HF's object (Seq2SeqTrainer's `generation_config` argument sets
    one on the model) is converted; None means the one derived from the model config."""
    if generation is None:
        return GenerationConfig.from_model_config(config)
    if isinstance(generation, GenerationConfig):
        return generation
    return GenerationConfig.coerce(generation, where="model.generation_config")


def _without_trainer_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    # HF's Seq2SeqTrainer passes these to generate; neither changes the tokens: HF's generate drops `labels`,
    # and `synced_gpus` only keeps several processes stepping together (led_torch refuses it across processes).
    synced = arguments.get("synced_gpus")
    if synced is not None and not isinstance(synced, bool):
        raise TypeError(f"synced_gpus must be True or False, got {synced!r}")
    return {k: v for k, v in arguments.items() if k not in TRAINER_ARGUMENTS}


def _follow_model_config(base: GenerationConfig, config: Any) -> GenerationConfig:
    # HF's legacy rule: a generation config derived from the model config, untouched since, follows the
    # model config when that holds generation parameters.
    if base._from_model_config and not base.modified and non_default_model_config_fields(config):
        fresh = GenerationConfig.from_model_config(config)
        if fresh != base:
            return fresh
    return base


def _with_model_defaults(given: GenerationConfig, base: GenerationConfig) -> GenerationConfig:
    if _made_by_hf5(given):
        # HF 5: the fields the passed config leaves unset (None) take the model's value; set ones stay, even
        # where they equal the global default.
        for key, value in base._settings().items():
            if given.is_unset(key):
                setattr(given, key, value)
    elif _version_at_least(base.transformers_version, (4, 50)):
        # HF >= 4.50: fields of the passed config at the global default (or unset) take the model's value.
        for key, value in base._settings().items():
            if getattr(given, key) == HF_DEFAULTS.get(key) and value != HF_DEFAULTS.get(key):
                setattr(given, key, value)
    else:
        # an older model file: HF fills in only the token ids; a None elsewhere is unset, so the model's value
        for key in TOKEN_FIELDS:
            if getattr(given, key) is None:
                setattr(given, key, getattr(base, key))
        for key in [k for k, v in given._values.items() if _unset(k, v)]:
            setattr(given, key, getattr(base, key))
    return given


def _made_by_hf5(given: GenerationConfig) -> bool:
    """An object (or its dict) written by transformers >= 5, whose unset fields are None."""
    version = given.transformers_version
    return isinstance(version, str) and _version_at_least(version, (5, 0))


def _version_at_least(version: Any, minimum: tuple[int, int]) -> bool:
    if not isinstance(version, str):
        return True  # derived here, not read from an old file: behave as the current HF
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts) >= minimum


def _settings(g: GenerationConfig, config: Any, max_length_given: bool) -> GenerationSettings:
    for name in UNSUPPORTED:
        value = getattr(g, name)
        if value != HF_DEFAULTS[name] and value is not None:
            raise ValueError(f"generation setting {name}={value!r} is not supported (only HF's default "
                             f"{HF_DEFAULTS[name]!r}); pass {name}={HF_DEFAULTS[name]!r} in generation_config")
    if _flag("do_sample", g.do_sample):
        raise ValueError("do_sample=True is not supported: only deterministic greedy and beam search are "
                         "implemented; pass do_sample=False (also when the checkpoint's generation config sets it)")
    vocab = config.vocab_size
    max_positions = config.max_decoder_position_embeddings
    if g.max_new_tokens is not None:
        max_length = 1 + _count("max_new_tokens", g.max_new_tokens, 1)
    else:
        max_length = _count("max_length", g.max_length, 2)
        if not max_length_given and max_length == HF_DEFAULTS["max_length"]:
            max_length += 1  # HF: an untouched default of 20 means 20 new tokens after the start token
    if max_length - 1 > max_positions:
        raise ValueError(f"max_length={max_length} needs {max_length - 1} decoder positions but "
                         f"max_decoder_position_embeddings={max_positions}")
    if g.min_new_tokens is not None:
        min_length = 1 + _count("min_new_tokens", g.min_new_tokens, 0)
    else:
        min_length = _count("min_length", 0 if g.min_length is None else g.min_length, 0)
    num_beams = _count("num_beams", g.num_beams, 1)
    num_return = _count("num_return_sequences", g.num_return_sequences, 1)
    if num_return > num_beams:
        raise ValueError(f"num_return_sequences={num_return} must be <= num_beams={num_beams} "
                         "(greedy and beam search return at most one sequence per beam)")
    early = g.early_stopping
    if not (isinstance(early, bool) or early == "never"):
        raise ValueError(f"early_stopping must be True, False or 'never', got {early!r}")
    penalty = _number("length_penalty", g.length_penalty)
    if max_length > 2 and abs(penalty) * math.log(max_length - 1) >= math.log(FLOAT32_MAX):
        limit = math.log(FLOAT32_MAX) / math.log(max_length - 1)
        raise ValueError(f"length_penalty={penalty} is out of range for max_length={max_length}: "
                         f"(max_length - 1) ** |length_penalty| must stay below float32's largest value, "
                         f"so |length_penalty| < {limit:.1f}")
    repetition = _number("repetition_penalty", g.repetition_penalty)
    if repetition <= 0.0:
        raise ValueError(f"repetition_penalty must be > 0, got {repetition}")
    eos = _single_token("eos_token_id", g.eos_token_id, vocab)
    pad = _token("pad_token_id", g.pad_token_id, vocab)
    bos = _token("bos_token_id", g.bos_token_id, vocab)
    start = _token("decoder_start_token_id", g.decoder_start_token_id, vocab)
    start = bos if start is None else start  # HF falls back to bos
    if start is None:
        raise ValueError("decoder_start_token_id and bos_token_id are both unset: no token to start decoding with")
    pad = eos if pad is None else pad  # HF falls back to eos
    return GenerationSettings(
        max_length=max_length, min_length=min_length, num_beams=num_beams, length_penalty=penalty,
        early_stopping=early,
        no_repeat_ngram_size=_count("no_repeat_ngram_size", 0 if g.no_repeat_ngram_size is None
                                    else g.no_repeat_ngram_size, 0),
        encoder_no_repeat_ngram_size=_count("encoder_no_repeat_ngram_size", 0 if g.encoder_no_repeat_ngram_size
                                            is None else g.encoder_no_repeat_ngram_size, 0),
        repetition_penalty=repetition,
        bad_words_ids=_bad_words(g.bad_words_ids, eos, vocab),
        forced_bos_token_id=_token("forced_bos_token_id", g.forced_bos_token_id, vocab),
        forced_eos_token_id=_single_token("forced_eos_token_id", g.forced_eos_token_id, vocab),
        num_return_sequences=num_return, decoder_start_token_id=start, eos_token_id=eos, pad_token_id=pad,
        output_scores=_flag("output_scores", g.output_scores),
        return_dict_in_generate=_flag("return_dict_in_generate", g.return_dict_in_generate),
    )


def explicit_arguments(s: GenerationSettings) -> dict[str, Any]:
    """generate() arguments that give exactly `s` in both packages and in HF, whatever model config or
    generation config the receiving model holds (the parity harness passes them to every side)."""
    out: dict[str, Any] = dict(
        max_length=s.max_length, min_length=s.min_length, num_beams=s.num_beams, length_penalty=s.length_penalty,
        early_stopping=s.early_stopping, no_repeat_ngram_size=s.no_repeat_ngram_size,
        encoder_no_repeat_ngram_size=s.encoder_no_repeat_ngram_size, repetition_penalty=s.repetition_penalty,
        num_return_sequences=s.num_return_sequences, decoder_start_token_id=s.decoder_start_token_id,
    )
    for name in ("eos_token_id", "pad_token_id", "forced_bos_token_id", "forced_eos_token_id"):
        if getattr(s, name) is not None:
            out[name] = getattr(s, name)
    if s.bad_words_ids:
        out["bad_words_ids"] = [list(w) for w in s.bad_words_ids]
    return out


# ------------------------------------------------------------------------------------------- field checks
def _count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"{name} must be a number (finite), got {value!r}")
    return float(value)


def _flag(name: str, value: Any) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def _token(name: str, value: Any, vocab: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a token id (int), got {value!r}")
    if not 0 <= value < vocab:
        raise ValueError(f"{name}={value} must lie in [0, vocab_size={vocab})")
    return int(value)


def _single_token(name: str, value: Any, vocab: int) -> int | None:
    # HF allows lists of end tokens; a one-element list is the same as its element.
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ValueError(f"{name}={value!r}: only a single token id is supported")
        value = value[0]
    return _token(name, value, vocab)


def _bad_words(value: Any, eos: int | None, vocab: int) -> tuple[tuple[int, ...], ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"bad_words_ids must be a non-empty list of lists of token ids, got {value!r}")
    out: dict[tuple[int, ...], None] = {}
    for i, word in enumerate(value):
        if not isinstance(word, (list, tuple)) or not word:
            raise ValueError(f"bad_words_ids[{i}] must be a non-empty list of token ids, got {word!r}")
        ids = tuple(_token(f"bad_words_ids[{i}]", t, vocab) for t in word)
        if eos is not None and ids == (eos,):
            continue  # HF never bans the end token alone
        out[ids] = None
    return tuple(out)


def check_model_config_fields(config: Any) -> None:
    """The generation fields a model config carries, checked where they can break a later `generate`.

    None means unset (HF writes nulls into config.json when generation_config.json holds the values)."""
    vocab = config.vocab_size
    for name in ("max_length", "min_length", "num_beams", "no_repeat_ngram_size", "num_return_sequences",
                 "encoder_no_repeat_ngram_size"):
        value = getattr(config, name, None)
        if value is not None:
            _count(name, value, {"max_length": 1, "num_beams": 1, "num_return_sequences": 1}.get(name, 0))
    for name in ("length_penalty", "repetition_penalty"):
        value = getattr(config, name, None)
        if value is not None:
            _number(name, value)
    early = getattr(config, "early_stopping", None)
    if early is not None and not (isinstance(early, bool) or early == "never"):
        raise ValueError(f"early_stopping must be True, False or 'never', got {early!r}")
    _token("forced_bos_token_id", getattr(config, "forced_bos_token_id", None), vocab)
    _single_token("forced_eos_token_id", getattr(config, "forced_eos_token_id", None), vocab)
