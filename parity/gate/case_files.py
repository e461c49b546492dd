"""A failing gate case on disk: a self-contained reproducer folder, replayed without the strategy or the seed.

    folder/inputs.npz   query, key, value, global_query, global_key, global_value (float64, as the kernel saw
                        them after rounding to the run's dtype: exact in every dtype), token_kind (int64)
    folder/case.json    what the replay needs and a reader wants: kernel, dtype, device, backward, atol,
                        deterministic, window, shapes and dtypes of the inputs, the memory layout they were handed
                        in (contiguous, packed, poisoned: strides, storage offsets, buffer shapes), token kinds as
                        strings ('.' padding, 'l' local, 'g' global), the value parameters, the declared support,
                        the verdict it gave and the one command that replays it
    folder/command.txt  that command: `python -m parity gate --attention K --replay-case FOLDER`

The replay (parity.gate.judge.replay_case, also `python -m parity replay FOLDER`) runs the kernel once on it,
in the recorded layout, dtype, device, backward, atol and determinism check.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import tempfile

import numpy as np

from parity.gate.poison import GateCase, hand_over
from parity.harness.strategies import AttentionCase

SCHEMA_VERSION = 1
ARRAYS = ("query", "key", "value", "global_query", "global_key", "global_value")
KIND_LETTERS = ".lg"  # token_kind 0, 1, 2


def kind_rows(token_kind) -> list[str]:
    """(batch, seq) token kinds -> one string per row: '.' padding, 'l' local, 'g' global."""
    return ["".join(KIND_LETTERS[int(k)] for k in row) for row in np.asarray(token_kind)]


def case_id(case) -> str:
    """A short stable name of a case (a CaseRecipe's key, or a case's arrays and token kinds), the same in
    every process, so shard reports can be compared case by case."""
    digest = hashlib.sha1()
    if hasattr(case, "materialize"):  # a CaseRecipe (an AttentionCase's `key` is its key array)
        digest.update(repr(case.key()).encode())
    else:
        for a in (*case.arrays(), np.asarray(case.token_kind)):
            digest.update(np.ascontiguousarray(a).tobytes())
        digest.update(repr((case.window, case.strided, getattr(case, "poisoned", False),
                            getattr(case, "transposed", False))).encode())
    return digest.hexdigest()[:16]


def replay_command(kernel: str, directory: str) -> str:
    return f"python -m parity gate --attention {shlex.quote(kernel)} --replay-case {shlex.quote(directory)}"


def save_case(case: AttentionCase, record: dict, directory: str | None = None) -> str:
    """Write `case` and `record` (JSON-able: the run's declarations and verdict) to `directory` (default a
    fresh temp folder `led-parity-gate-case-*`); returns the folder."""
    directory = directory or tempfile.mkdtemp(prefix="led-parity-gate-case-")
    os.makedirs(directory, exist_ok=True)
    arrays = dict(zip(ARRAYS, case.arrays(), strict=True))
    np.savez(os.path.join(directory, "inputs.npz"), token_kind=np.asarray(case.token_kind, np.int64),
             **{name: np.asarray(a, np.float64) for name, a in arrays.items()})
    described = {
        "schema_version": SCHEMA_VERSION,
        "window": int(case.window),
        "strided": bool(case.strided),
        "value_seed": int(case.seed),
        "label": case.label,
        "shapes": {name: list(a.shape) for name, a in arrays.items()} | {"token_kind": list(case.token_kind.shape)},
        "dtypes": {name: "float64" for name in ARRAYS} | {"token_kind": "int64"},
        "token_kind": kind_rows(case.token_kind),
        "poisoned": bool(getattr(case, "poisoned", False)),
        "transposed": bool(getattr(case, "transposed", False)),
        "handed": _handed(case, record.get("dtype", "float64")),
        "command": replay_command(str(record.get("kernel", "KERNEL")), directory),
    }
    with open(os.path.join(directory, "case.json"), "w", encoding="utf-8") as fh:
        json.dump({**described, **record}, fh, indent=2, allow_nan=False)
    with open(os.path.join(directory, "command.txt"), "w", encoding="utf-8") as fh:
        fh.write(described["command"] + "\n")
    return directory


def _handed(case: AttentionCase, dtype: str) -> dict | None:
    """Strides, offsets and buffers of the inputs as the kernel got them (None when torch cannot say)."""
    try:
        import torch

        return hand_over(case, getattr(torch, dtype)).description()
    except (ImportError, AttributeError, TypeError, RuntimeError):
        return None


def load_case(path: str) -> tuple[AttentionCase, dict]:
    """The AttentionCase and the record saved by `save_case` (`path`: the folder or its case.json).
    ValueError naming the path when it is not such a folder."""
    directory = os.path.dirname(path) if os.path.basename(path) == "case.json" else path
    record_path, inputs_path = os.path.join(directory, "case.json"), os.path.join(directory, "inputs.npz")
    for needed in (record_path, inputs_path):
        if not os.path.isfile(needed):
            raise ValueError(f"--replay-case {path!r}: no {os.path.basename(needed)} there (a gate case folder "
                             "holds case.json and inputs.npz)")
    with open(record_path, encoding="utf-8") as fh:
        try:
            record = json.load(fh)
        except json.JSONDecodeError as err:
            raise ValueError(f"--replay-case {path!r}: case.json is not JSON ({err})") from None
    version = record.get("schema_version") if isinstance(record, dict) else None
    if version != SCHEMA_VERSION:
        raise ValueError(f"--replay-case {path!r}: case.json schema_version must be {SCHEMA_VERSION}, got {version!r}")
    with np.load(inputs_path) as data:
        missing = [name for name in (*ARRAYS, "token_kind") if name not in data.files]
        if missing:
            raise ValueError(f"--replay-case {path!r}: inputs.npz lacks {', '.join(missing)}")
        arrays = [np.asarray(data[name], np.float64) for name in ARRAYS]
        token_kind = np.asarray(data["token_kind"], np.int64)
    case = GateCase(*arrays, token_kind=token_kind, window=int(record["window"]),
                    seed=int(record.get("value_seed", 0)), strided=bool(record.get("strided", False)),
                    label=str(record.get("label", "")), poisoned=bool(record.get("poisoned", False)),
                    transposed=bool(record.get("transposed", False)))
    return case, record
