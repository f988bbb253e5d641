"""Records: typed field access over the raw bytes, and writing them back."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ei import EIError, FieldValue, LayoutRegistry, Record, build_record, read_records
from tests.gateway.ei.fixture_table import MESSAGES


def _read(registry: LayoutRegistry, name: str) -> list[Record]:
    records = []
    for event in read_records(registry, [(MESSAGES / name).read_bytes()]):
        assert isinstance(event, Record)
        records.append(event)
    return records


def test_typed_access_to_a_declaration(registry: LayoutRegistry) -> None:
    head, insured, first, *_ = _read(registry, "kz301-kraamzorg-33001234.asc")
    assert head.type == "01"
    assert head["period_begin"] == date(2026, 6, 1)
    assert head["invoice_date"] == date(2026, 9, 4)
    assert head["invoice_number"] == "KZ2026-0815"  # trailing spaces dropped
    assert head["praktijk_code"] == "33001234"
    assert head["instelling_code"] == "00000000"  # an unfilled code stays a code
    assert head["standard_code"] == "133"
    assert insured["birth_date"] == date(1994, 5, 6)
    assert insured["bsn"] == "999990007"
    assert insured["house_number"] == 12
    assert first.number == 3
    assert first["record_id"] == 2
    assert first["prestatiecodelijst"] == "044"  # leading zero kept: a code, not a number
    assert first["tariff"] == 6250
    assert first["declared_amount"] == 6250
    assert first["previous_reference"] == ""


def test_a_credit_amount_is_a_negative_int(registry: LayoutRegistry) -> None:
    records = _read(registry, "kz301-correction-credit.asc")
    prestaties = [r for r in records if r.type == "04"]
    credit, debit = prestaties
    assert credit.raw_field("declared_amount") == b"00043750C"
    assert credit["declared_amount"] == -43750
    assert credit["calculated_amount"] == -43750
    assert credit["previous_reference"] == "KZA2026-003"
    assert debit["declared_amount"] == 37500
    trailer = records[-1]
    assert trailer["total_declared"] == -6250
    assert trailer.raw_field("total_declared") == b"00000006250C"


def test_a_malformed_field_raises_the_codecs_error_with_its_place(
    registry: LayoutRegistry,
) -> None:
    rec = _read(registry, "invalid-0806-birth-date-not-a-date.asc")[1]
    with pytest.raises(EIError) as caught:
        rec["birth_date"]
    finding = caught.value.finding
    assert (finding.record, finding.kind, finding.field) == (2, "02", "0207")
    assert (finding.start, finding.end, finding.value) == (54, 61, "19940231")
    assert rec["surname"] == "Voorbeeld"  # the other fields still read


def test_get_text_and_number_value(registry: LayoutRegistry) -> None:
    head, insured, *_ = _read(registry, "kz301-minimal.asc")
    assert head.get("granted_amount") is None
    assert head.get("granted_amount", 0) == 0
    assert insured.text("house_number") == "12"
    assert insured.number_value("house_number") == 12
    assert insured.text("patient_number") == ""
    with pytest.raises(TypeError, match="not a number"):
        insured.number_value("bsn")
    with pytest.raises(KeyError, match="no field 'granted_amount'"):
        head["granted_amount"]
    assert dict(insured.items())["surname"] == "Voorbeeld"
    assert len(list(insured.items())) == len(insured.layout.fields)


def test_replace_writes_a_new_record_and_leaves_the_old_one(registry: LayoutRegistry) -> None:
    prestatie = _read(registry, "kz301-minimal.asc")[2]
    changed = prestatie.replace(number_performed=3, calculated_amount=-18750)
    assert prestatie["number_performed"] == 1
    assert changed["number_performed"] == 3
    assert changed["calculated_amount"] == -18750
    assert changed.number == prestatie.number
    assert len(changed.raw) == len(prestatie.raw)
    # Only the two fields changed.
    diff = [i for i, (a, b) in enumerate(zip(prestatie.raw, changed.raw, strict=True)) if a != b]
    spans = [prestatie.layout.field(n).slice for n in ("number_performed", "calculated_amount")]
    assert all(any(s.start <= i < s.stop for s in spans) for i in diff)
    with pytest.raises(dataclasses.FrozenInstanceError):
        prestatie.raw = b""  # type: ignore[misc]


def test_build_record_refuses_a_base_of_the_wrong_length(registry: LayoutRegistry) -> None:
    layout = registry.by_standard("KZ301").record("98")
    with pytest.raises(ValueError, match="base record has 10 positions"):
        build_record(layout, {}, base=b"9" * 10)


def test_a_blank_record_has_zeros_in_n_fields_and_spaces_in_an_fields(
    registry: LayoutRegistry,
) -> None:
    layout = registry.by_standard("KZ301").record("04")
    rec = build_record(layout, {})
    assert rec.raw[:2] == b"04"
    assert rec.raw_field("tariff") == b"00000000"
    assert rec.raw_field("declared_amount") == b"00000000D"
    assert rec.raw_field("reference") == b" " * 20
    assert rec["prestatie_date"] is None


# --- property: build, parse, serialise ------------------------------------------------------

_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=0, max_size=20
).map(str.rstrip)
_dates = st.dates(min_value=date(1900, 1, 1), max_value=date(2099, 12, 31))


@st.composite
def prestatie_values(draw: st.DrawFn) -> dict[str, FieldValue]:
    return {
        "record_id": draw(st.integers(0, 10**12 - 1)),
        "bsn": draw(st.from_regex(r"[0-9]{9}", fullmatch=True)),
        "uzovi": draw(st.from_regex(r"[0-9]{4}", fullmatch=True)),
        "member_number": draw(_text.map(lambda t: t[:15].rstrip())),
        "prestatie_date": draw(_dates),
        "prestatiecodelijst": draw(st.from_regex(r"[0-9]{3}", fullmatch=True)),
        "prestatiecode": draw(_text.map(lambda t: t[:6].rstrip())),
        "tariff": draw(st.integers(0, 10**8 - 1)),
        "number_performed": draw(st.integers(0, 9999)),
        "calculated_amount": draw(st.integers(-(10**8) + 1, 10**8 - 1)),
        "declared_amount": draw(st.integers(-(10**8) + 1, 10**8 - 1)),
        "reference": draw(_text),
        "previous_reference": draw(_text),
    }


@settings(max_examples=60, deadline=None)
@given(values=prestatie_values())
def test_any_written_record_reads_back_as_the_values_written(
    registry: LayoutRegistry, values: dict[str, FieldValue]
) -> None:
    layout = registry.by_standard("KZ301").record("04")
    raw = build_record(layout, values).raw
    assert len(raw) == layout.length
    parsed = Record(layout, raw)
    for name, value in values.items():
        assert parsed[name] == value, name
    assert build_record(layout, dict(parsed.items())).raw == raw
