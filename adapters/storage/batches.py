"""Bulk-action batches on SQL (:class:`gateway.admin.batches.BatchStore`), in the admin
tables of the message database.

A step is two interactions: :func:`next_step_txn` names the next case of the oldest
running batch (the service then prepares the effect of an action that needs one, e.g.
breaking a bundle, outside any transaction, as for a single case), and
:func:`do_step_txn` does the action with the store's own :func:`act_txn` (which checks
the case as it stands in that transaction and appends the case's audit entry) and
records the case's outcome — in one transaction, so a stop at any moment leaves each
case either done and recorded, or untouched and still to do. A case the action no longer
fits (or that is gone) is *skipped* with the refusal's message; an unexpected error in
the action's effect rolls back to a savepoint and the case is *failed* with the error's
type (never its text, which may quote data). On PostgreSQL the batch row is locked
(``FOR UPDATE``) while its case is done, and a case already recorded is never done again,
so runners in several gateway instances, or a runner and ``igo-gateway cases batch
--run``, take turns and never do a case twice.

The case actions run as the batch's creator (name and role as at creation), from the
origin ``bulk:<batch id>``: the audit log shows for every case who decided it and that it
was done by a batch.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any, Final

import psycopg
from twisted.internet.defer import Deferred

from adapters.storage.audit import append_audit_txn
from adapters.storage.cases import act_txn
from adapters.storage.database import POSTGRES, Database, Transaction, decode_timestamp
from adapters.storage.journal import JournalCodec
from gateway.admin.accounts import Actor, Role
from gateway.admin.audit import AuditAction, NewAuditEntry
from gateway.admin.batches import (
    Batch,
    BatchControl,
    BatchItem,
    BatchProgress,
    BatchState,
    ItemOutcome,
    NewBatch,
    NextStep,
    StepResult,
    batch_subject,
    filter_from_json,
    filter_json,
    next_state,
)
from gateway.admin.cases import ActionRefusedError, CaseAction, parse_case_id
from gateway.errors import NotFoundError
from gateway.ports.resolution import Effect

__all__ = ["SqlBatchStore"]

_CONTROL_AUDIT: Final = {
    BatchControl.PAUSE: AuditAction.BATCH_PAUSED,
    BatchControl.RESUME: AuditAction.BATCH_RESUMED,
    BatchControl.CANCEL: AuditAction.BATCH_CANCELLED,
}


class SqlBatchStore:
    def __init__(self, database: Database, codec: JournalCodec | None = None) -> None:
        self.database = database
        self.codec = codec or JournalCodec(None)

    def create_batch(self, new: NewBatch) -> Deferred[Batch]:
        return self.database.run_interaction("admin_create_batch", create_batch_txn, new)

    def batch(self, batch_id: int, *, items: bool = False) -> Deferred[Batch | None]:
        return self.database.run_read("admin_batch", batch_txn, batch_id, items)

    def batches(self, limit: int = 100) -> Deferred[list[Batch]]:
        return self.database.run_read("admin_batches", batches_txn, limit)

    def control_batch(
        self, batch_id: int, control: BatchControl, actor: Actor, at: datetime
    ) -> Deferred[Batch]:
        return self.database.run_interaction(
            "admin_control_batch", control_batch_txn, batch_id, control, actor, at
        )

    def next_step(self, at: datetime) -> Deferred[NextStep | StepResult | None]:
        return self.database.run_interaction("admin_next_step", next_step_txn, at)

    def do_step(
        self, step: NextStep, effect: Effect | None, refused: str | None, at: datetime
    ) -> Deferred[StepResult]:
        return self.database.run_interaction(
            "admin_do_step", do_step_txn, step, effect, refused, at, self.codec
        )


_SELECT_BATCHES: Final = (
    "SELECT id, action, reason, filter, state, created_at, created_by, created_role,"
    " created_origin, updated_at FROM admin_batches"
)


def _progress_txn(txn: Transaction, batch_id: int) -> BatchProgress:
    txn.execute(
        "SELECT outcome, count(*) FROM admin_batch_items WHERE batch_id = ? GROUP BY outcome",
        (batch_id,),
    )
    counts = {row[0]: int(row[1]) for row in txn.fetchall()}
    return BatchProgress(
        done=counts.get(ItemOutcome.DONE.value, 0),
        skipped=counts.get(ItemOutcome.SKIPPED.value, 0),
        failed=counts.get(ItemOutcome.FAILED.value, 0),
        remaining=counts.get(None, 0),
    )


def _batch(txn: Transaction, row: tuple[Any, ...], items: bool) -> Batch:
    batch_id = int(row[0])
    found: tuple[BatchItem, ...] = ()
    if items:
        txn.execute(
            "SELECT position, case_id, outcome, detail, at FROM admin_batch_items"
            " WHERE batch_id = ? ORDER BY position",
            (batch_id,),
        )
        found = tuple(
            BatchItem(
                position=int(r[0]),
                case_id=r[1],
                outcome=None if r[2] is None else ItemOutcome(r[2]),
                detail=r[3],
                at=None if r[4] is None else decode_timestamp(r[4]),
            )
            for r in txn.fetchall()
        )
    return Batch(
        id=batch_id,
        action=CaseAction(row[1]),
        reason=row[2],
        query=filter_from_json(json.loads(row[3])),
        state=BatchState(row[4]),
        created_at=decode_timestamp(row[5]),
        created_by=row[6],
        role=row[7],
        origin=row[8],
        updated_at=decode_timestamp(row[9]),
        progress=_progress_txn(txn, batch_id),
        items=found,
    )


_INSERT_BATCH: Final = (
    "INSERT INTO admin_batches (action, reason, filter, state, created_at, created_by,"
    " created_role, created_origin, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_BATCH_RETURNING: Final = _INSERT_BATCH + " RETURNING id"


def create_batch_txn(txn: Transaction, new: NewBatch) -> Batch:
    txn.execute(
        _INSERT_BATCH_RETURNING if txn.engine == POSTGRES else _INSERT_BATCH,
        (
            new.action.value,
            new.reason,
            json.dumps(filter_json(new.query), sort_keys=True),
            BatchState.RUNNING.value,
            new.created_at,
            new.created_by,
            new.role,
            new.origin,
            new.created_at,
        ),
    )
    if txn.engine != POSTGRES:
        txn.execute("SELECT last_insert_rowid()")
    row = txn.fetchone()
    assert row is not None
    batch_id = int(row[0])
    for position, case in enumerate(new.case_ids):
        txn.execute(
            "INSERT INTO admin_batch_items (batch_id, position, case_id) VALUES (?, ?, ?)",
            (batch_id, position, case),
        )
    kinds = ", ".join(f"{kind.value} {n}" for kind, n in sorted(new.kinds.items()))
    detail = f"{new.action.value} op {len(new.case_ids)} zaken ({kinds or 'geen'})"
    if new.reason:
        detail += f"; reden: {new.reason}"
    append_audit_txn(
        txn,
        NewAuditEntry(
            new.created_at,
            new.created_by,
            new.role,
            AuditAction.BATCH_CREATED,
            batch_subject(batch_id),
            detail,
            new.origin,
        ),
    )
    created = batch_txn(txn, batch_id, False)
    assert created is not None
    return created


def batch_txn(txn: Transaction, batch_id: int, items: bool) -> Batch | None:
    txn.execute(_SELECT_BATCHES + " WHERE id = ?", (batch_id,))
    row = txn.fetchone()
    return None if row is None else _batch(txn, row, items)


def batches_txn(txn: Transaction, limit: int) -> list[Batch]:
    txn.execute(_SELECT_BATCHES + " ORDER BY id DESC LIMIT ?", (limit,))
    return [_batch(txn, row, False) for row in txn.fetchall()]


def _lock_batch_txn(txn: Transaction, where: str, params: tuple[object, ...]) -> Any:
    lock = " FOR UPDATE" if txn.engine == POSTGRES else ""
    txn.execute(_SELECT_BATCHES + where + lock, params)
    return txn.fetchone()


def control_batch_txn(
    txn: Transaction, batch_id: int, control: BatchControl, actor: Actor, at: datetime
) -> Batch:
    row = _lock_batch_txn(txn, " WHERE id = ?", (batch_id,))
    if row is None:
        raise NotFoundError(batch_subject(batch_id))
    target = next_state(BatchState(row[4]), control)
    txn.execute(
        "UPDATE admin_batches SET state = ?, updated_at = ? WHERE id = ?",
        (target.value, at, batch_id),
    )
    progress = _progress_txn(txn, batch_id)
    append_audit_txn(
        txn,
        NewAuditEntry(
            at,
            actor.name,
            actor.role.value,
            _CONTROL_AUDIT[control],
            batch_subject(batch_id),
            f"na {progress.total - progress.remaining} van {progress.total} zaken",
            actor.origin,
        ),
    )
    changed = batch_txn(txn, batch_id, False)
    assert changed is not None
    return changed


def next_step_txn(txn: Transaction, at: datetime) -> NextStep | StepResult | None:
    """The next case of the oldest running batch; a batch with none left is finished here
    (a :class:`StepResult` with ``finished``). None: no batch runs."""
    row = _lock_batch_txn(txn, " WHERE state = ? ORDER BY id LIMIT 1", (BatchState.RUNNING.value,))
    if row is None:
        return None
    batch_id = int(row[0])
    action = CaseAction(row[1])
    actor = Actor(row[6], Role(row[7]), f"bulk:{batch_id}")
    txn.execute(
        "SELECT position, case_id FROM admin_batch_items"
        " WHERE batch_id = ? AND outcome IS NULL ORDER BY position LIMIT 1",
        (batch_id,),
    )
    item = txn.fetchone()
    if item is not None:
        return NextStep(batch_id, int(item[0]), str(item[1]), action, row[2], actor)
    txn.execute(
        "UPDATE admin_batches SET state = ?, updated_at = ? WHERE id = ?",
        (BatchState.FINISHED.value, at, batch_id),
    )
    progress = _progress_txn(txn, batch_id)
    append_audit_txn(
        txn,
        NewAuditEntry(
            at,
            actor.name,
            actor.role.value,
            AuditAction.BATCH_FINISHED,
            batch_subject(batch_id),
            f"{progress.done} gedaan, {progress.skipped} overgeslagen, {progress.failed} mislukt",
            actor.origin,
        ),
    )
    return StepResult(batch_id, action, None, None, None, finished=True)


def do_step_txn(
    txn: Transaction,
    step: NextStep,
    effect: Effect | None,
    refused: str | None,
    at: datetime,
    codec: JournalCodec,
) -> StepResult:
    """Do ``step``'s case (with the ``effect`` prepared for it), or record it skipped
    because preparing it was ``refused``; nothing if the batch was paused or cancelled,
    or the case done, since ``step`` was taken."""
    parsed = parse_case_id(step.case_id)
    kind = parsed[0] if parsed else None
    row = _lock_batch_txn(txn, " WHERE id = ?", (step.batch_id,))
    txn.execute(
        "SELECT outcome FROM admin_batch_items WHERE batch_id = ? AND position = ?",
        (step.batch_id, step.position),
    )
    item = txn.fetchone()
    if row is None or row[4] != BatchState.RUNNING.value or item is None or item[0] is not None:
        return StepResult(step.batch_id, step.action, step.case_id, kind, None, finished=False)
    if refused is not None:
        outcome, detail = ItemOutcome.SKIPPED, refused
    else:
        outcome, detail = _do_case_txn(txn, step, effect, at, codec)
    txn.execute(
        "UPDATE admin_batch_items SET outcome = ?, detail = ?, at = ?"
        " WHERE batch_id = ? AND position = ?",
        (outcome.value, detail, at, step.batch_id, step.position),
    )
    txn.execute("UPDATE admin_batches SET updated_at = ? WHERE id = ?", (at, step.batch_id))
    return StepResult(step.batch_id, step.action, step.case_id, kind, outcome, finished=False)


# Errors of the database rather than of the case (a lock timeout, a deadlock, a lost
# connection): they pass, so they must not fail a case for good.
_PASSING: Final = (sqlite3.OperationalError, psycopg.OperationalError)


def _do_case_txn(
    txn: Transaction, step: NextStep, effect: Effect | None, at: datetime, codec: JournalCodec
) -> tuple[ItemOutcome, str]:
    txn.execute("SAVEPOINT batch_case")
    try:
        act_txn(txn, step.case_id, step.action, step.actor, step.reason, at, effect, codec)
    except ActionRefusedError as refused:
        txn.execute("ROLLBACK TO SAVEPOINT batch_case")
        outcome, detail = ItemOutcome.SKIPPED, str(refused)
    except LookupError:
        txn.execute("ROLLBACK TO SAVEPOINT batch_case")
        outcome, detail = ItemOutcome.SKIPPED, "De zaak bestaat niet meer."
    except _PASSING:
        raise  # locked, deadlocked, connection lost: the whole step is tried again later
    except Exception as error:
        # The action's effect broke (e.g. found the store not as its check saw it): this
        # case fails, the batch goes on. Should the database itself be gone, the rollback
        # raises and the whole step is tried again later. The type only: an error's text
        # may quote data.
        txn.execute("ROLLBACK TO SAVEPOINT batch_case")
        outcome, detail = ItemOutcome.FAILED, f"Onverwachte fout ({type(error).__name__})."
    else:
        outcome, detail = ItemOutcome.DONE, ""
    txn.execute("RELEASE SAVEPOINT batch_case")
    return outcome, detail
