"""Job leases: one run of a job at a time across every gateway process sharing the store.

A lease is one row of ``job_leases``: the job's name, its holder and when it ends. Taking
it is one atomic statement (an upsert that only overwrites a lease that ended or is the
taker's own), so two processes never both get it, on SQLite or PostgreSQL. Expiry is read
off the **database's** clock, never a gateway host's, so clock skew between hosts cannot
hand one lease to two holders.

A holder that died leaves its lease until it expires; a holder on the same host whose
process is gone (its process id names no running process) is taken over at once, so a
gateway restarted after a crash does not wait out the lease.

The lease is the first of two guards: the bundling store also refuses to record a run
whose lines changed since it read them (:func:`adapters.storage.bundling.record_bundle_txn`),
and checks there that the run still holds its lease (:func:`check_lease_txn`).
"""

from __future__ import annotations

import os
from typing import Final

from twisted.internet.defer import Deferred

from adapters.storage.database import Database, Transaction
from gateway.ports.jobs import LeaseLostError

__all__ = ["SqlJobLeases", "check_lease_txn", "holder_is_gone"]

# The database's clock, in milliseconds since the epoch.
_NOW_MS: Final = {
    "sqlite": "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
    "postgres": "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
}


class SqlJobLeases:
    """:class:`gateway.jobs.Leases` on the store's database."""

    def __init__(self, database: Database, host: str) -> None:
        self.database = database
        self.host = host

    def try_acquire(self, job: str, holder: str, seconds: float) -> Deferred[str | None]:
        """Take ``job``'s lease for ``seconds``: ``None`` when ``holder`` has it now, else
        the holder that keeps it."""
        return self.database.run_interaction(
            "lease_acquire", acquire_txn, job, holder, int(seconds * 1000), self.host
        )

    def renew(self, job: str, holder: str, seconds: float) -> Deferred[bool]:
        """Extend ``holder``'s lease; ``False`` when it no longer holds it."""
        return self.database.run_interaction(
            "lease_renew", renew_txn, job, holder, int(seconds * 1000)
        )

    def release(self, job: str, holder: str) -> Deferred[None]:
        return self.database.run_interaction("lease_release", release_txn, job, holder)


def holder_is_gone(holder: str, host: str) -> bool:
    """Whether ``holder`` (``host:pid:random``) was a process on ``host`` that has ended."""
    parts = holder.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it runs, as another user
        return False
    return False


def acquire_txn(txn: Transaction, job: str, holder: str, ms: int, host: str) -> str | None:
    now = _NOW_MS[txn.engine]
    txn.execute(
        "INSERT INTO job_leases (name, holder, expires_ms)"  # noqa: S608 - a constant
        f" VALUES (?, ?, {now} + ?)"
        " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
        " expires_ms = excluded.expires_ms"
        f" WHERE job_leases.holder = excluded.holder OR job_leases.expires_ms < {now}",
        (job, holder, ms),
    )
    if txn.rowcount == 1:
        return None
    txn.execute("SELECT holder FROM job_leases WHERE name = ?", (job,))
    row = txn.fetchone()
    current = "" if row is None else str(row[0])
    if row is not None and holder_is_gone(current, host):
        txn.execute(
            f"UPDATE job_leases SET holder = ?, expires_ms = {now} + ?"  # noqa: S608
            " WHERE name = ? AND holder = ?",
            (holder, ms, job, current),
        )
        if txn.rowcount == 1:
            return None
    return current


def renew_txn(txn: Transaction, job: str, holder: str, ms: int) -> bool:
    txn.execute(
        f"UPDATE job_leases SET expires_ms = {_NOW_MS[txn.engine]} + ?"  # noqa: S608
        " WHERE name = ? AND holder = ?",
        (ms, job, holder),
    )
    return txn.rowcount == 1


def release_txn(txn: Transaction, job: str, holder: str) -> None:
    txn.execute("DELETE FROM job_leases WHERE name = ? AND holder = ?", (job, holder))


def check_lease_txn(txn: Transaction, job: str, holder: str, ms: int) -> None:
    """Inside a run's recording transaction: the run still holds ``job``'s lease (it is
    renewed), or :class:`~gateway.jobs.LeaseLostError` rolls the transaction back."""
    if not renew_txn(txn, job, holder, ms):
        raise LeaseLostError(f"the {job} lease is no longer held by this run")
