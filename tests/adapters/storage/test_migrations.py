"""Schema versions: applied forward once, a newer database refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.storage import LATEST_VERSION, SqlMessageStore, Transaction, open_database, open_store
from adapters.storage.migrations import (
    Migration,
    _migrate_txn,
    current_version_txn,
    load_migrations,
    migrate,
)
from gateway.ports.messages import SchemaVersionError
from tests.threadpump import ThreadPump

ALL_VERSIONS = [m.version for m in load_migrations("sqlite")]


def _versions_txn(txn: Transaction) -> list[int]:
    txn.execute("SELECT version FROM schema_version ORDER BY version")
    return [int(row[0]) for row in txn.fetchall()]


def _stamp_txn(txn: Transaction, version: int) -> None:
    txn.execute(
        "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
        (version, datetime(2030, 1, 1, tzinfo=UTC)),
    )


def test_every_engine_has_every_version() -> None:
    sqlite, postgres = load_migrations("sqlite"), load_migrations("postgres")
    assert [m.version for m in sqlite] == [m.version for m in postgres]
    assert ALL_VERSIONS[0] == 1
    assert ALL_VERSIONS[-1] == LATEST_VERSION
    assert sorted(set(ALL_VERSIONS)) == ALL_VERSIONS
    assert all(m.statements for m in (*sqlite, *postgres))
    with pytest.raises(ValueError, match="unknown engine"):
        load_migrations("oracle")


def test_a_fresh_database_gets_the_current_version(sql_url: str, pump: ThreadPump) -> None:
    database = open_database(sql_url, pump)
    try:
        assert pump.wait(migrate(database)) == ALL_VERSIONS
        assert pump.wait(database.run_read("version", current_version_txn)) == LATEST_VERSION
    finally:
        pump.wait(database.close())


def test_reopening_applies_nothing_twice(sql_url: str, pump: ThreadPump) -> None:
    store = pump.wait(open_store(sql_url, pump))
    pump.wait(store.close())
    store = pump.wait(open_store(sql_url, pump))
    try:
        assert pump.wait(migrate(store.database)) == []
        versions = pump.wait(store.database.run_read("versions", _versions_txn))
        assert versions == ALL_VERSIONS
    finally:
        pump.wait(store.close())


def test_a_database_of_a_newer_gateway_is_refused(sql_url: str, pump: ThreadPump) -> None:
    store = pump.wait(open_store(sql_url, pump))
    newer = LATEST_VERSION + 1
    pump.wait(store.database.run_interaction("stamp", _stamp_txn, newer))
    pump.wait(store.close())
    error = pump.wait_error(open_store(sql_url, pump))
    assert isinstance(error, SchemaVersionError)
    assert f"schema version {newer}" in str(error)
    assert f"version {LATEST_VERSION} of this gateway" in str(error)
    # nothing was changed: the stamp is still there for the newer gateway
    database = open_database(sql_url, pump)
    try:
        versions = pump.wait(database.run_read("versions", _versions_txn))
        assert versions == [*ALL_VERSIONS, newer]
    finally:
        pump.wait(database.close())


def test_a_store_opens_on_a_migrated_database(sql_url: str, pump: ThreadPump) -> None:
    store = pump.wait(open_store(sql_url, pump))
    try:
        assert isinstance(store, SqlMessageStore)
        assert pump.wait(store.ping()) is None
    finally:
        pump.wait(store.close())


@pytest.mark.parametrize(
    "url", ["mysql://localhost/db", "sqlite:///", "no-scheme-at-all", "sqlite://relative.db"]
)
def test_unsupported_store_urls_are_refused(url: str, pump: ThreadPump) -> None:
    with pytest.raises(ValueError, match="store URL"):
        open_database(url, pump)


def test_a_version_that_lands_below_one_already_applied_is_applied_too(
    sql_url: str, pump: ThreadPump
) -> None:
    """Work merged in another order: version L+2 applied first, L+1 arrives later."""
    database = open_database(sql_url, pump)
    known = load_migrations(database.engine)
    later = Migration(LATEST_VERSION + 2, "later", ("CREATE TABLE t_later (x INTEGER)",))
    gap = Migration(LATEST_VERSION + 1, "gap", ("CREATE TABLE t_gap (x INTEGER)",))
    now = datetime(2030, 1, 1, tzinfo=UTC)
    try:
        pump.wait(migrate(database))
        first = pump.wait(database.run_interaction("m", _migrate_txn, (*known, later), now))
        assert first == [LATEST_VERSION + 2]
        second = pump.wait(database.run_interaction("m", _migrate_txn, (*known, gap, later), now))
        assert second == [LATEST_VERSION + 1]
        versions = pump.wait(database.run_read("versions", _versions_txn))
        assert versions == [*ALL_VERSIONS, LATEST_VERSION + 1, LATEST_VERSION + 2]
    finally:
        pump.wait(database.close())


def _index_definition_txn(txn: Transaction, name: str) -> str:
    if txn.engine == "postgres":
        txn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = ?", (name,))
    else:
        txn.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (name,))
    row = txn.fetchone()
    assert row is not None, name
    return str(row[0])


def _plan_txn(txn: Transaction, sql: str) -> str:
    txn.execute(f"EXPLAIN QUERY PLAN {sql}", ("x",) * sql.count("?"))
    return " ".join(str(row[-1]) for row in txn.fetchall())


_LINES = "SELECT traceer_id FROM declaration_lines WHERE "
_KEY_USAGE = "SELECT key_id, COUNT(*) FROM {} WHERE key_id IS NOT NULL GROUP BY key_id"


@pytest.mark.parametrize(
    ("index", "predicate", "queries"),
    [
        (
            "declaration_lines_pregnancy",
            "pregnancy IS NOT NULL",
            [_LINES + "pregnancy = ?", _LINES + "pregnancy IN (?, ?)"],
        ),
        (
            "declaration_lines_claim",
            "claim_reference IS NOT NULL",
            [_LINES + "claim_reference = ?", _LINES + "claim_reference IN (?, ?)"],
        ),
        ("declaration_lines_open", "state = 'open'", [_LINES + "state = 'open'"]),
        (
            "declaration_lines_by_key",
            "key_id IS NOT NULL",
            [_LINES + "key_id = ?", _KEY_USAGE.format("declaration_lines")],
        ),
        (
            "journal_by_key",
            "key_id IS NOT NULL",
            ["SELECT sha256 FROM journal WHERE key_id = ?", _KEY_USAGE.format("journal")],
        ),
    ],
)
def test_indexes_are_partial_where_no_query_reads_the_entries_left_out(
    sql_url: str, pump: ThreadPump, index: str, predicate: str, queries: list[str]
) -> None:
    store = pump.wait(open_store(sql_url, pump))
    try:
        read = store.database.run_read
        definition = pump.wait(read("index", _index_definition_txn, index))
        # (PostgreSQL writes the predicate with parentheses and casts)
        written = definition.replace("(", "").replace(")", "").replace("::text", "")
        assert written.endswith(f"WHERE {predicate}"), definition
        if store.database.engine == "sqlite":
            # Queries shaped as the store's still find the index.
            for sql in queries:
                assert f"INDEX {index}" in pump.wait(read("plan", _plan_txn, sql)), sql
    finally:
        pump.wait(store.close())
