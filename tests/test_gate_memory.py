"""Memory past the end: the gate hands some cases over as views inside NaN-filled buffers
(parity.gate.poison, docs/contract.md#memory-around-the-inputs).

- every layout holds exactly the case's values, NaN around them where poisoned, with the strides it claims;
- the profiles draw every layout; the correct kernels pass every layout, forward and backward;
- a kernel reading past the end of its inputs is rejected on default settings with the likely cause named,
  and passes on contiguous inputs (why such bugs ship); a kernel writing outside is an `error`, and so is
  one changing a single bit of an input, in every layout;
- its reproducer folder replays the poisoned layout.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings

from parity.gate.broken_kernels import LATENT_KERNELS, dense_attention, tiled_attention
from parity.gate.judge import ARGUMENTS, KernelFailure, KernelMismatch, check_case, gate, replay_case
from parity.gate.poison import LAYOUTS, hand_over, layout_of, margin_rows
from parity.gate.profiles import CaseRecipe, Shape, grid, shape_cases

SHAPE = Shape("boundary", window=32, seq=96, head_dim=16, heads=2, max_batch=2, block=32)  # 96 % 64: a tail tile
TAIL_READ = LATENT_KERNELS["tail_read_past_end"]


def recipe(layout: str, **values) -> CaseRecipe:
    kinds = np.ones((2, 96), np.int64)
    kinds[0, [3, 50]] = 2
    kinds[1, 80:] = 0
    return CaseRecipe(SHAPE, 2, 2, kinds, seed=5, strided="packed" in layout, poisoned="poisoned" in layout,
                      transposed=layout == "transposed", **values)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_holds_the_values_with_nan_around_them(layout):
    case = recipe(layout).materialize()
    assert layout_of(case) == layout
    handed = hand_over(case, torch.float64)
    for tensor, array in zip(handed.tensors, case.arrays(), strict=True):
        assert np.array_equal(tensor.numpy(), array)
    contiguous = [t.is_contiguous() for t in handed.tensors]
    assert all(contiguous) == (layout in ("contiguous", "poisoned contiguous"))
    if layout == "transposed":  # six buffers (batch, heads, d, seq), each input the transpose of its own
        seq = case.query.shape[2]
        for tensor, buffer in zip(handed.tensors, handed.buffers, strict=True):
            assert buffer.is_contiguous() and tensor.data_ptr() == buffer.data_ptr()
            assert tensor.stride(-1) == seq and tensor.stride(-2) == 1
    elif layout != "contiguous":  # one buffer: the six inputs and the NaN margins cover it, each element once
        (buffer,) = handed.buffers
        covered = torch.zeros(buffer.numel(), dtype=torch.int64)
        for view in [*handed.tensors, *handed.margins]:
            covered.as_strided(view.shape, view.stride(), view.storage_offset()).add_(1)
        assert buffer.is_contiguous() and bool((covered == 1).all())
    assert all(torch.isnan(margin).all() for margin in handed.margins)
    margin_size = sum(margin.numel() for margin in handed.margins)
    assert margin_size >= 2 * margin_rows(case.window) * 16 if "poisoned" in layout else margin_size == 0
    described = handed.description()
    assert described["layout"] == layout
    assert described["strides"]["key"] == list(handed.tensors[1].stride())


def test_packed_views_are_a_fused_qkv_layout():
    handed = hand_over(recipe("packed").materialize(), torch.float64)
    batch, heads, seq, d = handed.tensors[0].shape
    assert handed.buffers[0].is_contiguous() and tuple(handed.buffers[0].shape) == (batch, seq, 6, heads, d)
    assert handed.tensors[0].stride() == (seq * 6 * heads * d, d, 6 * heads * d, 1)


def test_the_profiles_draw_every_layout():
    seen = set()

    @settings(max_examples=60, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(shape_cases(grid("boundary", blocks=(16,)).shapes[0]))
    def collect(r):
        seen.add(layout_of(r))

    collect()
    assert seen == set(LAYOUTS)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kernel", [dense_attention, tiled_attention], ids=["dense", "tiled"])
def test_correct_kernels_pass_every_layout_forward_and_backward(kernel, layout):
    results = check_case(kernel, recipe(layout), backward=True)
    assert all(r["error"] <= r["budget"] for r in results.values()) and len(results) == 7


@pytest.mark.parametrize("layout", ["poisoned contiguous", "poisoned packed"])
def test_a_tail_read_past_the_end_is_named_as_the_likely_cause(layout):
    with pytest.raises(KernelFailure, match="reads outside its inputs") as failure:
        check_case(TAIL_READ, recipe(layout))
    assert failure.value.verdict == "mismatch"
    clean = check_case(TAIL_READ, recipe(layout.replace("poisoned ", "")))  # how the bug ships
    assert clean["context"]["error"] < 1e-12


def test_the_gate_rejects_a_tail_read_on_default_settings():
    result = gate(TAIL_READ, examples=10, seed=0, profile="boundary", blocks=(16,))
    assert result.verdict == "mismatch" and "reads outside its inputs" in result.detail, result.message()
    assert "poisoned" in result.message()


def wrote_past_the_end(query, key, value, global_query, global_key, global_value, token_kind, window):
    """Correct output, but it zeroes the row after the end of `value` (a store without its bounds mask)."""
    out = dense_attention(query, key, value, global_query, global_key, global_value, token_kind, window)
    with torch.no_grad():
        batch, heads, seq, d = value.shape
        end = value.storage_offset() + sum((n - 1) * s for n, s in zip(value.shape, value.stride(), strict=True)) + 1
        if end + d <= value.untyped_storage().nbytes() // value.element_size():
            value.as_strided((d,), (1,), end).zero_()
    return out


def test_a_kernel_writing_outside_its_inputs_is_an_error():
    with pytest.raises(KernelFailure, match="wrote outside its inputs") as failure:
        check_case(wrote_past_the_end, recipe("poisoned contiguous"))
    assert failure.value.verdict == "error"
    check_case(wrote_past_the_end, recipe("contiguous"))  # nothing to see without the poison


def writes_next_to(name: str, after: bool):
    """A correct kernel that also writes one element just before input `name`'s first or just after its last."""
    def kernel(query, key, value, global_query, global_key, global_value, token_kind, window):
        out = dense_attention(query, key, value, global_query, global_key, global_value, token_kind, window)
        t = dict(zip(ARGUMENTS[:6], (query, key, value, global_query, global_key, global_value), strict=True))[name]
        last = t.storage_offset() + sum((n - 1) * s for n, s in zip(t.shape, t.stride(), strict=True))
        with torch.no_grad():
            t.as_strided((1,), (1,), last + 1 if after else t.storage_offset() - 1).fill_(1.0)
        return out
    return kernel


