"""Safe loading and saving for both packages.

- A pickle whose unpickling would run code is never executed: led_ref refuses pickles outright, led_torch
  reads them only through torch's weights-only unpickler and turns a refusal into a clear ValueError.
- Missing, unexpected, misshapen and non-finite tensors are all named; a folder without config.json says so;
  a truncated weights file is reported, not crashed on.
- Saving goes through temp files and renames: a save interrupted while writing leaves the previous
  checkpoint loadable and unchanged, with no temp or half-written files.
- Nothing is lost on the way: float64 weights round-trip bit for bit.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

import led_ref
import led_ref.io.checkpoint as ckpt
import led_torch
from led_ref.init import random_weights
from led_ref.io.config import LEDConfig

CONFIG = LEDConfig(vocab_size=20, d_model=8, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                   decoder_attention_heads=2, encoder_ffn_dim=8, decoder_ffn_dim=8, attention_window=[2, 4],
                   max_encoder_position_embeddings=16, max_decoder_position_embeddings=8)
ARCH = "LEDForConditionalGeneration"
PACKAGES = {"led_ref": led_ref, "led_torch": led_torch}


def load(package: str, path, architecture: str = ARCH, dtype: str = "float64"):
    cls = getattr(PACKAGES[package], architecture)
    if package == "led_ref":
        return cls.from_pretrained(path, dtype=np.dtype(dtype))
    return cls.from_pretrained(path, dtype=getattr(torch, dtype))


def weights_of(package: str, model) -> dict[str, np.ndarray]:
    if package == "led_ref":
        return dict(model.weights)
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


def write_checkpoint(folder, weights: dict, config: LEDConfig = CONFIG) -> None:
    """A hand-made HF folder: config.json + model.safetensors holding exactly `weights`."""
    os.makedirs(folder, exist_ok=True)
    config.save_pretrained(folder)
    save_file({k: np.ascontiguousarray(v) for k, v in weights.items()}, os.path.join(folder, "model.safetensors"),
              metadata={"format": "pt"})


# ------------------------------------------------------------------------------------------ malicious pickles
class RunsCode:
    """Unpickling this calls os.system: it creates `marker`. Any loader that executes it is unsafe."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def malicious_checkpoint(folder, marker, fmt: str) -> None:
    """config.json + a pytorch_model.bin whose unpickling runs `touch marker` (torch zip or plain pickle)."""
    os.makedirs(folder, exist_ok=True)
    CONFIG.save_pretrained(folder)
    payload = {"shared.weight": torch.zeros(20, 8), "evil": RunsCode(str(marker))}
    path = os.path.join(folder, "pytorch_model.bin")
    if fmt == "torch_zip":
        torch.save(payload, path)
    else:
        with open(path, "wb") as fh:
            pickle.dump(payload, fh)


def test_the_malicious_pickle_really_runs_code_when_unpickled(tmp_path):
    """Guard for the tests below: an unsafe load of this file does create the marker."""
    marker = tmp_path / "pwned"
    malicious_checkpoint(tmp_path / "ckpt", marker, "plain_pickle")
    with open(tmp_path / "ckpt" / "pytorch_model.bin", "rb") as fh:
        pickle.load(fh)  # noqa: S301 - deliberately unsafe, to prove the payload works
    assert marker.exists()


@pytest.mark.parametrize("fmt", ["torch_zip", "plain_pickle"])
@pytest.mark.parametrize("package", PACKAGES)
def test_pickle_that_runs_code_is_never_executed(tmp_path, package, fmt):
    marker = tmp_path / "pwned"
    malicious_checkpoint(tmp_path / "ckpt", marker, fmt)
    with pytest.raises(Exception) as err:  # noqa: B017 - the type is checked below, after the marker
        load(package, tmp_path / "ckpt")
    assert not marker.exists(), f"{package} executed code while loading a pickle"
    assert isinstance(err.value, ValueError), f"{type(err.value).__name__}: {err.value}"
    message = str(err.value)
    assert "pytorch_model.bin" in message, message
    if package == "led_ref":
        assert "never unpickles" in message
    else:
        assert "weights" in message and "only" in message, message


def test_safetensors_is_preferred_and_the_pickle_never_opened(tmp_path):
    folder = tmp_path / "ckpt"
    marker = tmp_path / "pwned"
    malicious_checkpoint(folder, marker, "torch_zip")
    weights = random_weights(CONFIG, ARCH, seed=1)
    write_checkpoint(folder, weights)
    for package in PACKAGES:
        model = load(package, folder, dtype="float32")
        got = weights_of(package, model)["final_logits_bias"]
        assert np.array_equal(got, weights["final_logits_bias"].astype(np.float32))
    assert not marker.exists()


