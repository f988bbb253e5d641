"""Cases: what needs an administrator's attention, and what may be done about each.

A case is computed, not filed: a *source* per kind finds in the store what is wrong now
(:class:`CaseFacts`) — an upload rejected at intake, an outbound file parked after failed
delivery, a retour that answers no file we sent — and the administrator's own record of
the case (:class:`CaseRecord`: written off, retried, reopened; kept in the admin tables)
says where it stands. :func:`build_case` combines the two:

* no record, or a record older than the facts (the file was parked *again* after it was
  retried): **open**;
* otherwise the record's state;
* facts that no longer hold (the retried file went out) and no record saying otherwise:
  **resolved** by itself.

Later kinds — an integral line the insurer rejected, a bundle the rules broke, a phase
waiting past its expected date — plug in the same way: a :class:`CaseKind` member, a
:class:`KindSpec` in :data:`KINDS` naming the actions it allows, and a source in the store
adapter. Their own actions (correct and resubmit, break the bundle, pass the rejection
on, close the phase) are :class:`CaseAction` members whose effect
(:mod:`gateway.resolution`) is prepared outside and stored in the action's transaction.

Pure: values in, values out; "now" is given.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from gateway.admin.accounts import Actor, Permission
from gateway.admin.audit import AuditAction
from gateway.errors import ErrorKind, GatewayError

__all__ = [
    "AUDITED",
    "KINDS",
    "NEEDS_EFFECT",
    "NEEDS_INPUT",
    "NEEDS_REASON",
    "STATE_AFTER",
    "ActionRefusedError",
    "Case",
    "CaseAction",
    "CaseFacts",
    "CaseFilter",
    "CaseKind",
    "CaseNote",
    "CaseRecord",
    "CaseState",
    "KindSpec",
    "allowed_actions",
    "build_case",
    "case_id",
    "check_action",
    "counts_by_kind",
    "parse_case_id",
    "select_cases",
]

MAX_REASON_LENGTH: Final = 2000


class CaseKind(enum.StrEnum):
    INTAKE_REJECTED = "intake_rejected"  # an upload failed the technical checks
    PARKED = "parked"  # an outbound file gave up after failed deliveries
    UNMATCHED_RETOUR = "unmatched_retour"  # a retour that answers no file we sent
    REJECTED_LINE = "rejected_line"  # an integral claim line the insurer rejected
    BUNDLE_BROKEN = "bundle_broken"  # the rules broke a bundle (care outside the IGO)
    WAITING_PHASE = "waiting_phase"  # a phase still waiting past its expected date


class CaseState(enum.StrEnum):
    OPEN = "open"
    RETRIED = "retried"
    WRITTEN_OFF = "written_off"
    RESOLVED = "resolved"  # the facts no longer hold (e.g. the file went out)
    RESUBMITTED = "resubmitted"  # a corrected claim went out in its place
    BROKEN = "broken"  # the bundle was broken: the lines went monodisciplinarily
    PASSED_ON = "passed_on"  # the rejection went on to the participants
    PHASE_CLOSED = "phase_closed"  # the administrator closed the waiting phase


class CaseAction(enum.StrEnum):
    RETRY = "retry"
    RESUBMIT = "resubmit"  # correct the rejected line and send it again
    BREAK_BUNDLE = "break_bundle"  # release the originals monodisciplinarily
    PASS_ON = "pass_on"  # noqa: S105 - the insurer's rejection on to the participants
    CLOSE_PHASE = "close_phase"  # close a waiting phase by hand
    WRITE_OFF = "write_off"
    REOPEN = "reopen"
    NOTE = "note"


# Actions that need more than a reason: the fields of a correction.
NEEDS_INPUT: Final = frozenset({CaseAction.RESUBMIT})
# Actions whose effect needs a reason (what the participants and the audit log are told).
NEEDS_REASON: Final = frozenset({CaseAction.WRITE_OFF, CaseAction.NOTE, CaseAction.BREAK_BUNDLE})


@dataclass(frozen=True, slots=True)
class KindSpec:
    kind: CaseKind
    label: str  # Dutch, as the queue shows it
    explanation: str  # what happened and what the administrator can do
    actions: frozenset[CaseAction]


_ALWAYS: Final = frozenset({CaseAction.WRITE_OFF, CaseAction.REOPEN, CaseAction.NOTE})

KINDS: Final[Mapping[CaseKind, KindSpec]] = {
    CaseKind.INTAKE_REJECTED: KindSpec(
        CaseKind.INTAKE_REJECTED,
        "Afgekeurd bij ontvangst",
        "Het bestand van de deelnemer is technisch afgekeurd; de deelnemer heeft een "
        "technische afkeuring (retourcode 0001 met de reden) klaargezet gekregen. Meestal "
        "stuurt de deelnemer een verbeterd bestand; boek de zaak af als dat geregeld is.",
        _ALWAYS,
    ),
    CaseKind.PARKED: KindSpec(
        CaseKind.PARKED,
        "Geparkeerd na mislukte verzending",
        "Het bestand kon na herhaalde pogingen niet bij de verzekeraar worden afgeleverd, "
        "of de berichtendienst heeft het na aflevering afgekeurd (de laatste fout noemt dan "
        "de status en de codes van de meldingen; er komt geen retourbestand). Bied het "
        "opnieuw aan als de verbinding weer werkt (het gaat met hetzelfde kenmerk opnieuw, "
        "de verzekeraar ziet geen tweede declaratie), of boek het af. Na een afkeuring "
        "helpt opnieuw aanbieden niet: zoek met de codes de oorzaak uit.",
        _ALWAYS | {CaseAction.RETRY},
    ),
    CaseKind.UNMATCHED_RETOUR: KindSpec(
        CaseKind.UNMATCHED_RETOUR,
        "Retour zonder verstuurd bestand",
        "De verzekeraar stuurde een retourbestand dat bij geen door de gateway verstuurd "
        "bestand hoort (of dat technisch onjuist is). Het is bewaard en verder niet "
        "verwerkt; zoek uit waar het bij hoort en boek het af.",
        _ALWAYS,
    ),
    CaseKind.REJECTED_LINE: KindSpec(
        CaseKind.REJECTED_LINE,
        "Integrale prestatie afgewezen",
        "De verzekeraar wees een integrale prestatie af; de oorspronkelijke regels van de "
        "deelnemers staan op 'in behandeling bij de IGO'. Verbeter de gegevens waarop is "
        "afgewezen en dien opnieuw in, breek de bundel (de regels gaan monodisciplinair), "
        "geef de afwijzing door aan de deelnemers, of boek af.",
        _ALWAYS | {CaseAction.RESUBMIT, CaseAction.BREAK_BUNDLE, CaseAction.PASS_ON},
    ),
    CaseKind.BUNDLE_BROKEN: KindSpec(
        CaseKind.BUNDLE_BROKEN,
        "Bundel gebroken",
        "De regels braken de bundel van deze fase: zorg buiten de IGO die geen parallelle "
        "declaratie is. De regels zijn monodisciplinair doorgestuurd of aan de deelnemers "
        "teruggegeven (9001). Controleer of dat klopt en boek de zaak af.",
        _ALWAYS,
    ),
    CaseKind.WAITING_PHASE: KindSpec(
        CaseKind.WAITING_PHASE,
        "Fase wacht te lang",
        "Deze fase wacht nog op een gebeurtenis (meestal de geboorte) die er allang had "
        "moeten zijn. Sluit de fase met de hand als er niets meer komt (de volgende "
        "bundelronde declareert wat er is), of boek af.",
        _ALWAYS | {CaseAction.CLOSE_PHASE},
    ),
}


def case_id(kind: CaseKind, ref: str) -> str:
    """A case's id: its kind and the id of what it is about (e.g. a traceer id)."""
    return f"{kind.value}:{ref}"


