"""The storage facade: one object over one database that owns the
:class:`~adapters.storage.database.Database` and the
:class:`~adapters.storage.journal.JournalCodec` and builds every area store once.

:func:`adapters.storage.open_store` returns it. It is the
:class:`~gateway.ports.messages.MessageStore` the services get (answered by the messages area), and
it hands out the other areas as attributes: ``store.bundles``, ``store.admin``,
``store.outbox``… This module is the top of the storage layers: it imports the area
modules, and none of them imports it.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from datetime import datetime

from twisted.internet.defer import Deferred

from adapters.storage.admin import SqlAdminStore
from adapters.storage.batches import SqlBatchStore
from adapters.storage.bundling import SqlBundleStore
from adapters.storage.database import Database
from adapters.storage.journal import JournalCodec
from adapters.storage.keys import SqlKeys
from adapters.storage.leases import SqlJobLeases
from adapters.storage.messages import SqlMessages
from adapters.storage.notices import SqlNoticeStore
from adapters.storage.outbox import SqlOutbox
from adapters.storage.outcomes import SqlOutcomeStore
from adapters.storage.reprocess import SqlReprocessStore
from adapters.storage.resolution import SqlResolutionStore
from adapters.storage.retention import SqlRetention
from adapters.storage.search import SqlSearchStore
from gateway.crypto import Keyring
from gateway.lines import DeclaredLine
from gateway.ports.messages import (
    Direction,
    Message,
    NewMessage,
    NewStatus,
    StatusEntry,
    UploadResult,
)

__all__ = ["SqlMessageStore"]


class SqlMessageStore:
    """Every area store on one SQLite or PostgreSQL :class:`Database`, and the
    :class:`~gateway.ports.messages.MessageStore` port by way of :attr:`messages`. With a
    ``keyring``, payloads and declaration lines are sealed (see :class:`JournalCodec`) and
    the audit log is keyed with its audit key."""

    def __init__(self, database: Database, keyring: Keyring | None = None) -> None:
        self.database = database
        self.codec = JournalCodec(keyring)
        if keyring is not None:
            database.audit_key = keyring.audit_key()
        codec = self.codec
        self.messages = SqlMessages(database, codec)
        """Messages, their statuses and payloads: the ``MessageStore`` port's SQL."""
        self.bundles = SqlBundleStore(database, codec)
        """What bundling reads and writes."""
        self.outcomes = SqlOutcomeStore(database, codec)
        """Answers to original lines."""
        self.outbox = SqlOutbox(database, codec)
        """The outbound queue."""
        self.leases = SqlJobLeases(database, socket.gethostname())
        """Job leases (one run of a job at a time over every process)."""
        self.retention = SqlRetention(database)
        """Pruning expired payloads."""
        self.admin = SqlAdminStore(database, codec)
        """Accounts, sessions, the audit log and cases (``AdminStore``)."""
        self.batches = SqlBatchStore(database, codec)
        """Bulk actions on cases."""
        self.notices = SqlNoticeStore(database)
        """What was noticed over which channel."""
        self.resolution = SqlResolutionStore(database, codec)
        """What the resolver reads."""
        self.reprocess = SqlReprocessStore(database, codec)
        """Uploads read again with another layout."""
        self.search = SqlSearchStore(database, codec)
        """The administrator's search."""
        self.keys = SqlKeys(database, codec)
        """Which keys the sealed rows need, and whether the key file fits."""

    def reencrypt(self, limit: int = 100) -> Deferred[int]:
        """Seal up to ``limit`` rows of the sealed tables (journal, declaration lines) that
        are not under the current key (or not sealed at all) with it; the number done (0:
        nothing left)."""
        return self.messages.reencrypt(limit)

    # --- the MessageStore port, answered by the messages area -----------------------------

    def record_upload(
        self,
        upload: NewMessage,
        replies: Sequence[NewMessage] = (),
        lines: Sequence[DeclaredLine] = (),
        client_key: str | None = None,
    ) -> Deferred[UploadResult]:
        return self.messages.record_upload(upload, replies, lines, client_key)

    def declared_lines(self, traceer_id: str) -> Deferred[list[DeclaredLine]]:
        """The prestatie lines stored with upload ``traceer_id``, in file order."""
        return self.messages.declared_lines(traceer_id)

    def open_lines(self) -> Deferred[list[DeclaredLine]]:
        """Every line not yet settled by bundling."""
        return self.messages.open_lines()

    def put_message(self, message: NewMessage) -> Deferred[Message]:
        return self.messages.put_message(message)

    def get_message(self, traceer_id: str) -> Deferred[Message | None]:
        return self.messages.get_message(traceer_id)

    def list_messages(
        self,
        party: str,
        direction: Direction,
        *,
        include_confirmed: bool = False,
        since: datetime | None = None,
        limit: int = 100,
    ) -> Deferred[list[Message]]:
        return self.messages.list_messages(
            party, direction, include_confirmed=include_confirmed, since=since, limit=limit
        )

    def payload(self, sha256: str) -> Deferred[bytes | None]:
        return self.messages.payload(sha256)

    def messages_with_payloads(
        self, traceer_ids: Sequence[str]
    ) -> Deferred[dict[str, tuple[Message, bytes | None]]]:
        return self.messages.messages_with_payloads(traceer_ids)

    def confirm(self, traceer_id: str, party: str, at: datetime) -> Deferred[bool]:
        return self.messages.confirm(traceer_id, party, at)

    def add_status(self, traceer_id: str, status: NewStatus, at: datetime) -> Deferred[None]:
        return self.messages.add_status(traceer_id, status, at)

    def statuses(self, traceer_ids: Sequence[str]) -> Deferred[list[StatusEntry]]:
        return self.messages.statuses(traceer_ids)

    def conversation(self, conversatie_id: str) -> Deferred[list[Message]]:
        return self.messages.conversation(conversatie_id)

    def ping(self) -> Deferred[None]:
        return self.messages.ping()

    def close(self) -> Deferred[None]:
        return self.database.close()
