"""Ahead-of-time compilation of the Triton kernels for real NVIDIA targets, without a GPU.

The JIT compiles a kernel on its first launch; without a GPU (and under TRITON_INTERPRET=1) that never
happens, so a kernel the compiler refuses would first fail on a user's GPU. This module compiles every
launch of `triton_banded.launch_plan` -- the launcher's own arguments and keyword arguments, bound and
specialized the way `JITFunction.run` does (pointer dtypes, 16-byte alignment, integer divisibility) -- with
`triton.compile(..., target=GPUTarget("cuda", arch, 32))`, which runs the whole pipeline down to ptxas
(shipped in the triton wheel). It reports what the cubin needs: registers and spill bytes per thread (triton's
own `ptxas -v` log) and shared memory per block (the compiled metadata).

Run it in a process where TRITON_INTERPRET is not set (the interpreter replaces the kernels):

    python -m led_torch.backends.triton_aot [--arch 80,90] [--dtype float32,float16,bfloat16] [--json FILE]

exits 1 on a compile error or a kernel that spills more than `MAX_SPILL_BYTES` (docs/kernels.md).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass

import torch

ARCHS = (80, 90)  # sm_80 (A100), sm_90 (H100/H200)
DTYPES = ("float32", "float16", "bfloat16")
# Head dims that reach the kernels as a distinct BLOCK_D (the launcher rounds up to a power of two >= 16):
# 16 .. MAX_HEAD_DIM. LED-base and LED-large use 64.
HEAD_DIMS = (16, 32, 64, 128)
# "Spills badly": more than this many bytes of spill stores per thread. A few bytes can be a cold value moved
# out of the hot loop; 64 bytes (16 registers' worth) going to local memory inside the key loop would cost
# real bandwidth. The kernels measure 0 today (docs/kernels.md), so any growth is visible in the report.
MAX_SPILL_BYTES = 64

_INTERPRET_ENV = "TRITON_INTERPRET"


@dataclass
class KernelReport:
    kernel: str
    arch: int
    dtype: str
    head_dim: int
    block_d: int
    ok: bool
    registers: int | None = None
    spill_stores: int | None = None
    spill_loads: int | None = None
    shared_bytes: int | None = None
    num_warps: int | None = None
    num_stages: int | None = None
    seconds: float = 0.0
    error: str = ""

    @property
    def spills_badly(self) -> bool:
        return bool(self.spill_stores and self.spill_stores > MAX_SPILL_BYTES)


def representative_inputs(dtype: torch.dtype, head_dim: int):
    """A small call shaped like LED's (CPU tensors): batch 2, heads 2, seq 128, window 32, rows with 2 and 1
    global tokens and right padding. The kernels' specialization depends only on dtypes, alignment and
    which integers are divisible by 16 (or equal 1), not on the sizes themselves."""
    batch, heads, seq = 2, 2, 128
    tensors = [torch.zeros(batch, heads, seq, head_dim, dtype=dtype) for _ in range(6)]
    kinds = torch.ones(batch, seq, dtype=torch.long)
    kinds[0, [0, 17]] = 2
    kinds[1, 0] = 2
    kinds[1, 100:] = 0
    return (*tensors, kinds, 32)


def _bind(kernel, backend, args, kwargs):
    """The JIT's own binding of a launch: (signature, constexprs, attrs, options) as JITFunction.run gets them
    (triton 3.x; private helpers, so a triton upgrade that moves them fails here loudly, not silently)."""
    from triton.runtime.jit import create_function_from_signature

    binder = create_function_from_signature(kernel.signature, kernel.params, backend)
    kwargs = dict(kwargs, debug=False)
    bound_args, specialization, options = binder(*args, **kwargs)
    options, signature, constexprs, attrs = kernel._pack_args(backend, kwargs, bound_args, specialization, options)
    return signature, constexprs, attrs, options


_REGISTERS = re.compile(r"Used (\d+) registers")
_SPILLS = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")


def _compile_with_ptxas_log(src, target, options) -> tuple[object, str]:
    """triton.compile, always compiling (no cache hit, so ptxas really runs), with the `ptxas -v` log that
    triton's own ptxas call writes (knobs.nvidia.dump_ptxas_log prints it to stdout)."""
    import contextlib
    import io

    import triton
    from triton import knobs

    log = io.StringIO()
    with knobs.compilation.scope(), knobs.nvidia.scope(), contextlib.redirect_stdout(log):
        knobs.compilation.always_compile = True
        knobs.nvidia.dump_ptxas_log = True
        compiled = triton.compile(src, target=target, options=options)
    return compiled, log.getvalue()


def _ptxas_usage(log: str) -> tuple[int, int, int]:
    """(registers, spill store bytes, spill load bytes) per thread from a `ptxas -v` log."""
    registers, spills = _REGISTERS.search(log), _SPILLS.search(log)
    if not registers or not spills:
        raise RuntimeError(f"no register/spill lines in the ptxas log: {log.strip()[:400]!r}")
    return int(registers.group(1)), int(spills.group(1)), int(spills.group(2))


