"""The values the integral rules work on: the terms (participants, contracts, settings) and
what they decide (pregnancies, placements, claim lines, decisions).

Every original line ends in exactly one :class:`Place`: absorbed into one integral claim
line, forwarded to the insurer monodisciplinarily, returned to its participant to declare
itself, cancelled against its own correction, or waiting.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from operator import attrgetter

from gateway.lines import AnsweredLine, DeclaredLine
from gateway.rules.catalogue import Phase

__all__ = [
    "ClaimLine",
    "Contract",
    "Decision",
    "DecisionKind",
    "Discipline",
    "Distribution",
    "Existing",
    "LineKey",
    "Participant",
    "Place",
    "Placement",
    "Pregnancy",
    "RuleSet",
    "Settings",
    "Standing",
    "Terms",
    "Variant",
    "line_key",
    "overdue_on",
]

LineKey = tuple[str, int]  # (traceerId of the upload, NUM040 of the line)


class Discipline(enum.StrEnum):
    """midwifery (verloskundigenpraktijk), kraamzorg (maternity care) or hospital."""

    MIDWIFERY = "midwifery"  # verloskundigenpraktijk
    KRAAMZORG = "kraamzorg"  # maternity-care organisation
    HOSPITAL = "hospital"  # ziekenhuis / obstetrics group (MSB)


class Distribution(enum.StrEnum):
    """How a granted integral amount is divided over the participants: as each declared,
    or by the contract's shares."""

    DECLARED = "declared"
    SHARES = "shares"


class RuleSet(enum.StrEnum):
    """Which integral rules a contract follows."""

    EXPERIMENT_2017 = "experiment-2017"  # with bundle breakers
    REGULAR_2023 = "regular-2023"  # without: overlap is settled in the contract


class Variant(enum.StrEnum):
    """How the participant relates to the IGO (the handreiking's variants A and B)."""

    A = "A"  # member / participant of the IGO
    B = "B"  # delivers care for the IGO under an agreement of mutual services
    C = "C"  # no relation with the IGO; its files pass through the gateway unbundled


# A modelled retourcode (no published one fits): "not declared integrally — declare this
# line yourself to the insurer".
RETURN_TO_DECLARE_ITSELF = "9001"


#: A line's key, ``(line.traceer_id, line.record_number)``: an ``attrgetter``, as bundling
#: and unpacking take it of every line several times.
line_key: Callable[[AnsweredLine], LineKey] = attrgetter("traceer_id", "record_number")


class Standing(enum.StrEnum):
    BUNDLED = "bundled"  # A or B, in a bundled period
    SELF = "self"  # A or B, declaring for itself in this period
    OUTSIDE = "outside"  # variant C, unknown, or outside every participation period


@dataclass(frozen=True, slots=True)
class Participant:
    agb: str
    variant: Variant
    periods: tuple[tuple[date | None, date | None, bool], ...]  # (joined, left, bundled)

    def standing(self, day: date) -> Standing:
        if self.variant is Variant.C:
            return Standing.OUTSIDE
        for joined, left, bundled in self.periods:
            if (joined is None or joined <= day) and (left is None or day <= left):
                return Standing.BUNDLED if bundled else Standing.SELF
        return Standing.OUTSIDE


@dataclass(frozen=True, slots=True)
class Contract:
    year: int
    rule_set: RuleSet
    tariffs: Mapping[str, int]
    overhead_percent: float
    parallel_codes: frozenset[str]
    forward_monodisciplinary: bool

    def price(self, code: str) -> int | None:
        tariff = self.tariffs.get(code)
        if tariff is None:
            return None
        return round(tariff * (1 + self.overhead_percent / 100))


@dataclass(frozen=True, slots=True)
class InsurerTerms:
    uzovi: str
    contracts: Mapping[int, Contract]
    forward_without_contract: bool


