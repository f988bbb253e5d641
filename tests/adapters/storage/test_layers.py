"""The storage modules form layers: no module of ``adapters/storage`` imports another that
imports it back, directly or through others — at module level, inside a function, or only
for type checking. The imports are read from the source (``ast``), not by importing."""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

import adapters.storage

PACKAGE = "adapters.storage"
ROOT = Path(adapters.storage.__file__).parent


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((PACKAGE, *parts))


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _imported(path: Path, name: str, modules: set[str]) -> set[str]:
    """The storage modules the module ``name`` at ``path`` imports, anywhere in it."""
    found: set[str] = set()
    package = name if _is_package(path) else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            # ``from package import module`` imports the module; a name imports its module.
            targets = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            # ``import a.b.c`` runs a, a.b and a.b.c: the deepest storage module counts.
            module = target
            while module and module not in modules:
                module = module.rpartition(".")[0]
            if module and module != name:
                found.add(module)
    return found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    paths = {_module_name(path, root): path for path in sorted(root.rglob("*.py"))}
    modules = set(paths)
    return {name: _imported(path, name, modules) for name, path in paths.items()}


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Every import cycle, each once, as the modules along it (Tarjan's strongly connected
    components of more than one module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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


def test_no_storage_module_imports_one_that_imports_it() -> None:
    assert cycles(import_graph()) == []


def test_the_facade_is_the_top_and_the_journal_the_bottom() -> None:
    graph = import_graph()
    # The package itself may import the facade (``open_store``); no module below it does.
    importers = {name for name, targets in graph.items() if "adapters.storage.facade" in targets}
    assert importers == {"adapters.storage"}
    assert graph["adapters.storage.journal"] <= {
        "adapters.storage._values",
        "adapters.storage.database",
    }


def test_the_check_finds_a_cycle_through_a_function_local_import(tmp_path: Path) -> None:
    """The check itself: two modules that import each other, one of them only inside a
    function, and a longer cycle over three."""
    package = tmp_path / "storage"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from adapters.storage.b import x\n")
    (package / "b.py").write_text("def f():\n    from adapters.storage import a\n")
    (package / "c.py").write_text("from adapters.storage.d import y\n")
    (package / "d.py").write_text("import adapters.storage.e\n")
    (package / "e.py").write_text("from . import c\n")
    (package / "f.py").write_text("from adapters.storage.a import x\n")
    graph = import_graph(package)
    assert cycles(graph) == [
        ["adapters.storage.a", "adapters.storage.b"],
        ["adapters.storage.c", "adapters.storage.d", "adapters.storage.e"],
    ]
