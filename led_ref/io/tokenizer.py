"""LEDTokenizer: LED's byte-level BPE tokenizer (RoBERTa's), on the `tokenizers` library, with HF's behaviour.

The `tokenizers` library does the byte-level BPE (text -> token ids, ids -> text); everything an LED model
adds around it is plain Python here, one function per rule, so it can be read and checked:

    single text:  <s> X </s>                 pair:  <s> A </s></s> B </s>
    attention_mask 1 on tokens, 0 on padding; token_type_ids all 0 (LED has no segment embedding)
    padding on the right with <pad>; truncation from the right

Files: `vocab.json` + `merges.txt` (or a `tokenizer.json`), optionally `tokenizer_config.json` and
`special_tokens_map.json`, exactly as HF's `LEDTokenizer` / `LEDTokenizerFast` read and write them.

    >>> tok = LEDTokenizer.from_pretrained(default_checkpoint_dir())       # doctest: +SKIP
    >>> tok(["a short text", "a longer text here"], padding=True, return_tensors="np")["input_ids"].shape
    (2, 6)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

from .files import describe, read_json

VOCAB_FILE = "vocab.json"
MERGES_FILE = "merges.txt"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_FILE = "special_tokens_map.json"
ADDED_TOKENS_FILE = "added_tokens.json"
# HF's stand-in for "no maximum length" (int(1e30)).
NO_MAX_LENGTH = int(1e30)
SPECIAL_ROLES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
DEFAULT_SPECIALS = {
    "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
    "pad_token": "<pad>", "cls_token": "<s>", "mask_token": "<mask>",
}
PADDING = {True: "longest", "longest": "longest", "max_length": "max_length", False: None, "do_not_pad": None}
TRUNCATION = {
    True: "longest_first", "longest_first": "longest_first", "only_first": "only_first",
    "only_second": "only_second", False: None, "do_not_truncate": None, None: None,
}


class Encoding(dict):
    """What a tokenizer call returns: a dict (`enc["input_ids"]`) whose keys are also attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def to(self, device: Any) -> Encoding:
        """Move torch tensors to `device` (as HF's BatchEncoding.to); other values are kept."""
        return Encoding({k: (v.to(device) if hasattr(v, "to") else v) for k, v in self.items()})


