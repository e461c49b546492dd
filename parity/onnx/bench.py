"""`led-parity bench --onnx DIR`: ONNX Runtime (CPU) against led_torch and HF transformers on one export's
weights, in the same run, as ratios to led_torch.

    encoder    batch 1, each of `seqs` tokens, the first token global: last_hidden_state
    generate   beam search (`beams`, `new_tokens` new tokens, none ending early) from a `gen_source`-token source

The export's own checkpoint (parity.onnx.check.source_checkpoint) is loaded into led_torch (banded backend) and HF
(float32); each export folder named is one ONNX row (its attention: dense or banded, from the file's metadata).
Rounds are interleaved (one run of every implementation per round, after `warmup` untimed rounds) so that the
machine's load falls on all alike; the table gives the median. Generated tokens are compared with led_torch's
(`same tokens`), so a fast wrong row shows.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import dataclass, field

import numpy as np

from parity.onnx.check import source_checkpoint
from parity.onnx.generate import onnx_generate
from parity.onnx.sessions import ATTENTION_KEY, OnnxLED


@dataclass
class Row:
    task: str
    impl: str
    seconds: list[float] = field(default_factory=list)
    tokens: np.ndarray | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")


def encoder_inputs(config, length: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, config.vocab_size, (1, length)).astype(np.int64)
    glob = np.zeros((1, length), dtype=np.int64)
    glob[0, 0] = 1
    return {"input_ids": ids, "attention_mask": np.ones((1, length), dtype=np.int64), "global_attention_mask": glob}


def _runners(config, weights, exports: list[OnnxLED], settings, kwargs):
    """name -> (encode(inputs), generate(inputs) or None) for led_torch, HF and each export."""
    import torch

    import led_torch
    from parity.hf.models import hf_model

    torch_model = led_torch.LEDForConditionalGeneration.from_weights(config, weights, dtype=torch.float32).eval()
    hf = hf_model(config, weights, "LEDForConditionalGeneration", "float32").eval()

    def tensors(inputs):
        return {k: torch.as_tensor(v) for k, v in inputs.items()}

    def torch_runner(model, **extra):
        def encode(inputs):
            with torch.inference_mode():
                return model.get_encoder()(**tensors(inputs)).last_hidden_state

        def generate(inputs):
            with torch.inference_mode():
                return model.generate(**tensors(inputs), **kwargs, **extra).numpy()
        return encode, generate

    runners = {"led_torch": torch_runner(torch_model), "hf": torch_runner(hf, do_sample=False)}
    for onnx in exports:
        attention = onnx.encoder.session.get_modelmeta().custom_metadata_map.get(ATTENTION_KEY, "export")
        name = f"onnx-{attention}"
        if name in runners:
            name = f"onnx:{os.path.basename(os.path.normpath(onnx.directory))}"

        def generate(inputs, onnx=onnx):
            out = onnx_generate(onnx, inputs, settings)
            return out[0] if isinstance(out, tuple) else out  # beam search also returns the scores
        runners[name] = (lambda inputs, onnx=onnx: onnx.encode(*inputs.values()),
                         generate if onnx.decoder is not None else None)
    return runners


def run_onnx_bench(onnx_dirs: list[str], seqs=(1024, 4096), gen_source: int = 1024, new_tokens: int = 32,
                   beams: int = 4, repeats: int = 3, warmup: int = 1, tasks=("encoder", "generate"),
                   checkpoint: str | None = None) -> list[Row]:
    """Time every implementation on every task; -> rows (task, impl, seconds per repeat, generated tokens)."""
    from led_ref.io.generation_settings import explicit_arguments, resolve
    from parity.harness.checkpoints import load_for_generation

    if not onnx_dirs:
        raise ValueError("bench --onnx needs at least one export folder")
    for name, value in (("repeats", repeats), ("new_tokens", new_tokens), ("beams", beams),
                        ("gen_source", gen_source), *(("seq", s) for s in seqs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    exports = [OnnxLED.open(d) for d in onnx_dirs]
    config, weights = load_for_generation(source_checkpoint(exports[0], checkpoint))
    for onnx in exports:
        onnx.check_config(config)
    longest = max([*seqs, gen_source])
    if longest > config.max_encoder_position_embeddings:
        raise ValueError(f"seq {longest} is over the model's {config.max_encoder_position_embeddings} positions")
    settings = resolve(config, None, num_beams=beams, max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    kwargs = explicit_arguments(settings)
    runners = _runners(config, weights, exports, settings, kwargs)
    jobs = []  # (row, call, inputs)
    if "encoder" in tasks:
        for seq in seqs:
            inputs = encoder_inputs(config, seq)
            jobs += [(Row(f"encoder {seq}", name), encode, inputs) for name, (encode, _) in runners.items()]
    if "generate" in tasks:
        inputs = encoder_inputs(config, gen_source, seed=1)
        task = f"generate {beams} beams, {new_tokens} tokens, {gen_source} source"
        jobs += [(Row(task, name), gen, inputs) for name, (_, gen) in runners.items() if gen is not None]
    for round_ in range(warmup + repeats):
        for row, call, inputs in jobs:
            start = time.perf_counter()
            out = call(inputs)
            if round_ >= warmup:
                row.seconds.append(time.perf_counter() - start)
            if row.task.startswith("generate"):
                row.tokens = np.asarray(out)
    return [row for row, _, _ in jobs]


def table(rows: list[Row], markdown: bool = False) -> str:
    """Per task and implementation: median seconds, ratio to led_torch, and for generation whether the tokens
    are led_torch's."""
    header = ["task", "impl", "median s", "time / led_torch", "same tokens"]
    lines = []
    for row in rows:
        base = next(r for r in rows if r.task == row.task and r.impl == "led_torch")
        same = "" if row.tokens is None else ("yes" if base.tokens is not None and row.tokens.shape ==
                                             base.tokens.shape and (row.tokens == base.tokens).all() else "NO")
        lines.append([row.task, row.impl, f"{row.median:.3f}", f"{row.median / base.median:.2f}", same])
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        return "\n".join(out + ["| " + " | ".join(cells) + " |" for cells in lines])
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines, strict=True)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True))
                     for cells in [header, *lines])


