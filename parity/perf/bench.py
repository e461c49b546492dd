"""What `led-parity bench` measures: HF transformers' LED, led_torch (each backend) and led_ref side by side.

Every implementation gets the same seeded random weights and the same inputs, in ONE process; timed runs
alternate round-robin over the implementations (the order rotates each repeat) so machine noise hits them all
alike. For each (task, sequence length, implementation) the table gives the median time, the speed-up over HF,
the peak memory of one call (parity.perf.peak_memory: CPU in a fresh subprocess per implementation, CUDA from
torch's allocator), the achieved GFLOP/s of the encoder (parity.perf.flops) against a measured matmul ceiling,
and whether the outputs matched: the encoder's last hidden state within the float tolerance of the reference
(HF when it runs, else led_ref), generated token ids identical. A half-precision generation (or one whose
reference runs in half precision) is judged instead against led_ref's float64 tokens, generated once, untimed,
on the same weights and inputs: tie-aware, with beam scores compared (parity.harness.generation), so HF's own
half row is judged against the same reference (`--no-spec-tokens` skips it). The implementations are the sides of
parity.harness.implementations (the registry `check` and `audit` use), named short: hf, banded, flex, triton,
led_ref, or NAME@DTYPE. The flags are defined in parity.commands.bench.

    led-parity bench --quick                                  # tiny shapes, a few seconds
    led-parity bench --shape base --seq 1024,4096 --repeats 3
    led-parity bench --task generate --impls hf,banded        # beam 4, 32 new tokens, 1k source
    led-parity bench --device cuda --shape large --seq 16384 --dtype bfloat16 --hf-dtype float16
    led-parity bench --dtype bfloat16 --baseline-dtype float32 --impls hf,banded --seq 4096   # bf16 rows
    led-parity bench --task throughput --seq 4096 --impls hf,banded   # 8 documents per call, docs/s
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace

import numpy as np

from led_ref.io.config import LEDConfig
from parity.harness.implementations import Side, side_named, usable_names
from parity.perf.flops import encoder_flops, matmul_ceiling
from parity.perf.options import (
    ARCHITECTURE,
    THROUGHPUT,
    Options,
    bench_config,
    check_batch_options,
    check_options,
    padded_length,
)
from parity.perf.peak_memory import peak_bytes
from parity.perf.results import (
    SPEC_LABEL,
    BenchResult,
    Row,
    bench_warnings,
    compare_rows,
    format_table,
    judged_by_spec,
    machine_info,
    markdown_table,
    ratio_lines,
)
from parity.perf.timing import round_robin

SPEC = Side("ref", None, "float64", "cpu")  # the float64 spec half-precision generations are judged against


def encoder_inputs(config: LEDConfig, seq: int, seed: int) -> dict[str, np.ndarray]:
    """One row of `seq` random token ids (no special tokens), all attended, the first token global."""
    rng = np.random.default_rng(seed + seq)
    input_ids = rng.integers(3, config.vocab_size, size=(1, seq), dtype=np.int64)
    global_mask = np.zeros((1, seq), dtype=np.int64)
    global_mask[:, 0] = 1
    return {"input_ids": input_ids, "attention_mask": np.ones((1, seq), dtype=np.int64),
            "global_attention_mask": global_mask}


def batch_inputs(config: LEDConfig, seq: int, docs: int, seed: int) -> dict[str, np.ndarray]:
    """`docs` rows of random ids right-padded to `seq`: the first row is `seq` tokens long, the others between
    5/8 of it and all of it; row i has 1 + (i mod 4) * 2 global tokens (the first token and random others).
    (The throughput task; the lengths and global counts differ so padding and per-row globals are exercised.)"""
    if docs < 1:
        raise ValueError(f"batch_docs must be >= 1, got {docs}")
    rng = np.random.default_rng(seed + seq + 7919 * docs)
    lengths = rng.integers(max(1, seq * 5 // 8), seq + 1, size=docs)
    lengths[0] = seq
    input_ids = rng.integers(3, config.vocab_size, size=(docs, seq), dtype=np.int64)
    attention_mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int64)
    global_mask = np.zeros((docs, seq), dtype=np.int64)
    for i, length in enumerate(lengths):
        count = min(int(length), 1 + (i % 4) * 2)
        global_mask[i, 0] = 1
        global_mask[i, rng.choice(np.arange(1, length), size=count - 1, replace=False)] = 1
    input_ids[attention_mask == 0] = config.pad_token_id
    return {"input_ids": input_ids, "attention_mask": attention_mask, "global_attention_mask": global_mask}


def build_impls(names, config: LEDConfig, weights: dict, options: Options, say: Callable[[str], None]):
    """{name: (Side, model)} for every short name (parity.harness.implementations.side_named) that builds, and
    {name: why} for those that do not (e.g. a backend that needs a GPU: reported as a row, not fatal)."""
    impls: dict[str, tuple[Side, object]] = {}
    failed: dict[str, str] = {}
    for name in names:
        say(f"building {name} ...")
        try:
            impls[name] = build_impl(name, config, weights, options)
        except Exception as err:  # noqa: BLE001
            failed[name] = f"failed to build: {type(err).__name__}: {err}"
    return impls, failed


def build_impl(name: str, config: LEDConfig, weights: dict, options: Options) -> tuple[Side, object]:
    """(side, model) of the short name `name` carrying `weights` on options.device."""
    side = side_named(name, options.dtype, options.device, options.hf_dtype, options.ref_dtype)
    return side, side.build(config, weights, ARCHITECTURE)


def memory_in_subprocess(options: Options, task: str, seq: int, impl: str) -> tuple[int | None, str]:
    """Peak bytes of one call of `impl` measured in a fresh Python process (see parity.perf.peak_memory)."""
    spec = json.dumps({"options": asdict(options), "task": task, "seq": seq, "impl": impl})
    # A fixed glibc mmap threshold: every large buffer is a fresh mapping (counted when touched, returned when
    # freed), so memory freed while building the model cannot be silently reused by the measured call.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    proc = subprocess.run([sys.executable, "-m", "parity.perf.bench", "--memory-worker", spec],
                          capture_output=True, text=True, env=env, check=False)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            result = json.loads(line)
            return result["peak_bytes"], result["method"]
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return None, f"subprocess failed: {tail}"


def _memory_worker(spec: str) -> None:
    """The body of a memory subprocess: build one implementation, reset the high-water mark, run once."""
    data = json.loads(spec)
    opts = data["options"]
    options = Options(**{k: tuple(v) if isinstance(v, list) else v for k, v in opts.items()})
    config = bench_config(options.shape)
    weights = _weights(config, options.seed)  # kept alive: its memory stays in the baseline, not reusable
    side, model = build_impl(data["impl"], config, weights, options)
    inputs = _task_inputs(config, data["task"], data["seq"], options)
    gc.collect()
    peak, method = peak_bytes(task_call(side, model, data["task"], inputs, options), options.device)
    print(json.dumps({"peak_bytes": peak, "method": method}))


def _weights(config: LEDConfig, seed: int) -> dict[str, np.ndarray]:
    from led_ref.init import random_weights

    return random_weights(config, ARCHITECTURE, seed=seed, dtype=np.float32)


def _task_inputs(config: LEDConfig, task: str, seq: int, options: Options) -> dict:
    if task == THROUGHPUT:
        return batch_inputs(config, seq, options.batch_docs, options.seed)
    if task == "generate" and options.gen_batch > 1:
        return batch_inputs(config, options.gen_source, options.gen_batch, options.seed)
    return encoder_inputs(config, options.gen_source if task == "generate" else seq, options.seed)


def task_call(side: Side, model, task: str, inputs: dict, options: Options) -> Callable[[], np.ndarray]:
    """The timed call of `task`: generate (options.new_tokens, options.beams), or the encoder (padding
    positions zeroed for the throughput task, whose batch is padded: what an implementation leaves there is
    not an output)."""
    if task == "generate":
        return lambda: side.generate(model, inputs, max_new_tokens=options.new_tokens, num_beams=options.beams)
    if task == THROUGHPUT:
        keep = inputs["attention_mask"][:, :, None].astype(np.float64)
        return lambda: side.encode(model, inputs) * keep
    return lambda: side.encode(model, inputs)


def run_bench(options: Options, progress: Callable[[str], None] | None = None) -> BenchResult:
    """Build every implementation once, then time each task x sequence length round-robin."""
    say = progress or (lambda _msg: None)
    check_options(options)
    check_batch_options(options)
    config = bench_config(options.shape)
    impl_names = with_baseline(options.impls or usable_names(options.device, options.dtype), options.baseline_dtype)
    # The machine's matmul rate drifts (shared VMs: 110-185 GFLOP/s on the same 2 vCPUs within an hour), so
    # the ceiling is measured before and after every case and the best sample is the reference; with a
    # baseline dtype its ceiling is sampled at the same moments, so both floors see the same machine.
    baseline = options.baseline_dtype if options.baseline_dtype not in (None, options.dtype) else None
    samples, base_samples = [], []

    def sample() -> None:
        samples.append(_measure_ceiling(options, say))
        if baseline:
            base_samples.append(_measure_ceiling(replace(options, dtype=baseline), say))

    sample()
    weights = _weights(config, options.seed)
    impls, failed = build_impls(impl_names, config, weights, options, say)
    rows: list[Row] = []
    for task in options.tasks:
        for seq in (options.gen_source,) if task == "generate" else options.seqs:
            rows += _run_case(config, weights, options, task, seq, impl_names, impls, failed, say)
            sample()
    ceiling = _best(samples)
    if baseline:
        ceiling["baseline"] = _best(base_samples)
    return BenchResult(options, machine_info(options.device), ceiling, rows)


def _best(samples: list[dict]) -> dict:
    """The fastest ceiling sample, with every sample's GFLOP/s listed."""
    return dict(max(samples, key=lambda c: c["gflops"]), samples=[round(c["gflops"], 1) for c in samples])


