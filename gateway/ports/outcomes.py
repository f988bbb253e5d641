"""The retour port: what a collected retour is, and what unpacking it needs of the store
(:class:`OutcomeStore`, on SQL ``adapters.storage.outcomes``).

:class:`gateway.collector.RetourCollector` hands each retour it kept on as a
:class:`CollectedRetour`; :class:`gateway.unpacker.Unpacker` reads the integral lines the
answered file carried (:class:`CarriedClaim`, with what answering them needs of the lines
they absorbed: :class:`AbsorbedLine`) or the lines it forwarded, and records each
original line's answer (:class:`LineAnswer`) with the participants' retours.
:class:`SettlementRow` is a line as the settlement report reads it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.ei import Record
from gateway.lines import AnsweredLine, AnswerOutcome, DeclaredLine
from gateway.ports.messages import Message, NewMessage
from gateway.ports.outbox import Outbound
from gateway.rules.model import LineKey

__all__ = [
    "AbsorbedLine",
    "CarriedClaim",
    "CollectedRetour",
    "LineAnswer",
    "OutcomeStore",
    "SettlementRow",
]


@dataclass(frozen=True, slots=True)
class AbsorbedLine:
    """An original line an integral line absorbed, as far as answering it needs: its key,
    its participant and its declared amount (an :class:`~gateway.lines.AnsweredLine`)."""

    traceer_id: str
    record_number: int
    participant: str
    amount: int | None  # declared, eurocents, negative for a credit line

    @property
    def is_credit(self) -> bool:
        return self.amount is not None and self.amount < 0


@dataclass(frozen=True)
class CarriedClaim:
    """An integral line an outbound file carried, and the original lines it absorbed."""

    reference: str
    record_number: int
    amount: int
    insurer: str
    credits: str | None
    absorbed: Sequence[AnsweredLine]


@dataclass(frozen=True, slots=True)
class LineAnswer:
    key: LineKey
    outcome: AnswerOutcome  # granted, rejected (passed on), review (the IGO's queue)
    granted: int | None
    codes: tuple[str, ...]
    answered_in: str | None  # the retour message to the participant


@dataclass(frozen=True)
class SettlementRow:
    line: DeclaredLine
    state: str
    outcome: str | None
    granted: int | None
    codes: tuple[str, ...]
    claim_reference: str | None


class OutcomeStore(Protocol):
    """What the unpacker needs of the store (``adapters.storage.outcomes``)."""

    def claims_in(self, outbound: str) -> Awaitable[list[CarriedClaim]]: ...

    def forwarded_in(self, outbound: str) -> Awaitable[list[DeclaredLine]]: ...

    def record_answers(
        self, answers: Sequence[LineAnswer], retours: Sequence[NewMessage]
    ) -> Awaitable[None]: ...


@dataclass(frozen=True, slots=True)
class CollectedRetour:
    """A retour the collector kept. ``records`` are its records as the collector's check
    read them (a valid retour's, in file order), so that unpacking need not read the file
    again; None when they were not kept (the unpacker then reads the stored payload)."""

    message: Message
    answers: Outbound | None  # the outbound file it answers; None: unmatched
    valid: bool
    records: Sequence[Record] | None = None
