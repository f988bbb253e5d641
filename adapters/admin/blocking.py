"""Store work from a command line: open the store, run one thing to its end, close it —
without a running reactor.

The SQL store works on its own threads and hands results back through
``reactor.callFromThread``; :class:`Blocking` stands in for the reactor: it queues those
calls and runs them on the calling thread while :meth:`Blocking.wait` waits for a result.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from adapters.storage import SqlMessageStore, open_store
from adapters.storage.admin import SqlAdminStore
from adapters.storage.blocking import Blocking
from gateway.crypto import Keyring

__all__ = ["AdminStores", "Blocking", "opened_stores"]


@dataclass(frozen=True, slots=True)
class AdminStores:
    run: Blocking
    store: SqlMessageStore
    admin: SqlAdminStore


@contextmanager
def opened_stores(url: str, keyring: Keyring | None) -> Iterator[AdminStores]:
    """The message and admin stores at ``url`` (migrated), closed again afterwards."""
    run = Blocking()
    store = run.wait(open_store(url, run, keyring))
    try:
        yield AdminStores(run, store, store.admin)
    finally:
        run.wait(store.close())