@dataclass(frozen=True, slots=True)
class Settings:
    igo_agb: str
    grace_days: int = 30
    postnatal_days: int = 42
    trajectory_days: int = 336
    # Modelled: a pregnancy's birth is expected at the latest this many days after the
    # first care day of a phase that waits for it (a first visit at about six weeks plus
    # a term pregnancy, generously).
    expected_birth_days: int = 280
    # Modelled: care after an early end (a miscarriage) follows within this many days; a
    # line later than that, after a gap as long, begins a new pregnancy.
    aftercare_days: int = 42


@dataclass(frozen=True)
class Terms:
    """Everything the rules need to know besides the lines and "now"."""

    settings: Settings
    participants: Mapping[str, Participant]
    insurers: Mapping[str, InsurerTerms]

    def standing(self, agb: str, day: date) -> Standing:
        participant = self.participants.get(agb)
        return participant.standing(day) if participant else Standing.OUTSIDE


@dataclass(frozen=True)
class Pregnancy:
    """One woman's lines that fit one trajectory. ``id`` is stable once the first line is
    known: the woman's key and the date of her first line."""

    id: str
    woman: str
    lines: tuple[DeclaredLine, ...]
    birth: date | None
    early_end: date | None


class Place(enum.StrEnum):
    ABSORBED = "absorbed"
    FORWARDED = "forwarded"
    RETURNED = "returned"
    CANCELLED = "cancelled"
    WAITING = "waiting"


@dataclass(frozen=True, slots=True)
class Placement:
    place: Place
    reason: str
    claim: int | None = None  # index of the claim line in the decision (absorbed)
    code: str | None = None  # retourcode for a returned line
    joins: str | None = None  # the claimed line a line arriving after the claim joins
    pair: LineKey | None = None  # cancelled: the line it cancels, or is cancelled by


@dataclass(frozen=True, slots=True)
class ClaimLine:
    """One integral line to declare under the IGO's AGB code (a credit when negative)."""

    prestatie: str
    name: str
    bsn: str
    birth_date: date | None
    first_day: date
    last_day: date
    amount: int  # eurocents, negative for a credit line
    absorbs: tuple[LineKey, ...]
    credits: str | None = None  # reference of the claim line this one credits


@dataclass(frozen=True, slots=True)
class Existing:
    """An integral line already claimed: its reference and what it absorbed."""

    reference: str
    pregnancy: str
    phase: Phase
    insurer: str
    prestatie: str
    amount: int
    absorbs: frozenset[LineKey]


class DecisionKind(enum.StrEnum):
    INTEGRAL = "integral"
    MONODISCIPLINARY = "monodisciplinary"
    BUNDLE_BROKEN = "bundle-broken"
    WAITING = "waiting"


@dataclass(frozen=True)
class Decision:
    pregnancy: str
    phase: Phase | None  # None: lines whose code maps to no phase
    insurer: str
    kind: DecisionKind
    rule: str  # the rule applied, in a few words
    reasons: tuple[str, ...]
    placements: Mapping[LineKey, Placement]
    claims: tuple[ClaimLine, ...] = ()
    waiting_for: str | None = None
    until: date | None = None
    lines: tuple[DeclaredLine, ...] = field(default=())


def overdue_on(decision: Decision, settings: Settings) -> date | None:
    """The day a waiting phase was expected to be complete, for the administrator's queue
    (None when it is not waiting, or waits for a date it will reach by itself).

    A phase waiting only for its grace period closes on its own; one waiting for an event
    the gateway has not seen (the birth, the end of a postnatal period that has no birth)
    was expected ``expected_birth_days`` (prenatal, natal) or ``postnatal_days``
    (postnatal) after its first care day, plus the grace period. Modelled, not confirmed.
    """
    if decision.kind is not DecisionKind.WAITING or decision.until is not None:
        return None
    if not decision.lines or decision.phase is None:
        return None
    first = min(line.prestatie_date for line in decision.lines)
    span = (
        settings.postnatal_days
        if decision.phase is Phase.POSTNATAL
        else settings.expected_birth_days
    )
    return first + timedelta(days=span + settings.grace_days)
