"""Retention: expired payloads are pruned and their space given back.

A payload expires when every message naming it is older than the cut-off and none still
needs its bytes: no upload with a line still open, unanswered or under review; no retour
waiting for its participant to fetch it; no file for an insurer not yet answered. Its
journal row stays (sha256, size, pruned_at), and so do the messages, their statuses, the
lines and the factuurnummers — the audit trail and the uniqueness of invoice numbers need
them for years. On SQLite the freed pages are given back with ``incremental_vacuum``; on
PostgreSQL ordinary deletes leave the space to its autovacuum.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from twisted.internet.defer import Deferred

from adapters.storage.database import Database, Transaction

__all__ = ["PruneResult", "SqlRetention"]

_STILL_NEEDED = """
    SELECT 1 FROM messages m WHERE m.sha256 = j.sha256 AND (
        m.created_at >= ?
        OR (m.direction = 'to_participant' AND m.confirmed_at IS NULL)
        OR (m.direction = 'to_insurer' AND EXISTS (
            SELECT 1 FROM outbound o WHERE o.traceer_id = m.traceer_id
            AND o.state IN ('queued', 'sending', 'delivered', 'parked')))
        OR (m.direction = 'from_participant' AND EXISTS (
            SELECT 1 FROM declaration_lines l WHERE l.traceer_id = m.traceer_id
            AND (l.state = 'open' OR l.outcome IS NULL OR l.outcome = 'review')))
    )
"""


@dataclass(frozen=True, slots=True)
class PruneResult:
    payloads: int
    bytes: int


class SqlRetention:
    def __init__(self, database: Database) -> None:
        self.database = database

    def prune(self, cutoff: datetime, now: datetime, limit: int = 500) -> Deferred[PruneResult]:
        return self.database.run_interaction("prune", prune_txn, cutoff, now, limit)

    def reclaim(self) -> Deferred[None]:
        """Give freed pages back to the file system (SQLite; nothing to do on PostgreSQL)."""
        return self.database.run_interaction("reclaim", reclaim_txn)

    def size(self) -> Deferred[int]:
        """The store's size in bytes."""
        return self.database.run_read("store_size", size_txn)


def prune_txn(txn: Transaction, cutoff: datetime, now: datetime, limit: int) -> PruneResult:
    txn.execute(
        "SELECT j.sha256, j.size FROM journal j WHERE j.pruned_at IS NULL"  # noqa: S608
        f" AND NOT EXISTS ({_STILL_NEEDED}) ORDER BY j.created_at LIMIT ?",
        (cutoff, limit),
    )
    rows = txn.fetchall()
    for sha256, _ in rows:
        txn.execute(
            "UPDATE journal SET payload = ?, key_id = NULL, pruned_at = ? WHERE sha256 = ?",
            (b"", now, sha256),
        )
    return PruneResult(len(rows), sum(int(size) for _, size in rows))


def reclaim_txn(txn: Transaction) -> None:
    if txn.engine != "sqlite":
        return
    txn.execute("PRAGMA freelist_count")
    row = txn.fetchone()
    # Python's sqlite3 steps this pragma once: one freed page per execution.
    for _ in range(int(row[0]) if row else 0):
        txn.execute("PRAGMA incremental_vacuum(1)")


def size_txn(txn: Transaction) -> int:
    if txn.engine == "postgres":
        txn.execute("SELECT pg_database_size(current_database())")
    else:
        txn.execute("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()")
    row = txn.fetchone()
    return int(row[0]) if row else 0
