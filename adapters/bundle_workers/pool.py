"""Bundle workers: each batch of a bundling run read, decided and built in a worker process
beside the gateway's own (``[bundling] worker_processes``), so that the gateway's process
only records the batches — and keeps its interpreter for the EPD API and the store — while
the next batch is prepared on another core (docs/benchmarks.md for what it changes).

The worker is a process of :class:`concurrent.futures.ProcessPoolExecutor`, started fresh
(``spawn``: nothing of the gateway's threads or connections is inherited) when the first
batch is handed to it and kept for the runs after; it opens its own connections to the
store (:mod:`adapters.storage`) and prepares a batch as the bundler would
(:mod:`adapters.bundle_workers.worker`). Its answer comes back on the executor's thread and
is handed to the reactor (``callFromThread``), so no reactor thread waits on a worker.

Nothing is lost when a worker fails: a batch it could not prepare (it failed, or ended —
then a new one is started for the next batch) fails with
:class:`~gateway.ports.bundling.BatchWorkerUnavailableError`, and the bundler prepares
that batch itself. Only the class of a worker's error is told (its text might quote the store).
:meth:`BundleWorkers.stop` has the worker close its store and end; a worker preparing a
batch finishes it first.
"""

from __future__ import annotations

import importlib
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import BrokenExecutor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorFromThreads

from gateway.ports.bundling import BatchWorkerUnavailableError, PreparedBatch
from gateway.rules.catalogue import Catalogue
from gateway.rules.model import Distribution, Terms

__all__ = ["BundleWorkers", "WorkerSpec"]

# The worker's side, imported in the worker process only: it builds the bundler, which
# an adapter does not load in the gateway's process (the composition root builds it).
WORKER = "adapters.bundle_workers.worker"


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to prepare batches as the gateway's bundler would."""

    store_url: str
    key_file: Path | None
    catalogue: Catalogue
    terms: Terms
    distribution: Distribution


def _in_worker(name: str, *args: Any) -> Any:
    """Call ``name`` of :data:`WORKER` (in the worker process)."""
    return getattr(importlib.import_module(WORKER), name)(*args)


class BundleWorkers:
    """A worker process that prepares bundling batches
    (:class:`~gateway.ports.bundling.BatchWorkers`), started when first needed. One: a
    run prepares one batch ahead of the one it records."""

    def __init__(self, reactor: IReactorFromThreads, spec: WorkerSpec) -> None:
        self._reactor = reactor
        self._spec = spec
        self._executor: ProcessPoolExecutor | None = None
        self._stopped = False
        self.started = 0
        """How many times a worker was started (after one failed, a new one is)."""

    def prepare(
        self, women: Sequence[str], taken: int, now: datetime, arrivals: bool
    ) -> Deferred[PreparedBatch]:
        if self._stopped:
            return fail(BatchWorkerUnavailableError("the bundle workers are stopped"))
        executor = self._executor or self._start()
        try:
            future = executor.submit(_in_worker, "prepare", tuple(women), taken, now, arrivals)
        except (BrokenExecutor, RuntimeError) as exc:  # a broken pool, or one shut down
            self._executor = None
            executor.shutdown(wait=False)
            return fail(BatchWorkerUnavailableError(f"no bundle worker ({type(exc).__name__})"))
        prepared: Deferred[PreparedBatch] = Deferred()
        future.add_done_callback(
            lambda done: self._reactor.callFromThread(self._settle, executor, done, prepared)
        )
        return prepared

    def _start(self) -> ProcessPoolExecutor:
        self._executor = ProcessPoolExecutor(
            1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_in_worker,
            initargs=("start", self._spec),
        )
        self.started += 1
        return self._executor

    def _settle(
        self,
        executor: ProcessPoolExecutor,
        done: Future[PreparedBatch],
        prepared: Deferred[PreparedBatch],
    ) -> None:
        if done.cancelled():
            prepared.errback(BatchWorkerUnavailableError("the bundle worker was stopped"))
            return
        error = done.exception()
        if error is None:
            prepared.callback(done.result())
            return
        if isinstance(error, BrokenExecutor) and executor is self._executor:
            # The pool broke (a worker ended): the next batch starts a new one.
            self._executor = None
            executor.shutdown(wait=False, cancel_futures=True)
        prepared.errback(
            BatchWorkerUnavailableError(f"the bundle worker failed ({type(error).__name__})")
        )

    def stop(self, *, wait: bool = False) -> None:
        """Let the worker go: it ends (closing its store) once the batch it prepares, if
        any, is done; with ``wait``, until it has ended (this blocks: not on the reactor's
        thread)."""
        self._stopped = True
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait)
