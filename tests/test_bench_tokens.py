"""`led-parity bench --task generate` in half precision: every half row's tokens judged tie-aware against the
float64 spec (led_ref, generated once, untimed), by parity.harness.generation's rule.

The bench runs are on the tiny shape (`--quick`: 24 source tokens, beam 2, 4 new tokens), one repeat. The
expected verdicts are worked out independently here: the spec's own tokens and next-token log-probabilities,
and parity.harness.generation.generation_parity (what `check` runs) on the same weights and inputs.
"""

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from led_ref.init import random_weights  # noqa: E402
from parity import commands as cli  # noqa: E402
from parity.harness import generation  # noqa: E402
from parity.harness.implementations import Side  # noqa: E402
from parity.perf import bench as perf  # noqa: E402
from parity.perf import options, results  # noqa: E402

SPEC = Side("ref", None, "float64")
BF16_BUDGET = generation.tie_budget("bfloat16", "float64")
GENERATE = ["--quick", "--task", "generate", "--dtype", "bfloat16", "--repeats", "1", "--warmup", "0",
            "--memory", "off"]


@pytest.fixture(scope="module")
def tiny():
    """The bench's tiny case, rebuilt here: (config, weights, inputs, spec tokens, spec scorer)."""
    config = options.bench_config("tiny")
    weights = random_weights(config, options.ARCHITECTURE, seed=0, dtype=np.float32)
    quick = options.QUICK
    inputs = perf.encoder_inputs(config, quick["gen_source"], seed=0)
    model = SPEC.build(config, weights, options.ARCHITECTURE)
    tokens = SPEC.generate(model, inputs, max_new_tokens=quick["new_tokens"], num_beams=quick["beams"])
    return config, weights, inputs, tokens, generation.reference_scorer(SPEC, model, inputs)