@pytest.mark.parametrize("content", ["a list", "a tensor"])
def test_a_pickle_that_is_not_a_state_dict_is_refused(tmp_path, content):
    CONFIG.save_pretrained(tmp_path)
    torch.save([torch.zeros(3)] if content == "a list" else torch.zeros(3), tmp_path / "pytorch_model.bin")
    with pytest.raises((ValueError, TypeError), match="pytorch_model.bin"):
        load("led_torch", tmp_path)


# ------------------------------------------------------------------------------------------ bad tensors
def _broken_weights() -> tuple[dict, list[str]]:
    """Weights with one tensor missing, one unexpected, one misshapen and one non-finite; and their names."""
    weights = random_weights(CONFIG, ARCH, seed=2)
    missing = "led.decoder.layers.0.fc1.bias"
    misshapen = "led.encoder.layers.1.fc2.weight"
    non_finite = "led.encoder.layers.0.self_attn.longformer_self_attn.key_global.weight"
    unexpected = "led.encoder.layers.0.self_attn.mystery.weight"
    del weights[missing]
    weights[misshapen] = np.zeros((3, 3))
    weights[non_finite] = weights[non_finite].copy()
    weights[non_finite][1, 2] = np.nan
    weights[unexpected] = np.ones(4)
    return weights, [missing, misshapen, non_finite, unexpected]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_bad_tensor_in_a_file_is_named(tmp_path, package):
    weights, names = _broken_weights()
    write_checkpoint(tmp_path, weights)
    with pytest.raises(ValueError) as err:
        load(package, tmp_path)
    absent = [n for n in names if n not in str(err.value)]
    assert not absent, f"{package} message does not name {absent}: {err.value}"


@pytest.mark.parametrize("problem", ["missing", "misshapen", "non_finite", "unexpected"])
@pytest.mark.parametrize("package", PACKAGES)
def test_each_bad_tensor_given_in_memory_is_named(package, problem):
    """The same checks when weights are handed over directly (led_ref constructor, led_torch from_weights)."""
    weights, names = _broken_weights()
    name = names[["missing", "misshapen", "non_finite", "unexpected"].index(problem)]
    good = random_weights(CONFIG, ARCH, seed=2)
    one = dict(good)
    if problem == "missing":
        del one[name]
    else:
        one[name] = weights[name]
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        if package == "led_ref":
            led_ref.LEDForConditionalGeneration(CONFIG, weights=one)
        else:
            led_torch.LEDForConditionalGeneration.from_weights(CONFIG, one, dtype=torch.float64)


@pytest.mark.parametrize("problem", ["non_finite", "misshapen"])
def test_bad_tensors_in_a_pytorch_bin_are_named(tmp_path, problem):
    """pytorch_model.bin goes through the same checks as safetensors."""
    CONFIG.save_pretrained(tmp_path)
    state = {k: torch.from_numpy(v) for k, v in random_weights(CONFIG, ARCH, seed=3).items()}
    name = "led.encoder.layers.0.fc1.weight"
    state[name] = torch.full((2, 2), 1.0) if problem == "misshapen" else state[name].clone().fill_(float("inf"))
    torch.save(state, tmp_path / "pytorch_model.bin")
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        load("led_torch", tmp_path)


@pytest.mark.parametrize("package", PACKAGES)
def test_missing_config_and_folder_are_named(tmp_path, package):
    folder = tmp_path / "no_config"
    folder.mkdir()
    save_file({k: v for k, v in random_weights(CONFIG, ARCH).items()}, str(folder / "model.safetensors"))
    with pytest.raises(FileNotFoundError) as err:
        load(package, folder)
    assert "config.json" in str(err.value) and str(folder) in str(err.value)
    with pytest.raises(FileNotFoundError, match="does not exist|no config.json"):
        load(package, tmp_path / "nowhere")


@pytest.mark.parametrize("package", PACKAGES)
def test_config_json_without_weights_says_so(tmp_path, package):
    CONFIG.save_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load(package, tmp_path)


@pytest.mark.parametrize("package", PACKAGES)
def test_broken_config_json_is_named(tmp_path, package):
    write_checkpoint(tmp_path, random_weights(CONFIG, ARCH))
    (tmp_path / "config.json").write_text('{"d_model": 8,')
    with pytest.raises(ValueError, match="config.json.*not valid JSON"):
        load(package, tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(CONFIG.to_dict() | {"attention_window": 3}))
    with pytest.raises(ValueError, match="attention_window.*3"):
        load(package, tmp_path)


