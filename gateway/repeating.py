"""A job that repeats on a clock: every scheduled job of the gateway runs as one
:class:`Repeating` (bundling, pruning, notices, the batch runner, the operations watch,
the certificate check, the insurer links' rounds through :class:`~gateway.schedule.PerInsurer`).

A failed run is logged — an unavailable store in one line, any other fault with its
traceback — and counted on the ``failures`` counter when one is given; the next run comes
anyway. :meth:`Repeating.stop` cancels the timer, and :attr:`Repeating.finished` fires once
a run in progress has ended too, so that a shutdown waits for it before it closes the store.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway.ports.messages import StoreUnavailableError

__all__ = ["Repeating"]

log = Logger()


class Repeating:
    """``work`` (a plain or an async callable) now and then every ``interval`` seconds on
    ``clock``, once :meth:`start` is called. ``name`` says what the job does in the log
    ("a bundling run", "pruning expired files"); ``failures`` is incremented at every
    failed run."""

    def __init__(
        self,
        name: str,
        work: Callable[[], object],
        interval: float,
        clock: IReactorTime,
        *,
        failures: Counter | None = None,
    ) -> None:
        self.name = name
        self.interval = interval
        self._work = work
        self._failures = failures
        self._loop = LoopingCall(self._run)
        self._loop.clock = clock
        self._finished: Deferred[Any] | None = None

    def start(self, now: bool = True) -> None:
        """Run the job every ``interval`` seconds from now on (the first time at once
        unless ``now`` is False)."""
        if self._loop.running:
            return
        finished = self._loop.start(self.interval, now=now)
        finished.addErrback(self._stopped)
        self._finished = finished

    def stop(self) -> None:
        """No further runs (a run in progress ends on its own: :attr:`finished`).
        Idempotent; a job may stop itself from its own run."""
        if self._loop.running:
            self._loop.stop()

    @property
    def running(self) -> bool:
        return bool(self._loop.running)

    @property
    def finished(self) -> Deferred[Any]:
        """Fires once the job is stopped and no run of it is in progress (at once for a
        job never started)."""
        if self._finished is None:
            return succeed(None)
        return self._finished

    def _run(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._guarded())

    async def _guarded(self) -> None:
        try:
            result = self._work()
            if inspect.isawaitable(result):
                await result
        except StoreUnavailableError as exc:  # an outage, not a fault: one line
            log.warn(
                "{name} failed, the store is unavailable ({error})",
                name=self.name,
                error=str(exc),
            )
            self._failed()
        except Exception:  # a fault: its traceback, and the next run comes anyway
            log.failure("{name} failed", name=self.name)
            self._failed()

    def _failed(self) -> None:
        if self._failures is not None:
            self._failures.inc()

    def _stopped(self, failure: Failure) -> None:
        # Only what escapes the guard (a BaseException such as a cancellation) gets here.
        log.failure("{name} stopped", failure, name=self.name)
