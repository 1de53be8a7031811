"""The shape of the code: no import cycle inside hubport/ or harness/ (imports inside functions count), and hubport
never imports harness. Built from the source with ast, so an import hidden in a function cannot slip through."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Every module of `known` this file imports, at module level or inside any function."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
            subs = [f"{base}.{a.name}" for a in node.names]
            # `from package import submodule` depends on the submodule; names defined in the package on it
            targets = subs if all(t in known for t in subs) else [*subs, base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph(top: str) -> dict[str, set[str]]:
    files = [p for p in (ROOT / top).rglob("*.py") if "__pycache__" not in p.parts]
    known = {module_name(p) for p in files}
    return {module_name(p): {m for m in imports_of(p, known) if m.split(".")[0] == top} for p in files}


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path of modules, or None (depth-first search with colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_checker_finds_a_cycle_and_function_level_imports(tmp_path):
    """The detector itself: a cycle closed by an import inside a function is found."""
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None
    source = ROOT / "hubport" / "api.py"
    assert "hubport.port.strategies" in imports_of(source, set(graph("hubport")))


@pytest.mark.parametrize("top", ["hubport", "harness"])
def test_no_import_cycle(top):
    found = cycle(graph(top))
    assert found is None, " -> ".join(found or [])


def test_hubport_never_imports_harness():
    files = [p for p in (ROOT / "hubport").rglob("*.py") if "__pycache__" not in p.parts]
    harness = {module_name(p) for p in (ROOT / "harness").rglob("*.py")}
    offenders = {module_name(p): sorted(imports_of(p, harness)) for p in files if imports_of(p, harness)}
    assert not offenders, offenders


def test_crossmap_is_estimation_only():
    """crossmap imports no part of the port pipeline, the API or the CLI."""
    edges = graph("hubport")
    pipeline = ("hubport.api", "hubport.cli", "hubport.port.")
    bad = {m: sorted(t for t in targets if t.startswith(pipeline) and t != "hubport.port.resolve")
           for m, targets in edges.items() if m.startswith("hubport.crossmap")}
    assert not any(bad.values()), bad
