"""Check workers: the intake checks of uploads run in worker processes beside the
gateway's own, so that the reactor's process spends its interpreter on HTTP, TLS and
the store while the files are checked on the other cores (``[epd_api]
check_processes``; docs/benchmarks.md for what it changes).

Each worker is ``python -m adapters.check_workers.worker``, started with
``spawnProcess``: requests go to its standard input and replies come back on its
standard output as frames (:mod:`adapters.check_workers.wire`), read by the reactor like
any connection, so no thread of the gateway waits on a worker. An upload goes to the
worker with the fewest waiting.

Nothing is lost when a worker fails: a failed reply, a reply the gateway cannot use (a
layout it does not know, say), a worker that ended (its uploads waiting) or no worker
running fails the check with :class:`~gateway.ports.intake.FileCheckUnavailableError`,
and the intake then runs the checks itself, as it does without workers. A worker that
ended unasked is started again after ``restart_seconds`` (twice as long each time one
ends within :data:`SHORT_LIFE_SECONDS` of its start, up to :data:`MAX_RESTART_SECONDS`).
What a worker writes on its standard error is counted, never logged (it might quote a
file). :meth:`CheckWorkers.stop` closes the workers' input and waits until they have
ended (killing one that has not after ``stop_seconds``).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
from collections.abc import Sequence
from typing import Any, Final

from twisted.internet.defer import Deferred, DeferredList, fail
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.interfaces import (
    IDelayedCall,
    IProcessTransport,
    IReactorProcess,
    IReactorTime,
)
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Interface

from adapters.check_workers.wire import HEADER, MAX_FRAME, checked_from_reply, reply_id, request_for
from gateway.ei import LayoutRegistry
from gateway.metrics import Metrics
from gateway.ports.intake import CheckedFile, FileCheckUnavailableError

__all__ = ["CheckWorkers", "ProcessReactor", "worker_command"]

log = Logger()

# A worker that ends within this many seconds of its start is started again later each
# time, up to MAX_RESTART_SECONDS.
SHORT_LIFE_SECONDS: Final = 10.0
MAX_RESTART_SECONDS: Final = 60.0


class ProcessReactor(IReactorProcess, IReactorTime, Interface):
    """What the check workers need of the reactor."""


def worker_command() -> list[str]:
    """How a worker is started: this interpreter, the worker module."""
    return [sys.executable, "-m", "adapters.check_workers.worker"]


class _Worker(ProcessProtocol):
    """One worker process: its waiting checks, by request id, and its reply frames."""

    def __init__(self, pool: CheckWorkers, number: int) -> None:
        self.pool = pool
        self.number = number
        self.waiting: dict[int, Deferred[tuple[Any, ...]]] = {}
        self.running = False
        self.ended: Deferred[None] = Deferred()
        self._buffer = bytearray()
        self.started = 0.0

    def connectionMade(self) -> None:
        self.running = True

    def send(self, request_id: int, request: bytes) -> Deferred[tuple[Any, ...]]:
        waiting: Deferred[tuple[Any, ...]] = Deferred()
        self.waiting[request_id] = waiting
        assert self.transport is not None
        self.transport.write(request)
        return waiting

    def outReceived(self, data: bytes) -> None:
        # Framed here rather than by Int32StringReceiver: the reactor reads a pipe 8 KiB at
        # a time, and that receiver joins each read to all it holds (quadratic in a large
        # reply); this buffer grows in place.
        buffer = self._buffer
        buffer += data
        while len(buffer) >= HEADER.size:
            (size,) = HEADER.unpack_from(buffer)
            if size > MAX_FRAME:
                self._broken("a reply frame larger than allowed")
                return
            end = HEADER.size + size
            if len(buffer) < end:
                return
            body = bytes(buffer[HEADER.size : end])
            del buffer[:end]
            try:
                request_id, values = reply_id(body)
            except Exception:
                self._broken("a reply that could not be read")
                return
            waiting = self.waiting.pop(request_id, None)
            if waiting is None:
                self._broken("a reply to no waiting request")
                return
            waiting.callback(values)

    def errReceived(self, data: bytes) -> None:
        self.pool.stderr_bytes += len(data)

    def processEnded(self, reason: Failure) -> None:
        self.running = False
        waiting, self.waiting = self.waiting, {}
        for check in waiting.values():
            check.errback(FileCheckUnavailableError("the check worker ended"))
        self.pool._ended(self)
        self.ended.callback(None)

    def _broken(self, why: str) -> None:
        log.error("check worker {number}: {why}; ending it", number=self.number, why=why)
        self.running = False  # takes no new checks; processEnded fails the waiting ones
        self.kill()

    def kill(self) -> None:
        transport: IProcessTransport | None = self.transport
        if transport is not None:
            with contextlib.suppress(ProcessExitedAlready):
                transport.signalProcess("KILL")


class CheckWorkers:
    """``processes`` worker processes that run the intake checks
    (:class:`~gateway.ports.intake.FileChecks`). :meth:`start` starts them."""

    def __init__(
        self,
        reactor: ProcessReactor,
        registry: LayoutRegistry,
        processes: int,
        *,
        command: Sequence[str] | None = None,
        restart_seconds: float = 1.0,
        stop_seconds: float = 10.0,
        metrics: Metrics | None = None,
    ) -> None:
        if processes < 1:
            raise ValueError("processes must be at least 1")
        self._reactor = reactor
        self._registry = registry
        self._processes = processes
        self._command = list(command or worker_command())
        self._restart_seconds = restart_seconds
        self._stop_seconds = stop_seconds
        self._workers: list[_Worker] = []
        self._ids = itertools.count()
        self._restarts: list[IDelayedCall] = []
        self._quick_ends: dict[int, int] = {}
        self._stopping = False
        self.stderr_bytes = 0
        """Bytes the workers wrote on their standard error (never logged)."""
        self._metrics = metrics
        if metrics is not None:
            metrics.check_workers.set_function(lambda: self.running)

    @property
    def running(self) -> int:
        """How many workers are running."""
        return sum(1 for worker in self._workers if worker.running)

    def start(self) -> None:
        for number in range(self._processes):
            self._spawn(number)
        log.info("{count} check worker(s) started", count=self._processes)

    def check(self, payload: bytes, traceer_id: str, participant: str) -> Deferred[CheckedFile]:
        running = [worker for worker in self._workers if worker.running]
        if not running:
            checked: Deferred[CheckedFile] = fail(
                FileCheckUnavailableError("no check worker is running")
            )
        else:
            worker = min(running, key=lambda w: len(w.waiting))
            request_id = next(self._ids)
            request = request_for(request_id, payload, traceer_id, participant)
            checked = worker.send(request_id, request).addCallback(self._checked)
        return checked.addErrback(self._counted)

    def _counted(self, failure: Failure) -> Failure:
        """Count an upload the gateway is to check itself."""
        if self._metrics is not None and failure.check(FileCheckUnavailableError):
            self._metrics.checks_here.inc()
        return failure

    def _checked(self, values: tuple[Any, ...]) -> CheckedFile:
        if not values:
            log.warn("a check worker could not check an upload; the gateway checks it itself")
            raise FileCheckUnavailableError("the check worker failed on this file")
        try:
            return checked_from_reply(self._registry, values)
        except Exception:  # a reply this gateway cannot use: checked here instead
            log.error("a check worker's reply did not fit; the gateway checks the upload itself")
            raise FileCheckUnavailableError("the check worker's reply did not fit") from None

    def stop(self) -> Deferred[None]:
        """Close the workers' input and wait until each has ended."""
        self._stopping = True
        for restart in self._restarts:
            if restart.active():
                restart.cancel()
        ending = [worker.ended for worker in self._workers if worker.running]
        for worker in self._workers:
            if worker.running and worker.transport is not None:
                worker.transport.closeStdin()
        kill = self._reactor.callLater(self._stop_seconds, self._kill)
        done: Deferred[None] = Deferred()

        def ended(_: object) -> None:
            if kill.active():
                kill.cancel()
            done.callback(None)

        DeferredList(ending, consumeErrors=True).addBoth(ended)
        return done

    def _kill(self) -> None:
        for worker in self._workers:
            if worker.running:
                log.warn("check worker {number} did not end; killing it", number=worker.number)
                worker.kill()

    def _spawn(self, number: int) -> None:
        worker = _Worker(self, number)
        worker.started = self._reactor.seconds()
        if number < len(self._workers):
            self._workers[number] = worker
        else:
            self._workers.append(worker)
        try:
            self._reactor.spawnProcess(
                worker,
                self._command[0],
                self._command,
                env=dict(os.environ),
                path=None,
            )
        except OSError as exc:  # not started: as if it had ended at once
            log.error(
                "check worker {number} could not be started ({error})",
                number=number,
                error=type(exc).__name__,
            )
            worker.running = False
            self._ended(worker)

    def _ended(self, worker: _Worker) -> None:
        if self._stopping:
            return
        # A worker that ends soon after its start (one that cannot start at all, say) is
        # started again after twice the wait of the time before, up to MAX_RESTART_SECONDS.
        lived = self._reactor.seconds() - worker.started
        quick = self._quick_ends.get(worker.number, 0) + 1 if lived < SHORT_LIFE_SECONDS else 0
        self._quick_ends[worker.number] = quick
        seconds = min(self._restart_seconds * 2**quick, MAX_RESTART_SECONDS)
        log.warn(
            "check worker {number} ended unasked; starting it again in {seconds} s "
            "(uploads meanwhile are checked in the gateway's own process)",
            number=worker.number,
            seconds=seconds,
        )
        self._restarts = [r for r in self._restarts if r.active()]
        self._restarts.append(self._reactor.callLater(seconds, self._respawn, worker.number))

    def _respawn(self, number: int) -> None:
        if not self._stopping:
            self._spawn(number)
