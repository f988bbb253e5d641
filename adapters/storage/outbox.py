"""The outbound queue on SQL (:class:`gateway.ports.outbox.Outbox`), in the same database and
journal as the messages. Claims use ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several
gateway instances never send the same file at once; SQLite has one writer anyway."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from twisted.internet.defer import Deferred

from adapters.storage.database import Database, Transaction, decode_timestamp
from adapters.storage.journal import JournalCodec, payload_txn, put_message_txn
from gateway.ports.messages import Direction, Message, NewMessage, StoreError
from gateway.ports.outbox import Outbound, OutboundState

__all__ = ["SqlOutbox"]

_SELECT: Final = (
    "SELECT o.traceer_id, o.insurer, o.sender, o.state, o.attempts, o.due_at,"
    " o.first_attempt_at, o.last_error, o.remote_id, m.standard, m.invoice_number,"
    " m.conversatie_id, m.filename, m.sha256"
    " FROM outbound o JOIN messages m ON m.traceer_id = o.traceer_id"
)


def _outbound(row: tuple[Any, ...]) -> Outbound:
    return Outbound(
        traceer_id=row[0],
        insurer=row[1],
        sender=row[2],
        state=OutboundState(row[3]),
        attempts=int(row[4]),
        due_at=decode_timestamp(row[5]),
        first_attempt_at=decode_timestamp(row[6]) if row[6] is not None else None,
        last_error=row[7],
        remote_id=row[8],
        standard=row[9],
        invoice_number=row[10],
        conversatie_id=row[11],
        filename=row[12],
        sha256=row[13],
    )


class SqlOutbox:
    def __init__(self, database: Database, codec: JournalCodec) -> None:
        self.database = database
        self.codec = codec

    def enqueue(self, message: NewMessage, insurer: str, sender: str) -> Deferred[Message]:
        if message.direction is not Direction.TO_INSURER:
            raise ValueError("only messages to an insurer are queued")
        return self.database.run_interaction(
            "enqueue", enqueue_txn, message, insurer, sender, self.codec
        )

    def claim_due(
        self, insurer: str, now: datetime, lease: timedelta, limit: int
    ) -> Deferred[list[tuple[Outbound, bytes]]]:
        return self.database.run_interaction(
            "claim_due", claim_due_txn, insurer, now, lease, limit, self.codec
        )

    def delivered(self, traceer_id: str, remote_id: str, at: datetime) -> Deferred[None]:
        # due_at of a delivered file: when it is next followed up (from now on)
        return self._set(traceer_id, OutboundState.DELIVERED, at, remote_id=remote_id, due_at=at)

    def retry_at(
        self, traceer_id: str, due_at: datetime, error: str, at: datetime
    ) -> Deferred[None]:
        return self._set(traceer_id, OutboundState.QUEUED, at, due_at=due_at, last_error=error)

    def park(self, traceer_id: str, error: str, at: datetime) -> Deferred[None]:
        return self._set(traceer_id, OutboundState.PARKED, at, last_error=error)

    def answered(self, traceer_id: str, at: datetime) -> Deferred[None]:
        return self._set(traceer_id, OutboundState.ANSWERED, at)

    def awaiting_answer(
        self, insurer: str, now: datetime, every: timedelta, limit: int
    ) -> Deferred[list[Outbound]]:
        return self.database.run_interaction(
            "awaiting_answer", awaiting_answer_txn, insurer, now, every, limit
        )

    def rejected(self, traceer_id: str, error: str, at: datetime) -> Deferred[bool]:
        return self.database.run_interaction(
            "outbound_rejected", rejected_txn, traceer_id, error, at
        )

    def get(self, traceer_id: str) -> Deferred[Outbound | None]:
        return self.database.run_read("outbound", get_txn, traceer_id)

    def find(
        self,
        insurer: str,
        *,
        remote_id: str | None = None,
        conversatie_id: str | None = None,
        invoice_number: str | None = None,
    ) -> Deferred[Outbound | None]:
        keys = (
            ("o.remote_id", remote_id),
            ("m.conversatie_id", conversatie_id),
            ("m.invoice_number", invoice_number),
        )
        return self.database.run_read(
            "outbound_find", find_txn, insurer, tuple((c, v) for c, v in keys if v)
        )

    def counts(self) -> Deferred[Mapping[tuple[str, OutboundState], int]]:
        return self.database.run_read("outbound_counts", counts_txn)

    def oldest_unanswered(self) -> Deferred[Mapping[str, datetime]]:
        return self.database.run_read("outbound_oldest", oldest_unanswered_txn)

    def _set(
        self, traceer_id: str, state: OutboundState, at: datetime, **values: object
    ) -> Deferred[None]:
        return self.database.run_interaction(
            "outbound_state", set_state_txn, traceer_id, state, at, values
        )


def enqueue_txn(
    txn: Transaction, message: NewMessage, insurer: str, sender: str, codec: JournalCodec
) -> Message:
    stored = put_message_txn(txn, message, codec)
    txn.execute(
        "INSERT INTO outbound (traceer_id, insurer, sender, state, attempts, due_at, updated_at)"
        " VALUES (?, ?, ?, 'queued', 0, ?, ?) ON CONFLICT (traceer_id) DO NOTHING",
        (stored.traceer_id, insurer, sender, message.created_at, message.created_at),
    )
    return stored


def claim_due_txn(
    txn: Transaction,
    insurer: str,
    now: datetime,
    lease: timedelta,
    limit: int,
    codec: JournalCodec,
) -> list[tuple[Outbound, bytes]]:
    lock = " FOR UPDATE OF o SKIP LOCKED" if txn.engine == "postgres" else ""
    txn.execute(
        _SELECT + " WHERE o.insurer = ? AND o.state IN ('queued', 'sending') AND o.due_at <= ?"
        " ORDER BY o.due_at, m.seq LIMIT ?" + lock,
        (insurer, now, limit),
    )
    rows = [_outbound(row) for row in txn.fetchall()]
    claimed = []
    for item in rows:
        txn.execute(
            "UPDATE outbound SET state = 'sending', attempts = attempts + 1, due_at = ?,"
            " first_attempt_at = COALESCE(first_attempt_at, ?), updated_at = ?"
            " WHERE traceer_id = ?",
            (now + lease, now, now, item.traceer_id),
        )
        payload = payload_txn(txn, item.sha256, codec)
        if payload is None:  # pragma: no cover - the journal keeps what a message names
            raise StoreError(f"outbound {item.traceer_id} has no bytes in the journal")
        claimed.append(
            (
                Outbound(
                    **{
                        **{name: getattr(item, name) for name in Outbound.__slots__},
                        "state": OutboundState.SENDING,
                        "attempts": item.attempts + 1,
                        "due_at": now + lease,
                        "first_attempt_at": item.first_attempt_at or now,
                    }
                ),
                payload,
            )
        )
    return claimed


def awaiting_answer_txn(
    txn: Transaction, insurer: str, now: datetime, every: timedelta, limit: int
) -> list[Outbound]:
    # Rows another instance is handing out right now are skipped, not waited for: it
    # moves them on by ``every`` anyway.
    lock = " FOR UPDATE OF o SKIP LOCKED" if txn.engine == "postgres" else ""
    txn.execute(
        _SELECT + " WHERE o.insurer = ? AND o.state = 'delivered' AND o.remote_id IS NOT NULL"
        " AND o.due_at <= ? ORDER BY o.due_at, m.seq LIMIT ?" + lock,
        (insurer, now, limit),
    )
    rows = [_outbound(row) for row in txn.fetchall()]
    handed = []
    for item in rows:
        txn.execute(
            "UPDATE outbound SET due_at = ? WHERE traceer_id = ? AND state = 'delivered'",
            (now + every, item.traceer_id),
        )
        handed.append(
            Outbound(
                **{
                    **{name: getattr(item, name) for name in Outbound.__slots__},
                    "due_at": now + every,
                }
            )
        )
    return handed


def rejected_txn(txn: Transaction, traceer_id: str, error: str, at: datetime) -> bool:
    txn.execute(
        "UPDATE outbound SET state = 'parked', last_error = ?, updated_at = ?"
        " WHERE traceer_id = ? AND state = 'delivered'",
        (error, at, traceer_id),
    )
    return bool(txn.rowcount == 1)


_COLUMNS: Final = frozenset({"due_at", "last_error", "remote_id"})


def set_state_txn(
    txn: Transaction,
    traceer_id: str,
    state: OutboundState,
    at: datetime,
    values: Mapping[str, object],
) -> None:
    unknown = set(values) - _COLUMNS
    if unknown:
        raise ValueError(f"not an outbound column: {sorted(unknown)}")
    names = sorted(values)
    sets = "".join(f", {name} = ?" for name in names)  # names from _COLUMNS only
    # An answered file stays answered: the retour can be matched while an attempt is still
    # in flight (a repeat after a crash or a timeout), whose outcome arrives later.
    keep = "" if state is OutboundState.ANSWERED else " AND state <> 'answered'"
    txn.execute(
        f"UPDATE outbound SET state = ?, updated_at = ?{sets} WHERE traceer_id = ?{keep}",  # noqa: S608
        (state.value, at, *(values[n] for n in names), traceer_id),
    )
    if txn.rowcount == 1:
        return
    txn.execute("SELECT state FROM outbound WHERE traceer_id = ?", (traceer_id,))
    row = txn.fetchone()
    if row is None:
        raise StoreError(f"no outbound file {traceer_id}")
    if "remote_id" in values:  # what the late answer named is still worth keeping
        txn.execute(
            "UPDATE outbound SET remote_id = COALESCE(remote_id, ?) WHERE traceer_id = ?",
            (values["remote_id"], traceer_id),
        )


def get_txn(txn: Transaction, traceer_id: str) -> Outbound | None:
    txn.execute(_SELECT + " WHERE o.traceer_id = ?", (traceer_id,))
    row = txn.fetchone()
    return _outbound(row) if row is not None else None


_FIND_COLUMNS: Final = frozenset({"o.remote_id", "m.conversatie_id", "m.invoice_number"})


def find_txn(txn: Transaction, insurer: str, keys: tuple[tuple[str, str], ...]) -> Outbound | None:
    for column, value in keys:
        if column not in _FIND_COLUMNS:
            raise ValueError(f"not a key of outbound files: {column}")
        txn.execute(
            _SELECT + f" WHERE o.insurer = ? AND {column} = ? ORDER BY m.seq LIMIT 1",
            (insurer, value),
        )
        row = txn.fetchone()
        if row is not None:
            return _outbound(row)
    return None


def counts_txn(txn: Transaction) -> dict[tuple[str, OutboundState], int]:
    txn.execute("SELECT insurer, state, count(*) FROM outbound GROUP BY insurer, state")
    return {(row[0], OutboundState(row[1])): int(row[2]) for row in txn.fetchall()}


def oldest_unanswered_txn(txn: Transaction) -> dict[str, datetime]:
    txn.execute(
        "SELECT o.insurer, MIN(m.created_at) FROM outbound o"
        " JOIN messages m ON m.traceer_id = o.traceer_id"
        " WHERE o.state IN ('queued', 'sending', 'delivered') GROUP BY o.insurer"
    )
    return {row[0]: decode_timestamp(row[1]) for row in txn.fetchall()}
