"""Every Triton kernel of the project compiles for real NVIDIA targets (sm_80, sm_90) in every dtype the
launcher accepts, without a GPU and without the interpreter, and none spills registers badly.

The compile runs `python -m led_torch.backends.triton_aot` in a subprocess: tests/conftest.py sets
TRITON_INTERPRET=1 for this process (then the kernels are interpreted and nothing would be compiled), the
subprocess runs without it. It compiles the launches of `triton_banded.launch_plan` -- the launcher's own
arguments, constexprs and options -- down to a cubin with the ptxas of the triton wheel.

CI compiles head_dim 64 (LED-base and LED-large) and 128 (the largest the launcher takes, where registers and
shared memory peak): 2 targets x 3 dtypes x 2 head dims x 2 kernels. The `slow` test adds head_dim 16 and 32,
the other tile widths (BLOCK_D) a launch can use, and 40 (strides without divisibility-by-16 hints).
"""

from __future__ import annotations

import ast
import json
import os
import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("triton", reason="triton is not installed (pip install -e '.[gpu]')")

from led_torch.backends import triton_aot  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
CI_HEAD_DIMS = (64, 128)
SLOW_HEAD_DIMS = (16, 32, 40)  # 40: BLOCK_D 64 with strides not divisible by 16 (no alignment hints)


