"""The storage port: what the gateway's services need from a store, nothing about how.

Adapters in ``adapters/storage/`` implement :class:`MessageStore` on SQLite (the embedded
default) and PostgreSQL, and an in-memory one for unit tests. Every method is one
transaction: when its awaitable fires, what it wrote is durable (committed, and on SQLite
fsynced). Methods return awaitables (Twisted ``Deferred`` in the real adapters) so that
database work never blocks the reactor thread.

Identity of raw bytes is their sha256 (hex): the journal stores each payload once, however
many messages refer to it.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from gateway.errors import ErrorKind, GatewayError
from gateway.lines import DeclaredLine

__all__ = [
    "Direction",
    "Message",
    "MessageStatus",
    "MessageStore",
    "NewMessage",
    "NewStatus",
    "SchemaVersionError",
    "StatusEntry",
    "StoreError",
    "StoreInUseError",
    "StoreUnavailableError",
    "UploadResult",
]


class StoreError(GatewayError):
    """Base of the store's errors; raised itself for stored data that cannot be read back
    (a payload whose hash does not match, a collision the store should have prevented)."""

    code = "store"
    kind = ErrorKind.INTERNAL


class StoreUnavailableError(StoreError):
    """The database cannot be reached or written (disk full, locked, server down).
    Nothing of the failed call was stored; the caller may retry later."""

    code = "tijdelijk-niet-beschikbaar"
    kind = ErrorKind.UNAVAILABLE


class StoreInUseError(StoreError):
    """The embedded store is held by another running gateway (or a restore)."""

    code = "store-in-use"
    kind = ErrorKind.BUSY


class SchemaVersionError(StoreError):
    """The database was written by a newer version of the gateway than this one."""

    code = "schema-too-new"
    kind = ErrorKind.MISCONFIGURED


class Direction(enum.StrEnum):
    FROM_PARTICIPANT = "from_participant"  # a declaration an EPD uploaded
    TO_PARTICIPANT = "to_participant"  # a retour waiting for an EPD to fetch it
    TO_INSURER = "to_insurer"  # a claim file for an insurer
    FROM_INSURER = "from_insurer"  # a retour an insurer sent


class MessageStatus(enum.StrEnum):
    """The status history a sender sees (VECOZO style)."""

    RECEIVED = "ontvangen"
    REJECTED = "afgekeurd"
    PROCESSING = "in_behandeling"
    PROCESSED = "verwerkt"
    FORWARDED = "doorgestuurd"
    ANSWERED = "beantwoord"
    DELIVERED = "afgeleverd"
    CONFIRMED = "ontvangst_bevestigd"


@dataclass(frozen=True, slots=True)
class NewStatus:
    status: MessageStatus
    code: str | None = None  # e.g. a retourcode, or a gateway message code
    description: str = ""


@dataclass(frozen=True, slots=True)
class StatusEntry:
    traceer_id: str
    at: datetime
    status: MessageStatus
    code: str | None
    description: str


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to store, with its raw payload (journaled by sha256 in the same transaction).

    ``party`` is who the message belongs to: the participant's AGB code for messages from
    or to a participant, the insurer's UZOVI code for insurer traffic. ``invoice_number``
    and ``payee`` are set for declarations, to enforce the factuurnummer's uniqueness per
    payee. ``idempotency_key`` makes a repeated store of the same message return the first.
    """

    traceer_id: str
    conversatie_id: str
    direction: Direction
    party: str
    payload: bytes
    sha256: str
    created_at: datetime
    status: NewStatus
    idempotency_key: str
    filename: str | None = None
    standard: str | None = None
    invoice_number: str | None = None
    payee: str | None = None
    reply_to: str | None = None
    reference_id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Message:
    traceer_id: str
    conversatie_id: str
    direction: Direction
    party: str
    sha256: str
    size: int
    created_at: datetime
    status: MessageStatus
    filename: str | None
    standard: str | None
    invoice_number: str | None
    payee: str | None
    reply_to: str | None
    reference_id: str | None
    metadata: Mapping[str, Any]
    confirmed_at: datetime | None


@dataclass(frozen=True, slots=True)
class UploadResult:
    """What :meth:`MessageStore.record_upload` did.

    ``created`` is False when the idempotency key was known: ``message`` is then the one
    stored before and nothing was written. ``invoice_conflict`` is set (and nothing
    written) when another message of the same payee already uses the invoice number.
    ``key_conflict`` is True (and nothing written) when the client's own idempotency key
    (``Idempotency-Key``) was used by the same participant before for other bytes;
    ``message`` is then the message that key names.
    """

    message: Message | None
    created: bool
    invoice_conflict: str | None = None
    key_conflict: bool = False


class MessageStore(Protocol):
    def record_upload(
        self,
        upload: NewMessage,
        replies: Sequence[NewMessage] = (),
        lines: Sequence[DeclaredLine] = (),
        client_key: str | None = None,
    ) -> Awaitable[UploadResult]:
        """Store an uploaded declaration and, in the same transaction, the messages that
        answer it at once (e.g. a technical rejection waiting for the sender) and its
        prestatie lines (of a file that passed the checks).

        ``client_key`` is the sender's own ``Idempotency-Key``, scoped to the uploading
        participant (``upload.party``): once stored it names the upload's message (or,
        for bytes stored before, the message they are); the same key again with the same
        bytes answers that message, with other bytes a ``key_conflict``."""
        ...

    def put_message(self, message: NewMessage) -> Awaitable[Message]:
        """Store any other message (idempotent on ``idempotency_key``)."""
        ...

    def get_message(self, traceer_id: str) -> Awaitable[Message | None]: ...

    def list_messages(
        self,
        party: str,
        direction: Direction,
        *,
        include_confirmed: bool = False,
        since: datetime | None = None,
        limit: int = 100,
    ) -> Awaitable[list[Message]]:
        """Messages of ``party`` in ``direction``, oldest first."""
        ...

    def payload(self, sha256: str) -> Awaitable[bytes | None]: ...

    def messages_with_payloads(
        self, traceer_ids: Sequence[str]
    ) -> Awaitable[dict[str, tuple[Message, bytes | None]]]:
        """Each of the messages found, with its bytes (None when pruned), in one read: what
        :meth:`get_message` and :meth:`payload` give one by one."""
        ...

    def confirm(self, traceer_id: str, party: str, at: datetime) -> Awaitable[bool]:
        """Mark a waiting message as fetched by its recipient; False if it is not theirs."""
        ...

    def add_status(self, traceer_id: str, status: NewStatus, at: datetime) -> Awaitable[None]: ...

    def statuses(self, traceer_ids: Sequence[str]) -> Awaitable[list[StatusEntry]]:
        """Status history of the given messages, oldest first."""
        ...

    def conversation(self, conversatie_id: str) -> Awaitable[list[Message]]: ...

    def ping(self) -> Awaitable[None]:
        """Raise :class:`StoreUnavailableError` when the database cannot be used."""
        ...

    def close(self) -> Awaitable[None]: ...
