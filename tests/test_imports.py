"""The package's import graph: no cycles, and the layering DESIGN.md promises.

Every ``import``/``from ... import`` of an ``xlt`` module counts, including imports inside functions and under
``TYPE_CHECKING``: a cycle through a lazy import is still two modules that cannot be read apart.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "xlt"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the xlt modules it imports (a ``from pkg import name`` of a submodule counts as that module)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}" if base else anchor
                targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            for target in targets:
                if target == "xlt" or target.startswith("xlt."):
                    found = resolve(target)
                    if found is not None and found != name:
                        graph[name].add(found)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_planted_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_xlt_has_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


@pytest.mark.parametrize(("layer", "forbidden"), [
    ("xlt.tokenization", "xlt.datamodules"),  # tokenizers are fitted from text sources, not from data modules
    ("xlt.synthetic", "xlt.datamodules"),  # the generator writes files; data modules read them
    ("xlt.formats", "xlt.datamodules"),  # format parsers are shared by tasks, tokenizer audit and sources
    ("xlt.evaluation", "xlt.models"),  # metrics and reports work on any model's outputs
])
def test_layers_do_not_import_upwards(layer: str, forbidden: str) -> None:
    graph = import_graph()
    offenders = sorted(f"{module} -> {target}" for module, targets in graph.items()
                       if module == layer or module.startswith(layer + ".")
                       for target in targets if target == forbidden or target.startswith(forbidden + "."))
    assert offenders == []
