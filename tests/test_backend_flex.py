"""FlexAttention backend: against the one float64 reference, parity.gate.reference (its mask_mods: test_backend_rule).

The sweep runs eager flex (compiling costs ~20 s per shape on CPU); the compiled path is checked on one
fixed shape (`-m compile`). float64 cases are held to 1e-9, float32 to 1e-5, float16/bfloat16 to the
budgets measured in docs/kernels.md.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from led_torch.backends import rule
from led_torch.backends.flex import flex_longformer_attention, longformer_block_mask
from parity.gate.reference import reference_attention
from parity.harness.strategies import AttentionCase, attention_cases, token_kinds
from parity.harness.tolerances import strict_scaled_error as scaled_error

pytestmark = pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")

WINDOWS = (2, 4, 6, 8, 10, 12, 14, 16)
# scaled error budgets vs the float64 reference, measured on the sweeps below (docs/kernels.md): ~3x margin
HALF_BUDGETS = {torch.float16: 6e-3, torch.bfloat16: 5e-2}


# ------------------------------------------------------------------------------------------ the reference
def reference_context(query, key, value, global_query, global_key, global_value, token_kind, window):
    """parity.gate.reference: the contract in float64 on the inputs' device, differentiable."""
    return reference_attention(query, key, value, global_query, global_key, global_value, token_kind, window,
                               grad=True)


brute_force_context = reference_context  # the name tests/test_backend_triton.py imports


# ------------------------------------------------------------------------------------------ strategies
@st.composite
def free_length_cases(draw, max_seq: int = 20, windows=WINDOWS, max_head_dim: int = 5) -> AttentionCase:
    """Cases outside `attention_cases`' grid: any seq (not a multiple of the window), windows wider than seq."""
    window = draw(st.sampled_from(windows))
    seq = draw(st.integers(1, max_seq))
    batch, heads = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    head_dim = draw(st.integers(1, max_head_dim))
    kinds = draw(token_kinds(batch, seq))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal((batch, heads, seq, head_dim)) for _ in range(6)]
    arrays[0] *= head_dim**-0.5
    arrays[3] *= head_dim**-0.5
    return AttentionCase(*arrays, token_kind=kinds, window=window, seed=seed)


def contract_cases(max_chunks: int = 3, max_head_dim: int = 6):
    return attention_cases(max_batch=3, max_heads=3, max_head_dim=max_head_dim, max_chunks=max_chunks,
                           windows=WINDOWS)


# ------------------------------------------------------------------------------------------ block mask
@given(st.sampled_from(WINDOWS), st.integers(1, 3), st.integers(1, 40), st.sampled_from([2, 4, 8, 16]), st.data())
def test_block_mask_covers_every_allowed_tile(window, batch, seq, block, data):
    """Eager flex ignores block sparsity, so this is what guards the compiled path: every tile holding an
    allowed (query, key) pair is visited, and only tiles meeting the band or holding a global token are."""
    kinds = torch.as_tensor(data.draw(token_kinds(batch, seq)))
    tiles = longformer_block_mask(kinds, window, block).to_dense()[:, 0].bool()  # (batch, q tiles, kv tiles)
    allowed = rule.dense_mask(rule.longformer_local_mask(kinds, window), batch, 1, seq, seq)[:, 0]
    n = tiles.shape[-1]
    padded = torch.nn.functional.pad(allowed, (0, n * block - seq, 0, n * block - seq))
    any_allowed = padded.view(batch, n, block, n, block).any(dim=(2, 4))
    assert not (any_allowed & ~tiles).any()
    q_tile = torch.arange(seq) // block
    reach = (torch.arange(seq)[:, None] - torch.arange(seq)[None, :]).abs() <= window // 2
    band_tiles = torch.zeros(n, n, dtype=torch.bool)
    band_tiles[q_tile[:, None].expand(seq, seq)[reach], q_tile[None, :].expand(seq, seq)[reach]] = True
    global_tiles = torch.zeros(batch, n, dtype=torch.bool)
    for b in range(batch):
        global_tiles[b, q_tile[kinds[b] == 2]] = True
    assert torch.equal(tiles, band_tiles[None] | global_tiles[:, None, :])


