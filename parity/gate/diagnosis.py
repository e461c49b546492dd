"""Which keys a wrong row gets wrong: the kernel's attention probabilities of one row, read off by probing.

A kernel returns only the context, `sum_j p_ij value[j]`. Handed one-hot values (value[..., j, c] = 1 for
the c-th key of a chunk of head_dim keys, 0 elsewhere), its output at (b, h, i, c) is p_ij itself, so
ceil(seq / head_dim) calls read the whole row. The spec's row comes from led_ref's float64 scalable path
(`longformer_attention(..., return_probs=True)`, O(seq x (w + x)) memory), its compact columns mapped back to
key positions by `led_ref.layout.compact_columns`:

    keys = diagnose_keys(window_narrower, case, "float64", "cpu", batch=0, head=0, query=7)
    describe_keys(keys)   # ['key 5 (window edge): spec 0.1208 kernel 0.0000 (diff -1.21e-01)', ...]

Each key is named by the rule of the contract (docs/contract.md) that decides it for its row: in a local row
its kind (padding, global) first, then its place relative to the query (self, window, window edge
|i - j| = w/2, outside window); every key of a padding row is "padding row", every non-padding key of a
global row "global row". The probe holds the values the row reads: `value` for a local row, `global_value` for
a global row, both for a padding row (which must read nothing).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from parity.gate.reference import GLOBAL, LOCAL, PADDING
from parity.harness.strategies import AttentionCase
from parity.harness.tolerances import dtype_name

RULES = ("self", "window", "window edge", "global", "padding", "outside window", "global row", "padding row")
NOISE_EPS = 16  # a key differs when |kernel - spec| exceeds this many epsilons of the dtype, relative to p


def key_rule(token_kind_row: np.ndarray, window: int, query: int, key: int) -> str:
    """The contract's rule that decides key `key` for query `query` of one batch row (one of RULES).

    A padding row sees nothing ("padding row"), a global row every non-padding key ("global row"); a local
    row sees global keys and the non-padding keys within w/2, so there the key's kind and distance decide."""
    row, kind = int(token_kind_row[query]), int(token_kind_row[key])
    if row == PADDING:
        return "padding row"
    if kind == PADDING:
        return "padding"
    if row == GLOBAL:
        return "global row"
    if kind == GLOBAL:
        return "global"
    distance = abs(query - key)
    if distance == 0:
        return "self"
    if distance < window // 2:
        return "window"
    if distance == window // 2:
        return "window edge"
    return "outside window"


def _one_hot_chunk(shape: tuple[int, ...], start: int) -> np.ndarray:
    """(batch, heads, seq, d) zeros with value[..., start + c, c] = 1: output dim c then reads p of key start + c."""
    batch, heads, seq, d = shape
    probe = np.zeros(shape)
    width = np.arange(min(d, seq - start))
    probe[:, :, start + width, width] = 1.0
    return probe


def probability_row(kernel: Callable, case: AttentionCase, dtype: str, device: str, batch: int, head: int,
                    query: int, deadline: float | None = None) -> np.ndarray | None:
    """(seq,) float64: the weight the kernel's output at (batch, head, query) gives each key's value.

    The case's values are assumed already in `dtype`; None when the kernel raises, returns something other
    than a tensor of the input's shape, or `deadline` (a time.monotonic() value) passes with keys left."""
    import torch

    torch_dtype = getattr(torch, dtype_name(dtype))
    shape = case.query.shape
    kind = int(case.token_kind[batch, query])
    zeros = np.zeros(shape)
    row = np.empty(shape[2])
    for start in range(0, shape[2], shape[3]):
        if deadline is not None and start and time.monotonic() > deadline:
            return None
        probe = _one_hot_chunk(shape, start)
        probed = replace(case, value=probe if kind != GLOBAL else zeros,
                         global_value=probe if kind != LOCAL else zeros)
        try:
            with torch.no_grad():
                out = kernel(*probed.torch_args(torch_dtype, device))
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(shape):
                return None
            width = min(shape[3], shape[2] - start)
            row[start:start + width] = out[batch, head, query, :width].to("cpu", torch.float64).numpy()
        except Exception:  # noqa: BLE001 - a diagnosis never raises on the kernel's behalf
            return None
    return row


