"""LEDTokenizer: LED's byte-level BPE tokenizer (RoBERTa's), on the `tokenizers` library, with HF's behaviour.

The `tokenizers` library does the byte-level BPE (text -> token ids, ids -> text; `bpe`); everything an LED
model adds around it is plain Python, one function per rule, so it can be read and checked
(`batch_encoding`):

    single text:  <s> X </s>                 pair:  <s> A </s></s> B </s>
    attention_mask 1 on tokens, 0 on padding; token_type_ids all 0 (LED has no segment embedding)
    padding on the right with <pad>; truncation from the right

Files: `vocab.json` + `merges.txt` (or a `tokenizer.json`), optionally `tokenizer_config.json` and
`special_tokens_map.json`, exactly as HF's `LEDTokenizer` / `LEDTokenizerFast` read and write them
(`tokenizer_files`).

    >>> tok = LEDTokenizer.from_pretrained(default_checkpoint_dir())       # doctest: +SKIP
    >>> tok(["a short text", "a longer text here"], padding=True, return_tensors="np")["input_ids"].shape
    (2, 6)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, trainers

from .batch_encoding import (
    NO_MAX_LENGTH,
    Encoding,
    as_batch,
    as_output,
    check_text,
    int_list,
    pad_row,
    padding_strategies,
    truncate_pair,
)
from .bpe import byte_level_bpe, check_merges, check_vocab, clean_up_tokenization, with_prefix_space
from .tokenizer_files import DEFAULT_SPECIALS, SPECIAL_ROLES, read_tokenizer_files, write_tokenizer_files


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
        vocab, merges, settings, source = read_tokenizer_files(directory)
        try:
            return cls(vocab, merges, **(settings | overrides))
        except ValueError as err:  # e.g. a special token missing from the vocabulary: name the file it came from
            raise ValueError(f"tokenizer in {directory!r} (vocabulary from {source}): {err}") from None

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write vocab.json, merges.txt, tokenizer_config.json and special_tokens_map.json (HF's layout)."""
        write_tokenizer_files(directory, self.vocab, self.merges, self.special_tokens, self.add_prefix_space,
                              self.clean_up_tokenization_spaces, self.model_max_length)

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
        return [self._token(i) for i in int_list(ids, "ids") if not (skip_special_tokens and i in special)]

    def _token(self, index: int) -> str:
        if index not in self._id_to_token:
            raise ValueError(f"token id {index} is outside the vocabulary [0, {len(self.vocab)})")
        return self._id_to_token[index]

    # ------------------------------------------------------------------------------ text -> ids
    def tokenize(self, text: str, add_prefix_space: bool | None = None) -> list[str]:
        """The BPE tokens of `text` (byte-level symbols: 'Ġ' stands for a space), no special tokens added."""
        return self.convert_ids_to_tokens(self._encode_texts([check_text(text, "text")], add_prefix_space)[0])

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
        texts, pairs, batched = as_batch(text, text_pair)
        padding_mode, truncation_mode, max_length = padding_strategies(
            padding, truncation, max_length, pad_to_multiple_of, self.model_max_length
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
        return as_output(columns, batched, return_tensors)


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
        ids = int_list(token_ids, "token_ids")
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
    texts = [check_text(t, "texts[i]") for t in texts]
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
