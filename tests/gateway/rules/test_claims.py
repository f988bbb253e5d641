"""Integral claim files: valid by the codec's own Validator, declared by the IGO, with the
provenance of every line; credits name what they credit; cancelling pairs are left out."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from gateway.ei import FieldValue, Record, read_records, validate_bytes
from gateway.lines import DeclaredLine
from gateway.loading import load_layouts
from gateway.rules.catalogue import Phase
from gateway.rules.claims import ClaimFile, PlannedLine, build_claim_file
from gateway.rules.decide import decide
from gateway.terms import load_catalogue
from tests.gateway.rules.test_decide import INSURER, TODAY, full_pregnancy, terms

REGISTRY = load_layouts()
CATALOGUE = load_catalogue()
INSURED: dict[str, dict[str, FieldValue]] = {
    "999990007": {
        "member_number": "123456789",
        "gender": "2",
        "name_code_1": "1",
        "surname": "Testpersoon",
        "initials": "A",
        "house_number": 12,
        "deceased": "2",
    }
}


def planned_for(lines: list[DeclaredLine]) -> list[PlannedLine]:
    decisions = decide(lines, terms(), CATALOGUE, today=TODAY)
    return [
        PlannedLine(d.pregnancy, d.phase, claim)
        for d in decisions
        if d.phase is not None
        for claim in d.claims
    ]


def build(planned: list[PlannedLine], invoice: str) -> ClaimFile | None:
    return build_claim_file(
        planned,
        registry=REGISTRY,
        catalogue=CATALOGUE,
        igo_agb="53001234",
        insurer=INSURER,
        invoice_number=invoice,
        invoice_date=date(2026, 11, 1),
        insured=INSURED,
    )


def test_a_claim_file_is_valid_and_declared_by_the_igo() -> None:
    lines = full_pregnancy()
    planned = planned_for(lines)
    claim = build(planned, "IGO26-0001")
    assert claim is not None
    result = validate_bytes(REGISTRY, claim.payload)
    assert result.valid, result.findings
    assert result.header is not None
    assert result.header.text("praktijk_code") == "53001234"
    assert result.header.text("invoice_number") == "IGO26-0001"
    records = [r for r in read_records(REGISTRY, [claim.payload]) if isinstance(r, Record)]
    prestaties = [r for r in records if r.type == "04"]
    assert [r.text("prestatiecode") for r in prestaties] == ["IG0002", "IG0004", "IG0007"]
    assert [link.record_number for link in claim.links] == [
        r.number_value("record_id") for r in prestaties
    ]
    assert [link.reference for link in claim.links] == [r.text("reference") for r in prestaties]
    absorbed = sorted(key for link in claim.links for key in link.absorbs)
    assert absorbed == sorted((line.traceer_id, line.record_number) for line in lines)
    assert claim.total == 150000 + 90000 + 100000
    (insured,) = [r for r in records if r.type == "02"]
    assert insured.text("surname") == "Testpersoon"


def test_a_credit_line_names_the_line_it_credits() -> None:
    post = next(p for p in planned_for(full_pregnancy()) if p.phase is Phase.POSTNATAL)
    credit = replace(post.line, amount=-90000, absorbs=(), credits="IGO26-0001-4")
    claim = build([PlannedLine(post.pregnancy, Phase.POSTNATAL, credit), post], "IGO26-0002")
    assert claim is not None
    assert validate_bytes(REGISTRY, claim.payload).valid
    assert (claim.links[0].amount, claim.links[0].credits) == (-90000, "IGO26-0001-4")
    assert claim.total == 100000 - 90000


def test_a_credit_and_a_debit_that_cancel_out_are_left_out() -> None:
    post = next(p for p in planned_for(full_pregnancy()) if p.phase is Phase.POSTNATAL)
    same = replace(post.line, amount=-post.line.amount, credits="IGO26-0001-4")
    assert build([post, PlannedLine(post.pregnancy, Phase.POSTNATAL, same)], "IGO26-0003") is None
