"""Fixtures of the storage tests, and how they run Twisted code without a reactor.

The SQL stores work on their own threads and hand every result back through
``reactor.callFromThread``; the tests give them a :class:`~tests.threadpump.ThreadPump`
instead of a reactor.

Each PostgreSQL test gets a schema of its own (the suite-wide ``pg_url`` fixture).
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterator
from typing import Any, TypeVar

import pytest

from adapters.storage import MemoryMessageStore, SqlMessageStore, Transaction, open_store
from gateway.ports.messages import MessageStore
from tests.threadpump import ThreadPump

T = TypeVar("T")


@pytest.fixture
def pump() -> ThreadPump:
    return ThreadPump()


ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=ENGINES)
def sql_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A URL for each SQL engine: a SQLite file in ``tmp_path``, a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gateway.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


class Backend:
    """One store under test, with what the tests need to look behind the port."""

    def __init__(self, kind: str, pump: ThreadPump, url: str | None) -> None:
        self.kind = kind
        self.pump = pump
        self.url = url
        self.store: MessageStore = self._open()

    def _open(self) -> MessageStore:
        if self.url is None:
            return MemoryMessageStore()
        return self.pump.wait(open_store(self.url, self.pump))

    def wait(self, awaitable: Awaitable[T]) -> T:
        return self.pump.wait(awaitable)

    def error(self, awaitable: Awaitable[object]) -> BaseException:
        return self.pump.wait_error(awaitable)

    def reopen(self) -> None:
        """Close the store and open it again from its database."""
        assert self.url is not None, "the memory store keeps nothing once closed"
        self.close()
        self.store = self._open()

    def count(self, table: str) -> int:
        """Rows in ``messages`` or ``journal``."""
        store = self.store
        if isinstance(store, MemoryMessageStore):
            return {"messages": store.message_count, "journal": store.journal_count}[table]()
        assert isinstance(store, SqlMessageStore)
        assert table in ("messages", "journal")
        return self.wait(store.database.run_read("count", _count_txn, table))

    def close(self) -> None:
        self.wait(self.store.close())


def _count_txn(txn: Transaction, table: str) -> int:
    txn.execute(f"SELECT count(*) FROM {table}")
    row = txn.fetchone()
    assert row is not None
    return int(row[0])


def _backend(request: pytest.FixtureRequest, pump: ThreadPump, tmp_path: Any) -> Iterator[Backend]:
    url: str | None = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'gateway.db'}"
    elif request.param == "postgres":
        url = request.getfixturevalue("pg_url")
    store = Backend(str(request.param), pump, url)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(params=["memory", *ENGINES])
def backend(request: pytest.FixtureRequest, pump: ThreadPump, tmp_path: Any) -> Iterator[Backend]:
    """The same behaviour tests against the memory, SQLite and PostgreSQL stores."""
    yield from _backend(request, pump, tmp_path)


@pytest.fixture(params=ENGINES)
def durable_backend(
    request: pytest.FixtureRequest, pump: ThreadPump, tmp_path: Any
) -> Iterator[Backend]:
    """The stores that keep their data on disk: SQLite and PostgreSQL."""
    yield from _backend(request, pump, tmp_path)
