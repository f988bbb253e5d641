"""The journal and the message rows, at the bottom of the storage layers: how payload
bytes are kept (:class:`JournalCodec`), and the SQL that stores a message with its bytes and
first status, adds a status, and reads messages, statuses and payloads back.

These ``*_txn`` functions run inside another interaction's transaction and are shared by
the area modules above (:mod:`~adapters.storage.messages`, :mod:`~adapters.storage.bundling`,
:mod:`~adapters.storage.outcomes`, :mod:`~adapters.storage.outbox`, …); this module
imports none of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from adapters.storage._values import check_new_message, dump_metadata, load_metadata
from adapters.storage.database import Transaction, decode_timestamp
from gateway.crypto import CryptoError, Keyring
from gateway.ports.messages import (
    Direction,
    Message,
    MessageStatus,
    NewMessage,
    NewStatus,
    StatusEntry,
    StoreError,
)

__all__ = [
    "INSERT_MESSAGE",
    "MESSAGE_HEAD",
    "MESSAGE_TAIL",
    "MESSAGE_VALUES",
    "JournalCodec",
    "add_status_txn",
    "add_statuses_txn",
    "get_message_txn",
    "journal_txn",
    "message_by_key_txn",
    "message_row",
    "messages_txn",
    "messages_with_payloads_txn",
    "payload_txn",
    "put_message_txn",
    "statuses_txn",
]

_IN_CHUNK: Final = 500  # ids per IN (...) list, well below every engine's parameter limit

_SELECT_MESSAGES: Final = (
    "SELECT traceer_id, conversatie_id, direction, party, sha256, size, created_at, status,"
    " filename, standard, invoice_number, payee, reply_to, reference_id, metadata,"
    " confirmed_at FROM messages"
)


class JournalCodec:
    """How payload bytes are kept in the journal: sealed with the keyring's current key
    (the key id beside them, the payload's SHA-256 as associated data), or — without a
    keyring — as they are (key id NULL). Rows of either kind are read back."""

    def __init__(self, keyring: Keyring | None) -> None:
        self.keyring = keyring

    def seal(self, payload: bytes, sha256: str) -> tuple[str | None, bytes]:
        if self.keyring is None:
            return None, payload
        return self.keyring.seal(payload, sha256.encode("ascii"))

    def open(self, key_id: str | None, stored: bytes, sha256: str) -> bytes:
        if key_id is None:
            return stored
        if self.keyring is None:
            raise StoreError(
                "the journal holds encrypted payloads but no key file is configured "
                "([encryption] key_file)"
            )
        try:
            return self.keyring.open(key_id, stored, sha256.encode("ascii"))
        except CryptoError as exc:
            raise StoreError(f"payload {sha256[:12]}…: {exc}") from None


def _message(row: tuple[Any, ...]) -> Message:
    return Message(
        traceer_id=row[0],
        conversatie_id=row[1],
        direction=Direction(row[2]),
        party=row[3],
        sha256=row[4],
        size=int(row[5]),
        created_at=decode_timestamp(row[6]),
        status=MessageStatus(row[7]),
        filename=row[8],
        standard=row[9],
        invoice_number=row[10],
        payee=row[11],
        reply_to=row[12],
        reference_id=row[13],
        metadata=load_metadata(row[14]),
        confirmed_at=None if row[15] is None else decode_timestamp(row[15]),
    )


def get_message_txn(txn: Transaction, traceer_id: str) -> Message | None:
    txn.execute(_SELECT_MESSAGES + " WHERE traceer_id = ?", (traceer_id,))
    row = txn.fetchone()
    return None if row is None else _message(row)


def message_by_key_txn(txn: Transaction, idempotency_key: str) -> Message | None:
    txn.execute(_SELECT_MESSAGES + " WHERE idempotency_key = ?", (idempotency_key,))
    row = txn.fetchone()
    return None if row is None else _message(row)


_SELECT_PAYLOADS: Final = "SELECT sha256, payload, key_id, pruned_at FROM journal"


def _payload(row: tuple[Any, ...], codec: JournalCodec) -> bytes | None:
    """The bytes of a row of :data:`_SELECT_PAYLOADS`; None when pruned (expired)."""
    if row[3] is not None:
        return None
    return codec.open(row[2], bytes(row[1]), str(row[0]))


def payload_txn(txn: Transaction, sha256: str, codec: JournalCodec) -> bytes | None:
    """The bytes; None when unknown or pruned (expired)."""
    txn.execute(_SELECT_PAYLOADS + " WHERE sha256 = ?", (sha256,))
    row = txn.fetchone()
    return None if row is None else _payload(row, codec)


def messages_txn(txn: Transaction, traceer_ids: Sequence[str]) -> dict[str, Message]:
    """The stored messages ``traceer_ids``, by traceer id, in one query per chunk."""
    return {
        str(row[0]): _message(row)
        for row in _rows_in(txn, _SELECT_MESSAGES, "traceer_id", traceer_ids)
    }


def _rows_in(
    txn: Transaction, select: str, column: str, values: Sequence[str]
) -> list[tuple[Any, ...]]:
    """The rows of ``select`` whose ``column`` is one of ``values``, in one query per
    chunk of them."""
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(values), _IN_CHUNK):
        chunk = tuple(values[start : start + _IN_CHUNK])
        marks = ", ".join("?" * len(chunk))
        txn.execute(f"{select} WHERE {column} IN ({marks})", chunk)
        rows += txn.fetchall()
    return rows


def messages_with_payloads_txn(
    txn: Transaction, traceer_ids: Sequence[str], codec: JournalCodec
) -> dict[str, tuple[Message, bytes | None]]:
    """The stored messages ``traceer_ids``, each with its bytes (None when pruned): the
    messages, then their bytes, each in one query per chunk."""
    messages = messages_txn(txn, traceer_ids)
    wanted = sorted({message.sha256 for message in messages.values()})
    payloads = {
        str(row[0]): _payload(row, codec)
        for row in _rows_in(txn, _SELECT_PAYLOADS, "sha256", wanted)
    }
    return {
        traceer_id: (message, payloads.get(message.sha256))
        for traceer_id, message in messages.items()
    }


def statuses_txn(txn: Transaction, traceer_ids: tuple[str, ...]) -> list[StatusEntry]:
    ids = sorted(set(traceer_ids))
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        marks = ", ".join("?" * len(chunk))
        txn.execute(
            # only constant text and "?" marks are joined here
            "SELECT id, traceer_id, at, status, code, description FROM message_statuses"  # noqa: S608
            f" WHERE traceer_id IN ({marks})",
            chunk,
        )
        rows.extend(txn.fetchall())
    # Oldest first; the id keeps the order of entries recorded at the same instant.
    decoded = sorted((decode_timestamp(row[2]), int(row[0]), row) for row in rows)
    return [
        StatusEntry(
            traceer_id=row[1],
            at=at,
            status=MessageStatus(row[3]),
            code=row[4],
            description=row[5],
        )
        for at, _, row in decoded
    ]


def journal_txn(txn: Transaction, message: NewMessage, codec: JournalCodec) -> bool:
    """Journal ``message``'s payload unless its bytes are there; True if it inserted them."""
    txn.execute("SELECT 1 FROM journal WHERE sha256 = ?", (message.sha256,))
    if txn.fetchone() is not None:
        return False
    key_id, stored = codec.seal(message.payload, message.sha256)
    txn.execute(
        "INSERT INTO journal (sha256, size, payload, key_id, created_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (sha256) DO NOTHING",
        (message.sha256, len(message.payload), stored, key_id, message.created_at),
    )
    return txn.rowcount == 1


def _forget_journal_txn(txn: Transaction, sha256: str) -> None:
    """Take back bytes this interaction journaled when their message was not stored."""
    txn.execute(
        "DELETE FROM journal WHERE sha256 = ?"
        " AND NOT EXISTS (SELECT 1 FROM messages WHERE sha256 = ?)",
        (sha256, sha256),
    )


# A new message: the head, the values of one row (:func:`message_row`) and what happens
# when it collides with a stored one (nothing: the caller finds out why). For
# Transaction.insert_values.
MESSAGE_HEAD: Final = (
    "INSERT INTO messages (traceer_id, conversatie_id, direction, party, sha256, size,"
    " created_at, status, filename, standard, invoice_number, payee, reply_to,"
    " reference_id, metadata, confirmed_at, idempotency_key)"
)
MESSAGE_VALUES: Final = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)"
MESSAGE_TAIL: Final = "ON CONFLICT DO NOTHING"
INSERT_MESSAGE: Final = f"{MESSAGE_HEAD} VALUES {MESSAGE_VALUES} {MESSAGE_TAIL}"


