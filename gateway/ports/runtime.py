"""What the services need of the runtime: a thread to run blocking work in, and a clock.

:class:`RunInThread` runs a blocking callable off the reactor thread (in production
``twisted.internet.threads.deferToThread``, or a pool's ``deferToThreadPool``) and gives
its result as an awaitable. :func:`run_inline` is the stand-in that runs it at once, on
the calling thread: the default where a service's blocking work is short, and what unit
tests pass.

:class:`Clock` is the part of Twisted's ``IReactorTime`` that code reading the time and
scheduling calls needs; the reactor and ``twisted.internet.task.Clock`` (the tests' clock)
both match it. Code that hands its clock on to Twisted's own timers (``LoopingCall``,
``deferLater``: :mod:`gateway.jobs`, :mod:`gateway.schedule`) takes an ``IReactorTime``,
the zope interface those are typed on, which the same two objects provide.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from twisted.internet.interfaces import IDelayedCall

__all__ = ["Clock", "RunInThread", "run_inline"]

T = TypeVar("T")


class RunInThread(Protocol):
    """Runs ``fn`` off the reactor thread; its result (or error) comes as an awaitable."""

    def __call__(self, fn: Callable[[], T], /) -> Awaitable[T]: ...


async def run_inline(fn: Callable[[], T]) -> T:
    """A :class:`RunInThread` that runs ``fn`` at once, on the calling thread."""
    return fn()


class Clock(Protocol):
    """Seconds since the epoch, and calls scheduled after a delay."""

    def seconds(self) -> float: ...

    def callLater(
        self, delay: float, callable: Callable[..., object], *args: object, **kw: object
    ) -> IDelayedCall: ...
