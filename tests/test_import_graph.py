"""No import circles among the toolkit's modules, and ``benchmarks``' layers only look down
(read from the source with ast)."""

from __future__ import annotations

import ast
import functools
import graphlib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    """``modelzoo/builder/zoo.py`` -> ``modelzoo.builder.zoo`` (a package is its ``__init__``)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_nodes(tree: ast.AST, *, type_checking: bool = False) -> Iterator[ast.AST]:
    """Every node of ``tree`` except the bodies of ``if TYPE_CHECKING:`` blocks (with
    ``type_checking``: every node)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        if (not type_checking and isinstance(node, ast.If)
                and "TYPE_CHECKING" in ast.unparse(node.test)):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
        yield node


def import_graph(package: str, *, type_checking: bool = False) -> dict[str, set[str]]:
    """:func:`_import_graph`, a fresh copy of a cached result (the tests edit theirs)."""
    return {m: set(t) for m, t in _import_graph(package, type_checking).items()}


@functools.cache
def _import_graph(package: str, type_checking: bool) -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports, at any depth of its code.

    Imports inside functions count too: a circle hidden in a function is still a circle at run
    time. Imports under ``if TYPE_CHECKING:`` are not edges (they never run: annotations only)
    unless ``type_checking`` is set (a layer may not even name the types of a layer above).
    ``from a import b`` is an edge to ``a.b`` when that is a module, else to ``a``; the
    implicit import of a module's parent package is not an edge.
    """
    files = sorted((ROOT / package).rglob("*.py"))
    modules = {module_name(f): f for f in files}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        is_pkg = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in runtime_nodes(tree, type_checking=type_checking):
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


# --------------------------------------------------------------------------- layers

#: The layers of ``benchmarks``, top first. A module may import from its own layer and the
#: layers below it, never from a layer above: not at module level, not inside a function,
#: not under ``if TYPE_CHECKING:``. A module belongs to the layer of its longest listed prefix
#: (``"benchmarks"`` itself is only the package's ``__init__``, the public facade).
LAYERS: tuple[tuple[str, ...], ...] = (
    # applications: the facade, the command line, reproductions, performance reports
    ("benchmarks", "benchmarks.cli", "benchmarks.reproduce", "benchmarks.reproduce_common",
     "benchmarks.reproduce_targets", "benchmarks.sane_validation",
     "benchmarks.reproduce_hetero", "benchmarks.provenance", "benchmarks.perf"),
    # ranks methods: submissions, held-out boards, re-scoring, rendering
    ("benchmarks.leaderboard",),
    # runs a method on tasks (and tabulates results)
    ("benchmarks.runner", "benchmarks.table"),
    # one evaluator per task type
    ("benchmarks.evaluators",),
    # what the evaluators use: methods, task declarations, zoos, rows, scores, results
    ("benchmarks.methods", "benchmarks.tasks", "benchmarks.zoo", "benchmarks.splits",
     "benchmarks.scoring", "benchmarks.heads", "benchmarks.finetune", "benchmarks.data",
     "benchmarks.results"),
    # the plug-in registries and the errors
    ("benchmarks.registry", "benchmarks.errors"),
)

#: Upward imports allowed for type checking only (the test checks they never run): the
#: registries name the classes they hold (their entries are found at run time by name).
TYPE_ONLY_UPWARD = {
    ("benchmarks.registry", "benchmarks.evaluators.base"),
    ("benchmarks.registry", "benchmarks.tasks.metadata"),
}


def layer_of(module: str) -> int:
    """Index in :data:`LAYERS` of ``module``'s layer (0 is the top)."""
    best, found = -1, None
    for i, layer in enumerate(LAYERS):
        for prefix in layer:
            hit = module == prefix if prefix == "benchmarks" else (
                module == prefix or module.startswith(prefix + "."))
            if hit and len(prefix) > best:
                best, found = len(prefix), i
    assert found is not None, f"{module} is in no layer of LAYERS; add it to one"
    return found


def upward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Edges of ``graph`` from a module to one in a higher layer (sorted)."""
    return sorted((a, b) for a, targets in graph.items() for b in targets
                  if layer_of(b) < layer_of(a) and (a, b) not in TYPE_ONLY_UPWARD)


def test_benchmarks_layers_only_look_down() -> None:
    graph = import_graph("benchmarks", type_checking=True)
    assert {"benchmarks.leaderboard.score", "benchmarks.evaluators.base",
            "benchmarks.runner", "benchmarks.zoo"} <= set(graph)
    bad = upward_imports(graph)
    assert not bad, "imports into a higher layer: " + "; ".join(
        f"{a} ({LAYERS[layer_of(a)][0]}) -> {b} ({LAYERS[layer_of(b)][0]})" for a, b in bad)
    runtime = import_graph("benchmarks")
    for a, b in TYPE_ONLY_UPWARD:
        assert b in graph[a] and b not in runtime[a], f"{a} -> {b} must stay type-only"
    # nothing below the leaderboard names it, not even for annotations
    below = [m for m in graph if layer_of(m) > layer_of("benchmarks.leaderboard")]
    assert {"benchmarks.runner", "benchmarks.evaluators.property", "benchmarks.zoo",
            "benchmarks.methods.base", "benchmarks.tasks.metadata"} <= set(below)
    assert not [(m, t) for m in below for t in graph[m] if t.startswith("benchmarks.leaderboard")]


def test_layer_check_finds_planted_upward_imports() -> None:
    graph = import_graph("benchmarks", type_checking=True)
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                     "    from benchmarks.leaderboard.score import HeldOutZoo\n"
                     "def f():\n    from benchmarks.leaderboard.view import ViewedZoo\n")
    found = {n.module for n in runtime_nodes(tree, type_checking=True)
             if isinstance(n, ast.ImportFrom)}
    assert {"benchmarks.leaderboard.score", "benchmarks.leaderboard.view"} <= found
    graph["benchmarks.evaluators.base"].add("benchmarks.leaderboard.score")  # type-level
    graph["benchmarks.runner"].add("benchmarks.leaderboard.view")  # inside a function
    assert upward_imports(graph) == [
        ("benchmarks.evaluators.base", "benchmarks.leaderboard.score"),
        ("benchmarks.runner", "benchmarks.leaderboard.view")]
