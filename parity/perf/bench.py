"""What `led-parity bench` measures: HF transformers' LED, led_torch (each backend) and led_ref side by side.

Every implementation gets the same seeded random weights and the same inputs, in ONE process; timed runs
alternate round-robin over the implementations (the order rotates each repeat) so machine noise hits them all
alike. For each (task, sequence length, implementation) the table gives the median time, the speed-up over HF,
the peak memory of one call (parity.perf.peak_memory: CPU in a fresh subprocess per implementation, CUDA from
torch's allocator), the achieved GFLOP/s of the encoder (parity.perf.flops) against a measured matmul ceiling,
and whether the outputs matched: the encoder's last hidden state within the float tolerance of the reference
(HF when it runs, else led_ref), generated token ids identical. The implementations are the sides of
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
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from led_ref.io import lengths
from led_ref.io.config import LEDConfig
from parity.harness.implementations import SHORT_NAMES, Side, side_named, usable_names
from parity.harness.tolerances import DTYPE_ORDER, scaled_error, tolerance
from parity.perf.flops import encoder_flops, matmul_ceiling
from parity.perf.peak_memory import peak_bytes

ARCHITECTURE = "LEDForConditionalGeneration"
TASKS = ("encoder", "generate")
# A batch of documents of different lengths and global counts through the encoder in one call, reported in
# documents per second; not part of `--task all` (a 4k batch of 8 costs HF minutes).
THROUGHPUT = "throughput"
# A ceiling that moves more than this between its samples in one run means the machine was busy: said in a
# `warning:` line and in the JSON, since every rate and speed-up of such a run is suspect.
CEILING_SPREAD_WARNING = 0.20

# Model shapes. vocab_size is cut to 1000 for base/large: the vocabulary only changes the embedding table and
# the lm_head (not timed in the encoder; a small share of a decode step), and saves ~300 MB per copy.
SHAPES: dict[str, dict] = {
    "tiny": dict(vocab_size=64, d_model=32, encoder_attention_heads=4, decoder_attention_heads=4,
                 encoder_layers=2, decoder_layers=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                 attention_window=[8, 16], max_encoder_position_embeddings=256,
                 max_decoder_position_embeddings=64),
    "base": dict(vocab_size=1000, d_model=768, encoder_attention_heads=12, decoder_attention_heads=12,
                 encoder_layers=6, decoder_layers=6, encoder_ffn_dim=3072, decoder_ffn_dim=3072,
                 attention_window=1024, max_encoder_position_embeddings=16384,
                 max_decoder_position_embeddings=1024),
    "large": dict(vocab_size=1000, d_model=1024, encoder_attention_heads=16, decoder_attention_heads=16,
                  encoder_layers=12, decoder_layers=12, encoder_ffn_dim=4096, decoder_ffn_dim=4096,
                  attention_window=1024, max_encoder_position_embeddings=16384,
                  max_decoder_position_embeddings=1024),
}


def bench_config(shape: str) -> LEDConfig:
    """The LEDConfig of a named bench shape ("tiny", "base", "large"), dropout off."""
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {', '.join(SHAPES)}; got {shape!r}")
    return LEDConfig(**SHAPES[shape], dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)


@dataclass(frozen=True)
class Options:
    """Everything one bench run depends on (also what a memory subprocess is told)."""

    shape: str = "base"
    seqs: tuple[int, ...] = (1024, 4096)
    tasks: tuple[str, ...] = ("encoder",)
    impls: tuple[str, ...] | None = None  # None: hf + every led_torch backend for the device + led_ref on CPU
    device: str = "cpu"
    dtype: str = "float32"
    hf_dtype: str | None = None  # None: the same as dtype
    ref_dtype: str = "float32"
    repeats: int = 3
    warmup: int = 1
    memory: str = "subprocess"  # subprocess | inprocess | off (CUDA always measures in process)
    seed: int = 0
    gen_source: int = 1024
    new_tokens: int = 32
    beams: int = 4
    ceiling_size: int | None = None
    baseline_dtype: str | None = None  # also time led_torch's backends in this dtype (rows "banded@float32")
    batch_docs: int = 8  # documents per call of the throughput task
    gen_batch: int = 1  # sources per call of the generate task


# ------------------------------------------------------------------------------------------ inputs
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


def padded_length(config: LEDConfig, seq: int) -> int:
    return lengths.padded_length(seq, config.max_window)


# ------------------------------------------------------------------------------------------ implementations
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


# ------------------------------------------------------------------------------------------ measuring
def _sync(device: str) -> Callable[[], None]:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.synchronize
    return lambda: None


def round_robin(calls: dict[str, Callable[[], object]], repeats: int, warmup: int, device: str):
    """Time every call `repeats` times, alternating (the order rotates each repeat), after `warmup` untimed
    rounds. -> (times {name: [seconds]}, first output {name: value}, error {name: message})."""
    sync = _sync(device)
    names = list(calls)
    times: dict[str, list[float]] = {n: [] for n in names}
    outputs: dict[str, object] = {}
    errors: dict[str, str] = {}
    for round_ in range(warmup + repeats):
        shift = round_ % len(names) if names else 0
        for name in names[shift:] + names[:shift]:
            if name in errors:
                continue
            gc.collect()
            sync()
            start = time.perf_counter()
            try:
                out = calls[name]()
                sync()
            except Exception as err:  # noqa: BLE001 - an implementation that fails is reported, not fatal
                errors[name] = f"{type(err).__name__}: {err}"
                continue
            elapsed = time.perf_counter() - start
            outputs.setdefault(name, out)
            if round_ >= warmup:
                times[name].append(elapsed)
    return times, outputs, errors


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


# ------------------------------------------------------------------------------------------ results
@dataclass
class Row:
    task: str
    seq: int
    impl: str
    dtype: str
    times: list[float] = field(default_factory=list)
    peak_bytes: int | None = None
    memory_method: str = ""
    flops: int | None = None
    reference: str | None = None
    error: float | None = None
    tolerance: float | None = None
    matched: bool | None = None  # None: this row is the reference (or nothing to compare with)
    note: str = ""
    speedup_vs_hf: float | None = None
    docs: int = 1  # documents (batch rows) per call

    @property
    def docs_per_s(self) -> float | None:
        return self.docs / self.median if self.median else None

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None

    @property
    def gflops(self) -> float | None:
        return self.flops / self.median / 1e9 if self.flops and self.median else None

    def to_dict(self, ceiling: float | None = None) -> dict:
        out = asdict(self)
        out.update(median_s=self.median, gflops=self.gflops, docs_per_s=self.docs_per_s,
                   fraction_of_ceiling=self.gflops / ceiling if self.gflops and ceiling else None)
        return out


@dataclass
class BenchResult:
    options: Options
    machine: dict
    ceiling: dict
    rows: list[Row]

    @property
    def all_matched(self) -> bool:
        return all(r.matched is not False and not r.note.startswith("failed") for r in self.rows)

    def ceiling_for(self, dtype: str) -> float | None:
        """GFLOP/s of the matmul ceiling a row in `dtype` is scored against: the baseline dtype's own ceiling
        for the baseline rows (a float32 row is never scored against the bfloat16 ceiling)."""
        base = self.ceiling.get("baseline")
        if base and dtype == base.get("dtype") and dtype != self.ceiling.get("dtype"):
            return base.get("gflops")
        return self.ceiling.get("gflops")

    def to_dict(self) -> dict:
        return {"options": asdict(self.options), "machine": self.machine, "matmul_ceiling": self.ceiling,
                "rows": [r.to_dict(self.ceiling_for(r.dtype)) for r in self.rows], "all_matched": self.all_matched,
                "ceiling_spread": ceiling_spread(self.ceiling.get("samples", [])), "warnings": warnings(self),
                "summary": ratio_lines(self), "backends_served": _backends_served()}


def _backends_served() -> dict[str, int]:
    """Encoder attention calls each led_torch backend served in this process ("backend:device:dtype": calls)."""
    from led_torch.backends import USAGE

    return USAGE.snapshot()


def machine_info(device: str) -> dict:
    import torch

    info = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "cpu_model": _cpu_model()}
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        info["transformers"] = None
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def compare_rows(rows: list[Row], outputs: dict[str, object], task: str, hf_present: bool) -> None:
    """Fill reference/error/matched: HF is the reference when it ran, else led_ref, else the first row."""
    ran = [r for r in rows if r.impl in outputs]
    if not ran:
        return
    names = [r.impl for r in ran]
    reference = "hf" if hf_present and "hf" in names else ("led_ref" if "led_ref" in names else names[0])
    ref_row = next(r for r in ran if r.impl == reference)
    expected = outputs[reference]
    for row in ran:
        row.reference = reference
        if row.impl == reference:
            continue
        if task == "encoder":
            row.tolerance = tolerance(row.dtype, ref_row.dtype, "hidden")
            row.error = scaled_error(outputs[row.impl], expected)
            row.matched = row.error <= row.tolerance
        elif _half(row.dtype, ref_row.dtype):
            _token_agreement(row, outputs[row.impl], expected)
        else:
            actual = outputs[row.impl]
            row.matched = bool(actual.shape == expected.shape and np.array_equal(actual, expected))
            if not row.matched:
                row.note = "tokens differ: " + _first_token_difference(actual, expected)


def _half(*dtypes: str) -> bool:
    return any(d in ("float16", "bfloat16") for d in dtypes)


def token_agreement(actual: np.ndarray, expected: np.ndarray) -> float:
    """Fraction of the reference's token positions (after the start token) that `actual` reproduces; positions
    one side lacks count as disagreements."""
    rows = min(actual.shape[0], expected.shape[0])
    n = max(actual.shape[1], expected.shape[1]) - 1
    if n <= 0 or actual.shape[0] != expected.shape[0]:
        return 0.0 if actual.shape != expected.shape else 1.0
    width = min(actual.shape[1], expected.shape[1])
    same = int((actual[:rows, 1:width] == expected[:rows, 1:width]).sum())
    return same / (rows * n)


def _token_agreement(row: Row, actual: np.ndarray, expected: np.ndarray) -> None:
    """A half-precision generation is not held to identical tokens (a near-tie may flip; `check --dtype
    bfloat16` holds it to the tie-aware rule against the float64 spec): the bench reports the agreement."""
    agreement = token_agreement(actual, expected)
    row.matched = None
    row.note = f"{100 * agreement:.0f}% of tokens as {row.reference}" + (
        "" if agreement == 1.0 else f" (first difference {_first_token_difference(actual, expected)})")


def _first_token_difference(actual: np.ndarray, expected: np.ndarray) -> str:
    if actual.shape[0] != expected.shape[0]:
        return f"{actual.shape[0]} rows vs {expected.shape[0]}"
    n = min(actual.shape[1], expected.shape[1])
    diff = np.argwhere(actual[:, :n] != expected[:, :n])
    if len(diff):
        row, step = diff[0]
        return f"row {row} step {step}: {actual[row, step]} vs {expected[row, step]}"
    return f"lengths {actual.shape[1]} vs {expected.shape[1]}"


# ------------------------------------------------------------------------------------------ the run
def run_bench(options: Options, progress: Callable[[str], None] | None = None) -> BenchResult:
    """Build every implementation once, then time each task x sequence length round-robin."""
    say = progress or (lambda _msg: None)
    _check_options(options)
    check_batch_options(options)
    config = bench_config(options.shape)
    impl_names = with_baseline(options.impls or usable_names(options.device, options.dtype), options.baseline_dtype)
    # The machine's matmul rate drifts (shared VMs: 110-185 GFLOP/s on the same 2 vCPUs within an hour), so
    # the ceiling is measured before and after every case and the best sample is the reference.
    samples = [_measure_ceiling(options, say)]
    impls, failed = build_impls(impl_names, config, _weights(config, options.seed), options, say)
    rows: list[Row] = []
    for task in options.tasks:
        for seq in (options.gen_source,) if task == "generate" else options.seqs:
            rows += _run_case(config, options, task, seq, impl_names, impls, failed, say)
            samples.append(_measure_ceiling(options, say))
    ceiling = dict(max(samples, key=lambda c: c["gflops"]), samples=[round(c["gflops"], 1) for c in samples])
    if options.baseline_dtype and options.baseline_dtype != options.dtype:
        ceiling["baseline"] = baseline_ceiling(options, say)
    return BenchResult(options, machine_info(options.device), ceiling, rows)


def _measure_ceiling(options: Options, say: Callable[[str], None]) -> dict:
    say(f"matmul ceiling ({options.dtype}, {options.device}) ...")
    ceiling = matmul_ceiling(options.device, options.dtype, options.ceiling_size)
    say(f"  {ceiling['gflops']:.1f} GFLOP/s ({ceiling['kernel']})")
    return ceiling


def check_batch_options(options: Options) -> None:
    """The options of the batched cases and the baseline rows (ValueError naming the option and the limit)."""
    for name in ("batch_docs", "gen_batch"):
        value = getattr(options, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name.replace('_', '-')} must be an integer >= 1, got {value!r}")
    if options.baseline_dtype is not None and options.baseline_dtype not in DTYPE_ORDER:
        raise ValueError(f"baseline-dtype must be one of {', '.join(DTYPE_ORDER)}; got {options.baseline_dtype!r}")


def baseline_ceiling(options: Options, say: Callable[[str], None]) -> dict:
    """The matmul ceiling in the baseline dtype (best of two samples): how much faster the machine multiplies in
    --dtype than in the baseline, the most a GEMM-bound run can gain from the lower precision here."""
    samples = [_measure_ceiling(replace(options, dtype=options.baseline_dtype), say) for _ in range(2)]
    return dict(max(samples, key=lambda c: c["gflops"]), samples=[round(c["gflops"], 1) for c in samples])


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


def ceiling_spread(samples) -> float | None:
    """(max - min) / max of the matmul-ceiling samples of one run; None with fewer than two."""
    samples = [s for s in samples if s]
    if len(samples) < 2:
        return None
    return (max(samples) - min(samples)) / max(samples)


def warnings(result: BenchResult) -> list[str]:
    """What makes a run's numbers suspect: the matmul ceiling moving more than CEILING_SPREAD_WARNING."""
    samples = result.ceiling.get("samples", [])
    spread = ceiling_spread(samples)
    if spread is None or spread <= CEILING_SPREAD_WARNING:
        return []
    return [f"matmul ceiling samples varied by {100 * spread:.0f}% in this run ({min(samples):.0f}-{max(samples):.0f}"
            f" GFLOP/s, more than {100 * CEILING_SPREAD_WARNING:.0f}%): the machine was busy; rates and speed-ups of"
            " this run are suspect, rerun on a quiet machine"]


