"""The kernel gate has teeth and clear verdicts (docs/contract.md).

- toy profile: every planted bug of `parity.gate.broken_kernels.BROKEN_KERNELS` is rejected with the shrunk case;
  the dense kernel and a per-row loop pass;
- boundary/realistic profiles: the correct tiled kernel (declared support) passes, each realistic tiled
  mutant is rejected with `mismatch` (the backward one with backward=True);
- verdicts: a crash, a tuple, a wrong dtype/device/shape or an in-place write is `error`, wrong numbers or
  non-finite output `mismatch`; support is declared, validated, and generation stays inside it;
- the led_torch backends pass (banded in CI; flex and the interpreted Triton kernel on fixed shapes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from hypothesis import settings
from test_reference import loop_attention

import parity
from parity.gate.broken_kernels import BROKEN_KERNELS, BUGS, TILED_BUGS, TILED_KERNELS, dense_attention, tiled_attention
from parity.gate.judge import HALF_K, assert_gate, check_case, gate, half_floor, load_kernel, spec_attention
from parity.gate.profiles import grid
from parity.gate.support import Support, support_of
from parity.harness.strategies import AttentionCase

CI_BLOCKS = (16, 64)  # the boundary profile in CI; the default 16, 32, 64, 128 under `thorough`/slow
# Realistic shapes in CI: windows 512 and 1024 (seq 1024 and 4096), head_dim 64, one head; the whole grid
# (LED-base/large heads, head_dim 128, windows 64 and 256) under the `thorough` profile.
CI_REALISTIC = dict(support=Support(min_window=512, head_dims=(64,)), max_heads=1)


def loop_reference(case: AttentionCase) -> np.ndarray:
    return loop_attention(*case.arrays(), case.token_kind, case.window)


def _thorough() -> bool:
    return settings.default.max_examples > 12


# ------------------------------------------------------------------------------------------ toy: the old teeth
@pytest.mark.parametrize("reference", [pytest.param(loop_reference, id="loop"), pytest.param(spec_attention, id="spec"),
                                       pytest.param(None, id="parity.gate.reference")])
def test_gate_passes_correct_kernel(reference):
    examples = max(30, settings.default.max_examples)  # the `thorough` profile runs more
    result = assert_gate(dense_attention, examples=examples, seed=1, reference=reference, profile="toy")
    assert result.cases_run >= examples and result.max_error < 1e-12
    assert len(result.cases_per_shape) == 36  # every window x chunk count x head_dim of the toy grid


def test_gate_passes_loop_kernel_in_float32():
    result = gate(loop_attention_float32, examples=15, seed=2, dtype="float32", profile="toy")
    assert result.passed and result.tolerance == 1e-4, result.message()


def loop_attention_float32(*args):
    return torch.as_tensor(loop_attention(*args)).float()


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_gate_rejects_planted_bug(bug):
    result = gate(BROKEN_KERNELS[bug], examples=60, seed=3, name=bug, profile="toy")
    assert not result.passed, f"gate accepted the planted bug {bug!r}: {BUGS[bug]}"
    assert result.verdict == ("error" if bug == "in_place_scaling" else "mismatch"), result.message()
    case = result.counterexample
    assert isinstance(case, AttentionCase)
    if result.verdict == "mismatch":
        assert result.error > result.budget
        # The reported case really fails, replayed outside hypothesis against the independent loop kernel.
        with pytest.raises(AssertionError):
            check_case(BROKEN_KERNELS[bug], case, reference=loop_reference)
    message = result.message()
    assert message.startswith(result.verdict + ":") and f"window={case.window}" in message
    assert "token_kind=" in message and "replay: python -m parity gate" in message and "--seed 3" in message


def test_counterexample_is_shrunk():
    result = gate(BROKEN_KERNELS["window_narrower"], examples=60, seed=4, reference=loop_reference, profile="toy")
    case = result.counterexample
    batch, heads, seq, head_dim = case.query.shape
    # The smallest case showing a narrower window: one row, one head, head_dim 2, a single chunk.
    assert (batch, heads, head_dim) == (1, 1, 2) and seq == case.window


# ------------------------------------------------------------------------------------------ verdicts
def _crashes(*args):
    raise RuntimeError("boom")


def _tuple(*args):
    return dense_attention(*args), None


def _float32_out(*args):
    return dense_attention(*args).float()


def _meta_out(*args):
    return dense_attention(*args).to("meta")


def _narrow(q, *rest):
    return q[..., :1]


def _nan_on_first_row(*args):
    out = dense_attention(*args).clone()
    out[:, :, 0] = float("nan")
    return out


@pytest.mark.parametrize("kernel,verdict,words", [
    (_crashes, "error", "kernel raised RuntimeError: boom"),
    (_tuple, "error", "the result is a tuple, the contract says one tensor"),
    (_float32_out, "error", "dtype float32, the contract says bfloat16 (the input dtype)"),
    (_meta_out, "error", "is on meta, the contract says cpu"),
    (_narrow, "error", "shape"),
    (BROKEN_KERNELS["in_place_scaling"], "error", "modified its input 'query' in place"),
    (_nan_on_first_row, "mismatch", "non-finite output on a valid token"),
])
def test_each_contract_breach_has_its_own_verdict_and_message(kernel, verdict, words):
    dtype = "bfloat16" if kernel is _float32_out else "float64"
    result = gate(kernel, examples=5, seed=0, profile="toy", dtype=dtype)
    assert result.verdict == verdict and words in result.detail, result.message()
    assert result.message().splitlines()[0].startswith(f"{verdict}: ")


def test_load_kernel_errors_name_the_argument():
    with pytest.raises(ValueError, match="package.module:function"):
        load_kernel("no_colon")
    with pytest.raises(ValueError, match="nope"):
        load_kernel("parity.gate.broken_kernels:nope")
    assert load_kernel("parity.gate.broken_kernels:window_wider") is BROKEN_KERNELS["window_wider"]


def test_gate_validates_arguments():
    with pytest.raises(ValueError, match="examples"):
        gate(dense_attention, examples=0)
    with pytest.raises(TypeError, match="kernel"):
        gate("not callable")
    with pytest.raises(ValueError, match="dtype"):
        gate(dense_attention, dtype="int8")
    with pytest.raises(ValueError, match="profile must be one of toy, boundary, realistic, long, all; got 'huge'"):
        gate(dense_attention, profile="huge")
    with pytest.raises(ValueError, match="blocks must be even ints >= 2, got 3"):
        gate(dense_attention, blocks=(3,))
    with pytest.raises(ValueError, match="max_seconds"):
        gate(dense_attention, max_seconds=0)


def test_time_budget_stops_the_run_and_lists_what_did_not_run():
    import time

    def slow(*args):
        time.sleep(0.05)
        return dense_attention(*args)

    result = gate(slow, examples=200, seed=0, profile="toy", max_seconds=0.5)
    assert result.verdict == "incomplete" and not result.passed and result.not_run and result.cases_run < 72
    assert "time budget reached" in result.message()
    allowed = gate(slow, examples=200, seed=0, profile="toy", max_seconds=0.5, allow_incomplete=True)
    assert allowed.passed and allowed.not_run and "incomplete run allowed" in allowed.message()


# ------------------------------------------------------------------------------------------ support
def test_support_validation_names_the_value():
    for kwargs, words in [({"min_window": 1}, "min_window must be an int >= 2, got 1"),
                          ({"head_dims": ()}, "head_dims must name at least one"),
                          ({"max_window": 8, "min_window": 16}, "max_window 8 is below min_window 16"),
                          ({"head_dims": (40,), "head_dim_multiple": 16}, "no head dim of (40,)"),
                          ({"devices": ("tpu",)}, "'tpu'"), ({"dtypes": ("int8",)}, "int8")]:
        with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
            Support(**kwargs)
    with pytest.raises(TypeError, match="unknown limit"):
        Support().narrowed(heads=3)


def test_declared_support_decorator_and_narrowing():
    assert support_of(tiled_attention) == Support(head_dim_multiple=16, min_window=16)
    assert support_of(dense_attention) == Support()
    narrowed = support_of(tiled_attention).narrowed(head_dims=(40, 64, 128), min_window=32, max_seq=2048)
    assert narrowed.head_dims == (40, 64, 128) and narrowed.min_window == 32 and narrowed.max_seq == 2048
    assert not narrowed.head_dim_ok(40) and narrowed.head_dim_ok(64)

    @parity.supports(dtypes=("float32",))
    def only_float32(*args):
        return dense_attention(*args)

    with pytest.raises(ValueError, match="supports dtypes float32; --dtype float64 is outside"):
        gate(only_float32, profile="toy")


def test_cases_are_generated_inside_the_support_and_exclusions_reported():
    def picky(query, key, value, global_query, global_key, global_value, token_kind, window):
        head_dim, seq = query.shape[-1], query.shape[-2]
        if head_dim % 16 or window < 32 or seq > 512 or int((token_kind == 2).sum(1).max()) > 20:
            raise ValueError(f"unsupported head_dim {head_dim} window {window} seq {seq}")
        return tiled_attention(query, key, value, global_query, global_key, global_value, token_kind, window)

    undeclared = gate(picky, examples=20, seed=5, profile="boundary", blocks=(16,))
    assert undeclared.verdict == "error" and "kernel raised ValueError: unsupported" in undeclared.detail
    support = Support(head_dim_multiple=16, min_window=32, max_seq=512, max_globals=20)
    declared = gate(picky, examples=20, seed=5, profile="boundary", blocks=(16,), support=support)
    assert declared.passed, declared.message()
    assert "window 24" in declared.excluded["boundary"] and "head_dim 40" in declared.excluded["boundary"]
    assert "the support excluded" in declared.message()
    with pytest.raises(ValueError, match="excludes every shape of profile toy"):
        gate(picky, profile="toy", support=support)


def test_grids_visit_every_window_block_count_and_head_dim():
    boundary = grid("boundary", blocks=(16, 64))
    assert {s.window for s in boundary.shapes} == {24, 32, 96, 128}
    assert {s.head_dim for s in boundary.shapes} == {16, 40, 64, 128}
    assert len({(s.window, s.seq, s.head_dim) for s in boundary.shapes}) == len(boundary.shapes) == 2 * 2 * 3 * 4
    realistic = grid("realistic")
    assert {s.window for s in realistic.shapes} == {64, 256, 512, 1024}
    assert max(s.seq for s in realistic.shapes) >= 4096 and min(s.seq for s in realistic.shapes) >= 3 * 64
    assert {s.heads for s in realistic.shapes} == {8, 12, 16} and {s.head_dim for s in realistic.shapes} == {64, 128}


# ------------------------------------------------------------------------------------------ realistic kernels
def test_tiled_kernel_passes_boundary():
    blocks = (16, 32, 64, 128) if _thorough() else CI_BLOCKS
    result = gate(tiled_attention, examples=30, seed=6, profile="boundary", blocks=blocks)
    assert result.passed, result.message()
    assert result.max_error < 1e-12 and "head_dim 40" in result.excluded["boundary"]


def test_tiled_kernel_passes_realistic():
    options = {} if _thorough() else CI_REALISTIC
    result = gate(tiled_attention, examples=5, seed=7, profile="realistic", **options)
    assert result.passed, result.message()
    assert len(result.cases_per_shape) == (16 if _thorough() else 4) and result.max_error < 1e-12
    assert max(int(label.split("seq=")[1].split()[0]) for label in result.cases_per_shape) == 4096


def test_tiled_kernel_passes_backward_and_half_precision():
    result = gate(tiled_attention, examples=10, seed=8, profile="boundary", blocks=(16,), backward=True)
    assert result.passed, result.message()
    assert set(result.worst) == {"context", *(f"grad_{n}" for n in ("query", "key", "value", "global_query",
                                                                       "global_key", "global_value"))}
    half = gate(tiled_attention, examples=10, seed=8, profile="boundary", blocks=(16,), dtype="bfloat16")
    assert half.passed, half.message()
    worst = half.worst["context"]
    # The per-case budget: HALF_K x what the plain bfloat16 implementation loses (+ eps/2), below the fixed cap.
    assert worst["plain"] > 0 and worst["budget"] == pytest.approx(HALF_K * worst["plain"] + half_floor("bfloat16"))
    assert worst["budget"] < 5e-2 and worst["error"] <= worst["budget"] and "plain bfloat16" in half.message()


# Where each realistic bug shows: the profile (and options) the test gates it on.
MUTANT_RUNS = {
    "tile_end_off_by_one": dict(profile="boundary"),
    "window_clipped_256": dict(profile="realistic"),
    "first_16_globals": dict(profile="boundary"),
    "partial_tile_skipped": dict(profile="boundary"),
    "head_dim_64_only": dict(profile="boundary"),
    "bf16_denominator": dict(profile="boundary"),
    "batch3_global_counts": dict(profile="boundary"),
    "positions_in_input_dtype": dict(profile="realistic", dtype="bfloat16"),
    "last_row_zeroed": dict(profile="boundary"),
    "global_value_grad": dict(profile="boundary", backward=True),
}


@pytest.mark.parametrize("bug", sorted(TILED_BUGS))
def test_realistic_mutant_is_rejected_with_mismatch(bug):
    options = dict(MUTANT_RUNS[bug])
    if options["profile"] == "boundary":
        options["blocks"] = (16,) if options.get("backward") else CI_BLOCKS
    elif not _thorough():
        options.update(support=Support(max_seq=1024, head_dims=(64,)), max_heads=1)
    result = gate(TILED_KERNELS[bug], examples=30, seed=9, max_seconds=30, **options)
    assert result.verdict == "mismatch", f"{bug} ({TILED_BUGS[bug]}): {result.message()}"
    assert result.error > result.budget and result.message().startswith("mismatch: ")
    if bug == "global_value_grad":
        assert result.output == "grad_global_value"
        forward_only = gate(TILED_KERNELS[bug], examples=10, seed=9, **dict(options, backward=False))
        assert forward_only.passed, forward_only.message()  # its forward is exact


def test_forward_only_kernel_is_noted_not_failed():
    @parity.supports(head_dim_multiple=16, min_window=16, backward=False)
    def no_grad(*args):
        with torch.no_grad():
            return tiled_attention(*args)

    result = gate(no_grad, examples=10, seed=10, profile="boundary", blocks=(16,), backward=True)
    assert result.passed and result.forward_only and "forward-only" in result.message()
    undeclared = gate(parity.supports(head_dim_multiple=16, min_window=16)(no_grad), examples=10, seed=10,
                      profile="boundary", blocks=(16,), backward=True)
    assert undeclared.verdict == "error" and "carries no gradient" in undeclared.detail


# ------------------------------------------------------------------------------------------ CLI
def _cli(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "parity", "gate", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_cli_verdicts_exit_codes_and_json(tmp_path):
    bad = _cli("--attention", "parity.gate.broken_kernels:padding_keys_visible", "--profile", "toy", "--examples", "15",
               "--seed", "5")
    assert bad.returncode == 1 and bad.stdout.startswith("mismatch: ")
    assert "token_kind=" in bad.stdout and "--seed 5" in bad.stdout and "seed: 5" in bad.stderr
    report = tmp_path / "gate.json"
    good = _cli("--attention", "parity.gate.broken_kernels:tiled_attention", "--profile", "boundary", "--block", "16",
                "--examples", "5", "--seed", "5", "--head-dims", "16,64", "--json", str(report))
    assert good.returncode == 0 and good.stdout.startswith("pass: "), good.stdout + good.stderr
    data = json.loads(report.read_text())
    assert data["verdict"] == "pass" and data["seed"] == 5 and data["profile"] == "boundary"
    assert data["support"]["head_dims"] == [16, 64] and data["support"]["min_window"] == 16
    assert sum(data["cases_per_shape"].values()) == data["cases_run"] > 0
    assert data["worst_error"]["context"]["error"] < 1e-12 and {"torch", "numpy"} <= set(data["versions"])
    assert "head_dim 128" in data["excluded"]["boundary"] and data["device"].startswith("cpu")
    crash = _cli("--attention", "tests.test_parity_gate:_crashes", "--profile", "toy", "--examples", "3",
                 env=dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.path.join(os.getcwd(), "tests")])))
    assert crash.returncode == 1 and crash.stdout.startswith("error: "), crash.stdout + crash.stderr


@pytest.mark.parametrize("args,words", [
    (["--attention", "no.such.module:fn"], "cannot import"),
    (["--attention", "parity.gate.broken_kernels:tiled_attention", "--min-window", "1"], "min_window"),
    (["--attention", "parity.gate.broken_kernels:tiled_attention", "--profile", "toy"], "excludes every shape"),
    (["--attention", "parity.gate.broken_kernels:tiled_attention", "--head-dims", "x"], "--head-dims"),
    (["--attention", "parity.gate.broken_kernels:tiled_attention", "--max-seconds", "0"], "max_seconds"),
])
def test_cli_usage_errors_exit_2_with_one_line(args, words):
    done = _cli(*args, timeout=120)
    assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr, done.stderr


# ------------------------------------------------------------------------------------------ led_torch backends
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("profile", ["toy", "boundary", "realistic"])
def test_led_torch_banded_backend_passes_the_gate(profile, dtype):
    from led_torch.backends import get_backend

    options = {"realistic": dict(CI_REALISTIC, examples=2), "boundary": dict(blocks=CI_BLOCKS, examples=15),
               "toy": dict(examples=30, backward=dtype == "float64")}[profile]
    if _thorough():
        options = dict(examples=options["examples"], backward=profile != "realistic")
    result = gate(get_backend("banded"), seed=11, profile=profile, dtype=dtype, name="banded", **options)
    assert result.passed, result.message()


def test_led_torch_banded_backward_passes_boundary():
    from led_torch.backends import get_backend

    result = gate(get_backend("banded"), seed=11, profile="boundary", blocks=(16,), examples=10, backward=True,
                  name="banded")
    assert result.passed and result.worst["grad_global_value"]["error"] < 1e-12, result.message()


def test_led_torch_flex_backend_passes_on_fixed_realistic_shapes():
    """Eager flex on the realistic shapes with seq 1024 and windows 64, 256 (flex has no CPU backward)."""
    from led_torch.backends import get_backend

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # flex without torch.compile warns that it is unfused
        for profile in ("toy", "realistic"):
            result = gate(get_backend("flex"), examples=10, seed=12, name="flex", profile=profile, max_heads=2,
                          support=Support(max_seq=1024, max_window=256))
            assert result.passed, result.message()


TRITON_RUNS = {  # the interpreter is slow: boundary on tiles of 16, realistic on seq 1024 with one head
    "toy": [],
    "boundary": ["--block", "16", "--head-dims", "16,64"],
    "realistic": ["--max-seq", "1024", "--head-dims", "64", "--max-heads", "1"],
}


@pytest.mark.parametrize("profile", sorted(TRITON_RUNS))
def test_led_torch_triton_backend_passes_the_gate_interpreted(profile):
    """The Triton kernel under TRITON_INTERPRET=1 (CPU), in float32 (the interpreter's natural dtype); it is
    forward-only (docs/kernels.md)."""
    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONWARNINGS="ignore")
    done = _cli("--attention", "led_torch.backends.triton_banded:triton_longformer_attention", "--examples", "4",
                "--seed", "7", "--dtype", "float32", "--profile", profile, "--forward-only", *TRITON_RUNS[profile],
                env=env, timeout=600)
    assert done.returncode == 0 and done.stdout.startswith("pass: "), done.stdout + done.stderr


def test_one_seed_gives_the_same_cases_from_the_cli_and_the_api(tmp_path):
    # Hypothesis draws literal constants from every loaded local module, so the cases a seed gives used to
    # depend on what the caller had imported: the CLI (which loads the commands) and a bare script differ.
    api = (
        "import json, sys\n"
        "from parity.gate.broken_kernels import dense_attention\n"
        "from parity.gate.judge import gate\n"
        "r = gate(dense_attention, profile='toy', examples=100, seed=0)\n"
        "json.dump(r.to_dict(), open(sys.argv[1], 'w'))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    subprocess.run([sys.executable, "-c", api, str(tmp_path / "api.json")], check=True, env=env)
    subprocess.run([sys.executable, "-m", "parity", "gate", "--attention", "parity.gate.broken_kernels:dense_attention",
                    "--profile", "toy", "--examples", "100", "--seed", "0", "--json", str(tmp_path / "cli.json")],
                   check=True, env=env, capture_output=True)
    api_run, cli_run = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("api", "cli"))
    assert api_run["verdict"] == cli_run["verdict"] == "pass"
    assert api_run["cases_per_shape"] == cli_run["cases_per_shape"]
    assert api_run["worst_error"] == cli_run["worst_error"]  # the same values: the same cases


def computes_in_float32(query, key, value, global_query, global_key, global_value, token_kind, window):
    """A correct kernel that, like HF's own attention, computes in float32 whatever its inputs."""
    f32 = [t.float() for t in (query, key, value, global_query, global_key, global_value)]
    return dense_attention(*f32, token_kind, window).to(query.dtype)


def test_an_explicit_atol_replaces_the_budget_looser_or_tighter_and_is_replayed():
    strict = gate(computes_in_float32, profile="toy", examples=20, seed=1)
    assert strict.verdict == "mismatch" and "--atol" not in strict.replay_command()
    loose = gate(computes_in_float32, profile="toy", examples=20, seed=1, atol=1e-6)
    assert loose.passed, loose.message()
    assert loose.worst["context"]["budget"] == 1e-6 and loose.to_dict()["atol"] == 1e-6
    tight = gate(dense_attention, profile="toy", examples=20, seed=1, atol=1e-300)
    assert tight.verdict == "mismatch" and "(atol given)" in tight.message()
    assert "--atol 1e-300" in tight.replay_command()
    with pytest.raises(ValueError, match="atol must be a finite number > 0, got -1"):
        gate(dense_attention, profile="toy", examples=1, atol=-1)


def test_the_failure_names_the_worst_element_with_both_values_in_full_precision():
    result = gate(computes_in_float32, profile="toy", examples=20, seed=1)
    detail = result.detail
    assert "dim " in detail and "|diff|" in detail and "scaled" in detail
    kernel_value, spec_value = (float(detail.split(" kernel ")[1].split(" vs spec ")[0]),
                                float(detail.split(" vs spec ")[1].split(" (")[0]))
    assert kernel_value != spec_value  # printed round-tripping, so a 1e-8 difference is visible


def test_the_plain_same_dtype_implementation_passes_in_half_precision_however_hard_the_case():
    # The yardstick itself (dense attention computed in bfloat16) must pass: the half budget is HALF_K x its
    # error on the very case, with no cap that a hard case could push it past.
    result = gate(dense_attention, profile="boundary", dtype="bfloat16", examples=30, seed=3, blocks=CI_BLOCKS)
    assert result.passed, result.message()
    assert all(w["error"] <= HALF_K * w["plain"] + half_floor("bfloat16") for w in result.worst.values())
