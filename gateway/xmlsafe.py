"""The one place where XML is parsed.

Every XML document the gateway reads goes through :func:`parse_xml`, which uses an lxml
parser with entity resolution, network access and DTD loading switched off. A document
that declares a DTD at all is refused, which stops XXE, billion-laughs and external-DTD
documents before any of their content is looked at.
"""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from gateway.errors import ErrorKind, GatewayError

__all__ = ["UnsafeXMLError", "XMLError", "load_schema", "parse_xml"]


class XMLError(GatewayError, ValueError):
    """An XML document could not be read (malformed, unsafe, or not valid)."""

    code = "xml-invalid"
    kind = ErrorKind.INVALID


class UnsafeXMLError(XMLError):
    """An XML document carried a DTD or entity declarations, which are never accepted."""

    code = "xml-unsafe"


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse_xml(data: bytes, *, source: str = "<bytes>") -> etree._Element:
    """Parse ``data`` with the hardened parser and return its root element.

    Raises :class:`UnsafeXMLError` for any document with a document type declaration
    and :class:`XMLError` for anything else that is not well-formed XML.
    """
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        # Refused before the parser sees it (a billion-laughs document would otherwise be
        # stopped only by libxml2's amplification limit, as a mere syntax error).
        raise UnsafeXMLError(f"{source}: document type declarations are not accepted")
    try:
        tree = etree.fromstring(data, parser=_parser()).getroottree()
    except etree.XMLSyntaxError as exc:
        raise XMLError(f"{source}: not well-formed XML: {exc}") from None
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:  # e.g. in UTF-16
        raise UnsafeXMLError(f"{source}: document type declarations are not accepted")
    return tree.getroot()


def load_schema(path: Path) -> etree.XMLSchema:
    """Load an XSD from ``path`` through the hardened parser."""
    root = parse_xml(path.read_bytes(), source=str(path))
    try:
        return etree.XMLSchema(root)
    except etree.XMLSchemaParseError as exc:
        raise XMLError(f"{path}: not a usable XML schema: {exc}") from None