# ------------------------------------------------------------------------------------------ flex, eager sweep
@given(contract_cases())
def test_flex_float64_matches_the_reference(case):
    args = case.torch_args(torch.float64)
    got = flex_longformer_attention(*args, compiled=False)
    assert got.dtype == torch.float64
    assert scaled_error(got, reference_context(*args)) < 1e-9, case.describe()


@given(free_length_cases())
def test_flex_any_length_and_wide_windows(case):
    args = case.torch_args(torch.float64)
    got = flex_longformer_attention(*args, compiled=False)
    assert scaled_error(got, reference_context(*args)) < 1e-9, case.describe()


@given(contract_cases(max_chunks=2), st.sampled_from([torch.float32, torch.float16, torch.bfloat16]))
def test_flex_lower_precisions_against_float64(case, dtype):
    expected = reference_context(*case.torch_args(torch.float64))
    got = flex_longformer_attention(*case.torch_args(dtype), compiled=False)
    assert got.dtype == dtype
    budget = HALF_BUDGETS.get(dtype, 1e-5)
    assert scaled_error(got, expected) < budget, case.describe()


@given(contract_cases(max_chunks=2, max_head_dim=4))
def test_flex_against_the_spec(case):
    """led_ref's numpy attention (the spec), when it exists."""
    spec = pytest.importorskip("led_ref.attention")
    got = flex_longformer_attention(*case.torch_args(torch.float64), compiled=False)
    expected = spec.longformer_attention(*case.arrays(), case.token_kind, case.window)
    assert scaled_error(got, torch.as_tensor(np.asarray(expected))) < 1e-9, case.describe()


def test_flex_padding_rows_are_exactly_zero_and_all_global_rows_work():
    rng = np.random.default_rng(1)
    kinds = torch.tensor([[2, 2, 2, 0, 2, 0], [0, 1, 0, 0, 0, 0]])
    args = [torch.as_tensor(rng.standard_normal((2, 2, 6, 4))) for _ in range(6)]
    got = flex_longformer_attention(*args, kinds, 4, compiled=False)
    assert torch.all(got[:, :, kinds[0] == 0][0] == 0) and torch.all(got[1][:, kinds[1] == 0] == 0)
    assert scaled_error(got, reference_context(*args, kinds, 4)) < 1e-12


def _grads(fn, inputs, kinds, weights, **kwargs):
    leaves = [t.clone().requires_grad_(True) for t in inputs]
    (fn(*leaves, kinds, 4, **kwargs) * weights).sum().backward()
    return [t.grad for t in leaves]


def _backward_case(device):
    rng = np.random.default_rng(2)
    kinds = torch.tensor([[1, 2, 1, 1, 1, 0, 1, 2], [1, 1, 1, 1, 1, 1, 0, 0]], device=device)
    inputs = [torch.as_tensor(rng.standard_normal((2, 2, 8, 16)), device=device) for _ in range(6)]
    return inputs, kinds, torch.as_tensor(rng.standard_normal((2, 2, 8, 16)), device=device)


def test_flex_on_cpu_runs_forward_with_grad_inputs_and_refuses_backward():
    """Flex has no CPU backward: a forward outside no_grad must still work, a backward must fail loudly."""
    inputs, kinds, weights = _backward_case("cpu")
    leaves = [t.clone().requires_grad_(True) for t in inputs]
    out = flex_longformer_attention(*leaves, kinds, 4, compiled=False)
    assert scaled_error(out.detach(), reference_context(*inputs, kinds, 4)) < 1e-9
    with pytest.raises(NotImplementedError, match="no backward on CPU"):
        (out * weights).sum().backward()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="flex backward exists only on CUDA")
