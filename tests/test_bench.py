"""`python -m parity bench`: the quick run's table and JSON, the FLOP formula, peak memory, round-robin timing.

No timing is asserted (the machine is shared); what is asserted is structure, the outputs' agreement, and
the measuring tools against independent derivations (FLOPs against torch's FlopCounterMode, peak memory
against an allocation of known size).
"""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from parity import commands as cli  # noqa: E402
from parity.harness.tolerances import tolerance  # noqa: E402
from parity.perf import bench as perf  # noqa: E402
from parity.perf import options, results, timing  # noqa: E402
from parity.perf.flops import encoder_flops, encoder_flops_by_part, layer_flops  # noqa: E402
from parity.perf.peak_memory import cpu_peak_bytes  # noqa: E402

MB = 2**20


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One `--quick` run through main(): (exit status, printed text, JSON)."""
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli.main(["bench", "--quick", "--json", str(path)])
    return status, out.getvalue(), json.loads(path.read_text())


def test_quick_bench_table_has_every_case_and_all_outputs_match(quick):
    status, text, _ = quick
    assert status == cli.EXIT_OK, text
    assert "all outputs matched" in text
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("task"))
    assert lines[header].split() == ["task", "seq", "impl", "dtype", "median", "s", "vs", "HF", "peak", "MB",
                                     "GFLOP/s", "%", "ceil", "x", "floor", "error", "match"]
    floors = [line for line in lines[header + 2:] if " matmul floor " in line]
    assert [line.split(":")[0] for line in floors] == ["encoder seq 32", "encoder seq 64"]
    body = [line.split() for line in lines[header + 2:]  # a busy machine adds a warning line
            if line and not line.startswith(("all outputs", "warning:")) and line not in floors]
    cases = {(cells[0], cells[1], cells[2]) for cells in body}
    impls = {"hf", "banded", "led_ref"}
    assert cases == {(t, s, i) for t, s in [("encoder", "32"), ("encoder", "64"), ("generate", "24")] for i in impls}
    for cells in body:
        assert cells[-1] == ("reference" if cells[2] == "hf" else "yes"), cells
        assert float(cells[4]) > 0  # median seconds
        assert cells[5].endswith("x")


def test_quick_bench_json_errors_are_within_tolerance_and_tokens_identical(quick):
    _, _, data = quick
    assert data["all_matched"] is True
    ceiling = data["matmul_ceiling"]
    # measured before the first case and after each of the 3 cases; the best sample is the ceiling
    assert len(ceiling["samples"]) == 4 and min(ceiling["samples"]) > 0
    assert round(ceiling["gflops"], 1) == max(ceiling["samples"])
    assert ceiling["kernel"] in ("torch.matmul", "oneDNN linear")
    for row in data["rows"]:
        assert len(row["times"]) == 2 and row["median_s"] > 0
        assert row["reference"] == "hf"
        assert row["peak_bytes"] is not None and row["peak_bytes"] >= 0
        if row["impl"] == "hf":
            assert row["matched"] is None
        elif row["task"] == "encoder":
            assert row["matched"] is True and 0 <= row["error"] <= row["tolerance"] == 1e-4
        else:
            assert row["matched"] is True and row["error"] is None
        if row["task"] == "encoder":
            config = options.bench_config("tiny")
            assert row["flops"] == encoder_flops(config, options.padded_length(config, row["seq"]), 1)
            assert row["gflops"] == pytest.approx(row["flops"] / row["median_s"] / 1e9)


def test_layer_flops_of_projections_and_ffn_match_torch_flop_counter():
    """x = 0: the projections (q, k, v, output) and the FFN are 6 matmuls; FlopCounterMode counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    n, d, ffn = 40, 24, 56
    linears = [torch.nn.Linear(d, d) for _ in range(4)] + [torch.nn.Linear(d, ffn), torch.nn.Linear(ffn, d)]
    hidden = torch.randn(1, n, d)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        for lin in linears[:4]:
            lin(hidden)
        linears[5](linears[4](hidden))
    parts = layer_flops(n, d, ffn, window=8, x=0)
    assert parts["projections"] + parts["ffn"] == counter.get_total_flops()


