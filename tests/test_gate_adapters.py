"""The gate's declarations (compute_dtype, padding, dtypes) and adapters (hf-module, local, local-varlen), with
kernels written here; third-party kernels are in tests/test_gate_third_party.py (docs/contract.md)."""

from __future__ import annotations

import re
import shlex
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import settings

import parity
from parity.commands import main
from parity.gate import Support, gate
from parity.gate.adapters import adapt
from parity.gate.adapters.hf_module import decode_positions, encode_positions
from parity.gate.adapters.local import sliding_window_sdpa, sliding_window_sdpa_varlen
from parity.gate.broken_kernels import dense_attention
from parity.gate.judge import HALF_K, half_floor
from parity.gate.reference import reference_attention

DOCS = Path(__file__).resolve().parent.parent / "docs" / "contract.md"
EXAMPLES = 40 if settings.get_current_profile_name().startswith("thorough") else 8


@pytest.fixture(autouse=True)
def case_folders_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


# ------------------------------------------------------------------------------------------ kernels
def _reference_in(dtype):
    def kernel(query, key, value, global_query, global_key, global_value, token_kind, window):
        out = reference_attention(query, key, value, global_query, global_key, global_value, token_kind, window,
                                  dtype=dtype)
        return out.to(query.dtype)
    return kernel


computes_in_float32 = _reference_in(torch.float32)  # float64 in and out, float32 inside
declared_float32 = parity.supports(compute_dtype="float32")(_reference_in(torch.float32))
declared_bfloat16 = parity.supports(compute_dtype="bfloat16")(_reference_in(torch.bfloat16))


def no_key_mask(query, key, value, global_query, global_key, global_value, token_kind, window):
    """A sliding-window kernel with no key mask: every in-window key counts, padding or not."""
    return dense_attention(query, key, value, global_query, global_key, global_value,
                           torch.where(token_kind == 0, 1, token_kind), window)


@parity.supports(padding=False)
def declared_no_padding(*args):
    return no_key_mask(*args)


def natten_style(q, k, v, window_size, softmax_scale=None):
    """A FlashAttention-style kernel whose window slides back inside the sequence at the edges."""
    left, right = window_size
    seq, size = q.shape[1], left + right + 1
    i = torch.arange(seq)
    start = (i - left).clamp(min=0).clamp(max=max(seq - size, 0))
    allowed = (i[None, :] >= start[:, None]) & (i[None, :] < start[:, None] + size)
    out = torch.nn.functional.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=allowed, scale=softmax_scale)
    return out.transpose(1, 2)


def _cli(*args) -> tuple[int, str]:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(["gate", *args])
    return code, out.getvalue()


# ------------------------------------------------------------------------------------------ declarations
def test_a_lower_compute_dtype_fails_the_input_dtypes_budget_and_passes_its_own():
    plain = gate(computes_in_float32, examples=EXAMPLES, seed=0, profile="toy")
    assert plain.verdict == "mismatch" and 1e-9 < plain.error < 1e-4
    declared = gate(declared_float32, examples=EXAMPLES, seed=0, profile="toy")
    assert declared.passed and declared.tolerance == 1e-4 and declared.budget_dtype == "float32"
    assert "judged by the float32 budget" in declared.message() and "computes in float32" in declared.message()
    given = gate(computes_in_float32, examples=EXAMPLES, seed=0, profile="toy",
                 support=Support(compute_dtype="float32"))
    assert given.passed


def test_a_users_kernel_cannot_excuse_its_rounding_with_a_received_hook():
    """Only the project's adapters may say what they handed over; a kernel's own `received` is ignored, so a
    float32 kernel claiming it received float32-rounded inputs is still judged on the float64 ones."""
    exact = _reference_in(torch.float64)

    def rounds_inputs(token_kind, window, *arrays):
        return exact(*(a.float().double() for a in arrays), token_kind, window)

    def kernel(query, key, value, global_query, global_key, global_value, token_kind, window):
        return rounds_inputs(token_kind, window, query, key, value, global_query, global_key, global_value)

    kernel.received = lambda arrays, dtype: tuple(a.astype(np.float32).astype(np.float64) for a in arrays)
    assert gate(kernel, examples=EXAMPLES, seed=0, profile="toy").verdict == "mismatch"


