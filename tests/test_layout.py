"""The package's layout (docs/design.md, "Layout"): the layers below the models, the models below
training, training below the command line and the server, and no import cycle between modules,
not even through an import inside a function (a lazy import is still a dependency: the two
modules can no longer be read, tested or moved one without the other). Read from the source
with ``ast``, so that nothing is imported to check it."""

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "handgrad"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Each module of handgrad -> the handgrad modules it imports, anywhere in its body."""
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                # `from . import x` imports the submodule x where one exists
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                           for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:  # handgrad.layers.Affine -> handgrad.layers
                    target = target.rpartition(".")[0]
                if target and target != name:
                    found.add(target)
        graph[name] = found
    return graph


GRAPH = _imports()


def _third_party(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            roots.add(node.module.split(".")[0])
    return {root for root in roots if root not in sys.stdlib_module_names and root != "__future__"}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, components, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _below(package: str) -> set[str]:
    return {name for name in GRAPH if name == package or name.startswith(package + ".")}


def test_the_graph_is_read_from_the_source():
    assert "handgrad.layers.dense" in GRAPH and "handgrad.train" in GRAPH
    assert "handgrad.functions" in GRAPH["handgrad.layers.dense"] or any(
        "handgrad.functions" in GRAPH[name] for name in _below("handgrad.layers"))


def test_no_two_modules_import_each_other_even_lazily():
    """The serve/models <-> serve/drawn cycle (drawn imported pixels_from_drawing inside a
    function) was the last one; the preparation is now passed in."""
    # The package's own __init__ re-exports everything and is imported by everything: leave it out.
    graph = {name: targets - {"handgrad"} for name, targets in GRAPH.items() if name != "handgrad"}
    assert _cycles(graph) == []


@pytest.mark.parametrize("lower, higher", [
    ("handgrad.layers", ("handgrad.model", "handgrad.train", "handgrad.cli", "handgrad.serve", "handgrad.registry")),
    ("handgrad.model", ("handgrad.train", "handgrad.cli", "handgrad.serve", "handgrad.registry")),
    ("handgrad.distributed", ("handgrad.train", "handgrad.cli")),
    ("handgrad.train", ("handgrad.cli", "handgrad.serve")),
])
def test_a_lower_layer_never_imports_a_higher_one(lower, higher):
    offending = sorted((name, target) for name in _below(lower) for target in GRAPH[name]
                       if any(target == h or target.startswith(h + ".") for h in higher))
    assert offending == [], f"{lower} must not depend on {', '.join(higher)}"


@pytest.mark.parametrize("module", ["functions.py", "validate.py"])
def test_the_maths_and_the_checks_need_only_numpy(module):
    path = PACKAGE / module
    assert _third_party(path) <= {"numpy"}
    assert {target for target in GRAPH[_module_name(path)]} <= {"handgrad"}
