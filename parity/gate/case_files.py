"""A failing gate case on disk, so a run on caller-given cases can be replayed without its strategy.

    folder/inputs.npz   query, key, value, global_query, global_key, global_value (float64, as the kernel saw
                        them after rounding to the run's dtype), token_kind (int64)
    folder/case.json    what the replay needs and a reader wants: kernel, dtype, device, backward, atol, window,
                        shapes and dtypes of the inputs, token kinds as strings ('.' padding, 'l' local,
                        'g' global), the value parameters, the declared support, the verdict it gave

`python -m parity gate --attention K --replay-case FOLDER` runs the kernel on it once (parity.gate.judge.replay_case).
"""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np

from parity.harness.strategies import AttentionCase

SCHEMA_VERSION = 1
ARRAYS = ("query", "key", "value", "global_query", "global_key", "global_value")
KIND_LETTERS = ".lg"  # token_kind 0, 1, 2


def kind_rows(token_kind) -> list[str]:
    """(batch, seq) token kinds -> one string per row: '.' padding, 'l' local, 'g' global."""
    return ["".join(KIND_LETTERS[int(k)] for k in row) for row in np.asarray(token_kind)]


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
    }
    with open(os.path.join(directory, "case.json"), "w", encoding="utf-8") as fh:
        json.dump({**described, **record}, fh, indent=2, allow_nan=False)
    return directory


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
    case = AttentionCase(*arrays, token_kind=token_kind, window=int(record["window"]),
                         seed=int(record.get("value_seed", 0)), strided=bool(record.get("strided", False)),
                         label=str(record.get("label", "")))
    return case, record
