"""Two gateway processes on one PostgreSQL database following up the same delivered files:
one hands a file out while the other skips it, and a rejection parks it once.

As in ``test_postgres_races.py``, process A's transaction is held open while process B runs
the same interaction on its own connection."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from adapters.storage import Transaction, open_store
from adapters.storage.outbox import awaiting_answer_txn, rejected_txn
from tests.adapters.storage.test_outbox import LEASE, T0, claim_file
from tests.threadpump import WAIT_SECONDS, ThreadPump

pytestmark = pytest.mark.postgres

Connection = "psycopg.Connection[tuple[Any, ...]]"
EVERY = timedelta(minutes=10)


@pytest.fixture
def connect(pg_url: str, pump: ThreadPump) -> Iterator[Callable[[str], Any]]:
    """Connections to a schema with two delivered files, as separate processes hold them."""
    store = pump.wait(open_store(pg_url, pump))
    try:
        for n in (1, 2):
            pump.wait(store.outbox.enqueue(claim_file(n), "3311", "X"))
        pump.wait(store.outbox.claim_due("3311", T0, LEASE, 10))
        for n in (1, 2):
            pump.wait(store.outbox.delivered(f"out-000{n}", f"remote-{n}", T0))
    finally:
        pump.wait(store.close())
    opened: list[Any] = []

    def open_connection(name: str) -> Any:
        conn = psycopg.connect(f"{pg_url}&application_name={name}", autocommit=True)
        opened.append(conn)
        return conn

    yield open_connection
    for conn in opened:
        conn.close()


def test_a_file_handed_out_by_one_process_is_skipped_by_the_other(
    connect: Callable[[str], Any],
) -> None:
    a, b = connect("igo_follow_a"), connect("igo_follow_b")
    a.execute("BEGIN")
    mine = awaiting_answer_txn(Transaction(a.cursor(), "postgres"), "3311", T0, EVERY, 1)
    assert [i.traceer_id for i in mine] == ["out-0001"]
    b.execute("BEGIN")  # B does not wait for A's row: it takes the next one
    theirs = awaiting_answer_txn(Transaction(b.cursor(), "postgres"), "3311", T0, EVERY, 10)
    assert [i.traceer_id for i in theirs] == ["out-0002"]
    a.execute("COMMIT")
    b.execute("COMMIT")
    c = connect("igo_follow_c")
    assert awaiting_answer_txn(Transaction(c.cursor(), "postgres"), "3311", T0, EVERY, 10) == []


def test_a_rejection_seen_by_two_processes_parks_the_file_once(
    connect: Callable[[str], Any],
) -> None:
    a = connect("igo_reject_a")
    b = connect(name_b := f"igo_reject_{uuid.uuid4().hex[:12]}")
    watcher = connect("igo_reject_watch")
    why = "rejected by the exchange service (AfgekeurdDoorDienst), meldingen: SIM001"
    a.execute("BEGIN")
    assert rejected_txn(Transaction(a.cursor(), "postgres"), "out-0001", why, T0) is True
    outcome: list[Any] = []

    def process_b() -> None:
        try:
            b.execute("BEGIN")
            outcome.append(rejected_txn(Transaction(b.cursor(), "postgres"), "out-0001", why, T0))
            b.execute("COMMIT")
        except Exception as exc:  # pragma: no cover - shown by the assertion below
            outcome.append(exc)

    thread = threading.Thread(target=process_b)
    thread.start()
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        row = watcher.execute(
            "SELECT wait_event_type FROM pg_stat_activity WHERE application_name = %s",
            (name_b,),
        ).fetchone()
        if row is not None and row[0] == "Lock":
            break
        assert not outcome, f"B did not wait for A: {outcome}"
        assert time.monotonic() < deadline, "B never waited for A"
        time.sleep(0.01)
    a.execute("COMMIT")
    thread.join(WAIT_SECONDS)
    assert outcome == [False]
    row = watcher.execute(
        "SELECT state, last_error FROM outbound WHERE traceer_id = 'out-0001'"
    ).fetchone()
    assert row == ("parked", why)