def _in_dtype(case: AttentionCase, dtype: str) -> AttentionCase:
    """The case with its values rounded to `dtype` exactly as the kernel receives them (torch_args)."""
    import torch

    tensors = case.torch_args(getattr(torch, dtype_name(dtype)))[:6]
    arrays = [t.to(torch.float64).numpy() for t in tensors]
    return replace(case, query=arrays[0], key=arrays[1], value=arrays[2], global_query=arrays[3],
                   global_key=arrays[4], global_value=arrays[5])


def spec_probability_row(case: AttentionCase, batch: int, head: int, query: int) -> np.ndarray:
    """(seq,) float64: the spec's probabilities of row (batch, head, query), from led_ref on that batch row
    and head alone (a row of the spec depends on nothing else)."""
    from led_ref.attention import longformer_attention
    from led_ref.layout import compact_columns

    arrays = [a[batch:batch + 1, head:head + 1] for a in case.arrays()]
    kinds = case.token_kind[batch:batch + 1]
    _, attentions, global_attentions = longformer_attention(*arrays, kinds, case.window, return_probs=True)
    row = np.zeros(kinds.shape[1])
    kind = int(kinds[0, query])
    if kind == LOCAL:  # compact columns: the global slots, then the window
        keys, valid = compact_columns(kinds, case.window)
        row[keys[0, query][valid[0, query]]] = attentions[0, 0, query][valid[0, query]]
    elif kind == GLOBAL:  # global_attentions[..., key, slot]: what the slot-th global token attends to
        slot = int(np.count_nonzero(kinds[0, :query] == GLOBAL))
        row[:] = global_attentions[0, 0, :, slot]
    return row


def _check_index(name: str, value, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < limit:
        raise ValueError(f"{name} must be an int in 0..{limit - 1}, got {value!r}")
    return int(value)


def diagnose_keys(kernel: Callable, case, dtype: str, device: str, batch: int, head: int, query: int,
                  top: int = 8, max_seconds: float | None = None) -> list[dict]:
    """The keys whose probability in row (batch, head, query) differs most between the spec and the kernel.

    case: an AttentionCase or a CaseRecipe (materialized here); its values are rounded to `dtype` as the gate
    does. Returns at most `top` dicts {key: position j, rule: one of RULES, spec: p_ij of led_ref in float64,
    kernel: p_ij read off the kernel, difference: kernel - spec}, largest |difference| first;
    keys within NOISE_EPS epsilons of the dtype (relative to p) are left out. Costs ceil(seq / head_dim)
    kernel calls. Never raises on the kernel's behalf: [] when the kernel fails on a probe, or when probing
    runs past `max_seconds`. Bad batch/head/query/top: ValueError naming the argument and its range.
    """
    import torch

    if hasattr(case, "materialize"):
        case = case.materialize()
    batch_size, heads, seq, _ = case.query.shape
    batch = _check_index("batch", batch, batch_size)
    head = _check_index("head", head, heads)
    query = _check_index("query", query, seq)
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ValueError(f"top must be an int >= 1, got {top!r}")
    dtype = dtype_name(dtype)
    deadline = None if max_seconds is None else time.monotonic() + max_seconds

    case = _in_dtype(case, dtype)
    kernel_p = probability_row(kernel, case, dtype, device, batch, head, query, deadline)
    if kernel_p is None:
        return []
    spec_p = spec_probability_row(case, batch, head, query)
    difference = kernel_p - spec_p
    size = np.nan_to_num(np.abs(difference), nan=np.inf)  # a NaN probability is the largest difference
    noise = NOISE_EPS * float(torch.finfo(getattr(torch, dtype)).eps) * np.maximum(np.abs(spec_p), np.abs(kernel_p))
    differing = np.flatnonzero(~(size <= noise))
    order = differing[np.lexsort((differing, -size[differing]))][:top]
    kinds = case.token_kind[batch]
    return [{"key": int(j), "rule": key_rule(kinds, case.window, query, int(j)), "spec": float(spec_p[j]),
             "kernel": float(kernel_p[j]), "difference": float(difference[j])} for j in order]


def describe_keys(keys: list[dict]) -> list[str]:
    """One line per diagnosed key: `key 7 (window edge): spec 0.1234 kernel 0.0000 (diff -1.23e-01)`."""
    return [f"key {k['key']} ({k['rule']}): spec {k['spec']:.4f} kernel {k['kernel']:.4f} "
            f"(diff {k['difference']:+.2e})" for k in keys]