def parse_case_id(text: str) -> tuple[CaseKind, str] | None:
    kind, sep, ref = text.partition(":")
    if not sep or not ref or len(text) > 200:
        return None
    try:
        return CaseKind(kind), ref
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class CaseFacts:
    """What a source found in the store about one case."""

    kind: CaseKind
    ref: str  # what the case is about: the traceer id of a message
    since: datetime  # when the situation arose (or arose again)
    active: bool  # whether it still holds
    party: str  # the participant's AGB or the insurer's UZOVI of the message
    insurer: str | None = None
    participant: str | None = None
    participants: tuple[str, ...] = ()  # every participant a case of many lines concerns
    retourcodes: tuple[str, ...] = ()
    summary: str = ""  # a status description or the last delivery error
    filename: str | None = None
    standard: str | None = None
    sha256: str | None = None  # of the file, for the file view
    details: Mapping[str, str] = field(default_factory=dict)  # shown as they are

    @property
    def id(self) -> str:
        return case_id(self.kind, self.ref)


@dataclass(frozen=True, slots=True)
class CaseRecord:
    """The administrator's record of a case: its state since ``changed_at``."""

    case_id: str
    state: CaseState
    reason: str
    changed_at: datetime
    changed_by: str


@dataclass(frozen=True, slots=True)
class CaseNote:
    case_id: str
    at: datetime
    author: str
    text: str


@dataclass(frozen=True, slots=True)
class Case:
    facts: CaseFacts
    state: CaseState
    record: CaseRecord | None

    @property
    def id(self) -> str:
        return self.facts.id

    @property
    def kind(self) -> CaseKind:
        return self.facts.kind

    @property
    def is_open(self) -> bool:
        return self.state is CaseState.OPEN

    def age(self, now: datetime) -> timedelta:
        return max(now - self.facts.since, timedelta(0))


def build_case(facts: CaseFacts, record: CaseRecord | None) -> Case:
    if not facts.active:
        if record is not None and record.state is not CaseState.OPEN:
            return Case(facts, record.state, record)
        return Case(facts, CaseState.RESOLVED, record)
    if record is None or record.state is CaseState.OPEN or record.changed_at < facts.since:
        return Case(facts, CaseState.OPEN, record)
    return Case(facts, record.state, record)


