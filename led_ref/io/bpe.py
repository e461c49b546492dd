"""Byte-level BPE (RoBERTa's, LED's) on the `tokenizers` library, and the text rules HF adds around it.

The backend only splits text into byte-level symbols and merges them ('Ġ' stands for a space); special
tokens are matched whole, never split. `with_prefix_space` and `clean_up_tokenization` are HF's rules
before encoding and after decoding; `check_vocab` / `check_merges` name the file and rule a bad vocabulary
comes from instead of the backend's bare Exception.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

from .files import describe


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


def with_prefix_space(text: str) -> str:
    """`add_prefix_space`: a text not starting with whitespace gets a space, so its first word is tokenized
    like any later word (' Hello' -> 'ĠHello'). HF's slow tokenizer's rule; its fast one only looks for ' '."""
    return " " + text if text and not text[0].isspace() else text


def clean_up_tokenization(text: str) -> str:
    """HF's `clean_up_tokenization_spaces`: remove the space before punctuation and English contractions."""
    for spaced, tight in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                          (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(spaced, tight)
    return text


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
