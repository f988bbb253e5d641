"""Reprocessing an upload on SQL: what :class:`gateway.reprocess.Reprocessor` found in its
file, applied in one transaction with its audit entry (see that module for what it means).

The upload is read again inside the transaction (its row locked on PostgreSQL; SQLite has
one writer), so two administrators — or two gateway processes — reprocessing the same
upload at once do it one after the other, and its lines are stored once: a line's primary
key is its upload and record number, and only lines not stored yet are inserted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from twisted.internet.defer import Deferred

from adapters.storage.audit import append_audit_txn
from adapters.storage.database import POSTGRES, Database, Transaction
from adapters.storage.journal import JournalCodec, add_status_txn, get_message_txn
from adapters.storage.lines import (
    COLUMNS,
    line_rows,
    lines_of_txn,
    lookup_hashes_txn,
    record_lines_txn,
    relink_bsn_txn,
    row_hashes,
)
from adapters.storage.messages import invoice_holder_txn
from gateway.admin.audit import NewAuditEntry
from gateway.admin.cases import ActionRefusedError
from gateway.errors import NotFoundError
from gateway.lines import DeclaredLine
from gateway.ports.messages import Direction, MessageStatus, NewStatus
from gateway.ports.reprocess import ReprocessOutcome, ReprocessPlan, ReprocessResult
from gateway.rules.model import RETURN_TO_DECLARE_ITSELF

__all__ = ["SqlReprocessStore", "apply_txn"]

ACCEPTED_STATUS: Final = NewStatus(
    MessageStatus.RECEIVED,
    None,
    "Opnieuw verwerkt na een correctie van de configuratie: bestand goedgekeurd.",
)
# The values a line takes from its file (every stored column but its key), then bsn_index.
_FILE_COLUMNS: Final = [*[c.strip() for c in COLUMNS.split(",")][2:], "bsn_index"]


class SqlReprocessStore:
    """:class:`gateway.reprocess.ReprocessStore` on the store's database."""

    def __init__(self, database: Database, codec: JournalCodec) -> None:
        self.database = database
        self.codec = codec

    def apply(self, plan: ReprocessPlan, audit: NewAuditEntry) -> Deferred[ReprocessResult]:
        return self.database.run_interaction("reprocess", apply_txn, plan, audit, self.codec)


def apply_txn(
    txn: Transaction, plan: ReprocessPlan, audit: NewAuditEntry, codec: JournalCodec
) -> ReprocessResult:
    if txn.engine == POSTGRES:  # one reprocessing of an upload at a time (SQLite: one writer)
        txn.execute("SELECT 1 FROM messages WHERE traceer_id = ? FOR UPDATE", (plan.traceer_id,))
    message = get_message_txn(txn, plan.traceer_id)
    if message is None or message.direction is not Direction.FROM_PARTICIPANT:
        raise NotFoundError(plan.traceer_id)
    at = audit.at
    if message.status is MessageStatus.REJECTED and not _has_lines(txn, plan.traceer_id):
        result = _rejected_txn(txn, plan, codec, at)
    elif not plan.valid:
        raise ActionRefusedError(
            "bestand-nu-ongeldig",
            f"Het bestand voldoet nu niet meer aan de controles ({plan.code}); er is niets "
            "veranderd. Controleer de laatste wijziging van de layouts.",
        )
    else:
        result = _accepted_txn(txn, plan, codec)
    append_audit_txn(txn, _with_outcome(audit, result))
    return result


def _has_lines(txn: Transaction, traceer_id: str) -> bool:
    txn.execute("SELECT 1 FROM declaration_lines WHERE traceer_id = ? LIMIT 1", (traceer_id,))
    return txn.fetchone() is not None


