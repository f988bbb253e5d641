"""The retourcode list (Vektis COD954), built from the document the composition root reads
(``schemas/retourcodes.xml``, :mod:`gateway.loading`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from lxml import etree

from gateway.errors import ErrorKind, GatewayError
from gateway.xmlsafe import XMLError, parse_xml

__all__ = ["Retourcode", "RetourcodeError", "build_retourcodes", "describe_in"]

_NS = "{urn:igo-gateway:retourcodes:1}"


class RetourcodeError(GatewayError):
    """The retourcode list cannot be loaded."""

    code = "retourcodes-invalid"
    kind = ErrorKind.MISCONFIGURED


@dataclass(frozen=True, slots=True)
class Retourcode:
    code: str
    meaning: str  # Dutch, as shown to administrators
    english: str
    status: str  # confirmed | modelled


def build_retourcodes(
    data: bytes, source: str, schema: etree.XMLSchema
) -> Mapping[str, Retourcode]:
    """The retourcode list in ``data`` (read by the composition root:
    :func:`gateway.loading.load_retourcodes`), checked against ``schema``."""
    try:
        root = parse_xml(data, source=source)
    except XMLError as exc:
        raise RetourcodeError(str(exc)) from None
    if not schema.validate(root):
        errors = "; ".join(f"line {e.line}: {e.message}" for e in schema.error_log)
        raise RetourcodeError(f"{source}: does not match retourcodes.xsd: {errors}")
    codes: dict[str, Retourcode] = {}
    for el in root.iterfind(f"{_NS}code"):
        code = str(el.get("value"))
        if code in codes:
            raise RetourcodeError(f"{source}: retourcode {code} is listed twice")
        codes[code] = Retourcode(
            code=code,
            meaning=(el.text or "").strip(),
            english=str(el.get("en")),
            status=str(el.get("status")),
        )
    return MappingProxyType(codes)


def describe_in(codes: Mapping[str, Retourcode], code: str) -> str:
    """The Dutch meaning of ``code`` in ``codes``, or a clear placeholder for a code not
    in the list."""
    entry = codes.get(code)
    return entry.meaning if entry else f"Onbekende retourcode {code}."
