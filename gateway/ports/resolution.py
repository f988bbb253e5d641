"""The resolution port: a claimed line as the resolver reads it (:class:`ClaimState`,
through :class:`ResolutionStore`, on SQL ``adapters.storage.resolution``) and the effects
of the administrator's actions that the admin store applies (:data:`Effect`):
:class:`Resubmission`, :class:`PassOn`, :class:`BreakBundle`, :class:`ClosePhase`; and the
fields a correction may change (:class:`Field`), which the admin site's forms and API name.

:class:`gateway.resolution.Resolver` prepares them; what each means is told there.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Protocol

from gateway.lines import DeclaredLine
from gateway.ports.bundling import QueuedFile
from gateway.ports.messages import NewMessage
from gateway.ports.outcomes import LineAnswer
from gateway.rules.catalogue import Phase
from gateway.rules.claims import ClaimLink
from gateway.rules.model import LineKey

__all__ = [
    "BreakBundle",
    "ClaimState",
    "ClosePhase",
    "Effect",
    "Field",
    "PassOn",
    "ResolutionStore",
    "Resubmission",
]


class Field(enum.StrEnum):
    """The fields a correction may change, by the names the forms and the API use."""

    MEMBER_NUMBER = "member_number"
    UZOVI = "uzovi"
    FIRST_DAY = "first_day"
    LAST_DAY = "last_day"
    PRESTATIE = "prestatie"


@dataclass(frozen=True)
class ClaimState:
    """A claimed integral line as the store has it, with the original lines it absorbed."""

    reference: str
    invoice_number: str
    record_number: int
    outbound: str
    insurer: str
    pregnancy: str
    phase: Phase
    prestatie: str
    amount: int
    absorbed: tuple[DeclaredLine, ...]
    outcomes: dict[LineKey, tuple[str | None, tuple[str, ...]]]  # (outcome, codes) per line


@dataclass(frozen=True)
class Resubmission:
    replaces: str  # the reference of the rejected line
    queued: QueuedFile
    link: ClaimLink
    insurer: str
    changes: dict[str, tuple[str, str]]  # field → (before, after); member numbers masked


@dataclass(frozen=True)
class PassOn:
    reference: str
    answers: tuple[LineAnswer, ...]
    retours: tuple[NewMessage, ...]


@dataclass(frozen=True)
class BreakBundle:
    reference: str | None  # the claimed line whose originals are released, if any
    pregnancy: str
    phase: Phase
    lines: tuple[LineKey, ...] = field(default=())


@dataclass(frozen=True)
class ClosePhase:
    pregnancy: str
    phase: Phase


Effect = Resubmission | PassOn | BreakBundle | ClosePhase


class ResolutionStore(Protocol):
    """What the resolver reads (``adapters.storage.resolution``)."""

    def claim_state(self, reference: str) -> Awaitable[ClaimState | None]: ...
