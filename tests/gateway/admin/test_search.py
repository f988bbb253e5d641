"""The search's keys: checked (the BSN by the eleven-proof), audited without the BSN, and
the BSN never part of a query's or a hit's ``repr``."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from gateway.admin.search import (
    HitKind,
    SearchHit,
    SearchQuery,
    SearchRefusedError,
    audit_detail,
    check_query,
    parse_day,
)
from gateway.errors import ErrorKind

BSN = "111222333"  # synthetic, passes the eleven-proof


def test_keys_are_trimmed_and_empty_ones_dropped() -> None:
    checked = check_query(SearchQuery(factuurnummer="  F-1 ", reference="", bsn=f" {BSN} "))
    assert checked == SearchQuery(factuurnummer="F-1", bsn=BSN)
    assert checked.given() == ["factuurnummer", "bsn"]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        (SearchQuery(), "geen-zoeksleutel"),
        (SearchQuery(reference="   "), "geen-zoeksleutel"),
        (SearchQuery(bsn="111222334"), "ongeldig-bsn"),  # fails the eleven-proof
        (SearchQuery(bsn="11122233"), "ongeldig-bsn"),
        (SearchQuery(bsn="000000000"), "ongeldig-bsn"),
        (SearchQuery(participant="1234567"), "ongeldige-zoeksleutel"),
        (SearchQuery(participant="00123456"), "ongeldige-zoeksleutel"),
        (SearchQuery(insurer="33a1"), "ongeldige-zoeksleutel"),
        (SearchQuery(retourcode="12345"), "ongeldige-zoeksleutel"),
        (SearchQuery(factuurnummer="F 1"), "ongeldige-zoeksleutel"),
        (SearchQuery(reference="x" * 65), "ongeldige-zoeksleutel"),
        (SearchQuery(traceer_id="<script>"), "ongeldige-zoeksleutel"),
        (
            SearchQuery(date_from=date(2026, 2, 1), date_to=date(2026, 1, 31)),
            "ongeldige-periode",
        ),
    ],
)
def test_bad_keys_are_refused(query: SearchQuery, code: str) -> None:
    with pytest.raises(SearchRefusedError) as refused:
        check_query(query)
    assert refused.value.code == code
    assert refused.value.kind is ErrorKind.INVALID
    assert "111222334" not in str(refused.value)


def test_the_audit_detail_names_the_keys_but_never_the_bsn() -> None:
    query = SearchQuery(insurer="3311", date_from=date(2026, 1, 1), bsn=BSN)
    detail = audit_detail(query)
    assert detail == "zoeken: verzekeraar (UZOVI)=3311, datum vanaf=2026-01-01, zoeken op BSN"
    assert BSN not in detail
    assert BSN not in repr(query)
    hit = SearchHit(
        HitKind.LINE,
        "up-1",
        date(2026, 1, 1),
        datetime(2026, 1, 2, tzinfo=UTC),
        None,
        None,
        "open",
        bsn=BSN,
    )
    assert BSN not in repr(hit)
    assert hit.label == "Prestatieregel"


def test_dates_are_iso_days() -> None:
    assert parse_day("date_from", " 2026-11-02 ") == date(2026, 11, 2)
    assert parse_day("date_to", "") is None
    with pytest.raises(SearchRefusedError, match="datum tot en met"):
        parse_day("date_to", "02-11-2026")