def run_aot(tmp_path, head_dims) -> tuple[subprocess.CompletedProcess, list[dict]]:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path / "triton-cache")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    out = tmp_path / "reports.json"
    proc = subprocess.run([sys.executable, "-m", "led_torch.backends.triton_aot", "--workers", "2",
                           "--head-dim", ",".join(map(str, head_dims)), "--json", str(out)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    print(proc.stdout, proc.stderr)  # the register / spill / shared-memory table (pytest -rP shows it)
    reports = json.loads(out.read_text()) if out.exists() else []
    return proc, reports


def jit_functions() -> dict[str, set[str]]:
    """Every @triton.jit function in led_torch -> the names it calls (read from the source, so a kernel
    added anywhere in the package is seen even if nothing launches it)."""
    found = {}
    for path in (ROOT / "led_torch").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and any(ast.unparse(d).split("(")[0].endswith("jit")
                                                         for d in node.decorator_list):
                found[node.name] = {n.func.id for n in ast.walk(node)
                                    if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    return found


def check_complete(reports: list[dict], head_dims) -> None:
    """Each launched kernel compiled for each (arch, dtype, head_dim); every @triton.jit function of the
    package is a launched kernel or called (transitively) from one, so none escapes the compile."""
    kernels = {r["kernel"] for r in reports}
    assert kernels, "nothing was compiled"
    expected = {(k, a, d, h) for k in kernels for a in triton_aot.ARCHS for d in triton_aot.DTYPES
                for h in head_dims}
    assert {(r["kernel"], r["arch"], r["dtype"], r["head_dim"]) for r in reports} == expected
    calls = jit_functions()
    reached, todo = set(), list(kernels)
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo.extend(calls.get(name, set()) & calls.keys())
    assert set(calls) <= reached, f"@triton.jit functions never compiled: {sorted(set(calls) - reached)}"


def check_reports(proc, reports, head_dims) -> None:
    assert proc.returncode == 0, f"AOT compile failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    check_complete(reports, head_dims)
    for r in reports:
        assert r["ok"] and r["registers"] > 0 and r["shared_bytes"] > 0, r
        assert r["spill_stores"] <= triton_aot.MAX_SPILL_BYTES, r


def test_every_kernel_compiles_for_sm80_and_sm90_in_every_dtype(tmp_path):
    proc, reports = run_aot(tmp_path, CI_HEAD_DIMS)
    check_reports(proc, reports, CI_HEAD_DIMS)
    assert {r["kernel"] for r in reports} == {"_local_rows_kernel", "_global_rows_kernel"}


@pytest.mark.slow
def test_every_kernel_compiles_for_the_narrow_head_dims(tmp_path):
    proc, reports = run_aot(tmp_path, SLOW_HEAD_DIMS)
    check_reports(proc, reports, SLOW_HEAD_DIMS)


def test_aot_refuses_to_run_under_the_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "led_torch.backends.triton_aot"], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 2 and "TRITON_INTERPRET" in proc.stderr


def test_ptxas_log_parsing_and_the_spill_rule():
    log = ("ptxas info    : Compiling entry function '_local_rows_kernel' for 'sm_80'\n"
           "ptxas info    : Function properties for _local_rows_kernel\n"
           "    72 bytes stack frame, 84 bytes spill stores, 80 bytes spill loads\n"
           "ptxas info    : Used 255 registers, used 1 barriers, 72 bytes cumulative stack size\n")
    assert triton_aot._ptxas_usage(log) == (255, 84, 80)
    with pytest.raises(RuntimeError, match="ptxas log"):
        triton_aot._ptxas_usage("nothing here")

    def report(spills, ok=True):
        return triton_aot.KernelReport("k", 80, "float16", 64, 64, ok=ok, registers=100, spill_stores=spills,
                                       spill_loads=spills, shared_bytes=1024, error="" if ok else "boom")

    limit = triton_aot.MAX_SPILL_BYTES
    assert triton_aot.failures([report(0), report(limit)]) == []
    assert [f"spills {limit + 1} bytes" in line for line in triton_aot.failures([report(limit + 1)])] == [True]
    assert ["boom" in line for line in triton_aot.failures([report(None, ok=False)])] == [True]
    assert "FAILED: boom" in triton_aot.format_table([report(None, ok=False)])


def test_a_jit_function_that_no_launch_reaches_fails_the_completeness_check():
    only_local = [dict(kernel="_local_rows_kernel", arch=a, dtype=d, head_dim=64)
                  for a in triton_aot.ARCHS for d in triton_aot.DTYPES]
    check_complete(only_local + [dict(r, kernel="_global_rows_kernel") for r in only_local], (64,))
    with pytest.raises(AssertionError, match="_global_rows_kernel"):
        check_complete(only_local, (64,))
    with pytest.raises(AssertionError):
        check_complete(only_local[1:], (64,))  # one (arch, dtype) missing


TOY_KERNEL = '''
import triton
import triton.language as tl

FILL = {fill}


@triton.jit
def add_one(X, n, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    x = tl.load(X + offs, mask=offs < n, other=FILL)
    tl.store(X + offs, x + 1, mask=offs < n)
'''

TOY_COMPILE = '''
import sys, torch
sys.path.insert(0, sys.argv[1])
import toy
from led_torch.backends import triton_aot
try:
    usage = triton_aot.compile_launch(toy.add_one, (torch.zeros(64), 50), dict(BLOCK=64), 80)
except Exception as err:
    print("FAILED", triton_aot.error_line(err))
else:
    print("OK", usage["registers"], usage["spill_stores"])
'''


@pytest.mark.parametrize(("fill", "expected"), [("0", "FAILED CompilationError"), ("tl.constexpr(0)", "OK")])
def test_the_compile_catches_what_the_interpreter_lets_through(tmp_path, fill, expected):
    """The bug this test file exists for: a kernel reading a plain module int runs in the interpreter and is
    refused by the compiler (NameError naming the global); as a tl.constexpr it compiles."""
    (tmp_path / "toy.py").write_text(TOY_KERNEL.format(fill=fill))
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run([sys.executable, "-c", TOY_COMPILE, str(tmp_path)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)
    assert proc.stdout.startswith(expected), proc.stdout + proc.stderr[-2000:]
    if fill == "0":
        assert "NameError" in proc.stdout and "FILL" in proc.stdout
    else:
        assert int(proc.stdout.split()[1]) > 0 and proc.stdout.split()[2] == "0"
