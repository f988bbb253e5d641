"""The simulated insurer's memory: received files, the claims they are, retour queues.

No I/O and no reactor: the HTTP resource (:mod:`adapters.insurer_sim.resource`) calls it,
and tests can drive it directly. Everything is kept in memory — the simulator is a
rehearsal partner; restarting it starts afresh.

Idempotency, as an insurer (or VECOZO in front of it) keeps it: a sender that uploads the
same bytes again, or a file with a ``referentieId`` or (for an accepted claim) a
factuurnummer it used before, gets the first upload's receipt back and no second claim is
booked. The same ``referentieId`` with *other* bytes is a conflict. A file rejected whole
(0001) was never booked, so its factuurnummer may be used again by a corrected file.
"""

from __future__ import annotations

import enum
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from adapters.insurer_sim.config import SimConfig, SimFaults
from adapters.insurer_sim.rules import Judgement, judge
from gateway.ei import LayoutRegistry
from gateway.errors import ErrorKind, GatewayError
from gateway.loading import describe
from gateway.vsp import as_uuid, retour_reference

__all__ = [
    "ConflictError",
    "QueuedRetour",
    "ReceivedFile",
    "SimulatedInsurer",
    "UploadFault",
]

CONFIRMED = "ontvangst_bevestigd"
SERVICE_REJECTION = "Bericht afgekeurd door de dienst (gesimuleerd)."


class UploadFault(enum.Enum):
    NONE = "none"
    FAIL = "fail"  # answer 5xx, store nothing
    STALL = "stall"  # store, then hold the answer back
    CUT = "cut"  # store, then cut the connection without an answer
    SERVICE_REJECT = "service_reject"  # take it (204), then reject it at service level


class ConflictError(GatewayError):
    """A ``traceerId`` or ``referentieId`` (``field``) reused for other bytes."""

    kind = ErrorKind.CONFLICT

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, code=f"{field.lower()}-hergebruikt")
        self.field = field


@dataclass(slots=True)
class ReceivedFile:
    traceer_id: str
    conversatie_id: str
    sender: str
    sha256: str
    size: int
    reference_id: str | None
    filename: str | None
    received_at: datetime
    judgement: Judgement
    retour_id: str | None  # None: rejected by the service, no retour will come
    repeats: int = 0
    service_rejection: tuple[str, ...] = ()  # the meldingen codes of a service rejection

    def as_json(self) -> dict[str, Any]:
        j = self.judgement
        return {
            "traceerId": self.traceer_id,
            "conversatieId": self.conversatie_id,
            "afzender": self.sender,
            "referentieId": self.reference_id,
            "factuurnummer": j.invoice_number,
            "berichtType": j.standard,
            "sha256": self.sha256,
            "ontvangenOp": self.received_at.isoformat(),
            "herhaald": self.repeats,
            "claim": self.booked,
            "afgekeurdDoorDienst": list(self.service_rejection),
            "retourcodes": list(j.codes),
            "regels": j.lines,
            "toegekend": j.granted_lines,
            "afgewezen": j.rejected_lines,
            "toegekendBedrag": j.granted_total,
            "regelcodes": sorted(set(j.line_codes)),
            "retourTraceerId": self.retour_id,
        }

    @property
    def booked(self) -> bool:
        """Whether it is a claim the insurer booked."""
        return self.judgement.accepted and not self.service_rejection


@dataclass(slots=True)
class QueuedRetour:
    traceer_id: str
    recipient: str
    conversatie_id: str
    reply_to: str
    standard: str
    payload: bytes
    created_at: datetime
    available_at: datetime
    confirmed_at: datetime | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()

    @property
    def filename(self) -> str:
        return f"{self.standard}-{self.reply_to}.asc"

    def as_json(self) -> dict[str, Any]:
        return {
            "traceerId": self.traceer_id,
            "conversatieId": self.conversatie_id,
            "alsAntwoordOp": self.reply_to,
            "referentieId": None,
            "berichtType": self.standard,
            "bestandsnaam": self.filename,
            "grootte": len(self.payload),
            "checksum": {"algoritme": "SHA-256", "waarde": self.sha256},
            "status": CONFIRMED if self.confirmed_at else "klaargezet",
            "aangemaaktOp": self.created_at.isoformat(),
            "ontvangstBevestigdOp": self.confirmed_at.isoformat() if self.confirmed_at else None,
        }


@dataclass(slots=True)
class _Sender:
    by_sha: dict[str, ReceivedFile] = field(default_factory=dict)
    by_reference: dict[str, ReceivedFile] = field(default_factory=dict)
    by_invoice: dict[str, ReceivedFile] = field(default_factory=dict)


