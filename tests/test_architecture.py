"""The library's import structure: no import cycles, and no private name imported from another module."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"robust_prune": ROOT / "robust_prune", "robust_prune.adapters": ROOT / "adapters"}


def _modules() -> dict[str, Path]:
    """Module name -> file, for the library (adapters/ ships as robust_prune.adapters)."""
    found: dict[str, Path] = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            name = ".".join((package, *parts))
            found[name.removesuffix(".__init__")] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path) -> list[tuple[str, list[str]]]:
    """(module imported, names taken from it) for every import statement, at any depth, outside TYPE_CHECKING."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, list[str]]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.append((base, [alias.name for alias in node.names]))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for target, names in _imports(name, path):
            submodules = {f"{target}.{n}" for n in names} & set(modules)  # ``from package import module``
            graph[name] |= submodules
            # a package's __init__ counts only when a name defined there is taken (every import of a submodule
            # runs its package's __init__ first, which is no cycle of this library's making)
            if target in modules and target != name and (not names or len(submodules) < len(names)):
                graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_the_graph_sees_the_imports() -> None:
    graph = _graph()
    assert "robust_prune.config" in graph["robust_prune.methods.dense"]
    assert "robust_prune.methods.lottery" in graph["robust_prune.api"]  # ``from .methods import lottery``
    assert "robust_prune.adapters" in graph["robust_prune.models"]


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_no_private_name_is_imported_from_another_module() -> None:
    modules = _modules()
    offenders = []
    for name, path in modules.items():
        for target, names in _imports(name, path):
            if not target.startswith("robust_prune"):
                continue
            private = [
                n for n in names if n.startswith("_") and not n.endswith("__") and f"{target}.{n}" not in modules
            ]
            offenders += [f"{name}: from {target} import {n}" for n in private]
    assert offenders == []
