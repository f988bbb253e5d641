"""The insurer link port: how the gateway hands claim files to an insurer and gets its
retour files back, whatever the transport.

The core calls an :class:`InsurerLink`; adapters implement it (``adapters/insurer_link``:
a VECOZO-style REST client over mutual TLS, and a drop-directory link). The contract:

* :meth:`InsurerLink.send` delivers one :class:`OutboundFile`. Its ``message_id`` is the
  stable idempotency key (the outbound message's traceerId, stored before the first
  attempt): every re-send of the same file carries the same id, so an insurer that already
  has it answers with its first receipt instead of booking a second claim. Delivery is
  *at least once*; the id makes it effectively once.
* :meth:`InsurerLink.fetch` lists the retour files waiting for the IGO, with their bytes.
* :meth:`InsurerLink.confirm` tells the insurer a retour was stored safely (only after the
  gateway has journaled it), so that it leaves the queue. Confirming twice is harmless.

A link that can also follow up one delivered file (:class:`FollowUpLink`, the REST link
to VECOZO) answers :meth:`FollowUpLink.answers_to` — the retours waiting that answer that
file — and :meth:`FollowUpLink.status_of` — what the exchange service says of it
(:class:`ServiceStatus`), e.g. that it rejected the file, so that no retour will come.

Every failure is an :class:`InsurerLinkError` whose ``retryable`` says whether trying again
later can help (timeouts, refused connections, 5xx) or not (4xx: the insurer refuses this
file; the administrator must look). :class:`gateway.insurer.RetryPolicy` turns a run of
failures into the next attempt's time or, past its limits, into "park with the last error".
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Final, Protocol, runtime_checkable

from gateway.errors import ErrorKind, GatewayError

__all__ = [
    "Delivery",
    "FetchedRetour",
    "FollowUpLink",
    "InsurerLink",
    "InsurerLinkError",
    "LinkErrorReason",
    "OutboundFile",
    "ServiceStatus",
]


@dataclass(frozen=True, slots=True)
class OutboundFile:
    """One file for one insurer: an integral claim file or a monodisciplinary forward.

    ``message_id`` is the stable idempotency key (traceerId of the outbound message);
    ``invoice_number`` the file's factuurnummer (NUM029), a second key insurers dedupe on;
    ``standard`` the EI standard name (``KZ301``); ``conversation_id`` links the file and
    the retour that will answer it.
    """

    message_id: str
    insurer: str  # UZOVI code
    sender: str  # AGB code the file is declared under (the IGO's, or a participant's)
    standard: str
    payload: bytes
    invoice_number: str | None = None
    conversation_id: str | None = None
    filename: str | None = None

    def __post_init__(self) -> None:
        if not self.message_id or not self.message_id.isprintable() or "/" in self.message_id:
            raise ValueError("message_id must be printable text without '/'")

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()


@dataclass(frozen=True, slots=True)
class Delivery:
    """The insurer has the file. ``remote_id`` is its id for it (its traceerId, or the
    file name on a drop directory); ``repeated`` says it already had it from an earlier
    attempt — which is the expected answer to a re-send after a timeout, not an error."""

    remote_id: str
    repeated: bool = False


@dataclass(frozen=True, slots=True)
class FetchedRetour:
    """A retour file waiting for the IGO, with what the transport said about it.

    ``remote_id`` is what :meth:`InsurerLink.confirm` needs. ``in_reply_to`` is the
    insurer's id of the file it answers (``alsAntwoordOp``) and ``conversation_id`` the
    conversation it belongs to; either may be missing (a drop directory knows neither), so
    the return unpacker matches on the file's own content (factuurnummer, NUM040) too.
    """

    remote_id: str
    payload: bytes
    in_reply_to: str | None = None
    conversation_id: str | None = None
    reference_id: str | None = None
    standard: str | None = None
    filename: str | None = None
    received_at: datetime | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    """What the exchange service says of a delivered file: its status as the service
    names it (VECOZO's ``berichtstatus``); ``rejected`` when no retour will come because the
    service rejected or gave up on it; then ``codes``, the codes of its meldingen — never
    their texts, which may name client data."""

    status: str
    rejected: bool
    codes: tuple[str, ...] = ()


class LinkErrorReason(enum.StrEnum):
    TIMEOUT = "timeout"  # no (complete) answer in time; the insurer may have the file
    UNREACHABLE = "unreachable"  # no connection at all
    UNAVAILABLE = "unavailable"  # 5xx, 408, 429: the insurer is there but not now
    REFUSED = "refused"  # 4xx: the insurer will not take this request as it is
    TLS = "tls"  # the certificate check failed on either side
    PROTOCOL = "protocol"  # an answer the link cannot understand
    CONFLICT = "conflict"  # the same id was already used for other bytes
    CORRUPT = "corrupt"  # a retour whose bytes do not match its checksum
    IO = "io"  # a local file system error (drop directory)


_RETRYABLE = frozenset(
    {
        LinkErrorReason.TIMEOUT,
        LinkErrorReason.UNREACHABLE,
        LinkErrorReason.UNAVAILABLE,
        LinkErrorReason.CORRUPT,
        LinkErrorReason.IO,
    }
)


# What sort of failure each reason is, for the error tree (gateway.errors).
_KINDS: Final[Mapping[LinkErrorReason, ErrorKind]] = MappingProxyType(
    {
        LinkErrorReason.TIMEOUT: ErrorKind.UNAVAILABLE,
        LinkErrorReason.UNREACHABLE: ErrorKind.UNAVAILABLE,
        LinkErrorReason.UNAVAILABLE: ErrorKind.UNAVAILABLE,
        LinkErrorReason.REFUSED: ErrorKind.INVALID,
        LinkErrorReason.TLS: ErrorKind.MISCONFIGURED,
        LinkErrorReason.PROTOCOL: ErrorKind.INVALID,
        LinkErrorReason.CONFLICT: ErrorKind.CONFLICT,
        LinkErrorReason.CORRUPT: ErrorKind.UNAVAILABLE,
        LinkErrorReason.IO: ErrorKind.UNAVAILABLE,
    }
)


class InsurerLinkError(GatewayError):
    """The one error type of every insurer link; adapters translate their libraries'
    exceptions into it. ``reason`` is also its code (``link-<reason>``) and decides its
    kind; ``status`` is the HTTP status the insurer answered, where there was one."""

    def __init__(self, reason: LinkErrorReason, detail: str, *, status: int | None = None) -> None:
        super().__init__(
            f"{reason.value}: {detail}", code=f"link-{reason.value}", kind=_KINDS[reason]
        )
        self.reason = reason
        self.detail = detail
        self.status = status

    @property
    def retryable(self) -> bool:
        return self.reason in _RETRYABLE


class InsurerLink(Protocol):
    """What the gateway needs from an insurer connection (see the module docs)."""

    async def send(self, file: OutboundFile) -> Delivery: ...

    async def fetch(self) -> Sequence[FetchedRetour]: ...

    async def confirm(self, retour: FetchedRetour) -> None: ...


@runtime_checkable
class FollowUpLink(InsurerLink, Protocol):
    """A link that can also ask after one delivered file, by the insurer's id of it
    (:attr:`Delivery.remote_id`)."""

    async def answers_to(self, remote_id: str) -> Sequence[FetchedRetour]:
        """The retours waiting that answer the file, with their bytes."""
        ...

    async def status_of(self, remote_id: str) -> ServiceStatus | None:
        """The service's status of the file; None when the service does not know it."""
        ...
