"""Prestatie lines read from the fixture declarations of the three kinds of participant,
and :func:`declared_lines` (fields of a record type sliced at once) giving what reading
each field on its own (:func:`lines_by_field`) gives: over every fixture and generated
files, valid and damaged."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from gateway import lines as lines_module
from gateway.ei import EIError, Record, read_records
from gateway.lines import DeclaredLine, declared_lines, lines_by_field
from gateway.loading import load_layouts
from tests.factories import zh308
from tests.gateway.ei.fixture_table import ROWS, Row
from tests.gateway.ei.test_fast import field_mutated
from tests.gateway.ei.test_fuzz import mutated

REGISTRY = load_layouts()
MESSAGES = Path(__file__).resolve().parents[2] / "fixtures" / "messages"


def lines_of(name: str, standard: str) -> list[DeclaredLine]:
    data = (MESSAGES / name).read_bytes()
    records = [r for r in read_records(REGISTRY, [data]) if isinstance(r, Record)]
    return declared_lines(records, traceer_id="t-1", participant="p", standard=standard)


def test_kraamzorg_lines_carry_the_birth_date_of_their_02_record() -> None:
    lines = lines_of("kz301-kraamzorg-33001234.asc", "KZ301")
    first = lines[0]
    assert (first.traceer_id, first.record_number, first.standard) == ("t-1", 2, "KZ301")
    assert first.bsn == "999990007"
    assert first.birth_date == date(1994, 5, 6)
    assert first.insurer == "3311"
    assert first.amount is not None
    assert first.amount > 0
    assert {line.bsn for line in lines} == {"999990007", "999990019"}
    numbers = [line.record_number for line in lines]
    assert numbers == sorted(numbers)
    assert len({line.reference for line in lines}) == len(lines)


def test_a_credit_line_is_negative_and_names_what_it_corrects() -> None:
    credit, debit = lines_of("kz301-correction-credit.asc", "KZ301")
    assert credit.is_credit
    assert credit.amount == -43750
    assert credit.previous_reference == "KZA2026-003"
    assert not debit.is_credit


def test_hospital_lines_take_their_amount_and_performer_from_their_tariff_records() -> None:
    (line,) = lines_of("zh308-ziekenhuis-06001234.asc", "ZH308")
    assert line.birth_date == date(1994, 5, 6)  # from the 02: v8.0's 04 has none
    assert line.prestatie_end_date == date(2026, 7, 26)
    assert line.amount == 232445 + 57112  # the two 06 tariefrecords, not 0 or None
    assert line.performer == "03012345"  # the gynaecologist on the 06 records
    assert line.prestatiecode == "ZZ0001"


def test_hospital_lines_carry_their_zorgproduct_and_zorgactiviteit() -> None:
    (line,) = lines_of("zh308-ziekenhuis-06001234.asc", "ZH308")
    assert line.zorgproduct == "979001095"
    assert "190037" in line.zorgactiviteiten  # poliklinische bevalling op medische indicatie


def test_midwifery_lines() -> None:
    lines = lines_of("vk301-verloskunde-02001234.asc", "VK301")
    assert len(lines) == 7  # woman A was referred in labour: no natal line
    assert all(line.prestatiecodelijst == "032" for line in lines)  # verloskundige hulp
    assert {line.prestatiecode for line in lines} == {"1101", "1102", "1103", "1603"}
    assert all(line.amount is not None and line.amount > 0 for line in lines)
    assert all(line.performer == "02012345" for line in lines)


# --- the lines read at once are the lines read field by field ------------------------------

EQUAL = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
Lines = Callable[..., list[DeclaredLine]]


def _records(data: bytes) -> list[Record]:
    """The records of ``data``, up to where the reader gives up on it."""
    records: list[Record] = []
    with contextlib.suppress(EIError):
        records += (r for r in read_records(REGISTRY, [data]) if isinstance(r, Record))
    return records


def _outcome(read: Lines, data: bytes) -> object:
    """The lines of ``data``'s records, or the error reading them raised."""
    try:
        return read(_records(data), traceer_id="t-1", participant="p", standard="S")
    except Exception as exc:
        return (type(exc), str(exc))


def _same(data: bytes) -> None:
    assert _outcome(declared_lines, data) == _outcome(lines_by_field, data)


@pytest.mark.parametrize("row", ROWS, ids=[row.file for row in ROWS])
def test_every_fixture_gives_the_same_lines_both_ways(row: Row) -> None:
    _same(row.read())


@pytest.mark.parametrize(
    "row", [row for row in ROWS if row.valid], ids=[row.file for row in ROWS if row.valid]
)
def test_a_valid_file_is_read_without_the_field_by_field_way(
    row: Row, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _outcome(lines_by_field, row.read())

    def refused(*args: object, **kwargs: object) -> list[DeclaredLine]:
        raise AssertionError("read field by field")

    monkeypatch.setattr(lines_module, "lines_by_field", refused)
    assert _outcome(declared_lines, row.read()) == expected


@EQUAL
@given(raw=mutated())
def test_damaged_fixtures_give_the_same_lines_both_ways(raw: bytes) -> None:
    _same(raw)


@EQUAL
@given(raw=field_mutated())
def test_files_with_fields_set_to_tripping_values_give_the_same_lines_both_ways(
    raw: bytes,
) -> None:
    _same(raw)


def test_hospital_lines_with_zorgactiviteit_records_are_the_same_both_ways() -> None:
    for activities in range(3):
        data = zh308(REGISTRY, lines=3, activities=activities)
        lines = _outcome(declared_lines, data)
        assert isinstance(lines, list)
        assert len(lines) == 3
        assert lines == _outcome(lines_by_field, data)


def test_a_line_is_built_from_every_argument_with_the_dataclass_defaults_and_stays_frozen() -> None:
    own = dataclasses.fields(DeclaredLine)
    parameters = inspect.signature(DeclaredLine).parameters
    assert list(parameters) == [f.name for f in own]
    assert [p.default for p in parameters.values()] == [
        inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default for f in own
    ]
    values: dict[str, Any] = {f.name: f"value of {f.name}" for f in own}
    line = DeclaredLine(**values)
    assert {f.name: getattr(line, f.name) for f in own} == values
    required = {f.name: values[f.name] for f in own if f.default is dataclasses.MISSING}
    short = DeclaredLine(*required.values())
    assert (short.zorgproduct, short.zorgactiviteiten) == (None, ())
    assert dataclasses.replace(line, bsn="other").bsn == "other"
    with pytest.raises(dataclasses.FrozenInstanceError):
        line.bsn = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        DeclaredLine(*values.values(), "one too many")  # type: ignore[call-arg]


def test_slot_setting_init_refuses_a_class_whose_fields_it_cannot_set_plainly() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Listed:
        items: list[str] = dataclasses.field(default_factory=list)

    with pytest.raises(TypeError, match="plain fields"):
        lines_module._slot_setting_init(Listed)