def bench(argv, tmp_path, capsys):
    """One bench run -> (exit status, stdout, stderr, {impl: JSON row})."""
    path = tmp_path / "bench.json"
    status = cli.main(["bench", *argv, "--json", str(path)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err, {r["impl"]: r for r in json.loads(path.read_text())["rows"]}


def markdown_match(out):
    """{impl: match cell} of the markdown table in `out`."""
    cells = [line.strip("|").split(" | ") for line in out.splitlines() if line.startswith("| generate |")]
    return {c[2].strip(): c[-1].strip() for c in cells}


def patch_torch_tokens(monkeypatch, tokens):
    """led_torch's generate returns `tokens` (beam scores, when asked for, are its own)."""
    original = Side.generate

    def generate(self, model, inputs, **kwargs):
        out = original(self, model, inputs, **kwargs)
        if self.family != "torch":
            return out
        return (tokens.copy(), out[1]) if isinstance(out, tuple) else tokens.copy()

    monkeypatch.setattr(Side, "generate", generate)


def step_log_probs(scorer, tokens, step):
    """(log-probabilities of the spec's next token after tokens[0, :step], max|logits|)."""
    logits = scorer(0, tokens[0, :step])
    return generation.log_softmax(logits), max(1.0, float(np.abs(logits).max()))


def test_bf16_rows_and_hf_bf16_are_judged_against_the_float64_spec(tiny, tmp_path, capsys):
    """hf and banded in bfloat16, banded@float32 (whose reference, HF, runs in bfloat16): each row's verdict is
    the one `check`'s generation_parity gives the same side against the spec, and the table shows it."""
    config, weights, inputs, _, _ = tiny
    status, out, err, rows = bench([*GENERATE, "--impls", "hf,banded", "--baseline-dtype", "float32", "--markdown"],
                                   tmp_path, capsys)
    sides = {"hf": Side("hf", None, "bfloat16"), "banded": Side("torch", "banded", "bfloat16"),
             "banded@float32": Side("torch", "banded", "float32")}
    _, expected = generation.generation_parity(config, weights, inputs, list(sides.values()), SPEC,
                                               max_new_tokens=4, num_beams=2)
    assert list(rows) == list(sides)
    for (name, row), comparison in zip(rows.items(), expected, strict=True):
        assert row["reference"] == "led_ref@float64"
        assert row["token_verdict"] == comparison.status, (name, comparison.describe())
        assert row["matched"] is comparison.passed
        assert row["ties"] == sum(d.tie for d in comparison.divergences)
        assert row["scores_compared"] == comparison.scores_compared
        assert len(row["token_divergences"]) == len(comparison.divergences) + len(comparison.score_divergences)
        start = {"identical": "identical to float64 spec", "tie": "tie vs float64 spec ("}.get(comparison.status,
                                                                                               "MISMATCH vs")
        assert markdown_match(out)[name].startswith(start)
    assert [r["dtype"] for r in rows.values()] == ["bfloat16", "bfloat16", "float32"]
    assert status == (cli.EXIT_OK if all(c.passed for c in expected) else cli.EXIT_MISMATCH), out
    assert "float64 spec generated in" in err and "beam scores of banded" in err


def test_float32_rows_stay_exactly_compared_with_a_float32_hf(tmp_path, capsys):
    status, out, _, rows = bench([*GENERATE, "--impls", "hf,banded", "--hf-dtype", "float32",
                                  "--baseline-dtype", "float32"], tmp_path, capsys)
    assert status == cli.EXIT_OK, out
    assert rows["hf"]["matched"] is None and rows["hf"]["token_verdict"] is None and rows["hf"]["reference"] == "hf"
    assert rows["banded@float32"]["matched"] is True and rows["banded@float32"]["token_verdict"] is None
    assert rows["banded@float32"]["reference"] == "hf"
    assert rows["banded"]["reference"] == "led_ref@float64"
    assert rows["banded"]["token_verdict"] in ("identical", "tie") and rows["banded"]["matched"] is True


def test_altered_tokens_are_a_mismatch_and_the_command_exits_1(tiny, monkeypatch, tmp_path, capsys):
    """banded returns the spec's tokens with step 2 replaced by the spec's least likely token there."""
    _, _, _, tokens, scorer = tiny
    logp, scale = step_log_probs(scorer, tokens, 2)
    altered = tokens.copy()
    altered[0, 2] = int(np.argmin(logp))
    margin = logp[tokens[0, 2]] - logp[altered[0, 2]]
    assert margin > BF16_BUDGET * scale  # far outside the tie tolerance: no rule may call this a tie
    patch_torch_tokens(monkeypatch, altered)
    status, out, _, rows = bench([*GENERATE, "--impls", "hf,banded"], tmp_path, capsys)
    assert status == cli.EXIT_MISMATCH
    assert "mismatch: some outputs differ" in out
    row = rows["banded"]
    assert row["token_verdict"] == "MISMATCH" and row["matched"] is False and row["ties"] == 0
    [divergence] = row["token_divergences"]
    assert (divergence["row"], divergence["step"]) == (0, 2) and divergence["tie"] is False
    assert (divergence["expected_token"], divergence["actual_token"]) == (tokens[0, 2], altered[0, 2])
    assert divergence["margin"] == pytest.approx(margin)
    assert row["scores_compared"] == 0  # tokens differ: nothing to compare scores of
    assert "MISMATCH vs float64 spec: row 0 step 2" in out
    assert rows["hf"]["matched"] is True  # HF's own tokens are untouched


def test_a_token_swapped_at_a_genuine_tie_is_a_tie(tiny, monkeypatch, tmp_path, capsys):
    """banded returns the spec's tokens with one token swapped for the closest competitor at the first step
    where that competitor lies within the bfloat16 tie tolerance."""
    _, _, _, tokens, scorer = tiny
    for step in range(1, tokens.shape[1]):
        logp, scale = step_log_probs(scorer, tokens, step)
        gaps = np.abs(logp - logp[tokens[0, step]])
        gaps[tokens[0, step]] = np.inf
        if gaps.min() <= BF16_BUDGET * scale:
            break
    else:
        pytest.fail("no step of the tiny case has a competitor within the tie tolerance")
    swapped = tokens.copy()
    swapped[0, step] = int(np.argmin(gaps))
    patch_torch_tokens(monkeypatch, swapped)
    status, out, _, rows = bench([*GENERATE, "--impls", "hf,banded", "--markdown"], tmp_path, capsys)
    row = rows["banded"]
    assert row["token_verdict"] == "tie" and row["matched"] is True and row["ties"] == 1
    [divergence] = row["token_divergences"]
    assert divergence["step"] == step and divergence["tie"] is True
    assert divergence["margin"] == pytest.approx(logp[tokens[0, step]] - logp[swapped[0, step]])
    assert markdown_match(out)["banded"] == "tie vs float64 spec (1 tie)"
    assert status == (cli.EXIT_OK if rows["hf"]["matched"] else cli.EXIT_MISMATCH)


def test_no_spec_tokens_reports_only_the_agreement_with_hf(tiny, monkeypatch, tmp_path, capsys):
    _, _, _, tokens, _ = tiny
    altered = tokens.copy()
    altered[0, -1] = (altered[0, -1] + 1) % 64
    patch_torch_tokens(monkeypatch, altered)
    status, out, err, rows = bench([*GENERATE, "--impls", "hf,banded", "--no-spec-tokens"], tmp_path, capsys)
    assert "float64 spec" not in err
    assert rows["banded"]["token_verdict"] is None and rows["banded"]["matched"] is None
    assert "% of tokens as hf" in rows["banded"]["note"]  # today's agreement report, never a verdict
    assert status == cli.EXIT_OK, out


# ------------------------------------------------------------------ the verdict on rows, without a bench run
def scorer_of(logits):
    return lambda row, prefix: np.asarray(logits, dtype=np.float64)


def test_compare_rows_gives_half_rows_the_spec_verdict_identical_tie_and_mismatch():
    """Next-token logits: tokens 5 and 6 within 0.01 of each other (a tie at bfloat16), token 9 far below."""
    logits = np.zeros(12)
    logits[[5, 6, 9]] = [3.0, 2.99, -4.0]
    expected = np.array([[2, 5, 7]])
    outputs = {"hf": expected, "banded": np.array([[2, 6, 7]]), "flex": np.array([[2, 9, 7]]),
               "banded@float32": expected}
    rows = [results.Row("generate", 8, n, d, [1.0]) for n, d in
            [("hf", "bfloat16"), ("banded", "bfloat16"), ("flex", "bfloat16"), ("banded@float32", "float32")]]
    assert results.judged_by_spec(rows, outputs, hf_present=True) == ["hf", "banded", "flex", "banded@float32"]
    spec = {n: (generation.compare_sequences(outputs[n], expected, scorer_of(logits), BF16_BUDGET, 1, n,
                                             results.SPEC_LABEL), "") for n in outputs}
    results.compare_rows(rows, outputs, "generate", hf_present=True, spec=spec)
    verdicts = [(r.token_verdict, r.matched, r.ties) for r in rows]
    assert verdicts == [("identical", True, 0), ("tie", True, 1), ("MISMATCH", False, 0), ("identical", True, 0)]
    assert all(r.reference == results.SPEC_LABEL for r in rows)
    result = results.BenchResult(options.Options(), {}, {"gflops": 1.0, "size": 1, "dtype": "bfloat16",
                                                         "samples": [1.0]}, rows)
    match = [cells[-1] for cells in results.table_rows(result)]
    assert match[:2] == ["identical to float64 spec", "tie vs float64 spec (1 tie)"]
    assert match[2].startswith("MISMATCH vs float64 spec: row 0 step 1: expected token 5, got 9")
    assert not result.all_matched
    data = result.to_dict()["rows"]
    assert [(r["token_verdict"], r["ties"]) for r in data] == [("identical", 0), ("tie", 1), ("MISMATCH", 0),
                                                               ("identical", 0)]
    assert data[1]["token_divergences"][0]["margin"] == pytest.approx(0.01)


def test_identical_tokens_with_a_drifted_beam_score_are_a_mismatch():
    tokens = np.array([[2, 5, 7, 4]])
    comparison = generation.compare_sequences(tokens, tokens, scorer_of(np.zeros(8)), BF16_BUDGET, 1)
    generation.compare_beam_scores(comparison, tokens, tokens, np.array([-2.0]), np.array([-1.0]), BF16_BUDGET, 1)
    row = results.Row("generate", 8, "banded", "bfloat16", [1.0])
    results.spec_verdict(row, comparison)
    assert (row.token_verdict, row.matched, row.scores_compared) == ("MISMATCH", False, 1)
    assert row.note.startswith("MISMATCH vs float64 spec: row 0: identical tokens but beam score -2")


def test_only_half_rows_or_rows_with_a_half_reference_are_judged_by_the_spec():
    outputs = dict.fromkeys(("hf", "banded", "banded@float32", "led_ref"))
    rows = [results.Row("generate", 8, n, d, [1.0]) for n, d in
            [("hf", "float32"), ("banded", "bfloat16"), ("banded@float32", "float32"), ("led_ref", "float32")]]
    assert results.judged_by_spec(rows, outputs, hf_present=True) == ["banded"]
    assert results.judged_by_spec(rows[1:], outputs, hf_present=False) == ["banded"]  # led_ref is the reference
    assert results.judged_by_spec(rows[2:], outputs, hf_present=False) == []