def _rejected_txn(
    txn: Transaction, plan: ReprocessPlan, codec: JournalCodec, at: datetime
) -> ReprocessResult:
    if not plan.valid:
        return ReprocessResult(plan.traceer_id, ReprocessOutcome.STILL_REJECTED, plan.code)
    if plan.invoice_number is not None and plan.payee is not None:
        holder = invoice_holder_txn(txn, plan.payee, plan.invoice_number)
        if holder is not None and holder != plan.traceer_id:
            return ReprocessResult(plan.traceer_id, ReprocessOutcome.INVOICE_TAKEN, "0030")
    txn.execute(
        "UPDATE messages SET invoice_number = ?, payee = ?, standard = COALESCE(?, standard)"
        " WHERE traceer_id = ?",
        (plan.invoice_number, plan.payee, plan.standard, plan.traceer_id),
    )
    record_lines_txn(txn, plan.lines, codec)
    add_status_txn(txn, plan.traceer_id, ACCEPTED_STATUS, at)
    return ReprocessResult(plan.traceer_id, ReprocessOutcome.ACCEPTED, lines_added=len(plan.lines))


def _accepted_txn(txn: Transaction, plan: ReprocessPlan, codec: JournalCodec) -> ReprocessResult:
    stored = {line.record_number: line for line in lines_of_txn(txn, plan.traceer_id, codec)}
    txn.execute(
        "SELECT record_number, state, retourcode FROM declaration_lines WHERE traceer_id = ?",
        (plan.traceer_id,),
    )
    states = {int(row[0]): (str(row[1]), row[2]) for row in txn.fetchall()}
    missing: list[DeclaredLine] = []
    refreshed = reopened = kept = 0
    for line in plan.lines:
        if line.record_number not in stored:
            missing.append(line)
            continue
        state, retourcode = states[line.record_number]
        if state == "open":
            if stored[line.record_number] != line:
                _refresh_txn(txn, line, codec, reopen=False)
                refreshed += 1
        elif state == "returned" and retourcode == RETURN_TO_DECLARE_ITSELF:
            _refresh_txn(txn, line, codec, reopen=True)
            reopened += 1
        else:
            kept += 1
    record_lines_txn(txn, missing, codec)
    return ReprocessResult(
        plan.traceer_id,
        ReprocessOutcome.REDECIDED,
        lines_added=len(missing),
        lines_refreshed=refreshed,
        lines_reopened=reopened,
        lines_kept=kept,
    )


def _refresh_txn(
    txn: Transaction, line: DeclaredLine, codec: JournalCodec, *, reopen: bool
) -> None:
    """The line's values as its file holds them now, and a new revision; reopened: open
    again, without the rules' earlier outcome."""
    (row,) = line_rows(txn, [line], codec)
    before = lookup_hashes_txn(txn, line.traceer_id, line.record_number)
    values: list[Any] = list(row[2:])
    sets = ", ".join(f"{column} = ?" for column in _FILE_COLUMNS)
    if reopen:
        sets += (
            ", state = 'open', reason = NULL, retourcode = NULL, outcome = NULL,"
            " outcome_codes = NULL, granted_amount = NULL, answered_in = NULL"
        )
    txn.execute(
        f"UPDATE declaration_lines SET {sets}, revision = revision + 1"  # noqa: S608 - fixed names
        " WHERE traceer_id = ? AND record_number = ?",
        (*values, line.traceer_id, line.record_number),
    )
    relink_bsn_txn(txn, before, row_hashes(row))


def _with_outcome(audit: NewAuditEntry, result: ReprocessResult) -> NewAuditEntry:
    counts = (
        f"{result.lines_added} toegevoegd, {result.lines_refreshed} bijgewerkt, "
        f"{result.lines_reopened} opnieuw te beoordelen, {result.lines_kept} ongemoeid"
    )
    code = f" ({result.code})" if result.code else ""
    detail = f"{audit.detail} [uitkomst: {result.outcome.value}{code}; regels: {counts}]"
    return NewAuditEntry(
        at=audit.at,
        actor=audit.actor,
        role=audit.role,
        action=audit.action,
        subject=audit.subject,
        detail=detail,
        origin=audit.origin,
    )
