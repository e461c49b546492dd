"""`Linear`: `nn.Linear` (same parameters, same names) whose CPU inference runs on oneDNN's matmul.

Why: on CPU, `F.linear` goes to MKL's sgemm, which on this project's machines (AMD Zen 4, 2 cores) runs a
product with few rows on one thread at ~6-9 GB/s of weight traffic. A decode step is exactly that case: 4
beam rows times every decoder weight. oneDNN's matmul (`torch.ops.mkldnn._linear_pointwise`, the op torch's
own inductor lowers CPU linears to) threads it: a decode step's projections take about half the time, and
encoder-sized products are mostly faster too (timings in docs/performance.md).

The arithmetic is the same float32 (or bfloat16) dot product in a different summation order, so results
differ from `F.linear` in the last bits only (tests/test_torch_linear.py). Whenever oneDNN is not the right
tool the layer calls `F.linear`: small products (oneDNN costs ~15 us more per call, which a tiny model's
every matmul would pay), autograd is recording (training, gradient checks), CPU autocast, float64/float16, CUDA,
builds without oneDNN, inside `torch.compile` (inductor picks its own GEMM there; its oneDNN lowering wants
frozen weights), or `set_onednn_linear(False)` (for comparisons and profiling).
"""

from __future__ import annotations

import contextlib
import weakref

import torch
import torch.nn.functional as F
from torch import nn

from .activations import activation as activation_named
from .cache_keys import tensor_key

_AVAILABLE = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _bf16_supported() -> bool:
    try:  # oneDNN's bfloat16 kernels need AVX-512 (or AMX) on x86; elsewhere bfloat16 stays on F.linear
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


_DTYPES = (torch.float32, torch.bfloat16) if _AVAILABLE and _bf16_supported() else (torch.float32,)
_enabled = True
# oneDNN pays ~15 us per call more than MKL (measured on the project's machine): it takes a product only when
# the weight has at least 512 x 512 elements or the product at least 2^26 multiply-adds (e.g. 2,048 x 256 x 128);
# below both, MKL was as fast or faster at every row count tried.
_MIN_WEIGHT = 1 << 18
_MIN_WORK = 1 << 26


# Few-row products (a decode step: one row per beam) get their weight pre-packed in oneDNN's blocked layout
# (`_reorder_linear_weight`, what inductor's freezing pass does): with a plain weight oneDNN repacks it on every
# call, which a few-row product pays in full (a decode step's timings in docs/performance.md). Products of
# 1,024-4,096 rows gain nothing from it, so only products of 2 (float32) or 1 (bfloat16) to _PACK_MAX_ROWS rows
# use (and create) the packed copy: an encoder never doubles its weights. Results are bitwise those of the plain
# weight for those row counts (a float32 single row is not: oneDNN takes another kernel for it, so it stays
# plain). One packed copy per owner (a Linear, or the decoder attention for its stacked
# q/k/v weight) in a weak map (not in the module: state dicts, deepcopy and pickling never see the opaque
# tensor), rebuilt when the weight's storage or version counter moves.
_reorder = getattr(torch.ops.mkldnn, "_reorder_linear_weight", None) if _AVAILABLE else None
_PACKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_PACK_ROWS = 4  # the row count oneDNN is told to expect (a hint; any count works)
_PACK_MAX_ROWS = 64
_PACK_MIN_ROWS = {torch.float32: 2, torch.bfloat16: 1}


def _packed_weight(owner: nn.Module, weight: torch.Tensor) -> torch.Tensor:
    """`weight` (owned by `owner`) in oneDNN's blocked layout (cached per owner), or the weight itself without it."""
    key = tensor_key(weight)
    if _reorder is None or key is None:
        return weight  # the plain weight gives the same results, repacked by oneDNN on each call
    cached = _PACKED.get(owner)
    if cached is None or cached[0] != key:
        cached = (key, _reorder(weight.detach(), _PACK_ROWS))
        _PACKED[owner] = cached
    return cached[1]


