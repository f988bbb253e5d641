"""What a case page and the pregnancy view show besides the case itself: the integral line,
the original lines it absorbed (who declared what, when, for how much, in which file), the
decision of the rules with its reasons, and the versions of a corrected line.

Values only; the store fills them in (``adapters.storage.resolution``). No BSN or name is
part of them: lines are shown by participant, date, prestatie and reference number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

__all__ = ["CaseDetail", "ClaimView", "DecisionView", "LineView", "PregnancyView"]


@dataclass(frozen=True, slots=True)
class LineView:
    traceer_id: str  # the upload it came from
    record_number: int
    participant: str
    standard: str
    filename: str | None
    prestatiecode: str
    prestatie_date: date
    amount: int | None
    reference: str
    state: str  # where bundling put it
    reason: str | None
    outcome: str | None  # granted, rejected, review, returned
    granted: int | None
    codes: tuple[str, ...]
    claim_reference: str | None
    phase: str | None
    insurer: str


@dataclass(frozen=True, slots=True)
class ClaimView:
    reference: str
    invoice_number: str
    record_number: int
    insurer: str
    pregnancy: str
    phase: str
    prestatie: str
    amount: int
    created_at: datetime
    outbound: str
    corrects: str | None = None  # the line this corrected one replaces
    changes: dict[str, tuple[str, str]] = field(default_factory=dict)  # field → (was, is)
    created_by: str | None = None


@dataclass(frozen=True, slots=True)
class DecisionView:
    pregnancy: str
    phase: str
    insurer: str
    kind: str
    rule: str
    reasons: tuple[str, ...]
    waiting_for: str | None
    until: date | None
    overdue_on: date | None
    decided_at: datetime


@dataclass(frozen=True)
class CaseDetail:
    """The integral line of a case (if any) and every version of it, oldest first; the
    original lines concerned; the decisions that placed them."""

    claim: ClaimView | None = None
    versions: tuple[ClaimView, ...] = ()
    lines: tuple[LineView, ...] = ()
    decisions: tuple[DecisionView, ...] = ()
    pregnancy: str | None = None


@dataclass(frozen=True)
class PregnancyView:
    pregnancy: str
    lines: tuple[LineView, ...]
    claims: tuple[ClaimView, ...]
    decisions: tuple[DecisionView, ...]
