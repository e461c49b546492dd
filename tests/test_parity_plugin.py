"""The pytest plugin: another project gates its kernel in three lines; a broken kernel fails the test
with the gate's "mismatch" message."""

from __future__ import annotations

import pytest

from parity.broken_kernels import BROKEN_KERNELS, dense_attention
from parity.pytest_plugin import assert_kernel_matches_spec, led_kernel_gate  # noqa: F401 - the fixture


def test_assert_kernel_matches_spec_passes_a_correct_kernel():
    result = assert_kernel_matches_spec(dense_attention, examples=10, seed=0)
    assert result.passed and result.cases_run >= 10


def test_assert_kernel_matches_spec_fails_a_broken_kernel():
    with pytest.raises(pytest.fail.Exception, match="mismatch") as failure:
        assert_kernel_matches_spec(BROKEN_KERNELS["window_wider"], examples=40, seed=0)
    assert "shrunk counterexample" in str(failure.value) and "--seed 0" in str(failure.value)


def test_fixture(led_kernel_gate):  # noqa: F811 - the imported fixture
    assert led_kernel_gate(dense_attention, examples=5, seed=1).passed
    with pytest.raises(pytest.fail.Exception, match="mismatch"):
        led_kernel_gate(BROKEN_KERNELS["global_rows_ignore_padding"], examples=40, seed=1)
