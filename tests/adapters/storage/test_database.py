"""The bottom layer: group commit, savepoints, engine settings, errors, shutdown."""

from __future__ import annotations

import socket
import sqlite3
import threading
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
from twisted.internet.defer import Deferred

from adapters.storage import Database, Transaction, open_database, open_store
from adapters.storage import database as database_module
from adapters.storage.database import (
    ALONE,
    UNSAFE_NO_FSYNC_ENV,
    _to_pyformat,
    decode_timestamp,
    encode_timestamp,
)
from adapters.storage.facade import SqlMessageStore
from gateway.ports.messages import StoreError, StoreUnavailableError, UploadResult
from tests.adapters.storage.builders import retour, upload
from tests.threadpump import WAIT_SECONDS, ThreadPump

# --- interactions used below ----------------------------------------------------------------


def _create_scratch_txn(txn: Transaction) -> None:
    txn.execute("CREATE TABLE scratch (n INTEGER PRIMARY KEY)")


def _insert_txn(txn: Transaction, n: int) -> int:
    txn.execute("INSERT INTO scratch (n) VALUES (?)", (n,))
    return n


def _insert_then_fail_txn(txn: Transaction, n: int) -> int:
    txn.execute("INSERT INTO scratch (n) VALUES (?)", (n,))
    raise RuntimeError("this interaction fails after writing")


def _scratch_txn(txn: Transaction) -> list[int]:
    txn.execute("SELECT n FROM scratch ORDER BY n")
    return [int(row[0]) for row in txn.fetchall()]


def _gate_txn(txn: Transaction, entered: threading.Event, release: threading.Event) -> None:
    entered.set()
    assert release.wait(WAIT_SECONDS)


def _pragma_txn(txn: Transaction, name: str) -> object:
    txn.execute(f"PRAGMA {name}")
    row = txn.fetchone()
    assert row is not None
    return row[0]


# --- group commit ------------------------------------------------------------------------------


def test_concurrent_uploads_are_group_committed(sql_url: str, pump: ThreadPump) -> None:
    store = pump.wait(open_store(sql_url, pump))
    try:
        pump.wait(store.put_message(retour(999, traceer_id="taken")))
        commits_before = store.database.commits
        news = [upload(n) for n in range(50)]
        # one upload's reply collides with a stored message: only that upload fails
        replies = {7: [retour(7, to=news[7], traceer_id="taken", payload=b"clash")]}
        calls = [store.record_upload(new, replies.get(n, ())) for n, new in enumerate(news)]
        outcomes: list[UploadResult | BaseException] = []
        for call in calls:
            try:
                outcomes.append(pump.wait(call))
            except StoreError as exc:
                outcomes.append(exc)
        commits = store.database.commits - commits_before
        assert isinstance(outcomes[7], StoreError)
        created = [o for o in outcomes if isinstance(o, UploadResult) and o.created]
        assert len(created) == 49
        assert commits < 50, f"{commits} commits for 50 uploads"
        for n, new in enumerate(news):
            stored = pump.wait(store.get_message(new.traceer_id))
            assert (stored is None) == (n == 7)
    finally:
        pump.wait(store.close())


def test_a_failing_interaction_leaves_the_rest_of_its_batch(sql_url: str, pump: ThreadPump) -> None:
    database = open_database(sql_url, pump)
    try:
        pump.wait(database.run_interaction("create", _create_scratch_txn))
        entered, release = threading.Event(), threading.Event()
        gate = database.run_interaction("gate", _gate_txn, entered, release)
        assert entered.wait(WAIT_SECONDS)
        commits_before = database.commits
        # queued while the writer is held: these five are one batch
        batch = [
            database.run_interaction("insert", _insert_txn, 1),
            database.run_interaction("insert", _insert_txn, 2),
            database.run_interaction("fail", _insert_then_fail_txn, 3),
            database.run_interaction("insert", _insert_txn, 3),
            database.run_interaction("duplicate", _insert_txn, 1),
        ]
        release.set()
        pump.wait(gate)
        assert pump.wait(batch[0]) == 1
        assert pump.wait(batch[1]) == 2
        error = pump.wait_error(batch[2])
        assert isinstance(error, RuntimeError)
        assert pump.wait(batch[3]) == 3
        duplicate = pump.wait_error(batch[4])
        # an engine error other than "unavailable" is still the store's own
        assert type(duplicate) is StoreError
        # the gate's own batch, then the five in one transaction
        assert database.commits - commits_before == 2
        assert pump.wait(database.run_read("read", _scratch_txn)) == [1, 2, 3]
    finally:
        pump.wait(database.close())


