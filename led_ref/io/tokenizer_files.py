"""HF's tokenizer file layouts: `vocab.json` + `merges.txt` or a `tokenizer.json`, and the optional config files.

Read and written exactly as HF's `LEDTokenizer` / `LEDTokenizerFast` do:

    vocab.json               token -> id, sorted by id
    merges.txt               '#version: 0.2', then one merge rule 'a b' a line, in priority order
    tokenizer.json           the `tokenizers` JSON (a BPE model, added tokens, the pre-tokenizer's prefix space)
    tokenizer_config.json    add_prefix_space, model_max_length, clean-up, special tokens, added tokens by id
    special_tokens_map.json  role -> special token
    added_tokens.json        the older content -> id list of added tokens
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from .bpe import check_merges, check_vocab
from .files import describe, read_json, write_text_atomic

VOCAB_FILE = "vocab.json"
MERGES_FILE = "merges.txt"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_FILE = "special_tokens_map.json"
ADDED_TOKENS_FILE = "added_tokens.json"
# The special-token roles HF's files name, and LED's (RoBERTa's) token for each.
SPECIAL_ROLES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
DEFAULT_SPECIALS = {
    "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
    "pad_token": "<pad>", "cls_token": "<s>", "mask_token": "<mask>",
}


def read_tokenizer_files(directory: str) -> tuple[dict[str, int], list[tuple[str, str]], dict[str, Any], str]:
    """(vocab, merges, settings, source file) of a tokenizer folder: `vocab.json` + `merges.txt` (or
    `tokenizer.json`) and the settings of the optional HF config files."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"tokenizer folder {directory!r} does not exist")
    settings = read_settings(directory)
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
    return vocab, merges, settings, source


def write_tokenizer_files(directory: str | os.PathLike, vocab: Mapping[str, int], merges: Sequence[tuple[str, str]],
                          special_tokens: Mapping[str, str], add_prefix_space: bool,
                          clean_up_tokenization_spaces: bool, model_max_length: int) -> None:
    """Write vocab.json, merges.txt, tokenizer_config.json and special_tokens_map.json (HF's layout)."""
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    write_text_atomic(os.path.join(directory, VOCAB_FILE), vocab_json(vocab))
    write_text_atomic(os.path.join(directory, MERGES_FILE), merges_text(merges))
    specials = {role: token for role, token in special_tokens.items()}
    # HF marks <mask> lstrip: "a <mask>" drops the space before the mask.
    specials["mask_token"] = {"content": specials["mask_token"], "lstrip": True, "rstrip": False,
                              "normalized": False, "single_word": False}
    config = {
        "add_prefix_space": add_prefix_space,
        "clean_up_tokenization_spaces": clean_up_tokenization_spaces,
        "errors": "replace", "model_max_length": model_max_length, "tokenizer_class": "LEDTokenizer",
    } | specials
    write_text_atomic(os.path.join(directory, CONFIG_FILE), json.dumps(config, indent=2, sort_keys=True) + "\n")
    write_text_atomic(
        os.path.join(directory, SPECIAL_TOKENS_FILE), json.dumps(specials, indent=2, sort_keys=True) + "\n"
    )


def read_vocab(path: str) -> dict[str, int]:
    """vocab.json: token -> id, every id an int in [0, 2**32) (what the BPE backend takes)."""
    vocab = read_json(path, "vocabulary", dict)
    check_vocab(vocab, repr(path))
    return vocab


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


def read_settings(directory: str) -> dict[str, Any]:
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