@pytest.mark.parametrize("package", PACKAGES)
def test_truncated_weights_file_is_reported(tmp_path, package):
    write_checkpoint(tmp_path, random_weights(CONFIG, ARCH))
    path = tmp_path / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="model.safetensors"):
        load(package, tmp_path)


@pytest.mark.parametrize("package", PACKAGES)
def test_shard_index_cannot_point_outside_the_folder(tmp_path, package):
    """A shard name like ../x.safetensors in model.safetensors.index.json is refused, not followed."""
    outside = tmp_path / "outside.safetensors"
    weights = random_weights(CONFIG, ARCH, seed=5)
    save_file(weights, str(outside))
    folder = tmp_path / "ckpt"
    folder.mkdir()
    CONFIG.save_pretrained(folder)
    index = {"metadata": {}, "weight_map": {name: "../outside.safetensors" for name in weights}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises((ValueError, FileNotFoundError), match="outside.safetensors"):
        load(package, folder)


@pytest.mark.parametrize("package", PACKAGES)
def test_bad_path_and_dtype_arguments_are_named(tmp_path, package):
    write_checkpoint(tmp_path, random_weights(CONFIG, ARCH))
    cls = getattr(PACKAGES[package], ARCH)
    for path in (None, 123, [str(tmp_path)]):
        with pytest.raises(TypeError, match="path"):
            cls.from_pretrained(path)
    for dtype in ("float33", torch.int32 if package == "led_torch" else np.int32):
        with pytest.raises(TypeError, match="dtype"):
            cls.from_pretrained(tmp_path, dtype=dtype)


# ------------------------------------------------------------------------------------------ beyond the dtype
# Every dtype each package loads as: a weight must be finite in it, not only in the file.
TARGETS = [("led_ref", "float64"), ("led_ref", "float32"), ("led_ref", "float16"), ("led_torch", "float64"),
           ("led_torch", "float32"), ("led_torch", "float16"), ("led_torch", "bfloat16")]


def _cast_is_finite(package: str, dtype: str, value: float) -> bool:
    """Whether the float64 `value` stays finite in the package's own cast to `dtype` (NumPy's in led_ref,
    torch's in led_torch, which rounds to float32 first on the way to float16/bfloat16)."""
    if package == "led_ref":
        with np.errstate(over="ignore"):
            return bool(np.isfinite(np.float64(value).astype(dtype)))
    return bool(torch.isfinite(torch.tensor(value, dtype=torch.float64).to(getattr(torch, dtype))))


def _edge(package: str, dtype: str) -> tuple[float, float]:
    """(the largest float64 that the package's cast to `dtype` keeps finite, the next float64 up), by bisection
    over float64 bit patterns: found from the casts themselves, not from the loader's thresholds."""
    def bits(x: float) -> int:
        return int(np.float64(x).view(np.int64))

    low, high = bits(torch.finfo(getattr(torch, dtype)).max), bits(np.inf)
    while high - low > 1:
        mid = (low + high) // 2
        if _cast_is_finite(package, dtype, float(np.int64(mid).view(np.float64))):
            low = mid
        else:
            high = mid
    return float(np.int64(low).view(np.float64)), float(np.int64(high).view(np.float64))


def _loaded_value(package: str, model, name: str, index) -> float:
    if package == "led_ref":
        return float(model.weights[name][index])
    return float(model.state_dict()[name][index])  # float() reads bfloat16 too, where .numpy() cannot


@pytest.mark.filterwarnings("error::RuntimeWarning")  # no "overflow encountered in cast" on the way
@pytest.mark.parametrize("package, dtype", TARGETS)
def test_a_weight_finite_in_the_file_but_not_in_the_loaded_dtype_is_refused(tmp_path, package, dtype):
    """A float64 checkpoint with one value just past what `dtype` holds (65520 for float16: it rounds to inf)
    is refused, naming tensor, value, dtype, limit and file; one just inside it (65519: rounds to 65504)
    loads as the dtype's largest finite value."""
    inside, past = _edge(package, dtype)
    limit = float(torch.finfo(getattr(torch, dtype)).max)
    over, near = "led.encoder.layers.0.fc1.weight", "led.decoder.layers.0.fc2.weight"
    weights = random_weights(CONFIG, ARCH, seed=6)
    assert weights[over].dtype == np.float64
    weights[over][0, 0] = -past
    weights[near][1, 1] = inside
    write_checkpoint(tmp_path / "past", weights)
    with pytest.raises(ValueError) as err:
        load(package, tmp_path / "past", dtype=dtype)
    message = str(err.value)
    if dtype == "float64":  # past float64 is inf: refused as stored, by the non-finite rule
        expected = [f"non-finite values in {over}"]
    else:
        expected = [over, repr(-past), dtype, repr(limit)]
    for part in [*expected, str(tmp_path / "past"), "model.safetensors"]:
        assert part in message, f"{part!r} is not in: {message}"
    assert near not in message, message

    weights[over][0, 0] = -inside
    write_checkpoint(tmp_path / "inside", weights)
    model = load(package, tmp_path / "inside", dtype=dtype)
    assert _loaded_value(package, model, over, (0, 0)) == -limit
    assert _loaded_value(package, model, near, (1, 1)) == limit


@pytest.mark.parametrize("package", PACKAGES)
def test_weights_given_in_memory_must_fit_the_dtype_too(package):
    """The same rule for the led_ref constructor and led_torch's from_weights."""
    name = "led.encoder.layers.0.fc1.weight"
    weights = random_weights(CONFIG, ARCH, seed=6)
    weights[name][0, 0] = 1e39
    cls = getattr(PACKAGES[package], ARCH)
    build = (lambda dtype: cls(CONFIG, weights=weights, dtype=np.dtype(dtype))) if package == "led_ref" else \
        (lambda dtype: cls.from_weights(CONFIG, weights, dtype=getattr(torch, dtype)))
    with pytest.raises(ValueError, match=rf"{name.replace('.', '[.]')} holds 1e\+39: .*float32"):
        build("float32")
    assert _loaded_value(package, build("float64"), name, (0, 0)) == 1e39


def test_a_pytorch_bin_value_beyond_the_dtype_is_refused_naming_the_file(tmp_path):
    CONFIG.save_pretrained(tmp_path)
    state = {k: torch.from_numpy(v) for k, v in random_weights(CONFIG, ARCH, seed=3).items()}
    name = "led.encoder.layers.0.fc1.weight"
    state[name][0, 0] = 70000.0
    torch.save(state, tmp_path / "pytorch_model.bin")
    with pytest.raises(ValueError) as err:
        load("led_torch", tmp_path, dtype="float16")
    for part in (name, "70000.0", "float16", "65504.0", "pytorch_model.bin"):
        assert part in str(err.value), str(err.value)


# ------------------------------------------------------------------------------------------ atomic saving
def _model(package: str, seed: int, config: LEDConfig = CONFIG):
    weights = random_weights(config, ARCH, seed=seed)
    if package == "led_ref":
        return led_ref.LEDForConditionalGeneration(config, weights=weights)
    return led_torch.LEDForConditionalGeneration.from_weights(config, weights, dtype=torch.float64)


def _snapshot(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _save(package, model, folder, shards):
    if shards:
        ckpt.save_checkpoint(folder, model.config, weights_of(package, model), ARCH, max_shard_size="2KB")
    else:
        model.save_pretrained(folder)


@pytest.mark.parametrize("shards, crash_at", [(False, 1), (True, 1), (True, 2), (True, 5)],
                         ids=["single", "shard1", "shard2", "shard5"])
@pytest.mark.parametrize("package", PACKAGES)
def test_interrupted_save_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch, package, crash_at, shards):
    """The disk fills up while the new weights are being written (the `crash_at`-th file flush fails)."""
    folder = tmp_path / "ckpt"
    old = _model(package, seed=1)
    _save(package, old, folder, shards)
    before = _snapshot(folder)
    new = _model(package, seed=2)
    calls = []
    real_fsync = os.fsync

    def failing_fsync(fd):
        calls.append(fd)
        if len(calls) == crash_at:
            raise OSError(28, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(ckpt.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space left"):
        _save(package, new, folder, shards)
    monkeypatch.undo()
    assert _snapshot(folder) == before, "an interrupted save changed or added files"
    loaded = weights_of(package, load(package, folder))
    want = weights_of(package, old)
    assert all(np.array_equal(loaded[k], want[k]) for k in want)


@pytest.mark.parametrize("package", PACKAGES)
def test_interrupted_rename_leaves_no_temp_files(tmp_path, monkeypatch, package):
    folder = tmp_path / "ckpt"
    _model(package, seed=1).save_pretrained(folder)
    before = _snapshot(folder)

    def crash(src, dst):
        raise OSError("killed")

    monkeypatch.setattr(ckpt.os, "replace", crash)
    with pytest.raises(OSError, match="killed"):
        _model(package, seed=2).save_pretrained(folder)
    monkeypatch.undo()
    assert _snapshot(folder) == before


# ------------------------------------------------------------------------------------------ nothing lost
@pytest.mark.parametrize("writer, reader", [("led_ref", "led_torch"), ("led_torch", "led_ref"),
                                            ("led_torch", "led_torch"), ("led_ref", "led_ref")])
def test_float64_round_trip_is_bit_exact(tmp_path, writer, reader):
    model = _model(writer, seed=4)
    model.save_pretrained(tmp_path)
    loaded = weights_of(reader, load(reader, tmp_path))
    saved = weights_of(writer, model)
    changed = [k for k in random_weights(CONFIG, ARCH) if not np.array_equal(loaded[k], saved[k])]
    assert not changed, f"{writer} -> {reader} changed {changed[:3]}"
    config = LEDConfig.from_dict(json.loads((tmp_path / "config.json").read_text()))
    assert dataclasses.replace(config, extra={}) == dataclasses.replace(model.config, extra={})


# ------------------------------------------------------------------------------------------ failed saves
def _break(package: str, model, how: str):
    """Make `model` unsavable after construction, the way a user would."""
    if how == "window":
        model.config.attention_window = 5
    elif how == "pad_token":
        model.config.pad_token_id = None
    elif how == "nan_weight":
        if package == "led_ref":
            model.weights["led.encoder.layers.0.fc1.weight"][0, 0] = np.nan
        else:
            with torch.no_grad():
                model.led.encoder.layers[0].fc1.weight[0, 0] = float("nan")
    return model


@pytest.mark.parametrize("how, mentions", [("window", "attention_window"), ("pad_token", "pad_token_id"),
                                           ("nan_weight", "non-finite values in led.encoder.layers.0.fc1.weight")])
@pytest.mark.parametrize("package", PACKAGES)
def test_a_failed_save_leaves_the_folder_byte_identical(tmp_path, package, how, mentions):
    folder = tmp_path / "ckpt"
    _model(package, seed=1).save_pretrained(folder)
    (folder / "README.md").write_text("notes the user keeps next to the weights")
    before = _snapshot(folder)
    broken = _break(package, _model(package, seed=2, config=LEDConfig.from_dict(CONFIG.to_dict())), how)
    with pytest.raises(ValueError, match=mentions):
        broken.save_pretrained(folder)
    assert _snapshot(folder) == before, "a save refused for bad content changed the folder"
    with pytest.raises(ValueError, match=mentions):
        broken.save_pretrained(tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists(), "a refused save created the folder"


# A save killed (SIGKILL) while flushing its temp file: fsync never returns, so the temp file stays behind.
_KILLED_SAVE = """
import os, sys, time
import led_ref
from tests.test_safe_loading import _model
def hang(fd):
    print("writing", flush=True)
    time.sleep(600)
os.fsync = hang
_model("led_ref", seed=3).save_pretrained(sys.argv[1])
"""


def test_temp_files_of_a_killed_save_are_removed_by_the_next_save(tmp_path):
    import signal
    import subprocess
    import sys

    from led_ref.io.files import TEMP_PREFIX

    folder = tmp_path / "ckpt"
    _model("led_ref", seed=1).save_pretrained(folder)
    before = _snapshot(folder)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_SAVE, str(folder)], cwd=root, stdout=subprocess.PIPE,
                            env=os.environ | {"PYTHONPATH": root})
    try:
        assert proc.stdout.readline().strip() == b"writing"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    left = [p.name for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX)]
    assert len(left) == 1 and left[0].startswith(f"{TEMP_PREFIX}{proc.pid}-"), left
    assert {k: v for k, v in _snapshot(folder).items() if k not in left} == before, "the killed save changed files"
    # Not ours, or owned by a live process (this one): kept.
    (folder / ".tmp-someone-else.part").write_bytes(b"x")
    live = folder / f"{TEMP_PREFIX}{os.getpid()}-busy.part"
    live.write_bytes(b"y")
    _model("led_ref", seed=2).save_pretrained(folder)
    names = {p.name for p in folder.iterdir()}
    assert left[0] not in names, "the stale temp file of the killed save is still there"
    assert {".tmp-someone-else.part", live.name} <= names
    np.testing.assert_array_equal(load("led_ref", folder).weights["final_logits_bias"],
                                  _model("led_ref", seed=2).weights["final_logits_bias"])


@pytest.mark.parametrize("package", PACKAGES)
def test_a_planted_stale_temp_file_is_removed_by_a_save(tmp_path, package):
    from led_ref.io.files import TEMP_PREFIX

    tmp_path.mkdir(exist_ok=True)
    stale = tmp_path / f"{TEMP_PREFIX}999999999-abc.part"  # no such process
    stale.write_bytes(b"half a shard")
    _model(package, seed=1).save_pretrained(tmp_path)
    assert not stale.exists()
