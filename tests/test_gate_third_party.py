"""Attention written outside this project, gated through the adapters (docs/contract.md#adapters):

- HF transformers' `LEDEncoderSelfAttention` through `hf-module`, as is (float32, bfloat16, and float64 inputs
  declared `compute_dtype="float32"`: its softmax is float32) and as three plausible drop-in mistakes;
- lucidrains' `local-attention` (PyPI, pure PyTorch) through `local` and `local-varlen`, configured right and
  five ways wrong (window as the bucket, whole buckets, no look-back, query scaled twice, padding unmasked).

Each correct configuration passes; each mistake is a `mismatch`. Example counts are small and fixed (the
`thorough` hypothesis profile runs more).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import settings

from parity.gate import Support, gate

EXAMPLES = 40 if settings.get_current_profile_name().startswith("thorough") else 6
# HF's sliding-chunks trick needs a one-sided window of at least 2 (window 2 raises inside HF), a limit of
# the module, declared like any kernel's.
HF_SUPPORT = Support(min_window=4)


# ------------------------------------------------------------------------------------------ HF
def _hf():
    pytest.importorskip("transformers")
    from transformers.models.led.modeling_led import LEDEncoderSelfAttention

    return LEDEncoderSelfAttention


def _scaled_twice():
    class ScaledTwice(_hf()):
        """Scales the query again inside its local score product (forward already divided it)."""

        def _sliding_chunks_query_key_matmul(self, query, key, window_overlap):
            return super()._sliding_chunks_query_key_matmul(query / math.sqrt(self.head_dim), key, window_overlap)

    return ScaledTwice


def _globals_never_marked():
    class GlobalsNeverMarked(_hf()):
        """Takes globality from nowhere: no token is ever marked global."""

        def forward(self, hidden_states, attention_mask=None, layer_head_mask=None, is_index_masked=None,
                    is_index_global_attn=None, is_global_attn=None, output_attentions=False):
            return super().forward(hidden_states, attention_mask, layer_head_mask, is_index_masked,
                                   torch.zeros_like(is_index_global_attn), False, output_attentions)

    return GlobalsNeverMarked


def _padding_not_masked():
    class PaddingNotMasked(_hf()):
        """Reads the mask as local/global only: padding keys and rows are treated as local tokens."""

        def forward(self, hidden_states, attention_mask=None, layer_head_mask=None, is_index_masked=None,
                    is_index_global_attn=None, is_global_attn=None, output_attentions=False):
            return super().forward(hidden_states, attention_mask.clamp(min=0), layer_head_mask,
                                   torch.zeros_like(is_index_masked), is_index_global_attn, is_global_attn,
                                   output_attentions)

    return PaddingNotMasked


@pytest.mark.hf
@pytest.mark.parametrize(("dtype", "compute_dtype"), [("float32", None), ("bfloat16", None), ("float64", "float32")])
def test_hf_encoder_self_attention_passes_through_the_hf_module_adapter(dtype, compute_dtype):
    support = Support(min_window=4, compute_dtype=compute_dtype)
    result = gate(_hf(), adapter="hf-module", examples=EXAMPLES, seed=0, profile="toy", dtype=dtype, support=support)
    assert result.passed, result.message()
    assert result.cases_per_shape and result.adapter == "hf-module"


@pytest.mark.hf
def test_hf_encoder_self_attention_passes_boundary_tiles_and_backward():
    result = gate(_hf(), adapter="hf-module", examples=EXAMPLES, seed=0, profile="boundary", blocks=(16,),
                  dtype="float32", support=HF_SUPPORT, backward=True)
    assert result.passed, result.message()
    assert "grad_global_key" in result.worst


@pytest.mark.hf
def test_hf_float64_inputs_fail_the_float64_budget_without_the_compute_dtype_declaration():
    result = gate(_hf(), adapter="hf-module", examples=EXAMPLES, seed=0, profile="toy", support=HF_SUPPORT)
    assert result.verdict == "mismatch" and 1e-9 < result.error < 1e-4  # float32-sized, not a wrong layout


@pytest.mark.hf
@pytest.mark.parametrize("mistake", [_scaled_twice, _globals_never_marked, _padding_not_masked],
                         ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_misconfigured_hf_modules_are_rejected(mistake, dtype):
    result = gate(mistake(), adapter="hf-module", examples=EXAMPLES, seed=0, profile="toy", dtype=dtype,
                  support=HF_SUPPORT)
    assert result.verdict == "mismatch", result.message()


# ------------------------------------------------------------------------------------------ local-attention
def flash_style_local_attention(bucket=lambda reach: reach, exact=True, look_backward=1, use_scale=True,
                                mask=True):
    """lucidrains' LocalAttention behind FlashAttention's interface (the glue a user writes once): window_size
    (left, right) is its bucket `window_size` with one bucket looked at each way and the exact window; a
    varlen call is unpacked into a padded batch with a key mask. The keywords plant the mistakes."""
    from local_attention import LocalAttention

    def kernel(q, k, v, window_size, softmax_scale=None, cu_seqlens_q=None, cu_seqlens_k=None, max_seqlen_q=None,
               max_seqlen_k=None):
        left, right = window_size
        if left != right:
            raise ValueError(f"LocalAttention needs a symmetric window, got {window_size}")
        attention = LocalAttention(window_size=bucket(left), look_backward=look_backward, look_forward=1,
                                   exact_windowsize=exact, autopad=True,
                                   scale=softmax_scale if use_scale else None)
        if cu_seqlens_q is None:
            return attention(*(t.transpose(1, 2) for t in (q, k, v))).transpose(1, 2)
        batch, longest = len(cu_seqlens_q) - 1, max(int(max_seqlen_q), 1)
        lengths = (cu_seqlens_q[1:] - cu_seqlens_q[:-1]).long().cpu()
        keep = torch.arange(longest)[None, :] < lengths[:, None]  # (batch, longest) key mask
        rows = torch.nonzero(keep.flatten()).flatten()
        padded = [t.new_zeros(batch * longest, *t.shape[1:]).index_copy(0, rows, t)
                  .view(batch, longest, *t.shape[1:]).transpose(1, 2) for t in (q, k, v)]
        out = attention(*padded, mask=keep if mask else None)
        return out.transpose(1, 2).reshape(batch * longest, *q.shape[1:])[rows]

    return kernel


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("adapter", ["local", "local-varlen"])
def test_local_attention_passes_through_the_local_adapter(adapter, dtype):
    pytest.importorskip("local_attention")
    result = gate(flash_style_local_attention(), adapter=adapter, examples=EXAMPLES, seed=0, profile="toy",
                  dtype=dtype)
    assert result.passed, result.message()


def test_local_attention_passes_boundary_tiles_with_backward():
    pytest.importorskip("local_attention")
    result = gate(flash_style_local_attention(), adapter="local-varlen", examples=EXAMPLES, seed=0,
                  profile="boundary", blocks=(16,), backward=True)
    assert result.passed, result.message()


@pytest.mark.parametrize(("adapter", "mistake", "layout"), [
    ("local", {"bucket": lambda reach: 2 * reach}, "reaches"),  # the contract's window passed as the bucket
    ("local", {"exact": False}, None),  # whole buckets (LocalAttention's default)
    ("local", {"look_backward": 0}, "0 keys left"),  # wrong look-back
    ("local", {"use_scale": False}, None),  # its own 1/sqrt(d) on pre-scaled queries: scaled twice
    ("local-varlen", {"mask": False}, None),  # padding of the unpacked batch not masked
], ids=["window-as-bucket", "whole-buckets", "no-look-back", "scaled-twice", "padding-unmasked"])
def test_misconfigured_local_attention_is_rejected(adapter, mistake, layout):
    pytest.importorskip("local_attention")
    result = gate(flash_style_local_attention(**mistake), adapter=adapter, examples=EXAMPLES, seed=0,
                  profile="toy")
    assert result.verdict == "mismatch", result.message()
    if layout is not None:
        assert layout in (result.layout or ""), result.message()
    if "exact" in mistake:
        assert "buckets" in result.layout
