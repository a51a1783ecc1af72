"""The import structure of the library and the benchmarks: no import cycles, no private name or module imported
from another package, and dependencies that run one way: the family files (adapters/) import the core's adapter
API, and the core never imports them (the registry loads them by name, once)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "robust_prune": ROOT / "robust_prune",
    "robust_prune.adapters": ROOT / "adapters",
    "benchmarks": ROOT / "benchmarks",
}
FAMILIES = "robust_prune.adapters"
ADAPTER_API = "robust_prune.adapter_api"
# The one module of the core that names the family package: it imports it by name on the registry's first lookup.
FAMILY_LOADER = "robust_prune.adapter_api.registry"


def _modules() -> dict[str, Path]:
    """Module name -> file, for the library (adapters/ ships as robust_prune.adapters) and the benchmarks."""
    found: dict[str, Path] = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            if package == "robust_prune" and (folder / "adapters") in path.parents:
                continue  # a developer's symlink robust_prune/adapters -> ../adapters (read once, from adapters/)
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
    assert ADAPTER_API in graph["robust_prune.models"]
    assert "robust_prune.adapter_api.tracing" in graph["robust_prune.adapters.cspnet"]
    assert "robust_prune.atomic" in graph["benchmarks._common"]


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


def _package(module: str) -> str:
    """The package of PACKAGES that ``module`` belongs to (the longest that contains it)."""
    return max((p for p in PACKAGES if module == p or module.startswith(p + ".")), key=len, default=module)


def test_no_private_module_of_another_package_is_imported() -> None:
    """The benchmarks use the library's public modules, and the family files the adapter API's."""
    offenders = []
    for name, path in _modules().items():
        for target, names in _imports(name, path):
            if not target.startswith(("robust_prune", "benchmarks")) or _package(target) == _package(name):
                continue
            private = [part for part in target.split(".") if part.startswith("_")]
            private += [n for n in names if n.startswith("_") and f"{target}.{n}" in _modules()]
            if private:
                offenders.append(f"{name}: {target} ({', '.join(private)})")
    assert offenders == []


def _names_the_families(path: Path) -> bool:
    """Whether a module has the family package's name as a string (an ``importlib.import_module`` target)."""
    return any(
        isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith(FAMILIES)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
    )


def test_the_core_never_imports_a_family_file() -> None:
    core = {name: path for name, path in _modules().items() if _package(name) == "robust_prune"}
    imports = [
        f"{name}: {target}"
        for name, path in core.items()
        for target, names in _imports(name, path)
        if target.startswith(FAMILIES) or any(f"{target}.{n}".startswith(FAMILIES) for n in names)
    ]
    assert imports == []
    assert [name for name, path in core.items() if _names_the_families(path)] == [FAMILY_LOADER]


def test_family_files_import_only_the_public_adapter_api() -> None:
    families = {name: path for name, path in _modules().items() if _package(name) == FAMILIES}
    assert len(families) > 60 and FAMILIES in families
    offenders = [
        f"{name}: {target}"
        for name, path in families.items()
        for target, _ in _imports(name, path)
        if target.startswith("robust_prune")
        and _package(target) != FAMILIES
        and not (target.startswith(ADAPTER_API) and not any(p.startswith("_") for p in target.split(".")))
    ]
    assert offenders == []