def test_band_flops_count_every_window_and_global_cell_twice_two_flops():
    """Brute force: each local row scores w + 1 window keys and x global keys, then mixes as many values."""
    n, d, w, x = 32, 8, 6, 2
    cells = sum(w + 1 + x for _ in range(n))
    assert layer_flops(n, d, 16, w, x)["band"] == 2 * 2 * d * cells


def test_global_row_flops_are_the_cheaper_exact_way_as_torch_counts_them():
    """Global rows cost the cheaper of projecting every token's global key and value (then x queries against n
    keys) and rule.global_rows_from_states; FlopCounterMode counts the matmuls of each way."""
    from torch.utils.flop_counter import FlopCounterMode

    from led_torch.backends.rule import GLOBAL, LOCAL, gather_rows, global_rows, global_rows_from_states, global_slots

    n, heads, head_dim, x = 48, 4, 6, 2
    d = heads * head_dim
    kinds = torch.full((1, n), LOCAL)
    kinds[0, :x] = GLOBAL
    hidden, weight = torch.randn(1, n, d), torch.randn(d, d)
    gq = torch.randn(1, heads, n, head_dim)
    slots = global_slots(kinds)
    with FlopCounterMode(display=False) as pulled:
        global_rows_from_states(gather_rows(gq, slots[0]), hidden, weight, torch.zeros(d), weight, torch.zeros(d),
                                kinds, slots)
    with FlopCounterMode(display=False) as projected:
        keys = torch.nn.functional.linear(hidden, weight).view(1, n, heads, head_dim).transpose(1, 2)
        values = torch.nn.functional.linear(hidden, weight).view(1, n, heads, head_dim).transpose(1, 2)
        global_rows(gq, keys, values, kinds, slots)
    assert pulled.get_total_flops() == 4 * x * heads * n * d + 4 * x * d * d
    assert projected.get_total_flops() == 2 * n * d * d * 2 + 4 * x * n * d
    expected = min(pulled.get_total_flops(), projected.get_total_flops())
    assert layer_flops(n, d, 16, 8, x, heads)["global_rows"] == expected
    assert layer_flops(n, d, 16, 8, 0, heads)["global_rows"] == 0


def test_encoder_flops_sum_per_layer_windows():
    config = options.bench_config("tiny")  # windows [8, 16]
    total = encoder_flops_by_part(config, 64, 1, batch=3)
    expected = [layer_flops(64, config.d_model, config.encoder_ffn_dim, w, 1, config.encoder_attention_heads)
                for w in (8, 16)]
    assert total == {k: 3 * sum(e[k] for e in expected) for k in total}


