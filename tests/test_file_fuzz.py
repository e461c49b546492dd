"""Every file format the project reads, crafted and fuzzed: whatever is in the file, loading it
gives a valid result or a ValueError/TypeError (FileNotFoundError for a shard the index names but the folder
lacks) whose message names the file; never a RecursionError, UnicodeDecodeError, KeyError, bare Exception.

Formats: config.json, model.safetensors (its header), model.safetensors.index.json, vocab.json, merges.txt,
tokenizer.json, tokenizer_config.json, special_tokens_map.json, generation_config.json (parse level, through
led_ref.io.files.read_json) and reproducer folders (case.json, model.safetensors, inputs.npz).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import led_ref
import led_torch
from led_ref.init import random_weights
from led_ref.io.checkpoint import CheckpointError, save_checkpoint
from led_ref.io.config import ConfigError, LEDConfig
from led_ref.io.files import MAX_DEPTH, FileFormatError, read_json
from led_ref.io.tokenizer import LEDTokenizer, train_byte_level_bpe
from parity import commands as cli
from parity.harness.malformed import damaged_bytes, json_values
from parity.harness.report import load_reproducer, save_reproducer
from parity.harness.strategies import profile_examples

CONFIG = LEDConfig(vocab_size=20, d_model=8, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                   decoder_attention_heads=2, encoder_ffn_dim=8, decoder_ffn_dim=8, attention_window=[2, 4],
                   max_encoder_position_embeddings=16, max_decoder_position_embeddings=8)
ARCH = "LEDForConditionalGeneration"
ALLOWED = (ValueError, TypeError, FileNotFoundError)
_FOLDERS: dict[str, str] = {}


# ------------------------------------------------------------------------------------------ valid folders
def _folder(kind: str) -> str:
    """A valid folder of `kind` ("checkpoint", "sharded", "tokenizer", "tokenizer_json", "reproducer"), made
    once per session; tests copy it before damaging a file."""
    if kind not in _FOLDERS:
        path = tempfile.mkdtemp(prefix=f"led-file-fuzz-{kind}-")
        weights = random_weights(CONFIG, ARCH, seed=0)
        if kind == "checkpoint":
            save_checkpoint(path, CONFIG, weights, ARCH)
            with open(os.path.join(path, "generation_config.json"), "w", encoding="utf-8") as fh:
                json.dump({"decoder_start_token_id": 2, "max_length": 20, "num_beams": 4}, fh)
        elif kind == "sharded":
            save_checkpoint(path, CONFIG, weights, ARCH, max_shard_size="2KB")
        elif kind == "tokenizer":
            train_byte_level_bpe(["the cat sat on the mat", "a dog ran", "hello world"] * 3, 300, path)
        elif kind == "tokenizer_json":
            tok = LEDTokenizer.from_pretrained(_folder("tokenizer"))
            os.rmdir(path)
            shutil.copytree(_folder("tokenizer"), path)
            os.unlink(os.path.join(path, "vocab.json"))
            os.unlink(os.path.join(path, "merges.txt"))
            with open(os.path.join(path, "tokenizer.json"), "w", encoding="utf-8") as fh:
                fh.write(tok._backend.to_str())
        elif kind == "reproducer":
            inputs = {"input_ids": np.array([[0, 4, 5, 2]]), "decoder_input_ids": np.array([[2, 4]])}
            save_reproducer(path, CONFIG, ARCH, weights, inputs, "torch:banded:float64", "ref:float64", seed=1)
        _FOLDERS[kind] = path
    return _FOLDERS[kind]


def _copy(kind: str, into: str) -> str:
    target = os.path.join(into, kind)
    shutil.copytree(_folder(kind), target)
    return target


def _shard(folder: str) -> str:
    return sorted(n for n in os.listdir(folder) if n.startswith("model-"))[0]


# What reads each file, and the folder it lives in.
def _load_checkpoint(package: str):
    def load(folder):
        module = led_ref if package == "led_ref" else led_torch
        kwargs = {} if package == "led_ref" else {"dtype": torch.float64}
        return module.LEDForConditionalGeneration.from_pretrained(folder, **kwargs)
    return load


def _load_tokenizer(folder):
    tok = LEDTokenizer.from_pretrained(folder)
    tok("the cat sat")  # a loaded tokenizer must also work
    return tok


def _load_generation_config(folder):
    return read_json(os.path.join(folder, "generation_config.json"), what="generation config")


FORMATS = {
    # id: (folder kind, file name (or a function of the folder), loader)
    "config.json-led_ref": ("checkpoint", "config.json", _load_checkpoint("led_ref")),
    "config.json-led_torch": ("checkpoint", "config.json", _load_checkpoint("led_torch")),
    "safetensors-led_ref": ("checkpoint", "model.safetensors", _load_checkpoint("led_ref")),
    "safetensors-led_torch": ("checkpoint", "model.safetensors", _load_checkpoint("led_torch")),
    "index-led_ref": ("sharded", "model.safetensors.index.json", _load_checkpoint("led_ref")),
    "index-led_torch": ("sharded", "model.safetensors.index.json", _load_checkpoint("led_torch")),
    "shard-led_ref": ("sharded", _shard, _load_checkpoint("led_ref")),
    "generation_config.json": ("checkpoint", "generation_config.json", _load_generation_config),
    "vocab.json": ("tokenizer", "vocab.json", _load_tokenizer),
    "merges.txt": ("tokenizer", "merges.txt", _load_tokenizer),
    "tokenizer_config.json": ("tokenizer", "tokenizer_config.json", _load_tokenizer),
    "special_tokens_map.json": ("tokenizer", "special_tokens_map.json", _load_tokenizer),
    "tokenizer.json": ("tokenizer_json", "tokenizer.json", _load_tokenizer),
    "case.json": ("reproducer", "case.json", load_reproducer),
    "reproducer-weights": ("reproducer", "model.safetensors", load_reproducer),
    "inputs.npz": ("reproducer", "inputs.npz", load_reproducer),
}


def assert_named_error_or_result(load, folder: str, name: str) -> None:
    try:
        load(folder)
    except ALLOWED as err:
        message = str(err)
        assert name in message or os.path.basename(folder) in message, \
            f"{type(err).__name__}({message!r}) does not name {name}"


# ------------------------------------------------------------------------------------------ fuzz
@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=profile_examples(12))
@given(data=st.data())
def test_a_damaged_file_gives_a_named_error_or_a_valid_result(fmt, data):
    kind, name, load = FORMATS[fmt]
    with tempfile.TemporaryDirectory() as tmp:
        folder = _copy(kind, tmp)
        name = name(folder) if callable(name) else name
        path = os.path.join(folder, name)
        with open(path, "rb") as fh:
            valid = fh.read()
        if name.endswith(".safetensors") and data.draw(st.booleans(), label="header only"):
            (size,) = struct.unpack("<Q", valid[:8])
            header = data.draw(damaged_bytes(valid[8:8 + size]), label="header")
            damaged = struct.pack("<Q", len(header)) + header + valid[8 + size:]
        else:
            damaged = data.draw(damaged_bytes(valid), label="file")
        with open(path, "wb") as fh:
            fh.write(damaged)
        assert_named_error_or_result(load, folder, name)


@pytest.mark.parametrize("package", ["led_ref", "led_torch"])
@settings(max_examples=profile_examples(12))
@given(entry=st.fixed_dictionaries({"dtype": st.one_of(st.sampled_from(["F64", "F32", "BF16", "I64", "X9"]),
                                                       json_values(3)),
                                    "shape": st.one_of(st.lists(st.integers(-2, 9), max_size=3), json_values(3)),
                                    "data_offsets": st.one_of(st.lists(st.integers(-5, 4000), max_size=3),
                                                              json_values(3))}),
       name=st.sampled_from(["led.encoder.layers.0.fc1.bias", "final_logits_bias", "x"]))
def test_a_crafted_safetensors_entry_is_refused_by_name(package, entry, name):
    """One header entry replaced by any dtype / shape / offsets: refused naming the file, or a valid load."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = _copy("checkpoint", tmp)
        path = os.path.join(folder, "model.safetensors")
        with open(path, "rb") as fh:
            valid = fh.read()
        (size,) = struct.unpack("<Q", valid[:8])
        header = json.loads(valid[8:8 + size])
        header[name] = entry
        raw = json.dumps(header).encode()
        with open(path, "wb") as fh:
            fh.write(struct.pack("<Q", len(raw)) + raw + valid[8 + size:])
        assert_named_error_or_result(_load_checkpoint(package), folder, "model.safetensors")