# --- the queue -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CaseFilter:
    kinds: frozenset[CaseKind] = frozenset()  # empty: every kind
    insurer: str | None = None
    participant: str | None = None
    retourcode: str | None = None
    min_age_days: int | None = None
    max_age_days: int | None = None
    include_closed: bool = False

    def matches(self, case: Case, now: datetime) -> bool:
        facts = case.facts
        age = case.age(now)
        return (
            (self.include_closed or case.is_open)
            and (not self.kinds or facts.kind in self.kinds)
            and (self.insurer is None or facts.insurer == self.insurer)
            and (
                self.participant is None
                or facts.participant == self.participant
                or self.participant in facts.participants
            )
            and (self.retourcode is None or self.retourcode in facts.retourcodes)
            and (self.min_age_days is None or age >= timedelta(days=self.min_age_days))
            and (self.max_age_days is None or age <= timedelta(days=self.max_age_days))
        )


def select_cases(cases: Iterable[Case], query: CaseFilter, now: datetime) -> list[Case]:
    """The cases ``query`` asks for, oldest first (what waits longest comes first)."""
    chosen = [case for case in cases if query.matches(case, now)]
    return sorted(chosen, key=lambda case: (case.facts.since, case.id))


def counts_by_kind(cases: Iterable[Case]) -> dict[CaseKind, int]:
    """Open cases per kind, every kind named (0 too)."""
    counts = dict.fromkeys(CaseKind, 0)
    for case in cases:
        if case.is_open:
            counts[case.kind] += 1
    return counts


# --- actions ---------------------------------------------------------------------------------


class ActionRefusedError(GatewayError):
    """An action that may not be done: ``code`` for machines, the message for people;
    ``kind`` says why (most often it does not fit the case as it stands: a conflict)."""

    kind = ErrorKind.CONFLICT

    def __init__(self, code: str, message: str, *, kind: ErrorKind = ErrorKind.CONFLICT) -> None:
        super().__init__(message, code=code, kind=kind)


def allowed_actions(case: Case) -> list[CaseAction]:
    """The actions that fit ``case`` as it stands (permissions aside), in button order."""
    allowed = KINDS[case.kind].actions
    fitting: Sequence[CaseAction]
    if case.is_open:
        fitting = (
            CaseAction.RETRY,
            CaseAction.RESUBMIT,
            CaseAction.CLOSE_PHASE,
            CaseAction.PASS_ON,
            CaseAction.BREAK_BUNDLE,
            CaseAction.WRITE_OFF,
            CaseAction.NOTE,
        )
    elif case.facts.active:
        fitting = (CaseAction.REOPEN, CaseAction.NOTE)
    else:
        fitting = (CaseAction.NOTE,)
    return [action for action in fitting if action in allowed]


def check_action(case: Case, action: CaseAction, actor: Actor, reason: str) -> str:
    """Refuse what ``actor`` may not do to ``case``; the reason, trimmed, otherwise."""
    if not actor.may(Permission.RESOLVE_CASES):
        raise ActionRefusedError(
            "geen-recht",
            f"Rol {actor.role.value} mag geen zaken afhandelen.",
            kind=ErrorKind.NOT_ALLOWED,
        )
    reason = reason.strip()
    if len(reason) > MAX_REASON_LENGTH:
        raise ActionRefusedError(
            "reden-te-lang",
            f"Een reden is hoogstens {MAX_REASON_LENGTH} tekens.",
            kind=ErrorKind.INVALID,
        )
    if action in NEEDS_REASON and not reason:
        what = "notitie" if action is CaseAction.NOTE else "reden"
        raise ActionRefusedError("reden-ontbreekt", f"Vul een {what} in.", kind=ErrorKind.INVALID)
    if action not in allowed_actions(case):
        raise ActionRefusedError(
            "actie-past-niet",
            f"Actie {action.value} past niet bij deze zaak ({case.state.value}).",
        )
    return reason


# --- what an action makes of the case --------------------------------------------------------

# The state an action leaves the case's record in (a note leaves the record as it is).
# Which actions a state allows is :func:`allowed_actions`; together they are the cases'
# state machine, which the store follows in the action's transaction.
STATE_AFTER: Final[Mapping[CaseAction, CaseState]] = {
    CaseAction.RETRY: CaseState.RETRIED,
    CaseAction.RESUBMIT: CaseState.RESUBMITTED,
    CaseAction.BREAK_BUNDLE: CaseState.BROKEN,
    CaseAction.PASS_ON: CaseState.PASSED_ON,
    CaseAction.CLOSE_PHASE: CaseState.PHASE_CLOSED,
    CaseAction.WRITE_OFF: CaseState.WRITTEN_OFF,
    CaseAction.REOPEN: CaseState.OPEN,
}

# Actions whose effect (:mod:`gateway.resolution`) is prepared outside and applied in the
# action's transaction.
NEEDS_EFFECT: Final = frozenset(
    {CaseAction.RESUBMIT, CaseAction.BREAK_BUNDLE, CaseAction.PASS_ON, CaseAction.CLOSE_PHASE}
)

# Each action is logged under the audit action of the same name.
AUDITED: Final[Mapping[CaseAction, AuditAction]] = {
    action: AuditAction(action.value) for action in CaseAction
}
