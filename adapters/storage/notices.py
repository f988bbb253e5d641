"""Notices on SQL: which case went out in which digest over which channel.

One row per (channel, case): its primary key is what makes a second notice of a case over a
channel impossible, whatever the gateway processes sharing the store do. A digest's rows
are written (``sending``) *before* it is sent, marked ``sent`` once delivered, and deleted
when the delivery failed, so that its cases go in the next digest. Rows still ``sending``
when the next digest run begins were left by a process that died while sending: whether
that digest arrived is unknown, so they are marked ``unconfirmed`` and never sent again
(a notice may be lost that way, never doubled).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from twisted.internet.defer import Deferred

from adapters.storage.database import Database, Transaction

__all__ = ["SqlNoticeStore"]


class SqlNoticeStore:
    """:class:`gateway.notices.NoticeStore` on the store's database."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def noticed(self, channel: str) -> Deferred[frozenset[str]]:
        """The ids of the cases noticed over ``channel`` (or being noticed now)."""
        return self.database.run_read("notices_noticed", noticed_txn, channel)

    def begin(
        self, channel: str, digest: str, case_ids: Sequence[str], at: datetime
    ) -> Deferred[bool]:
        """Write the digest's rows before it is sent; ``False`` (nothing written) when one
        of the cases was noticed over the channel already."""
        return self.database.run_interaction(
            "notices_begin", begin_txn, channel, digest, tuple(case_ids), at
        )

    def sent(self, digest: str, at: datetime) -> Deferred[None]:
        return self.database.run_interaction("notices_sent", sent_txn, digest, at)

    def failed(self, digest: str) -> Deferred[None]:
        """Forget a digest that was not delivered: its cases go in the next one."""
        return self.database.run_interaction("notices_failed", failed_txn, digest)

    def settle_unfinished(self, at: datetime) -> Deferred[int]:
        """Mark the rows of digests whose sending never ended ``unconfirmed``; how many."""
        return self.database.run_interaction("notices_settle", settle_txn, at)


def noticed_txn(txn: Transaction, channel: str) -> frozenset[str]:
    txn.execute("SELECT case_id FROM notices_sent WHERE channel = ?", (channel,))
    return frozenset(str(row[0]) for row in txn.fetchall())


def begin_txn(
    txn: Transaction, channel: str, digest: str, case_ids: tuple[str, ...], at: datetime
) -> bool:
    already = noticed_txn(txn, channel)
    if already.intersection(case_ids):
        return False
    txn.executemany(
        "INSERT INTO notices_sent (channel, case_id, digest, state, at)"
        " VALUES (?, ?, ?, 'sending', ?)",
        [(channel, case, digest, at) for case in case_ids],
    )
    return True


def sent_txn(txn: Transaction, digest: str, at: datetime) -> None:
    txn.execute(
        "UPDATE notices_sent SET state = 'sent', at = ? WHERE digest = ? AND state = 'sending'",
        (at, digest),
    )


def failed_txn(txn: Transaction, digest: str) -> None:
    txn.execute("DELETE FROM notices_sent WHERE digest = ? AND state = 'sending'", (digest,))


def settle_txn(txn: Transaction, at: datetime) -> int:
    txn.execute(
        "UPDATE notices_sent SET state = 'unconfirmed', at = ? WHERE state = 'sending'", (at,)
    )
    return max(txn.rowcount, 0)
