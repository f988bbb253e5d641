"""Comment records (98): they carry the NUM040 of the record they comment on, as the files
Vektis publishes do; a number of their own is accepted too; order is still checked."""

from __future__ import annotations

from datetime import date

import pytest

from gateway.ei import (
    CRLF,
    FileWriter,
    LayoutRegistry,
    Outcome,
    Record,
    build_retour,
    read_records,
    validate_bytes,
)
from tests.factories import BSNS, header, insured, kz301, prestatie


def _lines(data: bytes) -> list[bytes]:
    return data.split(CRLF)[:-1]


def _join(lines: list[bytes]) -> bytes:
    return b"".join(line + CRLF for line in lines)


def _renumber(line: bytes, record_id: int) -> bytes:
    return line[:2] + str(record_id).rjust(12, "0").encode() + line[14:]


def _with_comments(registry: LayoutRegistry) -> bytes:
    """01, 02 (1), 04 (2), 98 on the 04, 04 (3), 98 on it, 98 on it, 99."""
    w = FileWriter(registry.by_standard("KZ301"))
    header(w, agb="33001234", invoice="C2026-1")
    insured(w, BSNS[0])
    prestatie(w, bsn=BSNS[0], day=date(2026, 1, 10), reference="C-1", performer="33012345")
    w.comment("Eerste opmerking.")
    prestatie(w, bsn=BSNS[0], day=date(2026, 1, 11), reference="C-2", performer="33012345")
    w.comment("Tweede opmerking, regel 1.", line_number=1)
    w.comment("Tweede opmerking, regel 2.", line_number=2)
    return w.finish()


def test_the_file_builder_gives_a_comment_the_number_of_what_it_comments_on(
    registry: LayoutRegistry,
) -> None:
    data = _with_comments(registry)
    ids = [(line[:2], int(line[2:14])) for line in _lines(data)[1:-1]]
    assert ids == [(b"02", 1), (b"04", 2), (b"98", 2), (b"04", 3), (b"98", 3), (b"98", 3)]


def _as_real_files_number(data: bytes) -> bytes:
    """Every detail record numbered 1, 2, 3, … except comments, which repeat the number
    of the record before them (as in Vektis's published test files)."""
    lines = _lines(data)
    out, number = [lines[0]], 0
    for line in lines[1:-1]:
        if line[:2] != b"98":
            number += 1
        out.append(_renumber(line, number))
    return _join([*out, lines[-1]])


def test_comments_with_the_commented_record_s_number_are_valid(registry: LayoutRegistry) -> None:
    data = _as_real_files_number(_with_comments(registry))
    result = validate_bytes(registry, data)
    assert result.valid, [(f.retourcode, f.record, f.message) for f in result.findings]
    assert result.counts["98"] == 3


def test_comments_with_numbers_of_their_own_are_still_valid(registry: LayoutRegistry) -> None:
    lines = _lines(_with_comments(registry))
    # the older convention: every detail record its own consecutive number
    renumbered = [lines[0]] + [_renumber(line, i) for i, line in enumerate(lines[1:-1], 1)]
    result = validate_bytes(registry, _join([*renumbered, lines[-1]]))
    assert result.valid, [(f.retourcode, f.record, f.message) for f in result.findings]


def test_a_comment_with_another_number_is_reported_once(registry: LayoutRegistry) -> None:
    lines = _lines(_with_comments(registry))
    lines[3] = _renumber(lines[3], 1)  # the first 98 points at the 02, not the 04 before it
    result = validate_bytes(registry, _join(lines))
    assert [(f.retourcode, f.record, f.kind) for f in result.findings] == [("0801", 4, "98")]


def test_a_record_after_a_comment_continues_the_numbering(registry: LayoutRegistry) -> None:
    lines = _lines(_with_comments(registry))
    lines[4] = _renumber(lines[4], 4)  # the second 04 skips a number
    result = validate_bytes(registry, _join(lines))
    assert [(f.retourcode, f.record, f.kind) for f in result.findings] == [("0801", 5, "04")]


def test_a_comment_before_any_detail_record_is_out_of_order(registry: LayoutRegistry) -> None:
    lines = _lines(kz301(registry, comment="Los."))
    comment = _renumber(lines[3], 1)
    moved = [lines[0], comment, *(_renumber(x, i) for i, x in enumerate(lines[1:3], 1))]
    result = validate_bytes(registry, _join([*moved, lines[-1]]))
    assert not result.valid
    assert result.findings[0].kind == "98"


def test_a_retour_keeps_the_comment_s_number_and_gives_it_no_answer(
    registry: LayoutRegistry,
) -> None:
    data = _with_comments(registry)
    records = [r for r in read_records(registry, [data]) if isinstance(r, Record)]
    retour = build_retour(
        registry.retour_of(registry.by_standard("KZ301")),
        records,
        {2: Outcome(granted=0, codes=("0587",)), 3: Outcome(granted=12000)},
        insurer_reference="R1",
        retour_date=date(2026, 3, 1),
    )
    result = validate_bytes(registry, retour)
    assert result.valid, [(f.retourcode, f.record, f.message) for f in result.findings]
    answered = [r for r in read_records(registry, [retour]) if isinstance(r, Record)]
    comments = [r for r in answered if r.type == "98"]
    assert [c.number_value("record_id") for c in comments] == [2, 3, 3]
    assert all(not c.text("retourcode_1").strip("0") for c in comments)
    first = next(r for r in answered if r.type == "04")
    assert first.text("retourcode_1") == "0587"
    partial = build_retour(
        registry.retour_of(registry.by_standard("KZ301")),
        records,
        {3: Outcome(granted=12000)},
        insurer_reference="R2",
        retour_date=date(2026, 3, 1),
        answered_only=True,
    )
    kept = [(line[:2], int(line[2:14])) for line in _lines(partial)[1:-1]]
    assert kept == [(b"02", 1), (b"04", 3), (b"98", 3), (b"98", 3)]


def test_a_comment_needs_a_record_to_comment_on(registry: LayoutRegistry) -> None:
    w = FileWriter(registry.by_standard("KZ301"))
    header(w, agb="33001234", invoice="C2026-2")
    with pytest.raises(RuntimeError, match="follows the record it comments on"):
        w.comment("Nergens bij.")


def test_a_comment_on_a_broken_record_is_not_reported_as_well(
    registry: LayoutRegistry,
) -> None:
    lines = _lines(_with_comments(registry))
    lines[4] = lines[4][:200]  # the second 04 is cut short; its two comments follow
    result = validate_bytes(registry, _join(lines))
    assert (result.findings[0].retourcode, result.findings[0].record) == ("0804", 5)
    assert "0801" not in result.retourcodes  # its comments still point at it