def message_row(message: NewMessage) -> tuple[object, ...]:
    """The values of :data:`INSERT_MESSAGE` for ``message``."""
    return (
        message.traceer_id,
        message.conversatie_id,
        message.direction.value,
        message.party,
        message.sha256,
        len(message.payload),
        message.created_at,
        message.status.status.value,
        message.filename,
        message.standard,
        message.invoice_number,
        message.payee,
        message.reply_to,
        message.reference_id,
        dump_metadata(message.metadata),
        message.idempotency_key,
    )


def _insert_message_txn(txn: Transaction, message: NewMessage) -> bool:
    """Insert ``message`` and its first status; False (nothing written) if a unique
    constraint already holds another row."""
    txn.execute(INSERT_MESSAGE, message_row(message))
    if txn.rowcount != 1:
        return False
    _insert_status_txn(txn, message.traceer_id, message.status, message.created_at)
    return True


_SET_STATUS: Final = "UPDATE messages SET status = ? WHERE traceer_id = ?"
_STATUS_HEAD: Final = "INSERT INTO message_statuses (traceer_id, at, status, code, description)"
_STATUS_VALUES: Final = "(?, ?, ?, ?, ?)"
_INSERT_STATUS: Final = f"{_STATUS_HEAD} VALUES {_STATUS_VALUES}"


