"""The simulated insurer's judgement of one file: pure, bytes in, retour out. Every retour
it writes must itself pass the codec's checks."""

from __future__ import annotations

from datetime import date

import pytest

from adapters.insurer_sim.config import OverlapRule, SimRules
from adapters.insurer_sim.rules import Judgement, judge
from gateway.ei import Record, read_records, validate_bytes
from gateway.loading import load_layouts
from tests.adapters.insurer_sim.support import IGO, TARIFF, UZOVI, integral_claim
from tests.factories import BSNS, zh308

REGISTRY = load_layouts()
TODAY = date(2026, 3, 1)


def run(payload: bytes, rules: SimRules | None = None, **kwargs: object) -> Judgement:
    options: dict[str, object] = {"uzovi": UZOVI, "sender": IGO, **kwargs}
    return judge(
        REGISTRY,
        payload,
        rules or SimRules(),
        insurer_reference="sim-ref-1",
        today=TODAY,
        **options,  # type: ignore[arg-type]
    )


def records(retour: bytes) -> list[Record]:
    result = validate_bytes(REGISTRY, retour)
    assert result.valid, [f.message for f in result.findings]
    return [r for r in read_records(REGISTRY, [retour]) if isinstance(r, Record)]


def codes(rec: Record) -> list[str]:
    return [c for c in (rec.text(f"retourcode_{i}") for i in (1, 2, 3)) if c.strip("0")]


def lines(retour: bytes) -> list[tuple[int, list[str]]]:
    """(granted amount, retourcodes) of every 04 record of a retour."""
    return [(r.number_value("granted_amount"), codes(r)) for r in records(retour) if r.type == "04"]


def test_a_valid_claim_is_granted_at_its_tariff_in_the_retour_standard() -> None:
    payload = integral_claim(REGISTRY, bsns=(BSNS[0], BSNS[1]), lines_per_client=2)
    j = run(payload)
    assert j.accepted
    assert j.codes == ()
    assert (j.standard, j.retour_standard, j.invoice_number) == ("KZ301", "KZ302", "IGO2026-0001")
    assert (j.lines, j.granted_lines, j.granted_total) == (4, 4, 4 * TARIFF)
    recs = records(j.retour)
    assert recs[0].layout is REGISTRY.by_standard("KZ302").record("01")
    assert recs[0].text("insurer_reference") == "sim-ref-1"
    assert recs[0]["retour_date"] == TODAY
    assert lines(j.retour) == [(TARIFF, [])] * 4
    assert recs[-1].number_value("total_granted") == 4 * TARIFF
    # every declaration record is answered with its own NUM040
    declared = [r for r in read_records(REGISTRY, [payload]) if isinstance(r, Record)]
    assert [r.raw[:310] for r in recs[1:-1]] == [r.raw for r in declared[1:-1]]


def test_a_client_not_insured_gets_0320_on_its_lines_and_insured_record() -> None:
    payload = integral_claim(REGISTRY, bsns=(BSNS[0], BSNS[1]))
    j = run(payload, SimRules(not_insured=(BSNS[1],)))
    assert lines(j.retour) == [(TARIFF, []), (0, ["0320"])]
    insured = [codes(r) for r in records(j.retour) if r.type == "02"]
    assert insured == [[], ["0320"]]
    assert (j.granted_lines, j.rejected_lines, j.line_codes) == (1, 1, ("0320",))


def test_overlap_rejects_the_lines_of_one_pregnancy_with_0587() -> None:
    payload = integral_claim(REGISTRY, bsns=(BSNS[0], BSNS[3]), lines_per_client=3)
    rule = OverlapRule.model_validate(
        {"bsn": BSNS[3], "from": date(2026, 1, 11), "to": date(2026, 1, 11)}
    )
    j = run(payload, SimRules(overlap=(rule,)))
    assert lines(j.retour) == [(TARIFF, [])] * 3 + [(TARIFF, []), (0, ["0587"]), (TARIFF, [])]


