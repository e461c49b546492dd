"""Peak memory of one call, the way `python -m parity bench` reports it.

CPU (every implementation, numpy and torch alike): the growth of the process's resident set during the call,
    peak = VmHWM after the call - VmRSS just before it,
where the high-water mark VmHWM is first reset to the current RSS by writing "5" to /proc/self/clear_refs
(Linux >= 4.0). The model and its weights are built before the reset, so they are not counted; everything
the call allocates (activations, scores, workspaces, allocator slack) is. When clear_refs is not writable,
the fallback is ru_maxrss (never reset, so the baseline is the peak so far: run it in a fresh process).
The bench measures each implementation in its own fresh subprocess, so one implementation's freed-but-cached
memory never hides another's.

CUDA: torch.cuda.max_memory_allocated() after torch.cuda.reset_peak_memory_stats(), minus the memory
allocated before the call (the caching allocator's reserved slack is not counted).
"""

from __future__ import annotations

import resource
from collections.abc import Callable

_KIB = 1024


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_high_water() -> bool:
    """Start the high-water mark VmHWM again at the current resident set; False where Linux's clear_refs is not
    writable (nothing is reset then)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def high_water_bytes() -> int:
    """The process's peak resident set since the last reset_high_water() (VmHWM), or since it started where VmHWM
    cannot be read (ru_maxrss)."""
    hwm = _status_kib("VmHWM")
    return (hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * _KIB


def cpu_peak_bytes(fn: Callable[[], object]) -> tuple[int, str]:
    """Run fn() once; -> (bytes the resident set grew by at its peak, method used)."""
    rss = _status_kib("VmRSS")
    if rss is not None and reset_high_water():
        fn()
        hwm = _status_kib("VmHWM")
        return max(0, (hwm - rss) * _KIB), "rss-hwm"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return max(0, (after - before) * _KIB), "ru_maxrss"


def cuda_peak_bytes(fn: Callable[[], object], device: str = "cuda") -> tuple[int, str]:
    """Run fn() once; -> (peak bytes allocated by torch on `device` above what was allocated before)."""
    import torch

    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return max(0, torch.cuda.max_memory_allocated(device) - before), "cuda-max-allocated"


def peak_bytes(fn: Callable[[], object], device: str = "cpu") -> tuple[int, str]:
    """cpu_peak_bytes or cuda_peak_bytes, by device."""
    return cuda_peak_bytes(fn, device) if device.startswith("cuda") else cpu_peak_bytes(fn)