def _insert_together_txn(txn: Transaction, calls: list[tuple[Any, ...]]) -> list[object]:
    """Inserts the even numbers of a batch in one statement, leaves the odd ones alone;
    a batch holding -1 fails after writing, one holding -2 inserts it twice."""
    numbers = [int(n) for (n,) in calls]
    even = [(n,) for n in numbers if n % 2 == 0]
    if -2 in numbers:  # an engine error in the middle of the statement
        even += [(-2,)]
    txn.executemany("INSERT INTO scratch (n) VALUES (?)", even)
    if -1 in numbers:
        raise RuntimeError("this batch fails after writing")
    return [n * 10 if n % 2 == 0 else ALONE for n in numbers]


def test_jobs_with_one_batch_function_run_together(sql_url: str, pump: ThreadPump) -> None:
    database = open_database(sql_url, pump)
    try:
        pump.wait(database.run_interaction("create", _create_scratch_txn))
        entered, release = threading.Event(), threading.Event()
        gate = database.run_interaction("gate", _gate_txn, entered, release)
        assert entered.wait(WAIT_SECONDS)
        commits_before = database.commits
        alone = database.run_interaction("insert", _insert_txn, 7)
        together = [
            database.run_together("insert", _insert_together_txn, _insert_txn, n)
            for n in (2, 3, 4, 5)
        ]
        duplicate = database.run_together("insert", _insert_together_txn, _insert_txn, 7)
        release.set()
        pump.wait(gate)
        # the batch function's results, and the left ones run alone by their function
        assert [pump.wait(d) for d in together] == [20, 3, 40, 5]
        assert pump.wait(alone) == 7
        # a job left alone that fails fails only its own caller
        assert type(pump.wait_error(duplicate)) is StoreError
        assert database.commits - commits_before == 2
        assert pump.wait(database.run_read("read", _scratch_txn)) == [2, 3, 4, 5, 7]
    finally:
        pump.wait(database.close())


def test_a_failing_batch_function_runs_each_of_its_jobs_alone(
    sql_url: str, pump: ThreadPump
) -> None:
    database = open_database(sql_url, pump)
    try:
        pump.wait(database.run_interaction("create", _create_scratch_txn))
        entered, release = threading.Event(), threading.Event()
        gate = database.run_interaction("gate", _gate_txn, entered, release)
        assert entered.wait(WAIT_SECONDS)
        jobs = [
            database.run_together("insert", _insert_together_txn, _insert_txn, n)
            for n in (2, -1, 4)
        ]
        failing = database.run_together("fail", _insert_together_txn, _insert_then_fail_txn, 6)
        release.set()
        pump.wait(gate)
        # rolled back (even numbers it wrote included), then each alone: plain results
        assert pump.wait(jobs[0]) == 2
        assert pump.wait(jobs[1]) == -1
        assert pump.wait(jobs[2]) == 4
        assert isinstance(pump.wait_error(failing), RuntimeError)
        assert pump.wait(database.run_read("read", _scratch_txn)) == [-1, 2, 4]
        # an engine error inside the batch function: the same
        entered.clear()
        release.clear()
        gate = database.run_interaction("gate", _gate_txn, entered, release)
        assert entered.wait(WAIT_SECONDS)
        jobs = [
            database.run_together("insert", _insert_together_txn, _insert_txn, n)
            for n in (8, -2, 10)
        ]
        release.set()
        pump.wait(gate)
        assert [pump.wait(d) for d in jobs] == [8, -2, 10]
        assert pump.wait(database.run_read("read", _scratch_txn)) == [-2, -1, 2, 4, 8, 10]
    finally:
        pump.wait(database.close())


