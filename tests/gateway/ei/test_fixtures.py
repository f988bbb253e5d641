"""The fixture table driven through validate, parse and serialise (whole and in pieces)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from gateway.ei import BadLine, EIError, LayoutRegistry, Record, read_records, validate_bytes
from tests.gateway.ei.fixture_table import INVALID, MESSAGES, ROWS, VALID, Row, chunked

GENERATOR = MESSAGES.parent / "generate.py"
CHUNKS = [None, 1, 7]
# Codes of problems with the lines themselves: such a file has lines that are no record.
LINE_LEVEL = frozenset({"0001", "0010", "0011", "0804", "8095"})


def _ids(rows: list[Row]) -> list[str]:
    return [row.file for row in rows]


def _reads_as_records(row: Row) -> bool:
    return not (row.codes & LINE_LEVEL) and "no-header" not in row.file


def test_the_index_lists_every_fixture_file_once() -> None:
    on_disk = sorted(p.name for p in MESSAGES.glob("*.asc"))
    listed = [row.file for row in ROWS]
    assert sorted(listed) == on_disk
    assert len(set(listed)) == len(listed)


def test_there_is_a_valid_file_for_every_layout(registry: LayoutRegistry) -> None:
    standards = {row.standard for row in VALID}
    assert standards >= {layout.standard for layout in registry.standards()}


def test_every_invalid_file_names_the_codes_it_must_raise() -> None:
    assert INVALID
    for row in INVALID:
        assert row.codes, row.file
        assert all(len(code) == 4 and code.isdigit() for code in row.codes), row.file


@pytest.mark.parametrize("size", CHUNKS, ids=["whole", "1-byte", "7-byte"])
@pytest.mark.parametrize("row", ROWS, ids=_ids(ROWS))
def test_validates_to_exactly_the_manifest_codes(
    registry: LayoutRegistry, row: Row, size: int | None
) -> None:
    result = validate_bytes(registry, chunked(row.read(), size))
    assert result.retourcodes == row.codes, [f.message for f in result.findings]
    assert result.valid is row.valid
    if row.valid:
        assert result.layout is not None
        assert result.layout.standard == row.standard


@pytest.mark.parametrize("row", ROWS, ids=_ids(ROWS))
def test_findings_are_located(registry: LayoutRegistry, row: Row) -> None:
    data = row.read()
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    for finding in validate_bytes(registry, data).findings:
        assert 0 <= finding.record <= lines
        assert finding.message
        if finding.field is not None:
            assert finding.start is not None
            assert finding.end is not None
            assert finding.value is not None
            assert len(finding.value) == finding.end - finding.start + 1


def _records(registry: LayoutRegistry, data: bytes, size: int | None) -> list[Record | BadLine]:
    return list(read_records(registry, chunked(data, size)))


@pytest.mark.parametrize("size", CHUNKS, ids=["whole", "1-byte", "7-byte"])
@pytest.mark.parametrize(
    "row",
    [r for r in ROWS if _reads_as_records(r)],
    ids=_ids([r for r in ROWS if _reads_as_records(r)]),
)
def test_parse_then_serialise_is_byte_for_byte(
    registry: LayoutRegistry, row: Row, size: int | None
) -> None:
    data = row.read()
    events = _records(registry, data, size)
    assert all(isinstance(e, Record) for e in events)
    records = [e for e in events if isinstance(e, Record)]
    assert b"".join(r.to_bytes() for r in records) == data
    assert [r.number for r in records] == list(range(1, len(records) + 1))


@pytest.mark.parametrize("row", ROWS, ids=_ids(ROWS))
def test_chunking_does_not_change_what_is_read(registry: LayoutRegistry, row: Row) -> None:
    def read(size: int | None) -> list[object]:
        try:
            return [
                (e.number, e.raw) if isinstance(e, Record) else e.finding
                for e in _records(registry, row.read(), size)
            ]
        except EIError as exc:
            return [exc.finding]

    whole = read(None)
    assert read(1) == whole
    assert read(7) == whole


def _unreadable(row: Row) -> bool:
    return bool(row.codes & {"0010", "0011"}) or "no-header" in row.file


BROKEN_LINES = [r for r in ROWS if not _reads_as_records(r) and not _unreadable(r) and r.read()]
UNREADABLE = [r for r in ROWS if _unreadable(r)]


@pytest.mark.parametrize("row", BROKEN_LINES, ids=_ids(BROKEN_LINES))
def test_a_broken_line_is_reported_as_a_bad_line(registry: LayoutRegistry, row: Row) -> None:
    events = _records(registry, row.read(), None)
    bad = [e for e in events if isinstance(e, BadLine)]
    assert bad
    assert {e.finding.retourcode for e in bad} <= row.codes


@pytest.mark.parametrize("row", UNREADABLE, ids=_ids(UNREADABLE))
def test_a_file_without_a_known_01_record_cannot_be_read(
    registry: LayoutRegistry, row: Row
) -> None:
    with pytest.raises(EIError) as caught:
        _records(registry, row.read(), 7)
    assert caught.value.finding.retourcode in row.codes
    assert caught.value.finding.record == 1


def _insured(registry: LayoutRegistry, name: str) -> set[tuple[str, date]]:
    found = set()
    for event in read_records(registry, [(MESSAGES / name).read_bytes()]):
        assert isinstance(event, Record)
        if event.type == "02":
            birth = event["birth_date"]
            assert isinstance(birth, date)
            found.add((event.text("bsn"), birth))
    return found


def _care_dates(registry: LayoutRegistry, name: str, bsn: str) -> list[date]:
    dates = []
    for event in read_records(registry, [(MESSAGES / name).read_bytes()]):
        assert isinstance(event, Record)
        if event.type == "04" and event.text("bsn") == bsn:
            day = event["prestatie_date"]
            assert isinstance(day, date)
            dates.append(day)
    return dates


def test_the_three_providers_declare_care_for_the_same_woman(registry: LayoutRegistry) -> None:
    files = ("kz301-kraamzorg-33001234.asc", "vk301-verloskunde-02001234.asc")
    hospital = _insured(registry, "zh308-ziekenhuis-06001234.asc")
    assert len(hospital) == 1
    woman = next(iter(hospital))
    for name in files:
        insured = _insured(registry, name)
        assert woman in insured
        assert len(insured) == 2  # and a second woman
    bsn = woman[0]
    birth = _care_dates(registry, "zh308-ziekenhuis-06001234.asc", bsn)[0]
    kraamzorg = _care_dates(registry, files[0], bsn)
    midwife = _care_dates(registry, files[1], bsn)
    assert all(d.year == 2026 for d in [*kraamzorg, *midwife, birth])
    # Prenatal care before the birth, postnatal care after it.
    assert min(kraamzorg) < birth
    assert min(midwife) < birth
    assert max(kraamzorg) > birth
    assert max(midwife) > birth


def test_the_generator_check_passes_on_the_committed_files() -> None:
    proc = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr


def test_the_generator_check_names_a_changed_missing_or_extra_file(tmp_path: Path) -> None:
    copy = tmp_path / "messages"
    shutil.copytree(MESSAGES, copy)
    changed = copy / "kz301-minimal.asc"
    changed.write_bytes(changed.read_bytes().replace(b"Voorbeeld", b"Voorbeelt"))
    (copy / "vk301-verloskunde-02001234.asc").unlink()
    (copy / "stray.asc").write_bytes(b"")
    proc = subprocess.run(
        [sys.executable, str(GENERATOR), "--check", "--out", str(copy)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "kz301-minimal.asc: differs" in proc.stderr
    assert "vk301-verloskunde-02001234.asc: missing" in proc.stderr
    assert "stray.asc: not written by the generator" in proc.stderr
    assert "INDEX.md" not in proc.stderr
