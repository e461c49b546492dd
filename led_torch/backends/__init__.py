"""Registry of encoder attention backends; every one meets the kernel contract (docs/contract.md).

`get_backend(name)` returns the function. "banded" is always there; "flex" and "triton" live in their own
modules and are imported only when asked for, so a machine without them (or without a GPU) still works.
All of them take the Longformer rule (token kinds, key rule, global slots, global-row pass, rows by kind)
from `rule.py`.

`attend(name, ...)` is what a layer calls. For `attn_implementation="auto"` it walks `auto_candidates`
(CUDA: triton, flex, banded) and uses the first backend that can serve the call: a backend is skipped when it
cannot be imported, when it does not support the call's dtype or shape (`unsupported_reason`), or when it
raised on an earlier call of the same kind (compile error, out of resources, ...); each such skip warns once
(`RuntimeWarning`, naming the backend and the reason). banded serves everything, and its errors propagate.
In strict mode (`strict=True`, set on a model with `set_attn_implementation("auto", strict=True)`, or
$LED_TORCH_STRICT_ATTENTION=1) the first skip raises `StrictFallbackError` instead. An explicitly named
backend never falls back: a call it cannot serve raises. `USAGE` counts which backend served each call.
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Callable, Sequence

import torch

from .banded import banded_longformer_attention

BACKENDS = ("banded", "flex", "triton")
_LAZY = {
    "flex": ("led_torch.backends.flex", "flex_longformer_attention"),
    "triton": ("led_torch.backends.triton_banded", "triton_longformer_attention"),
}


class BackendUnavailable(RuntimeError):
    """An attention backend cannot be loaded here; the message says why."""


def get_backend(name: str) -> Callable:
    """The attention function registered as `name` ("banded", "flex" or "triton")."""
    if name == "banded":
        return banded_longformer_attention
    if name not in _LAZY:
        raise ValueError(f"attention backend must be one of {', '.join(BACKENDS)}; got {name!r}")
    module_name, attr = _LAZY[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        reason = f"cannot import {module_name} ({err})"
        raise BackendUnavailable(f"attention backend {name!r} is unavailable: {reason}") from err
    if not hasattr(module, attr):
        raise BackendUnavailable(f"attention backend {name!r} is unavailable: {module_name} has no {attr}")
    return getattr(module, attr)


def auto_candidates(device_type: str, need_probs: bool = False, need_grad: bool = False) -> list[str]:
    """Backend priority, stated once: the backends `auto` tries, in order, for a call on `device_type` (and
    `available_backends` lists). Only banded returns probabilities; triton is forward-only; triton and flex
    are for CUDA, and on CPU banded is the measured fastest (docs/torch.md). Support for the call's dtype and
    shape is checked per call by `attend` (with a warning), not here."""
    if need_probs or device_type != "cuda":
        return ["banded"]
    return ["flex", "banded"] if need_grad else ["triton", "flex", "banded"]


def auto_is_banded_only(device_type: str) -> bool:
    """Whether `auto` on `device_type` (no probabilities, no gradient) always takes the banded backend."""
    return auto_candidates(device_type) == ["banded"]


def _importable(name: str) -> bool:
    try:
        get_backend(name)
    except BackendUnavailable:
        return False
    return True


def available_backends(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                       need_probs: bool = False, need_grad: bool = False) -> list[str]:
    """Backends usable for (device, dtype), best first: what `led-parity check` and `bench` compare. The order
    of `auto_candidates`, less the backends that cannot be imported or do not take `dtype` (triton has no
    float64). (A model's "auto" walks `auto_candidates` call by call, falling back; see `attend`.)"""
    names = auto_candidates(torch.device(device).type, need_probs, need_grad)
    return [name for name in names if name == names[-1] or (_importable(name) and _takes_dtype(name, dtype))]


def _takes_dtype(name: str, dtype: torch.dtype) -> bool:
    """Whether importable backend `name` computes in `dtype` at all (shapes are checked per call)."""
    if name == "triton":
        from .triton_banded import SUPPORTED_DTYPES

        return dtype in SUPPORTED_DTYPES
    return True


def resolve_backend(name: str | None, device, dtype, need_probs: bool, need_grad: bool = False) -> str:
    """The backend name for `attn_implementation=name` ("auto"/None: the first choice, before any per-call
    fallback of `attend`). A named backend is never swapped for another: one that cannot serve the call raises
    ValueError saying why."""
    if name in (None, "auto"):
        return available_backends(device, dtype, need_probs, need_grad)[0]
    if name not in BACKENDS:
        raise ValueError(f"attn_implementation must be one of auto, {', '.join(BACKENDS)}; got {name!r}")
    if need_probs and name != "banded":
        raise ValueError(f"attn_implementation={name!r} cannot return attention probabilities or apply attention "
                         "dropout (only 'banded' can); use attn_implementation='banded' or 'auto'")
    return name


STRICT_ENV = "LED_TORCH_STRICT_ATTENTION"


def strict_from_env() -> bool:
    """Whether $LED_TORCH_STRICT_ATTENTION asks every `auto` model to raise instead of falling back."""
    return os.environ.get(STRICT_ENV, "").strip().lower() in ("1", "true", "yes", "on")


class BackendUsage:
    """How many encoder attention calls each backend served, by (backend, device type, dtype): what a GPU run
    reports so that a fallback cannot pass unnoticed."""

    def __init__(self):
        self.counts: dict[tuple[str, str, str], int] = {}

    def record(self, name: str, query: torch.Tensor) -> None:
        key = (name, query.device.type, str(query.dtype).removeprefix("torch."))
        self.counts[key] = self.counts.get(key, 0) + 1

    def snapshot(self) -> dict[str, int]:
        """{"backend:device:dtype": calls}, e.g. {"triton:cuda:bfloat16": 12}."""
        return {":".join(key): n for key, n in sorted(self.counts.items())}

    def clear(self) -> None:
        self.counts.clear()


USAGE = BackendUsage()


def unsupported_reason(name: str, query: torch.Tensor) -> str | None:
    """Why backend `name` cannot serve a call with this query (batch, heads, seq, head_dim), or None. Raises
    BackendUnavailable when the backend cannot be imported."""
    if name == "triton":
        get_backend(name)
        from .triton_banded import unsupported_reason as triton_reason

        return triton_reason(query)
    if name == "flex":
        get_backend(name)
        if query.dtype == torch.float64:
            return "flex cannot compile float64 (eager flex builds dense (seq, seq) scores)"
    return None


class _FallbackLog:
    """What `auto` learnt this process: calls a backend failed on (not retried) and warnings already given."""

    def __init__(self):
        self.failed: dict[tuple, str] = {}
        self.warned: set[tuple[str, str]] = set()

    def warn_once(self, name: str, reason: str, next_name: str) -> None:
        if (name, reason) not in self.warned:
            self.warned.add((name, reason))
            warnings.warn(f"attn_implementation='auto': the {name} attention backend cannot serve this call "
                          f"({reason}); falling back to {next_name}", RuntimeWarning, stacklevel=4)


FALLBACK_LOG = _FallbackLog()


def _call_kind(name: str, query: torch.Tensor, window: int) -> tuple:
    """Calls that compile to the same kernels: a failure on one is expected on all of them."""
    return name, query.device.type, query.dtype, query.shape[-1], window


def _reason(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    # A Triton CompilationError is "at L:C:", the source, then the cause: the first and last lines say it.
    detail = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}" if lines else ""
    return f"{type(err).__name__}: {detail[:300]}"


def _call(name: str, args: tuple, mask_cache) -> torch.Tensor:
    """Backend `name` on the kernel contract's arguments; the banded function also takes the forward's masks
    (any other function registered or swapped in gets the contract's arguments alone)."""
    fn = get_backend(name)
    if fn is banded_longformer_attention and mask_cache is not None:
        return fn(*args, mask_cache=mask_cache)
    return fn(*args)


class StrictFallbackError(RuntimeError):
    """`auto` in strict mode met a backend that could not serve a call; the message names it and why."""


def attend_with_fallback(candidates: Sequence[str], query, key, value, global_query, global_key, global_value,
                         token_kind, window: int, log: _FallbackLog | None = None, strict: bool = False,
                         mask_cache=None) -> torch.Tensor:
    """The context from the first of `candidates` that serves the call (the last one must serve it: its
    errors propagate). Skips and failures of the others warn once each; failed call kinds are not retried.
    `strict`: the first backend that cannot serve the call raises StrictFallbackError instead. `mask_cache`:
    the forward's `MaskCache`, for the banded backend."""
    log = FALLBACK_LOG if log is None else log
    args = (query, key, value, global_query, global_key, global_value, token_kind, window)
    for i, name in enumerate(candidates[:-1]):
        kind = _call_kind(name, query, window)
        reason = log.failed.get(kind)
        if reason is None:
            try:
                reason = unsupported_reason(name, query)
            except BackendUnavailable as err:
                reason = str(err)
        if reason is None:
            try:
                context = _call(name, args, mask_cache)
            except Exception as err:  # compile errors, out of resources, ...: the next backend serves the call
                if strict:
                    raise StrictFallbackError(f"attn_implementation='auto' (strict): the {name} attention backend "
                                              f"raised {_reason(err)}") from err
                reason = log.failed[kind] = _reason(err)
            else:
                USAGE.record(name, query)
                return context
        if strict:
            raise StrictFallbackError(f"attn_implementation='auto' (strict): the {name} attention backend cannot "
                                      f"serve this call ({reason}); it would have fallen back to {candidates[i + 1]}")
        log.warn_once(name, reason, candidates[i + 1])
    context = _call(candidates[-1], args, mask_cache)
    USAGE.record(candidates[-1], query)
    return context


def attend(name: str | None, query, key, value, global_query, global_key, global_value, token_kind,
           window: int, need_grad: bool = False, strict: bool = False, mask_cache=None) -> torch.Tensor:
    """Attention context through backend `name`, or for "auto"/None the first of `auto_candidates` that
    serves the call (`strict`, or $LED_TORCH_STRICT_ATTENTION: raise instead of falling back). Tensors as the
    kernel contract (docs/contract.md); `mask_cache`: the forward's `MaskCache`, for the banded backend."""
    args = (query, key, value, global_query, global_key, global_value, token_kind, window)
    if name not in (None, "auto"):
        name = resolve_backend(name, query.device, query.dtype, need_probs=False)
        context = _call(name, args, mask_cache)
        USAGE.record(name, query)
        return context
    return attend_with_fallback(auto_candidates(query.device.type, need_grad=need_grad), *args,
                                strict=strict or strict_from_env(), mask_cache=mask_cache)
