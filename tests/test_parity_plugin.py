"""The pytest plugin: another project gates its kernel in three lines; a broken kernel fails the test
with the gate's verdict message."""

from __future__ import annotations

from inspect import signature
from pathlib import Path

import pytest
from hypothesis import settings

from parity.gate.broken_kernels import BROKEN_KERNELS, TILED_KERNELS, dense_attention, tiled_attention
from parity.gate.judge import gate
from parity.gate.profiles import Shape, shape_cases
from parity.gate.pytest_plugin import (  # noqa: F401 - the fixture
    GATE_EXAMPLES,
    assert_kernel_matches_spec,
    led_kernel_gate,
)

pytest_plugins = ["pytester"]
DOCS = Path(__file__).resolve().parent.parent / "docs" / "parity.md"
TINY = Shape("custom", window=2, seq=2, head_dim=2, heads=1, max_batch=1)  # cases cheap enough to run 100


def test_assert_kernel_matches_spec_passes_a_correct_kernel():
    result = assert_kernel_matches_spec(dense_attention, examples=10, seed=0, profile="toy")
    assert result.passed and result.cases_run >= 10


def test_assert_kernel_matches_spec_fails_a_broken_kernel():
    with pytest.raises(pytest.fail.Exception, match="^mismatch: ") as failure:
        assert_kernel_matches_spec(BROKEN_KERNELS["window_wider"], examples=40, seed=0, profile="toy")
    assert "shrunk counterexample" in str(failure.value) and "--seed 0" in str(failure.value)


def test_realistic_kernel_with_declared_support_and_a_tiled_bug():
    result = assert_kernel_matches_spec(tiled_attention, examples=10, seed=2, profile="boundary", blocks=(16,))
    assert result.support.min_window == 16 and "head_dim 40" in result.excluded["boundary"]
    with pytest.raises(pytest.fail.Exception, match="^mismatch: .*tile_end_off_by_one"):
        assert_kernel_matches_spec(TILED_KERNELS["tile_end_off_by_one"], examples=10, seed=2, profile="boundary",
                                   blocks=(16,))


def test_fixture(led_kernel_gate):  # noqa: F811 - the imported fixture
    assert led_kernel_gate(dense_attention, examples=5, seed=1, profile="toy").passed
    with pytest.raises(pytest.fail.Exception, match="mismatch"):
        led_kernel_gate(BROKEN_KERNELS["global_rows_ignore_padding"], examples=40, seed=1, profile="toy")


def test_a_passing_run_prints_its_verdict_and_seed(capsys):
    assert_kernel_matches_spec(dense_attention, examples=3, seed=11, cases=shape_cases(TINY))
    out = capsys.readouterr().out
    assert out.startswith("pass: parity.gate.broken_kernels:dense_attention meets the contract on ")
    assert "seed 11)" in out.splitlines()[0]


def test_the_case_count_is_the_gates_own_not_the_hypothesis_profiles():
    assert settings.default.max_examples != GATE_EXAMPLES  # ci runs 12 examples per property, thorough 300
    result = assert_kernel_matches_spec(dense_attention, seed=0, cases=shape_cases(TINY))
    assert GATE_EXAMPLES == signature(gate).parameters["examples"].default
    assert result.examples == result.cases_run == GATE_EXAMPLES


def test_custom_cases_of_one_shape():
    shape = Shape("boundary", window=48, seq=96, head_dim=32, heads=1, max_batch=1, block=32)
    result = assert_kernel_matches_spec(tiled_attention, examples=3, seed=0, cases=shape_cases(shape))
    assert result.profile == "custom" and result.cases_per_shape == {shape.label: 3}
    with pytest.raises(pytest.fail.Exception, match="^mismatch: .*partial_tile_skipped"):
        assert_kernel_matches_spec(TILED_KERNELS["partial_tile_skipped"], examples=3, seed=0,
                                   cases=shape_cases(shape))


def test_the_fixture_shows_the_seed_of_a_passing_run_with_rA(pytester):
    pytester.makepyfile("""
        from parity.gate.broken_kernels import dense_attention
        from parity.gate.profiles import Shape, shape_cases

        def test_kernel(led_kernel_gate, request):
            tiny = shape_cases(Shape("custom", window=2, seq=2, head_dim=2, heads=1, max_batch=1))
            result = led_kernel_gate(dense_attention, examples=2, cases=tiny)
            assert result.seed == 7 and ("led_gate_seed", 7) in request.node.user_properties
    """)
    run = pytester.runpytest_inprocess("-rA", "--led-gate-seed", "7", "-p", "no:cacheprovider")
    run.assert_outcomes(passed=1)
    run.stdout.fnmatch_lines(["*PASSES*", "pass: parity.gate.broken_kernels:dense_attention meets the contract*"
                                          "seed 7)"])


def test_the_documented_defaults_are_the_real_ones():
    defaults = {name: p.default for name, p in signature(assert_kernel_matches_spec).parameters.items()}
    assert (defaults["dtype"], defaults["device"], defaults["examples"]) == ("float64", "cpu", None)
    doc = assert_kernel_matches_spec.__doc__
    assert f"the gate's default, {GATE_EXAMPLES}" in doc and 'dtype: default "float64"' in doc
    section = DOCS.read_text().split("## The pytest plugin")[1].split("\n## ")[0]
    assert f"{GATE_EXAMPLES} cases per profile" in section and 'dtype `float64`' in section