# ------------------------------------------------------------------------------------------ crafted files
def _write_header(path: str, header_bytes: bytes, data: bytes = b"") -> None:
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(header_bytes)) + header_bytes + data)


F64 = {"dtype": "F64", "shape": [2], "data_offsets": [0, 16]}
HEADERS = {
    "array": (b"[1, 2]", "JSON object"),
    "number": (b"42", "JSON object"),
    "deep": (b"[" * 100_000 + b"]" * 100_000, "nests JSON"),
    "deep_object": (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nests JSON"),
    "entry_not_object": (json.dumps({"w": [1, 2]}).encode(), "'w'"),
    "unknown_dtype": (json.dumps({"w": F64 | {"dtype": "F128"}}).encode(), "F128"),
    "negative_shape": (json.dumps({"w": F64 | {"shape": [-2]}}).encode(), "[-2]"),
    "offsets_past_end": (json.dumps({"w": F64 | {"data_offsets": [0, 1600]}}).encode(), "outside"),
    "offsets_reversed": (json.dumps({"w": F64 | {"data_offsets": [16, 0]}}).encode(), "outside"),
    "offsets_wrong_size": (json.dumps({"w": F64 | {"data_offsets": [0, 8]}}).encode(), "need 16 bytes"),
    "offsets_not_ints": (json.dumps({"w": F64 | {"data_offsets": [0, "16"]}}).encode(), "data_offsets"),
    "overlap": (json.dumps({"v": F64, "w": F64}).encode(), "overlap"),
    "missing_dtype": (json.dumps({"w": {"shape": [2], "data_offsets": [0, 16]}}).encode(), "lacks dtype"),
    "metadata_not_strings": (json.dumps({"__metadata__": {"format": 1}, "w": F64}).encode(), "__metadata__"),
    "utf16": (json.dumps({"w": F64}).encode("utf-16"), "UTF-16"),
}


@pytest.mark.parametrize("case", HEADERS)
@pytest.mark.parametrize("package", ["led_ref", "led_torch"])
def test_crafted_safetensors_headers_are_named(tmp_path, package, case):
    header, mention = HEADERS[case]
    CONFIG.save_pretrained(tmp_path)
    _write_header(str(tmp_path / "model.safetensors"), header, bytes(16))
    with pytest.raises(CheckpointError) as err:
        _load_checkpoint(package)(tmp_path)
    assert "model.safetensors" in str(err.value) and mention in str(err.value), str(err.value)


@pytest.mark.parametrize("weight_map, mention", [
    ({"led.shared.weight": 3}, "the number 3"),
    ({"led.shared.weight": None}, "null"),
    ([1, 2], "weight_map"),
    ({"led.shared.weight": "../outside.safetensors"}, "outside.safetensors"),
])
@pytest.mark.parametrize("package", ["led_ref", "led_torch"])
def test_crafted_shard_indexes_are_named(tmp_path, package, weight_map, mention):
    folder = _copy("sharded", str(tmp_path))
    with open(os.path.join(folder, "model.safetensors.index.json"), "w", encoding="utf-8") as fh:
        json.dump({"metadata": {}, "weight_map": weight_map}, fh)
    with pytest.raises((CheckpointError, FileNotFoundError)) as err:
        _load_checkpoint(package)(folder)
    assert "model.safetensors.index.json" in str(err.value) and mention in str(err.value), str(err.value)


@pytest.mark.parametrize("content, mention", [
    (json.dumps(CONFIG.to_dict()).encode("utf-16"), "UTF-16"),
    (json.dumps(CONFIG.to_dict()).encode("utf-16-le"), "UTF-16"),
    (json.dumps(CONFIG.to_dict()).encode()[:-2] + b"\xff}", "not UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, "nests JSON"),
    (b'{"id2label":' * 100_000 + b"{}" + b"}" * 100_000, "nests JSON"),
    (b"[]", "JSON object"),
    (json.dumps(CONFIG.to_dict() | {"id2label": [1, 2]}).encode(), "id2label"),
])
@pytest.mark.parametrize("package", ["led_ref", "led_torch"])
def test_crafted_config_json_is_named(tmp_path, package, content, mention):
    folder = _copy("checkpoint", str(tmp_path))
    with open(os.path.join(folder, "config.json"), "wb") as fh:
        fh.write(content)
    with pytest.raises(ConfigError) as err:
        _load_checkpoint(package)(folder)
    message = str(err.value)
    assert mention in message and ("config.json" in message or mention == "id2label"), message


def test_nesting_is_bounded_by_max_depth(tmp_path):
    ok, deep = tmp_path / "ok.json", tmp_path / "deep.json"
    ok.write_text("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    deep.write_text("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    assert read_json(ok, top=list) is not None
    with pytest.raises(FileFormatError, match=f"deep.json.*{MAX_DEPTH + 1} levels deep"):
        read_json(deep, top=list)


@pytest.mark.parametrize("file, content, mention", [
    ("merges.txt", "#version: 0.2\nt h\nĠ zz\n", "rule 2"),
    ("merges.txt", "#version: 0.2\nt h\n\xff", "not UTF-8"),
    ("vocab.json", '{"<s>": 0,', "not valid JSON"),
    ("vocab.json", '{"<s>": "zero"}', "'<s>': 'zero'"),
    ("vocab.json", "[1, 2]", "JSON object"),
    ("tokenizer_config.json", "[]", "JSON object"),
    ("special_tokens_map.json", '{"pad_token": ', "not valid JSON"),
])
def test_crafted_tokenizer_files_are_named(tmp_path, file, content, mention):
    folder = _copy("tokenizer", str(tmp_path))
    path = os.path.join(folder, file)
    if "\xff" in content:
        with open(path, "wb") as fh:
            fh.write(content.encode("utf-8").replace(b"\xc3\xbf", b"\xff"))
    elif file == "merges.txt":
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(content.split("\n", 2)[2])
    else:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(content)
    with pytest.raises(ValueError) as err:
        LEDTokenizer.from_pretrained(folder)
    assert file in str(err.value) and mention in str(err.value), str(err.value)


@pytest.mark.parametrize("content, mention", [
    ("[1, 2]", "JSON object"),
    ('{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [3]}}', "rule 1"),
    ('{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}', "missing from the vocabulary"),
    ('{"model": {"type": "WordPiece"}}', "WordPiece"),
    ('{"model": [1]}', "model"),
    ('{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "added_tokens": [{"id": "x"}]}', "added_tokens[0]"),
])
def test_crafted_tokenizer_json_is_named(tmp_path, content, mention):
    folder = _copy("tokenizer_json", str(tmp_path))
    with open(os.path.join(folder, "tokenizer.json"), "w", encoding="utf-8") as fh:
        fh.write(content)
    with pytest.raises(ValueError) as err:
        LEDTokenizer.from_pretrained(folder)
    assert "tokenizer.json" in str(err.value) and mention in str(err.value), str(err.value)


# ------------------------------------------------------------------------------------------ reproducers
def _tamper(folder: str) -> None:
    path = os.path.join(folder, "model.safetensors")
    data = bytearray(open(path, "rb").read())
    data[-3] ^= 0x40  # a weight's value changes; the file still parses
    with open(path, "wb") as fh:
        fh.write(bytes(data))


@pytest.mark.parametrize("how, mention", [
    ("not_a_reproducer", "case.json"),
    ("case_is_a_list", "JSON object"),
    ("no_architecture", "'architecture'"),
    ("tampered_weights", "changed after the reproducer was written"),
    ("missing_inputs", "inputs.npz is missing"),
    ("inputs_not_npz", "inputs.npz"),
])
def test_a_bad_reproducer_folder_exits_2_with_one_line(tmp_path, capsys, how, mention):
    folder = _copy("reproducer", str(tmp_path))
    case_path = os.path.join(folder, "case.json")
    if how == "not_a_reproducer":
        os.unlink(case_path)
    elif how == "case_is_a_list":
        open(case_path, "w").write("[]")
    elif how == "no_architecture":
        case = json.load(open(case_path))
        del case["architecture"]
        json.dump(case, open(case_path, "w"))
    elif how == "tampered_weights":
        _tamper(folder)
    elif how == "missing_inputs":
        os.unlink(os.path.join(folder, "inputs.npz"))
    else:
        open(os.path.join(folder, "inputs.npz"), "wb").write(b"PK\x03\x04 not a zip")
        case = json.load(open(case_path))
        del case["sha256"]  # an older reproducer without digests: the npz itself must be checked
        json.dump(case, open(case_path, "w"))
    capsys.readouterr()
    assert cli.main(["replay", folder]) == 2
    err = capsys.readouterr().err
    assert mention in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_an_intact_reproducer_still_loads():
    case = load_reproducer(_folder("reproducer"))
    assert case["architecture"] == ARCH and case["inputs"]["input_ids"].tolist() == [[0, 4, 5, 2]]
