"""The pytest plugin: another project gates its kernel in three lines; a broken kernel fails the test
with the gate's verdict message."""

from __future__ import annotations

import pytest

from parity.gate.broken_kernels import BROKEN_KERNELS, TILED_KERNELS, dense_attention, tiled_attention
from parity.gate.pytest_plugin import assert_kernel_matches_spec, led_kernel_gate  # noqa: F401 - the fixture


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
