"""The retour collector: fetches insurers' retour files, keeps them, and ties each to the
file it answers — never by guessing.

A round (:meth:`RetourCollector.run_once`) asks an insurer's link for what waits, and for
each retour: checks it with the codec, matches it to an outbound file by the insurer's id
of that file (``alsAntwoordOp``), else by conversation, else by the factuurnummer in its
01 record; journals it as a message from the insurer (answering the matched file, or
marked unmatched for the administrator); marks the matched file answered; and only then
confirms receipt to the insurer. A valid retour is handed on with the records its check
read, so that unpacking does not read the file again. A retour that is malformed or
matches nothing is kept and flagged, and changes nothing else; so is a file in a
declaration standard (an insurer sends retours only), technically rejected with 0010 and
tied to nothing. Fetching again what was stored but not yet confirmed (a crash in between)
finds it stored already and only confirms it.

With ``follow_up`` set for an insurer whose link can follow up single files
(:class:`~gateway.ports.insurer.FollowUpLink`), a round then asks after the files delivered to
it that have no retour yet, each at most once per interval over all gateway instances
(:meth:`~gateway.ports.outbox.Outbox.awaiting_answer`): first for the retours answering that
file (kept and confirmed as above), and when there are none for its status at the exchange
service. A file the service rejected (no retour will come) is parked with the codes of
the service's meldingen, a case for the administrator; parking is conditional, so two
instances that both see the rejection park it once.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta

from twisted.logger import Logger

from gateway import crashpoints
from gateway.ei import LayoutRegistry, Record, ValidationResult, validate_bytes
from gateway.ei.kinds import require_kind
from gateway.metrics import Metrics
from gateway.ports.insurer import (
    FetchedRetour,
    FollowUpLink,
    InsurerLink,
    InsurerLinkError,
    ServiceStatus,
)
from gateway.ports.messages import (
    Direction,
    MessageStatus,
    MessageStore,
    NewMessage,
    NewStatus,
)
from gateway.ports.outbox import Outbound, Outbox
from gateway.ports.outcomes import CollectedRetour
from gateway.ports.runtime import RunInThread, run_inline

__all__ = ["RetourCollector"]

log = Logger()

DEFAULT_FOLLOW_UP_BATCH = 20


class RetourCollector:
    def __init__(
        self,
        store: MessageStore,
        outbox: Outbox,
        links: Mapping[str, InsurerLink],
        registry: LayoutRegistry,
        *,
        now: Callable[[], datetime],
        run_in_thread: RunInThread = run_inline,
        metrics: Metrics | None = None,
        on_retour: Callable[[CollectedRetour], Awaitable[None]] | None = None,
        follow_up: Mapping[str, timedelta] | None = None,
        follow_up_batch: int = DEFAULT_FOLLOW_UP_BATCH,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self._new_id = new_id
        self._store = store
        self._outbox = outbox
        self._links = dict(links)
        self.insurers = sorted(self._links)
        self._registry = registry
        self._now = now
        self._run_in_thread = run_in_thread
        self._metrics = metrics
        self._on_retour = on_retour
        self._follow_up = dict(follow_up or {})
        self._follow_up_batch = follow_up_batch

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
        collected = [await self._take(insurer, link, retour) for retour in waiting]
        every = self._follow_up.get(insurer)
        if every is not None and isinstance(link, FollowUpLink):
            collected += await self._follow_up_round(insurer, link, every)
        return collected

    async def _take(
        self, insurer: str, link: InsurerLink, retour: FetchedRetour
    ) -> CollectedRetour:
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
        return item

    async def _follow_up_round(
        self, insurer: str, link: FollowUpLink, every: timedelta
    ) -> list[CollectedRetour]:
        """Ask after the delivered files of ``insurer`` still without a retour whose turn
        it is (see the module docs); an exchange that fails ends the round."""
        items = await self._outbox.awaiting_answer(
            insurer, self._now(), every, self._follow_up_batch
        )
        collected: list[CollectedRetour] = []
        for item in items:
            remote = item.remote_id
            if remote is None:  # pragma: no cover - only delivered files are handed out
                continue
            try:
                retours = await link.answers_to(remote)
                status = None if retours else await link.status_of(remote)
            except InsurerLinkError as error:
                log.warn(
                    "cannot follow up {traceer_id} at insurer {insurer}: {reason}",
                    traceer_id=item.traceer_id,
                    insurer=insurer,
                    reason=error.reason.value,
                )
                break
            for retour in retours:
                collected.append(await self._take(insurer, link, retour))
            if status is not None and status.rejected:
                await self._rejected(item, status)
        return collected

    async def _rejected(self, item: Outbound, status: ServiceStatus) -> None:
        codes = ", ".join(status.codes)
        error = f"rejected by the exchange service ({status.status})" + (
            f", meldingen: {codes}" if codes else ""
        )
        if not await self._outbox.rejected(item.traceer_id, error, self._now()):
            return  # answered meanwhile, or parked by another instance
        if self._metrics is not None:
            self._metrics.outbound_attempts.labels(item.insurer, "rejected").inc()
        log.warn(
            "parked {traceer_id} for insurer {insurer}: {error}",
            traceer_id=item.traceer_id,
            insurer=item.insurer,
            error=error,
        )

    async def _check(self, payload: bytes) -> tuple[ValidationResult, list[Record]]:
        """The codec's verdict on a retour, and the records it read on the way (the
        unpacker's input: the file is read once)."""

        def check() -> tuple[ValidationResult, list[Record]]:
            records: list[Record] = []
            result = validate_bytes(self._registry, payload, on_record=records.append)
            return require_kind(result, "retour"), records

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
        result, records = await self._check(retour.payload)
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
                traceer_id=self._new_id(),
                conversatie_id=answers.conversatie_id if answers else self._new_id(),
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
        collected = CollectedRetour(
            message,
            answers if result.valid else None,
            result.valid,
            records if result.valid else None,
        )
        if self._on_retour is not None and collected.answers is not None:
            await self._on_retour(collected)
        return collected
