"""The cases' own records on SQL, and the facts they are computed from.

Cases are computed here from the message tables by one *source* per kind (see
:data:`SOURCES`): a function ``fn(txn, ref)`` that returns the facts of every case of its
kind that holds now (``ref`` None) or of one case (``ref`` given, whether it holds now or
not). A later kind adds its function there. An action re-reads its case in the same
transaction that changes it, so two administrators acting at once cannot both resolve the
same case. Which actions a case allows and what state each leaves it in is the core's
(:mod:`gateway.admin.cases`); this module only follows it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final

from twisted.internet.defer import Deferred

from adapters.storage.audit import append_audit_txn
from adapters.storage.database import Database, Transaction, decode_timestamp
from adapters.storage.journal import JournalCodec, statuses_txn
from adapters.storage.resolution import (
    RESOLUTION_SOURCES,
    apply_effect_txn,
    case_detail_txn,
    pregnancy_txn,
)
from gateway.admin.accounts import Actor
from gateway.admin.audit import NewAuditEntry
from gateway.admin.cases import (
    AUDITED,
    NEEDS_EFFECT,
    STATE_AFTER,
    Case,
    CaseAction,
    CaseFacts,
    CaseKind,
    CaseNote,
    CaseRecord,
    CaseState,
    build_case,
    check_action,
    parse_case_id,
)
from gateway.admin.detail import CaseDetail, PregnancyView
from gateway.admin.labels import CASE_DETAIL_LABELS
from gateway.errors import NotFoundError
from gateway.ports.messages import Direction, MessageStatus, StatusEntry, StoreError
from gateway.ports.resolution import Effect

__all__ = ["SOURCES", "SqlCaseStore", "act_txn"]


class SqlCaseStore:
    """The cases area of :class:`~gateway.ports.admin.AdminStore`; ``codec`` seals what
    an action's effect stores (a corrected claim)."""

    def __init__(self, database: Database, codec: JournalCodec | None = None) -> None:
        self.database = database
        self.codec = codec or JournalCodec(None)

    def cases(self) -> Deferred[list[Case]]:
        return self.database.run_read("admin_cases", cases_txn)

    def case(self, case_id: str) -> Deferred[tuple[Case, list[CaseNote]] | None]:
        return self.database.run_read("admin_case", case_txn, case_id)

    def act(
        self,
        case_id: str,
        action: CaseAction,
        actor: Actor,
        reason: str,
        at: datetime,
        effect: Effect | None = None,
    ) -> Deferred[Case]:
        return self.database.run_interaction(
            "admin_act", act_txn, case_id, action, actor, reason, at, effect, self.codec
        )

    def case_detail(self, facts: CaseFacts) -> Deferred[CaseDetail]:
        return self.database.run_read("admin_case_detail", case_detail_txn, facts)

    def pregnancy(self, pregnancy: str) -> Deferred[PregnancyView | None]:
        return self.database.run_read("admin_pregnancy", pregnancy_txn, pregnancy)


# --- case sources ------------------------------------------------------------------------

Source = Callable[[Transaction, str | None], list[CaseFacts]]


def _statuses_by_message(txn: Transaction, ids: list[str]) -> dict[str, list[StatusEntry]]:
    found: dict[str, list[StatusEntry]] = {}
    for entry in statuses_txn(txn, tuple(ids)):
        found.setdefault(entry.traceer_id, []).append(entry)
    return found


def _first_code(statuses: list[StatusEntry]) -> tuple[tuple[str, ...], str]:
    """The retourcode and description of a message's first status that has a code (its
    rejection), else of its first status."""
    for entry in statuses:
        if entry.code:
            return (entry.code,), entry.description
    return (), statuses[0].description if statuses else ""


