"""Store work from a command line: open the store, run one thing to its end, close it —
without a running reactor.

The SQL store works on its own threads and hands results back through
``reactor.callFromThread``; :class:`Blocking` stands in for the reactor: it queues those
calls and runs them on the calling thread while :meth:`Blocking.wait` waits for a result.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFromThreads
from twisted.python.failure import Failure
from zope.interface import implementer

from adapters.storage import SqlMessageStore, open_store
from adapters.storage.admin import SqlAdminStore
from gateway.crypto import Keyring

__all__ = ["AdminStores", "Blocking", "opened_stores"]

T = TypeVar("T")
WAIT_SECONDS = 120.0


@implementer(IReactorFromThreads)
class Blocking:
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
                raise TimeoutError(f"the store did not answer within {timeout} s")
            try:
                call = self._calls.get(timeout=remaining)
            except queue.Empty:
                continue
            call()
        result = outcome[0]
        if isinstance(result, Failure):
            result.raiseException()
        return result  # type: ignore[no-any-return]


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


@dataclass(frozen=True, slots=True)
class AdminStores:
    run: Blocking
    store: SqlMessageStore
    admin: SqlAdminStore


@contextmanager
def opened_stores(url: str, keyring: Keyring | None) -> Iterator[AdminStores]:
    """The message and admin stores at ``url`` (migrated), closed again afterwards."""
    run = Blocking()
    store = run.wait(open_store(url, run, keyring))
    try:
        yield AdminStores(run, store, SqlAdminStore(store.database))
    finally:
        run.wait(store.close())
