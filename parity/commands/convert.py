"""`led-parity convert SRC DST`: a PyTorch-pickle LED checkpoint (`pytorch_model.bin`, or shards listed by
`pytorch_model.bin.index.json`) rewritten as safetensors, which `led_ref` reads without torch or pickle.

The pickle is read by torch's weights-only unpickler (`torch.load(weights_only=True)`): plain tensors only, no
code runs; anything else is refused. The weights are checked against config.json like any load, written in
HF's layout (tied copies left out, dtypes kept; bfloat16 widened to float32), and every other file of SRC
(config, generation_config.json, tokenizer files) is copied alongside.
"""

from __future__ import annotations

import os
import shutil

import numpy as np

from parity.commands.exits import EXIT_OK
from parity.commands.flags import Command

PICKLE_WEIGHTS = "pytorch_model.bin"
PICKLE_INDEX = "pytorch_model.bin.index.json"


def read_pickle_weights(folder: str) -> dict[str, np.ndarray]:
    """name -> array from `pytorch_model.bin` or its shards, through the weights-only unpickler."""
    import torch

    from led_ref.io.checkpoint import CheckpointError
    from led_ref.io.files import read_json
    from led_torch.model import _load_pickle_weights_only

    single, index = os.path.join(folder, PICKLE_WEIGHTS), os.path.join(folder, PICKLE_INDEX)
    if os.path.isfile(single):
        files = [single]
    elif os.path.isfile(index):
        weight_map = read_json(index, what="shard index", error=CheckpointError).get("weight_map")
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise CheckpointError(f"{index!r} has no weight_map of tensor name -> shard file")
        files = []
        for shard in sorted(set(weight_map.values())):
            if os.path.basename(shard) != shard or not os.path.isfile(os.path.join(folder, shard)):
                raise FileNotFoundError(f"shard {shard!r} named in {index!r} is missing from {folder!r}")
            files.append(os.path.join(folder, shard))
    else:
        raise FileNotFoundError(f"no {PICKLE_WEIGHTS} or {PICKLE_INDEX} in {folder!r}: nothing to convert")
    weights: dict[str, np.ndarray] = {}
    for path in files:
        for name, tensor in _load_pickle_weights_only(path).items():
            tensor = tensor.detach().cpu()
            if tensor.dtype == torch.bfloat16:
                tensor = tensor.float()  # NumPy has no bfloat16
            weights[name] = tensor.numpy()
    return weights


def convert_checkpoint(source: str | os.PathLike, destination: str | os.PathLike) -> dict:
    """Write DST as a safetensors checkpoint of SRC (a folder, or a hub id in the local HF cache).

    Returns {"architecture", "tensors", "copied"} for the report. DST must not be SRC.
    """
    from led_ref.io.checkpoint import infer_architecture, resolve_checkpoint, save_checkpoint
    from led_ref.io.config import LEDConfig

    source = resolve_checkpoint(source)
    destination = os.fspath(destination)
    if not os.path.isdir(source):
        raise FileNotFoundError(f"source checkpoint folder {source!r} does not exist")
    if os.path.exists(destination) and os.path.samefile(source, destination):
        raise ValueError(f"destination {destination!r} is the source folder; give a new folder")
    config = LEDConfig.from_pretrained(source)
    weights = read_pickle_weights(source)
    architecture = infer_architecture(weights)
    save_checkpoint(destination, config, weights, architecture)
    copied = []
    skip = {PICKLE_WEIGHTS, PICKLE_INDEX, "config.json", "model.safetensors", "model.safetensors.index.json"}
    for name in sorted(os.listdir(source)):
        path = os.path.join(source, name)
        if name in skip or name.startswith("pytorch_model-") or not os.path.isfile(path) or name.startswith("."):
            continue
        shutil.copyfile(path, os.path.join(destination, name))  # follows the HF cache's symlinks
        copied.append(name)
    return {"architecture": architecture, "tensors": len(weights), "copied": copied}


def add_convert_arguments(parser) -> None:
    parser.add_argument("source", help="checkpoint folder with pytorch_model.bin (or its shards), or a cached hub id")
    parser.add_argument("destination", help="new folder for the safetensors checkpoint")


def run(args) -> int:
    done = convert_checkpoint(args.source, args.destination)
    print(f"wrote {args.destination}: {done['tensors']} tensors of {done['architecture']} as safetensors"
          + (f"; copied {', '.join(done['copied'])}" if done["copied"] else ""))
    return EXIT_OK


COMMAND = Command("convert", "rewrite a pytorch_model.bin checkpoint as safetensors (weights-only loading, no code "
                  "runs)", add_convert_arguments, run)
