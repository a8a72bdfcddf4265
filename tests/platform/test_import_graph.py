"""The services' import graph: acyclic, and no service module imports development tooling.

Every ``import``/``from`` of a ``services.*`` module anywhere in a module (also inside functions)
is an edge; a cycle means two modules that cannot be understood apart. ``tools/``, ``tests/``,
``bench/`` and ``training/`` are not in the runtime image, so services never import them.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OFF_LIMITS = ("tools", "tests", "bench", "training")


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    files = [p for p in (ROOT / "services").rglob("*.py") if "pb" not in p.relative_to(ROOT).parts[:3]]
    modules = {_module(p): p for p in files}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for t in targets:
                if t.split(".")[0] in OFF_LIMITS:
                    edges.add(t)
                # the longest known module this names (a package's __init__ counts as the package)
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != name and not name.startswith(t + "."):
                    edges.add(t)
        graph[name] = edges
    return graph


def test_services_never_import_development_tooling():
    bad = {m: sorted(e for e in edges if e.split(".")[0] in OFF_LIMITS) for m, edges in _imports().items()}
    assert not {m: e for m, e in bad.items() if e}


def test_import_graph_is_acyclic():
    graph = _imports()
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if n not in graph:
                continue
            if state.get(n) == 1:
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)
