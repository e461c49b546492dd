"""FLOPs of the LED encoder and the measured matmul rate they are held against (`python -m parity bench`).

The count is the *useful* work of one encoder forward, the same for every implementation (an implementation
that computes a wider band than the window, like HF's 2x chunk overlap, does more work than it is credited
with). Multiply-adds count 2 FLOPs; layer norms, softmax, GELU and masking are not counted. Per layer, for
a batch of B rows padded to n tokens, d = d_model, h = heads, f = ffn dim, w = the layer's window, x = global
tokens:

    projections   2·n·d²·4 + 2·x·d²        local query/key/value + output projection, global query of the x globals
    band          4·n·d·(w + 1 + x)        scores q·kᵀ and context p·v over w + 1 window keys and x global keys
    global rows   the cheaper of two exact ways (x > 0):
                  2·n·d²·2 + 4·x·n·d       project every token's global key and value, then x queries against them
                  4·x·h·n·d + 4·x·d²       each global query pulled back through key_global per head, scored
                                           against and mixing the n hidden states, pushed through value_global
                                           (led_torch.backends.rule.global_rows_from_states)
    FFN           4·n·d·f                  fc1 and fc2

    encoder_flops = B · Σ_layers (projections + band + global rows + FFN)

Example (LED-base: d 768, h 12, f 3072, w 1024, 6 layers; n 4096, x 1): per layer 19.3 (projections) + 12.9
(band) + 0.15 (global rows, the second way) + 38.7 (FFN) GFLOP; 6 layers = 0.426 TFLOP. (Before the second way
was known here the count charged the two global projections, 0.483 TFLOP: an implementation that skips them
must not be credited with them.)
"""

from __future__ import annotations

import time

from led_ref.io.config import LEDConfig


def layer_flops(n: int, d: int, ffn: int, window: int, x: int, heads: int = 1) -> dict[str, int]:
    """FLOPs of one encoder layer on one row of n tokens, by part (projections, band, global_rows, ffn)."""
    projections = 2 * n * d * d * 4
    global_rows = 0
    if x:
        projections += 2 * x * d * d
        global_rows = min(2 * n * d * d * 2 + 4 * x * n * d, 4 * x * heads * n * d + 4 * x * d * d)
    return {
        "projections": projections,
        "band": 4 * n * d * (window + 1 + x),
        "global_rows": global_rows,
        "ffn": 4 * n * d * ffn,
    }


def encoder_flops_by_part(config: LEDConfig, padded_seq: int, global_tokens: int, batch: int = 1) -> dict[str, int]:
    """Encoder FLOPs summed over the layers (each with its own window), by part."""
    total = {"projections": 0, "band": 0, "global_rows": 0, "ffn": 0}
    for window in config.layer_windows:
        for part, value in layer_flops(padded_seq, config.d_model, config.encoder_ffn_dim, window,
                                       global_tokens, config.encoder_attention_heads).items():
            total[part] += batch * value
    return total


def encoder_flops(config: LEDConfig, padded_seq: int, global_tokens: int, batch: int = 1) -> int:
    """Useful FLOPs of one encoder forward (see the module docstring for the formula)."""
    return sum(encoder_flops_by_part(config, padded_seq, global_tokens, batch).values())


def matmul_ceiling(device: str = "cpu", dtype: str = "float32", size: int | None = None, repeats: int = 5) -> dict:
    """Best measured rate of a square `size` x `size` matmul on `device` in `dtype` (GFLOP/s).

    The reference rate for "achieved GFLOP/s": the same dtype on the same device, the best of `repeats`
    timed runs after one warm-up. On CPU both GEMM libraries torch can call are timed (`torch.matmul`, i.e.
    MKL, and oneDNN, which led_torch's linears use) and the faster one is the ceiling, so no implementation
    is credited with beating the machine. -> {"gflops", "size", "seconds", "dtype", "device", "kernel"}.
    """
    import torch

    from led_torch.linear import linear, onednn_linear_enabled

    if size is None:
        size = 2048 if device == "cpu" else 8192
    if size < 1 or repeats < 1:
        raise ValueError(f"size and repeats must be >= 1, got size={size}, repeats={repeats}")
    torch_dtype = getattr(torch, dtype)
    generator = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device=device, dtype=torch_dtype)
    b = torch.randn(size, size, generator=generator).to(device=device, dtype=torch_dtype)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    kernels = {"torch.matmul": lambda: torch.matmul(a, b)}
    if device == "cpu" and onednn_linear_enabled():
        kernels["oneDNN linear"] = lambda: linear(a, b, None)  # a @ b.T: the same 2 * size^3 FLOPs
    best, best_kernel = float("inf"), None
    with torch.no_grad():
        for name, kernel in kernels.items():
            kernel()
            sync()
            for _ in range(repeats):
                start = time.perf_counter()
                kernel()
                sync()
                elapsed = time.perf_counter() - start
                if elapsed < best:
                    best, best_kernel = elapsed, name
    return {"gflops": 2 * size**3 / best / 1e9, "size": size, "seconds": best, "dtype": dtype, "device": device,
            "kernel": best_kernel}
