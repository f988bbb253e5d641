"""Layouts are data: the shipped files load, and a broken one is a clear error naming it."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import date
from pathlib import Path

import pytest

from gateway.ei import EIError, FieldLayout, LayoutError, LayoutRegistry
from gateway.loading import load_layouts
from gateway.resources import schemas_dir

LAYOUTS = schemas_dir() / "layouts"


@pytest.mark.parametrize(
    ("standard", "kind", "code", "version", "length"),
    [
        ("ZH308", "declaration", "101", "09", 610),
        ("ZH309", "retour", "102", "09", 670),
        ("ZH308", "declaration", "101", "08", 570),
        ("ZH309", "retour", "102", "08", 630),
        ("KZ301", "declaration", "133", "03", 310),
        ("KZ302", "retour", "134", "03", 370),
        ("VK301", "declaration", "141", "02", 310),
        ("VK302", "retour", "142", "02", 370),
    ],
)
def test_the_shipped_standards(
    registry: LayoutRegistry, standard: str, kind: str, code: str, version: str, length: int
) -> None:
    layout = registry.by_standard(standard, version)
    assert (layout.kind, layout.code, layout.version, layout.record_length) == (
        kind,
        code,
        version,
        length,
    )
    assert registry.lookup(code, version, layout.subversion) is layout
    assert layout.status in ("confirmed", "modelled")
    for rec in layout.records.values():
        assert rec.length == length
        assert len(rec.blank) == length
        assert rec.fields[0].name == "kenmerk"
        assert sum(f.length for f in rec.fields) == length


def test_frames_are_not_standards(registry: LayoutRegistry) -> None:
    assert "generic-310" not in [layout.id for layout in registry.standards()]
    assert registry.by_id("generic-310").kind == "frame"


def test_every_declaration_has_a_retour_that_answers_it(registry: LayoutRegistry) -> None:
    for layout in registry.standards():
        if layout.kind != "declaration":
            continue
        retour = registry.retour_of(layout)
        assert retour.answers == layout.id
        for type_, rec in layout.records.items():
            if rec.position == "last":
                continue
            # A retour record starts with the declaration's record, field for field.
            head = [f for f in retour.record(type_).fields if f.end <= layout.record_length]
            assert [(f.name, f.start, f.length, f.kind) for f in head] == [
                (f.name, f.start, f.length, f.kind) for f in rec.fields
            ]


def test_lookups_of_what_is_not_there(registry: LayoutRegistry) -> None:
    kz301 = registry.by_standard("KZ301")
    assert registry.lookup("133", "02", "01") is None
    assert registry.knows_code("133")
    assert not registry.knows_code("999")
    with pytest.raises(KeyError, match="no layout"):
        registry.by_id("XX000")
    with pytest.raises(KeyError, match="no layout for standard"):
        registry.by_standard("XX000")
    with pytest.raises(KeyError, match="no layout for standard 'ZH308' version 07"):
        registry.by_standard("ZH308", "07")
    assert registry.by_standard("ZH308").version == "09"  # the newest
    assert registry.by_standard("ZH308", "08").record_length == 570
    with pytest.raises(KeyError, match="no retour layout"):
        registry.retour_of(registry.by_standard("KZ302"))
    with pytest.raises(KeyError, match="no record type 16"):
        kz301.record("16")
    with pytest.raises(KeyError, match="no field 'nope'"):
        kz301.record("04").field("nope")
    assert kz301.label == "KZ301 v3.2"


def test_the_declared_total_is_the_sum_of_the_prestatie_amounts(registry: LayoutRegistry) -> None:
    kz301 = registry.by_standard("KZ301")
    assert [(t, f.name) for t, f in kz301.totals("declared")] == [("04", "declared_amount")]
    # ZH308's amounts are on its 06 tariefrecords, in both versions
    for version in ("08", "09"):
        zh308 = registry.by_standard("ZH308", version)
        assert [(t, f.name) for t, f in zh308.totals("declared")] == [("06", "declared_amount")]


def test_every_field_slices_its_own_positions(registry: LayoutRegistry) -> None:
    for layout in registry.standards():
        for record in layout.records.values():
            for f in record.fields:
                assert f.slice == slice(f.start - 1, f.end), (layout.id, record.type, f.name)
                assert len(record.blank[f.slice]) == f.length
    moved = dataclasses.replace(_field("number", length=4), start=5)
    assert moved.slice == slice(4, 8)


# --- fields ---------------------------------------------------------------------------------


def _field(kind: str, type_: str = "N", length: int = 8) -> FieldLayout:
    return FieldLayout(
        id="0000",
        code="TST000",
        name="f",
        type=type_,  # type: ignore[arg-type]
        kind=kind,  # type: ignore[arg-type]
        start=1,
        length=length,
        required="O",
        label="test field",
    )


@pytest.mark.parametrize(
    ("kind", "type_", "length", "raw", "value"),
    [
        ("date", "N", 8, b"20260724", date(2026, 7, 24)),
        ("date", "N", 8, b"00000000", None),
        ("amount", "N", 9, b"00043750D", 43750),
        ("amount", "N", 9, b"00043750C", -43750),
        ("amount", "N", 9, b"00000000D", 0),
        ("number", "N", 4, b"0007", 7),
        ("code", "N", 3, b"044", "044"),
        ("text", "AN", 8, b"Jansen  ", "Jansen"),
        ("text", "AN", 4, b"    ", ""),
        ("reserve", "AN", 3, b"   ", "   "),
        ("dc", "AN", 1, b"C", "C"),
        ("dc", "AN", 1, b" ", None),
    ],
)
def test_decode_and_encode_are_inverse(
    kind: str, type_: str, length: int, raw: bytes, value: object
) -> None:
    f = _field(kind, type_, length)
    assert f.decode(raw) == value
    assert f.encode(f.decode(raw)) == raw


@pytest.mark.parametrize(
    ("kind", "type_", "length", "raw"),
    [
        ("date", "N", 8, b"20260231"),
        ("date", "N", 8, b"2026-7-1"),
        ("amount", "N", 9, b"00043750X"),
        ("amount", "N", 9, b"0004375 D"),
        ("number", "N", 4, b"12A4"),
        ("code", "N", 3, b" 44"),
        ("dc", "AN", 1, b"+"),
    ],
)
def test_decoding_a_value_of_the_wrong_type_is_the_codecs_error(
    kind: str, type_: str, length: int, raw: bytes
) -> None:
    with pytest.raises(EIError) as caught:
        _field(kind, type_, length).decode(raw)
    assert caught.value.finding.value == raw.decode("latin-1")
    assert caught.value.finding.field == "0000"


@pytest.mark.parametrize(
    ("kind", "type_", "length", "value"),
    [
        ("text", "AN", 4, "too long"),
        ("text", "AN", 4, "€uro"),
        ("number", "N", 2, 100),
        ("number", "N", 4, -1),
        ("date", "N", 8, "20260724"),
        ("amount", "N", 4, 10_000),
        ("amount", "N", 9, "12"),
    ],
)
def test_a_value_that_does_not_fit_is_refused(
    kind: str, type_: str, length: int, value: str | int
) -> None:
    with pytest.raises(EIError, match="cannot write value"):
        _field(kind, type_, length).encode(value)


# --- broken layout files --------------------------------------------------------------------


@pytest.fixture
def layouts(tmp_path: Path) -> Path:
    target = tmp_path / "layouts"
    shutil.copytree(LAYOUTS, target)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_a_copy_of_the_shipped_layouts_loads(layouts: Path) -> None:
    assert [lay.id for lay in load_layouts(layouts)] == [
        lay.id for lay in load_layouts().standards()
    ]


def test_a_file_that_is_not_xml_is_named(layouts: Path) -> None:
    broken = layouts / "KZ301-3.2.xml"
    _edit(broken, "</layout>", "</layou>")
    with pytest.raises(LayoutError, match=r"KZ301-3\.2\.xml.*not well-formed"):
        load_layouts(layouts)


def test_a_file_that_does_not_match_the_xsd_is_named(layouts: Path) -> None:
    broken = layouts / "VK301-2.2.xml"
    _edit(broken, 'record-length="310"', 'record-length="three hundred"')
    with pytest.raises(LayoutError, match=r"VK301-2\.2\.xml: does not match ei-layout\.xsd"):
        load_layouts(layouts)


def test_overlapping_fields_are_named_by_file_record_and_field(layouts: Path) -> None:
    frame = layouts / "frame-generic-310.xml"
    _edit(
        frame,
        'name="surname" type="AN" kind="text" start="64" length="25"',
        'name="surname" type="AN" kind="text" start="64" length="26"',
    )
    with pytest.raises(LayoutError) as caught:
        load_layouts(layouts)
    message = str(caught.value)
    assert "frame-generic-310.xml" in message
    assert "record 02" in message
    assert "gap or overlap" in message


def test_fields_that_stop_short_of_the_record_length(layouts: Path) -> None:
    _edit(layouts / "frame-generic-310.xml", 'start="46" length="265"', 'start="46" length="264"')
    with pytest.raises(LayoutError, match="fields end at 309, record length is 310"):
        load_layouts(layouts)


def test_inheriting_from_an_unknown_layout(layouts: Path) -> None:
    _edit(layouts / "VK301-2.2.xml", 'inherit layout="generic-310"', 'inherit layout="generic-311"')
    with pytest.raises(LayoutError, match="unknown layout 'generic-311'"):
        load_layouts(layouts)


def test_two_files_claiming_the_same_standard_version(layouts: Path) -> None:
    _edit(layouts / "VK301-2.2.xml", 'code="141"', 'code="133"')
    _edit(layouts / "VK301-2.2.xml", 'version="02" subversion="02"', 'version="03" subversion="02"')
    with pytest.raises(LayoutError, match=r"code 133 version 03\.02 is also claimed by"):
        load_layouts(layouts)


def test_a_layout_file_with_a_dtd_is_refused(layouts: Path) -> None:
    path = layouts / "KZ301-3.2.xml"
    text = path.read_text(encoding="utf-8")
    xxe = '<!DOCTYPE layout [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
    path.write_text(text.replace("<layout ", xxe + "<layout ", 1), encoding="utf-8")
    with pytest.raises(LayoutError, match=r"KZ301-3\.2\.xml: document type declarations"):
        load_layouts(layouts)


def test_an_empty_layout_directory(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="no layout files"):
        load_layouts(tmp_path)
