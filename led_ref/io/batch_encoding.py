"""What a tokenizer call does around the BPE, one function per HF rule: the input forms it takes, how
padding, truncation and max_length combine, truncating a pair, padding a row, and the returned `Encoding`.

    single text:  <s> X </s>                 pair:  <s> A </s></s> B </s>
    attention_mask 1 on tokens, 0 on padding; token_type_ids all 0 (LED has no segment embedding)
    padding on the right with <pad>; truncation from the right
"""

from __future__ import annotations

from typing import Any

# HF's stand-in for "no maximum length" (int(1e30)).
NO_MAX_LENGTH = int(1e30)
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


def padding_strategies(padding, truncation, max_length, pad_to_multiple_of, model_max_length: int
                       ) -> tuple[str | None, str | None, int]:
    """(padding mode, truncation mode, max_length): HF's rules for combining padding, truncation and
    max_length (see docs/foundation.md); `model_max_length` stands in for a missing max_length."""
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
        unlimited = model_max_length >= NO_MAX_LENGTH
        if padding_mode == "max_length":
            padding_mode = None if unlimited else padding_mode
        if truncation_mode is not None:
            truncation_mode = None if unlimited else truncation_mode
        max_length = model_max_length
    if truncation_mode and padding_mode and pad_to_multiple_of and max_length % pad_to_multiple_of:
        raise ValueError(
            f"truncation to max_length={max_length} and padding to a multiple of "
            f"pad_to_multiple_of={pad_to_multiple_of} cannot both hold"
        )
    return padding_mode, truncation_mode, max_length


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


def check_text(text: Any, name: str) -> str:
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str, got {type(text).__name__}")
    return text


def as_batch(text: Any, text_pair: Any) -> tuple[list[str], list[str] | None, bool]:
    """(texts, pairs or None, batched?) from the forms HF accepts: a str, or a list/tuple of str."""
    if isinstance(text, str):
        if text_pair is not None:
            check_text(text_pair, "text_pair")
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


def as_output(columns: dict[str, list], batched: bool, return_tensors: str | None) -> Encoding:
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


def int_list(values: Any, name: str) -> list[int]:
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
