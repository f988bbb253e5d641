"""Store work without a running reactor: open the store, run one thing to its end, close it
(command lines, tests).

The SQL store works on its own threads and hands results back through
``reactor.callFromThread``; :class:`Blocking` stands in for the reactor: it queues those
calls and runs them on the calling thread while :meth:`Blocking.wait` waits for a result.
The calling thread so plays the reactor thread — every Deferred callback runs there, as in
production — and every wait has a deadline. It keeps time too (``seconds`` and
``callLater``: the wall clock when it was made, advanced by the monotonic clock), so that
a job lease can be renewed and a waiting run can poll while :meth:`Blocking.wait` runs.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorFromThreads, IReactorTime
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = ["WAIT_SECONDS", "Blocking", "wait_stepping"]

T = TypeVar("T")
WAIT_SECONDS = 120.0


@implementer(IReactorFromThreads, IReactorTime)
class Blocking:
    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        self._clock = Clock()
        self._clock.advance(time.time())  # the wall clock at start, then monotonic
        self._last = time.monotonic()

    def callLater(
        self, delay: float, callable: Callable[..., Any], *args: object, **kwargs: object
    ) -> IDelayedCall:
        self._tick()
        return self._clock.callLater(delay, callable, *args, **kwargs)

    def seconds(self) -> float:
        self._tick()
        return self._clock.seconds()

    def getDelayedCalls(self) -> list[IDelayedCall]:
        return list(self._clock.getDelayedCalls())

    def _tick(self) -> float:
        """Run the timed calls now due; seconds until the next one (or a long time)."""
        now = time.monotonic()
        self._clock.advance(now - self._last)
        self._last = now
        due = [c.getTime() for c in self._clock.getDelayedCalls()]
        return max(0.0, min(due) - self._clock.seconds()) if due else 3600.0

    def callFromThread(self, callable: Callable[..., Any], *args: object, **kwargs: object) -> None:
        self._calls.put(lambda: callable(*args, **kwargs))

    def wait(self, awaitable: Awaitable[T], timeout: float = WAIT_SECONDS) -> T:
        """Run queued calls until ``awaitable`` has a result; return it or raise its error."""
        return wait_stepping(
            awaitable, self._step, timeout, f"the store did not answer within {timeout} s"
        )

    def _step(self, remaining: float) -> None:
        """Run the next queued call, waiting for one up to ``remaining`` seconds."""
        try:
            call = self._calls.get(timeout=min(remaining, self._tick()))
        except queue.Empty:
            self._tick()
            return
        call()


def wait_stepping(
    awaitable: Awaitable[T], step: Callable[[float], object], timeout: float, late: str
) -> T:
    """Call ``step`` (with the seconds left) until ``awaitable`` has a result; return it
    or raise its error (:class:`TimeoutError` with ``late`` after ``timeout`` seconds)."""
    d = awaitable if isinstance(awaitable, Deferred) else Deferred.fromCoroutine(_await(awaitable))
    outcome: list[Any] = []
    d.addBoth(outcome.append)
    deadline = time.monotonic() + timeout
    while not outcome:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(late)
        step(remaining)
    result = outcome[0]
    if isinstance(result, Failure):
        result.raiseException()
    return result  # type: ignore[no-any-return]


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable
