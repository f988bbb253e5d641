"""Every library the gateway's code imports is declared in pyproject.toml, so that an
upgrade of another package (which happened to bring it along) cannot remove it or move
it to an untested version."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OWN = {"gateway", "adapters", "tests"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {
        _normalise(re.split(r"[\[<>=!~; ]", spec, maxsplit=1)[0])
        for spec in project["dependencies"]
    }


def imported_modules() -> set[str]:
    """Absolute imports of the shipped packages, as dotted names."""
    names: set[str] = set()
    for package in ("gateway", "adapters"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module)
    return {n for n in names if n.split(".")[0] not in OWN | set(sys.stdlib_module_names)}


def distribution_of(module: str) -> str:
    """The installed distribution that provides ``module`` (for a namespace package such
    as ``zope``, the one holding the subpackage)."""
    parts = module.split(".")
    candidates = importlib.metadata.packages_distributions().get(parts[0], [])
    if len(set(candidates)) > 1 and len(parts) > 1:
        prefix = f"{parts[0]}/{parts[1]}"
        candidates = [
            d
            for d in candidates
            if any(str(f).startswith(prefix) for f in importlib.metadata.files(d) or [])
        ]
    assert len(set(candidates)) == 1, (module, candidates)
    return _normalise(candidates[0])


def test_every_directly_imported_library_is_declared() -> None:
    needed = {distribution_of(m): m for m in sorted(imported_modules())}
    missing = {dist: module for dist, module in needed.items() if dist not in declared()}
    assert missing == {}
    assert {"pyopenssl", "zope-interface", "twisted", "cryptography"} <= set(needed)


def test_pyopenssl_is_new_enough_for_cryptography_objects() -> None:
    (spec,) = [
        s
        for s in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
        if _normalise(s.split(">")[0]) == "pyopenssl"
    ]
    minimum = tuple(int(p) for p in spec.split(">=")[1].split("."))
    assert minimum >= (24, 3)  # cryptography certificates, keys and CRLs in contexts and stores
