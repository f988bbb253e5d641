"""Every XML entry point refuses XXE, billion-laughs and external-DTD documents, and no
code parses XML anywhere but through gateway.xmlsafe."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import lxml.etree
import pytest

from gateway.ei import LayoutError
from gateway.ei.retourcodes import RetourcodeError
from gateway.loading import load_layouts, load_retourcodes
from gateway.xmlsafe import UnsafeXMLError, XMLError, load_schema, parse_xml

ROOT = Path(__file__).resolve().parents[2]

XXE_FILE = b"""<?xml version="1.0"?>
<!DOCTYPE layout [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<layout>&secret;</layout>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<lolz>&lol9;</lolz>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE layout SYSTEM "http://127.0.0.1:9/evil.dtd">
<layout/>"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/x.dtd"> %remote;]>
<x/>"""

HOSTILE = {
    "xxe": XXE_FILE,
    "billion-laughs": BILLION_LAUGHS,
    "external-dtd": EXTERNAL_DTD,
    "parameter-entity": PARAMETER_ENTITY,
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_parse_xml_refuses_hostile_documents(name: str) -> None:
    with pytest.raises(UnsafeXMLError):
        parse_xml(HOSTILE[name], source=name)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_schema_file_is_refused(name: str, tmp_path: Path) -> None:
    path = tmp_path / "schema.xsd"
    path.write_bytes(HOSTILE[name])
    with pytest.raises(UnsafeXMLError):
        load_schema(path)


def _load_layouts(path: Path) -> object:
    return load_layouts(path.parent)


def _load_retourcodes(path: Path) -> object:
    return load_retourcodes(path)


@pytest.mark.parametrize(
    ("loader", "error"),
    [(_load_layouts, LayoutError), (_load_retourcodes, RetourcodeError)],
    ids=["layouts", "retourcodes"],
)
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_the_data_file_loaders_refuse_hostile_files(
    loader: Callable[[Path], object], error: type[Exception], name: str, tmp_path: Path
) -> None:
    path = tmp_path / "hostile.xml"
    path.write_bytes(HOSTILE[name])
    with pytest.raises(error, match="document type declarations are not accepted"):
        loader(path)


def test_a_declaration_hidden_in_utf16_is_refused_too() -> None:
    document = XXE_FILE.replace(
        b'<?xml version="1.0"?>', b'<?xml version="1.0" encoding="UTF-16"?>'
    )
    with pytest.raises(UnsafeXMLError):
        parse_xml(document.decode("ascii").encode("utf-16"), source="utf16.xml")


def test_malformed_xml_is_a_clear_error() -> None:
    with pytest.raises(XMLError, match="not well-formed"):
        parse_xml(b"<a><b></a>", source="broken.xml")


def test_lxml_is_a_patched_release() -> None:
    # Older lxml resolved entities in iterparse even when told not to.
    assert lxml.etree.LXML_VERSION >= (6, 1, 0, 0)


def test_no_code_parses_xml_outside_xmlsafe() -> None:
    pattern = re.compile(r"etree\.(fromstring|parse|iterparse|XML|XMLParser|XMLPullParser)\(")
    offenders = []
    for package in ("gateway", "adapters"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name == "xmlsafe.py":
                continue
            if pattern.search(path.read_text(encoding="utf-8")):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