def onednn_linear_enabled() -> bool:
    """Whether CPU inference linears go through oneDNN (available in this build and not switched off)."""
    return _AVAILABLE and _enabled


@contextlib.contextmanager
def set_onednn_linear(enabled: bool):
    """Switch the oneDNN path on or off inside a `with` block (the previous setting comes back after)."""
    global _enabled
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be a bool, got {enabled!r}")
    previous, _enabled = _enabled, enabled
    try:
        yield
    finally:
        _enabled = previous


# Activations oneDNN applies to the product as a post-op where that is bitwise what torch's own function gives
# (tests/test_torch_linear.py): float32 products of 2 rows or more. The feed-forward block's separate pass over
# its (rows, ffn) activation is saved (LED's activation is "gelu", the erf form).
# Not fused: a float32 single row (oneDNN's one-row kernel rounds its erf differently in the last bits) and
# bfloat16 (the post-op works on the float32 product before rounding: closer to exact, but not torch's bits).
_POST_OPS = {"gelu": ("gelu", [], "none")}
_POST_OP_DTYPES = (torch.float32,)
_POST_OP_MIN_ROWS = 2


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
           packed_for: nn.Module | None = None, activation: str | None = None) -> torch.Tensor:
    """act(x @ weight.T + bias), through oneDNN for CPU float32/bfloat16 inference, `F.linear` otherwise. With
    `packed_for` (the module that owns `weight`) a few-row product reads a pre-packed copy of the weight.
    `activation`: None, or an activation name of led_torch.activations applied to the result (on the oneDNN path
    float32 "gelu" of 2 rows or more runs fused into the product, bit for bit the same)."""
    act = None if activation is None else activation_named(activation)
    if _onednn_takes(x, weight, bias):
        rows = x.numel() // x.shape[-1]
        if packed_for is not None and _PACK_MIN_ROWS[x.dtype] <= rows <= _PACK_MAX_ROWS:
            weight = _packed_weight(packed_for, weight)
        fused = activation in _POST_OPS and x.dtype in _POST_OP_DTYPES and rows >= _POST_OP_MIN_ROWS
        post_op = _POST_OPS[activation] if fused else ("none", [], "")
        # oneDNN refuses strided activations; a decode step's (rows, d) slices are small to copy
        out = torch.ops.mkldnn._linear_pointwise(x.contiguous(), weight, bias, *post_op)
        return out if act is None or fused else act(out)
    out = F.linear(x, weight, bias)
    return out if act is None else act(out)


def _onednn_takes(x, weight, bias) -> bool:
    """The cases oneDNN is asked: switched on, CPU, one supported dtype throughout, shapes that fit (any other
    goes to F.linear, whose error names it), a contiguous weight, a product big enough, no autograd recording,
    no CPU autocast, not compiling."""
    if not (_enabled and _AVAILABLE and x.device.type == "cpu" and x.dtype in _DTYPES):
        return False
    if weight.dtype != x.dtype or not weight.is_contiguous() or x.numel() == 0 or x.shape[-1] != weight.shape[-1]:
        return False
    if weight.numel() < _MIN_WEIGHT and x.numel() // x.shape[-1] * weight.numel() < _MIN_WORK:
        return False  # a small product: oneDNN's ~15 us per call costs more than MKL's single thread
    if bias is not None and (bias.dtype != x.dtype or not bias.is_contiguous() or bias.shape != weight.shape[:1]):
        return False
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                    or (bias is not None and bias.requires_grad)):
        return False
    if torch.is_autocast_enabled("cpu"):
        return False  # autocast casts F.linear's operands; the oneDNN op would bypass it
    return not torch.compiler.is_compiling()


class Linear(nn.Linear):
    """`nn.Linear` with `linear` above as its forward; a drop-in replacement (state dict, init, repr)."""

    def forward(self, x: torch.Tensor, activation: str | None = None) -> torch.Tensor:
        """act(x @ weight.T + bias); `activation` as in `linear` (None: the plain product, as nn.Linear)."""
        return linear(x, self.weight, self.bias, packed_for=self, activation=activation)