def test_a_batch_function_that_finds_the_database_unavailable_fails_each_of_its_jobs(
    tmp_path: Path, pump: ThreadPump
) -> None:
    database = open_database(f"sqlite:///{tmp_path / 'gateway.db'}", pump)
    try:
        pump.wait(database.run_interaction("create", _create_scratch_txn))
        entered, release = threading.Event(), threading.Event()
        gate = database.run_interaction("gate", _gate_txn, entered, release)
        assert entered.wait(WAIT_SECONDS)
        jobs = [database.run_together("full", _full_together_txn, _insert_txn, n) for n in (1, 2)]
        alone = database.run_interaction("insert", _insert_txn, 3)
        release.set()
        pump.wait(gate)
        for job in jobs:
            assert isinstance(pump.wait_error(job), StoreUnavailableError)
        assert pump.wait(alone) == 3
        assert pump.wait(database.run_read("read", _scratch_txn)) == [3]
    finally:
        pump.wait(database.close())


def _full_together_txn(txn: Transaction, calls: list[tuple[Any, ...]]) -> list[object]:
    txn.executemany("INSERT INTO scratch (n) VALUES (?)", calls)
    error = sqlite3.OperationalError("database or disk is full")
    error.sqlite_errorcode = sqlite3.SQLITE_FULL
    raise error


def test_close_finishes_the_queued_writes(sql_url: str, pump: ThreadPump) -> None:
    database = open_database(sql_url, pump)
    pump.wait(database.run_interaction("create", _create_scratch_txn))
    queued = [database.run_interaction("insert", _insert_txn, n) for n in range(20)]
    closed = database.close()
    again = database.close()
    assert [pump.wait(d) for d in queued] == list(range(20))
    pump.wait(closed)
    pump.wait(again)
    pump.wait(database.close())  # closing a closed database is no error
    late = pump.wait_error(database.run_interaction("insert", _insert_txn, 99))
    assert isinstance(late, StoreUnavailableError)
    database = open_database(sql_url, pump)
    try:
        assert pump.wait(database.run_read("read", _scratch_txn)) == list(range(20))
    finally:
        pump.wait(database.close())


def _read_gate_txn(txn: Transaction, entered: threading.Event, release: threading.Event) -> int:
    entered.set()
    assert release.wait(WAIT_SECONDS)
    return 1


def test_every_read_is_answered_when_the_database_closes(tmp_path: Path, pump: ThreadPump) -> None:
    database = Database.sqlite(str(tmp_path / "gw.db"), pump, readers=1)
    pump.wait(database.run_interaction("create", _create_scratch_txn))
    entered, release = threading.Event(), threading.Event()
    running = database.run_read("gate", _read_gate_txn, entered, release)
    assert entered.wait(WAIT_SECONDS)
    queued = database.run_read("read", _scratch_txn)  # waits for the only reader
    closed = database.close()
    release.set()
    assert pump.wait(running) == 1
    outcome: list[object] = []
    queued.addBoth(outcome.append)
    pump.wait(closed)
    assert len(outcome) == 1
    assert outcome[0] == [] or isinstance(getattr(outcome[0], "value", None), StoreUnavailableError)
    outcome.clear()  # the Failure, if any, is handled


# --- SQLite ----------------------------------------------------------------------------------


def test_sqlite_connections_are_durable_and_checked(tmp_path: Path, pump: ThreadPump) -> None:
    database = Database.sqlite(str(tmp_path / "gw.db"), pump)
    try:
        write = database.run_interaction
        assert pump.wait(write("pragma", _pragma_txn, "journal_mode")) == "wal"
        assert pump.wait(write("pragma", _pragma_txn, "synchronous")) == 2  # FULL
        assert pump.wait(write("pragma", _pragma_txn, "foreign_keys")) == 1
        assert pump.wait(database.run_read("pragma", _pragma_txn, "foreign_keys")) == 1
        assert pump.wait(database.run_read("pragma", _pragma_txn, "synchronous")) == 2
        # Negative: KiB. SQLite's own default (-2000, about 2 MiB) spills every large
        # write transaction to the WAL before its commit.
        assert pump.wait(write("pragma", _pragma_txn, "cache_size")) == -64 * 1024
        assert pump.wait(database.run_read("pragma", _pragma_txn, "cache_size")) == -64 * 1024
    finally:
        pump.wait(database.close())


def test_the_sqlite_page_cache_can_be_sized(tmp_path: Path, pump: ThreadPump) -> None:
    database = Database.sqlite(str(tmp_path / "gw.db"), pump, cache_mib=8)
    try:
        assert pump.wait(database.run_interaction("pragma", _pragma_txn, "cache_size")) == -8192
        assert pump.wait(database.run_read("pragma", _pragma_txn, "cache_size")) == -8192
    finally:
        pump.wait(database.close())


