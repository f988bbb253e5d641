"""The forwarder: sends queued files to their insurers, at least once, never a second claim.

One queue per insurer, each worked on its own timer (:class:`gateway.schedule.PerInsurer`),
so one insurer being down or slow never holds up another. A round
(:meth:`Forwarder.run_once`) claims the insurer's due files — each under a lease, its
attempt counted — and sends them one by one through that insurer's
:class:`~gateway.ports.insurer.InsurerLink` with the file's stable id. After each attempt the
outcome is stored: delivered; due again later (the :class:`~gateway.insurer.RetryPolicy`'s
backoff with jitter); or parked with its last error for the administrator. A gateway that
dies mid-attempt leaves the file ``sending`` until its lease ends; then it is sent again
with the same id and the insurer recognises it.
"""

from __future__ import annotations

import random as random_module
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from twisted.logger import Logger

from gateway import crashpoints
from gateway.insurer import Park, RetryPolicy
from gateway.metrics import Metrics
from gateway.ports.insurer import InsurerLink, InsurerLinkError, OutboundFile
from gateway.ports.outbox import Outbound, Outbox

__all__ = ["Forwarder", "RoundResult"]

log = Logger()

DEFAULT_LEASE = timedelta(minutes=5)
DEFAULT_BATCH = 20


@dataclass(frozen=True, slots=True)
class RoundResult:
    delivered: int = 0
    retrying: int = 0
    parked: int = 0


class Forwarder:
    def __init__(
        self,
        outbox: Outbox,
        links: Mapping[str, InsurerLink],
        *,
        now: Callable[[], datetime],
        policy: RetryPolicy | None = None,
        policies: Mapping[str, RetryPolicy] | None = None,
        random: Callable[[], float] = random_module.random,
        lease: timedelta = DEFAULT_LEASE,
        leases: Mapping[str, timedelta] | None = None,
        batch: int = DEFAULT_BATCH,
        metrics: Metrics | None = None,
        states: dict[str, str] | None = None,
    ) -> None:
        self.states = states if states is not None else {}
        """Per insurer: ``ok`` after a delivery, ``failing`` after a failed attempt."""
        self._outbox = outbox
        self._links = dict(links)
        self._now = now
        self._policy = policy or RetryPolicy()
        self._policies = dict(policies or {})
        self._random = random
        self._lease = lease
        self._leases = dict(leases or {})
        self._batch = batch
        self._metrics = metrics

    @property
    def insurers(self) -> list[str]:
        return sorted(self._links)

    async def run_once(self, insurer: str) -> RoundResult:
        """Send what is due for ``insurer`` now; what happened."""
        link = self._links[insurer]
        lease = self._leases.get(insurer, self._lease)
        claimed = await self._outbox.claim_due(insurer, self._now(), lease, self._batch)
        delivered = retrying = parked = 0
        for item, payload in claimed:
            outcome = await self._attempt(link, item, payload)
            delivered += outcome == "delivered"
            retrying += outcome == "retrying"
            parked += outcome == "parked"
        if self._metrics is not None:
            for (name, state), count in (await self._outbox.counts()).items():
                if name == insurer:
                    self._metrics.outbound_files.labels(name, state.value).set(count)
        return RoundResult(delivered, retrying, parked)

    async def _attempt(self, link: InsurerLink, item: Outbound, payload: bytes) -> str:
        file = OutboundFile(
            message_id=item.traceer_id,
            insurer=item.insurer,
            sender=item.sender,
            standard=item.standard or "unknown",
            payload=payload,
            invoice_number=item.invoice_number,
            conversation_id=item.conversatie_id,
            filename=item.filename,
        )
        try:
            delivery = await link.send(file)
        except InsurerLinkError as error:
            return await self._failed(item, error)
        crashpoints.reached("claim-sent")
        await self._outbox.delivered(item.traceer_id, delivery.remote_id, self._now())
        crashpoints.reached("delivered")
        self.states[item.insurer] = "ok"
        self._count(item.insurer, "repeated" if delivery.repeated else "delivered")
        log.info(
            "delivered {traceer_id} to insurer {insurer} (attempt {attempt}{repeat})",
            traceer_id=item.traceer_id,
            insurer=item.insurer,
            attempt=item.attempts,
            repeat=", already there" if delivery.repeated else "",
        )
        return "delivered"

    async def _failed(self, item: Outbound, error: InsurerLinkError) -> str:
        now = self._now()
        self.states[item.insurer] = "failing"
        policy = self._policies.get(item.insurer, self._policy)
        decision = policy.after_failure(
            error,
            attempt=item.attempts,
            first_attempt_at=item.first_attempt_at or now,
            now=now,
            random=self._random,
        )
        if isinstance(decision, Park):
            await self._outbox.park(item.traceer_id, decision.last_error, now)
            self._count(item.insurer, "parked")
            log.warn(
                "parked {traceer_id} for insurer {insurer}: {why}; last error: {reason}",
                traceer_id=item.traceer_id,
                insurer=item.insurer,
                why=decision.why,
                reason=error.reason.value,
            )
            return "parked"
        await self._outbox.retry_at(item.traceer_id, decision.at, str(error), now)
        self._count(item.insurer, "failed")
        log.info(
            "attempt {attempt} of {traceer_id} to insurer {insurer} failed ({reason}); "
            "next at {at}",
            attempt=item.attempts,
            traceer_id=item.traceer_id,
            insurer=item.insurer,
            reason=error.reason.value,
            at=decision.at.isoformat(),
        )
        return "retrying"

    def _count(self, insurer: str, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.outbound_attempts.labels(insurer, outcome).inc()