def test_cpu_peak_bytes_sees_an_allocation_of_known_size():
    size = 64 * MB
    peak, method = cpu_peak_bytes(lambda: np.ones(size // 8).sum())
    assert method in ("rss-hwm", "ru_maxrss")
    assert size * 0.95 <= peak <= size + 24 * MB


def test_memory_subprocess_reports_a_peak():
    tiny = options.Options(shape="tiny", seqs=(32,), impls=("banded",), repeats=1)
    peak, method = perf.memory_in_subprocess(tiny, "encoder", 32, "banded")
    assert method in ("rss-hwm", "ru_maxrss"), method
    assert peak is not None and peak >= 0


def test_round_robin_rotates_the_order_and_skips_failures():
    order = []

    def call(name):
        order.append(name)
        if name == "c" and order.count("c") == 2:
            raise RuntimeError("boom")
        return name

    calls = {n: (lambda n=n: call(n)) for n in "abc"}
    times, outputs, errors = timing.round_robin(calls, repeats=3, warmup=1, device="cpu")
    assert order[:3] == ["a", "b", "c"] and order[3:6] == ["b", "c", "a"]
    assert len(times["a"]) == len(times["b"]) == 3 and len(times["c"]) == 0
    assert outputs == {"a": "a", "b": "b", "c": "c"}
    assert errors == {"c": "RuntimeError: boom"}


def test_compare_rows_flags_a_drifted_encoder_and_different_tokens():
    rows = [results.Row("encoder", 8, n, "float32", [1.0]) for n in ("hf", "banded", "led_ref")]
    expected = np.linspace(-3, 3, 24).reshape(1, 8, 3)
    outputs = {"hf": expected, "banded": expected + 5e-5, "led_ref": expected + 1e-3}
    results.compare_rows(rows, outputs, "encoder", hf_present=True)
    assert [r.matched for r in rows] == [None, True, False]
    assert rows[2].error == pytest.approx(1e-3 / 3)

    tokens = np.array([[2, 5, 7, 9]])
    rows = [results.Row("generate", 8, n, "float32", [1.0]) for n in ("led_ref", "banded")]
    results.compare_rows(rows, {"led_ref": tokens, "banded": np.array([[2, 5, 8, 9]])}, "generate", hf_present=False)
    assert rows[0].matched is None and rows[1].matched is False
    assert "row 0 step 2: 8 vs 7" in rows[1].note


@pytest.mark.parametrize("argv, needle", [
    (["--quick", "--seq", "99999"], "99999"),
    (["--quick", "--impls", "hf,nope"], "nope"),
    (["--quick", "--seq", "1,x"], "1,x"),
    (["--quick", "--repeats", "0"], "repeats"),
    pytest.param(["--quick", "--device", "cuda"], "no CUDA device",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
])
def test_bad_usage_exits_2_naming_the_value(argv, needle, capsys):
    assert cli.main(["bench", *argv]) == cli.EXIT_USAGE
    assert needle in capsys.readouterr().err


# ------------------------------------------------------------------ bf16 baseline rows, throughput, noise warning
def _result_with_samples(samples):
    ceiling = {"gflops": max(samples), "size": 256, "dtype": "float32", "device": "cpu", "kernel": "oneDNN linear",
               "samples": samples}
    rows = [results.Row("encoder", 32, "hf", "float32", [2.0]), results.Row("encoder", 32, "banded", "float32", [1.0])]
    machine = {"cpu_model": "test", "cpu_count": 2, "torch": torch.__version__, "torch_threads": 2}
    return results.BenchResult(options.Options(shape="tiny", seqs=(32,)), machine, ceiling, rows)


@pytest.mark.parametrize("samples, noisy", [([100.0, 81.0, 95.0], False), ([100.0, 79.0], True),
                                            ([50.0, 200.0, 190.0], True), ([120.0], False)])
def test_ceiling_spread_over_20_percent_is_a_warning_in_the_json(samples, noisy):
    data = _result_with_samples(samples).to_dict()
    if len(samples) > 1:
        assert data["ceiling_spread"] == pytest.approx((max(samples) - min(samples)) / max(samples))
    else:
        assert data["ceiling_spread"] is None
    assert bool(data["warnings"]) is noisy
    if noisy:
        assert f"{min(samples):.0f}-{max(samples):.0f} GFLOP/s" in data["warnings"][0]


def test_a_noisy_run_prints_a_warning_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(perf, "run_bench", lambda options, progress=None: _result_with_samples([180.0, 60.0]))
    path = tmp_path / "b.json"
    assert cli.main(["bench", "--quick", "--json", str(path)]) == cli.EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    warning = [line for line in lines if line.startswith("warning:")]
    assert len(warning) == 1 and "67%" in warning[0]
    assert json.loads(path.read_text())["warnings"] == [warning[0][len("warning: "):]]


def test_batch_inputs_differ_in_length_and_global_count():
    config = options.bench_config("tiny")
    inputs = perf.batch_inputs(config, 64, 8, seed=0)
    mask, glob, ids = inputs["attention_mask"], inputs["global_attention_mask"], inputs["input_ids"]
    assert mask.shape == glob.shape == ids.shape == (8, 64)
    lengths = mask.sum(axis=1)
    assert lengths[0] == 64 and lengths.min() >= 40 and len(set(lengths.tolist())) > 1
    assert (mask == (np.arange(64) < lengths[:, None])).all()  # right padding
    assert glob.sum(axis=1).tolist() == [1 + (i % 4) * 2 for i in range(8)]
    assert (glob[:, 0] == 1).all() and not (glob & (1 - mask)).any()  # globals only on attended tokens
    assert (ids[mask == 0] == config.pad_token_id).all() and (ids[mask == 1] >= 3).all()
    assert perf.case_flops(config, "throughput", inputs) == sum(
        encoder_flops(config, options.padded_length(config, int(n)), int(x))
        for n, x in zip(lengths, glob.sum(axis=1), strict=True))


def test_baseline_rows_follow_each_led_torch_backend():
    assert perf.with_baseline(("hf", "banded", "flex", "led_ref"), "float32") == (
        "hf", "banded", "banded@float32", "flex", "flex@float32", "led_ref")
    assert perf.with_baseline(("hf", "banded"), None) == ("hf", "banded")


def test_throughput_task_with_bf16_and_float32_baseline_rows(tmp_path, capsys):
    """The bf16 rows of the bench: HF and led_torch in bfloat16, led_torch again in float32, a batch of 3
    documents; documents per second and the bf16/fp32 ratio are printed and in the JSON."""
    path = tmp_path / "b.json"
    argv = ["--quick", "--task", "throughput", "--seq", "32", "--impls", "hf,banded", "--dtype", "bfloat16",
            "--baseline-dtype", "float32", "--repeats", "1", "--warmup", "0", "--memory", "off", "--json", str(path)]
    assert cli.main(["bench", *argv]) == cli.EXIT_OK
    out = capsys.readouterr().out
    data = json.loads(path.read_text())
    rows = {r["impl"]: r for r in data["rows"]}
    assert list(rows) == ["hf", "banded", "banded@float32"]
    assert [rows[n]["dtype"] for n in rows] == ["bfloat16", "bfloat16", "float32"]
    for row in rows.values():
        assert row["task"] == "throughput" and row["docs"] == 3
        assert row["docs_per_s"] == pytest.approx(3 / row["median_s"])
    assert rows["banded"]["matched"] is True
    assert rows["banded"]["tolerance"] == tolerance("bfloat16", "bfloat16", "hidden")
    assert rows["banded@float32"]["matched"] is True
    assert "banded bfloat16 is" in out and "as fast as banded@float32" in out
    baseline = data["matmul_ceiling"]["baseline"]
    assert baseline["dtype"] == "float32" and data["matmul_ceiling"]["dtype"] == "bfloat16"
    assert len(baseline["samples"]) == 2 and round(baseline["gflops"], 1) == max(baseline["samples"])
    assert "matmul ceiling bfloat16" in out and "vs float32" in out
    assert data["summary"] and all(line in out for line in data["summary"])
    assert "throughput seq 32: banded (bfloat16)" in out and "documents/s (3 per call)" in out


def test_generate_a_batch_of_sources_gives_hf_tokens(tmp_path):
    path = tmp_path / "b.json"
    argv = ["--quick", "--task", "generate", "--gen-batch", "3", "--impls", "hf,banded", "--repeats", "1",
            "--warmup", "0", "--memory", "off", "--json", str(path)]
    assert cli.main(["bench", *argv]) == cli.EXIT_OK
    rows = json.loads(path.read_text())["rows"]
    assert [r["docs"] for r in rows] == [3, 3] and rows[1]["matched"] is True


@pytest.mark.parametrize("argv, needle", [(["--batch-docs", "0"], "batch-docs"), (["--gen-batch", "-1"], "gen-batch")])
def test_bad_batch_options_exit_2(argv, needle, capsys):
    assert cli.main(["bench", "--quick", *argv]) == cli.EXIT_USAGE
    assert needle in capsys.readouterr().err


def test_without_spec_tokens_half_precision_generation_reports_token_agreement_not_a_mismatch():
    """compare_rows without the float64 spec's verdicts (`bench --no-spec-tokens`); with them,
    tests/test_bench_tokens.py."""
    expected = np.array([[2, 5, 7, 9, 4], [2, 6, 6, 8, 4]])
    actual = np.array([[2, 5, 7, 9, 4], [2, 6, 3, 3, 4]])
    assert results.token_agreement(actual, expected) == pytest.approx(6 / 8)
    assert results.token_agreement(expected[:, :3], expected) == pytest.approx(4 / 8)
    rows = [results.Row("generate", 8, "hf", "bfloat16", [1.0]),
            results.Row("generate", 8, "banded", "bfloat16", [1.0]),
            results.Row("generate", 8, "banded@float32", "float32", [1.0])]
    results.compare_rows(rows, {"hf": expected, "banded": actual, "banded@float32": expected}, "generate",
                       hf_present=True)
    assert rows[1].matched is None and rows[1].note.startswith("75% of tokens as hf (first difference row 1 step 2")
    assert rows[2].matched is None and rows[2].note == "100% of tokens as hf"
    result = results.BenchResult(options.Options(), {}, {"samples": [1.0]}, rows)
    assert result.all_matched


def test_baseline_rows_are_scored_against_their_own_dtypes_ceiling():
    """A float32 baseline row next to bfloat16 rows: % of the float32 ceiling, never of the bfloat16 one."""
    ceiling = {"gflops": 100.0, "size": 256, "dtype": "bfloat16", "device": "cpu", "kernel": "oneDNN linear",
               "samples": [100.0], "baseline": {"gflops": 400.0, "dtype": "float32", "kernel": "torch.matmul"}}
    flops = 10**11  # 100 GFLOP per call, 1 s per call: 100 GFLOP/s for each row
    rows = [results.Row("encoder", 32, "banded", "bfloat16", [1.0], flops=flops),
            results.Row("encoder", 32, "banded@float32", "float32", [1.0], flops=flops)]
    result = results.BenchResult(options.Options(shape="tiny", seqs=(32,)), {}, ceiling, rows)
    percent = {cells[2]: cells[results.COLUMNS.index("% ceil")] for cells in results.table_rows(result)}
    assert percent == {"banded": "100%", "banded@float32": "25%"}
    fractions = [r["fraction_of_ceiling"] for r in result.to_dict()["rows"]]
    assert fractions == [pytest.approx(1.0), pytest.approx(0.25)]


def test_each_row_is_read_against_the_matmul_floor_of_its_own_dtype():
    """floor = useful FLOPs / the dtype's ceiling: 100 GFLOP at 100 GFLOP/s (bfloat16) is 1 s, at 400 (float32)
    0.25 s; rows of 2 s and 1 s are 2x and 4x their floors."""
    ceiling = {"gflops": 100.0, "size": 256, "dtype": "bfloat16", "device": "cpu", "kernel": "oneDNN linear",
               "samples": [100.0], "baseline": {"gflops": 400.0, "dtype": "float32", "kernel": "torch.matmul"}}
    rows = [results.Row("encoder", 32, "banded", "bfloat16", [2.0], flops=10**11),
            results.Row("encoder", 32, "banded@float32", "float32", [1.0, 1.0, 3.0], flops=10**11),
            results.Row("generate", 24, "banded", "bfloat16", [1.0])]
    result = results.BenchResult(options.Options(shape="tiny", seqs=(32,)), {}, ceiling, rows)
    assert [result.floor_s(r) for r in rows] == [pytest.approx(1.0), pytest.approx(0.25), None]
    cells = {(c[0], c[2]): c[results.COLUMNS.index("x floor")] for c in results.table_rows(result)}
    assert cells == {("encoder", "banded"): "2.00x", ("encoder", "banded@float32"): "4.00x",
                     ("generate", "banded"): "-"}
    assert [r["times_floor"] for r in result.to_dict()["rows"]] == [pytest.approx(2.0), pytest.approx(4.0), None]
    floors = [line for line in results.ratio_lines(result) if "matmul floor" in line]
    assert floors == ["encoder seq 32: bfloat16 matmul floor 1 s (100 GFLOP at 100.0 GFLOP/s)",
                      "encoder seq 32: float32 matmul floor 0.25 s (100 GFLOP at 400.0 GFLOP/s)"]


def test_the_json_names_the_backend_that_served_the_attention_calls(quick):
    served = quick[2]["backends_served"]
    assert served.get("banded:cpu:float32", 0) > 0, served  # the quick run's led_torch rows are banded, fp32
    assert all(key.split(":")[0] in ("banded", "flex", "triton") for key in served)