def test_overlap_without_dates_covers_every_line_of_the_client() -> None:
    payload = integral_claim(REGISTRY, bsns=(BSNS[3],), lines_per_client=2)
    j = run(payload, SimRules(overlap=(OverlapRule(bsn=BSNS[3]),)))
    assert lines(j.retour) == [(0, ["0587"])] * 2


def test_a_tariff_other_than_agreed_gets_0611_and_the_insurers_own_calculation() -> None:
    payload = integral_claim(REGISTRY, tariff=TARIFF + 500)
    j = run(payload, SimRules(tariffs={"196202": TARIFF}))
    (line,) = [r for r in records(j.retour) if r.type == "04"]
    assert codes(line) == ["0611"]
    assert line.number_value("granted_amount") == 0
    assert line.number_value("insurer_calculated_amount") == TARIFF


def test_the_agreed_tariff_is_granted() -> None:
    j = run(integral_claim(REGISTRY), SimRules(tariffs={"196202": TARIFF}))
    assert lines(j.retour) == [(TARIFF, [])]


def test_codes_add_up_on_one_line() -> None:
    payload = integral_claim(REGISTRY, bsns=(BSNS[1],), tariff=1)
    rules = SimRules(
        not_insured=(BSNS[1],), overlap=(OverlapRule(bsn=BSNS[1]),), tariffs={"196202": 2}
    )
    assert lines(run(payload, rules).retour) == [(0, ["0320", "0587", "0611"])]


def whole_file_rejection(j: Judgement, *expected: str) -> None:
    assert not j.accepted
    assert j.codes == expected
    recs = records(j.retour)
    assert [r.type for r in recs] == ["01", "99"]
    assert codes(recs[0]) == list(expected)
    assert j.retour_standard == "KZ302"


def test_an_invalid_file_is_rejected_whole_with_0001_and_the_reason() -> None:
    payload = integral_claim(REGISTRY)
    broken = payload.replace(b"\r\n99", b"\r\n99", 1)[:-3] + b"\r\n"  # a short 99 record
    whole_file_rejection(run(broken), "0001", "0804")


def test_garbage_is_rejected_whole_in_the_default_retour_standard() -> None:
    j = run(b"this is not an EI file\r\n")
    assert j.standard is None
    assert j.codes[0] == "0001"
    assert validate_bytes(REGISTRY, j.retour).valid


def test_an_empty_file_is_rejected_whole() -> None:
    assert run(b"").codes == ("0001",)


def test_a_retour_is_not_a_declaration() -> None:
    retour = run(integral_claim(REGISTRY)).retour
    whole_file_rejection(run(retour), "0001", "0010")


def test_a_file_for_another_insurer_is_rejected_with_0018() -> None:
    whole_file_rejection(run(integral_claim(REGISTRY, uzovi="9999")), "0001", "0018")


@pytest.mark.parametrize(
    "rules",
    [SimRules(reject_all=True), SimRules(reject_invoices=("IGO2026-0001",))],
)
def test_whole_file_rejection_on_demand(rules: SimRules) -> None:
    j = run(integral_claim(REGISTRY), rules)
    whole_file_rejection(j, "0001")
    assert j.invoice_number == "IGO2026-0001"


def test_other_invoices_are_not_rejected_on_demand() -> None:
    j = run(integral_claim(REGISTRY, invoice="IGO2026-0002"), SimRules(reject_invoices=("X",)))
    assert j.accepted


@pytest.mark.parametrize("version", ["08", "09"])
def test_a_hospital_file_is_judged_per_dbc_and_granted_on_its_tariff_records(
    version: str,
) -> None:
    payload = zh308(REGISTRY, lines=2, amount=289557, version=version)
    j = run(payload, sender="06001234")
    assert j.accepted
    assert (j.standard, j.retour_standard) == ("ZH308", "ZH309")
    assert (j.lines, j.granted_lines, j.granted_total) == (2, 2, 2 * 289557)
    recs = records(j.retour)
    assert recs[0].layout.length == REGISTRY.by_standard("ZH309", version).record_length
    assert [r.number_value("granted_amount") for r in recs if r.type == "06"] == [289557] * 2
    assert recs[-1].number_value("total_granted") == 2 * 289557
    assert recs[-1].number_value("total_declared") == 2 * 289557