@pytest.mark.parametrize("compiled", [False, True])
def test_flex_backward_matches_the_reference_on_cuda(compiled):
    """Gradients of all six inputs vs autograd through parity.gate.reference (float32 on CUDA)."""
    inputs, kinds, weights = _backward_case("cuda")
    inputs = [t.float() for t in inputs]
    ours = _grads(flex_longformer_attention, inputs, kinds, weights, compiled=compiled)
    reference = _grads(reference_context, [t.double() for t in inputs], kinds, weights.double())
    for o, r in zip(ours, reference, strict=True):
        assert scaled_error(o, r) < 1e-4


# ------------------------------------------------------------------------------------------ flex, compiled
@pytest.mark.compile
def test_flex_compiled_float32_one_shape():
    """One fixed shape through torch.compile(flex_attention): three 128-row tiles, so the block-sparse skip
    is real (query tile 2 of a row without globals in tile 0 skips key tile 0); a second token layout
    reuses the compiled graph."""
    rng = np.random.default_rng(3)
    seq = 384
    args = [torch.as_tensor(rng.standard_normal((2, 2, seq, 8)) * 2, dtype=torch.float32) for _ in range(6)]
    first = torch.ones(2, seq, dtype=torch.long)
    first[0, [0, 17]] = 2
    first[0, 200:] = 0
    first[1, 5] = 0
    second = torch.ones(2, seq, dtype=torch.long)
    second[1, 1:250:7] = 2
    second[0, 130:] = 0
    for kinds in (first, second):
        assert longformer_block_mask(kinds, 8).to_dense().sum() < 2 * 9  # some tiles are skipped
        got = flex_longformer_attention(*args, kinds, 8, compiled=True)
        assert scaled_error(got, reference_context(*args, kinds, 8)) < 1e-5


@pytest.mark.slow
@pytest.mark.compile
def test_flex_compiled_new_shape_and_window():
    """A second compile with another seq and window: with automatic dynamic shapes inductor's CPU flex kernel
    indexed out of bounds here (torch 2.13), hence dynamic=False. Also half precision compiled."""
    rng = np.random.default_rng(4)
    for seq, window, dtype, budget in ((384, 8, torch.float32, 1e-5), (200, 6, torch.float32, 1e-5),
                                       (200, 6, torch.bfloat16, HALF_BUDGETS[torch.bfloat16])):
        args = [torch.as_tensor(rng.standard_normal((2, 3, seq, 16))) for _ in range(6)]
        kinds = torch.ones(2, seq, dtype=torch.long)
        kinds[0, 1::9] = 2
        kinds[0, seq - 20:] = 0
        kinds[1, 100] = 2
        got = flex_longformer_attention(*[a.to(dtype) for a in args], kinds, window, compiled=True)
        assert scaled_error(got, reference_context(*args, kinds, window)) < budget


# ------------------------------------------------------------------------------------------ bad input
def _good_args():
    t = torch.zeros(1, 1, 4, 2)
    return [t, t, t, t, t, t, torch.ones(1, 4, dtype=torch.long), 2]


@pytest.mark.parametrize(("index", "value", "error", "words"), [
    (7, 3, ValueError, "window"),
    (7, 2.0, TypeError, "window"),
    (0, torch.zeros(1, 1, 4, 3), ValueError, "query"),
    (2, torch.zeros(1, 1, 4, 2, dtype=torch.float64), ValueError, "value"),
    (4, torch.zeros(1, 1, 4, 2).numpy(), TypeError, "global_key"),
    (6, torch.ones(1, 4), TypeError, "token_kind"),
    (6, torch.ones(1, 5, dtype=torch.long), ValueError, "token_kind"),
    (6, torch.full((1, 4), 3), ValueError, "token_kind"),
])
def test_flex_rejects_bad_input_naming_it(index, value, error, words):
    args = _good_args()
    args[index] = value
    with pytest.raises(error, match=words):
        flex_longformer_attention(*args, compiled=False)