def intake_rejected_txn(txn: Transaction, ref: str | None) -> list[CaseFacts]:
    sql = (
        "SELECT traceer_id, created_at, party, filename, standard, sha256, status"
        " FROM messages WHERE direction = ?"
    )
    params: list[object] = [Direction.FROM_PARTICIPANT.value]
    if ref is None:
        sql += " AND status = ?"
        params.append(MessageStatus.REJECTED.value)
    else:
        sql += " AND traceer_id = ?"
        params.append(ref)
    txn.execute(sql + " ORDER BY created_at, seq", params)
    rows = txn.fetchall()
    statuses = _statuses_by_message(txn, [row[0] for row in rows])
    facts = []
    for row in rows:
        codes, summary = _first_code(statuses.get(row[0], []))
        facts.append(
            CaseFacts(
                kind=CaseKind.INTAKE_REJECTED,
                ref=row[0],
                since=decode_timestamp(row[1]),
                active=row[6] == MessageStatus.REJECTED.value,
                party=row[2],
                participant=row[2],
                retourcodes=codes,
                summary=summary,
                filename=row[3],
                standard=row[4],
                sha256=row[5],
            )
        )
    return facts


def parked_txn(txn: Transaction, ref: str | None) -> list[CaseFacts]:
    sql = (
        "SELECT o.traceer_id, o.updated_at, o.insurer, o.sender, o.attempts, o.last_error,"
        " o.state, o.first_attempt_at, m.filename, m.standard, m.sha256, m.invoice_number"
        " FROM outbound o JOIN messages m ON m.traceer_id = o.traceer_id"
    )
    if ref is None:
        txn.execute(sql + " WHERE o.state = 'parked' ORDER BY o.updated_at, m.seq")
    else:
        txn.execute(sql + " WHERE o.traceer_id = ?", (ref,))
    facts = []
    for row in txn.fetchall():
        details = {
            CASE_DETAIL_LABELS["attempts"]: str(row[4]),
            CASE_DETAIL_LABELS["delivery_state"]: str(row[6]),
        }
        if row[7] is not None:
            details[CASE_DETAIL_LABELS["first_attempt"]] = decode_timestamp(row[7]).isoformat(
                timespec="seconds"
            )
        if row[11]:
            details[CASE_DETAIL_LABELS["invoice_number"]] = str(row[11])
        facts.append(
            CaseFacts(
                kind=CaseKind.PARKED,
                ref=row[0],
                since=decode_timestamp(row[1]),
                active=row[6] == "parked",
                party=row[2],
                insurer=row[2],
                participant=row[3],
                summary=row[5] or "",
                filename=row[8],
                standard=row[9],
                sha256=row[10],
                details=details,
            )
        )
    return facts


def unmatched_retour_txn(txn: Transaction, ref: str | None) -> list[CaseFacts]:
    sql = (
        "SELECT traceer_id, created_at, party, filename, standard, sha256, reply_to,"
        " reference_id FROM messages WHERE direction = ?"
    )
    params: list[object] = [Direction.FROM_INSURER.value]
    if ref is None:
        sql += " AND reply_to IS NULL"
    else:
        sql += " AND traceer_id = ?"
        params.append(ref)
    txn.execute(sql + " ORDER BY created_at, seq", params)
    rows = txn.fetchall()
    statuses = _statuses_by_message(txn, [row[0] for row in rows])
    facts = []
    for row in rows:
        codes, summary = _first_code(statuses.get(row[0], []))
        facts.append(
            CaseFacts(
                kind=CaseKind.UNMATCHED_RETOUR,
                ref=row[0],
                since=decode_timestamp(row[1]),
                active=row[6] is None,
                party=row[2],
                insurer=row[2],
                retourcodes=codes,
                summary=summary,
                filename=row[3],
                standard=row[4],
                sha256=row[5],
                details={CASE_DETAIL_LABELS["insurer_reference"]: str(row[7])} if row[7] else {},
            )
        )
    return facts


SOURCES: Final[Mapping[CaseKind, Source]] = {
    CaseKind.INTAKE_REJECTED: intake_rejected_txn,
    CaseKind.PARKED: parked_txn,
    CaseKind.UNMATCHED_RETOUR: unmatched_retour_txn,
    **RESOLUTION_SOURCES,
}


# --- cases -------------------------------------------------------------------------------

_SELECT_RECORDS: Final = "SELECT case_id, state, reason, changed_at, changed_by FROM admin_cases"