def compile_launch(kernel, args, kwargs, arch: int) -> dict:
    """Compile one launch `kernel[grid](*args, **kwargs)` for sm_<arch> as the JIT would, without a GPU.
    -> {"registers", "spill_stores", "spill_loads" (bytes per thread), "shared_bytes" (per block)}; raises what
    the compiler raises (CompilationError, PTXASError, ...)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, make_backend

    if type(kernel).__name__ == "InterpretedFunction":
        raise RuntimeError(f"{_INTERPRET_ENV} is set: the kernels are interpreted, nothing would be compiled")
    target = GPUTarget("cuda", arch, 32)
    signature, constexprs, attrs, options = _bind(kernel, make_backend(target), args, kwargs)
    compiled, log = _compile_with_ptxas_log(ASTSource(kernel, signature, constexprs, attrs), target,
                                            options.__dict__)
    registers, spill_stores, spill_loads = _ptxas_usage(log)
    return dict(registers=registers, spill_stores=spill_stores, spill_loads=spill_loads,
                shared_bytes=compiled.metadata.shared)


def error_line(err: BaseException) -> str:
    """One line for a compile failure. A CompilationError is "at L:C:", the source, then the cause: the first
    and the last line say it."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()] or [""]
    detail = lines[0] if len(lines) == 1 else f"{lines[0]} {lines[-1]}"
    return f"{type(err).__name__}: {detail[:300]}"


def compile_call(arch: int, dtype: str, head_dim: int) -> list[KernelReport]:
    """Compile every kernel one call of (dtype, head_dim) launches, for sm_<arch>, and report each."""
    from . import triton_banded

    _, launches = triton_banded.launch_plan(*representative_inputs(getattr(torch, dtype), head_dim))
    reports = []
    for kernel, _grid, args, kwargs in launches:
        report = KernelReport(kernel.__name__, arch, dtype, head_dim, kwargs["BLOCK_D"], ok=False,
                              num_warps=kwargs["num_warps"], num_stages=kwargs["num_stages"])
        start = time.perf_counter()
        try:
            for name, value in compile_launch(kernel, args, kwargs, arch).items():
                setattr(report, name, value)
            report.ok = True
        except Exception as err:  # every failure is a finding to report, not a crash of the sweep
            report.error = error_line(err)
        report.seconds = round(time.perf_counter() - start, 2)
        reports.append(report)
    return reports


def _compile_call_star(job):
    return compile_call(*job)


def compile_all(archs=ARCHS, dtypes=DTYPES, head_dims=HEAD_DIMS, workers: int | None = None) -> list[KernelReport]:
    """Every (arch, dtype, head_dim) call compiled, in `workers` processes (default: the CPU count, <= 4)."""
    jobs = [(a, d, h) for a in archs for d in dtypes for h in head_dims]
    workers = workers or min(4, os.cpu_count() or 1, len(jobs))
    if workers <= 1:
        return [r for job in jobs for r in compile_call(*job)]
    with ProcessPoolExecutor(workers) as pool:
        return [r for rs in pool.map(_compile_call_star, jobs) for r in rs]


def format_table(reports: list[KernelReport]) -> str:
    """A markdown table, one line per compiled kernel."""
    lines = ["| kernel | arch | dtype | BLOCK_D | registers | spill stores / loads (B) | shared (B) | compile s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in reports:
        if r.ok:
            lines.append(f"| {r.kernel} | sm_{r.arch} | {r.dtype} | {r.block_d} | {r.registers} | "
                         f"{r.spill_stores} / {r.spill_loads} | {r.shared_bytes} | {r.seconds} |")
        else:
            lines.append(f"| {r.kernel} | sm_{r.arch} | {r.dtype} | {r.block_d} | FAILED: {r.error} | | | |")
    return "\n".join(lines)


def failures(reports: list[KernelReport]) -> list[str]:
    """One line per compile error or bad spill."""
    out = []
    for r in reports:
        where = f"{r.kernel} sm_{r.arch} {r.dtype} BLOCK_D={r.block_d}"
        if not r.ok:
            out.append(f"{where}: {r.error}")
        elif r.spills_badly:
            out.append(f"{where}: spills {r.spill_stores} bytes per thread (limit {MAX_SPILL_BYTES})")
    return out


def _csv(text: str, convert=str):
    return tuple(convert(x) for x in text.split(",") if x)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m led_torch.backends.triton_aot", description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default=",".join(map(str, ARCHS)), help="compute capabilities, e.g. 80,90")
    parser.add_argument("--dtype", default=",".join(DTYPES))
    parser.add_argument("--head-dim", default=",".join(map(str, HEAD_DIMS)))
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--json", help="also write the reports to this file")
    args = parser.parse_args(argv)
    if os.environ.get(_INTERPRET_ENV, "0") not in ("", "0"):
        print(f"unset {_INTERPRET_ENV}: under the interpreter nothing is compiled", file=sys.stderr)
        return 2
    start = time.perf_counter()
    reports = compile_all(_csv(args.arch, int), _csv(args.dtype), _csv(args.head_dim, int), args.workers)
    print(format_table(reports))
    bad = failures(reports)
    print(f"{len(reports)} kernels compiled in {time.perf_counter() - start:.1f} s, {len(bad)} failed")
    for line in bad:
        print("FAIL", line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) for r in reports], f, indent=1)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
