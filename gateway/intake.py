"""Intake: a participant's upload checked, journaled and acknowledged.

The service behind ``POST /berichten``. It checks who sent the file, runs the codec's
intake checks and prepares what is stored (hash, lines, message, any rejection file) in
one call off the reactor thread — or, with check workers (:class:`FileChecks`,
``[epd_api] check_processes``), has the checks and the hash done in a worker process and
builds the rest itself, checking the file itself whenever the workers cannot — and
stores the upload together with whatever answers it at once — a technical-rejection
retour for a file that fails the checks — in one transaction. The receipt is returned
only after that transaction is durable.

Rules:

* the upload's ``berichtMetadata`` is VECOZO's (:class:`gateway.vsp.BerichtMetadata`); its
  ``traceerId``, chosen by the sender, is the message's id and its ``conversatieId`` the
  message's conversation;
* the sender named in the metadata, and one of the zorgverlener / praktijk / instelling
  codes in the file's 01 record, must be the authenticated participant (else
  :class:`~gateway.ports.intake.IntakeRefusedError` of kind INVALID, and nothing is stored);
* the same traceerId from the same participant with the same bytes is a retry: it returns
  the first receipt and stores nothing; with other bytes, or a traceerId another message
  already has, the upload is refused (kind CONFLICT, nothing stored);
* a berichtstroom whose berichttype names a Vektis standard must name the file's own
  standard; the accepted berichttype/actie values are configuration (refused as INVALID
  otherwise);
* a file reusing a factuurnummer the payee used before is rejected with 0030;
* a participant sends declarations only: a retour standard (KZ302, VK302, ZH309) is
  rejected technically with 0010 (:mod:`gateway.ei.kinds`), its factuurnummer and lines
  never taken;
* a file that fails the checks is still journaled, with status "afgekeurd", and a
  technical-rejection retour (0001 plus the finding's code, only 01 and 99 records) waits
  in the sender's queue.

A refusal carries a kind, not an HTTP status: the EPD API and the portal answer both
kinds with 422, as VECOZO's API does (their ``STATUS_BY_KIND`` tables).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from gateway import crashpoints
from gateway.config import BerichtstroomConfig
from gateway.ei import (
    Finding,
    Layout,
    LayoutRegistry,
    ValidationResult,
    build_technical_rejection,
)
from gateway.errors import ErrorKind
from gateway.lines import DeclaredLine
from gateway.loading import describe
from gateway.metrics import Metrics
from gateway.ports.intake import (
    CheckedFile,
    FileChecks,
    FileCheckUnavailableError,
    IntakeRefusedError,
    Receipt,
    Upload,
)
from gateway.ports.messages import (
    Direction,
    Message,
    MessageStatus,
    MessageStore,
    NewMessage,
    NewStatus,
)
from gateway.ports.runtime import RunInThread
from gateway.upload_checks import check_upload
from gateway.vsp import BerichtMetadata, retour_reference

__all__ = [
    "BerichtMetadata",
    "Intake",
    "payee_of",
]

_Prepared = tuple[
    NewMessage,
    list[NewMessage],
    list[DeclaredLine],
    ValidationResult,
    tuple[Finding, ...],
    str | None,
    datetime,
]

# The retour standard a participant gets a technical rejection in when its file is so
# broken that its own standard cannot be read from it.
DEFAULT_RETOUR_BY_DISCIPLINE = {
    "hospital": "ZH309",
    "kraamzorg": "KZ302",
    "midwifery": "VK302",
}
_HEADER_CODES = ("zorgverlener_code", "praktijk_code", "instelling_code")


class Intake:
    def __init__(
        self,
        store: MessageStore,
        registry: LayoutRegistry,
        *,
        clock: Callable[[], datetime],
        run_in_thread: RunInThread,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        default_retour: Mapping[str, str] = DEFAULT_RETOUR_BY_DISCIPLINE,
        metrics: Metrics | None = None,
        berichtstroom: BerichtstroomConfig | None = None,
        checks: FileChecks | None = None,
    ) -> None:
        self._store = store
        self._checks = checks
        self._registry = registry
        self._clock = clock
        self._run_in_thread = run_in_thread
        self._new_id = new_id
        self._default_retour = default_retour
        self._metrics = metrics
        self._berichtstroom = berichtstroom or BerichtstroomConfig()
        self._standards = {layout.standard for layout in registry.standards()}

    async def receive(self, upload: Upload) -> Receipt:
        try:
            receipt = await self._receive(upload)
        except IntakeRefusedError as exc:
            if self._metrics is not None:
                self._metrics.refusals.labels(exc.code).inc()
            raise
        if self._metrics is not None:
            self._count(upload, receipt)
        return receipt

    def _count(self, upload: Upload, receipt: Receipt) -> None:
        assert self._metrics is not None
        m = self._metrics
        standard = receipt.standard or "unknown"
        if not receipt.created:
            outcome = "repeated"
        elif receipt.status is MessageStatus.REJECTED:
            outcome = "rejected"
            m.rejections.labels(receipt.code or "unknown").inc()
        else:
            outcome = "accepted"
        m.uploads.labels(standard, upload.participant, outcome).inc()
        m.upload_bytes.labels(upload.participant).inc(len(upload.payload))

    async def _receive(self, upload: Upload) -> Receipt:
        metadata = upload.metadata
        if metadata.routeringgegevens.afzender.code != upload.participant:
            raise IntakeRefusedError(
                ErrorKind.INVALID,
                "afzender-onjuist",
                "The afzender in berichtMetadata is not the participant of the client certificate.",
                "routeringgegevens.afzender.code",
            )
        self._check_flow_values(metadata)
        # A retry is checked like a first upload; the store then says whether the
        # traceerId is known (its first answer, or a refusal): one path for both, also
        # when two requests with one traceerId arrive at once. The file's checks and
        # hash run in a check worker when there is one (what is left, building the
        # message, is a few dozen microseconds); otherwise everything that depends on
        # the file alone (hash, checks, lines, the message and any rejection) is done in
        # one call off the reactor thread.
        checked = await self._checked_elsewhere(upload)
        if checked is not None:
            prepared = self._prepare(upload, checked)
        else:
            prepared = await self._run_in_thread(lambda: self._prepare(upload))
        crashpoints.reached("parsed")
        if isinstance(prepared, IntakeRefusedError):
            raise prepared
        message, replies, lines, result, findings, code, now = prepared
        sha256 = message.sha256
        stored = await self._store.record_upload(message, replies, lines if code is None else ())
        if stored.invoice_conflict is not None:
            code = "0030"
            findings = (
                Finding(
                    record=1,
                    kind="01",
                    retourcode=code,
                    message="factuurnummer declarant was used before by the same payee",
                    field="0116",
                    field_name="factuurnummer declarant",
                ),
            )
            message = replace(
                message,
                status=self._first_status(code, findings),
                invoice_number=None,
                payee=None,
                metadata=_recorded(metadata, findings),
            )
            rejection = self._rejection(message, upload, result, code, now)
            stored = await self._store.record_upload(message, [rejection])
        found = stored.message
        if found is None:  # pragma: no cover - the store guarantees a message here
            raise RuntimeError("the store returned no message for an upload")
        if not stored.created:
            # Another request with this traceerId was stored first (a concurrent retry,
            # or another gateway process): its answer, or a refusal.
            return self._retried(upload, found, sha256)
        crashpoints.reached("journaled")
        return Receipt(
            traceer_id=found.traceer_id,
            conversatie_id=found.conversatie_id,
            created=True,
            status=found.status,
            code=code,
            findings=findings,
            standard=found.standard,
        )

    async def _checked_elsewhere(self, upload: Upload) -> CheckedFile | None:
        """The file's checks from a check worker; None without workers, or when they
        could not check it (the intake then checks it itself: the same findings)."""
        if self._checks is None:
            return None
        try:
            return await self._checks.check(
                upload.payload, upload.metadata.traceer_id, upload.participant
            )
        except FileCheckUnavailableError:
            return None  # the workers log why

    def _prepare(
        self, upload: Upload, checked: CheckedFile | None = None
    ) -> _Prepared | IntakeRefusedError:
        """The file's checks (unless ``checked`` has them) and what is stored for it: its
        message, the rejection answering it at once (if any) and its lines; or the
        refusal, when the file is not the participant's or not the berichtstroom's."""
        metadata = upload.metadata
        payload = upload.payload
        traceer_id = metadata.traceer_id
        if checked is None:
            result, lines = self._check(payload, traceer_id, upload.participant)
            sha256 = hashlib.sha256(payload).hexdigest()
        else:
            result, lines, sha256 = checked.result, checked.lines, checked.sha256
        try:
            self._check_sender_in_file(upload, result)
            self._check_flow_standard(metadata, result)
        except IntakeRefusedError as refused:
            return refused  # raised on the reactor thread, after the "parsed" crash point
        now = self._clock()
        header = result.header
        invoice = header.text("invoice_number") if header and result.valid else None
        payee = self._payee(result) if invoice else None
        findings = tuple(result.findings)
        code = findings[0].retourcode if findings else None
        message = NewMessage(
            traceer_id=traceer_id,
            conversatie_id=metadata.referentiegegevens.conversatieId,
            direction=Direction.FROM_PARTICIPANT,
            party=upload.participant,
            payload=payload,
            sha256=sha256,
            created_at=now,
            status=self._first_status(code, findings),
            idempotency_key=f"upload:{upload.participant}:{traceer_id}",
            filename=upload.filename,
            standard=result.layout.standard if result.layout else None,
            invoice_number=invoice or None,
            payee=payee,
            reference_id=metadata.referentiegegevens.referentieId,
            metadata=_recorded(metadata, findings),
        )
        replies = [] if code is None else [self._rejection(message, upload, result, code, now)]
        return message, replies, lines, result, findings, code, now

    @staticmethod
    def _retried(upload: Upload, known: Message, sha256: str) -> Receipt:
        """An upload whose traceerId is taken: the same upload again (its first receipt)
        or a refusal."""
        if known.party != upload.participant or known.direction is not Direction.FROM_PARTICIPANT:
            raise IntakeRefusedError(
                ErrorKind.CONFLICT,
                "traceerid-in-gebruik",
                "This traceerId belongs to another message; nothing was stored. Give every "
                "message a new traceerId.",
                "referentiegegevens.traceerId",
            )
        if known.sha256 != sha256:
            raise IntakeRefusedError(
                ErrorKind.CONFLICT,
                "traceerid-hergebruikt",
                "This traceerId was used before with another payload; nothing was stored. "
                "Give every message a new traceerId.",
                "referentiegegevens.traceerId",
            )
        return Receipt(
            traceer_id=known.traceer_id,
            conversatie_id=known.conversatie_id,
            created=False,
            status=known.status,
            code=None,
            standard=known.standard,
        )

    def _check_flow_values(self, metadata: BerichtMetadata) -> None:
        flow = metadata.routeringgegevens.berichtstroom
        policy = self._berichtstroom
        if policy.berichttypen and flow.berichttype not in policy.berichttypen:
            raise IntakeRefusedError(
                ErrorKind.INVALID,
                "berichtstroom-onbekend",
                f"berichttype must be one of: {', '.join(policy.berichttypen)}.",
                "routeringgegevens.berichtstroom.berichttype",
            )
        if policy.acties and flow.actie not in policy.acties:
            raise IntakeRefusedError(
                ErrorKind.INVALID,
                "berichtstroom-onbekend",
                f"actie must be one of: {', '.join(policy.acties)}.",
                "routeringgegevens.berichtstroom.actie",
            )

    def _check_flow_standard(self, metadata: BerichtMetadata, result: ValidationResult) -> None:
        """A berichttype naming a Vektis standard must name the file's."""
        if result.layout is None:
            return  # unreadable: rejected technically, whatever the metadata says
        berichttype = metadata.routeringgegevens.berichtstroom.berichttype
        named = self._berichtstroom.standaarden.get(berichttype)
        if named is None and berichttype.upper() in self._standards:
            named = berichttype.upper()
        if named is not None and named != result.layout.standard:
            raise IntakeRefusedError(
                ErrorKind.INVALID,
                "berichtstroom-onjuist",
                f"berichttype names {named}, but the payload is a {result.layout.standard} "
                "file; nothing was stored.",
                "routeringgegevens.berichtstroom.berichttype",
            )

    # --- helpers -------------------------------------------------------------------------

    def _check(
        self, payload: bytes, traceer_id: str, participant: str
    ) -> tuple[ValidationResult, list[DeclaredLine]]:
        return check_upload(self._registry, payload, traceer_id, participant)

    @staticmethod
    def _first_status(code: str | None, findings: tuple[Finding, ...]) -> NewStatus:
        if code is None:
            return NewStatus(MessageStatus.RECEIVED, None, "Bestand ontvangen en goedgekeurd.")
        first = findings[0]
        where = f" (record {first.record}, veld {first.field})" if first.field else ""
        return NewStatus(
            MessageStatus.REJECTED,
            code,
            f"Bestand technisch afgekeurd: {describe(code)}{where}",
        )

    def _check_sender_in_file(self, upload: Upload, result: ValidationResult) -> None:
        header = result.header
        if header is None:
            return  # unreadable: rejected technically, still journaled for the sender
        codes = {
            header.raw_field(n).decode("latin-1") for n in _HEADER_CODES if header.layout.has(n)
        }
        if upload.participant not in codes:
            raise IntakeRefusedError(
                ErrorKind.INVALID,
                "declarant-onjuist",
                "None of the zorgverlener, praktijk and instelling codes in the file's 01 "
                "record is the participant of the client certificate.",
                "payload",
            )

    @staticmethod
    def _payee(result: ValidationResult) -> str | None:
        header = result.header
        if header is None:
            return None
        by_indicator = {"02": "zorgverlener_code", "03": "praktijk_code", "04": "instelling_code"}
        name = by_indicator.get(header.text("payee"))
        if name is None:
            return None
        return header.text(name)

    def _retour_layout(self, upload: Upload, result: ValidationResult) -> Layout:
        if result.layout is not None and result.layout.kind == "declaration":
            return self._registry.retour_of(result.layout)
        standard = self._default_retour.get(upload.discipline, "KZ302")
        return self._registry.by_standard(standard)

    def _rejection(
        self,
        upload_message: NewMessage,
        upload: Upload,
        result: ValidationResult,
        code: str,
        now: datetime,
    ) -> NewMessage:
        retour = self._retour_layout(upload, result)
        header = result.header
        usable_header = (
            header if header is not None and len(header.raw) == _decl_length(retour) else None
        )
        payload = build_technical_rejection(
            retour,
            "0001",
            extra_codes=(code,) if code != "0001" else (),
            header=usable_header,
            insurer_reference=retour_reference(upload_message.traceer_id),
            retour_date=now.date(),
            header_values=_fallback_header(upload.participant, now),
        )
        return NewMessage(
            traceer_id=self._new_id(),
            conversatie_id=upload_message.conversatie_id,
            direction=Direction.TO_PARTICIPANT,
            party=upload.participant,
            payload=payload,
            sha256=hashlib.sha256(payload).hexdigest(),
            created_at=now,
            status=NewStatus(MessageStatus.DELIVERED, code, "Technische afkeuring klaargezet."),
            idempotency_key=f"rejection:{upload_message.idempotency_key}:{code}",
            filename=f"{retour.standard}-afkeur-{upload_message.traceer_id}.asc",
            standard=retour.standard,
            reply_to=upload_message.traceer_id,
        )


def _recorded(metadata: BerichtMetadata, findings: tuple[Finding, ...]) -> dict[str, Any]:
    """What is kept with an upload: its berichtMetadata and, for a rejected file, where
    each finding is (code, record, field) — never the offending value."""
    kept = metadata.recorded()
    if findings:
        kept["meldingen"] = [
            {"code": f.retourcode, "record": f.record, "veld": f.field, "veldnaam": f.field_name}
            for f in findings
        ]
    return kept


def payee_of(result: ValidationResult) -> str | None:
    """The payee's code named in a valid file's 01 record (by its payee indicator)."""
    return Intake._payee(result)


def _decl_length(retour: Layout) -> int:
    return retour.record("01").field("insurer_reference").start - 1


def _fallback_header(participant: str, now: datetime) -> dict[str, Any]:
    """01 values for a rejection of a file whose own 01 could not be read."""
    today = now.date()
    return {
        "message_kind": "P",
        "praktijk_code": participant,
        "payee": "03",
        "period_begin": today,
        "period_end": today,
        "invoice_number": "ONBEKEND",
        "invoice_date": today,
        "currency": "EUR",
    }
