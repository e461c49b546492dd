"""Tokenizer folders as HF transformers 4.57 saves them (tokenizer.json, tokenizer_config.json with
model_max_length and added_tokens_decoder, special_tokens_map.json, added_tokens.json, added and additional
special tokens) load in led_ref.LEDTokenizer and tokenize and decode exactly like HF's tokenizer.
The vocabulary is trained here; nothing is downloaded."""

from __future__ import annotations

import logging
import os

import pytest
from hf_oracle import transformers

from led_ref.io.tokenizer import LEDTokenizer, train_byte_level_bpe

pytestmark = pytest.mark.hf
logging.getLogger("transformers").setLevel(logging.CRITICAL)

CORPUS = ["the quick brown fox jumps over the lazy dog", "long documents need long summaries",
          "Longformer attends locally and globally", "numbers 12 345 and symbols $%&"] * 20
TEXTS = ["the <extra> fox newword jumps <sum> over the lazy dog",
         "newword<extra>newword and <sum><sum> twice",
         "plain text with nothing added " * 6,
         " leading space, <mask> and </s> inside"]


@pytest.fixture(scope="module", params=["fast-full", "tokenizer.json-only", "slow"])
def saved(request, tmp_path_factory):
    """(HF tokenizer, folder it saved) for one layout."""
    vocab = tmp_path_factory.mktemp("vocab")
    train_byte_level_bpe(CORPUS, 320, vocab)
    cls = transformers.LEDTokenizer if request.param == "slow" else transformers.LEDTokenizerFast
    hf = cls.from_pretrained(vocab, model_max_length=20)
    hf.add_tokens(["<extra>", "newword"])
    hf.add_special_tokens({"additional_special_tokens": ["<sum>"]})
    folder = tmp_path_factory.mktemp(request.param)
    hf.save_pretrained(folder)
    if request.param == "tokenizer.json-only":
        for name in ("vocab.json", "merges.txt", "added_tokens.json"):
            if os.path.exists(folder / name):
                os.remove(folder / name)
        assert sorted(os.listdir(folder)) == ["special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]
    return hf, folder


def test_hf_saved_tokenizer_files_tokenize_identically(saved):
    hf, folder = saved
    ours = LEDTokenizer.from_pretrained(folder)
    reloaded = type(hf).from_pretrained(folder)
    # HF's slow tokenizer decodes added tokens with spaces around them; decoding follows the fast one
    fast = transformers.LEDTokenizerFast.from_pretrained(folder)
    assert ours.model_max_length == reloaded.model_max_length == 20
    assert len(ours) == len(reloaded)
    for text in TEXTS:
        for kwargs in ({}, {"truncation": True}, {"add_special_tokens": False}):
            mine, theirs = ours(text, **kwargs), reloaded(text, **kwargs)
            assert mine["input_ids"] == theirs["input_ids"], (text, kwargs)
            assert mine["attention_mask"] == theirs["attention_mask"]
        ids = reloaded(text)["input_ids"]
        for skip in (False, True):
            assert ours.decode(ids, skip_special_tokens=skip) == fast.decode(ids, skip_special_tokens=skip)
    batch = dict(padding=True, truncation=True, max_length=12)
    assert ours(TEXTS, **batch)["input_ids"] == reloaded(TEXTS, **batch)["input_ids"]