def test_a_locked_sqlite_database_is_unavailable_for_writes_only(
    tmp_path: Path, pump: ThreadPump
) -> None:
    path = tmp_path / "gw.db"
    store = pump.wait(open_store(f"sqlite:///{path}", pump))
    pump.wait(store.close())
    database = Database.sqlite(str(path), pump, busy_timeout=0.2)
    store = SqlMessageStore(database)
    other = sqlite3.connect(path, isolation_level=None)  # another process, holding the lock
    try:
        other.execute("BEGIN IMMEDIATE")
        error = pump.wait_error(store.record_upload(upload(1)))
        assert isinstance(error, StoreUnavailableError)
        assert "locked" in str(error)
        assert pump.wait(store.ping()) is None  # WAL: readers are not blocked
        other.execute("ROLLBACK")
        assert pump.wait(store.record_upload(upload(1))).created  # and it recovers
    finally:
        other.close()
        pump.wait(store.close())


def test_an_unopenable_sqlite_file_is_unavailable(tmp_path: Path, pump: ThreadPump) -> None:
    store = SqlMessageStore(Database.sqlite(str(tmp_path / "missing" / "gw.db"), pump))
    try:
        assert isinstance(pump.wait_error(store.ping()), StoreUnavailableError)
        assert isinstance(pump.wait_error(store.record_upload(upload(1))), StoreUnavailableError)
    finally:
        pump.wait(store.close())
    error = pump.wait_error(open_store(f"sqlite:///{tmp_path / 'missing' / 'gw.db'}", pump))
    assert isinstance(error, StoreUnavailableError)


def test_an_in_memory_sqlite_store_works_through_the_writer(pump: ThreadPump) -> None:
    store = pump.wait(open_store("sqlite:///:memory:", pump))
    try:
        assert pump.wait(store.record_upload(upload(1))).created
        assert pump.wait(store.get_message("up-0001")) is not None
    finally:
        pump.wait(store.close())


# --- PostgreSQL ------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # nothing listens on it any more


def test_an_unreachable_postgresql_server_is_unavailable(pump: ThreadPump) -> None:
    url = f"postgresql://postgres@127.0.0.1:{_closed_port()}/test"
    store = SqlMessageStore(Database.postgres(url, pump, connect_timeout=2))
    try:
        for call in (store.ping(), store.record_upload(upload(1)), store.get_message("x")):
            error = pump.wait_error(call)
            assert type(error) is StoreUnavailableError, repr(error)
            assert "postgres database unavailable" in str(error)
    finally:
        pump.wait(store.close())
    error = pump.wait_error(open_store(url, pump))
    assert type(error) is StoreUnavailableError


@pytest.mark.postgres
def test_a_lost_idle_postgresql_connection_is_replaced_without_an_error(
    pg_url: str, postgres_url: str, pump: ThreadPump
) -> None:
    name = f"igo_test_{uuid.uuid4().hex[:12]}"  # to find this test's connections
    store = pump.wait(open_store(f"{pg_url}&application_name={name}", pump))
    try:
        assert pump.wait(store.record_upload(upload(1))).created
        assert pump.wait(store.ping()) is None
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            ended = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (name,),
            ).fetchall()
        assert len(ended) >= 2
        assert all(ok for (ok,) in ended)
        # The writer finds its connection lost at BEGIN and connects anew: the batch runs.
        assert pump.wait(store.record_upload(upload(2))).created
        # So does every reader: no read is answered with the loss.
        for _ in range(6):
            assert pump.wait(store.get_message("up-0002")) is not None
    finally:
        pump.wait(store.close())


# --- many rows in one statement ------------------------------------------------------------


def _traced_sqlite(
    monkeypatch: pytest.MonkeyPatch, limit: int, *setup: str
) -> tuple[sqlite3.Connection, Transaction, list[str]]:
    """An in-memory SQLite transaction whose statements after ``setup`` are recorded, with
    the parameter limit per statement set to ``limit``."""
    monkeypatch.setattr(database_module, "sqlite_variable_limit", lambda: limit)
    conn = sqlite3.connect(":memory:", isolation_level=None)
    for sql in setup:
        conn.execute(sql)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    return conn, Transaction(conn.cursor(), "sqlite"), statements