def ratio_lines(result: BenchResult) -> list[str]:
    """Derived figures the table does not show: documents per second of batched cases, and each
    `name@dtype` baseline row against the same implementation in the bench's dtype."""
    lines = []
    base = result.ceiling.get("baseline")
    if base:
        lines.append(f"matmul ceiling {result.ceiling['dtype']} {result.ceiling['gflops']:.1f} GFLOP/s vs "
                     f"{base['dtype']} {base['gflops']:.1f} GFLOP/s ({result.ceiling['gflops'] / base['gflops']:.2f}x,"
                     f" {base['kernel']}): the most a GEMM-bound {result.ceiling['dtype']} run gains on this machine")
    medians = {(r.task, r.seq, r.impl): r for r in result.rows if r.median}
    for r in result.rows:
        if r.median and r.docs > 1:
            lines.append(f"{r.task} seq {r.seq}: {r.impl} ({r.dtype}) {r.docs_per_s:.3f} documents/s "
                         f"({r.docs} per call)")
        if r.median and "@" in r.impl:
            main = medians.get((r.task, r.seq, r.impl.split("@", 1)[0]))
            if main:
                lines.append(f"{r.task} seq {r.seq}: {main.impl} {main.dtype} is {r.median / main.median:.2f}x "
                             f"as fast as {r.impl}")
    return lines


