"""Notices: digests of new cases for the IGO administrator, by e-mail or webhook.

Every ``[notices] interval_seconds`` the gateway takes the notices lease (a
:class:`~gateway.jobs.JobLock`, so that of several gateway processes on one database one at
a time sends), and for each configured channel gathers the **open** cases of the kinds the
channel notices that it has not noticed before. If there are any, they go out as one
:class:`~gateway.ports.notices.Digest` — case ids, kinds, counts per kind and links to the
admin site, never client data (no BSN, name, birth date, amount or member number: a case id
names a message, a claim line or a pregnancy by the gateway's own ids).

A case is noticed once per channel, ever: the store remembers it
(:class:`~gateway.ports.notices.NoticeStore`, its rows written before sending). A digest
that was refused (the server said no, or could not be reached) is forgotten again and its
cases go in the next digest; one whose fate is unknown (no answer in time after it was sent)
is not sent again. Either is logged with the channel, the digest id, the number of cases and
the error — nothing of a case. A process that dies while sending leaves its rows "sending";
the next run marks them unconfirmed and does not send them again (a notice may be lost that
way, never sent twice).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from urllib.parse import quote

from prometheus_client import CollectorRegistry
from prometheus_client import Counter as MetricCounter
from twisted.logger import Logger

from gateway.admin.cases import Case, CaseKind
from gateway.config import NoticeChannel
from gateway.jobs import JobLock
from gateway.ports.jobs import JobBusyError
from gateway.ports.notices import (
    DeliveryUncertainError,
    Digest,
    DigestCase,
    NoticeStore,
    Transport,
)

__all__ = [
    "NOTICES_JOB",
    "NoticeMetrics",
    "Notifier",
    "build_digest",
]

log = Logger()

NOTICES_JOB = "notices"


def case_link(admin_url: str, case_id: str) -> str:
    return f"{admin_url.rstrip('/')}/cases/{quote(case_id, safe='')}"


def build_digest(
    channel: NoticeChannel,
    cases: Sequence[Case],
    noticed: frozenset[str],
    *,
    admin_url: str,
    made_at: datetime,
    digest_id: str,
    max_listed: int,
) -> tuple[Digest, tuple[str, ...]] | None:
    """The digest of ``cases`` new to ``channel`` and the ids of every case it covers;
    None when nothing is new. Oldest first."""
    kinds = frozenset(channel.kinds)
    new = sorted(
        (c for c in cases if c.is_open and c.kind in kinds and c.id not in noticed),
        key=lambda c: (c.facts.since, c.id),
    )
    if not new:
        return None
    counts = Counter(c.kind for c in new)
    listed = tuple(
        DigestCase(c.id, c.kind, c.facts.since, case_link(admin_url, c.id))
        for c in new[:max_listed]
    )
    digest = Digest(
        id=digest_id,
        channel=channel.name,
        made_at=made_at,
        counts={kind: counts[kind] for kind in CaseKind if counts[kind]},
        cases=listed,
        queue_link=f"{admin_url.rstrip('/')}/",
    )
    return digest, tuple(c.id for c in new)


class NoticeMetrics:
    """The notices' metrics, on a registry given to it (the gateway's own). Labels are the
    configured channel names and outcome codes only."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.digests = MetricCounter(
            "igo_gateway_notice_digests",
            "Notice digests by channel and outcome: sent, failed (its cases go in the next "
            "digest), uncertain (it may have arrived; its cases are not sent again).",
            ["channel", "outcome"],
            registry=registry,
        )
        self.cases = MetricCounter(
            "igo_gateway_notice_cases",
            "Cases noticed in digests that were delivered, by channel.",
            ["channel"],
            registry=registry,
        )


class Notifier:
    """Makes and sends the digests, one process at a time (the notices lease)."""

    def __init__(
        self,
        store: NoticeStore,
        cases: Callable[[], Awaitable[list[Case]]],
        channels: Sequence[tuple[NoticeChannel, Transport]],
        lock: JobLock,
        *,
        now: Callable[[], datetime],
        admin_url: str,
        max_listed: int = 100,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex[:16],
        metrics: NoticeMetrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._store = store
        self._cases = cases
        self._channels = tuple(channels)
        self._lock = lock
        self._now = now
        self._admin_url = admin_url
        self._max_listed = max_listed
        self._new_id = new_id

    async def run_once(self) -> dict[str, int]:
        """One digest per channel with news; per channel the number of cases delivered
        (a channel that failed is left out). Nothing when another process sends now."""
        try:
            await self._lock.acquire(wait=False)
        except JobBusyError as busy:
            log.info("notices skipped this time: {why}", why=str(busy))
            return {}
        try:
            unconfirmed = await self._store.settle_unfinished(self._now())
            if unconfirmed:
                log.warn(
                    "{count} case notice(s) of a digest whose sending was cut off are marked "
                    "unconfirmed and not sent again",
                    count=unconfirmed,
                )
            cases = await self._cases()
            delivered: dict[str, int] = {}
            for channel, transport in self._channels:
                count = await self._channel(channel, transport, cases)
                if count:
                    delivered[channel.name] = count
            return delivered
        finally:
            await self._lock.release()

    async def _channel(
        self, channel: NoticeChannel, transport: Transport, cases: list[Case]
    ) -> int:
        noticed = await self._store.noticed(channel.name)
        made = build_digest(
            channel,
            cases,
            noticed,
            admin_url=self._admin_url,
            made_at=self._now(),
            digest_id=self._new_id(),
            max_listed=self._max_listed,
        )
        if made is None:
            return 0
        digest, covered = made
        if not await self._store.begin(channel.name, digest.id, covered, digest.made_at):
            log.warn(
                "notice digest {digest} over {channel} overlapped another; not sent",
                digest=digest.id,
                channel=channel.name,
            )
            return 0
        try:
            await transport.deliver(digest)
        except DeliveryUncertainError as exc:
            await self._store.settle_unfinished(self._now())
            self._count(channel, "uncertain")
            log.warn(
                "notice digest {digest} over {channel} ({count} case(s)) may not have "
                "arrived ({error}); its cases are not sent again",
                digest=digest.id,
                channel=channel.name,
                count=len(covered),
                error=_error_text(exc),
            )
            return 0
        except Exception as exc:
            await self._store.failed(digest.id)
            self._count(channel, "failed")
            log.warn(
                "notice digest {digest} over {channel} ({count} case(s)) was not delivered "
                "({error}); its cases go in the next digest",
                digest=digest.id,
                channel=channel.name,
                count=len(covered),
                error=_error_text(exc),
            )
            return 0
        await self._store.sent(digest.id, self._now())
        self._count(channel, "sent", len(covered))
        log.info(
            "notice digest {digest} over {channel}: {count} new case(s)",
            digest=digest.id,
            channel=channel.name,
            count=len(covered),
        )
        return len(covered)

    def _count(self, channel: NoticeChannel, outcome: str, cases: int = 0) -> None:
        if self._metrics is None:
            return
        self._metrics.digests.labels(channel.name, outcome).inc()
        if cases:
            self._metrics.cases.labels(channel.name).inc(cases)


def _error_text(exc: Exception) -> str:
    """The error's kind and first line, shortened: a digest holds no client data, so
    neither can a server's answer to it."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
