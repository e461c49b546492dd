"""Triton backend: both kernels against the brute-force dense masked softmax of test_backend_flex.

Without CUDA the kernels run in Triton's CPU interpreter: TRITON_INTERPRET=1 must be set before the
kernels are decorated, so it is set here, before the backend is imported (and the backend is re-imported
if something loaded it earlier without the interpreter). The interpreter is slow: shapes stay tiny
(seq <= 64, head_dim <= 16) and blocks are 16 so that cases still span several query and key blocks.
"""

from __future__ import annotations

import importlib
import os
import sys

import pytest
import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"
pytest.importorskip("triton", reason="triton is not installed (pip install -e '.[gpu]')")

import numpy as np  # noqa: E402
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_MODULE = "led_torch.backends.triton_banded"
if _MODULE in sys.modules and not torch.cuda.is_available():
    importlib.reload(sys.modules[_MODULE])  # rebuild the kernels for the interpreter
triton_banded = importlib.import_module(_MODULE)
triton_longformer_attention = triton_banded.triton_longformer_attention

from parity.harness.strategies import attention_cases  # noqa: E402
from tests.test_backend_flex import (  # noqa: E402
    HALF_BUDGETS,
    brute_force_context,
    free_length_cases,
    scaled_error,
)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
WINDOWS = (2, 4, 6, 8, 10, 12, 14, 16)
SMALL_BLOCKS = dict(block_m=16, block_n=16)


def contract_cases(max_chunks: int = 4):
    """seq = window * chunks <= 64, head_dim up to 16 (odd ones too: the kernel masks the padded dims)."""
    return attention_cases(max_batch=3, max_heads=3, max_head_dim=16, max_chunks=max_chunks, windows=WINDOWS)


@given(contract_cases())
def test_triton_float32_matches_brute_force(case):
    args = case.torch_args(torch.float32, DEVICE)
    got = triton_longformer_attention(*args, **SMALL_BLOCKS)
    assert got.dtype == torch.float32
    expected = brute_force_context(*case.torch_args(torch.float64, DEVICE))
    assert scaled_error(got, expected) < 1e-5, case.describe()


@given(free_length_cases(max_seq=40))
def test_triton_any_length_and_wide_windows(case):
    got = triton_longformer_attention(*case.torch_args(torch.float32, DEVICE), **SMALL_BLOCKS)
    expected = brute_force_context(*case.torch_args(torch.float64, DEVICE))
    assert scaled_error(got, expected) < 1e-5, case.describe()


@given(contract_cases(max_chunks=2), st.sampled_from([torch.float16, torch.bfloat16]))
def test_triton_half_precisions_against_float64(case, dtype):
    got = triton_longformer_attention(*case.torch_args(dtype, DEVICE), **SMALL_BLOCKS)
    assert got.dtype == dtype
    expected = brute_force_context(*case.torch_args(torch.float64, DEVICE))
    assert scaled_error(got, expected) < HALF_BUDGETS[dtype], case.describe()


def test_triton_default_blocks_many_globals_and_padding():
    """Default block sizes (one query block here); rows with 0, 1 and 21 globals; padding inside and right."""
    rng = np.random.default_rng(5)
    kinds = torch.ones(3, 48, dtype=torch.long)
    kinds[0, 40:] = 0
    kinds[0, [3, 20]] = 0
    kinds[1, 7] = 2
    kinds[2, 1:43:2] = 2
    kinds[2, 44:] = 0
    args = [torch.as_tensor(rng.standard_normal((3, 2, 48, 16))) for _ in range(6)]
    got = triton_longformer_attention(*[a.float().to(DEVICE) for a in args], kinds.to(DEVICE), 6)
    expected = brute_force_context(*[a.to(DEVICE) for a in args], kinds.to(DEVICE), 6)
    assert scaled_error(got, expected) < 1e-5
    assert torch.all(got[0][:, kinds[0] == 0] == 0)


def test_triton_against_the_spec():
    """led_ref's numpy attention (the spec), when it exists."""
    spec = pytest.importorskip("led_ref.attention")
    rng = np.random.default_rng(6)
    kinds = np.array([[1, 2, 1, 1, 0, 1, 1, 2, 1, 1, 0, 0], [2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]])
    arrays = [rng.standard_normal((2, 2, 12, 5)) for _ in range(6)]
    got = triton_longformer_attention(*[torch.as_tensor(a, dtype=torch.float32, device=DEVICE) for a in arrays],
                                      torch.as_tensor(kinds, device=DEVICE), 4, **SMALL_BLOCKS)
    expected = spec.longformer_attention(*arrays, kinds, 4)
    assert scaled_error(got.cpu(), torch.as_tensor(np.asarray(expected))) < 1e-5


