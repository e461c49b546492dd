"""A bench run's results: rows, whether outputs matched, the machine, derived ratios, warnings and tables."""

from __future__ import annotations

import os
import platform
import statistics
from dataclasses import asdict, dataclass, field

import numpy as np

from parity.harness.tolerances import scaled_error, tolerance
from parity.perf.options import CEILING_SPREAD_WARNING, SHAPES, Options

# What half-precision generations are judged against (parity.perf.bench.spec_comparisons): led_ref in float64.
SPEC_LABEL = "led_ref@float64"


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
    # generate rows judged against the float64 spec, tie-aware (parity.harness.generation); None otherwise
    token_verdict: str | None = None  # identical | tie | MISMATCH
    ties: int | None = None  # differing rows whose first difference is a tie
    scores_compared: int | None = None  # beam-search rows whose sequences_scores were compared
    token_divergences: list[dict] = field(default_factory=list)

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

    def floor_s(self, row: Row) -> float | None:
        """The row's matmul floor: seconds its useful FLOPs take at its dtype's matmul ceiling (no call of that
        dtype can be faster on this machine); None without FLOPs (generate) or a ceiling."""
        ceiling = self.ceiling_for(row.dtype)
        return row.flops / (ceiling * 1e9) if row.flops and ceiling else None

    def times_floor(self, row: Row) -> float | None:
        """The row's median over its matmul floor (1.0 = at the ceiling)."""
        floor = self.floor_s(row)
        return row.median / floor if floor and row.median else None

    def to_dict(self) -> dict:
        rows = []
        for r in self.rows:
            rows.append(dict(r.to_dict(self.ceiling_for(r.dtype)), floor_s=self.floor_s(r),
                             times_floor=self.times_floor(r)))
        return {"options": asdict(self.options), "machine": self.machine, "matmul_ceiling": self.ceiling,
                "rows": rows, "all_matched": self.all_matched,
                "ceiling_spread": ceiling_spread(self.ceiling.get("samples", [])), "warnings": bench_warnings(self),
                "summary": ratio_lines(self), "backends_served": _backends_served()}


def _backends_served() -> dict[str, int]:
    """Encoder attention calls each led_torch backend served in this process ("backend:device:dtype": calls)."""
    from led_torch.backends import USAGE

    return USAGE.snapshot()


def machine_info(device: str) -> dict:
    import torch

    info = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "cpu_model": cpu_model()}
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        info["transformers"] = None
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what platform reports."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def compare_rows(rows: list[Row], outputs: dict[str, object], task: str, hf_present: bool,
                 spec: dict | None = None) -> None:
    """Fill reference/error/matched: HF is the reference when it ran, else led_ref, else the first row. `spec`
    ({impl: (GenerationComparison, note)}, from parity.perf.bench.spec_comparisons) gives the rows judged
    against the float64 spec their verdict instead."""
    ran = [r for r in rows if r.impl in outputs]
    if not ran:
        return
    ref_row = _reference_row(ran, hf_present)
    reference = ref_row.impl
    expected = outputs[reference]
    for row in ran:
        if spec and row.impl in spec:
            spec_verdict(row, *spec[row.impl])
            continue
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


def _reference_row(ran: list[Row], hf_present: bool) -> Row:
    names = [r.impl for r in ran]
    reference = "hf" if hf_present and "hf" in names else ("led_ref" if "led_ref" in names else names[0])
    return next(r for r in ran if r.impl == reference)


def judged_by_spec(rows: list[Row], outputs: dict[str, object], hf_present: bool) -> list[str]:
    """The generate rows whose tokens are judged against the float64 spec rather than the reference row: every
    half-precision row, and every row whose reference runs in half precision (a near-tie may flip in half
    precision, so neither can be held to identical tokens)."""
    ran = [r for r in rows if r.impl in outputs]
    if not ran:
        return []
    ref_row = _reference_row(ran, hf_present)
    return [r.impl for r in ran if _half(r.dtype, ref_row.dtype)]


def spec_verdict(row: Row, comparison, note: str = "") -> None:
    """Give `row` the tie-aware verdict of its tokens against the float64 spec (a GenerationComparison)."""
    row.reference = SPEC_LABEL
    row.token_verdict = comparison.status
    row.ties = sum(d.tie for d in comparison.divergences)
    row.scores_compared = comparison.scores_compared
    row.token_divergences = [d.to_dict() for d in comparison.divergences + comparison.score_divergences]
    row.matched = comparison.passed
    if comparison.identical:
        text = "identical to float64 spec"
    elif comparison.passed:
        text = f"tie vs float64 spec ({row.ties} tie{'s' if row.ties != 1 else ''})"
    else:
        failed = next((d for d in comparison.divergences if not d.tie), None)
        why = (comparison.actual if failed is not None and failed.step < 0 else
               (failed or comparison.score_divergences[0]).describe().removesuffix(" -> MISMATCH"))
        text = f"MISMATCH vs float64 spec: {why}"
    row.note = text + (f"; {note}" if note else "")


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
    """Without the float64 spec's tokens (`bench --no-spec-tokens`) a half-precision generation is only reported
    by its agreement with the reference row: a near-tie may flip, so identical tokens cannot be asked of it."""
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


def ceiling_spread(samples) -> float | None:
    """(max - min) / max of the matmul-ceiling samples of one run; None with fewer than two."""
    samples = [s for s in samples if s]
    if len(samples) < 2:
        return None
    return (max(samples) - min(samples)) / max(samples)


def bench_warnings(result: BenchResult) -> list[str]:
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
    lines = floor_lines(result)
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


def floor_lines(result: BenchResult) -> list[str]:
    """One line per (case, dtype) with FLOPs: the matmul floor of that dtype (parity.perf.flops' useful FLOPs at
    the dtype's measured ceiling), so each row's `x floor` reads against the right one."""
    lines, seen = [], set()
    for r in result.rows:
        floor = result.floor_s(r)
        if floor is None or (r.task, r.seq, r.dtype) in seen:
            continue
        seen.add((r.task, r.seq, r.dtype))
        lines.append(f"{r.task} seq {r.seq}: {r.dtype} matmul floor {floor:.4g} s ({r.flops / 1e9:.4g} GFLOP at "
                     f"{result.ceiling_for(r.dtype):.1f} GFLOP/s)")
    return lines


COLUMNS = ("task", "seq", "impl", "dtype", "median s", "vs HF", "peak MB", "GFLOP/s", "% ceil", "x floor", "error",
           "match")


def table_rows(result: BenchResult) -> list[list[str]]:
    """The printed table as cells, one list per Row, in COLUMNS order."""
    cells = []
    for r in result.rows:
        ceiling = result.ceiling_for(r.dtype)
        match = ("reference" if r.matched is None and r.reference == r.impl else
                 "yes" if r.matched else "NO" if r.matched is False else "-")
        if r.token_verdict:
            match = r.note  # the verdict against the float64 spec says it all
        elif r.note:
            match = f"{match} ({r.note})" if r.matched is not None else r.note
        cells.append([
            r.task, str(r.seq), r.impl, r.dtype,
            f"{r.median:.3f}" if r.median else "-",
            f"{r.speedup_vs_hf:.2f}x" if r.speedup_vs_hf else "-",
            f"{r.peak_bytes / 2**20:.0f}" if r.peak_bytes is not None else "-",
            f"{r.gflops:.1f}" if r.gflops else "-",
            f"{100 * r.gflops / ceiling:.0f}%" if r.gflops and ceiling else "-",
            f"{result.times_floor(r):.2f}x" if result.times_floor(r) else "-",
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