class LEDTokenizer:
    """Byte-level BPE with LED's special tokens, padding and truncation (HF's `LEDTokenizer` behaviour)."""

    model_input_names = ("input_ids", "attention_mask")

    def __init__(
        self,
        vocab: Mapping[str, int],
        merges: Sequence[tuple[str, str]],
        add_prefix_space: bool = False,
        model_max_length: int = NO_MAX_LENGTH,
        clean_up_tokenization_spaces: bool = False,
        added_tokens: Sequence[Mapping[str, Any]] = (),
        **special_tokens: str,
    ) -> None:
        unknown = set(special_tokens) - set(SPECIAL_ROLES)
        if unknown:
            raise TypeError(f"unknown special token role(s) {sorted(unknown)}; known: {', '.join(SPECIAL_ROLES)}")
        if isinstance(model_max_length, bool) or not isinstance(model_max_length, int) or model_max_length < 1:
            raise ValueError(f"model_max_length must be a positive int, got {model_max_length!r}")
        check_vocab(vocab, "vocab")
        self.vocab = dict(vocab)
        self.merges = [tuple(pair) for pair in merges]
        check_merges(self.merges, self.vocab, "merges")
        self.add_prefix_space = bool(add_prefix_space)
        self.model_max_length = model_max_length
        self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)
        self.special_tokens = DEFAULT_SPECIALS | special_tokens
        for role, token in self.special_tokens.items():
            if token not in self.vocab:
                raise ValueError(f"{role}={token!r} is not in the vocabulary ({len(self.vocab)} tokens)")
        # Tokens added on top of the BPE vocabulary (HF's add_tokens / additional_special_tokens): matched whole.
        self.added_tokens = [dict(t) for t in added_tokens if t["content"] not in self.special_tokens.values()]
        for token in self.added_tokens:
            if token.get("id") is not None:
                self.vocab.setdefault(token["content"], int(token["id"]))
            self.vocab.setdefault(token["content"], len(self.vocab))
        self.additional_special_tokens = [t["content"] for t in self.added_tokens if t.get("special")]
        self._backend = byte_level_bpe(
            self.vocab, self.merges, self.all_special_tokens, self.special_tokens["mask_token"]
        )
        for token in self.added_tokens:
            added = AddedToken(token["content"], lstrip=bool(token.get("lstrip", False)),
                               rstrip=bool(token.get("rstrip", False)),
                               single_word=bool(token.get("single_word", False)),
                               normalized=bool(token.get("normalized", not token.get("special", False))),
                               special=bool(token.get("special", False)))
            (self._backend.add_special_tokens if token.get("special") else self._backend.add_tokens)([added])
        self._id_to_token = {i: t for t, i in self.vocab.items()}

    # ------------------------------------------------------------------------------ files
    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, **overrides: Any) -> LEDTokenizer:
        """Read `vocab.json` + `merges.txt` (or `tokenizer.json`) and the optional HF config files."""
        directory = os.fspath(directory)
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"tokenizer folder {directory!r} does not exist")
        settings = _read_settings(directory)
        if "added_tokens" not in settings:
            settings["added_tokens"] = read_added_tokens(directory)
        vocab_path, merges_path = os.path.join(directory, VOCAB_FILE), os.path.join(directory, MERGES_FILE)
        if os.path.isfile(vocab_path) and os.path.isfile(merges_path):
            source = VOCAB_FILE
            vocab, merges = read_vocab(vocab_path), read_merges(merges_path)
            check_merges(merges, vocab, f"{merges_path!r} (against {VOCAB_FILE})")
        elif os.path.isfile(os.path.join(directory, TOKENIZER_FILE)):
            source = TOKENIZER_FILE
            vocab, merges, prefix = read_tokenizer_json(os.path.join(directory, TOKENIZER_FILE))
            check_merges(merges, vocab, repr(os.path.join(directory, TOKENIZER_FILE)))
            settings.setdefault("add_prefix_space", prefix)
        else:
            raise FileNotFoundError(
                f"no tokenizer in {directory!r}: looked for {VOCAB_FILE} + {MERGES_FILE}, or {TOKENIZER_FILE}"
            )
        try:
            return cls(vocab, merges, **(settings | overrides))
        except ValueError as err:  # e.g. a special token missing from the vocabulary: name the file it came from
            raise ValueError(f"tokenizer in {directory!r} (vocabulary from {source}): {err}") from None

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write vocab.json, merges.txt, tokenizer_config.json and special_tokens_map.json (HF's layout)."""
        from .config import write_text_atomic  # one atomic writer for the whole package

        directory = os.fspath(directory)
        os.makedirs(directory, exist_ok=True)
        write_text_atomic(os.path.join(directory, VOCAB_FILE), vocab_json(self.vocab))
        write_text_atomic(os.path.join(directory, MERGES_FILE), merges_text(self.merges))
        specials = {role: token for role, token in self.special_tokens.items()}
        # HF marks <mask> lstrip: "a <mask>" drops the space before the mask.
        specials["mask_token"] = {"content": specials["mask_token"], "lstrip": True, "rstrip": False,
                                  "normalized": False, "single_word": False}
        config = {
            "add_prefix_space": self.add_prefix_space,
            "clean_up_tokenization_spaces": self.clean_up_tokenization_spaces,
            "errors": "replace", "model_max_length": self.model_max_length, "tokenizer_class": "LEDTokenizer",
        } | specials
        write_text_atomic(os.path.join(directory, CONFIG_FILE), json.dumps(config, indent=2, sort_keys=True) + "\n")
        write_text_atomic(
            os.path.join(directory, SPECIAL_TOKENS_FILE), json.dumps(specials, indent=2, sort_keys=True) + "\n"
        )

    # ------------------------------------------------------------------------------ vocabulary
    def __len__(self) -> int:
        return len(self.vocab)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def get_vocab(self) -> dict[str, int]:
        return dict(self.vocab)

    def __getattr__(self, name: str) -> Any:
        # bos_token, pad_token_id, ... for every special role
        specials = self.__dict__.get("special_tokens", {})
        if name in specials:
            return specials[name]
        if name.endswith("_id") and name[:-3] in specials:
            return self.vocab[specials[name[:-3]]]
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    @property
    def all_special_tokens(self) -> list[str]:
        roles = [self.special_tokens[r] for r in SPECIAL_ROLES]
        return list(dict.fromkeys(roles + list(self.__dict__.get("additional_special_tokens", []))))

    @property
    def all_special_ids(self) -> list[int]:
        return [self.vocab[t] for t in self.all_special_tokens]

    def convert_tokens_to_ids(self, tokens: str | Iterable[str]) -> int | list[int]:
        """Id of each token; tokens outside the vocabulary map to `<unk>`, as HF does."""
        if isinstance(tokens, str):
            return self.vocab.get(tokens, self.unk_token_id)
        return [self.vocab.get(t, self.unk_token_id) for t in tokens]

    def convert_ids_to_tokens(self, ids: int | Iterable[int], skip_special_tokens: bool = False) -> str | list[str]:
        if isinstance(ids, int):
            return self._token(ids)
        special = set(self.all_special_ids)
        return [self._token(i) for i in _int_list(ids, "ids") if not (skip_special_tokens and i in special)]

    def _token(self, index: int) -> str:
        if index not in self._id_to_token:
            raise ValueError(f"token id {index} is outside the vocabulary [0, {len(self.vocab)})")
        return self._id_to_token[index]

    # ------------------------------------------------------------------------------ text -> ids
    def tokenize(self, text: str, add_prefix_space: bool | None = None) -> list[str]:
        """The BPE tokens of `text` (byte-level symbols: 'Ġ' stands for a space), no special tokens added."""
        return self.convert_ids_to_tokens(self._encode_texts([_check_text(text, "text")], add_prefix_space)[0])

    def _encode_texts(self, texts: list[str], add_prefix_space: bool | None) -> list[list[int]]:
        prefix = self.add_prefix_space if add_prefix_space is None else bool(add_prefix_space)
        if prefix:
            texts = [with_prefix_space(t) for t in texts]
        encodings = self._backend.encode_batch(texts, add_special_tokens=False)
        return [e.ids for e in encodings]

    def encode(self, text: str, text_pair: str | None = None, add_special_tokens: bool = True, **kwargs) -> list[int]:
        """The input ids of one text (or pair) as a list."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str for encode, got {type(text).__name__}")
        return self(text, text_pair, add_special_tokens=add_special_tokens, **kwargs)["input_ids"]

    def __call__(
        self,
        text: str | Sequence[str],
        text_pair: str | Sequence[str] | None = None,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        return_tensors: str | None = None,
        return_attention_mask: bool | None = None,
        return_token_type_ids: bool | None = None,
        return_special_tokens_mask: bool = False,
        return_length: bool = False,
        add_prefix_space: bool | None = None,
    ) -> Encoding:
        """Encode a text, a pair, or a batch of either; pad/truncate as HF does; lists, "np" or "pt" arrays.

        Returns `input_ids` and `attention_mask` (+ `token_type_ids`, `special_tokens_mask`, `length` when asked):
        (seq,) lists for one text, (batch, seq) for a batch or when `return_tensors` is set.
        """
        texts, pairs, batched = _as_batch(text, text_pair)
        padding_mode, truncation_mode, max_length = self._strategies(
            padding, truncation, max_length, pad_to_multiple_of
        )
        firsts = self._encode_texts(texts, add_prefix_space)
        seconds = self._encode_texts(pairs, add_prefix_space) if pairs is not None else [None] * len(firsts)
        rows = []
        for ids, pair_ids in zip(firsts, seconds, strict=True):
            if truncation_mode is not None:
                extra = self.num_special_tokens_to_add(pair_ids is not None) if add_special_tokens else 0
                ids, pair_ids = truncate_pair(ids, pair_ids, max_length - extra, truncation_mode)
            rows.append(self._assemble(ids, pair_ids, add_special_tokens))
        lengths = [len(r["input_ids"]) for r in rows]  # before padding, as HF reports them
        if padding_mode is not None:
            target = max_length if padding_mode == "max_length" else max(len(r["input_ids"]) for r in rows)
            if pad_to_multiple_of:
                target = -(-target // pad_to_multiple_of) * pad_to_multiple_of
            rows = [pad_row(r, target, self.pad_token_id) for r in rows]
        wanted = {"input_ids", "attention_mask"}
        wanted = wanted - ({"attention_mask"} if return_attention_mask is False else set())
        wanted |= {"token_type_ids"} if return_token_type_ids else set()
        wanted |= {"special_tokens_mask"} if return_special_tokens_mask else set()
        columns = {key: [r[key] for r in rows] for key in rows[0] if key in wanted}
        if return_length:
            # HF reports a batch's lengths before padding but a single text's after it.
            columns["length"] = lengths if batched else [len(rows[0]["input_ids"])]
        return _as_output(columns, batched, return_tensors)

    def _strategies(self, padding, truncation, max_length, pad_to_multiple_of) -> tuple[str | None, str | None, int]:
        """HF's rules for combining padding, truncation and max_length (see docs/foundation.md)."""
        if padding not in PADDING:
            raise ValueError(f"padding must be one of True, False, 'longest', 'max_length', got {padding!r}")
        if truncation not in TRUNCATION:
            raise ValueError(
                "truncation must be one of True, False, None, 'longest_first', 'only_first', 'only_second', "
                f"got {truncation!r}"
            )
        if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int)
                                       or max_length < 0):
            raise ValueError(f"max_length must be a non-negative int or None, got {max_length!r}")
        if pad_to_multiple_of is not None and (isinstance(pad_to_multiple_of, bool)
                                               or not isinstance(pad_to_multiple_of, int) or pad_to_multiple_of < 1):
            raise ValueError(f"pad_to_multiple_of must be a positive int or None, got {pad_to_multiple_of!r}")
        if max_length is not None and padding is False and truncation is None:
            truncation = "longest_first"  # HF: a max_length alone means "truncate to it"
        padding_mode, truncation_mode = PADDING[padding], TRUNCATION[truncation]
        if max_length is None:
            unlimited = self.model_max_length >= NO_MAX_LENGTH
            if padding_mode == "max_length":
                padding_mode = None if unlimited else padding_mode
            if truncation_mode is not None:
                truncation_mode = None if unlimited else truncation_mode
            max_length = self.model_max_length
        if truncation_mode and padding_mode and pad_to_multiple_of and max_length % pad_to_multiple_of:
            raise ValueError(
                f"truncation to max_length={max_length} and padding to a multiple of "
                f"pad_to_multiple_of={pad_to_multiple_of} cannot both hold"
            )
        return padding_mode, truncation_mode, max_length

    # ------------------------------------------------------------------------------ special tokens
    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return 4 if pair else 2

    def build_inputs_with_special_tokens(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        """`<s> A </s>` or `<s> A </s></s> B </s>`."""
        cls, sep = [self.cls_token_id], [self.sep_token_id]
        if token_ids_1 is None:
            return cls + list(token_ids_0) + sep
        return cls + list(token_ids_0) + sep + sep + list(token_ids_1) + sep

    def get_special_tokens_mask(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None, already_has_special_tokens: bool = False
    ) -> list[int]:
        """1 where `build_inputs_with_special_tokens` puts a special token (or, given a built sequence, where
        a special token is), 0 on text tokens."""
        if already_has_special_tokens:
            if token_ids_1 is not None:
                raise ValueError("token_ids_1 must be None when already_has_special_tokens=True")
            special = set(self.all_special_ids)
            return [int(i in special) for i in token_ids_0]
        if token_ids_1 is None:
            return [1] + [0] * len(token_ids_0) + [1]
        return [1] + [0] * len(token_ids_0) + [1, 1] + [0] * len(token_ids_1) + [1]

    def create_token_type_ids_from_sequences(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        """All zeros: LED has no segment embedding."""
        return [0] * len(self.build_inputs_with_special_tokens(token_ids_0, token_ids_1))

    def _assemble(self, ids: list[int], pair_ids: list[int] | None, add_special_tokens: bool) -> dict[str, list[int]]:
        if add_special_tokens:
            input_ids = self.build_inputs_with_special_tokens(ids, pair_ids)
            special = self.get_special_tokens_mask(ids, pair_ids)
        else:
            input_ids = list(ids) + (list(pair_ids) if pair_ids is not None else [])
            special = [0] * len(input_ids)
        return {
            "input_ids": input_ids,
            "token_type_ids": [0] * len(input_ids),
            "attention_mask": [1] * len(input_ids),
            "special_tokens_mask": special,
        }

    # ------------------------------------------------------------------------------ ids -> text
    def decode(
        self,
        token_ids: Iterable[int],
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
    ) -> str:
        """Text of one id sequence (list, NumPy or torch 1-D); invalid UTF-8 becomes U+FFFD."""
        ids = _int_list(token_ids, "token_ids")
        for index in ids:
            self._token(index)  # a clear error for an id outside the vocabulary
        text = self._backend.decode(ids, skip_special_tokens=skip_special_tokens)
        clean = clean_up_tokenization_spaces
        if clean is None:
            clean = self.clean_up_tokenization_spaces
        return clean_up_tokenization(text) if clean else text

    def batch_decode(self, sequences: Iterable[Iterable[int]], **kwargs: Any) -> list[str]:
        if hasattr(sequences, "tolist"):
            sequences = sequences.tolist()
        return [self.decode(seq, **kwargs) for seq in sequences]


# ---------------------------------------------------------------------------------- rules as functions
def truncate_pair(
    ids: list[int], pair_ids: list[int] | None, budget: int, mode: str
) -> tuple[list[int], list[int] | None]:
    """Cut the text tokens so that at most `budget` remain (special tokens already accounted for).

    longest_first: take from the longer sequence until both are equal, then alternately, the second first
    (so the first keeps the odd token). only_first / only_second: take only from that sequence.
    """
    total = len(ids) + (len(pair_ids) if pair_ids is not None else 0)
    excess = total - budget
    if excess <= 0:
        return ids, pair_ids
    if mode == "only_second" and pair_ids is None:
        return ids, pair_ids  # nothing to cut from: HF leaves single texts alone here
    if pair_ids is None or mode == "only_first":
        if excess >= len(ids):
            raise ValueError(_too_short("first", len(ids), excess, mode))
        return ids[: len(ids) - excess], pair_ids
    if mode == "only_second":
        if excess >= len(pair_ids):
            raise ValueError(_too_short("second", len(pair_ids), excess, mode))
        return ids, pair_ids[: len(pair_ids) - excess]
    if budget < 0:
        raise ValueError(f"max_length leaves no room for the text: {excess} tokens to remove, only {total} exist")
    unequal = min(abs(len(ids) - len(pair_ids)), excess)
    even = excess - unequal
    from_first = (unequal if len(ids) > len(pair_ids) else 0) + even // 2
    from_second = excess - from_first
    return ids[: len(ids) - from_first], pair_ids[: len(pair_ids) - from_second]


def _too_short(which: str, length: int, excess: int, mode: str) -> str:
    return (
        f"truncation={mode!r} must remove {excess} tokens but the {which} sequence has only {length}; "
        "raise max_length or choose another truncation strategy"
    )


def pad_row(row: dict[str, list[int]], length: int, pad_token_id: int) -> dict[str, list[int]]:
    """Right-pad every column of one encoded example to `length` (ids with <pad>, masks as HF does)."""
    missing = length - len(row["input_ids"])
    if missing <= 0:
        return row
    fill = {"input_ids": pad_token_id, "attention_mask": 0, "token_type_ids": 0, "special_tokens_mask": 1}
    return {key: values + [fill[key]] * missing for key, values in row.items()}


def clean_up_tokenization(text: str) -> str:
    """HF's `clean_up_tokenization_spaces`: remove the space before punctuation and English contractions."""
    for spaced, tight in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                          (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(spaced, tight)
    return text


def with_prefix_space(text: str) -> str:
    """`add_prefix_space`: a text not starting with whitespace gets a space, so its first word is tokenized
    like any later word (' Hello' -> 'ĠHello'). HF's slow tokenizer's rule; its fast one only looks for ' '."""
    return " " + text if text and not text[0].isspace() else text


def _check_text(text: Any, name: str) -> str:
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str, got {type(text).__name__}")
    return text


def _as_batch(text: Any, text_pair: Any) -> tuple[list[str], list[str] | None, bool]:
    """(texts, pairs or None, batched?) from the forms HF accepts: a str, or a list/tuple of str."""
    if isinstance(text, str):
        if text_pair is not None:
            _check_text(text_pair, "text_pair")
            return [text], [text_pair], False
        return [text], None, False
    if not isinstance(text, (list, tuple)) or not text or not all(isinstance(t, str) for t in text):
        raise TypeError(
            "text must be a str or a non-empty list of str (pre-split words are not supported), "
            f"got {type(text).__name__}"
        )
    if text_pair is None:
        return list(text), None, True
    if not isinstance(text_pair, (list, tuple)) or not all(isinstance(t, str) for t in text_pair):
        raise TypeError(f"text_pair must be a list of str to go with a batch of texts, got {type(text_pair).__name__}")
    if len(text_pair) != len(text):
        raise ValueError(f"text_pair has {len(text_pair)} entries but text has {len(text)}")
    return list(text), list(text_pair), True


def _as_output(columns: dict[str, list], batched: bool, return_tensors: str | None) -> Encoding:
    if return_tensors is None:
        return Encoding({k: (v if batched else v[0]) for k, v in columns.items()})
    if return_tensors not in ("np", "pt"):
        raise ValueError(f"return_tensors must be 'np', 'pt' or None, got {return_tensors!r}")
    lengths = {len(row) for row in columns["input_ids"]}
    if len(lengths) > 1:
        raise ValueError(
            f"cannot make a {return_tensors!r} tensor from sequences of lengths {sorted(lengths)}; "
            "pass padding=True (or truncation) to make them equal"
        )
    import numpy as np

    arrays = {k: np.asarray(v, dtype=np.int64) for k, v in columns.items()}
    if return_tensors == "pt":
        import torch  # only when asked: led_ref does not depend on torch

        arrays = {k: torch.from_numpy(v) for k, v in arrays.items()}
    return Encoding(arrays)


def _int_list(values: Any, name: str) -> list[int]:
    if hasattr(values, "tolist"):
        values = values.tolist()
    if isinstance(values, int):
        values = [values]
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be a sequence of ints, got {values!r} ({type(values).__name__})")
    values = list(values)
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name} must hold ints, got {v!r} ({type(v).__name__})")
    return values


# ---------------------------------------------------------------------------------- the BPE backend
def byte_level_bpe(
    vocab: Mapping[str, int], merges: Sequence[tuple[str, str]], special_tokens: Sequence[str], mask_token: str
) -> Tokenizer:
    """A `tokenizers.Tokenizer` doing byte-level BPE only; special tokens are matched, never split."""
    bpe = models.BPE(vocab=dict(vocab), merges=list(merges), continuing_subword_prefix="", end_of_word_suffix="",
                     fuse_unk=False)
    tokenizer = Tokenizer(bpe)
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # see with_prefix_space
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(
        [AddedToken(t, lstrip=(t == mask_token), rstrip=False, normalized=False, special=True) for t in special_tokens]
    )
    return tokenizer


def read_vocab(path: str) -> dict[str, int]:
    """vocab.json: token -> id, every id an int in [0, 2**32) (what the BPE backend takes)."""
    vocab = read_json(path, "vocabulary", dict)
    check_vocab(vocab, repr(path))
    return vocab


def check_vocab(vocab: Any, source: str) -> None:
    if not isinstance(vocab, Mapping):
        raise ValueError(f"{source}: the vocabulary must map tokens to integer ids, found {describe(vocab)}")
    for token, index in vocab.items():
        if not isinstance(token, str) or isinstance(index, bool) or not isinstance(index, int) \
                or not 0 <= index < 2**32:
            raise ValueError(f"{source}: the vocabulary must map tokens to integer ids in [0, 2**32), "
                             f"found {token!r}: {index!r}")


def check_merges(merges: Sequence[tuple[str, str]], vocab: Mapping[str, int], source: str) -> None:
    """Each rule (a, b) must name two vocabulary tokens and produce one (a + b): the BPE backend's rule,
    reported here by file and rule number instead of as its bare Exception."""
    for number, pair in enumerate(merges, start=1):
        if len(pair) != 2 or not all(isinstance(t, str) for t in pair):
            raise ValueError(f"{source} merge rule {number}: a rule is two tokens, got {pair!r}")
        missing = [t for t in (pair[0], pair[1], pair[0] + pair[1]) if t not in vocab]
        if missing:
            raise ValueError(f"{source} merge rule {number} ({pair[0]} {pair[1]}) names token(s) missing from "
                             f"the vocabulary: {missing}")


def read_merges(path: str) -> list[tuple[str, str]]:
    """Merge rules in priority order; the '#version' header line (always present in HF files) is skipped."""
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        lines = data.decode("utf-8").split("\n")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path!r} is not UTF-8: invalid byte {data[err.start]:#04x} at offset {err.start}") \
            from None
    merges = []
    for number, line in enumerate(lines, start=1):
        line = line.rstrip("\r")
        if not line or (number == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"{path!r} line {number}: a merge must be two tokens separated by a space, got {line!r}")
        merges.append((parts[0], parts[1]))
    return merges


def read_tokenizer_json(path: str) -> tuple[dict[str, int], list[tuple[str, str]], bool]:
    """(vocab, merges, add_prefix_space) from a `tokenizers` JSON file holding a byte-level BPE model."""
    data = read_json(path, "tokenizer", dict)
    model = data.get("model")
    if not isinstance(model, dict) or model.get("type") != "BPE":
        found = model.get("type") if isinstance(model, dict) else describe(model)
        raise ValueError(f"{path!r} holds a {found!r} model; LED needs byte-level BPE")
    vocab, merges = model.get("vocab"), model.get("merges")
    check_vocab(vocab, f"{path!r} model.vocab")
    if not isinstance(merges, list):
        raise ValueError(f"{path!r} model.merges must be a list of rules, found {describe(merges)}")
    pairs = []
    for number, m in enumerate(merges, start=1):
        pair = tuple(m.split(" ")) if isinstance(m, str) else tuple(m) if isinstance(m, list) else (m,)
        if len(pair) != 2 or not all(isinstance(t, str) and t for t in pair):
            raise ValueError(f"{path!r} model.merges rule {number}: a rule is two tokens, got {m!r}")
        pairs.append(pair)
    vocab = dict(vocab)
    added = data.get("added_tokens", [])
    if not isinstance(added, list):
        raise ValueError(f"{path!r} added_tokens must be a list, found {describe(added)}")
    for number, token in enumerate(added):
        if not (isinstance(token, dict) and isinstance(token.get("content"), str)
                and isinstance(token.get("id"), int) and not isinstance(token.get("id"), bool)
                and 0 <= token["id"] < 2**32):
            raise ValueError(f"{path!r} added_tokens[{number}] must be an object with a string 'content' and an "
                             f"integer 'id', found {token!r}")
        vocab.setdefault(token["content"], token["id"])
    pre = data.get("pre_tokenizer")
    prefix = pre.get("add_prefix_space", False) if isinstance(pre, dict) else False
    return vocab, pairs, bool(prefix)


def _added_token(path: str, where: str, token: Any) -> dict[str, Any]:
    if not isinstance(token, Mapping) or not isinstance(token.get("content"), str):
        raise ValueError(f"{path!r}: {where} must be an object with a string 'content', got {token!r}")
    return dict(token)


def _added_decoder_token(path: str, key: Any, token: Any) -> dict[str, Any]:
    """One entry of tokenizer_config.json's `added_tokens_decoder` (id -> token and flags)."""
    where = f"added_tokens_decoder[{key!r}]"
    if not (isinstance(key, str) and key.isdigit()):
        raise ValueError(f"{path!r}: {where}: the key must be a token id (digits), got {key!r}")
    return dict(_added_token(path, where, token), id=int(key))


def read_added_tokens(directory: str) -> list[dict[str, Any]]:
    """Added tokens from tokenizer.json's `added_tokens`, else the older `added_tokens.json` (content -> id)."""
    path = os.path.join(directory, TOKENIZER_FILE)
    if os.path.isfile(path):
        data = read_json(path, what="tokenizer.json")
        return [_added_token(path, f"added_tokens[{i}]", t) for i, t in enumerate(data.get("added_tokens") or [])]
    path = os.path.join(directory, ADDED_TOKENS_FILE)
    if os.path.isfile(path):
        data = read_json(path, what="added tokens (content -> id)")
        return [{"content": k, "id": v, "special": False} for k, v in data.items()]
    return []


def _read_settings(directory: str) -> dict[str, Any]:
    """add_prefix_space, model_max_length, clean-up and special tokens from the optional HF config files."""
    settings: dict[str, Any] = {}
    for name in (SPECIAL_TOKENS_FILE, CONFIG_FILE):
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            continue
        data = read_json(path, name, dict)
        for role in SPECIAL_ROLES:
            value = data.get(role)
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str):
                settings[role] = value
        for key in ("add_prefix_space", "model_max_length", "clean_up_tokenization_spaces"):
            if key in data:
                settings[key] = data[key]
        decoder = data.get("added_tokens_decoder")
        if isinstance(decoder, Mapping):  # tokenizer_config.json of transformers >= 4.34: id -> token and flags
            settings["added_tokens"] = [_added_decoder_token(path, k, v) for k, v in decoder.items()]
    if isinstance(settings.get("model_max_length"), float):
        settings["model_max_length"] = int(settings["model_max_length"])
    return settings


def vocab_json(vocab: Mapping[str, int]) -> str:
    """vocab.json as HF writes it: tokens sorted by id, non-ASCII kept as is."""
    return json.dumps(dict(sorted(vocab.items(), key=lambda kv: kv[1])), indent=2, ensure_ascii=False) + "\n"


def merges_text(merges: Sequence[tuple[str, str]]) -> str:
    return "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)


# ---------------------------------------------------------------------------------- training
def train_byte_level_bpe(
    texts: Iterable[str], vocab_size: int, directory: str | os.PathLike, min_frequency: int = 2
) -> LEDTokenizer:
    """Learn a byte-level BPE vocabulary of `vocab_size` tokens from `texts` and save it in `directory`.

    Merges stop early (a smaller vocabulary) when no pair occurs `min_frequency` times any more.

    Ids 0-3 are `<s> <pad> </s> <unk>` and the last id is `<mask>` (RoBERTa's and LED's layout), then the
    256 byte symbols, then the merges. Deterministic: the same texts give the same files.
    """
    minimum = 256 + len(set(DEFAULT_SPECIALS.values()))
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < minimum:
        raise ValueError(f"vocab_size must be an int >= {minimum} (bytes + special tokens), got {vocab_size!r}")
    texts = [_check_text(t, "texts[i]") for t in texts]
    head = ["<s>", "<pad>", "</s>", "<unk>"]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1, special_tokens=head, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False, min_frequency=min_frequency,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    data = json.loads(tokenizer.to_str())
    vocab = dict(data["model"]["vocab"])
    vocab["<mask>"] = len(vocab)
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in data["model"]["merges"]]
    result = LEDTokenizer(vocab, merges, model_max_length=NO_MAX_LENGTH)
    result.save_pretrained(directory)
    return result
