"""LED's full length: the `long` profile (docs/contract.md#the-long-profile).

- `long` is part of `all`: 16,384 tokens with window 1024 (one head), 8,192 with windows 512 and 1024 whose
  every case has right padding and global tokens;
- a launch grid that stops covering rows past 8,192 is invisible on every shorter shape and rejected by
  `long` (per commit with the limit lowered to one block; the real 16k run is `slow`);
- the correct tiled kernel passes the whole profile (`slow`).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from parity.gate import broken_kernels
from parity.gate.broken_kernels import LATENT_KERNELS, tiled_attention
from parity.gate.judge import KernelFailure, check_case, gate
from parity.gate.profiles import LONG_PADDED, CaseRecipe, Shape, grid, profile_names, shape_cases

CAPPED = LATENT_KERNELS["grid_rows_capped"]


def test_long_is_part_of_all_and_visits_16384_tokens_with_window_1024():
    assert "long" in profile_names("all")
    shapes = grid("long").shapes
    assert any(s.seq == 16384 and s.window == 1024 and s.heads >= 1 for s in shapes)
    assert {(s.window, s.seq) for s in shapes if s.seq == 8192} == {(512, 8192), (1024, 8192)}
    assert grid("long", max_heads=1).shapes == shapes  # one head already


@pytest.mark.parametrize("shape", [s for s in grid("long").shapes if s.seq <= LONG_PADDED], ids=lambda s: s.label)
def test_every_8192_case_has_right_padding_and_globals(shape):
    rows = []

    @settings(max_examples=30, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(shape_cases(shape))
    def collect(r):
        rows.extend(r.token_kind)

    collect()
    # a span of at least half the sequence, less up to two one-token holes
    assert rows and all(row[-1] == 0 and (row == 2).any() and (row != 0).sum() >= shape.seq // 2 - 2 for row in rows)


def test_a_capped_grid_is_rejected_once_the_rows_pass_the_cap(monkeypatch):
    shape = Shape("long", window=32, seq=192, head_dim=16, heads=1, max_batch=1, block=64, fixed_heads=True)
    recipe = CaseRecipe(shape, 1, 1, np.ones((1, 192), np.int64), seed=0)
    assert check_case(CAPPED, recipe)["context"]["error"] < 1e-12  # 192 rows: under the real cap
    monkeypatch.setattr(broken_kernels, "GRID_ROW_LIMIT", 128)
    with pytest.raises(KernelFailure, match="mismatch") as failure:
        check_case(CAPPED, recipe)
    assert failure.value.location["position"] >= 128


@pytest.mark.slow
def test_a_capped_grid_is_rejected_by_the_long_profile():
    result = gate(CAPPED, examples=1, seed=0, profile="long", max_seconds=1200)
    assert result.verdict == "mismatch" and result.location["position"] >= 8192, result.message()


@pytest.mark.slow
def test_the_tiled_kernel_passes_the_long_profile():
    result = gate(tiled_attention, examples=1, seed=0, profile="long")
    assert result.passed and len(result.cases_per_shape) == 3, result.message()
