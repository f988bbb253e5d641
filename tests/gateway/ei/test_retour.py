"""Retour files: the answer to a declaration, and the whole-file technical rejection."""

from __future__ import annotations

from datetime import date

import pytest

from gateway.ei import (
    LayoutRegistry,
    Outcome,
    Record,
    build_retour,
    build_technical_rejection,
    read_records,
    validate_bytes,
)
from tests.factories import kz301, vk301, zh308
from tests.gateway.ei.fixture_table import MESSAGES

RETOUR_DATE = date(2026, 9, 18)


def _records(registry: LayoutRegistry, data: bytes) -> list[Record]:
    records = []
    for event in read_records(registry, [data]):
        assert isinstance(event, Record)
        records.append(event)
    return records


def _retour(
    registry: LayoutRegistry,
    data: bytes,
    outcomes: dict[int, Outcome],
    *,
    answered_only: bool = False,
) -> tuple[list[Record], list[Record]]:
    declaration = _records(registry, data)
    head = declaration[0]
    layout = registry.lookup(
        head.text("standard_code"), head.text("version"), head.text("subversion")
    )
    assert layout is not None
    payload = build_retour(
        registry.retour_of(layout),
        declaration,
        outcomes,
        insurer_reference="ZV-REF-1",
        retour_date=RETOUR_DATE,
        answered_only=answered_only,
    )
    result = validate_bytes(registry, payload)
    assert result.valid, [f.message for f in result.findings]
    return declaration, _records(registry, payload)


def _standard(registry: LayoutRegistry, records: list[Record]) -> str:
    head = records[0]
    layout = registry.lookup(
        head.text("standard_code"), head.text("version"), head.text("subversion")
    )
    assert layout is not None
    return layout.standard


@pytest.mark.parametrize(
    ("build", "retour_standard"),
    [(kz301, "KZ302"), (vk301, "VK302"), (zh308, "ZH309")],
    ids=["KZ301", "VK301", "ZH308"],
)
def test_a_retour_carries_every_record_unchanged_plus_its_answer(
    registry: LayoutRegistry, build: object, retour_standard: str
) -> None:
    assert callable(build)
    data = build(registry, lines=3)
    second = [r for r in _records(registry, data) if r.type == "04"][1]
    rid = second.number_value("record_id")
    declaration, retour = _retour(
        registry, data, {rid: Outcome(granted=5000, codes=("0611", "0613"))}
    )
    assert _standard(registry, retour) == retour_standard
    assert len(retour) == len(declaration)
    length = declaration[0].layout.length
    for asked, answered in zip(declaration[1:-1], retour[1:-1], strict=True):
        assert answered.raw[:length] == asked.raw
    # The 01 keeps the declarant's data and names the retour standard.
    assert retour[0].raw[9:length] == declaration[0].raw[9:length]
    assert retour[0]["retour_date"] == RETOUR_DATE
    assert retour[0]["insurer_reference"] == "ZV-REF-1"
    answered = next(r for r in retour if r.type == "04" and r["record_id"] == rid)
    assert (answered["retourcode_1"], answered["retourcode_2"]) == ("0611", "0613")
    assert answered["retourcode_3"] == "0000"
    # The money: on the 04, or (ZH309) on the 06 tariefrecord that follows it.
    index = retour.index(answered)
    money = answered if answered.layout.has("granted_amount") else retour[index + 1]
    assert money["granted_amount"] == 5000
    assert (money["retourcode_1"], money["retourcode_2"]) == ("0611", "0613")