def test_a_half_compute_dtype_is_judged_by_the_half_rule_against_the_plain_half_implementation():
    result = gate(declared_bfloat16, examples=EXAMPLES, seed=0, profile="toy", dtype="float32")
    assert result.passed
    worst = result.worst["context"]
    assert worst["plain"] is not None
    assert worst["budget"] == pytest.approx(HALF_K * worst["plain"] + half_floor("bfloat16"))
    assert gate(_reference_in(torch.bfloat16), examples=EXAMPLES, seed=0, profile="toy",
                dtype="float32").verdict == "mismatch"


def test_padding_false_draws_no_padding_and_edges_draws_no_holes():
    seen = []

    def recording(query, key, value, global_query, global_key, global_value, token_kind, window):
        seen.append(token_kind.clone())
        return dense_attention(query, key, value, global_query, global_key, global_value, token_kind, window)

    for padding, ok in ((False, lambda row: (row != 0).all()),
                        ("edges", lambda row: _no_holes(row))):
        seen.clear()
        result = gate(parity.supports(padding=padding)(recording), examples=EXAMPLES, seed=1, profile="toy")
        assert result.passed and seen
        assert all(ok(row) for kinds in seen for row in kinds), padding
        if padding == "edges":  # left/right padding and empty rows are still drawn
            assert any((row == 0).any() for kinds in seen for row in kinds)


def _no_holes(row) -> bool:
    valid = torch.nonzero(row).flatten()
    return valid.numel() == 0 or bool((row[int(valid[0]):int(valid[-1]) + 1] != 0).all())


def test_a_kernel_without_key_mask_passes_only_when_it_declares_padding_false():
    assert gate(no_key_mask, examples=EXAMPLES, seed=0, profile="toy").verdict == "mismatch"
    result = gate(declared_no_padding, examples=EXAMPLES, seed=0, profile="toy")
    assert result.passed and "no padding" in result.message()


def test_declarations_are_validated_by_name():
    with pytest.raises(ValueError, match="padding"):
        Support(padding="holes")
    with pytest.raises(ValueError, match="dtype"):
        Support(compute_dtype="float8")
    assert Support(padding=True).narrowed(padding="edges").padding == "edges"
    assert Support(padding="edges").narrowed(padding=False).padding is False


def test_every_declaration_travels_in_the_replay_and_replays_the_verdict():
    kernel = "tests.test_gate_adapters:computes_in_float32"
    code, out = _cli("--attention", kernel, "--profile", "toy", "--examples", str(EXAMPLES), "--seed", "4",
                     "--compute-dtype", "bfloat16", "--padding", "edges", "--dtypes", "float64,float32",
                     "--max-globals", "0", "--atol", "1e-12")
    assert code == 1 and out.startswith("mismatch: ")
    replay = re.search(r"replay: (python -m parity gate .*)", out).group(1)
    for flag in ("--compute-dtype bfloat16", "--padding edges", "--dtypes float64,float32", "--max-globals 0",
                 "--atol 1e-12"):
        assert flag in replay
    code2, out2 = _cli(*shlex.split(replay)[4:])
    assert code2 == 1 and out2.splitlines()[:3] == out.splitlines()[:3]


def test_cli_declarations_pass_and_bad_values_exit_2():
    code, out = _cli("--attention", "tests.test_gate_adapters:computes_in_float32", "--profile", "toy",
                     "--examples", str(EXAMPLES), "--seed", "0", "--compute-dtype", "float32")
    assert code == 0 and "judged by the float32 budget" in out
    for bad in (("--padding", "holes"), ("--compute-dtype", "float8"), ("--adapter", "xformers"),
                ("--dtypes", "float8"), ("--dtypes", "bfloat16")):  # the last excludes the run's --dtype
        try:
            code, _ = _cli("--attention", "tests.test_gate_adapters:computes_in_float32", *bad)
        except SystemExit as exit_info:  # argparse's choices
            code = exit_info.code
        assert code == 2, bad


# ------------------------------------------------------------------------------------------ adapters
@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16"])
@pytest.mark.parametrize(("adapter", "kernel"), [("local", sliding_window_sdpa),
                                                 ("local-varlen", sliding_window_sdpa_varlen)])
def test_plain_flash_style_kernels_pass_the_local_adapters(adapter, kernel, dtype):
    result = gate(kernel, adapter=adapter, examples=EXAMPLES, seed=2, profile="toy", dtype=dtype)
    assert result.passed, result.message()
    assert result.support.max_globals == 0 and result.adapter == adapter