def _insert_values_txn(txn: Transaction, first: int, last: int) -> tuple[int, list[Any]]:
    txn.execute("CREATE TABLE IF NOT EXISTS spread (n INTEGER PRIMARY KEY, at TEXT, note TEXT)")
    at = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    rows = [(n, at, None) for n in range(first, last + 1)]
    inserted = txn.insert_values(
        "INSERT INTO spread (n, at, note)", "(?, ?, ?)", rows, "ON CONFLICT (n) DO NOTHING"
    )
    txn.execute("SELECT n, at, note FROM spread ORDER BY n")
    return inserted, txn.fetchall()


def test_many_rows_go_in_with_one_statement_and_count_only_the_new_ones(
    sql_url: str, pump: ThreadPump
) -> None:
    database = open_database(sql_url, pump)
    try:
        inserted, rows = pump.wait(database.run_interaction("spread", _insert_values_txn, 1, 5))
        assert inserted == 5
        # three already there: only the new ones are counted, the old ones are kept as they are
        inserted, rows = pump.wait(database.run_interaction("spread", _insert_values_txn, 3, 9))
        assert inserted == 4
        assert [int(n) for n, _, _ in rows] == list(range(1, 10))
        assert {decode_timestamp(at) for _, at, _ in rows} == {
            datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
        }
        assert {note for _, _, note in rows} == {None}
    finally:
        pump.wait(database.close())


