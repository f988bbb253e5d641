"""A batch's lines recorded under its guard: one statement checks each line is as the run
read it, moves it to its next revision and to where the run put it — as the unguarded
statements put it — on SQLite and PostgreSQL; a line changed since makes it a conflict
that records nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from adapters.storage import SqlMessageStore, Transaction, open_store
from gateway.ports.bundling import BundleConflictError, LineOutcome, RunGuard
from gateway.rules.catalogue import Phase
from gateway.rules.model import DecisionKind, LineKey, Place
from tests.adapters.storage.builders import upload
from tests.adapters.storage.test_lines import line
from tests.threadpump import ThreadPump

AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
INTEGRAL, WAITING = DecisionKind.INTEGRAL, DecisionKind.WAITING

# Lines 4-6 are put somewhere first, so that what a later outcome leaves out shows.
BEFORE = {
    n: LineOutcome(
        ("", n + 1), Place.WAITING, "", pregnancy="p0", phase=Phase.PRENATAL, decision=INTEGRAL
    )
    for n in (4, 5, 6)
}
# Every kind of outcome: settled with and without a claim, an outbound file, a retourcode;
# waiting with a pregnancy, without one, and with no phase and no decision.
OUTCOMES = {
    0: LineOutcome(
        ("", 1), Place.ABSORBED, "absorbed", None, "c-1", None, "p1", Phase.PRENATAL, INTEGRAL
    ),
    1: LineOutcome(
        ("", 2),
        Place.FORWARDED,
        "forwarded",
        None,
        None,
        "o-1",
        "p1",
        None,
        DecisionKind.MONODISCIPLINARY,
    ),
    2: LineOutcome(("", 3), Place.RETURNED, "returned", "9001"),
    3: LineOutcome(
        ("", 4), Place.WAITING, "waits", pregnancy="p2", phase=Phase.NATAL, decision=WAITING
    ),
    4: LineOutcome(("", 5), Place.WAITING, "waits"),
    5: LineOutcome(("", 6), Place.WAITING, "waits", pregnancy="p3"),
    6: LineOutcome(("", 7), Place.CANCELLED, "cancelled", "8084", pregnancy=None),
}


def _for(traceer_id: str, outcomes: dict[int, LineOutcome]) -> list[LineOutcome]:
    return [
        LineOutcome(
            (traceer_id, o.key[1]),
            o.place,
            o.reason,
            o.retourcode,
            o.claim_reference,
            o.outbound,
            o.pregnancy,
            o.phase,
            o.decision,
        )
        for o in outcomes.values()
    ]


def _rows(store: SqlMessageStore, pump: ThreadPump, traceer_id: str) -> list[tuple[object, ...]]:
    def read(txn: Transaction) -> list[tuple[object, ...]]:
        txn.execute(
            "SELECT record_number, state, reason, retourcode, claim_reference, outbound,"
            " pregnancy, phase, decision, revision FROM declaration_lines"
            " WHERE traceer_id = ? ORDER BY record_number",
            (traceer_id,),
        )
        return [tuple(row) for row in txn.fetchall()]

    return pump.wait(store.database.run_read("rows", read))


def _guard(rows: list[tuple[object, ...]], traceer_id: str) -> RunGuard:
    expected: dict[LineKey, tuple[str, int]] = {}
    for number, state, *_, revision in rows:
        assert isinstance(number, int)
        assert isinstance(state, str)
        assert isinstance(revision, int)
        expected[(traceer_id, number)] = (state, revision)
    return RunGuard(expected)


@pytest.fixture
def store(sql_url: str, pump: ThreadPump) -> SqlMessageStore:
    opened = pump.wait(open_store(sql_url, pump))
    assert isinstance(opened, SqlMessageStore)
    for n in (1, 2):
        traceer_id = f"up-{n:04d}"
        lines = [
            replace(
                line(0, traceer_id),
                record_number=i + 1,
                reference=f"R-{n}-{i}",
                prestatie_date=date(2026, 7, 1 + i),
            )
            for i in range(7)
        ]
        pump.wait(opened.record_upload(upload(n), [], lines))
        pump.wait(opened.bundles.record_bundle((), (), _for(traceer_id, BEFORE), AT))
    return opened


def test_guarded_lines_end_where_the_unguarded_statements_put_them(
    store: SqlMessageStore, pump: ThreadPump
) -> None:
    try:
        guard = _guard(_rows(store, pump, "up-0001"), "up-0001")
        pump.wait(store.bundles.record_bundle((), (), _for("up-0001", OUTCOMES), AT, guard=guard))
        pump.wait(store.bundles.record_bundle((), (), _for("up-0002", OUTCOMES), AT))
        guarded, unguarded = _rows(store, pump, "up-0001"), _rows(store, pump, "up-0002")
    finally:
        pump.wait(store.close())
    assert [row[:-1] for row in guarded] == [row[:-1] for row in unguarded]
    assert [row[-1] for row in guarded] == [1] * 7  # each moved to its next revision
    assert [row[-1] for row in unguarded] == [0] * 7
    by_number = {row[0]: row[1:-1] for row in guarded}
    assert by_number[1] == ("absorbed", "absorbed", None, "c-1", None, "p1", "prenatal", "integral")
    assert by_number[2][4:] == ("o-1", "p1", None, "monodisciplinary")
    assert by_number[3][:3] == ("returned", "returned", "9001")
    assert by_number[4][5:] == ("p2", "natal", "waiting")
    assert by_number[5][5:] == ("p0", "prenatal", "integral")  # no pregnancy: unchanged
    assert by_number[6][5:] == ("p3", None, None)  # a waiting line keeps what it is given
    assert by_number[7][:2] == ("cancelled", "cancelled")
    assert by_number[7][5:] == ("p0", None, "integral")  # a settled line keeps its decision


def test_a_line_changed_since_the_run_read_it_records_nothing(
    store: SqlMessageStore, pump: ThreadPump
) -> None:
    try:
        before = _rows(store, pump, "up-0001")
        guard = _guard(before, "up-0001")
        stale = RunGuard({**guard.expected, ("up-0001", 3): ("open", 5)})
        error = pump.wait_error(
            store.bundles.record_bundle((), (), _for("up-0001", OUTCOMES), AT, guard=stale)
        )
        after = _rows(store, pump, "up-0001")
    finally:
        pump.wait(store.close())
    assert isinstance(error, BundleConflictError)
    assert "1 of the run's 7 line(s) changed" in str(error)
    assert after == before
