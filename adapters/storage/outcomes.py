"""Answers to original lines, on SQL: which lines an outbound file carried, what the insurer
said about each, the retour messages that carry those answers to the participants, and the
settlement per participant."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any, Final

from twisted.internet.defer import Deferred

from adapters.storage.database import Database, Transaction
from adapters.storage.journal import JournalCodec, add_status_txn, put_message_txn
from adapters.storage.lines import COLUMN_COUNT, COLUMNS, line_from_row
from gateway.lines import DeclaredLine
from gateway.ports.messages import MessageStatus, NewMessage, NewStatus
from gateway.ports.outcomes import AbsorbedLine, CarriedClaim, LineAnswer, SettlementRow

__all__ = ["SqlOutcomeStore"]


class SqlOutcomeStore:
    def __init__(self, database: Database, codec: JournalCodec) -> None:
        self.database = database
        self.codec = codec

    def claims_in(self, outbound: str) -> Deferred[list[CarriedClaim]]:
        return self.database.run_read("claims_in", claims_in_txn, outbound)

    def forwarded_in(self, outbound: str) -> Deferred[list[DeclaredLine]]:
        return self.database.run_read("forwarded_in", forwarded_in_txn, outbound, self.codec)

    def record_answers(
        self, answers: Sequence[LineAnswer], retours: Sequence[NewMessage]
    ) -> Deferred[None]:
        return self.database.run_interaction(
            "record_answers", record_answers_txn, tuple(answers), tuple(retours), self.codec
        )

    def settlement(
        self, participant: str | None, start: date, end: date
    ) -> Deferred[list[SettlementRow]]:
        return self.database.run_read(
            "settlement", settlement_txn, participant, start, end, self.codec
        )


def _lines_where(
    txn: Transaction, codec: JournalCodec, where: str, params: tuple[Any, ...]
) -> list[DeclaredLine]:
    txn.execute(
        f"SELECT {COLUMNS} FROM declaration_lines WHERE {where}"  # noqa: S608 - constant text
        " ORDER BY traceer_id, record_number",
        params,
    )
    return [line_from_row(row, codec) for row in txn.fetchall()]


# Every absorbed line of the file in one query (what answering it needs of it: no client
# data is read, nor unsealed), found through the keys (a query per
# integral line would scan the lines table once for each). The joins are written as
# CROSS JOINs with their conditions in WHERE: SQLite then keeps this order (claims,
# their absorbed keys, the lines by primary key) instead of scanning the whole lines
# table in key order for the ORDER BY — once per claim file, which made unpacking a
# year's claim files quadratic. PostgreSQL plans CROSS JOINs freely.
ABSORBED_OF_FILE: Final = (
    "SELECT a.reference, d.traceer_id, d.record_number, d.participant, d.amount"
    " FROM integral_claims c"
    " CROSS JOIN claim_absorbs a CROSS JOIN declaration_lines d"
    " WHERE c.outbound = ? AND a.reference = c.reference"
    " AND d.traceer_id = a.traceer_id AND d.record_number = a.record_number"
    " AND d.state <> 'cancelled' AND d.claim_reference = c.reference"
    " AND (d.outcome IS NULL OR d.outcome <> 'granted')"
    " ORDER BY d.traceer_id, d.record_number"
)


def claims_in_txn(txn: Transaction, outbound: str) -> list[CarriedClaim]:
    """The integral lines ``outbound`` carried, each with the lines its answer is for: the
    lines it absorbed that still belong to it — not cancelled by a correction since, not
    claimed again in another integral line, not granted already (a line is granted once)."""
    txn.execute(
        "SELECT reference, record_number, amount, insurer, credits FROM integral_claims"
        " WHERE outbound = ? ORDER BY record_number",
        (outbound,),
    )
    heads = txn.fetchall()
    txn.execute(ABSORBED_OF_FILE, (outbound,))
    absorbed: dict[str, list[AbsorbedLine]] = {}
    for reference, traceer_id, record_number, participant, amount in txn.fetchall():
        absorbed.setdefault(reference, []).append(
            AbsorbedLine(
                traceer_id, int(record_number), participant, None if amount is None else int(amount)
            )
        )
    return [
        CarriedClaim(
            reference,
            int(record_number),
            int(amount),
            insurer,
            credits,
            absorbed.get(reference, []),
        )
        for reference, record_number, amount, insurer, credits in heads
    ]


def forwarded_in_txn(txn: Transaction, outbound: str, codec: JournalCodec) -> list[DeclaredLine]:
    return _lines_where(txn, codec, "outbound = ? AND state = 'forwarded'", (outbound,))


def record_answers_txn(
    txn: Transaction,
    answers: tuple[LineAnswer, ...],
    retours: tuple[NewMessage, ...],
    codec: JournalCodec,
) -> None:
    # A retour unpacked again (a crash before the insurer was told it arrived) builds the
    # same participant retours under new ids: the stored ones are kept, and the lines
    # name those, never an id that was not stored.
    stored_as: dict[str, str] = {}
    for retour in retours:
        stored = put_message_txn(txn, retour, codec)
        stored_as[retour.traceer_id] = stored.traceer_id
        if retour.reply_to is not None and stored.traceer_id == retour.traceer_id:
            add_status_txn(
                txn,
                retour.reply_to,
                NewStatus(
                    MessageStatus.ANSWERED,
                    None,
                    f"Beantwoord: retourinformatie klaargezet ({retour.standard}).",
                ),
                retour.created_at,
            )
    # One statement for all the lines (no datetime among the values: passed as they are).
    txn.update_values(
        "UPDATE declaration_lines SET outcome = ?, granted_amount = ?, outcome_codes = ?,"
        " answered_in = COALESCE(?, answered_in)"
        " WHERE traceer_id = ? AND record_number = ?",
        [
            (
                answer.outcome,
                answer.granted,
                " ".join(answer.codes) or None,
                stored_as.get(answer.answered_in, answer.answered_in)
                if answer.answered_in is not None
                else None,
                *answer.key,
            )
            for answer in answers
        ],
        slice(-2, None),
        adapted=True,
    )


def settlement_txn(
    txn: Transaction, participant: str | None, start: date, end: date, codec: JournalCodec
) -> list[SettlementRow]:
    params: tuple[Any, ...] = (
        (start, end) if txn.engine == "postgres" else (start.isoformat(), end.isoformat())
    )
    where = "prestatie_date >= ? AND prestatie_date <= ?"
    if participant is not None:
        where += " AND participant = ?"
        params = (*params, participant)
    txn.execute(
        f"SELECT {COLUMNS}, state, outcome, granted_amount, outcome_codes, claim_reference"  # noqa: S608
        f" FROM declaration_lines WHERE {where}"
        " ORDER BY participant, prestatie_date, record_number",
        params,
    )
    rows = []
    for row in txn.fetchall():
        line = line_from_row(row[:COLUMN_COUNT], codec)
        state, outcome, granted, codes, reference = row[COLUMN_COUNT : COLUMN_COUNT + 5]
        rows.append(
            SettlementRow(
                line=line,
                state=state,
                outcome=outcome,
                granted=None if granted is None else int(granted),
                codes=tuple((codes or "").split()),
                claim_reference=reference,
            )
        )
    return rows