def test_totals_of_the_retour_trailer(registry: LayoutRegistry) -> None:
    data = (MESSAGES / "kz301-kraamzorg-33001234.asc").read_bytes()
    declaration = _records(registry, data)
    prestaties = [r for r in declaration if r.type == "04"]
    outcomes = {
        r.number_value("record_id"): Outcome(granted=r.number_value("declared_amount") // 2)
        for r in prestaties
    }
    outcomes[prestaties[0].number_value("record_id")] = Outcome(granted=0, codes=("0613",))
    _, retour = _retour(registry, data, outcomes)
    trailer = retour[-1]
    assert trailer["total_declared"] == declaration[-1]["total_declared"]
    assert trailer["total_granted"] == sum(o.granted for o in outcomes.values())
    assert trailer["count_04"] == len(prestaties)
    assert trailer["count_detail"] == len(declaration) - 2


def test_an_unanswered_line_is_granted_nothing_by_default(registry: LayoutRegistry) -> None:
    _, retour = _retour(registry, kz301(registry, lines=2), {})
    for rec in retour:
        if rec.type == "04":
            assert rec["granted_amount"] == 0
            assert rec["insurer_calculated_amount"] == rec["declared_amount"]
            assert rec["retourcode_1"] == "0000"


def test_a_partial_retour_holds_the_answered_lines_with_their_context(
    registry: LayoutRegistry,
) -> None:
    data = (MESSAGES / "kz301-kraamzorg-33001234.asc").read_bytes()
    declaration = _records(registry, data)
    # Woman B's partus line, followed by a comment in the declaration.
    partus = next(r for r in declaration if r.type == "04" and r.text("reference") == "KZB2026-002")
    rid = partus.number_value("record_id")
    _, retour = _retour(registry, data, {rid: Outcome(granted=31250)}, answered_only=True)
    assert [r.type for r in retour] == ["01", "02", "04", "98", "99"]
    assert retour[1].text("bsn") == partus.text("bsn")
    assert retour[2]["record_id"] == rid
    assert retour[-1]["total_granted"] == 31250
    assert retour[-1]["count_detail"] == 3


@pytest.mark.parametrize("codes", [("0001", "0002", "0003", "0004"), ("12A4",), ("123",)], ids=str)
def test_an_outcome_refuses_codes_that_do_not_fit(codes: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="retourcode"):
        Outcome(granted=0, codes=codes)


def test_a_technical_rejection_is_only_a_01_and_an_empty_99(registry: LayoutRegistry) -> None:
    data = (MESSAGES / "invalid-0150-trailer-total.asc").read_bytes()
    header = _records(registry, data)[0]
    payload = build_technical_rejection(
        registry.by_standard("KZ302"),
        "0001",
        extra_codes=("0150",),
        header=header,
        insurer_reference="ZV-REF-2",
        retour_date=RETOUR_DATE,
    )
    assert validate_bytes(registry, payload).valid
    head, trailer = _records(registry, payload)
    assert (head.type, trailer.type) == ("01", "99")
    assert (head["retourcode_1"], head["retourcode_2"], head["retourcode_3"]) == (
        "0001",
        "0150",
        "0000",
    )
    assert head.raw[9:310] == header.raw[9:]
    assert head["standard_code"] == registry.by_standard("KZ302").code
    assert trailer["count_detail"] == 0
    assert trailer["total_declared"] == 0
    assert trailer["total_granted"] == 0


def test_a_technical_rejection_of_an_unreadable_file(registry: LayoutRegistry) -> None:
    # The file's own 01 could not be read: the 01 is written from what is known.
    payload = build_technical_rejection(
        registry.by_standard("KZ302"),
        "0001",
        extra_codes=("0010",),
        header=None,
        insurer_reference="",
        retour_date=RETOUR_DATE,
        header_values={
            "message_kind": "P",
            "praktijk_code": "33001234",
            "payee": "03",
            "period_begin": RETOUR_DATE,
            "period_end": RETOUR_DATE,
            "invoice_number": "ONBEKEND",
            "invoice_date": RETOUR_DATE,
            "currency": "EUR",
        },
    )
    result = validate_bytes(registry, payload)
    assert result.valid, [f.message for f in result.findings]
    head, _ = _records(registry, payload)
    assert head["praktijk_code"] == "33001234"
    assert head["retourcode_2"] == "0010"


def test_a_retour_of_a_retour_cannot_be_built(registry: LayoutRegistry) -> None:
    with pytest.raises(KeyError):
        registry.retour_of(registry.by_standard("ZH309"))