def _measure_ceiling(options: Options, say: Callable[[str], None]) -> dict:
    say(f"matmul ceiling ({options.dtype}, {options.device}) ...")
    ceiling = matmul_ceiling(options.device, options.dtype, options.ceiling_size)
    say(f"  {ceiling['gflops']:.1f} GFLOP/s ({ceiling['kernel']})")
    return ceiling


def with_baseline(impl_names, baseline_dtype: str | None) -> tuple[str, ...]:
    """`impl_names` plus, with a baseline dtype, each led_torch backend again in that dtype ("banded@float32"),
    right after it: the bfloat16 rows' own float32 counterpart, timed in the same rounds."""
    names = []
    for name in impl_names:
        names.append(name)
        if baseline_dtype and name not in ("hf", "led_ref") and "@" not in name:
            names.append(f"{name}@{baseline_dtype}")
    return tuple(names)


def case_flops(config: LEDConfig, task: str, inputs: dict) -> int | None:
    """Useful encoder FLOPs of one call (None for generate): per row, its own padded length and global count
    (a padded batch computes more than this: the padding is not useful work)."""
    if task == "generate":
        return None
    lengths = inputs["attention_mask"].sum(axis=1)
    globals_ = inputs["global_attention_mask"].sum(axis=1)
    return sum(encoder_flops(config, padded_length(config, int(n)), int(x)) for n, x in zip(lengths, globals_,
                                                                                              strict=True))