def _run_case(config, options, task, seq, impl_names, impls, failed, say) -> list[Row]:
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
    compare_rows([r for r in rows if r.times], outputs, "generate" if task == "generate" else "encoder",
                 hf_present="hf" in outputs)
    hf = next((r.median for r in rows if r.impl == "hf" and r.median), None)
    for row in rows:
        row.speedup_vs_hf = hf / row.median if hf and row.median else None
    return rows


def _check_options(options: Options) -> None:
    if options.repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {options.repeats}")
    if options.warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {options.warmup}")
    # generate is timed on these: 0 tokens or 0 beams would time nothing and then report a mismatch
    if options.new_tokens < 1:
        raise ValueError(f"new-tokens must be >= 1 (tokens generated per timed call), got {options.new_tokens}")
    if options.beams < 1:
        raise ValueError(f"beams must be >= 1 (1 is greedy search), got {options.beams}")
    if options.memory not in ("subprocess", "inprocess", "off"):
        raise ValueError(f"memory must be subprocess, inprocess or off; got {options.memory!r}")
    for task in options.tasks:
        if task not in (*TASKS, THROUGHPUT):
            raise ValueError(f"task must be one of {', '.join(TASKS)} or all; got {task!r}")
    for name in options.impls or ():
        if name not in SHORT_NAMES:
            raise ValueError(f"impls must be among {', '.join(SHORT_NAMES)}; got {name!r}")
    for dtype in (options.dtype, options.hf_dtype or options.dtype, options.ref_dtype):
        if dtype not in DTYPE_ORDER:
            raise ValueError(f"dtype must be one of {', '.join(DTYPE_ORDER)}; got {dtype!r}")
    config = bench_config(options.shape)
    limit = config.max_encoder_position_embeddings
    for seq in (*options.seqs, options.gen_source):
        if seq < 1 or padded_length(config, seq) > limit:
            raise ValueError(f"seq must be in 1..{limit} for shape {options.shape!r} "
                             f"(padded to a multiple of the window {config.max_window}), got {seq}")
    if options.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"device={options.device!r} asked for, but torch sees no CUDA device here")
    elif options.device != "cpu":
        raise ValueError(f"device must be cpu or cuda, got {options.device!r}")


