"""A bundle worker's side: runs in the process :class:`~adapters.bundle_workers.BundleWorkers`
starts, and is that process's composition root (it opens the store and builds the
bundler). The first batch opens the store (its own connections to the gateway's store,
with the gateway's key file when it has one); :func:`start` has :func:`close` close it
when the pool lets the process go, and ends the process at once if the gateway's ends
first.
:func:`prepare` reads, decides and builds one batch of a bundling run there
(:meth:`gateway.bundler.Bundler.prepare_batch`, with the shipped layouts and the gateway's
catalogue and terms) and hands back what recording it needs. It records nothing and
writes no log line.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import operator
import os
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from multiprocessing.reduction import ForkingPickler
from multiprocessing.util import Finalize
from typing import Any

from adapters.bundle_workers.pool import WorkerSpec
from adapters.storage import SqlMessageStore, open_store
from adapters.storage.blocking import Blocking
from gateway.bundler import Bundler
from gateway.crypto import Keyring
from gateway.ei import LayoutRegistry
from gateway.loading import load_layouts
from gateway.ports.bundling import (
    DecisionRecord,
    LateLine,
    LineAnswerNow,
    LineOutcome,
    PreparedBatch,
    QueuedFile,
    RunGuard,
)
from gateway.ports.messages import NewMessage, NewStatus
from gateway.process import tune_garbage_collector
from gateway.rules.claims import ClaimLink

__all__ = ["close", "prepare", "start"]

# How long a worker waits for its store: to open it, and for one batch.
OPEN_SECONDS = 120.0
BATCH_SECONDS = 3600.0
# What a prepared batch hands over, one object per line or claim: frozen dataclasses with
# slots, which pickle through a generic state method that looks up the class's fields
# for every object. Each is handed over as its class and its field values instead.
HANDED_OVER = (
    ClaimLink,
    DecisionRecord,
    LateLine,
    LineAnswerNow,
    LineOutcome,
    NewMessage,
    NewStatus,
    QueuedFile,
    RunGuard,
)


@dataclass(frozen=True)
class _Opened:
    reactor: Blocking
    store: SqlMessageStore
    registry: LayoutRegistry
    spec: WorkerSpec


_specs: list[WorkerSpec] = []  # what this process was started with
_opened: list[_Opened] = []  # and its store, once opened


def start(spec: WorkerSpec) -> None:
    """Ready this worker process (the pool's initializer). The store is opened by the
    first batch: an error there goes back to the gateway with that batch (an error here
    would be printed, traceback and all, on the gateway's standard error)."""
    # Ctrl-C in the gateway's terminal reaches the whole process group: the gateway
    # ends its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tune_garbage_collector()  # as the gateway's own process does
    for cls in HANDED_OVER:
        ForkingPickler.register(cls, _by_fields(cls))
    _specs.append(spec)
    # When the pool lets the worker go, multiprocessing runs this before it waits for the
    # process's threads, which the open store's would otherwise hold up for ever.
    Finalize(None, close, exitpriority=10)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(
            target=_end_with, args=(parent.sentinel,), name="bundle-worker-watch", daemon=True
        ).start()


def _end_with(sentinel: int) -> None:
    """End this process as soon as the gateway's has ended (killed, say): the pool's
    input, which this process holds open too, would never tell it. The worker writes
    nothing to the store, so nothing is lost; its connections end with it."""
    multiprocessing.connection.wait([sentinel])
    os._exit(1)


def _by_fields(cls: type) -> Callable[[Any], tuple[type, tuple[Any, ...]]]:
    """Pickle a dataclass instance as ``cls(*its field values)`` (every field is in its
    ``__init__``)."""
    values = operator.attrgetter(*(f.name for f in fields(cls)))

    def reduce(obj: Any) -> tuple[type, tuple[Any, ...]]:
        return cls, values(obj)

    return reduce


def close() -> None:
    """Close this process's store (its threads would keep the process from ending); run
    as the process ends."""
    while _opened:
        opened = _opened.pop()
        opened.reactor.wait(opened.store.close(), OPEN_SECONDS)


def _open() -> _Opened:
    """This process's store, opened on first use (tried again by the next batch if it
    could not be opened)."""
    if not _opened:
        spec = _specs[-1]
        reactor = Blocking()
        keyring = Keyring.load(spec.key_file) if spec.key_file is not None else None
        store = reactor.wait(open_store(spec.store_url, reactor, keyring), OPEN_SECONDS)
        _opened.append(_Opened(reactor, store, load_layouts(), spec))
    return _opened[-1]


def prepare(women: Sequence[str], taken: int, now: datetime, arrivals: bool) -> PreparedBatch:
    """One batch prepared as at ``now``, without its plan (see
    :meth:`gateway.ports.bundling.BatchWorkers.prepare`)."""
    opened = _open()
    spec = opened.spec
    bundler = Bundler(
        opened.store,
        opened.store.bundles,
        opened.registry,
        spec.catalogue,
        spec.terms,
        now=lambda: now,
        distribution=spec.distribution,
    )
    prepared = opened.reactor.wait(
        bundler.prepare_batch(women, taken, arrivals=arrivals), BATCH_SECONDS
    )
    return prepared.without_plan()
