"""The reprocessing port: the plan :class:`gateway.reprocess.Reprocessor` makes of an
upload's file checked again (:class:`ReprocessPlan`), and what applying it did
(:class:`ReprocessResult`), through :class:`ReprocessStore` (on SQL
``adapters.storage.reprocess``); and what the admin site and the CLI call to reprocess an
upload (:class:`UploadReprocessing`, i.e. :class:`gateway.reprocess.Reprocessor`).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Final, Protocol

from gateway.admin.accounts import Actor
from gateway.admin.audit import NewAuditEntry
from gateway.lines import DeclaredLine

__all__ = [
    "OUTCOME_TEXT",
    "ReprocessOutcome",
    "ReprocessPlan",
    "ReprocessResult",
    "ReprocessStore",
    "UploadReprocessing",
]


class ReprocessOutcome(enum.StrEnum):
    ACCEPTED = "accepted"  # rejected before, valid now: its lines stored
    STILL_REJECTED = "still_rejected"  # the file still fails the checks
    INVOICE_TAKEN = "invoice_taken"
    REDECIDED = "redecided"  # an accepted upload: its open and 9001 lines decided again


OUTCOME_TEXT: Final = {
    ReprocessOutcome.ACCEPTED: "Opnieuw verwerkt: het bestand is nu goedgekeurd; de regels "
    "zijn opgeslagen en worden gebundeld.",
    ReprocessOutcome.STILL_REJECTED: "Opnieuw verwerkt: het bestand is nog steeds technisch "
    "afgekeurd; er is niets veranderd.",
    ReprocessOutcome.INVOICE_TAKEN: "Opnieuw verwerkt: het bestand is nu goed, maar het "
    "factuurnummer is inmiddels door een ander bestand van de declarant gebruikt (0030); het "
    "blijft afgekeurd.",
    ReprocessOutcome.REDECIDED: "Opnieuw verwerkt: de open regels zijn bijgewerkt uit het "
    "bestand en de met 9001 teruggestuurde regels worden opnieuw beoordeeld.",
}


@dataclass(frozen=True, slots=True)
class ReprocessPlan:
    """What checking the upload's file again found, for the store to apply."""

    traceer_id: str
    valid: bool
    code: str | None  # the first retourcode when not valid
    lines: tuple[DeclaredLine, ...]
    standard: str | None
    invoice_number: str | None
    payee: str | None


@dataclass(frozen=True, slots=True)
class ReprocessResult:
    traceer_id: str
    outcome: ReprocessOutcome
    code: str | None = None
    lines_added: int = 0  # stored now (none of them was stored before)
    lines_refreshed: int = 0  # open lines whose stored values the file corrected
    lines_reopened: int = 0  # lines returned with 9001, to be decided again
    lines_kept: int = 0  # lines decided for good, left as they are

    @property
    def message(self) -> str:
        return OUTCOME_TEXT[self.outcome]

    @property
    def changed(self) -> bool:
        return bool(self.lines_added or self.lines_refreshed or self.lines_reopened)


class ReprocessStore(Protocol):
    def apply(self, plan: ReprocessPlan, audit: NewAuditEntry) -> Awaitable[ReprocessResult]:
        """Apply ``plan`` in one transaction with ``audit`` (its detail completed with the
        outcome): NotFoundError for no such upload; :class:`ActionRefusedError` for an
        accepted upload whose file fails the checks now."""
        ...


class UploadReprocessing(Protocol):
    """What the admin site calls to check an upload again after a configuration fix
    (:class:`gateway.reprocess.Reprocessor`)."""

    def reprocess(self, traceer_id: str, actor: Actor, reason: str) -> Awaitable[ReprocessResult]:
        """Check upload ``traceer_id`` again and store what follows (audited);
        :class:`~gateway.admin.cases.ActionRefusedError` when it may not or cannot be done,
        :class:`~gateway.errors.NotFoundError` for no such upload."""
        ...
