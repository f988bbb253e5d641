"""Uploads recorded together: a group-committed batch of uploads is looked up and written
with a few statements for the whole batch, and stores exactly what the same uploads one by
one store; an upload that cannot go with the others is recorded alone, with the same
outcome, and fails only its own caller."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from twisted.internet.defer import Deferred

from adapters.storage import SqlMessageStore, Transaction, open_database
from adapters.storage import database as database_module
from adapters.storage import messages as messages_module
from adapters.storage.migrations import migrate
from gateway.lines import DeclaredLine
from gateway.ports.messages import NewMessage, StoreError, UploadResult
from tests.adapters.storage.builders import retour, upload
from tests.adapters.storage.test_lines import line
from tests.threadpump import WAIT_SECONDS, ThreadPump

# --- counting the writer's statements -----------------------------------------------------------


class _CountingCursor:
    def __init__(self, cursor: Any, log: list[str]) -> None:
        self._cursor = cursor
        self._log = log

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)

    def execute(self, query: str, params: Sequence[Any] = (), /) -> object:
        self._log.append(query)
        return self._cursor.execute(query, params)

    def executemany(self, query: str, params_seq: Any, /) -> object:
        self._log.append(query)
        return self._cursor.executemany(query, params_seq)

    def copy(self, statement: str) -> Any:  # PostgreSQL's COPY: one statement too
        self._log.append(statement)
        return self._cursor.copy(statement)

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return list(self._cursor.fetchall())

    def close(self) -> None:
        self._cursor.close()


class _CountingConnection:
    def __init__(self, conn: Any, log: list[str]) -> None:
        self._conn = conn
        self._log = log

    def cursor(self) -> _CountingCursor:
        return _CountingCursor(self._conn.cursor(), self._log)

    def close(self) -> None:
        self._conn.close()

    @property
    def broken(self) -> bool:
        return bool(getattr(self._conn, "broken", False))


class Statements:
    """Every statement (``execute``, ``executemany`` or ``COPY``: one round trip each on
    PostgreSQL, where psycopg pipelines an ``executemany``) the writer thread sends."""

    def __init__(self) -> None:
        self.log: list[str] = []

    def install(self, store: SqlMessageStore) -> None:
        engine = store.database._engine
        connect = engine.connect
        log = self.log

        def counted() -> Any:
            if threading.current_thread().name != "store-write":
                return connect()
            return _CountingConnection(connect(), log)

        engine.connect = counted  # type: ignore[method-assign]
        store.database._writer_conn = None  # the next batch connects through the wrapper

    @contextmanager
    def counting(self) -> Iterator[list[str]]:
        start = len(self.log)
        seen: list[str] = []
        yield seen
        seen.extend(self.log[start:])


def _open(url: str, pump: ThreadPump) -> SqlMessageStore:
    database = open_database(url, pump)
    pump.wait(migrate(database))
    return SqlMessageStore(database)


def _gate_txn(txn: Transaction, entered: threading.Event, release: threading.Event) -> None:
    entered.set()
    assert release.wait(WAIT_SECONDS)


@contextmanager
def one_batch(store: SqlMessageStore, pump: ThreadPump) -> Iterator[None]:
    """Writes queued inside the block wait behind a held writer: they are one batch."""
    entered, release = threading.Event(), threading.Event()
    gate = store.database.run_interaction("gate", _gate_txn, entered, release)
    assert entered.wait(WAIT_SECONDS)
    try:
        yield
    finally:
        release.set()
        pump.wait(gate)


def _outcomes(pump: ThreadPump, calls: Sequence[Deferred[UploadResult]]) -> list[Any]:
    found: list[Any] = []
    for call in calls:
        try:
            found.append(pump.wait(call))
        except Exception as exc:
            found.append(exc)
    return found


def _tables_txn(txn: Transaction) -> dict[str, list[tuple[Any, ...]]]:
    queries = {
        "messages": "SELECT * FROM messages ORDER BY traceer_id",
        "message_statuses": "SELECT traceer_id, at, status, code, description"
        " FROM message_statuses ORDER BY traceer_id, at",
        "journal": "SELECT sha256, size, payload, key_id, created_at, pruned_at FROM journal"
        " ORDER BY sha256",
        "declaration_lines": "SELECT * FROM declaration_lines ORDER BY traceer_id, record_number",
        "bsn_women": "SELECT bsn_index, woman FROM bsn_women ORDER BY bsn_index, woman",
    }
    tables: dict[str, list[tuple[Any, ...]]] = {}
    for table, sql in queries.items():
        txn.execute(sql)
        tables[table] = [
            tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
            for row in txn.fetchall()
        ]
    return tables


def _without_seq(store: SqlMessageStore, pump: ThreadPump) -> dict[str, list[tuple[Any, ...]]]:
    """Every row the uploads wrote; ``messages`` without ``seq`` (the insertion counter)."""
    tables = pump.wait(store.database.run_read("tables", _tables_txn))
    columns = pump.wait(store.database.run_read("columns", _message_columns_txn))
    seq = columns.index("seq")
    tables["messages"] = [row[:seq] + row[seq + 1 :] for row in tables["messages"]]
    return tables


def _message_columns_txn(txn: Transaction) -> list[str]:
    if txn.engine == "postgres":
        txn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'messages'"
            " AND table_schema = current_schema() ORDER BY ordinal_position"
        )
        return [str(row[0]) for row in txn.fetchall()]
    txn.execute("PRAGMA table_info(messages)")
    return [str(row[1]) for row in txn.fetchall()]


def _declaration(n: int, lines: int = 3, **changes: Any) -> tuple[NewMessage, list[DeclaredLine]]:
    new = upload(n, invoice=f"F-{n}", **changes)
    return new, [line(k, traceer_id=new.traceer_id) for k in range(lines)]


# --- the same rows ------------------------------------------------------------------------------


def test_a_batch_of_uploads_stores_what_the_uploads_one_by_one_store(
    sql_url: str, pump: ThreadPump
) -> None:
    uploads = [_declaration(n) for n in range(12)]
    uploads.append((upload(90), []))  # no invoice, no lines
    uploads.append((upload(91, payload=b"declaration 0 of 33001234\r\n"), []))  # same bytes
    together = _open(sql_url, pump)
    try:
        with one_batch(together, pump):
            calls = [together.record_upload(new, [], lines) for new, lines in uploads]
        results = _outcomes(pump, calls)
        assert all(isinstance(r, UploadResult) for r in results)
        assert all(r.created for r in results)
        batched = _without_seq(together, pump)
        for (new, _), result in zip(uploads, results, strict=True):
            assert result.message == pump.wait(together.get_message(new.traceer_id))
        # the same uploads again, one by one, into an empty store
        pump.wait(together.database.run_interaction("empty", _empty_txn))
        for new, lines in uploads:
            assert pump.wait(together.record_upload(new, [], lines)).created
        alone = _without_seq(together, pump)
    finally:
        pump.wait(together.close())
    assert batched == alone
    assert len(batched["declaration_lines"]) == 36
    assert batched["bsn_women"]
    assert len(batched["journal"]) == 13


def _empty_txn(txn: Transaction) -> None:
    for table in ("bsn_women", "declaration_lines", "message_statuses", "messages", "journal"):
        txn.execute(f"DELETE FROM {table}")


# --- round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 5, 40])
def test_a_batch_of_uploads_costs_a_few_statements_whatever_its_size(
    sql_url: str, pump: ThreadPump, size: int
) -> None:
    store = _open(sql_url, pump)
    statements = Statements()
    statements.install(store)
    try:
        uploads = [_declaration(n, lines=4) for n in range(size)]
        with statements.counting() as seen:
            with one_batch(store, pump):
                calls = [store.record_upload(new, [], lines) for new, lines in uploads]
            assert all(r.created for r in _outcomes(pump, calls))
        # the gate's batch: BEGIN, its savepoint and release, COMMIT
        assert seen[:4] == [
            store.database._engine.begin_write,
            "SAVEPOINT interaction",
            "RELEASE SAVEPOINT interaction",
            "COMMIT",
        ]
        batch = seen[4:]

        # BEGIN, SAVEPOINT, one look-up, journal, messages, statuses, lines, the women's
        # BSN index pairs, one read-back, RELEASE, COMMIT: for the whole batch. On SQLite
        # the rows of a table go in with one INSERT per chunk, of a few sizes
        # (database._chunks): 5 rows as 4 and 1.
        def inserts(rows: int) -> int:
            if store.database.engine == "postgres":
                return 1
            return len(list(database_module._chunks([(n,) for n in range(rows)], 1)))

        women = {(line.bsn, line.birth_date) for _, lines in uploads for line in lines}
        expected = 6 + 3 * inserts(size) + inserts(4 * size) + inserts(len(women))
        assert len(batch) == expected, batch
        assert sum("declaration_lines" in s for s in batch) == inserts(4 * size)
        assert sum(s.startswith("SELECT") for s in batch) == 2
    finally:
        pump.wait(store.close())


def test_an_upload_recorded_alone_costs_more_statements(sql_url: str, pump: ThreadPump) -> None:
    """The yardstick of the test above: the path each upload of a batch took before."""
    store = _open(sql_url, pump)
    statements = Statements()
    statements.install(store)
    try:
        new, lines = _declaration(1, lines=4)
        with statements.counting() as seen:
            pump.wait(
                store.database.run_interaction(
                    "record_upload",
                    messages_module.record_upload_txn,
                    new,
                    (),
                    store.codec,
                    tuple(lines),
                    None,
                )
            )
        assert len(seen) >= 12, seen
    finally:
        pump.wait(store.close())


# --- what goes alone, and failures ----------------------------------------------------------------


def test_uploads_that_cannot_go_together_are_recorded_alone_with_the_same_outcome(
    sql_url: str, pump: ThreadPump
) -> None:
    store = _open(sql_url, pump)
    try:
        known = upload(1, invoice="F-1")
        pump.wait(store.record_upload(known))
        pump.wait(store.put_message(retour(999, traceer_id="taken")))
        first = upload(10, invoice="F-10")
        broken = dataclasses.replace(upload(11), sha256="0" * 64)
        clash = upload(12)
        with one_batch(store, pump):
            calls = [
                store.record_upload(known),  # a retry: the stored message
                store.record_upload(upload(2, invoice="F-1")),  # the payee's invoice is taken
                store.record_upload(dataclasses.replace(upload(3), traceer_id="taken")),
                store.record_upload(first),
                store.record_upload(upload(13, invoice="F-10")),  # F-10 of this batch
                store.record_upload(first),  # the same upload twice in one batch
                store.record_upload(broken),  # fails the checks: its caller only
                store.record_upload(clash, [retour(12, to=clash, traceer_id="taken")]),
                store.record_upload(upload(14), [retour(14, to=upload(14))]),
            ]
        (retry, invoice, traceer, created, invoice_in_batch, twice, bad, collides, replied) = (
            _outcomes(pump, calls)
        )
        assert retry.created is False
        assert retry.message.traceer_id == known.traceer_id
        assert invoice.message is None
        assert invoice.invoice_conflict == known.traceer_id
        assert traceer.created is False
        assert traceer.message.traceer_id == "taken"
        assert created.created is True
        assert created.message.traceer_id == first.traceer_id
        assert invoice_in_batch.invoice_conflict == first.traceer_id
        assert twice.created is False
        assert twice.message == created.message
        assert isinstance(bad, ValueError)
        assert isinstance(collides, StoreError)
        assert replied.created is True
        assert pump.wait(store.get_message(clash.traceer_id)) is None
        assert pump.wait(store.get_message(broken.traceer_id)) is None
        assert pump.wait(store.get_message("ret-0014")) is not None
    finally:
        pump.wait(store.close())


def test_a_batch_that_lost_a_race_records_each_upload_alone(
    sql_url: str, pump: ThreadPump, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process stored one of the uploads between the batch's look-up and its
    insert: the batch is rolled back and each upload recorded alone."""
    store = _open(sql_url, pump)
    try:
        raced = upload(1, invoice="F-1")
        pump.wait(store.record_upload(raced))
        empty: tuple[dict[str, Any], dict[str, Any], dict[Any, str]] = ({}, {}, {})
        monkeypatch.setattr(messages_module, "_known_txn", lambda txn, uploads: empty)
        others = [_declaration(n) for n in range(2, 6)]
        with one_batch(store, pump):
            calls = [store.record_upload(raced)]
            calls += [store.record_upload(new, [], lines) for new, lines in others]
        first, *rest = _outcomes(pump, calls)
        assert first.created is False
        assert first.message.traceer_id == raced.traceer_id
        assert all(r.created for r in rest)
        for new, lines in others:
            assert len(pump.wait(store.declared_lines(new.traceer_id))) == len(lines)
    finally:
        pump.wait(store.close())
