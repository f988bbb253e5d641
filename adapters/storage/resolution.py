"""The administrator's resolutions on SQL: the case kinds that come from bundling and the
insurers' answers, what their pages show, and the effects of their actions.

Three case sources (see :data:`adapters.storage.cases.SOURCES`):

* ``rejected_line``: an integral line claimed by the IGO whose absorbed original lines are
  under review (the insurer rejected it); ``ref`` is the line's reference. It holds while
  a line it absorbed is still under review.
* ``bundle_broken``: the latest decision for a pregnancy, phase and insurer broke the bundle;
  ``ref`` is ``pregnancy|phase|insurer``.
* ``waiting_phase``: the latest decision waits, for an event that was expected before its
  ``overdue_on`` day, and that day has passed (as of the bundling run that decided it).

The effects (:mod:`gateway.resolution`) are applied by :func:`apply_effect_txn` inside the
action's transaction (``act_txn``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any, Final

from twisted.internet.defer import Deferred

from adapters.storage.bundling import close_phase_txn
from adapters.storage.database import Database, Transaction, decode_timestamp
from adapters.storage.journal import JournalCodec
from adapters.storage.lines import COLUMN_COUNT, COLUMNS, line_from_row
from adapters.storage.outbox import enqueue_txn
from adapters.storage.outcomes import record_answers_txn
from gateway.admin.accounts import Actor
from gateway.admin.cases import CaseFacts, CaseKind
from gateway.admin.detail import CaseDetail, ClaimView, DecisionView, LineView, PregnancyView
from gateway.admin.labels import CASE_DETAIL_LABELS
from gateway.lines import DeclaredLine
from gateway.ports.messages import Direction
from gateway.ports.resolution import (
    BreakBundle,
    ClaimState,
    ClosePhase,
    Effect,
    PassOn,
    Resubmission,
)
from gateway.rules.catalogue import Phase
from gateway.rules.decide import BROKEN_BY_HAND
from gateway.rules.model import LineKey

__all__ = [
    "RESOLUTION_SOURCES",
    "SqlResolutionStore",
    "apply_effect_txn",
    "case_detail_txn",
    "decision_ref",
]

_CLAIM_COLUMNS: Final = (
    "reference, invoice_number, record_number, insurer, pregnancy, phase, prestatie, amount,"
    " created_at, outbound, corrects, changes, created_by"
)
_LINE_COLUMNS: Final = (
    "l.traceer_id, l.record_number, l.participant, l.standard, m.filename, l.prestatiecode,"
    " l.prestatie_date, l.amount, l.reference, l.state, l.reason, l.outcome,"
    " l.granted_amount, l.outcome_codes, l.claim_reference, l.phase, l.insurer"
)
_DECISION_COLUMNS: Final = (
    "pregnancy, phase, insurer, kind, rule, reasons, waiting_for, until, overdue_on, decided_at"
)


def decision_ref(pregnancy: str, phase: str, insurer: str) -> str:
    return f"{pregnancy}|{phase}|{insurer}"


def _split_ref(ref: str) -> tuple[str, str, str] | None:
    parts = ref.split("|")
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


def _day(value: object) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def _claim(row: Sequence[Any]) -> ClaimView:
    changes = {k: (v[0], v[1]) for k, v in json.loads(row[11]).items()} if row[11] else {}
    return ClaimView(
        reference=row[0],
        invoice_number=row[1],
        record_number=int(row[2]),
        insurer=row[3],
        pregnancy=row[4],
        phase=row[5],
        prestatie=row[6],
        amount=int(row[7]),
        created_at=decode_timestamp(row[8]),
        outbound=row[9],
        corrects=row[10],
        changes=changes,
        created_by=row[12],
    )


def _line(row: Sequence[Any]) -> LineView:
    prestatie_date = _day(row[6])
    assert prestatie_date is not None
    return LineView(
        traceer_id=row[0],
        record_number=int(row[1]),
        participant=row[2],
        standard=row[3],
        filename=row[4],
        prestatiecode=row[5],
        prestatie_date=prestatie_date,
        amount=None if row[7] is None else int(row[7]),
        reference=row[8],
        state=row[9],
        reason=row[10],
        outcome=row[11],
        granted=None if row[12] is None else int(row[12]),
        codes=tuple((row[13] or "").split()),
        claim_reference=row[14],
        phase=row[15],
        insurer=row[16],
    )


def _decision(row: Sequence[Any]) -> DecisionView:
    return DecisionView(
        pregnancy=row[0],
        phase=row[1],
        insurer=row[2],
        kind=row[3],
        rule=row[4],
        reasons=tuple(r for r in str(row[5]).split("\n") if r),
        waiting_for=row[6],
        until=_day(row[7]),
        overdue_on=_day(row[8]),
        decided_at=decode_timestamp(row[9]),
    )


def _lines_where(txn: Transaction, where: str, params: Sequence[object]) -> list[LineView]:
    txn.execute(
        f"SELECT {_LINE_COLUMNS} FROM declaration_lines l"  # noqa: S608 - constant text
        f" JOIN messages m ON m.traceer_id = l.traceer_id WHERE {where}"
        " ORDER BY l.prestatie_date, l.traceer_id, l.record_number",
        tuple(params),
    )
    return [_line(row) for row in txn.fetchall()]


def _claims_where(txn: Transaction, where: str, params: Sequence[object]) -> list[ClaimView]:
    txn.execute(
        f"SELECT {_CLAIM_COLUMNS} FROM integral_claims WHERE {where}"  # noqa: S608
        " ORDER BY created_at, reference",
        tuple(params),
    )
    return [_claim(row) for row in txn.fetchall()]


def _decisions_where(txn: Transaction, where: str, params: Sequence[object]) -> list[DecisionView]:
    txn.execute(
        f"SELECT {_DECISION_COLUMNS} FROM bundle_decisions WHERE {where}"  # noqa: S608
        " ORDER BY pregnancy, phase, insurer",
        tuple(params),
    )
    return [_decision(row) for row in txn.fetchall()]


# --- case sources ------------------------------------------------------------------------


def _absorbed_lines(txn: Transaction, reference: str) -> list[LineView]:
    return _lines_where(
        txn,
        "EXISTS (SELECT 1 FROM claim_absorbs a WHERE a.reference = ?"
        " AND a.traceer_id = l.traceer_id AND a.record_number = l.record_number)",
        (reference,),
    )


def rejected_line_txn(txn: Transaction, ref: str | None) -> list[CaseFacts]:
    if ref is None:
        claims = _claims_where(
            txn,
            "credits IS NULL AND reference IN (SELECT claim_reference FROM declaration_lines"
            " WHERE outcome = 'review')",
            (),
        )
    else:
        claims = _claims_where(txn, "reference = ? AND credits IS NULL", (ref,))
    facts = []
    for claim in claims:
        absorbed = _absorbed_lines(txn, claim.reference)
        own = [ln for ln in absorbed if ln.claim_reference == claim.reference]
        review = [ln for ln in own if ln.outcome == "review"]
        codes = tuple(dict.fromkeys(c for ln in (review or own) for c in ln.codes))
        txn.execute(
            "SELECT MIN(created_at) FROM messages WHERE reply_to = ? AND direction = ?",
            (claim.outbound, Direction.FROM_INSURER.value),
        )
        answered = txn.fetchone()
        since = (
            decode_timestamp(answered[0])
            if answered is not None and answered[0] is not None
            else claim.created_at
        )
        participants = tuple(sorted({ln.participant for ln in absorbed}))
        details = {
            CASE_DETAIL_LABELS["invoice_number"]: claim.invoice_number,
            CASE_DETAIL_LABELS["phase"]: claim.phase,
        }
        if claim.corrects:
            details[CASE_DETAIL_LABELS["corrects"]] = claim.corrects
        facts.append(
            CaseFacts(
                kind=CaseKind.REJECTED_LINE,
                ref=claim.reference,
                since=since,
                active=bool(review),
                party=claim.insurer,
                insurer=claim.insurer,
                participant=participants[0] if len(participants) == 1 else None,
                participants=participants,
                retourcodes=codes,
                summary=(
                    f"Integrale prestatie {claim.prestatie} ({claim.phase}) afgewezen door "
                    f"verzekeraar {claim.insurer}; {len(review)} regel(s) in behandeling."
                    if review
                    else f"Integrale prestatie {claim.prestatie} ({claim.phase}) bij "
                    f"verzekeraar {claim.insurer}: geen regel meer in behandeling."
                ),
                details=details,
            )
        )
    return facts


def _decision_facts(
    txn: Transaction, kind: CaseKind, decision: DecisionView, since: datetime, active: bool
) -> CaseFacts:
    lines = _lines_where(
        txn,
        "l.pregnancy = ? AND l.phase = ? AND l.insurer = ?",
        (decision.pregnancy, decision.phase, decision.insurer),
    )
    participants = tuple(sorted({ln.participant for ln in lines}))
    details = {
        CASE_DETAIL_LABELS["pregnancy"]: decision.pregnancy,
        CASE_DETAIL_LABELS["phase"]: decision.phase,
    }
    if decision.waiting_for:
        details[CASE_DETAIL_LABELS["waiting_for"]] = decision.waiting_for
    if decision.overdue_on:
        details[CASE_DETAIL_LABELS["expected_by"]] = decision.overdue_on.isoformat()
    return CaseFacts(
        kind=kind,
        ref=decision_ref(decision.pregnancy, decision.phase, decision.insurer),
        since=since,
        active=active,
        party=decision.insurer,
        insurer=decision.insurer,
        participant=participants[0] if len(participants) == 1 else None,
        participants=participants,
        retourcodes=tuple(dict.fromkeys(c for ln in lines for c in ln.codes)),
        summary=f"{decision.rule}: " + "; ".join(decision.reasons),
        details=details,
    )


def _decisions_of(txn: Transaction, kind: str, ref: str | None) -> list[tuple[DecisionView, Any]]:
    where, params = "kind = ?", [kind]
    if ref is not None:
        split = _split_ref(ref)
        if split is None:
            return []
        where, params = "pregnancy = ? AND phase = ? AND insurer = ?", list(split)
    txn.execute(
        f"SELECT {_DECISION_COLUMNS}, since FROM bundle_decisions WHERE {where}",  # noqa: S608
        tuple(params),
    )
    return [(_decision(row), row[10]) for row in txn.fetchall()]


def bundle_broken_txn(txn: Transaction, ref: str | None) -> list[CaseFacts]:
    """A case per bundle the rules broke; a bundle an administrator broke is no new case
    (the case it was broken in records it)."""
    return [
        _decision_facts(
            txn,
            CaseKind.BUNDLE_BROKEN,
            decision,
            decode_timestamp(since),
            decision.kind == "bundle-broken",
        )
        for decision, since in _decisions_of(txn, "bundle-broken", ref)
        if (decision.kind == "bundle-broken" and decision.rule != BROKEN_BY_HAND)
        or _has_record(txn, CaseKind.BUNDLE_BROKEN, decision)
    ]


def _has_record(txn: Transaction, kind: CaseKind, decision: DecisionView) -> bool:
    """Whether a case of ``kind`` about this decision was acted on (a decision that has
    changed since is still the subject of that case)."""
    ref = decision_ref(decision.pregnancy, decision.phase, decision.insurer)
    txn.execute("SELECT 1 FROM admin_cases WHERE case_id = ?", (f"{kind.value}:{ref}",))
    return txn.fetchone() is not None


def _overdue(decision: DecisionView) -> bool:
    return (
        decision.kind == "waiting"
        and decision.overdue_on is not None
        and decision.overdue_on < decision.decided_at.date()
    )


def waiting_phase_txn(txn: Transaction, ref: str | None) -> list[CaseFacts]:
    facts = []
    for decision, _since in _decisions_of(txn, "waiting", ref):
        if ref is None and not _overdue(decision):
            continue
        if ref is not None and not (
            _overdue(decision) or _has_record(txn, CaseKind.WAITING_PHASE, decision)
        ):
            continue
        overdue_on = decision.overdue_on or decision.decided_at.date()
        since = datetime(overdue_on.year, overdue_on.month, overdue_on.day, tzinfo=UTC)
        facts.append(
            _decision_facts(txn, CaseKind.WAITING_PHASE, decision, since, _overdue(decision))
        )
    return facts


RESOLUTION_SOURCES: Final = {
    CaseKind.REJECTED_LINE: rejected_line_txn,
    CaseKind.BUNDLE_BROKEN: bundle_broken_txn,
    CaseKind.WAITING_PHASE: waiting_phase_txn,
}


# --- what a case page shows --------------------------------------------------------------


def _versions(txn: Transaction, reference: str) -> list[ClaimView]:
    """Every version of a corrected line, oldest first: what it corrects and what
    corrects it, link by link."""
    found = _claims_where(txn, "reference = ?", (reference,))
    if not found:
        return []
    chain = [found[0]]
    while chain[0].corrects:
        earlier = _claims_where(txn, "reference = ?", (chain[0].corrects,))
        if not earlier or earlier[0] in chain:
            break
        chain.insert(0, earlier[0])
    while True:
        later = _claims_where(txn, "corrects = ?", (chain[-1].reference,))
        if not later or later[0] in chain:
            break
        chain.append(later[0])
    return chain


def case_detail_txn(txn: Transaction, facts: CaseFacts) -> CaseDetail:
    if facts.kind is CaseKind.REJECTED_LINE:
        versions = _versions(txn, facts.ref)
        claim = next((v for v in versions if v.reference == facts.ref), None)
        if claim is None:
            return CaseDetail()
        decisions = _decisions_where(
            txn, "pregnancy = ? AND phase = ?", (claim.pregnancy, claim.phase)
        )
        return CaseDetail(
            claim=claim,
            versions=tuple(versions),
            lines=tuple(_absorbed_lines(txn, facts.ref)),
            decisions=tuple(decisions),
            pregnancy=claim.pregnancy,
        )
    if facts.kind in (CaseKind.BUNDLE_BROKEN, CaseKind.WAITING_PHASE):
        split = _split_ref(facts.ref)
        if split is None:
            return CaseDetail()
        pregnancy, phase, insurer = split
        return CaseDetail(
            lines=tuple(
                _lines_where(
                    txn,
                    "l.pregnancy = ? AND l.phase = ? AND l.insurer = ?",
                    (pregnancy, phase, insurer),
                )
            ),
            decisions=tuple(
                _decisions_where(
                    txn,
                    "pregnancy = ? AND phase = ? AND insurer = ?",
                    (pregnancy, phase, insurer),
                )
            ),
            pregnancy=pregnancy,
        )
    return CaseDetail()


def pregnancy_txn(txn: Transaction, pregnancy: str) -> PregnancyView | None:
    lines = _lines_where(txn, "l.pregnancy = ?", (pregnancy,))
    claims = _claims_where(txn, "pregnancy = ?", (pregnancy,))
    if not lines and not claims:
        return None
    decisions = _decisions_where(txn, "pregnancy = ?", (pregnancy,))
    return PregnancyView(pregnancy, tuple(lines), tuple(claims), tuple(decisions))


# --- reading for the resolver ------------------------------------------------------------


def claim_state_txn(txn: Transaction, reference: str, codec: JournalCodec) -> ClaimState | None:
    found = _claims_where(txn, "reference = ? AND credits IS NULL", (reference,))
    if not found:
        return None
    claim = found[0]
    txn.execute(
        f"SELECT {COLUMNS}, outcome, outcome_codes FROM declaration_lines"  # noqa: S608
        " WHERE claim_reference = ? AND EXISTS (SELECT 1 FROM claim_absorbs a"
        " WHERE a.reference = ? AND a.traceer_id = declaration_lines.traceer_id"
        " AND a.record_number = declaration_lines.record_number)"
        " ORDER BY traceer_id, record_number",
        (reference, reference),
    )
    absorbed: list[DeclaredLine] = []
    outcomes: dict[LineKey, tuple[str | None, tuple[str, ...]]] = {}
    for row in txn.fetchall():
        line = line_from_row(row[:COLUMN_COUNT], codec)
        absorbed.append(line)
        outcomes[(line.traceer_id, line.record_number)] = (
            row[COLUMN_COUNT],
            tuple((row[COLUMN_COUNT + 1] or "").split()),
        )
    return ClaimState(
        reference=claim.reference,
        invoice_number=claim.invoice_number,
        record_number=claim.record_number,
        outbound=claim.outbound,
        insurer=claim.insurer,
        pregnancy=claim.pregnancy,
        phase=Phase(claim.phase),
        prestatie=claim.prestatie,
        amount=claim.amount,
        absorbed=tuple(absorbed),
        outcomes=outcomes,
    )


class SqlResolutionStore:
    def __init__(self, database: Database, codec: JournalCodec) -> None:
        self.database = database
        self.codec = codec

    def claim_state(self, reference: str) -> Deferred[ClaimState | None]:
        return self.database.run_read("claim_state", claim_state_txn, reference, self.codec)

    def case_detail(self, facts: CaseFacts) -> Deferred[CaseDetail]:
        return self.database.run_read("case_detail", case_detail_txn, facts)

    def pregnancy(self, pregnancy: str) -> Deferred[PregnancyView | None]:
        return self.database.run_read("pregnancy_view", pregnancy_txn, pregnancy)


# --- effects -----------------------------------------------------------------------------


def apply_effect_txn(
    txn: Transaction, effect: Effect, actor: Actor, reason: str, at: datetime, codec: JournalCodec
) -> None:
    """Store ``effect`` (in the action's transaction)."""
    if isinstance(effect, Resubmission):
        _resubmit_txn(txn, effect, actor, at, codec)
    elif isinstance(effect, PassOn):
        record_answers_txn(txn, effect.answers, effect.retours, codec)
    elif isinstance(effect, BreakBundle):
        _break_txn(txn, effect, actor, reason, at)
    elif isinstance(effect, ClosePhase):
        close_phase_txn(txn, effect.pregnancy, effect.phase, actor.name, at)


def _resubmit_txn(
    txn: Transaction, effect: Resubmission, actor: Actor, at: datetime, codec: JournalCodec
) -> None:
    link = effect.link
    enqueue_txn(txn, effect.queued.message, effect.queued.insurer, effect.queued.sender, codec)
    txn.execute(
        "INSERT INTO integral_claims (reference, invoice_number, record_number, outbound,"
        " insurer, pregnancy, phase, prestatie, amount, credits, created_at, corrects, changes,"
        " created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            link.reference,
            link.invoice_number,
            link.record_number,
            effect.queued.message.traceer_id,
            effect.insurer,
            link.pregnancy,
            link.phase.value,
            link.prestatie,
            link.amount,
            None,
            at,
            effect.replaces,
            json.dumps({k: list(v) for k, v in effect.changes.items()}),
            actor.name,
        ),
    )
    for traceer_id, record_number in link.absorbs:
        txn.execute(
            "INSERT INTO claim_absorbs (reference, traceer_id, record_number) VALUES (?, ?, ?)",
            (link.reference, traceer_id, record_number),
        )
        txn.execute(
            "UPDATE declaration_lines SET claim_reference = ?, outcome = NULL,"
            " outcome_codes = NULL, granted_amount = NULL"
            " WHERE traceer_id = ? AND record_number = ?",
            (link.reference, traceer_id, record_number),
        )


def _break_txn(
    txn: Transaction, effect: BreakBundle, actor: Actor, reason: str, at: datetime
) -> None:
    txn.execute(
        "INSERT INTO broken_phases (pregnancy, phase, broken_by, broken_at, reason)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (pregnancy, phase) DO NOTHING",
        (effect.pregnancy, effect.phase.value, actor.name, at, reason),
    )
    # Decided again by the next bundling run, which the rules now send monodisciplinarily.
    for traceer_id, record_number in effect.lines:
        txn.execute(
            "UPDATE declaration_lines SET state = 'open', outcome = NULL, outcome_codes = NULL,"
            " granted_amount = NULL WHERE traceer_id = ? AND record_number = ?",
            (traceer_id, record_number),
        )
