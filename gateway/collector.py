"""The retour collector: fetches insurers' retour files, keeps them, and ties each to the
file it answers — never by guessing.

A round (:meth:`RetourCollector.run_once`) asks an insurer's link for what waits, and for
each retour: checks it with the codec, matches it to an outbound file by the insurer's id
of that file (``alsAntwoordOp``), else by conversation, else by the factuurnummer in its
01 record; journals it as a message from the insurer (answering the matched file, or
marked unmatched for the administrator); marks the matched file answered; and only then
confirms receipt to the insurer. A retour that is malformed or matches nothing is kept and
flagged, and changes nothing else; so is a file in a declaration standard (an insurer
sends retours only), technically rejected with 0010 and tied to nothing. Fetching again
what was stored but not yet confirmed (a crash in between) finds it stored already and
only confirms it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from twisted.logger import Logger

from gateway import crashpoints
from gateway.ei import LayoutRegistry, ValidationResult, validate_bytes
from gateway.ei.kinds import require_kind
from gateway.insurer import FetchedRetour, InsurerLink, InsurerLinkError
from gateway.metrics import Metrics
from gateway.outbox import Outbound, Outbox
from gateway.store import Direction, Message, MessageStatus, MessageStore, NewMessage, NewStatus

__all__ = ["CollectedRetour", "RetourCollector"]

log = Logger()

RunInThread = Callable[[Callable[[], ValidationResult]], Awaitable[ValidationResult]]


@dataclass(frozen=True, slots=True)
class CollectedRetour:
    message: Message
    answers: Outbound | None  # the outbound file it answers; None: unmatched
    valid: bool


class RetourCollector:
    def __init__(
        self,
        store: MessageStore,
        outbox: Outbox,
        links: Mapping[str, InsurerLink],
        registry: LayoutRegistry,
        *,
        now: Callable[[], datetime],
        run_in_thread: RunInThread | None = None,
        metrics: Metrics | None = None,
        on_retour: Callable[[CollectedRetour], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._outbox = outbox
        self._links = dict(links)
        self.insurers = sorted(self._links)
        self._registry = registry
        self._now = now
        self._run_in_thread = run_in_thread
        self._metrics = metrics
        self._on_retour = on_retour

    async def run_once(self, insurer: str) -> list[CollectedRetour]:
        link = self._links[insurer]
        try:
            waiting = await link.fetch()
        except InsurerLinkError as error:
            log.warn(
                "cannot fetch retours from insurer {insurer}: {reason}",
                insurer=insurer,
                reason=error.reason.value,
            )
            return []
        collected = []
        for retour in waiting:
            item = await self.keep(insurer, retour)
            try:
                await link.confirm(retour)
            except InsurerLinkError as error:
                # Kept already; fetched and recognised again next round.
                log.warn(
                    "cannot confirm retour {remote} to insurer {insurer}: {reason}",
                    remote=retour.remote_id,
                    insurer=insurer,
                    reason=error.reason.value,
                )
            collected.append(item)
        return collected

    async def _check(self, payload: bytes) -> ValidationResult:
        def check() -> ValidationResult:
            return require_kind(validate_bytes(self._registry, payload), "retour")

        if self._run_in_thread is None:
            return check()
        return await self._run_in_thread(check)

    async def _match(
        self, insurer: str, retour: FetchedRetour, result: ValidationResult
    ) -> Outbound | None:
        header = result.header
        invoice = header.text("invoice_number") if header is not None and result.valid else None
        return await self._outbox.find(
            insurer,
            remote_id=retour.in_reply_to,
            conversatie_id=retour.conversation_id,
            invoice_number=invoice or None,
        )

    async def keep(self, insurer: str, retour: FetchedRetour) -> CollectedRetour:
        """Check, match, journal and hand on one retour (fetched, or pushed by the
        insurer to the gateway's API)."""
        result = await self._check(retour.payload)
        # A declaration standard from an insurer is no answer to anything, whatever ids it
        # names: kept and flagged only.
        wrong_kind = result.layout is not None and result.layout.kind != "retour"
        answers = None if wrong_kind else await self._match(insurer, retour, result)
        now = self._now()
        sha256 = hashlib.sha256(retour.payload).hexdigest()
        if not result.valid:
            first = result.findings[0]
            status = NewStatus(
                MessageStatus.REJECTED,
                first.retourcode,
                f"Retourbestand van de verzekeraar is technisch onjuist: {first.message}",
            )
        elif answers is None:
            status = NewStatus(
                MessageStatus.RECEIVED,
                None,
                "Retourbestand hoort bij geen verstuurd bestand: ter beoordeling.",
            )
        else:
            status = NewStatus(MessageStatus.RECEIVED, None, "Retourbestand ontvangen.")
        message = await self._store.put_message(
            NewMessage(
                traceer_id=str(uuid.uuid4()),
                conversatie_id=answers.conversatie_id if answers else str(uuid.uuid4()),
                direction=Direction.FROM_INSURER,
                party=insurer,
                payload=retour.payload,
                sha256=sha256,
                created_at=now,
                status=status,
                idempotency_key=f"retour:{insurer}:{retour.remote_id}:{sha256}",
                filename=retour.filename,
                standard=result.layout.standard if result.layout else retour.standard,
                reply_to=answers.traceer_id if answers else None,
                reference_id=retour.remote_id,
            )
        )
        crashpoints.reached("retour-stored")
        if answers is not None and result.valid:
            await self._outbox.answered(answers.traceer_id, now)
            crashpoints.reached("answered")
        outcome = (
            "unmatched" if answers is None else ("malformed" if not result.valid else "matched")
        )
        if self._metrics is not None:
            self._metrics.retours_received.labels(insurer, outcome).inc()
        log.info(
            "retour {traceer_id} from insurer {insurer}: {outcome}{answers}",
            traceer_id=message.traceer_id,
            insurer=insurer,
            outcome=outcome,
            answers=f", answers {answers.traceer_id}" if answers else "",
        )
        collected = CollectedRetour(message, answers if result.valid else None, result.valid)
        if self._on_retour is not None and collected.answers is not None:
            await self._on_retour(collected)
        return collected
