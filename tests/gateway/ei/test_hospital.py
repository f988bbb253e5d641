"""Hospital files (ZH308/ZH309): the money is on the 06 tariefrecord, not on the 04."""

from __future__ import annotations

from datetime import date

import pytest

from gateway.ei import (
    CRLF,
    LayoutRegistry,
    Outcome,
    Record,
    build_retour,
    line_amount,
    prestatie_groups,
    read_records,
    validate_bytes,
)
from gateway.lines import declared_lines
from tests.factories import BSNS, zh308

AMOUNT = 289557  # 2,895.57


def _records(registry: LayoutRegistry, data: bytes) -> list[Record]:
    return [r for r in read_records(registry, [data]) if isinstance(r, Record)]


def _lines(data: bytes) -> list[bytes]:
    return data.split(CRLF)[:-1]


def _put(registry: LayoutRegistry, data: bytes, index: int, field: str, raw: bytes) -> bytes:
    """``data`` with the raw bytes of ``field`` in line ``index`` replaced."""
    lines = _lines(data)
    head = lines[0]
    layout = registry.lookup(head[2:5].decode(), head[5:7].decode(), head[7:9].decode())
    assert layout is not None
    f = layout.record(lines[index][:2].decode()).field(field)
    assert len(raw) == f.length
    lines[index] = lines[index][: f.start - 1] + raw + lines[index][f.end :]
    return b"".join(line + CRLF for line in lines)


def test_v8_layouts_are_the_published_lengths(registry: LayoutRegistry) -> None:
    zh308_8 = registry.by_standard("ZH308", "08")
    zh309_8 = registry.by_standard("ZH309", "08")
    assert (zh308_8.code, zh308_8.record_length, zh308_8.status) == ("101", 570, "confirmed")
    assert (zh309_8.code, zh309_8.record_length, zh309_8.status) == ("102", 630, "confirmed")
    assert sorted(zh308_8.records) == ["01", "02", "03", "04", "06", "98", "99"]
    tarief = zh308_8.record("06")
    assert (tarief.field("declared_amount").start, tarief.field("declared_amount").end) == (
        107,
        115,
    )
    assert zh308_8.record("04").field("debit_credit").start == 518
    assert zh309_8.record("06").field("granted_amount").start == 580
    assert zh309_8.record("99").field("count_06").start == 21
    assert not zh309_8.record("04").has("granted_amount")


@pytest.mark.parametrize("version", ["08", "09"])
def test_a_v8_and_v9_hospital_file_with_tariff_records_is_valid(
    registry: LayoutRegistry, version: str
) -> None:
    data = zh308(registry, version=version, lines=2)
    result = validate_bytes(registry, data)
    assert result.valid, [f.message for f in result.findings]
    assert result.layout is not None
    assert result.layout.version == version
    assert result.counts["06"] == 2


def test_the_line_amount_comes_from_its_tariff_records(registry: LayoutRegistry) -> None:
    data = zh308(registry, lines=2, amount=AMOUNT)
    (line, children), _ = list(prestatie_groups(_records(registry, data)))
    assert [c.type for c in children] == ["06"]
    assert line_amount(line, children, "declared_amount") == AMOUNT
    lines = declared_lines(
        _records(registry, data), traceer_id="t", participant="06001234", standard="ZH308"
    )
    assert [ln.amount for ln in lines] == [AMOUNT, AMOUNT]


def test_the_99_total_and_tariff_count_are_checked(registry: LayoutRegistry) -> None:
    data = zh308(registry, lines=1, amount=AMOUNT)
    last = len(_lines(data)) - 1
    wrong_total = _put(registry, data, last, "total_declared", b"00000000000D")
    result = validate_bytes(registry, wrong_total)
    assert [f.field_name for f in result.findings] == [
        "totaal declaratiebedrag met indicatie debet/credit (9909)"
    ]
    wrong_count = _put(registry, data, last, "count_06", b"000002")
    result = validate_bytes(registry, wrong_count)
    assert [f.field_name for f in result.findings] == ["aantal tariefrecords"]


def test_a_tariff_record_must_repeat_its_prestatie_s_key(registry: LayoutRegistry) -> None:
    data = zh308(registry, lines=1)
    # line 3 is the 06 record (01, 02, 04, 06, 99)
    other = _put(registry, data, 3, "bsn", BSNS[1].encode())
    result = validate_bytes(registry, other)
    assert [(f.retourcode, f.field) for f in result.findings] == [("0435", "0603")]
    assert "differs from its 04 record" in result.findings[0].message
    later = _put(registry, data, 3, "prestatie_date", b"20260702")
    result = validate_bytes(registry, later)
    assert [(f.retourcode, f.field) for f in result.findings] == [("8007", "0609")]


