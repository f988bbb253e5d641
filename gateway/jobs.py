"""One run of a job at a time, across every gateway process that shares one store.

A :class:`JobLock` takes the job's lease in the store (:class:`~gateway.ports.jobs.Leases`,
on SQL ``adapters.storage.leases``), renews it every third of its length while the run goes
on, and gives it up when the run ends. A run that finds the lease held either waits its turn
(polling) or, for a scheduled run, leaves the work to the holder.

The lease alone is not trusted to keep a claim from going out twice: a run also records
its outcome only if what it read is unchanged and it still holds the lease (the store
raises :class:`~gateway.ports.jobs.LeaseLostError` or a conflict, and nothing of the run
is stored).
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger

from gateway.ports.jobs import JobBusyError, Leases

__all__ = ["JobLock", "new_holder"]

log = Logger()

# How often a waiting run asks again for the lease (seconds, doubling up to the last).
POLL_SECONDS = (0.05, 0.1, 0.2, 0.5, 1.0)
# How often a waiting run says whom it waits for (seconds).
WAIT_LOG_SECONDS = 30.0


def new_holder() -> str:
    """A holder name unique to this process and lock: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class JobLock:
    """The lease of ``job`` for this process; ``seconds`` is the lease's length."""

    def __init__(
        self, leases: Leases, job: str, clock: IReactorTime, *, seconds: float = 60.0
    ) -> None:
        if seconds <= 0:
            raise ValueError("a lease needs a positive length")
        self.leases = leases
        self.job = job
        self.seconds = seconds
        self.holder = new_holder()
        self._clock = clock
        self._heartbeat: LoopingCall | None = None
        self._renewing: Deferred[Any] | None = None

    async def acquire(self, *, wait: bool = True) -> None:
        """Hold the lease; without ``wait``, :class:`~gateway.ports.jobs.JobBusyError` when
        another has it."""
        polls = 0
        waited = 0.0
        next_log = WAIT_LOG_SECONDS
        while other := await self.leases.try_acquire(self.job, self.holder, self.seconds):
            if not wait:
                raise JobBusyError(f"a {self.job} run of {other} is under way")
            delay = POLL_SECONDS[min(polls, len(POLL_SECONDS) - 1)]
            polls += 1
            waited += delay
            if waited >= next_log:
                log.info(
                    "waiting {seconds:.0f} s for the {job} run of {other}",
                    seconds=waited,
                    job=self.job,
                    other=other,
                )
                next_log += WAIT_LOG_SECONDS
            await deferLater(self._clock, delay, lambda: None)
        self._start_heartbeat()

    async def release(self) -> None:
        """Give the lease up (after a last renewal that may still be under way). When the
        store cannot be reached the lease is left to expire: that is logged, not raised,
        so that it never hides what the run itself raised."""
        self._stop_heartbeat()
        if self._renewing is not None:
            await self._renewing
        try:
            await self.leases.release(self.job, self.holder)
        except Exception as exc:
            log.warn(
                "giving up the {job} lease failed ({error}); it expires by itself",
                job=self.job,
                error=str(exc),
            )

    def _start_heartbeat(self) -> None:
        def renew() -> None:
            if self._renewing is not None:  # the last renewal has not come back yet
                return
            renewing = Deferred.fromCoroutine(self._renew())
            self._renewing = renewing

            def done(_: object) -> None:
                self._renewing = None

            renewing.addBoth(done)

        task = LoopingCall(renew)
        task.clock = self._clock
        task.start(self.seconds / 3, now=False)
        self._heartbeat = task

    def _stop_heartbeat(self) -> None:
        if self._heartbeat is not None and self._heartbeat.running:
            self._heartbeat.stop()
        self._heartbeat = None

    async def _renew(self) -> None:
        try:
            held = await self.leases.renew(self.job, self.holder, self.seconds)
        except Exception as exc:  # the store may be away a moment; the next beat tries
            log.warn("renewing the {job} lease failed ({error})", job=self.job, error=str(exc))
            return
        if not held:
            log.warn("the {job} lease was taken over; this run will not be stored", job=self.job)