def _run_case(config, weights, options, task, seq, impl_names, impls, failed, say) -> list[Row]:
    inputs = _task_inputs(config, task, seq, options)
    say(f"{task} seq {seq}: timing {', '.join(impls)} ({options.repeats} repeats, round-robin) ...")
    calls = {n: task_call(side, model, task, inputs, options) for n, (side, model) in impls.items()}
    peaks: dict[str, tuple[int | None, str]] = {}
    if options.device != "cpu" or options.memory == "inprocess":
        for name, call in calls.items():
            try:
                peaks[name] = peak_bytes(call, options.device)
            except Exception as err:  # noqa: BLE001 - the timing loop reports the failure
                peaks[name] = (None, f"failed: {type(err).__name__}")
    times, outputs, errors = round_robin(calls, options.repeats, options.warmup, options.device)
    flops = case_flops(config, task, inputs)
    docs = inputs["input_ids"].shape[0]
    rows = []
    for name in impl_names:
        dtype = impls[name][0].dtype if name in impls else options.dtype
        row = Row(task, seq, name, dtype, times.get(name, []), flops=flops, docs=docs)
        row.note = failed.get(name) or (f"failed: {errors[name]}" if name in errors else "")
        rows.append(row)
    if options.memory == "subprocess" and options.device == "cpu":
        for row in rows:
            if row.times:
                say(f"  peak memory of {row.impl} in a subprocess ...")
                peaks[row.impl] = memory_in_subprocess(options, task, seq, row.impl)
    for row in rows:
        if row.times and row.impl in peaks:
            row.peak_bytes, row.memory_method = peaks[row.impl]
    timed = [r for r in rows if r.times]
    spec = None
    if task == "generate" and options.spec_tokens:
        judged = judged_by_spec(timed, outputs, hf_present="hf" in outputs)
        if judged:
            spec = spec_comparisons(config, weights, inputs, options, {n: impls[n] for n in judged}, outputs, say)
    compare_rows(timed, outputs, "generate" if task == "generate" else "encoder", hf_present="hf" in outputs,
                 spec=spec)
    hf = next((r.median for r in rows if r.impl == "hf" and r.median), None)
    for row in rows:
        row.speedup_vs_hf = hf / row.median if hf and row.median else None
    return rows


