"""Prestatie lines read from the fixture declarations of the three kinds of participant."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from gateway.ei import Record, read_records
from gateway.lines import DeclaredLine, declared_lines
from gateway.loading import load_layouts

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