def _record(row: tuple[Any, ...]) -> CaseRecord:
    return CaseRecord(
        case_id=row[0],
        state=CaseState(row[1]),
        reason=row[2],
        changed_at=decode_timestamp(row[3]),
        changed_by=row[4],
    )


def _facts_txn(txn: Transaction, kind: CaseKind, ref: str) -> CaseFacts | None:
    found = SOURCES[kind](txn, ref)
    return found[0] if found else None


def _record_txn(txn: Transaction, case: str) -> CaseRecord | None:
    txn.execute(_SELECT_RECORDS + " WHERE case_id = ?", (case,))
    row = txn.fetchone()
    return None if row is None else _record(row)


def cases_txn(txn: Transaction) -> list[Case]:
    facts = {f.id: f for source in SOURCES.values() for f in source(txn, None)}
    txn.execute(_SELECT_RECORDS)
    records = {record.case_id: record for record in map(_record, txn.fetchall())}
    for case in records.keys() - facts.keys():
        parsed = parse_case_id(case)
        found = _facts_txn(txn, *parsed) if parsed is not None else None
        if found is not None:
            facts[case] = found
    return [build_case(f, records.get(case)) for case, f in facts.items()]


def case_txn(txn: Transaction, case: str) -> tuple[Case, list[CaseNote]] | None:
    parsed = parse_case_id(case)
    if parsed is None:
        return None
    facts = _facts_txn(txn, *parsed)
    if facts is None:
        return None
    txn.execute(
        "SELECT case_id, at, author, text FROM admin_case_notes WHERE case_id = ? ORDER BY at, id",
        (case,),
    )
    notes = [CaseNote(row[0], decode_timestamp(row[1]), row[2], row[3]) for row in txn.fetchall()]
    return build_case(facts, _record_txn(txn, case)), notes


def act_txn(
    txn: Transaction,
    case: str,
    action: CaseAction,
    actor: Actor,
    reason: str,
    at: datetime,
    effect: Effect | None = None,
    codec: JournalCodec | None = None,
) -> Case:
    parsed = parse_case_id(case)
    facts = _facts_txn(txn, *parsed) if parsed is not None else None
    if parsed is None or facts is None:
        raise NotFoundError(case)
    current = build_case(facts, _record_txn(txn, case))
    reason = check_action(current, action, actor, reason)
    if action is CaseAction.RETRY:
        _requeue_txn(txn, facts.ref, at)
    if action in NEEDS_EFFECT:
        if effect is None:  # pragma: no cover - the service prepares one
            raise StoreError(f"action {action.value} needs its prepared effect")
        apply_effect_txn(txn, effect, actor, reason, at, codec or JournalCodec(None))
    if action is CaseAction.NOTE:
        txn.execute(
            "INSERT INTO admin_case_notes (case_id, at, author, text) VALUES (?, ?, ?, ?)",
            (case, at, actor.name, reason),
        )
    else:
        txn.execute(
            "INSERT INTO admin_cases (case_id, kind, ref, state, reason, changed_at, changed_by)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (case_id) DO UPDATE SET"
            " state = excluded.state, reason = excluded.reason,"
            " changed_at = excluded.changed_at, changed_by = excluded.changed_by",
            (case, facts.kind.value, facts.ref, STATE_AFTER[action].value, reason, at, actor.name),
        )
    append_audit_txn(
        txn,
        NewAuditEntry(
            at, actor.name, actor.role.value, AUDITED[action], case, reason, actor.origin
        ),
    )
    after = _facts_txn(txn, parsed[0], parsed[1])
    assert after is not None
    return build_case(after, _record_txn(txn, case))


def _requeue_txn(txn: Transaction, traceer_id: str, at: datetime) -> None:
    """A parked file back in the queue, due now: the forwarder sends it again, under the
    same traceer id and factuurnummer (the insurer sees no second claim)."""
    txn.execute(
        "UPDATE outbound SET state = 'queued', due_at = ?, updated_at = ?"
        " WHERE traceer_id = ? AND state = 'parked'",
        (at, at, traceer_id),
    )
    if txn.rowcount != 1:  # pragma: no cover - check_action saw it parked in this transaction
        raise StoreError(f"outbound file {traceer_id} is not parked")