def spec_comparisons(config: LEDConfig, weights: dict, inputs: dict, options: Options, judged: dict,
                     outputs: dict, say: Callable[[str], None]) -> dict:
    """Each judged row's timed tokens against the float64 spec's, generated once (untimed) on the same weights
    and inputs, by the tie-aware rule of parity.harness.generation (`check`'s). Beam search also compares
    sequences_scores of rows with identical tokens; the timed call returns tokens only, so each judged side
    generates once more, untimed, with scores. `judged`: {impl: (Side, model)}.
    -> {impl: (GenerationComparison, note)}"""
    from parity.harness.checkpoints import EncodedReference, encoded_scorer
    from parity.harness.generation import beam_rule, compare_generation, crashed, tie_budget

    beams = options.beams > 1
    kwargs = dict(max_new_tokens=options.new_tokens, num_beams=options.beams)
    if beams:
        kwargs.update(return_dict_in_generate=True, output_scores=True)
    say(f"generate seq {options.gen_source}: float64 spec tokens ({SPEC_LABEL}, untimed) to judge "
        f"{', '.join(judged)} ...")
    start = time.perf_counter()
    try:
        spec_model = SPEC.build(config, weights, ARCHITECTURE)
        # The NumPy encoder is most of the spec's cost: run it once, for the generation and every scored
        # divergence alike (the audit's way, parity.harness.checkpoints).
        hidden = SPEC.encode(spec_model, inputs)
        expected = SPEC.generate(EncodedReference(spec_model, hidden), inputs, **kwargs)
    except Exception as err:  # noqa: BLE001 - the spec failing leaves every judged row unexplained
        return {n: (crashed(side, SPEC, f"{SPEC_LABEL} raised", err), "") for n, (side, _) in judged.items()}
    say(f"  float64 spec generated in {time.perf_counter() - start:.1f} s")
    expected, expected_scores = expected if beams else (expected, None)
    scorer = encoded_scorer(spec_model, inputs, hidden)
    beam = beam_rule(config, spec_model, **kwargs)
    pad = config.pad_token_id
    found = {}
    for name, (side, model) in judged.items():
        scores, note = None, ""
        if beams:
            say(f"  beam scores of {name} (one untimed call) ...")
            try:
                tokens, scores = side.generate(model, inputs, **kwargs)
            except Exception as err:  # noqa: BLE001 - reported as the row's mismatch
                found[name] = (crashed(side, SPEC, f"{name} generating with scores raised", err), "")
                continue
            if not (tokens.shape == outputs[name].shape and np.array_equal(tokens, outputs[name])):
                scores = None  # scores of other tokens say nothing about the timed ones
                note = "beam scores not compared: the call with scores generated other tokens than the timed one"
        found[name] = (compare_generation(outputs[name], expected, scorer, tie_budget(side.dtype, SPEC.dtype), pad,
                                          name, SPEC_LABEL, beam, scores, expected_scores), note)
    return found


def run_and_print(options: Options, json_path: str | None = None, markdown: bool = False) -> bool:
    """The `bench` command: check the options (ValueError naming the option), run, print the table, derived
    figures, warnings (and the markdown table), write the JSON; True when every output matched."""
    result = run_bench(options, progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(format_table(result))
    for line in ratio_lines(result):
        print(line)
    for line in bench_warnings(result):
        print(f"warning: {line}")
    if markdown:
        print("\n" + markdown_table(result) + "\n")
    if json_path:
        with open(json_path, "w", encoding="utf-8") as fh:
            json.dump(result.to_dict(), fh, indent=2)
    print("all outputs matched" if result.all_matched else "mismatch: some outputs differ (see the match column)")
    return result.all_matched


def main(argv: list[str] | None = None) -> int:
    """`python -m parity.perf.bench --memory-worker SPEC`: the body of a memory subprocess (memory_in_subprocess)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["--memory-worker"] or len(argv) != 2:
        print("usage: python -m parity.perf.bench --memory-worker SPEC (the bench command is `led-parity bench`)",
              file=sys.stderr)
        return 2
    _memory_worker(argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
