"""The outbound queue port: files for insurers, stored before the first attempt.

A file enters with :meth:`Outbox.enqueue` (its message and bytes journaled, state
``queued``, due at once). A sender claims due files with :meth:`Outbox.claim_due`, which
moves them to ``sending`` under a lease; a process that dies mid-attempt leaves the row in
``sending`` until the lease ends, when it is due again and is re-sent with the same id (the
insurer recognises it: no second claim). Every attempt ends in :meth:`Outbox.delivered`,
:meth:`Outbox.retry_at` or :meth:`Outbox.park`; :meth:`Outbox.answered` marks a file whose
retour has come in.

A delivered file still without a retour is followed up (its retours asked for, its status
at the exchange service read): :meth:`Outbox.awaiting_answer` hands such files out in turn,
each at most once per interval over every gateway instance sharing the store; a file the
service rejected is parked with :meth:`Outbox.rejected`, once, and only while it is still
delivered and unanswered.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from gateway.ports.messages import Message, NewMessage

__all__ = ["Outbound", "OutboundState", "Outbox", "QueueReads"]


class OutboundState(enum.StrEnum):
    QUEUED = "queued"  # waiting for its (next) attempt
    SENDING = "sending"  # claimed by a sender, under a lease
    DELIVERED = "delivered"  # the insurer has it
    ANSWERED = "answered"  # its retour has come in
    PARKED = "parked"  # no more attempts: the administrator decides


@dataclass(frozen=True, slots=True)
class Outbound:
    """One outbound file and where it stands."""

    traceer_id: str
    insurer: str  # UZOVI
    sender: str  # the AGB code it is declared under
    state: OutboundState
    attempts: int
    due_at: datetime  # queued: next attempt; sending: end of the lease; delivered: next follow-up
    first_attempt_at: datetime | None
    last_error: str | None
    remote_id: str | None
    standard: str | None
    invoice_number: str | None
    conversatie_id: str
    filename: str | None
    sha256: str


class Outbox(Protocol):
    def enqueue(self, message: NewMessage, insurer: str, sender: str) -> Awaitable[Message]:
        """Store the file (idempotent on its idempotency key) and queue it, due now."""
        ...

    def claim_due(
        self, insurer: str, now: datetime, lease: timedelta, limit: int
    ) -> Awaitable[list[tuple[Outbound, bytes]]]:
        """Up to ``limit`` due files of ``insurer``, oldest first, now ``sending`` until
        ``now + lease`` with their attempt counted (a crash mid-attempt counts too); with
        their bytes."""
        ...

    def delivered(self, traceer_id: str, remote_id: str, at: datetime) -> Awaitable[None]: ...

    def retry_at(
        self, traceer_id: str, due_at: datetime, error: str, at: datetime
    ) -> Awaitable[None]: ...

    def park(self, traceer_id: str, error: str, at: datetime) -> Awaitable[None]: ...

    def answered(self, traceer_id: str, at: datetime) -> Awaitable[None]: ...

    def awaiting_answer(
        self, insurer: str, now: datetime, every: timedelta, limit: int
    ) -> Awaitable[list[Outbound]]:
        """Up to ``limit`` files of ``insurer`` delivered but not answered whose follow-up
        is due (a file is due from its delivery on), the longest due first; each is due
        again only at ``now + every``, so that another instance, or the next round, leaves
        it alone until then."""
        ...

    def rejected(self, traceer_id: str, error: str, at: datetime) -> Awaitable[bool]:
        """Park a file that the exchange service rejected after delivery, with ``error``
        (no client data) for the administrator: only while it is delivered and unanswered.
        True when this call parked it; False when it was not (any more) delivered and
        unanswered — answered meanwhile, or parked by another instance already."""
        ...

    def get(self, traceer_id: str) -> Awaitable[Outbound | None]: ...

    def find(
        self,
        insurer: str,
        *,
        remote_id: str | None = None,
        conversatie_id: str | None = None,
        invoice_number: str | None = None,
    ) -> Awaitable[Outbound | None]:
        """The file of ``insurer`` that the insurer knows as ``remote_id``, or in
        conversation ``conversatie_id``, or with factuurnummer ``invoice_number`` — tried
        in that order, each only when given; None when none matches."""
        ...

    def counts(self) -> Awaitable[Mapping[tuple[str, OutboundState], int]]:
        """How many files per (insurer, state)."""
        ...

    def oldest_unanswered(self) -> Awaitable[Mapping[str, datetime]]:
        """Per insurer, when its oldest file still without a retour (queued, sending or
        delivered) was made; insurers with none are left out."""
        ...


class QueueReads(Protocol):
    """What the operations watch (``adapters.metrics.watch``) reads of the outbound queue:
    the part of :class:`Outbox` it needs."""

    def counts(self) -> Awaitable[Mapping[tuple[str, OutboundState], int]]: ...

    def oldest_unanswered(self) -> Awaitable[Mapping[str, datetime]]: ...
