"""The package's import graph, read from the source (every ``import``, function-level ones
included): no module imports one that imports it back (no cycle), and no import runs back up the
layers of docs/architecture.md. A package's ``__init__`` importing its own submodules does not
count as an edge of its own; importing a name a package ``__init__`` re-exports counts as importing
the submodule it comes from."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
#: docs/architecture.md's layers, lowest first; an import may go to its own layer or one below,
#: never up, and never sideways between two layers of the same rank (viz and maps)
RANK = {"": 0, "constants": 0, "errors": 0, "fileio": 0, "layout": 0, "provenance": 0, "distributions": 0,
        "regimes": 0, "config": 0, "data": 1, "models": 2, "training": 3, "evaluation": 4, "viz": 5,
        "maps": 5, "study": 6, "cli": 7}


def modules() -> dict[str, tuple[Path, bool]]:
    """{dotted module name: (file, is a package __init__)} of every module under src/lczldl."""
    out = {}
    for path in (SRC / "lczldl").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def import_graph() -> dict[str, dict[str, int]]:
    """{module: {imported lczldl module: line}} with the rules of the module docstring."""
    mods = modules()
    edges: dict[str, dict[str, int]] = {m: {} for m in mods}
    exports: dict[str, set[str]] = {}
    for name, (path, is_pkg) in mods.items():
        package = name if is_pkg else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            else:
                continue
            for target in targets:
                if not target.startswith("lczldl"):
                    continue
                while target not in mods and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target == name:
                    continue
                if is_pkg and target.startswith(name + "."):
                    exports.setdefault(name, set()).add(target)
                    continue
                edges[name].setdefault(target, node.lineno)
    for name in edges:
        for target, line in list(edges[name].items()):
            for sub in exports.get(target, ()):
                if sub != name:
                    edges[name].setdefault(sub, line)
    return edges


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_import_cycle():
    edges = import_graph()
    assert cycles(edges) == []


def test_no_import_runs_back_up_the_layers():
    up = []
    for a, targets in import_graph().items():
        for b, line in targets.items():
            la, lb = layer(a), layer(b)
            ra, rb = RANK[la], RANK[lb]
            if rb > ra or (ra == rb and ra > 0 and la != lb):
                up.append(f"{a}:{line} -> {b}")
    assert up == []


def test_the_checks_see_a_cycle_hidden_in_a_function_and_an_import_up(tmp_path, monkeypatch):
    """The graph reads function-level imports: a cycle and an upward import planted in a copy of
    two modules are found (the checks above can fail)."""
    import shutil

    root = tmp_path / "src"
    shutil.copytree(SRC / "lczldl", root / "lczldl")
    (root / "lczldl" / "layout.py").write_text((root / "lczldl" / "layout.py").read_text()
                                               + "\n\ndef _planted():\n    from lczldl.study import runner\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", root)
    edges = import_graph()
    assert "lczldl.study.runner" in edges["lczldl.layout"]
    assert any("lczldl.layout" in c for c in cycles(edges))
    with pytest.raises(AssertionError):
        test_no_import_runs_back_up_the_layers()
