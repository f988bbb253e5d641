"""The codec and the rules stay pure: they take parsed data and never touch files, the
environment, the clock's source, the database or the network — loading belongs to the
composition root (:mod:`gateway.loading`). Checked on the source, by its imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

GATEWAY = Path(__file__).resolve().parents[2] / "gateway"
PURE = sorted([*(GATEWAY / "ei").glob("*.py"), *(GATEWAY / "rules").glob("*.py")])
# Modules that do I/O or belong to the outer rings.
FORBIDDEN = (
    "os",
    "pathlib",
    "shutil",
    "socket",
    "sqlite3",
    "psycopg",
    "subprocess",
    "tempfile",
    "twisted.internet",
    "adapters",
    "gateway.app",
    "gateway.config",
    "gateway.loading",
    "gateway.resources",
    "gateway.ports",
)


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("path", PURE, ids=[p.relative_to(GATEWAY).as_posix() for p in PURE])
def test_the_core_imports_no_io(path: Path) -> None:
    bad = [
        f"{path.relative_to(GATEWAY.parent)}:{line}: imports {name}"
        for line, name in _imports(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    ]
    assert bad == []


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from pathlib import Path\nimport gateway.config\n", encoding="utf-8")
    assert [name for _, name in _imports(module)] == ["pathlib", "gateway.config"]