def _status_row(traceer_id: str, status: NewStatus, at: datetime) -> tuple[object, ...]:
    return (traceer_id, at, status.status.value, status.code, status.description)


def _insert_status_txn(txn: Transaction, traceer_id: str, status: NewStatus, at: datetime) -> None:
    txn.execute(_INSERT_STATUS, _status_row(traceer_id, status, at))


def put_message_txn(txn: Transaction, message: NewMessage, codec: JournalCodec) -> Message:
    check_new_message(message)
    existing = message_by_key_txn(txn, message.idempotency_key)
    if existing is not None:
        return existing
    journaled = journal_txn(txn, message, codec)
    if not _insert_message_txn(txn, message):
        # Lost a race for the idempotency key, or the message collides with another.
        existing = message_by_key_txn(txn, message.idempotency_key)
        if journaled:
            _forget_journal_txn(txn, message.sha256)
        if existing is not None:
            return existing
        raise StoreError(
            f"message {message.traceer_id} collides with a stored message"
            " (traceer id or factuurnummer of the payee)"
        )
    stored = get_message_txn(txn, message.traceer_id)
    assert stored is not None
    return stored


def add_statuses_txn(
    txn: Transaction, statuses: Sequence[tuple[str, NewStatus]], at: datetime
) -> None:
    """:func:`add_status_txn` for many messages, one statement per table (per chunk on
    SQLite)."""
    if not statuses:
        return
    changed = txn.update_values(
        _SET_STATUS,
        [(status.status.value, traceer_id) for traceer_id, status in statuses],
        slice(1, 2),
    )
    if changed != len(statuses):
        raise StoreError(
            f"{len(statuses) - changed} of {len(statuses)} messages to update are unknown"
        )
    txn.insert_values(
        _STATUS_HEAD,
        _STATUS_VALUES,
        [_status_row(traceer_id, status, at) for traceer_id, status in statuses],
    )


def add_status_txn(txn: Transaction, traceer_id: str, status: NewStatus, at: datetime) -> None:
    txn.execute(_SET_STATUS, (status.status.value, traceer_id))
    if txn.rowcount != 1:
        raise StoreError(f"no message with traceer id {traceer_id}")
    _insert_status_txn(txn, traceer_id, status, at)
