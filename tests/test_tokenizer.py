"""led_ref.LEDTokenizer against HF's LEDTokenizer (slow, pure Python) and LEDTokenizerFast on the same files.

The vocabulary is trained here, from the corpus below, with the `tokenizers` library; nothing is downloaded.
Where HF's two tokenizers disagree with each other (a few truncation corner cases), ours follows the slow one,
whose rule is the documented one ("remove from the longest sequence first"); the tests say so where it matters.
"""

from __future__ import annotations

import itertools
import json
import logging
import shutil
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from led_ref.io.batch_encoding import truncate_pair
from led_ref.io.bpe import clean_up_tokenization
from led_ref.io.tokenizer import LEDTokenizer, train_byte_level_bpe
from tests.hf_oracle import torch, transformers

pytestmark = pytest.mark.hf
logging.getLogger("transformers").setLevel(logging.CRITICAL)

CORPUS = [
    "The Longformer reads long documents. It doesn't attend to every token: a window of neighbours, "
    "plus a few global tokens, is enough!",
    "Numbers like 12345, 3.14159 and 2,718 appear; so do (brackets), [lists] and {braces}.",
    "Ünïcødé text — «quotes», naïve café, Straße, 日本語のテキスト, emoji 🙂🚀 and Ελληνικά.",
    "Whitespace   runs,\ttabs\t\tand\n\nnew lines\r\n matter to a byte-level BPE.",
    "I'm sure they've said we're done; isn't it? You'll see, he'd say. 'Quoted' \"double\".",
]
VOCAB_SIZE = 420
TRICKY = [
    "", " ", "  ", "\n", "\t \n", "Hello world", " Hello world", "Hello  world ", "hello\n\nworld\t!",
    "The Longformer reads long documents.", "don't stop, it's fine; we'll see. 'quoted' ?!",
    "12345 3.14159 0x1F -7", "naïve café Straße", "日本語のテキスト", "🙂🚀 emoji", "Ελληνικά κείμενα",
    "a <mask> b", "a<mask>b", "x <s> y </s> z <pad> <unk>", "<s>", "</s></s>", "unseen zzzqqq words ~~~ ^^^",
    "\u200b zero width", "combining e\u0301", "mixed\r\nline\rends", " leading and trailing ",
]


@pytest.fixture(scope="module")
def vocab_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vocab")
    train_byte_level_bpe(CORPUS * 10, VOCAB_SIZE, folder)
    return folder


@pytest.fixture(scope="module", params=[False, True], ids=["no_prefix", "prefix_space"])
def trio(request, vocab_dir):
    """(ours, HF slow, HF fast) on the same files, with add_prefix_space as parametrised."""
    prefix = request.param
    return (
        LEDTokenizer.from_pretrained(vocab_dir, add_prefix_space=prefix),
        transformers.LEDTokenizer.from_pretrained(vocab_dir, add_prefix_space=prefix),
        transformers.LEDTokenizerFast.from_pretrained(vocab_dir, add_prefix_space=prefix),
    )


def plain(encoding) -> dict:
    keys = ("input_ids", "attention_mask", "token_type_ids", "special_tokens_mask", "length")
    return {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in encoding.items() if k in keys}


def fast_prefix_quirk(slow, text: str) -> bool:
    """Where HF's fast tokenizer adds the prefix space differently from the slow one (and ours).

    Slow: one space before a text that does not start with whitespace. Fast: a space unless the text starts
    with ' ' exactly (so also before a leading newline or tab), and again after every special token.
    """
    if not slow.add_prefix_space:
        return False
    return (text[:1].isspace() and text[0] != " ") or any(t in text for t in slow.all_special_tokens)


