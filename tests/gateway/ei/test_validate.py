"""The intake checks beyond the fixture table: where findings point, limits, edge cases."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ei import LayoutRegistry, Record, Validator, bsn_is_valid, validate_bytes
from gateway.ei.validate import agb_is_valid
from gateway.loading import load_layouts
from tests.factories import BSNS, kz301
from tests.gateway.ei.fixture_table import MESSAGES, chunked


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\r\n")[:-1]


def _join(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\r\n" for line in lines)


def _put(line: bytes, start: int, value: bytes) -> bytes:
    return line[: start - 1] + value + line[start - 1 + len(value) :]


@pytest.mark.parametrize("bsn", [*BSNS, "999990007", "999990019"])
def test_synthetic_bsns_pass_the_eleven_proof(bsn: str) -> None:
    assert bsn_is_valid(bsn)


@pytest.mark.parametrize(
    "bsn", ["123456789", "000000000", "12345678", "1234567820", "12345678a", "12345678²"]
)
def test_wrong_bsns_fail_it(bsn: str) -> None:
    assert not bsn_is_valid(bsn)


def _eleven_proof(bsn: str) -> bool:
    """The eleven-proof as the definition reads, digit by digit."""
    if len(bsn) != 9 or not all(c in "0123456789" for c in bsn):
        return False
    total = sum(int(c) * w for c, w in zip(bsn, (9, 8, 7, 6, 5, 4, 3, 2, -1), strict=True))
    return total % 11 == 0 and total != 0


@settings(max_examples=2000, deadline=None)
@given(
    st.one_of(
        st.text("0123456789", min_size=9, max_size=9),
        st.integers(0, 10**9 - 1).map(lambda n: f"{n:09d}"),
        st.text(min_size=8, max_size=10),
    )
)
def test_the_eleven_proof_agrees_with_its_definition(bsn: str) -> None:
    assert bsn_is_valid(bsn) is _eleven_proof(bsn)


@pytest.mark.parametrize(
    ("code", "ok"),
    [("33001234", True), ("02001234", True), ("00001234", False), ("3300123", False)],
)
def test_agb_code_form(code: str, ok: bool) -> None:
    assert agb_is_valid(code) is ok


def test_a_finding_says_where_what_and_which_code(registry: LayoutRegistry) -> None:
    data = (MESSAGES / "invalid-0435-bsn-eleven-proof.asc").read_bytes()
    result = validate_bytes(registry, data)
    first = result.findings[0]
    assert (first.record, first.kind, first.field, first.start, first.end) == (
        2,
        "02",
        "0203",
        15,
        23,
    )
    assert first.value == "123456789"
    assert first.retourcode == "0435"
    assert first.field_name == "burgerservicenummer (bsn) verzekerde"
    assert [f.record for f in result.findings] == [2, 3, 4, 5]
    assert result.as_json("x.asc")["findings"] == [f.as_json() for f in result.findings]


def test_a_bad_date_does_not_stop_the_checks_of_the_records_after_it(
    registry: LayoutRegistry,
) -> None:
    lines = _lines(kz301(registry, lines=3))
    prestatie = registry.by_standard("KZ301").record("04")
    date_start = prestatie.field("prestatie_date").start
    bsn_start = prestatie.field("bsn").start
    lines[2] = _put(lines[2], date_start, b"20260230")
    lines[4] = _put(lines[4], bsn_start, b"123456789")
    result = validate_bytes(registry, _join(lines))
    assert [(f.record, f.retourcode) for f in result.findings] == [(3, "8007"), (5, "0435")]
    assert result.records == 6


def test_the_result_of_a_valid_file(registry: LayoutRegistry) -> None:
    result = validate_bytes(registry, kz301(registry, lines=2, comment="let op"))
    assert result.valid
    assert result.layout is not None
    assert result.layout.standard == "KZ301"
    assert result.records == 7
    assert dict(result.counts) == {"01": 1, "02": 1, "04": 2, "98": 2, "99": 1}
    assert result.header is not None
    assert result.header.text("invoice_number") == "F2026-0001"
    summary = result.as_json("f.asc")
    assert (summary["standard"], summary["version"], summary["valid"]) == ("KZ301", "3.2", True)


def test_findings_stop_at_the_limit_and_say_so(registry: LayoutRegistry) -> None:
    lines = _lines(kz301(registry, lines=20))
    start = registry.by_standard("KZ301").record("04").field("bsn").start
    lines = [_put(line, start, b"123456789") if line[:2] == b"04" else line for line in lines]
    full = validate_bytes(registry, _join(lines))
    assert len(full.findings) == 20
    assert not full.truncated
    limited = validate_bytes(registry, _join(lines), max_findings=5)
    assert limited.findings == full.findings[:5]
    assert limited.truncated
    assert limited.as_json("f")["truncated"] is True


def test_an_empty_file_is_rejected_as_a_whole(registry: LayoutRegistry) -> None:
    result = Validator(registry).close()
    assert result.retourcodes == {"0001"}
    assert result.layout is None
    assert result.records == 0


def test_nothing_is_checked_after_the_file_could_not_be_identified(
    registry: LayoutRegistry,
) -> None:
    validator = Validator(registry)
    validator.feed(b"01999" + b" " * 305 + b"\r\n")
    validator.feed(b"garbage\r\n" * 3)
    result = validator.close()
    assert result.retourcodes == {"0010"}
    assert result.records == 0


def test_a_zero_amount_must_be_debit(registry: LayoutRegistry) -> None:
    lines = _lines(kz301(registry, lines=1))
    f = registry.by_standard("KZ301").record("04").field("reduction_amount")
    assert f.kind == "number"  # not an amount: no indicator of its own
    amount = registry.by_standard("KZ301").record("04").field("calculated_amount")
    lines[2] = _put(lines[2], amount.start, b"00000000C")
    tariff = registry.by_standard("KZ301").record("04").field("tariff")
    lines[2] = _put(lines[2], tariff.start, b"00000000")
    result = validate_bytes(registry, _join(lines))
    assert result.retourcodes == {"0631"}
    assert result.findings[0].field == amount.id


def test_a_credit_with_the_same_amount_as_an_earlier_file_is_fine(
    registry: LayoutRegistry,
) -> None:
    # The credit reverses a line of another invoice: no 8062 within this file.
    data = (MESSAGES / "kz301-correction-credit.asc").read_bytes()
    assert validate_bytes(registry, data).valid


def test_the_validator_can_be_fed_any_chunks(registry: LayoutRegistry) -> None:
    data = (MESSAGES / "invalid-0021-period-end-before-begin.asc").read_bytes()
    whole = validate_bytes(registry, data).findings
    for size in (1, 2, 3, 310, 311, 312, 313, 4096):
        assert validate_bytes(registry, chunked(data, size)).findings == whole


def test_a_retour_file_only_needs_increasing_record_numbers(registry: LayoutRegistry) -> None:
    data = (MESSAGES / "kz302-retour-kraamzorg-33001234.asc").read_bytes()
    lines = _lines(data)
    # Drop the first woman's last prestatie: the numbers jump, which a retour may do.
    dropped = lines[:11] + lines[12:]
    trailer = registry.by_standard("KZ302").record("99")
    result = validate_bytes(registry, _join(dropped))
    # only the 99 counts/totals no longer match (0150-0158; 0040 where none is published)
    assert result.retourcodes
    assert result.retourcodes <= {"0150", "0151", "0153", "0156", "0157", "0158", "0040"}
    assert {f.field for f in result.findings} <= {f.id for f in trailer.fields}
    # Numbers going down are still wrong.
    swapped = [*lines[:3], lines[4], lines[3], *lines[5:]]
    assert "0801" in validate_bytes(registry, _join(swapped)).retourcodes


def test_a_broken_insured_record_does_not_orphan_its_prestaties(
    registry: LayoutRegistry,
) -> None:
    lines = _lines(kz301(registry, lines=3))
    lines[1] = lines[1].rstrip(b" ")  # the 02 lost its trailing spaces
    result = validate_bytes(registry, _join(lines))
    assert [(f.record, f.retourcode) for f in result.findings] == [(2, "0804")]


def test_on_record_sees_every_record_in_file_order() -> None:
    registry = load_layouts()
    data = kz301(registry, lines=3, comment="x")
    seen: list[Record] = []
    result = validate_bytes(registry, data, on_record=seen.append)
    assert result.valid
    assert [r.type for r in seen] == ["01", "02", "04", "98", "04", "98", "04", "98", "99"]
    assert b"".join(r.to_bytes() for r in seen) == data