def test_local_adapter_backward():
    result = gate(sliding_window_sdpa_varlen, adapter="local-varlen", examples=EXAMPLES, seed=2, profile="toy",
                  backward=True)
    assert result.passed and "grad_key" in result.worst


def test_an_edge_shifted_window_is_rejected_as_the_wrong_layout():
    result = gate(natten_style, adapter="local", examples=EXAMPLES, seed=0, profile="toy")
    assert result.verdict == "mismatch" and result.layout and "shifted" in result.layout
    first = result.message().splitlines()[0]
    assert "wrong window layout" in first and "neighbourhood attention" in first
    assert result.to_dict()["failure"]["layout"] == result.layout
    assert gate(sliding_window_sdpa, adapter="local", examples=4, seed=0, profile="toy").layout is None


def test_a_wrong_reach_is_named_but_a_wrong_scale_is_not_called_a_layout():
    def wider(q, k, v, window_size, softmax_scale=None):
        return sliding_window_sdpa(q, k, v, (2 * window_size[0], 2 * window_size[1]), softmax_scale)

    def scaled_twice(q, k, v, window_size, softmax_scale=None):
        return sliding_window_sdpa(q, k, v, window_size, None)

    wide = gate(wider, adapter="local", examples=EXAMPLES, seed=0, profile="toy")
    assert wide.verdict == "mismatch" and "reaches" in wide.layout
    twice = gate(scaled_twice, adapter="local", examples=EXAMPLES, seed=0, profile="toy")
    assert twice.verdict == "mismatch" and twice.layout is None


def test_hf_module_lookups_encode_every_token_exactly_in_bfloat16():
    for batch, seq, width in ((2, 4096, 2), (4, 8191, 16), (1, 100, 1)):
        hidden = encode_positions(batch, seq, width, torch.bfloat16, "cpu")
        index = decode_positions(hidden.transpose(0, 1), batch * seq)  # the module may transpose first
        assert torch.equal(index, torch.arange(batch * seq).view(batch, seq).transpose(0, 1))
    with pytest.raises(ValueError, match="channels"):
        encode_positions(2, 200, 1, torch.float32, "cpu")


def test_adapter_names_are_checked():
    with pytest.raises(ValueError, match="hf-module"):
        adapt(sliding_window_sdpa, "xformers")
    with pytest.raises(TypeError, match="module class"):
        gate(3, adapter="hf-module") if False else adapt(3, "hf-module")


def test_the_plugin_takes_adapters_and_declarations(led_kernel_gate):
    result = led_kernel_gate(sliding_window_sdpa, adapter="local", examples=4, seed=0, profile="toy",
                             dtype="float32")
    assert result.passed and result.adapter == "local"
    assert led_kernel_gate(computes_in_float32, examples=4, seed=0, profile="toy",
                           support=Support(compute_dtype="float32")).budget_dtype == "float32"


def test_the_docs_examples_of_each_adapter_run():
    text = DOCS.read_text()
    section = text.split("### Adapters")[1].split("\n### ")[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) >= 2
    for block in blocks:
        namespace: dict = {}
        exec(compile(block, str(DOCS), "exec"), namespace)  # each asserts its own verdicts
    commands = re.findall(r"^python -m parity gate (.*)$", section, re.M)
    assert any("--adapter local" in c for c in commands) and any("--adapter hf-module" in c for c in commands)
    for command in commands:
        args = shlex.split(command) + ["--examples", "3", "--seed", "0", "--profile", "toy"]
        code, out = _cli(*args)
        assert code == 0, out


def test_a_failing_custom_case_replays_with_its_adapter_and_compute_dtype(tmp_path):
    from parity.gate.profiles import Shape, shape_cases

    cases = shape_cases(Shape("toy", window=4, seq=8, head_dim=2, heads=2, max_batch=2), Support(max_globals=0))
    result = gate(natten_style, adapter="local", examples=EXAMPLES, seed=0, cases=cases)
    assert result.verdict == "mismatch" and result.case_dir
    assert "--adapter local --replay-case" in result.replay_command()
    code, out = _cli(*shlex.split(result.replay_command())[4:])
    assert code == 1 and out.startswith("mismatch: ")
    kinds = np.asarray(result.counterexample.token_kind)
    assert (kinds != 0).all()  # padding=False of the local adapter applied to custom cases too
