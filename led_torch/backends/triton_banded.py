"""Longformer attention as two hand-written Triton kernels (flash-attention style, forward only).

`_local_rows_kernel`: one program per (block of BLOCK_M query rows, batch row x head). It keeps a running
max, sum and context in float32 (online softmax) while it walks

  1. the global prefix: the row's global tokens (their positions gathered once per batch row, in order),
     BLOCK_N at a time; rows with fewer global tokens walk fewer;
  2. the band: key blocks covering [first row - w/2, last row + w/2], masking keys out of each row's
     window, padding keys, and global keys (already counted in the prefix, so each is counted once).

It writes the context of local rows and zeros on padding and global rows.

`_global_rows_kernel`: one program per (block of BLOCK_M global slots, batch row x head): gathers those
rows of `global_query`, walks every key block (non-padding keys only) with `global_key`/`global_value`,
and writes the context over the zeros the local kernel left at the global positions.

The Longformer rule comes from rule.py: the launcher's host side takes the token kinds and each row's global
slots from it (`global_positions`), and the kernels write its key rule in device code (`_band_key`,
`_global_row_key`).

Scores and softmax are float32 for float16/bfloat16/float32 inputs (float32 dots use IEEE precision, not
TF32); probabilities are cast to the value dtype before the value dot, as flash attention does. Runs on
CUDA, or on CPU tensors under the Triton interpreter (TRITON_INTERPRET=1 set before triton is imported;
slow, for tests). No backward: calling backward through it raises.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .rule import LOCAL, PADDING, check_kernel_inputs, global_slots

SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
# The largest head_dim the kernels take: the AOT compile test checks BLOCK_D up to 128 for registers, spills and
# shared memory (docs/kernels.md); wider heads would need other tiles, so they are an unsupported shape here
# (`attn_implementation="auto"` then falls back to the next backend).
MAX_HEAD_DIM = 128


def default_blocks(dtype: torch.dtype, block_d: int) -> tuple[int, int]:
    """(block_m, block_n) used when the caller gives none. float32 dots run on the CUDA cores (IEEE precision,
    no tensor cores) with operands and accumulator in registers: 64 x 32 tiles spilled up to 1.4 kB per
    thread at head_dim 64, so float32 takes 32-row tiles (and 16-key steps at head_dim 128). Half precision
    runs on the tensor cores with 64 x 32. Measured by tests/test_triton_compile.py (docs/kernels.md)."""
    if dtype == torch.float32:
        return 32, (16 if block_d >= 128 else 32)
    return 64, 32


# Token kinds (rule.py) as compile-time constants: a @triton.jit function may read a module global only when it
# is a tl.constexpr (the interpreter accepts plain ints, the compiler refuses them).
_PADDING: tl.constexpr = tl.constexpr(PADDING)
_LOCAL: tl.constexpr = tl.constexpr(LOCAL)


# The key rule of rule.py in device code (a kernel cannot call torch): a local row's band keys
# (`rule.longformer_band_mask`) and a global row's keys (`rule.longformer_global_mask`).
@triton.jit
def _band_key(offs_m, offs_n, kind_key, half):
    """(BLOCK_M, BLOCK_N): key offs_n is within `half` of row offs_m and an ordinary (LOCAL) token."""
    dist = offs_m[:, None] - offs_n[None, :]
    return (dist <= half) & (dist >= -half) & (kind_key == _LOCAL)[None, :]


@triton.jit
def _global_row_key(kind_key):
    """(BLOCK_N,): key may be attended by a global row (it is not padding)."""
    return kind_key != _PADDING


@triton.jit
def _dot(a, b, PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    """a @ b accumulated in float32; UPCAST feeds float32 operands (the interpreter's bfloat16 dot is wrong)."""
    if UPCAST:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
    return tl.dot(a, b, input_precision=PRECISION)


@triton.jit
def _attend(acc, m_i, l_i, q, k, v, allowed, PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    """One online-softmax step: fold keys k/values v (BLOCK_N, BLOCK_D) into the running state of q's rows."""
    s = _dot(q, tl.trans(k), PRECISION, UPCAST)
    s = tl.where(allowed, s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, 1))
    # A row with nothing allowed so far keeps max -inf; shift by 0 there so no -inf - -inf appears.
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
    alpha = tl.exp(m_i - m_safe)
    p = tl.exp(s - m_safe[:, None])
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = acc * alpha[:, None] + _dot(p.to(v.dtype), v, PRECISION, UPCAST)
    return acc, m_new, l_i


@triton.jit
def _local_rows_kernel(
    Q, K, V, KIND, GPOS, NGLOB, OUT,
    stride_b, stride_h, stride_s,
    heads, seq, head_dim, half, max_glob,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, PRECISION: tl.constexpr,
    UPCAST: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // heads
    h = pid_bh % heads
    base = b.to(tl.int64) * stride_b + h.to(tl.int64) * stride_h
    start = pid_m * BLOCK_M
    offs_m = start + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    row_ok = offs_m < seq
    d_ok = offs_d < head_dim
    q = tl.load(Q + base + offs_m[:, None] * stride_s + offs_d[None, :], mask=row_ok[:, None] & d_ok[None, :],
                other=0.0)
    kind_row = tl.load(KIND + b * seq + offs_m, mask=row_ok, other=_PADDING)

    acc = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)

    # 1. Global prefix: every global token of this batch row, in position order.
    n_glob = tl.load(NGLOB + b)
    for g0 in range(0, n_glob, BLOCK_N):
        offs_g = g0 + tl.arange(0, BLOCK_N)
        g_ok = offs_g < n_glob
        pos = tl.load(GPOS + b * max_glob + offs_g, mask=g_ok, other=0)
        kv_mask = g_ok[:, None] & d_ok[None, :]
        k = tl.load(K + base + pos[:, None] * stride_s + offs_d[None, :], mask=kv_mask, other=0.0)
        v = tl.load(V + base + pos[:, None] * stride_s + offs_d[None, :], mask=kv_mask, other=0.0)
        allowed = row_ok[:, None] & g_ok[None, :]
        acc, m_i, l_i = _attend(acc, m_i, l_i, q, k, v, allowed, PRECISION, UPCAST)

    # 2. Band: ordinary (local) keys within `half` of the row; padding and global keys are masked.
    lo = tl.maximum(start - half, 0)
    hi = tl.minimum(start + BLOCK_M + half, seq)
    for n0 in range(lo, hi, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        n_ok = offs_n < hi
        kind_key = tl.load(KIND + b * seq + offs_n, mask=n_ok, other=_PADDING)
        kv_mask = n_ok[:, None] & d_ok[None, :]
        k = tl.load(K + base + offs_n[:, None] * stride_s + offs_d[None, :], mask=kv_mask, other=0.0)
        v = tl.load(V + base + offs_n[:, None] * stride_s + offs_d[None, :], mask=kv_mask, other=0.0)
        allowed = _band_key(offs_m, offs_n, kind_key, half) & row_ok[:, None]
        acc, m_i, l_i = _attend(acc, m_i, l_i, q, k, v, allowed, PRECISION, UPCAST)

    out = acc / tl.where(l_i > 0, l_i, 1.0)[:, None]
    out = tl.where((kind_row == _LOCAL)[:, None], out, 0.0)
    tl.store(OUT + base + offs_m[:, None] * stride_s + offs_d[None, :], out.to(OUT.dtype.element_ty),
             mask=row_ok[:, None] & d_ok[None, :])


@triton.jit
def _global_rows_kernel(
    GQ, GK, GV, KIND, GPOS, NGLOB, OUT,
    stride_b, stride_h, stride_s,
    heads, seq, head_dim, max_glob,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, PRECISION: tl.constexpr,
    UPCAST: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // heads
    h = pid_bh % heads
    base = b.to(tl.int64) * stride_b + h.to(tl.int64) * stride_h
    n_glob = tl.load(NGLOB + b)
    offs_slot = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    slot_ok = offs_slot < n_glob
    d_ok = offs_d < head_dim
    pos = tl.load(GPOS + b * max_glob + offs_slot, mask=slot_ok, other=0)
    q = tl.load(GQ + base + pos[:, None] * stride_s + offs_d[None, :], mask=slot_ok[:, None] & d_ok[None, :],
                other=0.0)

    acc = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    for n0 in range(0, seq, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        n_ok = offs_n < seq
        kind_key = tl.load(KIND + b * seq + offs_n, mask=n_ok, other=_PADDING)
        kv_mask = n_ok[:, None] & d_ok[None, :]
        k = tl.load(GK + base + offs_n[:, None] * stride_s + offs_d[None, :], mask=kv_mask, other=0.0)
        v = tl.load(GV + base + offs_n[:, None] * stride_s + offs_d[None, :], mask=kv_mask, other=0.0)
        allowed = slot_ok[:, None] & _global_row_key(kind_key)[None, :]
        acc, m_i, l_i = _attend(acc, m_i, l_i, q, k, v, allowed, PRECISION, UPCAST)

    out = acc / tl.where(l_i > 0, l_i, 1.0)[:, None]
    tl.store(OUT + base + pos[:, None] * stride_s + offs_d[None, :], out.to(OUT.dtype.element_ty),
             mask=slot_ok[:, None] & d_ok[None, :])


def _interpreting() -> bool:
    """Whether the kernels were built for Triton's CPU interpreter (decided when this module was imported)."""
    return type(_local_rows_kernel).__name__ == "InterpretedFunction"


def global_positions(token_kind: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's global token positions in order -> positions (batch, max(1, x)) int32 (unused slots 0),
    counts (batch,) int32; x = the most global tokens in any row (one dummy slot when there are none, so the
    kernels always get a valid pointer)."""
    positions, valid = global_slots(token_kind)
    if positions.shape[1] == 0:
        positions = torch.zeros(token_kind.shape[0], 1, dtype=positions.dtype, device=token_kind.device)
    return positions.to(torch.int32).contiguous(), valid.sum(dim=1).to(torch.int32).contiguous()


def unsupported_reason(query: torch.Tensor) -> str | None:
    """Why these kernels cannot serve a call with this query (batch, heads, seq, head_dim), or None."""
    if query.dtype not in SUPPORTED_DTYPES:
        return f"dtype {query.dtype} is not one of float16, bfloat16, float32"
    if query.shape[-1] > MAX_HEAD_DIM:
        return f"head_dim {query.shape[-1]} is above {MAX_HEAD_DIM}"
    if query.device.type != "cuda" and not _interpreting():
        return f"device {query.device} is not CUDA (and the Triton interpreter is off)"
    return None


def _check_triton_inputs(query: torch.Tensor, block_m: int, block_n: int) -> None:
    if query.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"query dtype must be one of float16, bfloat16, float32 for the triton backend, "
                        f"got {query.dtype}")
    if query.device.type != "cuda" and not _interpreting():
        raise ValueError(f"query must be on a CUDA device for the triton backend (to run on CPU, set "
                         f"TRITON_INTERPRET=1 before importing {__name__}), got device {query.device}")
    if query.shape[-1] > MAX_HEAD_DIM:
        raise ValueError(f"query head_dim must be <= {MAX_HEAD_DIM} for the triton backend, got {query.shape[-1]}")
    for name, block in (("block_m", block_m), ("block_n", block_n)):
        if block is None:
            continue
        if isinstance(block, bool) or not isinstance(block, int) or block < 16 or block & (block - 1):
            raise ValueError(f"{name} must be a power of two >= 16, got {block!r}")


def launch_config(dtype: torch.dtype, head_dim: int, block_m: int | None = None,
                  block_n: int | None = None) -> dict:
    """The compile-time parameters of both kernels for one call: their constexprs (BLOCK_M, BLOCK_N, BLOCK_D,
    PRECISION, UPCAST) and compile options (num_warps, num_stages, enable_fp_fusion), as keyword arguments of
    the launch. The launcher and the ahead-of-time compile test (led_torch/backends/triton_aot.py) both take
    them from here, so the test compiles what a launch compiles. block_m / block_n None: the defaults."""
    block_d = max(16, triton.next_power_of_2(head_dim))
    return dict(
        BLOCK_M=block_m or default_blocks(dtype, block_d)[0], BLOCK_N=block_n or default_blocks(dtype, block_d)[1],
        BLOCK_D=block_d,
        PRECISION="ieee" if dtype == torch.float32 else "tf32",  # float32: no TF32 rounding of the scores
        UPCAST=_interpreting() and dtype == torch.bfloat16,
        # 8 warps share the register-resident tiles of float32 and of 128-wide heads (no spills, see above).
        num_warps=8 if dtype == torch.float32 or block_d >= 128 else 4,
        # Explicit, so that no TRITON_* environment default changes the code (fp fusion = FMA contraction).
        num_stages=2, enable_fp_fusion=True,
    )


def launch_plan(query, key, value, global_query, global_key, global_value, token_kind, window,
                block_m: int | None = None, block_n: int | None = None):
    """Everything one call launches, without launching: (out, [(kernel, grid, args, kwargs), ...]).

    The global-rows kernel is planned only when some row has a global token. Inputs as
    `triton_longformer_attention` (already checked); tensors on any device, so the AOT compile test can
    plan on CPU tensors and compile exactly the argument types a CUDA launch passes.
    """
    batch, heads, seq, head_dim = query.shape
    tensors = [t.contiguous() for t in (query, key, value, global_query, global_key, global_value)]
    kind = token_kind.to(device=query.device, dtype=torch.int32).contiguous()
    positions, counts = global_positions(kind)
    out = torch.empty_like(tensors[0])
    strides = tensors[0].stride()[:3]  # every tensor is contiguous with query's shape
    meta = launch_config(query.dtype, head_dim, block_m, block_n)
    block_m = meta["BLOCK_M"]
    grid = (triton.cdiv(seq, block_m), batch * heads)
    launches = [(_local_rows_kernel, grid, (*tensors[:3], kind, positions, counts, out, *strides,
                                            heads, seq, head_dim, window // 2, positions.shape[1]), meta)]
    most_globals = int(counts.max())
    if most_globals:
        grid = (triton.cdiv(most_globals, block_m), batch * heads)
        launches.append((_global_rows_kernel, grid, (*tensors[3:], kind, positions, counts, out, *strides,
                                                     heads, seq, head_dim, positions.shape[1]), meta))
    return out, launches


def _launch(query, key, value, global_query, global_key, global_value, token_kind, window, block_m, block_n):
    out, launches = launch_plan(query, key, value, global_query, global_key, global_value, token_kind, window,
                                block_m, block_n)
    for kernel, grid, args, kwargs in launches:
        kernel[grid](*args, **kwargs)
    return out


class _ForwardOnly(torch.autograd.Function):
    """Carries the kernels' result into autograd so that a backward through it fails loudly."""

    @staticmethod
    def forward(ctx, query, key, value, global_query, global_key, global_value, token_kind, window, bm, bn):
        return _launch(query, key, value, global_query, global_key, global_value, token_kind, window, bm, bn)

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError("the triton attention backend is forward-only; train with the 'flex' or "
                                  "'banded' backend")


def triton_longformer_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    global_query: torch.Tensor,
    global_key: torch.Tensor,
    global_value: torch.Tensor,
    token_kind: torch.Tensor,
    window: int,
    block_m: int | None = None,
    block_n: int | None = None,
) -> torch.Tensor:
    """Longformer attention context (batch, heads, seq, head_dim), zeros on padding rows (kernel contract).

    All six tensors (batch, heads, seq, head_dim) float16/bfloat16/float32 on CUDA (CPU under
    TRITON_INTERPRET=1), queries pre-scaled by head_dim**-0.5; non-contiguous inputs are copied. token_kind
    (batch, seq) of rule.PADDING / LOCAL / GLOBAL; window even >= 2 (any seq, also seq < window);
    head_dim <= MAX_HEAD_DIM (128).
    block_m / block_n: query rows / keys per program step (powers of two >= 16; None: `default_blocks`).
    Forward only.
    """
    check_kernel_inputs(query, key, value, global_query, global_key, global_value, token_kind, window)
    _check_triton_inputs(query, block_m, block_n)
    if query.numel() == 0:
        return torch.zeros_like(query)
    return _ForwardOnly.apply(query, key, value, global_query, global_key, global_value, token_kind, window,
                              block_m, block_n)
