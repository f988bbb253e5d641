"""Two gateway processes on one PostgreSQL database: unique constraints decide races.

Each test holds process A's transaction open after its insert, lets process B run the same
interaction until the server makes it wait for A, then commits A: B must then read back
what A stored, and write nothing of its own.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from twisted.python.failure import Failure

from adapters.storage import Transaction, open_store
from adapters.storage.journal import JournalCodec
from adapters.storage.messages import _key_taken, record_upload_txn
from gateway.ports.messages import UploadResult
from tests.adapters.storage.builders import upload
from tests.threadpump import WAIT_SECONDS, ThreadPump

pytestmark = pytest.mark.postgres

Connect = Callable[[str], "psycopg.Connection[tuple[Any, ...]]"]

PLAIN = JournalCodec(None)  # payloads as they are: these tests are about the races


@pytest.fixture
def connect(pg_url: str, pump: ThreadPump) -> Iterator[Connect]:
    """Connections to a migrated schema, as separate gateway processes would hold."""
    pump.wait(pump.wait(open_store(pg_url, pump)).close())
    opened: list[psycopg.Connection[tuple[Any, ...]]] = []

    def open_connection(name: str) -> psycopg.Connection[tuple[Any, ...]]:
        conn = psycopg.connect(f"{pg_url}&application_name={name}", autocommit=True)
        opened.append(conn)
        return conn

    yield open_connection
    for conn in opened:
        conn.close()


def _race(connect: Connect, first: Any, second: Any) -> tuple[UploadResult, UploadResult]:
    """Run ``record_upload_txn`` for ``first`` in A and ``second`` in B, B waiting on A."""
    a = connect("igo_race_a")
    name_b = f"igo_race_{uuid.uuid4().hex[:12]}"
    b = connect(name_b)
    watcher = connect("igo_race_watch")
    a.execute("BEGIN")
    result_a = record_upload_txn(Transaction(a.cursor(), "postgres"), first, (), PLAIN)
    outcome: list[Any] = []

    def process_b() -> None:
        try:
            b.execute("BEGIN")
            outcome.append(
                record_upload_txn(Transaction(b.cursor(), "postgres"), second, (), PLAIN)
            )
            b.execute("COMMIT")
        except Exception as exc:
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
    assert not thread.is_alive()
    (result_b,) = outcome
    assert isinstance(result_b, UploadResult), result_b
    return result_a, result_b


def _count(conn: psycopg.Connection[tuple[Any, ...]], table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def test_the_same_upload_from_two_processes_is_stored_once(connect: Connect) -> None:
    first = upload(1)
    # B gave the same upload another traceer id before it reached the database
    second = upload(2, key=first.idempotency_key, payload=first.payload)
    result_a, result_b = _race(connect, first, second)
    assert result_a.created
    assert not result_b.created
    assert result_b.message == result_a.message
    check = connect("igo_race_check")
    assert (_count(check, "messages"), _count(check, "journal")) == (1, 1)


def test_an_invoice_number_raced_by_two_processes_is_kept_by_the_first(connect: Connect) -> None:
    first = upload(1, invoice="F-1")
    second = upload(2, invoice="F-1", payload=b"another file with the same number")
    result_a, result_b = _race(connect, first, second)
    assert result_a.created
    assert result_b.message is None
    assert not result_b.created
    assert result_b.invoice_conflict == "up-0001"
    check = connect("igo_race_check")
    # B journaled its bytes before it lost, and took them back
    assert (_count(check, "messages"), _count(check, "journal")) == (1, 1)


def test_one_client_key_raced_by_two_processes_with_other_bytes_stores_one_message(
    connect: Connect,
) -> None:
    """Two processes receive different files under one Idempotency-Key at once: B, having
    stored its message, waits on A's key, finds it A's and takes its own writes back."""
    first, second = upload(1), upload(2)
    a, b = connect("igo_race_a"), connect(name_b := f"igo_race_{uuid.uuid4().hex[:12]}")
    watcher = connect("igo_race_watch")
    a.execute("BEGIN")
    result_a = record_upload_txn(
        Transaction(a.cursor(), "postgres"), first, (), PLAIN, client_key="K-1"
    )
    outcome: list[Any] = []

    def process_b() -> None:
        b.execute("BEGIN")
        try:
            record_upload_txn(
                Transaction(b.cursor(), "postgres"), second, (), PLAIN, client_key="K-1"
            )
        except Exception as exc:  # what the store's savepoint rolls back on
            outcome.append(exc)
        b.execute("ROLLBACK")

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
        assert time.monotonic() < deadline, "B never waited for A"
        time.sleep(0.01)
    a.execute("COMMIT")
    thread.join(WAIT_SECONDS)
    assert result_a.created
    (taken,) = outcome
    result_b = _key_taken(Failure(taken))
    assert (result_b.created, result_b.key_conflict) == (False, True)
    assert result_b.message == result_a.message
    check = connect("igo_race_check")
    assert (_count(check, "messages"), _count(check, "upload_idempotency_keys")) == (1, 1)