def test_triton_non_contiguous_inputs():
    rng = np.random.default_rng(7)
    kinds = torch.tensor([[1, 1, 2, 1, 1, 1, 0, 0]], device=DEVICE)
    base = [torch.as_tensor(rng.standard_normal((1, 8, 2, 4)), dtype=torch.float32, device=DEVICE)
            for _ in range(6)]
    args = [t.transpose(1, 2) for t in base]  # (1, 2, 8, 4) views
    got = triton_longformer_attention(*args, kinds, 2, **SMALL_BLOCKS)
    assert scaled_error(got, brute_force_context(*args, kinds, 2)) < 1e-5


def test_triton_backward_raises():
    kinds = torch.tensor([[1, 2, 1, 1]], device=DEVICE)
    args = [torch.randn(1, 1, 4, 2, device=DEVICE, requires_grad=True) for _ in range(6)]
    out = triton_longformer_attention(*args, kinds, 2)
    with pytest.raises(NotImplementedError, match="forward-only"):
        out.sum().backward()


@pytest.mark.parametrize(("kwargs", "error", "words"), [
    (dict(dtype=torch.float64), TypeError, "float64"),
    (dict(block_m=8), ValueError, "block_m"),
    (dict(block_n=24), ValueError, "block_n"),
    (dict(window=5), ValueError, "window"),
])
def test_triton_rejects_bad_input_naming_it(kwargs, error, words):
    dtype = kwargs.pop("dtype", torch.float32)
    window = kwargs.pop("window", 2)
    t = torch.zeros(1, 1, 4, 2, dtype=dtype, device=DEVICE)
    with pytest.raises(error, match=words):
        triton_longformer_attention(t, t, t, t, t, t, torch.ones(1, 4, dtype=torch.long, device=DEVICE), window,
                                    **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal outside the interpreter")
def test_triton_refuses_cpu_tensors_without_the_interpreter(monkeypatch):
    monkeypatch.setattr(triton_banded, "_interpreting", lambda: False)
    t = torch.zeros(1, 1, 4, 2)
    with pytest.raises(ValueError, match="CUDA"):
        triton_longformer_attention(t, t, t, t, t, t, torch.ones(1, 4, dtype=torch.long), 2)


# ------------------------------------------------------------------------------------------ compiled, on a GPU
def led_like_case(head_dim: int, dtype, seq: int = 2048, window: int = 256, seed: int = 0):
    """LED-shaped inputs on CUDA: batch 2, heads 4; row 0 has globals at 0 and 700 and right padding, row 1
    none and padding inside. -> (args in dtype, the same args in float64)."""
    rng = np.random.default_rng(seed)
    exact = [torch.as_tensor(rng.standard_normal((2, 4, seq, head_dim)), device="cuda") for _ in range(6)]
    exact[0], exact[3] = exact[0] * head_dim**-0.5, exact[3] * head_dim**-0.5
    kinds = torch.ones(2, seq, dtype=torch.long, device="cuda")
    kinds[0, [0, 700]] = 2
    kinds[0, seq - 100:] = 0
    kinds[1, 300:340] = 0
    return [t.to(dtype) for t in exact] + [kinds, window], exact + [kinds, window]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="compiles the kernels for this machine's GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("head_dim", [16, 40, 64, 128])
def test_triton_compiled_on_cuda_against_float64(dtype, head_dim):
    """The JIT-compiled kernels (no interpreter) with the launcher's default tiles, every dtype, the
    narrowest and widest BLOCK_D and an odd head_dim (40: masked columns, strides not divisible by 16)."""
    assert not triton_banded._interpreting()
    args, exact = led_like_case(head_dim, dtype)
    got = triton_longformer_attention(*args)
    assert got.dtype == dtype and bool(torch.isfinite(got).all())
    budget = 1e-5 if dtype == torch.float32 else HALF_BUDGETS[dtype]
    assert scaled_error(got, brute_force_context(*exact)) < budget