@pytest.mark.parametrize("layout", ["poisoned contiguous", "poisoned packed"])
@pytest.mark.parametrize("name,after", [("query", False), ("value", True), ("global_value", True)])
def test_one_element_written_into_the_nan_margins_is_an_error(layout, name, after):
    with pytest.raises(KernelFailure, match="wrote outside its inputs") as failure:
        check_case(writes_next_to(name, after), recipe(layout))
    assert failure.value.verdict == "error"


def nudges_one_element(name: str, zero: bool = False):
    """A correct kernel that also changes one element of input `name` by its last bit (or 0.0 into -0.0)."""
    def kernel(query, key, value, global_query, global_key, global_value, token_kind, window):
        out = dense_attention(query, key, value, global_query, global_key, global_value, token_kind, window)
        t = dict(zip(ARGUMENTS[:6], (query, key, value, global_query, global_key, global_value), strict=True))[name]
        with torch.no_grad():
            x = t[1, 1, 40, 7]
            t[1, 1, 40, 7] = -x if zero else torch.nextafter(x, torch.full_like(x, float("inf")))
        return out
    return kernel


@pytest.mark.parametrize("dtype", ["float64", "float32"])  # compared with the case's arrays / with clones
@pytest.mark.parametrize("layout", LAYOUTS)
def test_one_changed_bit_of_any_input_is_an_error(layout, dtype):
    for name in ARGUMENTS[:6]:
        with pytest.raises(KernelFailure, match=f"modified its input '{name}' in place") as failure:
            check_case(nudges_one_element(name), recipe(layout), dtype=dtype)
        assert failure.value.verdict == "error"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_negative_zero_written_over_zero_is_an_error(dtype):
    case = recipe("packed").materialize()
    case.key[1, 1, 40, 7] = 0.0
    with pytest.raises(KernelFailure, match="modified its input 'key' in place"):
        check_case(nudges_one_element("key", zero=True), case, dtype=dtype)


def test_the_reproducer_of_a_poisoned_failure_replays_its_layout(tmp_path):
    result = gate(TAIL_READ, examples=10, seed=0, profile="boundary", blocks=(16,), reproducer=str(tmp_path / "r"))
    assert result.verdict == "mismatch" and result.case_dir == str(tmp_path / "r")
    replayed = replay_case(TAIL_READ, result.case_dir)
    assert replayed.verdict == "mismatch" and "reads outside its inputs" in replayed.detail
    assert replay_case(tiled_attention, result.case_dir).passed


def test_a_grad_through_every_layout_reaches_the_views_not_the_buffer_base():
    """The backward check differentiates with respect to the six views, whatever buffer they live in."""
    for layout in LAYOUTS:
        case = dataclasses.replace(recipe(layout).materialize())
        handed = hand_over(case, torch.float64, requires_grad=True)
        out = tiled_attention(*handed.tensors, handed.token_kind, handed.window)
        grads = torch.autograd.grad(out.sum(), handed.tensors, allow_unused=True)
        assert all(g is None or (g.shape == t.shape and torch.isfinite(g).all())
                   for g, t in zip(grads, handed.tensors, strict=True))


HEAD_DIM_READ_CONTIGUOUS = LATENT_KERNELS["head_dim_assumed_unit_stride"]


def test_a_head_dim_read_as_unit_stride_is_caught_on_transposed_inputs_only():
    """The planted kernel reads each input's head_dim axis with stride 1 whatever its stride: right on every
    layout whose head_dim is unit-stride, wrong on the transposed one."""
    for layout in ("contiguous", "packed", "poisoned contiguous", "poisoned packed"):
        check_case(HEAD_DIM_READ_CONTIGUOUS, recipe(layout))
    with pytest.raises(KernelMismatch):
        check_case(HEAD_DIM_READ_CONTIGUOUS, recipe("transposed"))


def test_the_gate_rejects_the_banded_kernel_that_handed_strided_rows_to_torchs_flash_op(monkeypatch):
    """led_torch's CPU fast path once passed q/k/v with a strided head_dim to torch's private flash op, which
    reads that axis as contiguous: silently wrong numbers. With its copy undone, the gate's transposed cases
    reject it; with the copy it passes the same run."""
    from led_torch.backends import banded_flash_cpu
    from led_torch.backends.banded import banded_longformer_attention

    run = dict(profile="toy", dtype="float64", examples=30, seed=0)
    assert gate(banded_longformer_attention, **run).verdict == "pass"
    monkeypatch.setattr(banded_flash_cpu, "_unit_stride_rows", lambda t: t)
    result = gate(banded_longformer_attention, **run)
    assert result.verdict == "mismatch", result.message()
    assert result.counterexample.transposed and "transposed" in result.counterexample.describe()
