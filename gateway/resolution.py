"""Resolving what the insurer rejected: the effects of the administrator's own actions.

An action on a rejected integral line needs more than a change of the case's state, and more
than the store can work out by itself: a corrected claim file to build and check, or retour
files for the participants. The :class:`Resolver` prepares that effect as a value
(:data:`~gateway.ports.resolution.Effect`: a resubmission, a pass-on, a broken bundle, a
closed phase) from what the store holds; the admin store applies it in the same transaction
that re-reads the case, records its new state and appends the audit entry — so an effect is
stored whole or not at all, and never for a case someone else resolved meanwhile.

* **Correct and resubmit**: the fields insurers typically reject on — the member number,
  the UZOVI number, the dates, the chosen integral prestatie — are changed and the line is
  claimed again in a KZ301 file of its own (a new factuurnummer, checked by the codec),
  linked to the line it replaces; both are kept, with the fields changed. The rejected
  line was not booked by the insurer, so no credit line is needed; the absorbed original
  lines now belong to the new line and are answered when its retour comes.
* **Pass the rejection on**: every original line gets the insurer's retourcodes, in a
  retour file per upload in the participant's own retour standard.
* **Break the bundle**: the phase is marked broken and its lines are decided again; the
  rules then send each monodisciplinarily — forwarded under the participant's own AGB
  code where the contract allows it, else returned with retourcode 9001 in a retour.
* **Close a waiting phase by hand**: the next bundling run claims what there is.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from typing import Final

from gateway.admin.cases import ActionRefusedError
from gateway.admin.labels import FIELD_LABELS, PHASE_LABELS
from gateway.bundler import INVOICE_SEQUENCE, outbound_message
from gateway.ei import FieldValue, LayoutRegistry, Record, records_of, validate_bytes
from gateway.errors import ErrorKind, NotFoundError
from gateway.lines import AnswerOutcome
from gateway.loading import describe
from gateway.masking import mask_value
from gateway.ports.bundling import QueuedFile
from gateway.ports.messages import MessageStore
from gateway.ports.outcomes import LineAnswer
from gateway.ports.resolution import (
    BreakBundle,
    ClaimState,
    Field,
    PassOn,
    ResolutionStore,
    Resubmission,
)
from gateway.ports.runtime import RunInThread, run_inline
from gateway.rules.catalogue import Catalogue, Phase
from gateway.rules.claims import PlannedLine, build_claim_file
from gateway.rules.model import ClaimLine, Terms, line_key
from gateway.unpacker import Unpacker

__all__ = [
    "Correction",
    "Resolver",
]

_MEMBER_NUMBER: Final = re.compile(r"[0-9A-Za-z]{1,15}")
_UZOVI: Final = re.compile(r"\d{4}")
_PRESTATIECODE: Final = re.compile(r"[0-9A-Za-z]{1,6}")


@dataclass(frozen=True, slots=True)
class Correction:
    """What the administrator changes; None keeps the field as it was."""

    member_number: str | None = None
    uzovi: str | None = None
    first_day: date | None = None
    last_day: date | None = None
    prestatie: str | None = None

    @classmethod
    def parse(cls, given: dict[str, str]) -> Correction:
        """From form or API text; empty fields keep their value. Refuses what is not a
        valid value of its field (the message names the field, never the value)."""
        unknown = set(given) - {f.value for f in Field}
        if unknown:
            raise ActionRefusedError(
                "veld-onbekend", f"Onbekend veld: {sorted(unknown)[0]}.", kind=ErrorKind.INVALID
            )
        text = {name: value.strip() for name, value in given.items() if value.strip()}

        def check(name: Field, pattern: re.Pattern[str]) -> str | None:
            value = text.get(name.value)
            if value is not None and not pattern.fullmatch(value):
                raise ActionRefusedError(
                    "veld-onjuist",
                    f"{FIELD_LABELS[name]} heeft niet de juiste vorm.",
                    kind=ErrorKind.INVALID,
                )
            return value

        def day(name: Field) -> date | None:
            value = text.get(name.value)
            if value is None:
                return None
            try:
                return date.fromisoformat(value)
            except ValueError:
                raise ActionRefusedError(
                    "veld-onjuist",
                    f"{FIELD_LABELS[name]} is geen datum (jjjj-mm-dd).",
                    kind=ErrorKind.INVALID,
                ) from None

        return cls(
            member_number=check(Field.MEMBER_NUMBER, _MEMBER_NUMBER),
            uzovi=check(Field.UZOVI, _UZOVI),
            first_day=day(Field.FIRST_DAY),
            last_day=day(Field.LAST_DAY),
            prestatie=check(Field.PRESTATIE, _PRESTATIECODE),
        )


# --- effects -----------------------------------------------------------------------------


class Resolver:
    def __init__(
        self,
        messages: MessageStore,
        store: ResolutionStore,
        reserve: Callable[[str, int], Awaitable[int]],
        registry: LayoutRegistry,
        catalogue: Catalogue,
        terms: Terms,
        unpacker: Unpacker,
        *,
        now: Callable[[], datetime],
        run_in_thread: RunInThread | None = None,
    ) -> None:
        self._messages = messages
        self._store = store
        self._reserve = reserve
        self._registry = registry
        self._catalogue = catalogue
        self._terms = terms
        self._unpacker = unpacker
        self._now = now
        self._run: RunInThread = run_in_thread or run_inline

    async def _claim(self, reference: str) -> ClaimState:
        claim = await self._store.claim_state(reference)
        if claim is None:
            raise NotFoundError(reference)
        return claim

    def prestaties_for(self, phase: Phase) -> list[tuple[str, str]]:
        """(code, name) of the catalogue's integral prestaties for ``phase``: the choices
        a correction offers."""
        return [(p.code, p.name) for p in self._catalogue.prestaties if p.phase is phase]

    # --- correct and resubmit ---------------------------------------------------------

    async def resubmit(self, reference: str, correction: Correction) -> Resubmission:
        claim = await self._claim(reference)
        if not claim.absorbed:
            raise ActionRefusedError("niets-te-declareren", "Deze regel omvat geen regels.")
        records = await self._claim_records(claim)
        detail, insured = _line_records(records, claim.record_number)
        if detail is None or insured is None:
            raise ActionRefusedError(
                "claim-onleesbaar", "Het verstuurde declaratiebestand is niet te lezen."
            )
        before = _before(claim, detail, insured)
        after = dict(before)
        for name, value in (
            (Field.MEMBER_NUMBER, correction.member_number),
            (Field.UZOVI, correction.uzovi),
            (Field.FIRST_DAY, _iso(correction.first_day)),
            (Field.LAST_DAY, _iso(correction.last_day)),
            (Field.PRESTATIE, correction.prestatie),
        ):
            if value is not None:
                after[name] = value
        changes = {
            name.value: _shown(name, before[name], after[name])
            for name in Field
            if before[name] != after[name]
        }
        if not changes:
            raise ActionRefusedError(
                "niets-veranderd",
                "Er is niets veranderd: pas minstens één veld aan.",
                kind=ErrorKind.INVALID,
            )
        first_day = date.fromisoformat(after[Field.FIRST_DAY])
        last_day = date.fromisoformat(after[Field.LAST_DAY])
        if last_day < first_day:
            raise ActionRefusedError(
                "datums-onjuist", "De einddatum ligt voor de begindatum.", kind=ErrorKind.INVALID
            )
        if first_day > self._now().date():
            raise ActionRefusedError(
                "datums-onjuist", "De begindatum ligt in de toekomst.", kind=ErrorKind.INVALID
            )
        insurer = after[Field.UZOVI]
        code = after[Field.PRESTATIE]
        prestatie = self._catalogue.by_code(code)
        if prestatie is None or prestatie.phase is not claim.phase:
            raise ActionRefusedError(
                "prestatie-onjuist",
                f"Prestatie {code} is geen integrale prestatie voor de "
                f"{PHASE_LABELS.get(claim.phase.value, claim.phase.value)}.",
                kind=ErrorKind.INVALID,
            )
        terms = self._terms.insurers.get(insurer)
        if terms is None:
            raise ActionRefusedError(
                "verzekeraar-onbekend",
                f"Verzekeraar {insurer} staat niet in de configuratie van de gateway.",
                kind=ErrorKind.INVALID,
            )
        contract = terms.contracts.get(first_day.year)
        price = contract.price(code) if contract is not None else None
        if price is None:
            raise ActionRefusedError(
                "geen-tarief",
                f"Verzekeraar {insurer} heeft voor {first_day.year} geen contracttarief voor "
                f"prestatie {code}.",
                kind=ErrorKind.INVALID,
            )
        values: dict[str, FieldValue] = dict(insured.items())
        values["member_number"] = after[Field.MEMBER_NUMBER]
        bsn = detail.text("bsn")
        birth = insured.get("birth_date")
        line = ClaimLine(
            prestatie=code,
            name=prestatie.name,
            bsn=bsn,
            birth_date=birth if isinstance(birth, date) else None,
            first_day=first_day,
            last_day=last_day,
            amount=price,
            absorbs=tuple(line_key(ln) for ln in claim.absorbed),
        )
        number = await self._reserve(INVOICE_SEQUENCE, 1)
        today = self._now()
        invoice = f"IGO{today.year % 100:02d}-{number:05d}"
        built = build_claim_file(
            [PlannedLine(claim.pregnancy, claim.phase, line)],
            registry=self._registry,
            catalogue=self._catalogue,
            igo_agb=self._terms.settings.igo_agb,
            insurer=insurer,
            invoice_number=invoice,
            invoice_date=today.date(),
            insured={bsn: values},
        )
        assert built is not None  # one debit line: nothing cancels out
        checked = await self._run(lambda: validate_bytes(self._registry, built.payload))
        if not checked.valid:
            finding = checked.findings[0]
            where = f", veld {finding.field} {finding.field_name}" if finding.field else ""
            # Code and field only: a finding's message may quote a value (an amount).
            raise ActionRefusedError(
                "correctie-ongeldig",
                f"De verbeterde declaratie is technisch onjuist: retourcode "
                f"{finding.retourcode} ({describe(finding.retourcode)}), record "
                f"{finding.kind or '?'}{where}.",
                kind=ErrorKind.INVALID,
            )
        message = outbound_message(
            built.payload,
            insurer=insurer,
            key=f"claim:{insurer}:{invoice}",
            at=today,
            invoice=invoice,
            name=f"KZ301-{invoice}.asc",
            standard="KZ301",
        )
        queued = QueuedFile(message, insurer, self._terms.settings.igo_agb)
        return Resubmission(reference, queued, built.links[0], insurer, changes)

    async def current(self, reference: str) -> dict[str, str]:
        """The values a correction of ``reference`` starts from (what the insurer got),
        by field name; the member number masked. Empty when the line or its file is gone."""
        claim = await self._store.claim_state(reference)
        if claim is None or not claim.absorbed:
            return {}
        detail, insured = _line_records(await self._claim_records(claim), claim.record_number)
        if detail is None or insured is None:
            return {}
        before = _before(claim, detail, insured)
        before[Field.MEMBER_NUMBER] = mask_value(before[Field.MEMBER_NUMBER])
        return {name.value: value for name, value in before.items()}

    async def _claim_records(self, claim: ClaimState) -> list[Record]:
        message = await self._messages.get_message(claim.outbound)
        payload = await self._messages.payload(message.sha256) if message else None
        if payload is None:
            return []
        records: list[Record] = await self._run(partial(records_of, self._registry, payload))
        return records

    # --- pass the rejection on ---------------------------------------------------------

    async def pass_on(self, reference: str) -> PassOn:
        claim = await self._claim(reference)
        answers = []
        lines = {}
        for line in claim.absorbed:
            outcome, codes = claim.outcomes.get(line_key(line), (None, ()))
            if outcome != AnswerOutcome.REVIEW:
                continue
            lines[line_key(line)] = line
            answers.append(
                LineAnswer(line_key(line), AnswerOutcome.REJECTED, 0, codes or ("0001",), None)
            )
        if not answers:
            raise ActionRefusedError(
                "niets-door-te-geven", "Geen van de regels wacht nog op de IGO."
            )
        retours, answered = await self._unpacker.answer_participants(answers, lines)
        return PassOn(reference, tuple(answered), tuple(retours))

    # --- break the bundle ----------------------------------------------------------------

    async def break_claim(self, reference: str) -> BreakBundle:
        claim = await self._claim(reference)
        return BreakBundle(
            reference, claim.pregnancy, claim.phase, tuple(line_key(ln) for ln in claim.absorbed)
        )


def _shown(name: Field, before: str, after: str) -> tuple[str, str]:
    """A change as it is kept and shown: a member number is client data, masked (the
    corrected claim file itself, sealed in the journal, holds it whole)."""
    if name is Field.MEMBER_NUMBER:
        return mask_value(before), mask_value(after)
    return before, after


def _iso(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _day_text(value: object) -> str:
    return value.isoformat() if isinstance(value, date) else ""


def _before(claim: ClaimState, detail: Record, insured: Record) -> dict[Field, str]:
    """A claimed line's correctable fields as they were sent."""
    return {
        Field.MEMBER_NUMBER: insured.text("member_number").strip(),
        Field.UZOVI: claim.insurer,
        Field.FIRST_DAY: _day_text(detail.get("prestatie_date")),
        Field.LAST_DAY: max(
            (ln.prestatie_end_date or ln.prestatie_date) for ln in claim.absorbed
        ).isoformat(),
        Field.PRESTATIE: claim.prestatie,
    }


def _line_records(
    records: Sequence[Record], record_number: int
) -> tuple[Record | None, Record | None]:
    """The 04 record with NUM040 ``record_number`` and the 02 record it belongs to."""
    insured: Record | None = None
    for record in records:
        if record.type == "02":
            insured = record
        elif record.type == "04" and record.number_value("record_id") == record_number:
            return record, insured
    return None, None