def call(tokenizer, **kwargs):
    """The encoding as plain lists, or the exception it raised (HF's fast tokenizer raises plain Exception)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return plain(tokenizer(**kwargs))
        except Exception as err:  # noqa: BLE001 - we compare outcomes, whatever they are
            return err


# ------------------------------------------------------------------------------------------ vocabulary
def test_trained_vocabulary_layout(vocab_dir, tmp_path):
    tok = LEDTokenizer.from_pretrained(vocab_dir)
    assert len(tok) == tok.vocab_size == VOCAB_SIZE
    assert [tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id] == [0, 1, 2, 3]
    assert tok.mask_token_id == VOCAB_SIZE - 1 and tok.cls_token_id == 0 and tok.sep_token_id == 2
    assert (vocab_dir / "merges.txt").read_text().startswith("#version: 0.2\n")
    # Training is deterministic: the same corpus gives byte-identical files.
    train_byte_level_bpe(CORPUS * 10, VOCAB_SIZE, tmp_path)
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
        assert (tmp_path / name).read_bytes() == (vocab_dir / name).read_bytes(), name


def test_special_token_attributes_match_hf(trio):
    ours, slow, fast = trio
    for hf in (slow, fast):
        assert len(ours) == len(hf) and ours.vocab_size == hf.vocab_size
        assert ours.get_vocab() == hf.get_vocab()
        for role in ("bos", "eos", "unk", "sep", "pad", "cls", "mask"):
            assert getattr(ours, f"{role}_token") == getattr(hf, f"{role}_token")
            assert getattr(ours, f"{role}_token_id") == getattr(hf, f"{role}_token_id")
        assert sorted(ours.all_special_ids) == sorted(hf.all_special_ids)
        assert ours.convert_tokens_to_ids(["<s>", "Ġthe", "not-a-token"]) == hf.convert_tokens_to_ids(
            ["<s>", "Ġthe", "not-a-token"]
        )
        assert ours.convert_tokens_to_ids("<pad>") == hf.convert_tokens_to_ids("<pad>")
        assert ours.convert_ids_to_tokens([0, 5, 300, 2]) == hf.convert_ids_to_tokens([0, 5, 300, 2])


def test_special_token_layout_matches_hf(trio):
    ours, slow, fast = trio
    a, b = [10, 11, 12], [20, 21]
    for hf in (slow, fast):
        assert ours.build_inputs_with_special_tokens(a) == hf.build_inputs_with_special_tokens(a) == [0, *a, 2]
        assert ours.build_inputs_with_special_tokens(a, b) == hf.build_inputs_with_special_tokens(a, b)
        assert ours.build_inputs_with_special_tokens(a, b) == [0, *a, 2, 2, *b, 2]
        assert ours.create_token_type_ids_from_sequences(a, b) == hf.create_token_type_ids_from_sequences(a, b)
    assert ours.get_special_tokens_mask(a, b) == slow.get_special_tokens_mask(a, b) == [1, 0, 0, 0, 1, 1, 0, 0, 1]
    built = ours.build_inputs_with_special_tokens(a, b)
    assert ours.get_special_tokens_mask(built, already_has_special_tokens=True) == slow.get_special_tokens_mask(
        built, already_has_special_tokens=True
    )


# ------------------------------------------------------------------------------------------ text -> ids
@pytest.mark.parametrize("text", TRICKY)
def test_fixed_texts_match_hf(trio, text):
    ours, slow, fast = trio
    want = slow(text)["input_ids"]
    assert ours(text)["input_ids"] == want
    if not fast_prefix_quirk(slow, text):
        assert fast(text)["input_ids"] == want
    assert ours.encode(text) == slow.encode(text)
    assert ours(text, add_special_tokens=False)["input_ids"] == slow(text, add_special_tokens=False)["input_ids"]
    assert ours.tokenize(text) == slow.tokenize(text)  # fast keeps the space lstrip-ed before <mask>
    assert ours(text, "second " + text)["input_ids"] == slow(text, "second " + text)["input_ids"]
    for skip, clean in itertools.product((False, True), (False, True)):
        got = ours.decode(want, skip_special_tokens=skip, clean_up_tokenization_spaces=clean)
        assert got == slow.decode(want, skip_special_tokens=skip, clean_up_tokenization_spaces=clean)
        assert got == fast.decode(want, skip_special_tokens=skip, clean_up_tokenization_spaces=clean)


texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
pieces = st.sampled_from(list("ab the.,!?'\n\t 0123") + ["don't", "<mask>", " <mask>", "<s>", "</s>", "  "])
ascii_texts = st.lists(pieces, max_size=15).map("".join)


@given(text=st.one_of(texts, ascii_texts), pair=st.one_of(st.none(), texts, ascii_texts))
def test_random_texts_match_hf(trio, text, pair):
    ours, slow, fast = trio
    got = ours(text, pair)["input_ids"]
    assert got == slow(text, pair)["input_ids"]
    fast_got = fast(text, pair)["input_ids"]
    # HF's fast tokenizer drops an empty text_pair (its `if text_pair` test), and adds the prefix space
    # differently (see test_fixed_texts_match_hf); elsewhere all three agree.
    if pair != "" and not (fast_prefix_quirk(slow, text) or fast_prefix_quirk(slow, pair or "")):
        assert got == fast_got
    assert ours.decode(got, skip_special_tokens=True) == fast.decode(got, skip_special_tokens=True)


@given(ids=st.lists(st.integers(0, VOCAB_SIZE - 1), max_size=25), skip=st.booleans(), clean=st.booleans())
def test_decode_any_ids_matches_hf(trio, ids, skip, clean):
    """Arbitrary id sequences, including ones that split UTF-8 characters (decoded to U+FFFD)."""
    ours, slow, fast = trio
    got = ours.decode(ids, skip_special_tokens=skip, clean_up_tokenization_spaces=clean)
    assert got == fast.decode(ids, skip_special_tokens=skip, clean_up_tokenization_spaces=clean)
    assert got == slow.decode(ids, skip_special_tokens=skip, clean_up_tokenization_spaces=clean)


def test_batch_decode_accepts_arrays(trio):
    ours, slow, _ = trio
    batch = ours(["Hello world", "a longer text, with commas"], padding=True, return_tensors="np")["input_ids"]
    assert ours.batch_decode(batch, skip_special_tokens=True) == slow.batch_decode(batch, skip_special_tokens=True)
    assert ours.batch_decode(torch.from_numpy(batch)) == slow.batch_decode(batch)
    assert ours.decode(batch[1]) == slow.decode(batch[1].tolist())
    assert clean_up_tokenization("a , b . c 's d n't") == "a, b. c's dn't"


# ------------------------------------------------------------------------------ padding and truncation
FIRSTS = ["Hello world, the fox", "a", "The quick brown fox jumps over the lazy dog again and again"]
SECONDS = ["over the dog", "numbers 12345 and more", "x"]
GRID = list(itertools.product(
    [False, True, "longest", "max_length"],
    [None, False, True, "longest_first", "only_first", "only_second"],
    [None, 0, 3, 5, 6, 8, 11, 30],
    [None, 4],
))


@pytest.mark.parametrize("pair", [False, True], ids=["single", "pair"])
@pytest.mark.parametrize("batch", [False, True], ids=["one", "batch"])
def test_padding_and_truncation_grid_matches_hf(trio, pair, batch):
    """Every combination of padding, truncation, max_length and pad_to_multiple_of, as HF does it.

    Where HF cannot honour max_length it logs and returns the sequence too long; we raise ValueError
    instead, so those cases check that HF's output indeed breaks max_length.
    """
    ours, slow, fast = trio
    for padding, truncation, max_length, multiple in GRID:
        kwargs = dict(text=FIRSTS if batch else FIRSTS[0], padding=padding, truncation=truncation,
                      max_length=max_length, pad_to_multiple_of=multiple, return_special_tokens_mask=True,
                      return_token_type_ids=True, return_length=True)
        if pair:
            kwargs["text_pair"] = SECONDS if batch else SECONDS[0]
        got, want, fast_want = call(ours, **kwargs), call(slow, **kwargs), call(fast, **kwargs)
        if isinstance(got, Exception):
            assert isinstance(got, ValueError), (kwargs, got)
            if isinstance(want, Exception):
                continue  # HF refuses too (e.g. truncation length not a multiple of pad_to_multiple_of)
            rows = want["input_ids"] if batch else [want["input_ids"]]
            assert max_length is not None and max(map(len, rows)) > max_length, (kwargs, got)
            continue
        assert got == want, kwargs
        if not isinstance(fast_want, Exception) and fast_want == want:
            assert got == fast_want, kwargs


def test_longest_first_splits_like_hf_slow():
    # Remove from the longer until equal, then alternately; the first keeps the odd token.
    assert truncate_pair([1] * 7, [2] * 3, 6, "longest_first") == ([1] * 3, [2] * 3)
    assert truncate_pair([1] * 7, [2] * 3, 5, "longest_first") == ([1] * 3, [2] * 2)
    assert truncate_pair([1] * 1, [2] * 5, 1, "longest_first") == ([1], [])
    assert truncate_pair([1] * 4, [2] * 4, 8, "longest_first") == ([1] * 4, [2] * 4)
    with pytest.raises(ValueError, match="'only_first' must remove 5 tokens but the first sequence has only 3"):
        truncate_pair([1] * 3, [2] * 4, 2, "only_first")


def test_model_max_length_from_tokenizer_config(vocab_dir, tmp_path):
    shutil.copytree(vocab_dir, tmp_path, dirs_exist_ok=True)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text()) | {"model_max_length": 8}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    ours = LEDTokenizer.from_pretrained(tmp_path)
    slow = transformers.LEDTokenizer.from_pretrained(tmp_path)
    assert ours.model_max_length == slow.model_max_length == 8
    for kwargs in (dict(truncation=True), dict(padding="max_length"), dict(padding="max_length", truncation=True)):
        for text in FIRSTS:
            assert call(ours, text=text, **kwargs) == call(slow, text=text, **kwargs), kwargs


@pytest.mark.parametrize("kind", ["np", "pt"])
def test_return_tensors_match_hf(trio, kind):
    ours, slow, fast = trio
    got = ours(FIRSTS, SECONDS, padding=True, pad_to_multiple_of=8, return_tensors=kind)
    for hf in (slow, fast):
        want = hf(FIRSTS, SECONDS, padding=True, pad_to_multiple_of=8, return_tensors=kind)
        for key in ("input_ids", "attention_mask"):
            assert type(got[key]) is type(want[key]) and got[key].dtype == want[key].dtype
            assert got[key].shape == want[key].shape and got[key].shape[1] % 8 == 0
            assert got[key].tolist() == want[key].tolist()
    single = ours("Hello world", return_tensors=kind)
    if kind == "pt":
        moved = single.to("cpu")
        assert moved.input_ids.device.type == "cpu" and torch.equal(moved["input_ids"], single["input_ids"])
    assert tuple(single.input_ids.shape) == (1, len(ours("Hello world")["input_ids"]))


# ------------------------------------------------------------------------------------------ files
def test_our_files_load_in_hf(vocab_dir, tmp_path):
    ours = LEDTokenizer.from_pretrained(vocab_dir, add_prefix_space=True, model_max_length=64)
    ours.save_pretrained(tmp_path)
    for cls in (transformers.LEDTokenizer, transformers.LEDTokenizerFast):
        hf = cls.from_pretrained(tmp_path)
        assert hf.model_max_length == 64 and hf.add_prefix_space is True
        for text in TRICKY:
            if cls is transformers.LEDTokenizerFast and fast_prefix_quirk(hf, text):
                continue
            assert hf(text)["input_ids"] == ours(text)["input_ids"], (cls.__name__, text)
    again = LEDTokenizer.from_pretrained(tmp_path)
    assert again.add_prefix_space and again.model_max_length == 64 and again.get_vocab() == ours.get_vocab()


def test_tokenizer_json_only(vocab_dir, tmp_path):
    fast = transformers.LEDTokenizerFast.from_pretrained(vocab_dir)
    fast.save_pretrained(tmp_path / "hf")
    only = tmp_path / "only"
    only.mkdir()
    shutil.copy(tmp_path / "hf" / "tokenizer.json", only / "tokenizer.json")
    ours = LEDTokenizer.from_pretrained(only)
    for text in TRICKY:
        assert ours(text)["input_ids"] == fast(text)["input_ids"], text


# ------------------------------------------------------------------------------------------ errors
def test_bad_arguments_are_named(vocab_dir, tmp_path):
    tok = LEDTokenizer.from_pretrained(vocab_dir)
    cases = [
        (dict(text="a", padding="most"), ValueError, "padding must be one of .*'most'"),
        (dict(text="a", truncation="middle"), ValueError, "truncation must be one of .*'middle'"),
        (dict(text="a", max_length=-1), ValueError, "max_length must be a non-negative int or None, got -1"),
        (dict(text="a", padding=True, pad_to_multiple_of=0), ValueError, "pad_to_multiple_of must be .* got 0"),
        (dict(text="a", return_tensors="tf"), ValueError, "return_tensors must be 'np', 'pt' or None, got 'tf'"),
        (dict(text=3), TypeError, "text must be a str or a non-empty list of str"),
        (dict(text=[["pre", "split"]]), TypeError, "text must be a str or a non-empty list of str"),
        (dict(text=["a", "b"], text_pair=["c"]), ValueError, "text_pair has 1 entries but text has 2"),
        (dict(text=["a", "b c d"], return_tensors="np"), ValueError, "lengths \\[3, 7\\].*padding=True"),
        (dict(text="a b c d e", max_length=2, truncation="only_first"), ValueError, "only_first.*must remove"),
        (dict(text="a", padding="max_length", truncation=True, max_length=6, pad_to_multiple_of=4), ValueError,
         "max_length=6 .*pad_to_multiple_of=4"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            tok(**kwargs)
    with pytest.raises(ValueError, match=f"token id {VOCAB_SIZE} is outside the vocabulary \\[0, {VOCAB_SIZE}\\)"):
        tok.decode([0, VOCAB_SIZE])
    with pytest.raises(TypeError, match="token_ids must hold ints, got 1.5"):
        tok.decode([1.5])
    with pytest.raises(FileNotFoundError, match="looked for vocab.json \\+ merges.txt, or tokenizer.json"):
        LEDTokenizer.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="vocab_size must be an int >= 261"):
        train_byte_level_bpe(CORPUS, 100, tmp_path)
    with pytest.raises(ValueError, match="pad_token='<nope>' is not in the vocabulary"):
        LEDTokenizer(tok.get_vocab(), tok.merges, pad_token="<nope>")
    with pytest.raises(TypeError, match="unknown special token role"):
        LEDTokenizer(tok.get_vocab(), tok.merges, sos_token="<s>")
    assert np.asarray(tok(["a", "b"], return_tensors="np")["input_ids"]).shape == (2, 3)
