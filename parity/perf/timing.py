"""Timing several implementations fairly: round-robin repeats whose order rotates, synchronised on CUDA."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable


def _sync(device: str) -> Callable[[], None]:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.synchronize
    return lambda: None


def round_robin(calls: dict[str, Callable[[], object]], repeats: int, warmup: int, device: str):
    """Time every call `repeats` times, alternating (the order rotates each repeat), after `warmup` untimed
    rounds. -> (times {name: [seconds]}, first output {name: value}, error {name: message})."""
    sync = _sync(device)
    names = list(calls)
    times: dict[str, list[float]] = {n: [] for n in names}
    outputs: dict[str, object] = {}
    errors: dict[str, str] = {}
    for round_ in range(warmup + repeats):
        shift = round_ % len(names) if names else 0
        for name in names[shift:] + names[:shift]:
            if name in errors:
                continue
            gc.collect()
            sync()
            start = time.perf_counter()
            try:
                out = calls[name]()
                sync()
            except Exception as err:  # noqa: BLE001 - an implementation that fails is reported, not fatal
                errors[name] = f"{type(err).__name__}: {err}"
                continue
            elapsed = time.perf_counter() - start
            outputs.setdefault(name, out)
            if round_ >= warmup:
                times[name].append(elapsed)
    return times, outputs, errors
