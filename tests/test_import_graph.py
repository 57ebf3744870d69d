"""No import circles among the toolkit's modules (read from the source with ast)."""

from __future__ import annotations

import ast
import graphlib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    """``modelzoo/builder/zoo.py`` -> ``modelzoo.builder.zoo`` (a package is its ``__init__``)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node of ``tree`` except the bodies of ``if TYPE_CHECKING:`` blocks."""
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
        yield node


def import_graph(package: str) -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports, at any depth of its code.

    Imports inside functions count too: a circle hidden in a function is still a circle at run
    time. Imports under ``if TYPE_CHECKING:`` are not edges: they never run (annotations only).
    function is still a circle. ``from a import b`` is an edge to ``a.b`` when that is a module,
    else to ``a``; the implicit import of a module's parent package is not an edge.
    """
    files = sorted((ROOT / package).rglob("*.py"))
    modules = {module_name(f): f for f in files}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        is_pkg = path.name == "__init__.py"
        for node in runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                    for a in node.names
                ]
            graph[mod].update(t for t in targets if t in modules and t != mod)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (first module repeated at the end), or None."""
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as e:
        return list(e.args[1])
    return None


@pytest.mark.parametrize("package", ["modelzoo", "benchmarks", "sane"])
def test_no_import_circles(package: str) -> None:
    graph = import_graph(package)
    assert len(graph) > 10  # the package's modules were found
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(reversed(cycle or []))


def test_finds_a_planted_circle() -> None:
    graph = import_graph("modelzoo")
    assert "modelzoo.builder.groups" in graph["modelzoo.builder.ray_executor"]
    graph["modelzoo.builder.groups"].add("modelzoo.builder.ray_executor")
    cycle = find_cycle(graph)
    assert cycle is not None
    assert {"modelzoo.builder.groups", "modelzoo.builder.ray_executor"} <= set(cycle)


def test_type_checking_imports_are_not_edges_but_function_imports_are() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import annotations_only\nelse:\n    import runs_otherwise\n"
        "def f():\n    import runs_in_function\n"
    )
    names = {a.name for n in runtime_nodes(tree) if isinstance(n, ast.Import) for a in n.names}
    assert names == {"runs_otherwise", "runs_in_function"}