def test_a_tariff_record_without_its_prestatie_is_out_of_order(
    registry: LayoutRegistry,
) -> None:
    lines = _lines(zh308(registry, lines=1))
    # 01, 02, 06, 04, 99 with NUM040 kept in file order
    lines[2], lines[3] = (
        lines[3][:2] + lines[2][2:14] + lines[3][14:],
        lines[2][:2] + lines[3][2:14] + lines[2][14:],
    )
    result = validate_bytes(registry, b"".join(line + CRLF for line in lines))
    assert not result.valid
    assert {f.kind for f in result.findings} == {"06"}


@pytest.mark.parametrize("version", ["08", "09"])
def test_the_zh309_answers_the_money_on_the_tariff_records(
    registry: LayoutRegistry, version: str
) -> None:
    data = zh308(registry, version=version, lines=1, amount=AMOUNT)
    records = _records(registry, data)
    (line, _), *_ = prestatie_groups(records)
    layout = registry.by_standard("ZH308", version)
    retour = build_retour(
        registry.retour_of(layout),
        records,
        {line.number_value("record_id"): Outcome(granted=AMOUNT)},
        insurer_reference="R1",
        retour_date=date(2026, 9, 1),
    )
    result = validate_bytes(registry, retour)
    assert result.valid, [f.message for f in result.findings]
    answered = _records(registry, retour)
    tarief = [r for r in answered if r.type == "06"]
    assert [r["granted_amount"] for r in tarief] == [AMOUNT]
    assert [r["insurer_calculated_amount"] for r in tarief] == [AMOUNT]
    trailer = answered[-1]
    assert trailer["total_granted"] == AMOUNT
    assert trailer["total_declared"] == AMOUNT
    assert trailer["count_06"] == 1


def test_a_rejected_hospital_line_has_its_codes_on_the_tariff_records(
    registry: LayoutRegistry,
) -> None:
    data = zh308(registry, lines=1, amount=AMOUNT)
    records = _records(registry, data)
    (line, _), *_ = prestatie_groups(records)
    retour = build_retour(
        registry.retour_of(registry.by_standard("ZH308", "08")),
        records,
        {line.number_value("record_id"): Outcome(granted=0, codes=("0587",))},
        insurer_reference="R1",
        retour_date=date(2026, 9, 1),
    )
    answered = {r.type: r for r in _records(registry, retour)}
    assert answered["04"].text("retourcode_1") == "0587"
    assert answered["06"].text("retourcode_1") == "0587"
    assert answered["06"]["granted_amount"] == 0
    assert answered["99"]["total_granted"] == 0
    assert answered["99"]["total_declared"] == AMOUNT


def test_a_granted_amount_is_split_over_several_tariff_records_to_the_cent(
    registry: LayoutRegistry,
) -> None:
    data = zh308(registry, lines=1, amount=10000)
    lines = _lines(data)
    # a second tariff record of 200.01 for the same prestatie, and the 99 to match
    second = _put(registry, data, 3, "record_id", b"000000000004")
    for name in ("tariff", "calculated_amount", "declared_amount"):
        raw = b"00020001" if name == "tariff" else b"00020001D"
        second = _put(registry, second, 3, name, raw)
    second = _put(registry, second, 3, "reference", b"Z2026-0001-1-T2".ljust(20))
    extra = _lines(second)[3]
    lines.insert(4, extra)
    data = b"".join(line + CRLF for line in lines)
    last = len(lines) - 1
    data = _put(registry, data, last, "count_06", b"000002")
    data = _put(registry, data, last, "count_detail", b"0000004")
    data = _put(registry, data, last, "total_declared", b"00000030001D")
    assert validate_bytes(registry, data).valid
    records = _records(registry, data)
    (line, children), *_ = prestatie_groups(records)
    assert line_amount(line, children, "declared_amount") == 30001
    retour = build_retour(
        registry.retour_of(registry.by_standard("ZH308", "08")),
        records,
        {line.number_value("record_id"): Outcome(granted=20000)},
        insurer_reference="R1",
        retour_date=date(2026, 9, 1),
    )
    granted = [r["granted_amount"] for r in _records(registry, retour) if r.type == "06"]
    assert granted == [6666, 13334]
    assert sum(g for g in granted if isinstance(g, int)) == 20000
