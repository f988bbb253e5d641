"""The audit log on SQL: appending to its hash chain, keying it, reading it back.

The log is appended under a lock of its head row (``FOR UPDATE`` on PostgreSQL; on SQLite
one writer runs at a time anyway), so that several gateway instances extend one chain.
:func:`append_audit_txn` runs in the transaction of whatever it logs (the accounts,
sessions, cases, batches and reprocess areas), so nothing is done unlogged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from twisted.internet.defer import Deferred

from adapters.storage.database import POSTGRES, Database, Transaction, decode_timestamp
from gateway.admin.audit import (
    AuditAction,
    AuditEntry,
    AuditHead,
    NewAuditEntry,
    chain_entry,
    head_mac,
)
from gateway.admin.labels import audit_keyed_text
from gateway.ports.messages import StoreError

__all__ = ["SqlAuditStore", "append_audit_txn"]


class SqlAuditStore:
    """The audit area of :class:`~gateway.ports.admin.AdminStore`."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def audit(self, entry: NewAuditEntry) -> Deferred[AuditEntry]:
        return self.database.run_interaction("admin_audit", append_audit_txn, entry)

    def audit_entries(
        self, *, after_seq: int = 0, limit: int | None = None, subject: str | None = None
    ) -> Deferred[list[AuditEntry]]:
        return self.database.run_read(
            "admin_audit_entries", audit_entries_txn, after_seq, limit, subject
        )

    def audit_head(self) -> Deferred[tuple[int, str]]:
        return self.database.run_read("admin_audit_head", audit_head_txn)

    def audit_chain_head(self) -> Deferred[AuditHead]:
        """The head with what keys it (``keyed_from``, its MAC)."""
        return self.database.run_read("admin_audit_chain_head", audit_chain_head_txn)

    @property
    def audit_key(self) -> bytes | None:
        """The key the chain is checked with (None: the store has no key file)."""
        return self.database.audit_key

    def key_audit_chain(self, at: datetime) -> Deferred[bool]:
        """Key the chain now if the store has a key and the chain is not keyed yet."""
        return self.database.run_interaction("admin_key_audit", key_audit_chain_txn, at)


_SELECT_AUDIT: Final = (
    "SELECT seq, at, actor, role, action, subject, detail, origin, prev_hash, hash FROM admin_audit"
)


def _audit_entry(row: tuple[Any, ...]) -> AuditEntry:
    return AuditEntry(
        seq=int(row[0]),
        at=decode_timestamp(row[1]),
        actor=row[2],
        role=row[3],
        action=row[4],
        subject=row[5],
        detail=row[6],
        origin=row[7],
        prev_hash=row[8],
        hash=row[9],
    )


def append_audit_txn(txn: Transaction, new: NewAuditEntry) -> AuditEntry:
    """Append ``new`` to the chain (in the caller's transaction), keyed with the
    transaction's audit key when the store has one. The first entry appended with a key to
    a chain begun without one is preceded by an ``audit_keyed`` marker, from which on the
    chain is keyed (see :mod:`gateway.admin.audit`)."""
    head = _lock_head_txn(txn)
    key = txn.audit_key
    if key is None:
        if head.keyed_from is not None:
            raise StoreError(
                "the audit log is keyed, and only a gateway with the key file can extend it "
                "([encryption] key_file)"
            )
        entry = _insert_entry_txn(txn, chain_entry(new, head.seq + 1, head.hash))
        txn.execute(
            "UPDATE admin_audit_head SET seq = ?, hash = ? WHERE id = 1", (entry.seq, entry.hash)
        )
        return entry
    keyed_from = head.keyed_from
    seq, prev = head.seq, head.hash
    if keyed_from is None:
        keyed_from = seq + 1
        marker = _insert_entry_txn(txn, chain_entry(_keyed_marker(new.at, seq), seq + 1, prev, key))
        seq, prev = marker.seq, marker.hash
    entry = _insert_entry_txn(txn, chain_entry(new, seq + 1, prev, key))
    _move_head_txn(txn, entry, keyed_from, key)
    return entry


def _keyed_marker(at: datetime, before: int) -> NewAuditEntry:
    return NewAuditEntry(
        at,
        "gateway",
        "",
        AuditAction.AUDIT_KEYED,
        None,
        audit_keyed_text(before),
        "gateway",
    )


def _move_head_txn(txn: Transaction, entry: AuditEntry, keyed_from: int, key: bytes) -> None:
    txn.execute(
        "UPDATE admin_audit_head SET seq = ?, hash = ?, keyed_from = ?, mac = ? WHERE id = 1",
        (entry.seq, entry.hash, keyed_from, head_mac(key, entry.seq, entry.hash, keyed_from)),
    )


def key_audit_chain_txn(txn: Transaction, at: datetime) -> bool:
    """Key a chain begun without a key (append its ``audit_keyed`` marker) when the store
    has a key and the chain is not keyed yet; True if it did."""
    key = txn.audit_key
    if key is None:
        return False
    head = _lock_head_txn(txn)
    if head.keyed_from is not None:
        return False
    marker = chain_entry(_keyed_marker(at, head.seq), head.seq + 1, head.hash, key)
    _move_head_txn(txn, _insert_entry_txn(txn, marker), marker.seq, key)
    return True


def _lock_head_txn(txn: Transaction) -> AuditHead:
    if txn.engine == POSTGRES:
        txn.execute(
            "SELECT seq, hash, keyed_from, mac FROM admin_audit_head WHERE id = 1 FOR UPDATE"
        )
    else:
        txn.execute("SELECT seq, hash, keyed_from, mac FROM admin_audit_head WHERE id = 1")
    row = txn.fetchone()
    if row is None:  # pragma: no cover - the migration inserts it
        raise StoreError("the audit log has no head row")
    return _head(row)


def _head(row: tuple[Any, ...]) -> AuditHead:
    return AuditHead(int(row[0]), str(row[1]), None if row[2] is None else int(row[2]), row[3])


def _insert_entry_txn(txn: Transaction, entry: AuditEntry) -> AuditEntry:
    txn.execute(
        "INSERT INTO admin_audit (seq, at, actor, role, action, subject, detail, origin,"
        " prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            entry.seq,
            entry.at,
            entry.actor,
            entry.role,
            entry.action,
            entry.subject,
            entry.detail,
            entry.origin,
            entry.prev_hash,
            entry.hash,
        ),
    )
    return entry


def audit_entries_txn(
    txn: Transaction, after_seq: int, limit: int | None, subject: str | None
) -> list[AuditEntry]:
    sql = _SELECT_AUDIT + " WHERE seq > ?"
    params: list[object] = [after_seq]
    if subject is not None:
        sql += " AND subject = ?"
        params.append(subject)
    sql += " ORDER BY seq"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    txn.execute(sql, params)
    return [_audit_entry(row) for row in txn.fetchall()]


def audit_head_txn(txn: Transaction) -> tuple[int, str]:
    txn.execute("SELECT seq, hash FROM admin_audit_head WHERE id = 1")
    row = txn.fetchone()
    return (0, "0" * 64) if row is None else (int(row[0]), str(row[1]))


def audit_chain_head_txn(txn: Transaction) -> AuditHead:
    txn.execute("SELECT seq, hash, keyed_from, mac FROM admin_audit_head WHERE id = 1")
    row = txn.fetchone()
    return AuditHead(0, "0" * 64) if row is None else _head(row)