def test_rows_beyond_sqlites_parameter_limit_go_in_several_statements(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conn, txn, statements = _traced_sqlite(
        monkeypatch,
        7,  # two rows of three a statement
        "CREATE TABLE spread (n INTEGER PRIMARY KEY, a TEXT, b TEXT)",
        "INSERT INTO spread (n) VALUES (4)",
    )
    rows = [(n, f"a{n}", f"b{n}") for n in range(1, 8)]
    head, group = "INSERT INTO spread (n, a, b)", "(?, ?, ?)"
    assert txn.insert_values(head, group, rows, "ON CONFLICT DO NOTHING") == 6  # 4 was there
    assert len([s for s in statements if s.startswith("INSERT INTO spread")]) == 4
    got = conn.execute("SELECT n, a, b FROM spread ORDER BY n").fetchall()
    assert got == [(n, None, None) if n == 4 else (n, f"a{n}", f"b{n}") for n in range(1, 8)]
    assert txn.insert_values(head, group, []) == 0
    conn.close()


def _update_values_txn(
    txn: Transaction, rows: list[tuple[object, ...]]
) -> tuple[int, list[tuple[Any, ...]]]:
    stamp = "TIMESTAMPTZ" if txn.engine == "postgres" else "TEXT"
    txn.execute(
        "CREATE TABLE IF NOT EXISTS moved (k TEXT, n INTEGER, v INTEGER,"
        f" at {stamp}, PRIMARY KEY (k, n))"
    )
    txn.execute("DELETE FROM moved")
    for k, n in [("a", 1), ("a", 2), ("b", 1), ("c", 1)]:
        txn.execute("INSERT INTO moved (k, n, v) VALUES (?, ?, 0)", (k, n))
    changed = txn.update_values(
        "UPDATE moved SET v = v + ?, at = COALESCE(?, at) WHERE k = ? AND n = ? AND v = ?",
        rows,
        slice(2, 4),
    )
    txn.execute("SELECT k, n, v, at FROM moved ORDER BY k, n")
    return changed, txn.fetchall()


def test_many_rows_change_with_one_statement_and_count_what_changed(
    sql_url: str, pump: ThreadPump
) -> None:
    at = datetime(2026, 6, 2, 8, 30, tzinfo=UTC)
    database = open_database(sql_url, pump)
    try:
        # ("b", 1) is not at 7: unchanged and not counted; ("z", 9) is not there
        rows: list[tuple[object, ...]] = [
            (5, at, "a", 2, 0),
            (3, None, "a", 1, 0),
            (4, at, "b", 1, 7),
            (6, at, "z", 9, 0),
        ]
        changed, got = pump.wait(database.run_interaction("move", _update_values_txn, rows))
        assert changed == 2
        assert [(k, int(n), int(v)) for k, n, v, _ in got] == [
            ("a", 1, 3),
            ("a", 2, 5),
            ("b", 1, 0),
            ("c", 1, 0),
        ]
        assert [None if a is None else decode_timestamp(a) for *_, a in got] == [
            None,
            at,
            None,
            None,
        ]
        # the same row twice: one after the other, as executemany does
        twice: list[tuple[object, ...]] = [(2, None, "c", 1, 0), (3, None, "c", 1, 2)]
        changed, got = pump.wait(database.run_interaction("move", _update_values_txn, twice))
        assert changed == 2
        assert [int(v) for k, _, v, _ in got if k == "c"] == [5]
    finally:
        pump.wait(database.close())


def test_rows_beyond_sqlites_parameter_limit_change_in_several_statements(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conn, txn, statements = _traced_sqlite(
        monkeypatch,
        5,  # two rows of two a statement
        "CREATE TABLE moved (n INTEGER PRIMARY KEY, v INTEGER)",
        "INSERT INTO moved (n, v) VALUES (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0)",
    )
    rows = [(n * 10, n) for n in range(1, 6)]
    assert txn.update_values("UPDATE moved SET v = ? WHERE n = ?", rows, slice(1, 2)) == 5
    assert len([s for s in statements if s.startswith("UPDATE moved")]) == 3
    assert conn.execute("SELECT n, v FROM moved ORDER BY n").fetchall() == [
        (1, 10),
        (2, 20),
        (3, 30),
        (4, 40),
        (5, 50),
        (6, 0),
    ]
    conn.close()


@pytest.mark.parametrize("count", [1, 5, 1023, 1024, 1025, 3000, 9000])
def test_rows_go_in_chunks_of_few_sizes(count: int) -> None:
    assert database_module._MOST_ROWS == 1024
    rows = [(n,) for n in range(count)]
    chunks = list(database_module._chunks(rows, 1))
    assert [row for chunk in chunks for row in chunk] == rows
    sizes = [len(chunk) for chunk in chunks]
    assert set(sizes) <= {1 << b for b in range(11)}  # 1, 2, 4, ..., 1024
    assert sizes == sorted(sizes, reverse=True)
    assert len(sizes) <= count // 1024 + 10


def test_the_sqlite_parameter_limit_is_the_librarys() -> None:
    conn = sqlite3.connect(":memory:")
    try:
        expected = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    finally:
        conn.close()
    assert database_module.sqlite_variable_limit() == expected >= 999


# --- values ------------------------------------------------------------------------------------


def test_placeholders_are_translated_for_psycopg() -> None:
    assert _to_pyformat("a = ? AND b LIKE 'x%'") == "a = %s AND b LIKE 'x%%'"


def test_timestamps_round_trip_as_utc() -> None:
    local = datetime(2026, 3, 29, 3, 30, 0, 5, tzinfo=timezone(timedelta(hours=2)))
    text = encode_timestamp(local)
    assert text == "2026-03-29T01:30:00.000005+00:00"
    assert decode_timestamp(text) == local
    assert decode_timestamp(text).tzinfo is UTC
    assert decode_timestamp(local).tzinfo is UTC
    with pytest.raises(ValueError, match="timezone-aware"):
        encode_timestamp(datetime(2026, 1, 1))
    with pytest.raises(TypeError):
        decode_timestamp(12)


def test_a_deferred_of_a_closed_database_fails_at_once(tmp_path: Path, pump: ThreadPump) -> None:
    database = Database.sqlite(str(tmp_path / "gw.db"), pump)
    pump.wait(database.close())
    d: Deferred[list[int]] = database.run_read("read", _scratch_txn)
    assert isinstance(pump.wait_error(d), StoreUnavailableError)


def test_the_test_only_no_fsync_setting_is_refused_outside_the_fault_injection(
    tmp_path: Path, pump: ThreadPump, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(UNSAFE_NO_FSYNC_ENV, "1")
    with pytest.raises(StoreError, match="test-only setting turns off SQLite's fsync"):
        Database.sqlite(str(tmp_path / "gw.db"), pump)
    monkeypatch.setenv(UNSAFE_NO_FSYNC_ENV, "0")  # off: the durable default
    database = Database.sqlite(str(tmp_path / "gw.db"), pump)
    try:
        assert pump.wait(database.run_interaction("pragma", _pragma_txn, "synchronous")) == 2
    finally:
        pump.wait(database.close())
