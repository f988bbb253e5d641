"""Storage adapters: the message store on SQLite, PostgreSQL or memory.

Layers, bottom up (each module imports only modules of the layers below it, never one
above, and no two import each other: ``tests/adapters/storage/test_layers.py`` checks it):

* :mod:`adapters.storage.database` — connections, threads, group commit, error translation;
  :mod:`adapters.storage.migrations` — the schema, versioned, applied at start-up;
* :mod:`adapters.storage.journal` — :class:`~adapters.storage.journal.JournalCodec` (how
  payloads are sealed) and the SQL that stores a message with its bytes and statuses;
* :mod:`adapters.storage.lines` — the declaration lines (sealed client values, keyed
  lookup hashes);
* the area modules, each the SQL of one part of the store: ``messages`` (the
  ``MessageStore`` port), ``outbox``, ``outcomes``, ``bundling``, ``leases``,
  ``retention``, ``notices``, ``resolution``, ``audit``, ``accounts``, ``sessions``,
  ``cases`` and ``admin`` (the ``AdminStore`` port over those four), ``batches``,
  ``reprocess``, ``search``, ``keys``;
* :mod:`adapters.storage.facade` — :class:`SqlMessageStore`, the facade: it owns the
  database and the codec, builds every area store once (``store.messages``,
  ``store.bundles``, ``store.admin``, ``store.outbox``…) and answers the
  ``MessageStore`` port through ``store.messages``;
* :mod:`adapters.storage.memory` — :class:`MemoryMessageStore`, the same port in memory.

The composition root opens the configured store with :func:`open_store` and closes it on
reactor shutdown::

    store = await open_store(config.store.url, reactor)
    reactor.addSystemEventTrigger("before", "shutdown", store.close)
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFromThreads

from adapters.storage.database import Database, Transaction
from adapters.storage.facade import SqlMessageStore
from adapters.storage.memory import MemoryMessageStore
from adapters.storage.migrations import LATEST_VERSION, migrate
from gateway.crypto import Keyring

__all__ = [
    "LATEST_VERSION",
    "Database",
    "MemoryMessageStore",
    "SqlMessageStore",
    "Transaction",
    "open_database",
    "open_store",
]

SQLITE_PREFIX = "sqlite:///"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")


def open_database(url: str, reactor: IReactorFromThreads) -> Database:
    """A :class:`Database` for ``sqlite:///PATH`` (``sqlite:////abs/path.db`` for an
    absolute path, ``sqlite:///:memory:`` for a private in-memory one) or a
    ``postgresql://`` URL (libpq syntax). Nothing is connected yet."""
    if url.startswith(SQLITE_PREFIX):
        path = url.removeprefix(SQLITE_PREFIX)
        if not path:
            raise ValueError("a sqlite:/// store URL needs a file path")
        return Database.sqlite(path, reactor)
    if url.startswith(POSTGRES_PREFIXES):
        return Database.postgres(url, reactor)
    scheme = url.split(":", 1)[0] if ":" in url else "(none)"
    raise ValueError(
        f"unsupported store URL scheme {scheme!r}: use sqlite:///PATH or postgresql://…"
    )


def open_store(
    url: str, reactor: IReactorFromThreads, keyring: Keyring | None = None
) -> Deferred[SqlMessageStore]:
    """Open the store at ``url`` and bring its schema up to date.

    Fails with :class:`~gateway.ports.messages.SchemaVersionError` for a database written by a newer
    gateway and :class:`~gateway.ports.messages.StoreUnavailableError` when it cannot be reached;
    the connections are closed again in both cases. With a ``keyring``, payloads are
    sealed in the journal (see :class:`~adapters.storage.journal.JournalCodec`).
    """
    database = open_database(url, reactor)

    async def migrated() -> SqlMessageStore:
        try:
            await migrate(database)
        except BaseException:
            await database.close()
            raise
        return SqlMessageStore(database, keyring)

    return Deferred.fromCoroutine(migrated())
