"""Bulk actions: one case action on every case of a filtered selection, as a *batch* that
runs in the background, one case at a time, and can be paused, resumed and cancelled.

A batch is made in two steps, so that the administrator confirms exactly what will happen:

1. a :class:`BatchPreview` of a :class:`~gateway.admin.cases.CaseFilter` (the queue's
   filters) and an action: the cases the action fits (ids, kinds, insurer, participant,
   age), how many of the filtered cases it does *not* fit (left out), and a
   :attr:`~BatchPreview.digest` of the chosen ids;
2. the batch itself, made only if the selection still has that digest (otherwise the
   administrator sees the new preview first). It snapshots the chosen ids: cases that
   turn up later are not in it.

Each case is then done on its own, in its own transaction with its own audit entry (the
store's ``act_txn``): a case that no longer fits the action by then is *skipped* with
the reason, a case whose action broke unexpectedly is *failed*; neither stops the batch.

Which actions may run in bulk: every :class:`~gateway.admin.cases.CaseAction` whose only
input is one reason text for all cases (retry, write off with a reason, reopen, a note;
the later kind-specific actions that need nothing per case: break a bundle, pass a
rejection on, close a phase). An action that needs input of its own for each case (a
correction to resubmit) is in :data:`~gateway.admin.cases.NEEDS_INPUT` and is refused
in bulk with a clear message; should one be forgotten there, its own check refuses each
case in the batch, which is then recorded as skipped with that check's reason. An action
whose effect is prepared first (break a bundle, pass a rejection on, close a phase) is
prepared per case by the admin service, as for a single case, then done in the case's
transaction.

Pure: values in, values out; "now" is given. Batches are kept through the port
:class:`~gateway.ports.admin.BatchStore`.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from gateway.admin.accounts import Actor
from gateway.admin.cases import (
    MAX_REASON_LENGTH,
    NEEDS_INPUT,
    NEEDS_REASON,
    ActionRefusedError,
    Case,
    CaseAction,
    CaseFilter,
    CaseKind,
    allowed_actions,
    select_cases,
)
from gateway.errors import ErrorKind

__all__ = [
    "MAX_BATCH_CASES",
    "NEEDS_CASE_INPUT",
    "Batch",
    "BatchControl",
    "BatchItem",
    "BatchPreview",
    "BatchProgress",
    "BatchState",
    "ItemOutcome",
    "NewBatch",
    "NextStep",
    "StepResult",
    "batch_subject",
    "check_bulk_action",
    "filter_from_json",
    "filter_json",
    "next_state",
    "preview_batch",
    "selection_digest",
]

MAX_BATCH_CASES: Final = 5000

# Actions that need input of their own for each case (a correction to resubmit): never in
# a batch. The cases module's own list, so that a new action of that sort is refused here
# as soon as it names itself there.
NEEDS_CASE_INPUT: Final = NEEDS_INPUT


class BatchState(enum.StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    CANCELLED = "cancelled"  # stopped for good; what was not done yet stays undone
    FINISHED = "finished"  # every case done, skipped or failed


class ItemOutcome(enum.StrEnum):
    DONE = "done"
    SKIPPED = "skipped"  # the case no longer fitted the action (the reason is kept)
    FAILED = "failed"  # the action broke unexpectedly on this case


class BatchControl(enum.StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"


_TRANSITIONS: Final[Mapping[BatchControl, tuple[frozenset[BatchState], BatchState]]] = {
    BatchControl.PAUSE: (frozenset({BatchState.RUNNING}), BatchState.PAUSED),
    BatchControl.RESUME: (frozenset({BatchState.PAUSED}), BatchState.RUNNING),
    BatchControl.CANCEL: (frozenset({BatchState.RUNNING, BatchState.PAUSED}), BatchState.CANCELLED),
}


def next_state(current: BatchState, control: BatchControl) -> BatchState:
    """The state ``control`` takes a batch to; refused when it does not fit."""
    allowed, target = _TRANSITIONS[control]
    if current not in allowed:
        raise ActionRefusedError(
            "batch-past-niet",
            f"Een batch die {current.value} is kan niet {control.value}.",
        )
    return target


def batch_subject(batch_id: int) -> str:
    """A batch's subject in the audit log."""
    return f"batch:{batch_id}"


def check_bulk_action(action: CaseAction, reason: str | None) -> str:
    """Refuse an action that cannot run in bulk, or a reason it lacks; the reason, trimmed.
    ``reason`` None: not asked yet (the confirmation page, before the form is filled in)."""
    if action in NEEDS_CASE_INPUT:
        raise ActionRefusedError(
            "niet-in-bulk",
            f"Actie {action.value} vraagt per zaak eigen invoer en kan niet in bulk; "
            "doe hem per zaak.",
            kind=ErrorKind.INVALID,
        )
    if reason is None:
        return ""
    reason = reason.strip()
    if len(reason) > MAX_REASON_LENGTH:
        raise ActionRefusedError(
            "reden-te-lang",
            f"Een reden is hoogstens {MAX_REASON_LENGTH} tekens.",
            kind=ErrorKind.INVALID,
        )
    if action in NEEDS_REASON and not reason:
        what = "notitie" if action is CaseAction.NOTE else "reden"
        raise ActionRefusedError(
            "reden-ontbreekt",
            f"Vul een {what} in (die geldt voor alle zaken).",
            kind=ErrorKind.INVALID,
        )
    return reason


