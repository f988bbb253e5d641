"""Administrator sessions and API tokens on SQL: logins (failed and succeeded), the
sessions they open, looking one up, ending it; each logged in its transaction. The token
itself is never stored, only its digest."""

from __future__ import annotations

from datetime import datetime

from twisted.internet.defer import Deferred

from adapters.storage.audit import append_audit_txn
from adapters.storage.database import Database, Transaction, decode_timestamp
from gateway.admin.accounts import Role
from gateway.admin.audit import NewAuditEntry
from gateway.ports.admin import NewSession, SessionRecord

__all__ = ["SqlSessionStore"]


class SqlSessionStore:
    """The sessions area of :class:`~gateway.ports.admin.AdminStore`."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def live_sessions(self, now: datetime) -> Deferred[dict[str, dict[str, int]]]:
        return self.database.run_read("admin_live_sessions", live_sessions_txn, now)

    def login_failed(self, name: str, audit: NewAuditEntry) -> Deferred[None]:
        return self.database.run_interaction("admin_login_failed", login_failed_txn, name, audit)

    def login_succeeded(
        self, session: NewSession, audit: NewAuditEntry, new_hash: str | None = None
    ) -> Deferred[None]:
        return self.database.run_interaction(
            "admin_login", login_succeeded_txn, session, audit, new_hash
        )

    def add_token(self, session: NewSession, audit: NewAuditEntry) -> Deferred[None]:
        return self.database.run_interaction("admin_add_token", add_session_txn, session, audit)

    def session(self, digest: str, now: datetime) -> Deferred[SessionRecord | None]:
        return self.database.run_read("admin_session", session_txn, digest, now)

    def end_session(self, digest: str, audit: NewAuditEntry | None) -> Deferred[None]:
        return self.database.run_interaction("admin_end_session", end_session_txn, digest, audit)


def live_sessions_txn(txn: Transaction, now: datetime) -> dict[str, dict[str, int]]:
    txn.execute(
        "SELECT user_name, kind, COUNT(*) FROM admin_sessions WHERE expires_at > ?"
        " GROUP BY user_name, kind",
        (now,),
    )
    found: dict[str, dict[str, int]] = {}
    for user, kind, count in txn.fetchall():
        found.setdefault(str(user), {})[str(kind)] = int(count)
    return found


def login_failed_txn(txn: Transaction, name: str, audit: NewAuditEntry) -> None:
    if name:
        txn.execute(
            "UPDATE admin_users SET failed_logins = failed_logins + 1, last_failed_at = ?"
            " WHERE name = ?",
            (audit.at, name),
        )
    append_audit_txn(txn, audit)


def add_session_txn(txn: Transaction, session: NewSession, audit: NewAuditEntry) -> None:
    txn.execute(
        "INSERT INTO admin_sessions (digest, kind, user_name, created_at, expires_at, origin)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            session.digest,
            session.kind,
            session.user,
            session.created_at,
            session.expires_at,
            session.origin,
        ),
    )
    append_audit_txn(txn, audit)


def login_succeeded_txn(
    txn: Transaction, session: NewSession, audit: NewAuditEntry, new_hash: str | None
) -> None:
    txn.execute("DELETE FROM admin_sessions WHERE expires_at <= ?", (session.created_at,))
    txn.execute(
        "UPDATE admin_users SET failed_logins = 0, last_failed_at = NULL,"
        " password_hash = COALESCE(?, password_hash) WHERE name = ?",
        (new_hash, session.user),
    )
    add_session_txn(txn, session, audit)


def session_txn(txn: Transaction, digest: str, now: datetime) -> SessionRecord | None:
    txn.execute(
        "SELECT s.digest, s.kind, s.user_name, u.role, s.created_at, s.expires_at"
        " FROM admin_sessions s JOIN admin_users u ON u.name = s.user_name"
        " WHERE s.digest = ? AND s.expires_at > ? AND u.disabled_at IS NULL",
        (digest, now),
    )
    row = txn.fetchone()
    if row is None:
        return None
    return SessionRecord(
        digest=row[0],
        kind=row[1],
        user=row[2],
        role=Role(row[3]),
        created_at=decode_timestamp(row[4]),
        expires_at=decode_timestamp(row[5]),
    )


def end_session_txn(txn: Transaction, digest: str, audit: NewAuditEntry | None) -> None:
    txn.execute("DELETE FROM admin_sessions WHERE digest = ?", (digest,))
    if audit is not None:
        append_audit_txn(txn, audit)
