"""The retourcode list (Vektis COD954) from ``schemas/retourcodes.xml``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType

from gateway.resources import schemas_dir
from gateway.xmlsafe import XMLError, load_schema, parse_xml

__all__ = ["Retourcode", "RetourcodeError", "describe", "load_retourcodes"]

_NS = "{urn:igo-gateway:retourcodes:1}"


class RetourcodeError(Exception):
    """The retourcode list cannot be loaded."""


@dataclass(frozen=True, slots=True)
class Retourcode:
    code: str
    meaning: str  # Dutch, as shown to administrators
    english: str
    status: str  # confirmed | modelled


def load_retourcodes(path: Path | None = None) -> Mapping[str, Retourcode]:
    base = schemas_dir()
    path = path or base / "retourcodes.xml"
    try:
        schema = load_schema(base / "retourcodes.xsd")
        root = parse_xml(path.read_bytes(), source=str(path))
    except (OSError, XMLError) as exc:
        raise RetourcodeError(str(exc)) from None
    if not schema.validate(root):
        errors = "; ".join(f"line {e.line}: {e.message}" for e in schema.error_log)
        raise RetourcodeError(f"{path}: does not match retourcodes.xsd: {errors}")
    codes: dict[str, Retourcode] = {}
    for el in root.iterfind(f"{_NS}code"):
        code = str(el.get("value"))
        if code in codes:
            raise RetourcodeError(f"{path}: retourcode {code} is listed twice")
        codes[code] = Retourcode(
            code=code,
            meaning=(el.text or "").strip(),
            english=str(el.get("en")),
            status=str(el.get("status")),
        )
    return MappingProxyType(codes)


@cache
def _default() -> Mapping[str, Retourcode]:
    return load_retourcodes()


def describe(code: str) -> str:
    """The Dutch meaning of ``code``, or a clear placeholder for a code not in the list."""
    entry = _default().get(code)
    return entry.meaning if entry else f"Onbekende retourcode {code}."