class SimulatedInsurer:
    """One simulated insurer (see the module docs). ``clock`` gives the current time."""

    def __init__(
        self,
        config: SimConfig,
        registry: LayoutRegistry,
        clock: Callable[[], datetime],
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.config = config
        self.faults = config.faults
        self._registry = registry
        self.registry = registry
        self._clock = clock
        self._new_id = new_id
        self._senders: dict[str, _Sender] = {}
        self._files: dict[str, ReceivedFile] = {}
        self._retours: dict[str, QueuedRetour] = {}
        self.uploads = 0
        self._faulted = 0
        self.received: list[dict[str, Any]] = []
        """Every upload that reached :meth:`receive`, in order: its ``referentieId``,
        SHA-256, the file it was taken as, and whether it was new — what a test needs to
        prove that no claim reached the insurer twice under two ids."""

    # --- faults ------------------------------------------------------------------------------

    def set_faults(self, faults: SimFaults) -> None:
        """Replace the faults; counting starts again from the next upload."""
        self.faults = faults
        self._faulted = self.uploads

    def next_upload_fault(self) -> UploadFault:
        """Count one upload and say how to misbehave on it."""
        self.uploads += 1
        n = self.uploads - self._faulted
        if n <= self.faults.fail_first:
            return UploadFault.FAIL
        if n <= self.faults.fail_first + self.faults.stall_first:
            return UploadFault.STALL
        n -= self.faults.fail_first + self.faults.stall_first
        if n <= self.faults.cut_first:
            return UploadFault.CUT
        if n <= self.faults.cut_first + self.faults.service_reject_first:
            return UploadFault.SERVICE_REJECT
        return UploadFault.NONE

    # --- receiving ---------------------------------------------------------------------------

    def receive(
        self,
        sender: str,
        payload: bytes,
        *,
        reference_id: str | None = None,
        conversatie_id: str | None = None,
        filename: str | None = None,
        traceer_id: str | None = None,
        service_reject: bool = False,
    ) -> tuple[ReceivedFile, bool]:
        """Take one upload; the file it is and whether it is new (False: a repeat).

        With ``service_reject`` a new file is rejected by the service (see
        :class:`~adapters.insurer_sim.config.SimFaults`): kept, but neither booked nor
        answered with a retour.

        ``traceer_id`` is the sender's own id of the message (VECOZO's traceerId): the same
        one again with the same bytes is a repeat; with other bytes, or one another sender
        used, a :class:`ConflictError`. Without one the insurer gives the file its own."""
        sha = hashlib.sha256(payload).hexdigest()
        known = self._senders.setdefault(sender, _Sender())
        first = known.by_sha.get(sha)
        if traceer_id is not None and traceer_id in self._files:
            taken = self._files[traceer_id]
            if taken.sender != sender or taken.sha256 != sha:
                self._note(sender, reference_id, sha, None, "conflict")
                raise ConflictError(
                    "traceerId", f"traceerId {traceer_id} was used before for another file"
                )
            first = taken
        if reference_id is not None and reference_id in known.by_reference:
            by_ref = known.by_reference[reference_id]
            if by_ref.sha256 != sha:
                self._note(sender, reference_id, sha, None, "conflict")
                raise ConflictError(
                    "referentieId",
                    f"referentieId {reference_id!r} was used before for another file",
                )
            first = by_ref
        if first is None:
            now = self._clock()
            traceer_id = traceer_id or self._new_id()
            judgement = judge(
                self._registry,
                payload,
                self.config.rules,
                uzovi=self.config.uzovi,
                insurer_reference=retour_reference(traceer_id),
                today=now.date(),
                sender=sender,
            )
            invoice = judgement.invoice_number
            if (
                judgement.accepted
                and not service_reject
                and invoice is not None
                and invoice in known.by_invoice
            ):
                first = known.by_invoice[invoice]
            else:
                booked = self._book(
                    sender,
                    payload,
                    sha,
                    traceer_id,
                    judgement,
                    now,
                    reference_id,
                    conversatie_id,
                    filename,
                    self.faults.service_reject_codes if service_reject else (),
                )
                self._note(sender, reference_id, sha, booked, "booked")
                return booked, True
        first.repeats += 1
        if reference_id is not None:
            known.by_reference.setdefault(reference_id, first)
        known.by_sha.setdefault(sha, first)
        self._note(sender, reference_id, sha, first, "repeated")
        return first, False

    def _note(
        self,
        sender: str,
        reference_id: str | None,
        sha: str,
        taken_as: ReceivedFile | None,
        outcome: str,
    ) -> None:
        self.received.append(
            {
                "afzender": sender,
                "referentieId": reference_id,
                "sha256": sha,
                "traceerId": taken_as.traceer_id if taken_as else None,
                "factuurnummer": taken_as.judgement.invoice_number if taken_as else None,
                "uitkomst": outcome,
            }
        )

    def _book(
        self,
        sender: str,
        payload: bytes,
        sha: str,
        traceer_id: str,
        judgement: Judgement,
        now: datetime,
        reference_id: str | None,
        conversatie_id: str | None,
        filename: str | None,
        service_rejection: tuple[str, ...] = (),
    ) -> ReceivedFile:
        known = self._senders[sender]
        conversation = conversatie_id or traceer_id
        retour: QueuedRetour | None = QueuedRetour(
            traceer_id=self._new_id(),
            recipient=sender,
            conversatie_id=conversation,
            reply_to=traceer_id,
            standard=judgement.retour_standard,
            payload=judgement.retour,
            created_at=now,
            available_at=now + timedelta(seconds=self.faults.retour_delay_seconds),
        )
        if service_rejection:
            retour = None  # the insurer never sees it
        received = ReceivedFile(
            traceer_id=traceer_id,
            conversatie_id=conversation,
            sender=sender,
            sha256=sha,
            size=len(payload),
            reference_id=reference_id,
            filename=filename,
            received_at=now,
            judgement=judgement,
            retour_id=retour.traceer_id if retour is not None else None,
            service_rejection=tuple(service_rejection),
        )
        self._files[traceer_id] = received
        if retour is not None:
            self._retours[retour.traceer_id] = retour
        known.by_sha[sha] = received
        if reference_id is not None:
            known.by_reference[reference_id] = received
        if received.booked and judgement.invoice_number is not None:
            known.by_invoice[judgement.invoice_number] = received
        return received

    # --- the sender's view -------------------------------------------------------------------

    def waiting(self, recipient: str, *, include_confirmed: bool = False) -> list[QueuedRetour]:
        now = self._clock()
        return [
            r
            for r in self._retours.values()
            if r.recipient == recipient
            and r.available_at <= now
            and (include_confirmed or r.confirmed_at is None)
        ]

    def retour(self, recipient: str, traceer_id: str) -> QueuedRetour | None:
        found = self._retours.get(traceer_id)
        if found is None or found.recipient != recipient or found.available_at > self._clock():
            return None
        return found

    def sent(self, sender: str, traceer_id: str) -> ReceivedFile | None:
        found = self._files.get(traceer_id)
        return found if found is not None and found.sender == sender else None

    def confirm(self, recipient: str, traceer_id: str) -> bool:
        found = self.retour(recipient, traceer_id)
        if found is None or found.confirmed_at is not None:
            return False
        found.confirmed_at = self._clock()
        return True

    def status_entries(self, caller: str) -> list[dict[str, Any]]:
        """Berichtstatus v3 of every message of ``caller``: the files it sent (booked:
        VerwerkingVoltooid; rejected: AfgekeurdDoorDienst with the retourcodes, or with
        the service's codes when the service rejected it) and the
        retours for it (WordtAangeboden, Bezorgd once confirmed). ``_stroom`` is the
        (standard, actie) the resource names the berichtstroom after."""
        entries: list[dict[str, Any]] = []
        for received in self._files.values():
            if received.sender != caller:
                continue
            j = received.judgement
            at = received.received_at.isoformat()
            entry: dict[str, Any] = {
                "referentiegegevens": _references(
                    received.traceer_id, received.conversatie_id, None, received.reference_id
                ),
                "_stroom": (j.standard or "onbekend", "Declareren"),
                "berichtstatus": "VerwerkingVoltooid" if j.accepted else "AfgekeurdDoorDienst",
                "berichtstatusGewijzigdOp": at,
                "berichtOntvangenOp": at,
            }
            if received.service_rejection:
                entry["berichtstatus"] = "AfgekeurdDoorDienst"
                entry["meldingen"] = [
                    {"code": code, "omschrijving": SERVICE_REJECTION}
                    for code in received.service_rejection
                ]
            elif not j.accepted:
                entry["meldingen"] = [
                    {"code": code, "omschrijving": describe(code)} for code in j.codes[:100]
                ] or [{"code": "0001", "omschrijving": describe("0001")}]
            entries.append(entry)
        now = self._clock()
        for retour in self._retours.values():
            if retour.recipient != caller or retour.available_at > now:
                continue
            confirmed = retour.confirmed_at
            entries.append(
                {
                    "referentiegegevens": _references(
                        retour.traceer_id, retour.conversatie_id, retour.reply_to, None
                    ),
                    "_stroom": (retour.standard, "Retourneren"),
                    "berichtstatus": "Bezorgd" if confirmed else "WordtAangeboden",
                    "berichtstatusGewijzigdOp": (confirmed or retour.created_at).isoformat(),
                    "berichtOntvangenOp": retour.created_at.isoformat(),
                }
            )
        return entries

    # --- for tests and rehearsals ------------------------------------------------------------

    def claims_json(self) -> dict[str, Any]:
        files = sorted(self._files.values(), key=lambda f: f.received_at)
        return {
            "uzovi": self.config.uzovi,
            "uploads": self.uploads,
            "bestanden": len(files),
            "claims": sum(1 for f in files if f.booked),
            "afgekeurd": sum(1 for f in files if not f.booked),
            "files": [f.as_json() for f in files],
            "ontvangen": list(self.received),
        }


def _references(
    traceer_id: str, conversatie_id: str, reply_to: str | None, reference: str | None
) -> dict[str, str]:
    found = {"traceerId": as_uuid(traceer_id), "conversatieId": as_uuid(conversatie_id)}
    if reply_to:
        found["alsAntwoordOp"] = as_uuid(reply_to)
    if reference and len(reference) <= 150:
        found["referentieId"] = reference
    return found
