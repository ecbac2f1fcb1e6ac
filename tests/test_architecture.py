"""The layout docs/architecture.md draws, held to the code: each module imports only from its own folder and the
rows above its own, stages never import each other, and no two modules import each other, however indirectly."""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "memestar"

# the rows of docs/architecture.md's table, from the ground up; a unit is a top-level module or folder of memestar
LAYERS = [
    {"errors", "lazy"},
    {"checks", "device", "files", "options", "prompts"},
    {"records", "sampling", "media"},
    {"models"},
    {"formats"},
    {"graph_runtimes"},
    {"train", "export", "runtime"},
    {"bench", "serve", "tiny"},
    {"cli"},
]
ROW = {unit: i for i, row in enumerate(LAYERS) for unit in row}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The memestar modules `path` imports (a name imported from a package counts as that package's module when
    it is one), at any depth of the file: a deferred import is an import too."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = (
                ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
                if node.level
                else node.module or ""
            )
            if base == "memestar" or base.startswith("memestar."):
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    is_module = (PACKAGE.parent / sub.replace(".", "/")).with_suffix(".py").exists() or (
                        PACKAGE.parent / sub.replace(".", "/")
                    ).is_dir()
                    found.add(sub if is_module else base)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("memestar.")}
    return found - {"memestar"}


def unit(module: str) -> str:
    return module.split(".")[1]


GRAPH = {module_name(p): imports(p) for p in PACKAGE.rglob("*.py")}


def test_every_unit_has_a_row():
    units = {unit(m) for m in GRAPH if m != "memestar"}
    assert units <= set(ROW), f"add {sorted(units - set(ROW))} to LAYERS and to docs/architecture.md's table"


def test_imports_go_only_to_rows_above():
    wrong = []
    for module, targets in GRAPH.items():
        if module == "memestar":
            continue
        for target in targets:
            a, b = unit(module), unit(target)
            if a != b and ROW[b] >= ROW[a]:
                wrong.append(f"{module} imports {target} (row {ROW[a]} -> row {ROW[b]})")
    assert not wrong, "\n".join(wrong)


def test_no_import_circles():
    """Tarjan's strongly connected components over the module graph: every one a single module."""
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH.get(v, ()):
            if w not in GRAPH:
                continue
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
                circles.append(sorted(component))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert not circles, circles


def test_the_checker_sees_a_climb_and_a_circle(monkeypatch):
    """The rules above would pass on a graph they cannot read: an import upwards and a circle are found."""
    plan, meme = "memestar.sampling.plan", "memestar.runtime.meme"
    monkeypatch.setitem(GRAPH, plan, GRAPH[plan] | {meme})
    with pytest.raises(AssertionError, match=f"{plan} imports {meme}"):
        test_imports_go_only_to_rows_above()
    monkeypatch.setitem(GRAPH, plan, GRAPH[plan] - {meme})
    batch, starts = "memestar.sampling.batch", "memestar.sampling.starts"
    monkeypatch.setitem(GRAPH, batch, GRAPH[batch] | {starts})
    monkeypatch.setitem(GRAPH, starts, GRAPH[starts] | {batch})
    with pytest.raises(AssertionError, match=re.escape(f"['{batch}', '{starts}']")):
        test_no_import_circles()


def test_the_public_api_still_imports():
    from memestar.runtime import Generation, GenRequest, GenSettings, Meme, MemeStore, variant_requests

    assert Meme.load and MemeStore.load and GenSettings().steps >= 1 and callable(variant_requests)
    assert GenRequest("x").settings == GenSettings() and Generation.encode


def test_the_cli_starts_without_torch():
    """The options modules import no torch, diffusers or web framework: `meme --help` and a refused option answer
    at once (7.4 s of imports before they were apart); a command imports its stage when it runs."""
    import subprocess
    import sys

    heavy = ("torch", "diffusers", "transformers", "fastapi", "onnxruntime")
    code = f"import sys, memestar.cli; print([m for m in {heavy!r} if m in sys.modules])"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]", loaded
