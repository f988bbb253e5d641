"""Run Twisted code that works on threads without a running reactor.

The SQL stores work on their own threads and hand every result back through
``reactor.callFromThread``. Tests give them a :class:`ThreadPump` instead of a reactor:
``callFromThread`` only queues the call, and :meth:`ThreadPump.wait`, on the test's own
thread, runs the queued calls until the awaited Deferred has fired. The test thread so plays
the reactor thread — every Deferred callback runs there, as in production — and every wait
has a deadline, so a test fails instead of hanging. Deferreds that have already fired are
returned at once.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFromThreads
from twisted.python.failure import Failure
from zope.interface import implementer

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
