"""The dependency rule of docs/architecture.md, enforced so the independence claim cannot rot.

- `led_ref` (the spec) never imports torch: not at import time, not when running a model.
- `led_torch` takes only I/O and policy from `led_ref` (the `led_ref.io` subpackage: config, names, checkpoint
  files, tokenizer, generation settings, ...), never its numerics, so a passing parity check is two independent
  computations agreeing. The rule is an allow-list, so a new numerics module is covered the day it is written.
Checked twice: statically over every import statement, and at run time in a fresh interpreter.
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# What led_torch may take from led_ref: its I/O and policy subpackage, and `init` (the seeded weight
# initializer the embedded default model is built with). Everything else in led_ref is the spec's numerics.
REF_ALLOWED = {"io", "init"}
# The numerics as they are today, so the run-time test can say the allow-list still excludes real modules.
REF_NUMERICS = {"attention", "attention_backward", "decoder", "encoder", "functional", "generation", "layout",
                "model"}


def imported_modules(path: pathlib.Path) -> set[str]:
    """Every absolute module name `path` imports, anywhere in the file (lazy imports inside functions too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def package_files(package: str) -> list[pathlib.Path]:
    return sorted((ROOT / package).rglob("*.py"))


def ref_module_of(name: str) -> str | None:
    """'led_ref.attention.x' -> 'attention'; None for names outside led_ref or the bare package."""
    parts = name.split(".")
    return parts[1] if parts[0] == "led_ref" and len(parts) > 1 else None


@pytest.mark.parametrize("path", package_files("led_torch"), ids=lambda p: str(p.relative_to(ROOT)))
def test_led_torch_never_imports_led_ref_numerics(path):
    bad = sorted(n for n in imported_modules(path) if ref_module_of(n) not in REF_ALLOWED | {None})
    assert not bad, f"{path.relative_to(ROOT)} imports led_ref numerics: {bad}"


@pytest.mark.parametrize("path", package_files("led_ref"), ids=lambda p: str(p.relative_to(ROOT)))
def test_led_ref_never_imports_torch_at_module_level(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = set()
    for node in tree.body:  # module level only: led_ref.io.tokenizer may import torch inside return_tensors="pt"
        if isinstance(node, ast.Import):
            top.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            top.add(node.module.split(".")[0])
    assert not top & {"torch", "triton", "transformers"}, f"{path.relative_to(ROOT)} imports {top}"


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_running_the_spec_loads_no_torch():
    out = run_python(
        "import sys, numpy as np, pkgutil, importlib, led_ref\n"
        "for m in pkgutil.walk_packages(led_ref.__path__, 'led_ref.'):\n"
        "    importlib.import_module(m.name)\n"
        "from led_ref.io.default_model import default_checkpoint_dir\n"
        "model = led_ref.LEDForConditionalGeneration.from_pretrained(default_checkpoint_dir())\n"
        "ids = np.array([[0, 5, 6, 7, 2]])\n"
        "model.generate(ids, max_new_tokens=2)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'triton', 'transformers')))\n")
    assert out == "[]"


def test_running_led_torch_loads_no_spec_numerics():
    out = run_python(
        "import sys, torch, led_torch\n"
        "from led_ref.io.default_model import default_checkpoint_dir\n"
        "model = led_torch.LEDForConditionalGeneration.from_pretrained(default_checkpoint_dir())\n"
        "ids = torch.tensor([[0, 5, 6, 7, 2]])\n"
        "model.generate(ids, max_new_tokens=2, num_beams=2)\n"
        "model(input_ids=ids, decoder_input_ids=ids, output_attentions=True)\n"
        "print(sorted(m for m in sys.modules if m.startswith('led_ref.')))\n")
    loaded = {ref_module_of(m) for m in eval(out)}  # noqa: S307 - a list of module names printed above
    assert loaded, "led_torch loaded nothing from led_ref: the check would pass vacuously"
    assert not loaded - REF_ALLOWED, f"led_torch loaded led_ref numerics: {sorted(loaded - REF_ALLOWED)}"


def test_the_allow_list_excludes_every_numerics_module():
    # If led_ref's top level gained a module, it is numerics unless it is moved into led_ref/io.
    top = {p.stem for p in (ROOT / "led_ref").glob("*.py")} - {"__init__", "__main__"}
    assert REF_NUMERICS <= top, f"numerics modules moved or renamed: {sorted(REF_NUMERICS - top)}"
    assert not REF_NUMERICS & REF_ALLOWED


# ---------------------------------------------------------------------------------------------- no cycles
PACKAGES = ("led_ref", "led_torch", "parity")


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (module level and lazy, relative imports resolved; `from P import
    name` counts as importing P.name when that is a module, else P)."""
    files = {module_name(p): p for package in PACKAGES for p in package_files(package)}
    graph = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            graph[name].update(t for t in targets if t in files and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_one_that_imports_it_back():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_sees_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert "parity.commands.check" in import_graph()["parity.commands"]  # the graph reads real imports
