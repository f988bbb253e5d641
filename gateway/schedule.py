"""Work that repeats per insurer, each on its own timer (a :class:`~gateway.repeating.Repeating`
per insurer), so that one slow or unreachable insurer never holds up another; a failed round
is logged and the next one runs anyway."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

from prometheus_client import Counter
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IReactorTime

from gateway.repeating import Repeating

__all__ = ["PerInsurer"]


class PerInsurer:
    def __init__(
        self,
        what: str,
        work: Callable[[str], Awaitable[object]],
        failures: Counter | None = None,
    ) -> None:
        self._what = what
        self._work = work
        self._failures = failures
        self._jobs: dict[str, Repeating] = {}
        self._done: list[Deferred[Any]] = []

    def start(self, clock: IReactorTime, intervals: Mapping[str, float]) -> None:
        """Run ``work(insurer)`` now and then every ``intervals[insurer]`` seconds."""
        for insurer, interval in sorted(intervals.items()):
            job = Repeating(
                f"{self._what} for insurer {insurer}",
                partial(self._work, insurer),
                interval,
                clock,
                failures=self._failures,
            )
            self._jobs[insurer] = job
            job.start()
            self._done.append(job.finished)

    def stop(self) -> None:
        for job in self._jobs.values():
            job.stop()
        self._jobs.clear()

    @property
    def finished(self) -> Deferred[Any]:
        """Fires once every loop is stopped and no round is in progress any more."""
        return DeferredList(list(self._done), consumeErrors=True)

    @property
    def running(self) -> bool:
        return any(job.running for job in self._jobs.values())
