"""Keeps the operations gauges current from the gateway itself, whether or not anyone
calls ``/readyz``: every few seconds it checks that the store answers
(``igo_gateway_store_up``) and, when it does, refreshes the outbound queue's gauges — files
per insurer and state (``igo_gateway_outbound_files``) and the age of the oldest file
without a retour (``igo_gateway_outbound_oldest_unanswered_age_seconds``), which the
``IgoGatewayClaimsStuck`` alert watches.

A store that stops (or starts) answering is logged once, at the change, not at every check.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from gateway.metrics import Metrics
from gateway.ports.outbox import OutboundState, QueueReads

__all__ = ["STORE_CHECK_SECONDS", "OperationsWatch", "watch_operations"]

log = Logger()

STORE_CHECK_SECONDS = 15.0


class OperationsWatch:
    def __init__(
        self,
        metrics: Metrics,
        check_store: Callable[[], Awaitable[None]],
        now: Callable[[], datetime],
        outbox: QueueReads | None = None,
    ) -> None:
        self._metrics = metrics
        self._check_store = check_store
        self._now = now
        self._outbox = outbox
        self._up: bool | None = None
        self._insurers: set[str] = set()

    async def run_once(self) -> None:
        """One check: the store, then (when it answers) the outbound queue."""
        try:
            await self._check_store()
        except Exception as exc:  # any failure means: the store does not answer
            self._metrics.store_available.set(0)
            if self._up is not False:
                log.warn("the store does not answer ({kind})", kind=type(exc).__name__)
            self._up = False
            return
        self._metrics.store_available.set(1)
        if self._up is False:
            log.info("the store answers again")
        self._up = True
        if self._outbox is not None:
            try:
                await self._refresh_outbound(self._outbox)
            except Exception as exc:  # the next check tries again
                log.warn(
                    "refreshing the outbound queue's metrics failed ({kind})",
                    kind=type(exc).__name__,
                )

    async def _refresh_outbound(self, outbox: QueueReads) -> None:
        counts = await outbox.counts()
        oldest = await outbox.oldest_unanswered()
        now = self._now()
        insurers = {insurer for insurer, _ in counts} | set(oldest) | self._insurers
        for insurer in sorted(insurers):
            for state in OutboundState:
                self._metrics.outbound_files.labels(insurer, state.value).set(
                    counts.get((insurer, state), 0)
                )
            made = oldest.get(insurer)
            age = max(0.0, (now - made).total_seconds()) if made is not None else 0.0
            self._metrics.outbound_oldest_unanswered.labels(insurer).set(age)
        self._insurers = insurers


def watch_operations(
    watch: OperationsWatch, reactor: Any, interval: float = STORE_CHECK_SECONDS
) -> LoopingCall:
    """Run ``watch`` now and every ``interval`` seconds."""
    task = LoopingCall(lambda: Deferred.fromCoroutine(watch.run_once()))
    task.clock = reactor
    task.start(interval, now=True).addErrback(
        lambda f: log.warn("the operations watch stopped: {error}", error=f.getErrorMessage())
    )
    return task
