"""The notices port: a digest of new cases (:class:`Digest`), how it is delivered
(:class:`Transport`, by e-mail or webhook in ``adapters.notices``) and what the store
remembers of what was noticed (:class:`NoticeStore`, on SQL ``adapters.storage.notices``).

:func:`digest_text` and :func:`digest_json` are the digest's two renderings, for mail and
for a webhook; neither carries client data. The service is
:class:`gateway.notices.Notifier`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from gateway.admin.cases import KINDS, CaseKind
from gateway.errors import ErrorKind, GatewayError

__all__ = [
    "DeliveryUncertainError",
    "Digest",
    "DigestCase",
    "NoticeStore",
    "Transport",
    "digest_json",
    "digest_text",
]


@dataclass(frozen=True, slots=True)
class DigestCase:
    id: str
    kind: CaseKind
    since: datetime
    link: str


@dataclass(frozen=True, slots=True)
class Digest:
    """One notice: what is new since the last digest over a channel."""

    id: str
    channel: str
    made_at: datetime
    counts: dict[CaseKind, int]  # every new case, by kind
    cases: tuple[DigestCase, ...]  # listed one by one (at most ``max_listed``)
    queue_link: str

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def subject(self) -> str:
        noun = "nieuwe zaak" if self.total == 1 else "nieuwe zaken"
        return f"IGO-gateway: {self.total} {noun} in de werklijst"


class DeliveryUncertainError(GatewayError):
    """The digest may or may not have arrived (e.g. no answer after it was sent): its
    cases are not sent again, so that none is noticed twice."""

    code = "aflevering-onzeker"
    kind = ErrorKind.UNAVAILABLE


class Transport(Protocol):
    """Delivers a digest: raises on failure — :class:`DeliveryUncertainError` when it may
    have arrived all the same, any other error when it did not."""

    def deliver(self, digest: Digest) -> Awaitable[object]: ...


class NoticeStore(Protocol):
    """What was noticed over which channel (``adapters.storage.notices``)."""

    def noticed(self, channel: str) -> Awaitable[frozenset[str]]: ...
    def begin(
        self, channel: str, digest: str, case_ids: Sequence[str], at: datetime
    ) -> Awaitable[bool]: ...
    def sent(self, digest: str, at: datetime) -> Awaitable[None]: ...
    def failed(self, digest: str) -> Awaitable[None]: ...
    def settle_unfinished(self, at: datetime) -> Awaitable[int]: ...


def digest_text(digest: Digest) -> str:
    """The digest as plain text (Dutch), for e-mail."""
    lines = [
        f"Er {'is' if digest.total == 1 else 'zijn'} {digest.total} "
        f"{'nieuwe zaak' if digest.total == 1 else 'nieuwe zaken'} in de werklijst van de "
        "IGO-gateway:",
        "",
    ]
    lines += [f"  {count:>5}  {KINDS[kind].label}" for kind, count in digest.counts.items()]
    lines += ["", "Zaken:"]
    lines += [f"- {KINDS[c.kind].label}: {c.id}\n  {c.link}" for c in digest.cases]
    if len(digest.cases) < digest.total:
        lines.append(f"- en {digest.total - len(digest.cases)} meer in de werklijst")
    lines += [
        "",
        f"Werklijst: {digest.queue_link}",
        "",
        f"(bericht {digest.id}, kanaal {digest.channel}; elke zaak wordt één keer gemeld)",
    ]
    return "\n".join(lines) + "\n"


def digest_json(digest: Digest) -> dict[str, Any]:
    """The digest as JSON, for a webhook."""
    return {
        "digest": digest.id,
        "channel": digest.channel,
        "made_at": digest.made_at.isoformat(),
        "total": digest.total,
        "counts": {kind.value: count for kind, count in digest.counts.items()},
        "cases": [
            {
                "id": c.id,
                "kind": c.kind.value,
                "label": KINDS[c.kind].label,
                "since": c.since.isoformat(),
                "link": c.link,
            }
            for c in digest.cases
        ],
        "queue": digest.queue_link,
    }