def machine() -> str:
    """The CPU, its cores, torch's threads and the load average, for the header of a timing."""
    import torch

    from parity.perf.results import cpu_model

    cpu = cpu_model()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return f"{cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, load average {load}"


def run_and_print(onnx_dirs: list[str], json_path: str | None = None, markdown: bool = False, **options) -> bool:
    """The `bench --onnx` command: run, print the machine and the table; True when every generation row gave
    led_torch's tokens."""
    before = machine()
    rows = run_onnx_bench(onnx_dirs, **options)
    print(f"bench --onnx on {before}")
    print(table(rows))
    if markdown:
        print(table(rows, markdown=True))
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if json_path:
        from led_ref.io.files import write_text_atomic

        write_text_atomic(json_path, json.dumps({"machine": before, "rows": [
            {"task": r.task, "impl": r.impl, "seconds": r.seconds, "median": r.median} for r in rows]}, indent=1))
    generated = [r for r in rows if r.tokens is not None]
    base = {r.task: r.tokens for r in generated if r.impl == "led_torch"}
    return all(r.tokens.shape == base[r.task].shape and (r.tokens == base[r.task]).all() for r in generated)


def run_onnx_bench_args(args) -> bool:
    """`bench --onnx` from bench's flags: --seq, --task (encoder, generate, all), --repeats, --warmup,
    --gen-source, --new-tokens, --beams, --json, --markdown; the rest of bench's flags do not apply."""
    seqs = tuple(int(s) for s in (args.seq or "1024,4096").split(",") if s.strip())
    tasks = {None: ("encoder", "generate"), "all": ("encoder", "generate")}.get(args.task, (args.task,))
    if not set(tasks) <= {"encoder", "generate"}:
        raise ValueError(f"bench --onnx times the encoder and generate tasks, not {args.task!r}")
    pick = lambda value, default: default if value is None else value  # noqa: E731
    return run_and_print([d for d in args.onnx.split(",") if d.strip()], json_path=args.json, markdown=args.markdown,
                         seqs=seqs, tasks=tasks, repeats=pick(args.repeats, 3), warmup=pick(args.warmup, 1),
                         gen_source=pick(args.gen_source, 1024), new_tokens=pick(args.new_tokens, 32),
                         beams=pick(args.beams, 4))
