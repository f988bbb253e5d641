"""Work that repeats per insurer, each on its own timer, so that one slow or unreachable
insurer never holds up another; a failed round is logged and the next one runs anyway."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway.ports.messages import StoreUnavailableError

__all__ = ["PerInsurer"]

log = Logger()


class PerInsurer:
    def __init__(self, what: str, work: Callable[[str], Awaitable[object]]) -> None:
        self._what = what
        self._work = work
        self._loops: dict[str, LoopingCall] = {}
        self._done: list[Deferred[Any]] = []

    def start(self, clock: IReactorTime, intervals: Mapping[str, float]) -> None:
        """Run ``work(insurer)`` now and then every ``intervals[insurer]`` seconds."""
        for insurer, interval in sorted(intervals.items()):
            loop = LoopingCall(self._round, insurer)
            loop.clock = clock
            self._loops[insurer] = loop
            done = loop.start(interval, now=True)
            done.addErrback(self._stopped, insurer)
            self._done.append(done)

    def stop(self) -> None:
        for loop in self._loops.values():
            if loop.running:
                loop.stop()
        self._loops.clear()

    @property
    def finished(self) -> Deferred[Any]:
        """Fires once every loop is stopped and no round is in progress any more."""
        return DeferredList(list(self._done), consumeErrors=True)

    @property
    def running(self) -> bool:
        return any(loop.running for loop in self._loops.values())

    def _stopped(self, failure: Failure, insurer: str) -> None:
        log.failure(
            "{what} for insurer {insurer} stopped", failure, what=self._what, insurer=insurer
        )

    def _round(self, insurer: str) -> Deferred[None]:
        async def round_() -> None:
            try:
                await self._work(insurer)
            except StoreUnavailableError as exc:  # an outage: one line, next round again
                log.warn(
                    "{what} for insurer {insurer} failed, the store is unavailable ({error})",
                    what=self._what,
                    insurer=insurer,
                    error=str(exc),
                )
            except Exception:  # a fault: try again next round
                log.failure("{what} for insurer {insurer} failed", what=self._what, insurer=insurer)

        return Deferred.fromCoroutine(round_())
