"""Fixtures of the storage tests, and how they run Twisted code without a reactor.

The SQL stores work on their own threads and hand every result back through
``reactor.callFromThread``. The tests give them a :class:`ThreadPump` instead of a
reactor: ``callFromThread`` only queues the call, and :meth:`ThreadPump.wait`, on the
test's own thread, runs the queued calls until the awaited Deferred has fired. The test
thread so plays the reactor thread — every Deferred callback runs there, as in production —
and every wait has a deadline, so a test fails instead of hanging. The memory store answers
with Deferreds that have already fired; ``wait`` returns them at once.

Each PostgreSQL test gets a schema of its own (the suite-wide ``pg_url`` fixture).
"""

from __future__ import annotations

import queue
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFromThreads
from twisted.python.failure import Failure
from zope.interface import implementer

from adapters.storage import MemoryMessageStore, SqlMessageStore, Transaction, open_store
from gateway.store import MessageStore

T = TypeVar("T")

WAIT_SECONDS = 20.0


@implementer(IReactorFromThreads)
class ThreadPump:
    """Stands in for the reactor: calls from other threads run when the test waits."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()

    def callFromThread(self, callable: Callable[..., Any], *args: object, **kwargs: object) -> None:
        self._calls.put(lambda: callable(*args, **kwargs))

    def wait(self, awaitable: Awaitable[T], timeout: float = WAIT_SECONDS) -> T:
        """Run queued calls until ``awaitable`` has a result; return it or raise its error."""
        d = (
            awaitable
            if isinstance(awaitable, Deferred)
            else Deferred.fromCoroutine(_await(awaitable))
        )
        outcome: list[Any] = []
        d.addBoth(outcome.append)
        deadline = time.monotonic() + timeout
        while not outcome:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no result within {timeout} s")
            try:
                call = self._calls.get(timeout=remaining)
            except queue.Empty:
                continue
            call()
        result = outcome[0]
        if isinstance(result, Failure):
            result.raiseException()
        return result  # type: ignore[no-any-return]

    def wait_error(
        self, awaitable: Awaitable[object], timeout: float = WAIT_SECONDS
    ) -> BaseException:
        """The error ``awaitable`` fails with (fails the test if it succeeds)."""
        try:
            self.wait(awaitable, timeout)
        except Exception as exc:
            return exc
        pytest.fail("expected an error, got a result")


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


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
