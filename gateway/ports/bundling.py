"""The bundling port: what a bundling run reads of the store and what it hands it to
record, in one transaction (:class:`BundleStore`, on SQL ``adapters.storage.bundling``).

The service is :class:`gateway.bundler.Bundler`; the values here are what passes between
it and the store: the run's input (:class:`BundleInput`), where every line ended
(:class:`LineOutcome`), the decisions (:class:`DecisionRecord`), the files to queue
(:class:`QueuedFile`), the retours it answers lines with (:class:`ReturnedRetour`), late
lines (:class:`LateLine`) and the guard the store checks before it records
(:class:`RunGuard`, else :class:`BundleConflictError`). And what a run's batches are
between the bundler and a bundle worker (:class:`BatchWorkers`, on
``adapters.bundle_workers``): a batch's plan (:class:`BundlePlan`), what it counts
(:class:`BatchTally`) and a batch prepared to record (:class:`PreparedBatch`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, Protocol

from gateway.errors import ErrorKind, GatewayError
from gateway.lines import AnswerOutcome, DeclaredLine
from gateway.ports.messages import NewMessage
from gateway.rules.catalogue import Phase
from gateway.rules.claims import ClaimFile, ClaimLink
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
    "BatchTally",
    "BatchWorkerUnavailableError",
    "BatchWorkers",
    "BundleConflictError",
    "BundleInput",
    "BundlePlan",
    "BundleStore",
    "DecisionRecord",
    "ForwardFile",
    "LateLine",
    "LineAnswerNow",
    "LineOutcome",
    "PreparedBatch",
    "QueuedFile",
    "RecordBundle",
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


# --- a run's batches: planned, counted, prepared (in a bundle worker too) ----------------


@dataclass(frozen=True)
class ForwardFile:
    insurer: str
    participant: str
    source: str  # the upload the lines came from
    payload: bytes
    lines: tuple[LineKey, ...]
    standard: str


@dataclass
class BundlePlan:
    decisions: list[Decision]
    claims: list[ClaimFile] = field(default_factory=list)
    forwards: list[ForwardFile] = field(default_factory=list)

    def extend(self, other: BundlePlan) -> None:
        """Add a further batch's plan to this one."""
        self.decisions += other.decisions
        self.claims += other.claims
        self.forwards += other.forwards

    def summary(self) -> dict[str, Any]:
        kinds: dict[str, int] = defaultdict(int)
        places: dict[str, int] = defaultdict(int)
        for d in self.decisions:
            kinds[d.kind.value] += 1
            for p in d.placements.values():
                places[p.place.value] += 1
        return {
            "decisions": dict(kinds),
            "lines": dict(places),
            "claims": [
                {
                    "insurer": c.insurer,
                    "factuurnummer": c.invoice_number,
                    "lines": len(c.links),
                    "total": c.total,
                    "integralLines": [_link_json(link) for link in c.links],
                }
                for c in self.claims
            ],
            "forwards": [
                {"insurer": f.insurer, "participant": f.participant, "lines": len(f.lines)}
                for f in self.forwards
            ],
        }


@dataclass(frozen=True)
class BatchTally:
    """What a batch's plan counts, for the run's tally, the metrics and the log: small
    enough to hand over from a bundle worker where the plan itself is not."""

    claim_files: tuple[str, ...]  # their factuurnummers
    forward_files: int
    lines: dict[str, int]  # the batch's lines by place
    # per integral line: its insurer, its amount and the uploads of the lines it absorbs
    integral: tuple[tuple[str, int, tuple[str, ...]], ...]

    @classmethod
    def of(cls, plan: BundlePlan) -> BatchTally:
        lines: Counter[str] = Counter()
        for decision in plan.decisions:
            for placement in decision.placements.values():
                lines[placement.place.value] += 1
        return cls(
            tuple(claim.invoice_number for claim in plan.claims),
            len(plan.forwards),
            dict(lines),
            tuple(
                (claim.insurer, link.amount, tuple(upload for upload, _ in link.absorbs))
                for claim in plan.claims
                for link in claim.links
            ),
        )


def _link_json(link: ClaimLink) -> dict[str, Any]:
    """One integral line of a claim file: what it claims, for which days, what it absorbed."""
    return {
        "reference": link.reference,
        "pregnancy": link.pregnancy,
        "phase": link.phase.value,
        "prestatie": link.prestatie,
        "amount": link.amount,
        "from": link.first_day.isoformat() if link.first_day else None,
        "to": link.last_day.isoformat() if link.last_day else None,
        "absorbs": [f"{traceer_id}#{number}" for traceer_id, number in link.absorbs],
        "credits": link.credits,
    }


# The arguments of BundleStore.record_bundle, in order.
RecordBundle = tuple[
    list[QueuedFile],
    list[tuple[ClaimLink, str, str]],
    list[LineOutcome],
    datetime,
    list[DecisionRecord],
    list[ReturnedRetour],
    list[LateLine],
    RunGuard,
]


@dataclass(frozen=True)
class PreparedBatch:
    """A batch decided and built: its women, its plan (None when a bundle worker prepared
    it), what the plan counts, what recording it writes, when the uploads its claims
    absorb arrived, and how many factuurnummers it takes."""

    women: tuple[str, ...]
    plan: BundlePlan | None
    tally: BatchTally
    recording: RecordBundle
    uploaded_at: dict[str, datetime]
    numbers: int

    def without_plan(self) -> PreparedBatch:
        """This batch without its plan: what a bundle worker hands over (the decisions
        with every line of the batch would cost more to hand over than recording the
        batch needs)."""
        return replace(self, plan=None)


class BatchWorkerUnavailableError(GatewayError):
    """A bundle worker could not prepare a batch (none running, it ended, or it failed):
    the bundler prepares that batch itself."""

    code = "bundle-worker-unavailable"
    kind = ErrorKind.UNAVAILABLE


class BatchWorkers(Protocol):
    """Prepares a run's batches in a process of its own (:mod:`adapters.bundle_workers`):
    what :meth:`Bundler.prepare_batch` gives, read from the same store, without the plan
    (:meth:`PreparedBatch.without_plan`) and with no lease in its guard."""

    def prepare(
        self, women: Sequence[str], taken: int, now: datetime, arrivals: bool
    ) -> Awaitable[PreparedBatch]:
        """The batch of ``women``, numbered on from ``taken`` and decided as at ``now``
        (with when its uploads arrived if ``arrivals``); fails with
        :class:`BatchWorkerUnavailableError` when it could not be prepared there."""
        ...
