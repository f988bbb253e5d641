"""FileWriter: numbering, the 99 record, and files that validate and read back."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ei import EIError, FileWriter, LayoutRegistry, Record, read_records, validate_bytes
from tests.factories import BSNS


def _writer(registry: LayoutRegistry) -> FileWriter:
    w = FileWriter(registry.by_standard("KZ301"))
    w.header(
        message_kind="P",
        uzovi="3311",
        praktijk_code="33001234",
        payee="03",
        period_begin=date(2026, 1, 1),
        period_end=date(2026, 12, 31),
        invoice_number="W-1",
        invoice_date=date(2027, 1, 5),
        currency="EUR",
    )
    return w


def _insured(w: FileWriter, bsn: str) -> Record:
    return w.insured(
        bsn=bsn,
        uzovi="3311",
        birth_date=date(1990, 1, 1),
        gender="2",
        name_code_1="1",
        surname="Schrijftest",
        initials="W",
        house_number=1,
        deceased="2",
    )


def _prestatie(w: FileWriter, bsn: str, ref: str, tariff: int, number: int, credit: bool) -> Record:
    amount = tariff * number * (-1 if credit else 1)
    return w.prestatie(
        bsn=bsn,
        uzovi="3311",
        forwarding_allowed="1",
        prestatie_date=date(2026, 3, 1) + timedelta(days=number),
        prestatiecodelijst="044",
        prestatiecode="196202",
        tariff=tariff,
        number_performed=number,
        calculated_amount=amount,
        declared_amount=amount,
        reference=ref,
    )


def _read(registry: LayoutRegistry, data: bytes) -> list[Record]:
    out = []
    for event in read_records(registry, [data]):
        assert isinstance(event, Record)
        out.append(event)
    return out


def test_detail_records_are_numbered_and_counted(registry: LayoutRegistry) -> None:
    w = _writer(registry)
    assert w.next_record_id == 1
    insured = _insured(w, BSNS[0])
    first = _prestatie(w, BSNS[0], "R1", 1000, 2, credit=False)
    comment = w.comment("een opmerking", line_number=1)
    second = _prestatie(w, BSNS[0], "R2", 500, 1, credit=True)
    # the comment carries the NUM040 of the record it comments on
    assert [r["record_id"] for r in (insured, first, comment, second)] == [1, 2, 2, 3]
    assert [r.number for r in (insured, first, comment, second)] == [2, 3, 4, 5]
    assert w.next_record_id == 4
    data = w.finish()
    trailer = _read(registry, data)[-1]
    assert (trailer["count_02"], trailer["count_04"], trailer["count_98"]) == (1, 2, 1)
    assert trailer["count_03"] == 0
    assert trailer["count_detail"] == 4
    assert trailer["total_declared"] == 2000 - 500
    assert validate_bytes(registry, data).valid


def test_overrides_replace_what_the_99_would_say(registry: LayoutRegistry) -> None:
    w = _writer(registry)
    _insured(w, BSNS[0])
    _prestatie(w, BSNS[0], "R1", 1000, 1, credit=False)
    data = w.finish(total_declared=999)
    assert _read(registry, data)[-1]["total_declared"] == 999
    assert validate_bytes(registry, data).retourcodes == {"0150"}


def test_lines_and_finish_give_the_same_file(registry: LayoutRegistry) -> None:
    def build() -> FileWriter:
        w = _writer(registry)
        _insured(w, BSNS[1])
        _prestatie(w, BSNS[1], "R1", 1000, 3, credit=False)
        return w

    assert b"".join(build().lines()) == build().finish()


def test_the_order_of_calls_is_enforced(registry: LayoutRegistry) -> None:
    w = FileWriter(registry.by_standard("KZ301"))
    with pytest.raises(RuntimeError, match="between the 01 and the 99"):
        w.comment("too early")
    w.header(message_kind="P")
    with pytest.raises(RuntimeError, match="already written"):
        w.header(message_kind="P")
    w.finish()
    with pytest.raises(RuntimeError, match="between the 01 and the 99"):
        w.comment("too late")
    with pytest.raises(RuntimeError, match="already finished"):
        w.finish()


def test_a_value_that_does_not_fit_is_refused_not_cut(registry: LayoutRegistry) -> None:
    w = _writer(registry)
    _insured(w, BSNS[0])
    with pytest.raises(EIError) as caught:
        _prestatie(w, BSNS[0], "R" * 21, 1000, 1, credit=False)
    assert caught.value.finding.field == "0432"
    with pytest.raises(EIError):
        _prestatie(w, BSNS[0], "R1", 10**8, 1, credit=False)  # tariff has 8 positions


_line = st.tuples(
    st.integers(min_value=0, max_value=100_000),  # tariff in eurocents
    st.integers(min_value=1, max_value=99),  # number performed
    st.booleans(),  # credit
)


@settings(max_examples=40, deadline=None)
@given(
    clients=st.lists(
        st.tuples(st.sampled_from(BSNS), st.lists(_line, min_size=1, max_size=5)),
        min_size=1,
        max_size=4,
    ),
    comment=st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=140
    ).filter(lambda t: t.strip() != ""),
)
def test_any_written_file_validates_and_reads_back_byte_for_byte(
    registry: LayoutRegistry,
    clients: list[tuple[str, list[tuple[int, int, bool]]]],
    comment: str,
) -> None:
    w = _writer(registry)
    n = 0
    for bsn, lines in clients:
        _insured(w, bsn)
        for tariff, number, credit in lines:
            n += 1
            _prestatie(w, bsn, f"P-{n}", tariff, number, credit)
        w.comment(comment)
    data = w.finish()
    result = validate_bytes(registry, data)
    assert result.valid, [f.message for f in result.findings]
    records = _read(registry, data)
    assert b"".join(r.to_bytes() for r in records) == data
    declared = sum(t * k * (-1 if c else 1) for _, lines in clients for t, k, c in lines)
    assert records[-1]["total_declared"] == declared
    assert records[-2]["text"] == comment.rstrip(" ")