def selection_digest(case_ids: Iterable[str]) -> str:
    """A short fingerprint of an ordered list of case ids (what the confirmation showed)."""
    encoded = json.dumps(list(case_ids), ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(encoded).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class BatchPreview:
    """What a batch of ``action`` on the cases of ``query`` will do, as of ``now``."""

    query: CaseFilter
    action: CaseAction
    reason: str
    cases: list[Case]  # the action fits these: the batch does them, oldest first
    left_out: int  # filtered cases the action does not fit
    left_out_kinds: dict[CaseKind, int]
    now: datetime

    @property
    def case_ids(self) -> list[str]:
        return [case.id for case in self.cases]

    @property
    def digest(self) -> str:
        return selection_digest(self.case_ids)

    @property
    def kinds(self) -> dict[CaseKind, int]:
        return dict(Counter(case.kind for case in self.cases))

    @property
    def too_many(self) -> bool:
        return len(self.cases) > MAX_BATCH_CASES


def preview_batch(
    every: Iterable[Case],
    query: CaseFilter,
    action: CaseAction,
    reason: str | None,
    now: datetime,
) -> BatchPreview:
    """The preview of a batch (permissions aside): raises for an action not fit for bulk
    (and for a reason it lacks, unless ``reason`` is None: not asked yet)."""
    reason = check_bulk_action(action, reason)
    chosen: list[Case] = []
    left: list[Case] = []
    for case in select_cases(every, query, now):
        (chosen if action in allowed_actions(case) else left).append(case)
    return BatchPreview(
        query, action, reason, chosen, len(left), dict(Counter(c.kind for c in left)), now
    )


@dataclass(frozen=True, slots=True)
class NewBatch:
    """A batch to store: its action, reason and filter, who made it, and the case ids."""

    action: CaseAction
    reason: str
    query: CaseFilter
    case_ids: tuple[str, ...]
    kinds: Mapping[CaseKind, int]
    created_at: datetime
    created_by: str
    role: str
    origin: str


@dataclass(frozen=True, slots=True)
class BatchProgress:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    remaining: int = 0

    @property
    def total(self) -> int:
        return self.done + self.skipped + self.failed + self.remaining


@dataclass(frozen=True, slots=True)
class BatchItem:
    position: int
    case_id: str
    outcome: ItemOutcome | None  # None: not done yet
    detail: str  # why it was skipped or failed
    at: datetime | None


@dataclass(frozen=True, slots=True)
class Batch:
    id: int
    action: CaseAction
    reason: str
    query: CaseFilter
    state: BatchState
    created_at: datetime
    created_by: str
    role: str
    origin: str
    updated_at: datetime
    progress: BatchProgress
    items: tuple[BatchItem, ...] = ()  # filled in for one batch's page only

    @property
    def active(self) -> bool:
        return self.state in (BatchState.RUNNING, BatchState.PAUSED)


@dataclass(frozen=True, slots=True)
class NextStep:
    """A batch's next case to do, and as whom (its creator, from ``bulk:<id>``)."""

    batch_id: int
    position: int
    case_id: str
    action: CaseAction
    reason: str
    actor: Actor


@dataclass(frozen=True, slots=True)
class StepResult:
    """What one step of a batch did: one case (or found the batch finished)."""

    batch_id: int
    action: CaseAction
    case_id: str | None  # None: nothing was left, the batch is finished now
    kind: CaseKind | None
    outcome: ItemOutcome | None  # None: nothing done (the batch stopped meanwhile)
    finished: bool


# --- the filter, kept with the batch ----------------------------------------------------------


def filter_json(query: CaseFilter) -> dict[str, Any]:
    """A filter as JSON (the API's ``CaseFilter`` schema; also how the store keeps it)."""
    return {
        "kinds": sorted(kind.value for kind in query.kinds),
        "insurer": query.insurer,
        "participant": query.participant,
        "retourcode": query.retourcode,
        "minAgeDays": query.min_age_days,
        "maxAgeDays": query.max_age_days,
        "includeClosed": query.include_closed,
    }


def filter_from_json(value: Mapping[str, Any]) -> CaseFilter:
    """The inverse of :func:`filter_json` (for what the store wrote: trusted input)."""
    return CaseFilter(
        kinds=frozenset(CaseKind(kind) for kind in value.get("kinds", ())),
        insurer=value.get("insurer"),
        participant=value.get("participant"),
        retourcode=value.get("retourcode"),
        min_age_days=value.get("minAgeDays"),
        max_age_days=value.get("maxAgeDays"),
        include_closed=bool(value.get("includeClosed", False)),
    )
