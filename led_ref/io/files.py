"""Reading the JSON files of a checkpoint defensively: one helper for every JSON file the project reads.

config.json, generation_config.json, model.safetensors.index.json, the safetensors header, vocab.json,
tokenizer.json, tokenizer_config.json, special_tokens_map.json and a reproducer's case.json all go through
`read_json` (a file) or `parse_json` (bytes already read). Whatever is wrong with the file, the caller gets
a `FileFormatError` (a ValueError, or the `error` class it asks for) naming the file, what is wrong and where:

    read_json("ckpt/config.json", what="model config")
    FileFormatError: 'ckpt/config.json' (model config) is not UTF-8 (it starts with a UTF-16 byte-order mark)
    FileFormatError: 'ckpt/config.json' (model config) is not valid JSON: Expecting ',' delimiter at line 3 column 5
    FileFormatError: 'ckpt/config.json' (model config) must hold a JSON object at the top level, found a list

Never a UnicodeDecodeError or JSONDecodeError without the file name, never a RecursionError: nesting deeper
than `MAX_DEPTH` is refused (the deepest file LED reads, tokenizer.json, nests 5 levels).
"""

from __future__ import annotations

import json
import os
from typing import Any

# Far above any real file (configs nest 3 levels, tokenizer.json 5), far below Python's recursion limit.
MAX_DEPTH = 64
_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe", "UTF-16"),
         (b"\xfe\xff", "UTF-16"))
_TYPES = {dict: "a JSON object", list: "a JSON array"}


class FileFormatError(ValueError):
    """A file is not what it should be; the message names the file, what is wrong and where."""


def read_json(path: str | os.PathLike, what: str = "JSON file", top: type | None = dict,
              error: type[ValueError] = FileFormatError) -> Any:
    """The parsed content of the JSON file at `path`; `top` (dict, list or None for any) is the type its top
    level must have. Raises `error` (a ValueError subclass) naming the file, or FileNotFoundError."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except IsADirectoryError:
        raise error(f"{path!r} ({what}) is a folder, not a file") from None
    return parse_json(data, path, what, top, error)


def parse_json(data: bytes, source: str, what: str = "JSON file", top: type | None = dict,
               error: type[ValueError] = FileFormatError) -> Any:
    """`data` (UTF-8 JSON bytes from `source`, a file name used in messages) parsed, checked as `read_json`."""
    label = f"{source!r} ({what})"
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            raise error(f"{label} is not UTF-8 (it starts with a {encoding} byte-order mark); save it as UTF-8")
    if b"\x00" in data:  # never in JSON text; the mark of UTF-16/32 written without a byte-order mark
        raise error(f"{label} is not UTF-8 JSON: NUL byte at offset {data.index(0)} (UTF-16?)")
    try:
        text = data.decode("utf-8-sig")  # a UTF-8 byte-order mark is tolerated
    except UnicodeDecodeError as err:
        raise error(f"{label} is not UTF-8: invalid byte {data[err.start]:#04x} at offset {err.start}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise error(f"{label} is not valid JSON: {err}") from None
    except RecursionError:
        raise error(f"{label} nests JSON deeper than {MAX_DEPTH} levels") from None
    depth = json_depth(value)
    if depth > MAX_DEPTH:
        raise error(f"{label} nests JSON {depth} levels deep; at most {MAX_DEPTH} are allowed")
    if top is not None and not isinstance(value, top):
        raise error(f"{label} must hold {_TYPES.get(top, top.__name__)} at the top level, "
                    f"found {describe(value)}")
    return value


def json_depth(value: Any) -> int:
    """How deeply lists and objects nest in `value` (a scalar is 0, [] is 1), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def describe(value: Any) -> str:
    """A short phrase for a JSON value in messages: 'a list', 'the number 3', 'null'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {shown!r}"
    if isinstance(value, list):
        return f"a list of {len(value)} item(s)"
    if isinstance(value, dict):
        return f"an object of {len(value)} key(s)"
    return type(value).__name__


# ------------------------------------------------------------------------------------------ atomic writes
# Temp files of an unfinished write are named `.led-parity-tmp-<pid>-<random>.part`: recognisably ours, and
# stale once process <pid> is gone (killed mid-save), so the next save in the folder can remove them.
TEMP_PREFIX = ".led-parity-tmp-"


def write_temp(directory: str, data: bytes) -> str:
    """`data` in a fresh, flushed temp file in `directory` (removed again if writing fails); its path."""
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=directory or ".", prefix=f"{TEMP_PREFIX}{os.getpid()}-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; checkpoints are meant to be shared
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` through a temp file in the same folder and an atomic rename."""
    path = os.fspath(path)
    tmp = write_temp(os.path.dirname(path), text.encode("utf-8"))
    try:
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_stale_temps(directory: str) -> list[str]:
    """Delete the temp files in `directory` left by a write whose process no longer runs (killed mid-save);
    files of live processes and every file not named by `write_temp` are kept. The names removed."""
    removed = []
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return removed
    for name in names:
        if not (name.startswith(TEMP_PREFIX) and name.endswith(".part")):
            continue
        pid = name[len(TEMP_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and _process_is_alive(int(pid)):
            continue
        try:
            os.unlink(os.path.join(directory, name))
            removed.append(name)
        except FileNotFoundError:  # removed meanwhile by another save
            pass
    return removed


def _process_is_alive(pid: int) -> bool:
    """Whether process `pid` exists (our own process included: another thread may be saving)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True
