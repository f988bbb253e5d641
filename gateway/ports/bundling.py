"""The bundling port: what a bundling run reads of the store and what it hands it to
record, in one transaction (:class:`BundleStore`, on SQL ``adapters.storage.bundling``).

The service is :class:`gateway.bundler.Bundler`; the values here are what passes between
it and the store: the run's input (:class:`BundleInput`), where every line ended
(:class:`LineOutcome`), the decisions (:class:`DecisionRecord`), the files to queue
(:class:`QueuedFile`), the retours it answers lines with (:class:`ReturnedRetour`), late
lines (:class:`LateLine`) and the guard the store checks before it records
(:class:`RunGuard`, else :class:`BundleConflictError`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol

from gateway.errors import ErrorKind, GatewayError
from gateway.lines import AnswerOutcome, DeclaredLine
from gateway.ports.messages import NewMessage
from gateway.rules.catalogue import Phase
from gateway.rules.claims import ClaimLink
from gateway.rules.model import (
    Decision,
    DecisionKind,
    Existing,
    LineKey,
    Place,
    Settings,
    overdue_on,
)

__all__ = [
    "BundleConflictError",
    "BundleInput",
    "BundleStore",
    "DecisionRecord",
    "LateLine",
    "LineAnswerNow",
    "LineOutcome",
    "QueuedFile",
    "ReturnedRetour",
    "RunGuard",
]


@dataclass(frozen=True)
class BundleInput:
    lines: list[DeclaredLine]
    existing: list[Existing]
    closed: set[tuple[str, Phase]]
    broken: set[tuple[str, Phase]] = field(default_factory=set)
    states: dict[LineKey, str] = field(default_factory=dict)  # where each line stood
    # Each line's revision as read: a run records only lines still at it.
    revisions: dict[LineKey, int] = field(default_factory=dict)
    # The answer an existing claimed line already has (outcome, retourcodes), by reference.
    answered: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    # The answer each line has already (outcome, granted amount), for the lines that have one.
    outcomes: dict[LineKey, tuple[str, int | None]] = field(default_factory=dict)
    # Each line's woman (the store's key), so that it is not computed again.
    women: dict[LineKey, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LineOutcome:
    """Where an original line ended, to store."""

    key: LineKey
    place: Place
    reason: str
    retourcode: str | None = None
    claim_reference: str | None = None
    outbound: str | None = None
    pregnancy: str | None = None
    phase: Phase | None = None
    decision: DecisionKind | None = None


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """A decision as the store keeps it: what the case pages explain, and what tells a
    waiting phase that is overdue."""

    pregnancy: str
    phase: Phase | None
    insurer: str
    kind: DecisionKind
    rule: str
    reasons: tuple[str, ...]
    waiting_for: str | None
    until: date | None
    overdue_on: date | None
    first_day: date | None

    @classmethod
    def of(cls, decision: Decision, settings: Settings) -> DecisionRecord:
        first = min((line.prestatie_date for line in decision.lines), default=None)
        return cls(
            decision.pregnancy,
            decision.phase,
            decision.insurer,
            decision.kind,
            decision.rule,
            decision.reasons,
            decision.waiting_for,
            decision.until,
            overdue_on(decision, settings),
            first,
        )


class BundleConflictError(GatewayError):
    """A line the run decided changed (another run, an action, a hand) before the run
    could record its outcome: nothing of the run is stored, and it is decided again."""

    code = "bundle-conflict"
    kind = ErrorKind.CONFLICT


@dataclass(frozen=True, slots=True)
class RunGuard:
    """What the store checks before it records a run: every line the run decided is
    still in the state and at the revision it read, the run still holds its lease, and
    the numbers it gave its claim files are still free: ``numbers`` is (sequence, the
    last number taken when the run numbered them, how many it took after it), and the
    store takes them in the same transaction."""

    expected: dict[LineKey, tuple[str, int]]
    lease_job: str | None = None
    lease_holder: str | None = None
    lease_seconds: float = 0.0
    numbers: tuple[str, int, int] | None = None


@dataclass(frozen=True, slots=True)
class QueuedFile:
    """A file for an insurer, to queue: declared under ``sender``'s AGB code."""

    message: NewMessage
    insurer: str
    sender: str


class BundleStore(Protocol):
    """What the bundler needs of the store (``adapters.storage.bundling``)."""

    def woman_of(self, line: DeclaredLine) -> str: ...
    def bundle_input(self) -> Awaitable[BundleInput]: ...
    def bundle_groups(self, limit: int) -> Awaitable[list[list[str]]]: ...
    def bundle_input_of(self, women: Sequence[str]) -> Awaitable[BundleInput]: ...
    def reserve(self, name: str, count: int) -> Awaitable[int]: ...
    def last_number(self, name: str) -> Awaitable[int]:
        """The last number of sequence ``name`` taken (0 before the first)."""
        ...

    def record_bundle(
        self,
        outbound: Sequence[QueuedFile],
        claims: Sequence[tuple[ClaimLink, str, str]],
        outcomes: Sequence[LineOutcome],
        at: datetime,
        decisions: Sequence[DecisionRecord] = (),
        retours: Sequence[ReturnedRetour] = (),
        late: Sequence[LateLine] = (),
        guard: RunGuard | None = None,
    ) -> Awaitable[None]: ...


@dataclass(frozen=True, slots=True)
class LineAnswerNow:
    """An answer the bundler itself gives a line: returned (9001), or the answer of the
    claimed line a late line joined."""

    key: LineKey
    outcome: AnswerOutcome
    granted: int
    codes: tuple[str, ...]
    reference: str | None = None  # the integral line whose answer this is


@dataclass(frozen=True)
class ReturnedRetour:
    """A retour to a participant answering some of its lines now (``answers``)."""

    message: NewMessage
    answers: tuple[LineAnswerNow, ...]


@dataclass(frozen=True, slots=True)
class LateLine:
    """A line that arrived after its phase was claimed: it joins that claimed line (its
    provenance), and gets that line's answer if there is one already (``answer``; a
    granted or rejected one then comes with a retour, one under review waits with the
    case)."""

    reference: str
    key: LineKey
    answer: LineAnswerNow | None