# ------------------------------------------------------------------------------------------ the table
COLUMNS = ("task", "seq", "impl", "dtype", "median s", "vs HF", "peak MB", "GFLOP/s", "% ceil", "error", "match")


def table_rows(result: BenchResult) -> list[list[str]]:
    """The printed table as cells, one list per Row, in COLUMNS order."""
    cells = []
    for r in result.rows:
        ceiling = result.ceiling_for(r.dtype)
        match = ("reference" if r.matched is None and r.reference == r.impl else
                 "yes" if r.matched else "NO" if r.matched is False else "-")
        if r.note:
            match = f"{match} ({r.note})" if r.matched is not None else r.note
        cells.append([
            r.task, str(r.seq), r.impl, r.dtype,
            f"{r.median:.3f}" if r.median else "-",
            f"{r.speedup_vs_hf:.2f}x" if r.speedup_vs_hf else "-",
            f"{r.peak_bytes / 2**20:.0f}" if r.peak_bytes is not None else "-",
            f"{r.gflops:.1f}" if r.gflops else "-",
            f"{100 * r.gflops / ceiling:.0f}%" if r.gflops and ceiling else "-",
            f"{r.error:.1e}" if r.error is not None else "-",
            match,
        ])
    return cells


def format_table(result: BenchResult) -> str:
    cells = table_rows(result)
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(COLUMNS)]

    def line(row):
        return "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
    m = result.machine
    c = result.ceiling
    header = [f"shape {result.options.shape} ({_shape_text(result.options.shape)}), device {result.options.device}",
              f"machine: {m['cpu_model']}, {m['cpu_count']} cpus, torch {m['torch']} ({m['torch_threads']} threads)"
              + (f", gpu {m['gpu']}" if "gpu" in m else ""),
              f"matmul ceiling: {c['gflops']:.1f} GFLOP/s ({c['dtype']} {c['size']}x{c['size']}, "
              f"{c.get('kernel', 'torch.matmul')}; best of {len(c.get('samples', [0]))} measurements through the run: "
              f"{', '.join(f'{g:.0f}' for g in c.get('samples', [c['gflops']]))})",
              "", line(COLUMNS), line(["-" * w for w in widths])]
    return "\n".join(header + [line(row) for row in cells])


