"""The composition root's loaders for the codec: the layout and retourcode documents are
read here and the pure ``gateway.ei`` is built from them (the rules' inputs are read by
:mod:`gateway.terms`). Light on purpose: the codec commands import only this and the codec.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path

from gateway.ei.layout import LayoutError, LayoutRegistry, build_layouts
from gateway.ei.retourcodes import Retourcode, RetourcodeError, build_retourcodes, describe_in
from gateway.resources import schemas_dir
from gateway.xmlsafe import XMLError, load_schema

__all__ = [
    "describe",
    "load_layouts",
    "load_retourcodes",
]


def load_layouts(directory: Path | None = None) -> LayoutRegistry:
    """Every layout file in ``directory`` (default: ``schemas/layouts``), checked.

    Raises :class:`~gateway.ei.layout.LayoutError` naming the file and what is wrong.
    """
    base = schemas_dir()
    directory = directory or base / "layouts"
    try:
        schema = load_schema(base / "ei-layout.xsd")
    except (OSError, XMLError) as exc:
        raise LayoutError(f"cannot load the layout schema: {exc}") from None
    files = sorted(directory.glob("*.xml"))
    if not files:
        raise LayoutError(f"no layout files in {directory}")
    documents = []
    for path in files:
        try:
            documents.append((str(path), path.read_bytes()))
        except OSError as exc:
            raise LayoutError(f"{path}: {exc.strerror}") from None
    return build_layouts(documents, schema)


def load_retourcodes(path: Path | None = None) -> Mapping[str, Retourcode]:
    """The retourcode list at ``path`` (default: ``schemas/retourcodes.xml``), checked."""
    base = schemas_dir()
    path = path or base / "retourcodes.xml"
    try:
        schema = load_schema(base / "retourcodes.xsd")
        data = path.read_bytes()
    except (OSError, XMLError) as exc:
        raise RetourcodeError(str(exc)) from None
    return build_retourcodes(data, str(path), schema)


@cache
def _shipped_retourcodes() -> Mapping[str, Retourcode]:
    return load_retourcodes()


def describe(code: str) -> str:
    """The Dutch meaning of ``code`` in the shipped list, or a clear placeholder."""
    return describe_in(_shipped_retourcodes(), code)
