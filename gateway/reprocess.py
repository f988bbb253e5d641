"""Reprocessing an upload after a configuration fix, as integration engines offer for
failed messages: audited, and never a second copy of its lines.

What it means depends on where the upload stands:

* **Rejected at intake** (status *afgekeurd*): its stored file is checked again with the
  layouts the gateway has now. Still invalid: nothing changes (the attempt is audited,
  with the first retourcode). Valid now, and its factuurnummer not used meanwhile by
  another upload of the payee: in one transaction its lines are stored (once: a line's key
  is its upload and record number), the upload takes its factuurnummer, and its status
  history gets *ontvangen* ("opnieuw verwerkt … goedgekeurd"), so its intake case resolves
  itself and the next bundling run decides its lines like any others. The participant
  keeps the technical rejection it had; its lines are answered in a later retour. Valid
  now but the factuurnummer taken: it stays rejected (0030).
* **Accepted**: its lines are read from its file again. A line missing from the store is
  added; a line still **open** (not yet decided for good: waiting or new) gets the values
  the file holds now (e.g. codes a reader since corrected had missed); a line the rules
  **returned with 9001** ("declare it yourself": outside a participation period, a code
  not in the catalogue, no contract) is opened again — it never went to an insurer — and
  decided afresh. Lines absorbed into a claim, forwarded to an insurer or cancelled are
  left as they are: the insurer has them; their cases (correct and resubmit, break the
  bundle) are the way to change them. A file that no longer passes the checks is refused
  and nothing changes.

Every line changed gets a new revision, so a bundling run that read it before does not
record its outcome. After a change a bundling run decides at once (the catalogue and the
participation periods of the configuration as it is now); reprocessing changes neither.

Who: an operator or administrator (``resolve_cases``), with a reason, which the audit
entry keeps (never client data).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Final

from gateway.admin.accounts import Actor, Permission
from gateway.admin.audit import AuditAction, NewAuditEntry
from gateway.admin.cases import MAX_REASON_LENGTH, ActionRefusedError
from gateway.ei import LayoutRegistry
from gateway.errors import ErrorKind, NotFoundError
from gateway.intake import payee_of
from gateway.ports.messages import Direction, MessageStore
from gateway.ports.reprocess import (
    ReprocessPlan,
    ReprocessResult,
    ReprocessStore,
)
from gateway.ports.runtime import RunInThread, run_inline
from gateway.upload_checks import check_upload

__all__ = [
    "Reprocessor",
]

RETURN_TO_DECLARE_ITSELF: Final = "9001"


class Reprocessor:
    def __init__(
        self,
        messages: MessageStore,
        store: ReprocessStore,
        registry: LayoutRegistry,
        *,
        now: Callable[[], datetime],
        run_in_thread: RunInThread = run_inline,
        after_change: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._messages = messages
        self._store = store
        self._registry = registry
        self._now = now
        self._run_in_thread = run_in_thread
        self.after_change = after_change

    async def reprocess(self, traceer_id: str, actor: Actor, reason: str) -> ReprocessResult:
        """Check upload ``traceer_id`` again and store what follows (see the module)."""
        if not actor.may(Permission.RESOLVE_CASES):
            raise ActionRefusedError(
                "geen-recht",
                f"Rol {actor.role.value} mag geen bestanden opnieuw verwerken.",
                kind=ErrorKind.NOT_ALLOWED,
            )
        reason = reason.strip()
        if not reason:
            raise ActionRefusedError("reden-ontbreekt", "Vul een reden in.", kind=ErrorKind.INVALID)
        if len(reason) > MAX_REASON_LENGTH:
            raise ActionRefusedError(
                "reden-te-lang",
                f"Een reden is hoogstens {MAX_REASON_LENGTH} tekens.",
                kind=ErrorKind.INVALID,
            )
        message = await self._messages.get_message(traceer_id)
        if message is None or message.direction is not Direction.FROM_PARTICIPANT:
            raise NotFoundError(traceer_id)
        payload = await self._messages.payload(message.sha256)
        if payload is None:
            raise ActionRefusedError(
                "bestand-opgeschoond",
                "Het bestand is na de bewaartermijn opgeschoond; opnieuw verwerken kan niet.",
            )
        result, lines = await self._run_in_thread(
            lambda: check_upload(self._registry, payload, traceer_id, message.party)
        )
        header = result.header
        layout = result.layout
        valid = result.valid and layout is not None and layout.kind == "declaration"
        invoice = header.text("invoice_number") if header is not None and valid else None
        plan = ReprocessPlan(
            traceer_id=traceer_id,
            valid=valid,
            code=None if valid else (result.findings[0].retourcode if result.findings else None),
            lines=tuple(lines),
            standard=result.layout.standard if result.layout is not None else None,
            invoice_number=invoice or None,
            payee=payee_of(result) if invoice else None,
        )
        audit = NewAuditEntry(
            at=self._now(),
            actor=actor.name,
            role=actor.role.value,
            action=AuditAction.REPROCESS,
            subject=traceer_id,
            detail=reason,
            origin=actor.origin,
        )
        done = await self._store.apply(plan, audit)
        if done.changed and self.after_change is not None:
            await self.after_change()
        return done