def markdown_table(result: BenchResult) -> str:
    """The same table as GitHub markdown (for docs)."""
    rows = [COLUMNS, ["---"] * len(COLUMNS), *table_rows(result)]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in rows)


def _shape_text(shape: str) -> str:
    s = SHAPES[shape]
    return (f"d_model {s['d_model']}, {s['encoder_attention_heads']} heads, {s['encoder_layers']}+"
            f"{s['decoder_layers']} layers, ffn {s['encoder_ffn_dim']}, window {s['attention_window']}, "
            f"vocab {s['vocab_size']}")


# ------------------------------------------------------------------------------------------ the command
# What --quick and the plain command default to (parity.commands.bench reads the flags; a flag given wins).
QUICK = dict(shape="tiny", seq="32,64", task="all", repeats=2, warmup=1, memory="inprocess", gen_source=24,
             new_tokens=4, beams=2, ceiling_size=256, batch_docs=3, gen_batch=1)
DEFAULTS = dict(shape="base", seq="1024,4096", task="encoder", repeats=3, warmup=1, memory="subprocess",
                gen_source=1024, new_tokens=32, beams=4, ceiling_size=None, batch_docs=8, gen_batch=1)


def run_and_print(options: Options, json_path: str | None = None, markdown: bool = False) -> bool:
    """The `bench` command: check the options (ValueError naming the option), run, print the table, derived
    figures, warnings (and the markdown table), write the JSON; True when every output matched."""
    _check_options(options)
    check_batch_options(options)
    result = run_bench(options, progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(format_table(result))
    for line in ratio_lines(result):
        print(line)
    for line in warnings(result):
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
