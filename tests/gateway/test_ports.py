"""Services and adapters meet only at the ports: an adapter imports :mod:`gateway.ports` and
the pure domain, never a service (except the composition root, which wires them), and the
ports import neither. Checked on the source, by its imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PORTS = sorted((ROOT / "gateway" / "ports").glob("*.py"))
ADAPTERS = sorted((ROOT / "adapters").rglob("*.py"))

# The services: they move work between the store and the ports, and the composition root
# builds them. (A package stands for every module in it.)
SERVICES = (
    "gateway.app",
    "gateway.cli",
    "gateway.bundler",
    "gateway.collector",
    "gateway.forwarder",
    "gateway.intake",
    "gateway.jobs",
    "gateway.notices",
    "gateway.reprocess",
    "gateway.resolution",
    "gateway.schedule",
    "gateway.unpacker",
    "gateway.admin.bulk",
    "gateway.admin.service",
)
# The adapters that are part of the composition root: they build services and may import
# them (the admin site's ``build_admin_site``, the admin dev server and its demo data, and
# the bundle worker's process, which builds its own bundler).
COMPOSITION_ROOT = (
    "adapters/admin/site.py",
    "adapters/admin/devserver.py",
    "adapters/admin/demo.py",
    "adapters/bundle_workers/worker.py",
)


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports (also inside functions and ``TYPE_CHECKING``); for
    ``from package import name`` both ``package`` and ``package.name``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _offending(path: Path, forbidden: tuple[str, ...], base: Path = ROOT) -> list[str]:
    return [
        f"{path.relative_to(base).as_posix()}:{line}: imports {name}"
        for line, name in _imports(path)
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]


def _module_path(name: str) -> Path:
    base = ROOT.joinpath(*name.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def test_the_lists_name_what_exists() -> None:
    assert PORTS, "gateway/ports/ holds the ports"
    assert [s for s in SERVICES if not _module_path(s).is_file()] == []
    assert [a for a in COMPOSITION_ROOT if not (ROOT / a).is_file()] == []


@pytest.mark.parametrize(
    "path",
    [p for p in ADAPTERS if p.relative_to(ROOT).as_posix() not in COMPOSITION_ROOT],
    ids=lambda p: p.relative_to(ROOT / "adapters").as_posix(),
)
def test_an_adapter_imports_no_service(path: Path) -> None:
    assert _offending(path, SERVICES) == []


@pytest.mark.parametrize("path", PORTS, ids=lambda p: p.name)
def test_the_ports_import_no_service_and_no_adapter(path: Path) -> None:
    assert _offending(path, (*SERVICES, "adapters")) == []


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_nor_does_anything_they_import() -> None:
    """The same, for what the ports and the adapters load through the domain modules they
    import: loaded in a fresh interpreter, they bring in no service."""
    modules = [
        _module_name(p)
        for p in [*PORTS, *ADAPTERS]
        if p.relative_to(ROOT).as_posix() not in COMPOSITION_ROOT
    ]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"forbidden = {SERVICES!r}\n"
        "print('\\n'.join(sorted(m for m in sys.modules "
        "if any(m == f or m.startswith(f + '.') for f in forbidden))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == []


def test_the_check_sees_a_service_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from gateway import bundler\n"
        "from gateway.ports.messages import Message\n"
        "def f():\n"
        "    import adapters.storage\n",
        encoding="utf-8",
    )
    found = [name for _, name in _imports(module)]
    assert "gateway.bundler" in found
    assert "adapters.storage" in found
    assert _offending(module, (*SERVICES, "adapters"), base=tmp_path) == [
        "m.py:1: imports gateway.bundler",
        "m.py:4: imports adapters.storage",
    ]
