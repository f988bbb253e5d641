"""The house's import rules, checked on the source (ast, every import including those
inside functions):

* no two modules import each other, directly or round a longer circle;
* the core (``gateway/``) imports no adapter, except in the composition root — the
  builder, ``serve`` and the command line, which wire adapters to services;
* the pure core's own rules (no I/O in ``gateway/ei`` and ``gateway/rules``) are in
  :mod:`tests.gateway.test_purity`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gateway", "adapters")
# The composition root: the only core modules that may import adapters.
COMPOSITION_ROOT = ("gateway.app", "gateway.builder", "gateway.cli")


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    """Every module of ``packages`` below ``root``, by dotted name."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            found[_module_name(path, root)] = path
    return found


def _imported_names(name: str, path: Path) -> Iterable[tuple[int, str]]:
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


def import_graph(found: Mapping[str, Path]) -> dict[str, dict[str, int]]:
    """For each module, the project modules it imports (with the first line that does)."""
    graph: dict[str, dict[str, int]] = {}
    for name, path in found.items():
        edges: dict[str, int] = {}
        for line, imported in _imported_names(name, path):
            target = imported
            while target and target not in found:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                edges.setdefault(target, line)
        graph[name] = edges
    return graph


def circles(graph: Mapping[str, Mapping[str, int]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, targets = work[-1]
            advanced = False
            for target in targets:
                if target not in graph:
                    continue
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    advanced = True
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def _in(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def core_to_adapter(graph: Mapping[str, Mapping[str, int]]) -> list[str]:
    """``module:line -> adapter`` for every core module outside the composition root
    that imports an adapter."""
    return [
        f"{name}:{line} -> {target}"
        for name, edges in sorted(graph.items())
        if _in(name, ("gateway",)) and not _in(name, COMPOSITION_ROOT)
        for target, line in sorted(edges.items())
        if _in(target, ("adapters",))
    ]


GRAPH = import_graph(modules())


def test_no_two_modules_import_each_other() -> None:
    assert circles(GRAPH) == []


def test_the_core_imports_no_adapter_outside_the_composition_root() -> None:
    assert core_to_adapter(GRAPH) == []


def _house(tmp_path: Path, files: Mapping[str, str]) -> dict[str, dict[str, int]]:
    for relative, text in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return import_graph(modules(tmp_path))


def test_the_check_sees_a_circle_also_through_a_function_local_import(tmp_path: Path) -> None:
    graph = _house(
        tmp_path,
        {
            "gateway/__init__.py": "",
            "gateway/a.py": "from gateway.b import thing\n",
            "gateway/b.py": "def f():\n    from gateway import c\n",
            "gateway/c.py": "from . import a\n",
            "adapters/__init__.py": "",
        },
    )
    assert circles(graph) == [["gateway.a", "gateway.b", "gateway.c"]]


def test_the_check_sees_a_core_module_importing_an_adapter(tmp_path: Path) -> None:
    graph = _house(
        tmp_path,
        {
            "gateway/__init__.py": "",
            "gateway/core.py": "import adapters.db\n",
            "gateway/app.py": "from adapters.db import Db\n",
            "gateway/cli/__init__.py": "",
            "gateway/cli/serve.py": "from adapters import db\n",
            "adapters/__init__.py": "",
            "adapters/db.py": "from gateway.core import x\n",
        },
    )
    assert core_to_adapter(graph) == ["gateway.core:1 -> adapters.db"]
    assert circles(graph) == [["adapters.db", "gateway.core"]]
