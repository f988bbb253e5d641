"""Administrator accounts on SQL: creating, reading and changing them (role, password,
disabled, their sessions and tokens ended), each change logged in its transaction."""

from __future__ import annotations

from typing import Any, Final

from twisted.internet.defer import Deferred

from adapters.storage.audit import append_audit_txn
from adapters.storage.database import POSTGRES, Database, Transaction, decode_timestamp
from gateway.admin.accounts import AccountError, Role
from gateway.admin.audit import NewAuditEntry
from gateway.errors import NotFoundError
from gateway.ports.admin import UserChange, UserExistsError, UserRecord

__all__ = ["SqlAccountStore"]


class SqlAccountStore:
    """The accounts area of :class:`~gateway.ports.admin.AdminStore`."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def create_user(
        self, name: str, role: Role, password_hash: str, audit: NewAuditEntry
    ) -> Deferred[None]:
        return self.database.run_interaction(
            "admin_create_user", create_user_txn, name, role, password_hash, audit
        )

    def user(self, name: str) -> Deferred[UserRecord | None]:
        return self.database.run_read("admin_user", user_txn, name)

    def users(self) -> Deferred[list[UserRecord]]:
        return self.database.run_read("admin_users", users_txn)

    def change_user(self, change: UserChange, audit: NewAuditEntry) -> Deferred[int]:
        return self.database.run_interaction("admin_change_user", change_user_txn, change, audit)


_SELECT_USERS: Final = (
    "SELECT name, role, password_hash, created_at, disabled_at, failed_logins, last_failed_at"
    " FROM admin_users"
)


def _user(row: tuple[Any, ...]) -> UserRecord:
    return UserRecord(
        name=row[0],
        role=Role(row[1]),
        password_hash=row[2],
        created_at=decode_timestamp(row[3]),
        disabled=row[4] is not None,
        failed_logins=int(row[5]),
        last_failed_at=None if row[6] is None else decode_timestamp(row[6]),
    )


def create_user_txn(
    txn: Transaction, name: str, role: Role, password_hash: str, audit: NewAuditEntry
) -> None:
    txn.execute(
        "INSERT INTO admin_users (name, role, password_hash, created_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (name) DO NOTHING",
        (name, role.value, password_hash, audit.at),
    )
    if txn.rowcount != 1:
        raise UserExistsError(f"user {name!r} exists already")
    append_audit_txn(txn, audit)


def user_txn(txn: Transaction, name: str) -> UserRecord | None:
    txn.execute(_SELECT_USERS + " WHERE name = ?", (name,))
    row = txn.fetchone()
    return None if row is None else _user(row)


def users_txn(txn: Transaction) -> list[UserRecord]:
    txn.execute(_SELECT_USERS + " ORDER BY name")
    return [_user(row) for row in txn.fetchall()]


_SELECT_FOR_CHANGE: Final = (
    "SELECT name, role, disabled_at FROM admin_users WHERE name = ? OR role = ?"
)
_SELECT_FOR_CHANGE_PG: Final = _SELECT_FOR_CHANGE + " FOR UPDATE"


def change_user_txn(txn: Transaction, change: UserChange, audit: NewAuditEntry) -> int:
    # The administrators' rows are locked too: two of them cannot each disable the other.
    txn.execute(
        _SELECT_FOR_CHANGE_PG if txn.engine == POSTGRES else _SELECT_FOR_CHANGE,
        (change.name, Role.ADMINISTRATOR.value),
    )
    rows = {row[0]: row for row in txn.fetchall()}
    target = rows.get(change.name)
    if target is None:
        raise NotFoundError(change.name)
    active_admin = target[1] == Role.ADMINISTRATOR.value and target[2] is None
    stops = change.disabled is True or (
        change.role is not None and change.role is not Role.ADMINISTRATOR
    )
    if active_admin and stops:
        others = [
            n
            for n, row in rows.items()
            if n != change.name and row[2] is None and row[1] == Role.ADMINISTRATOR.value
        ]
        if not others:
            raise AccountError(
                f"{change.name} is the last active administrator; make another one first"
            )
    if change.role is not None:
        txn.execute(
            "UPDATE admin_users SET role = ? WHERE name = ?", (change.role.value, change.name)
        )
    if change.password_hash is not None:
        txn.execute(
            "UPDATE admin_users SET password_hash = ?, failed_logins = 0, last_failed_at = NULL"
            " WHERE name = ?",
            (change.password_hash, change.name),
        )
    if change.disabled is not None:
        txn.execute(
            "UPDATE admin_users SET disabled_at = ?, failed_logins = 0, last_failed_at = NULL"
            " WHERE name = ?",
            (audit.at if change.disabled else None, change.name),
        )
    revoked = 0
    for kind in sorted(change.revoke):
        txn.execute(
            "DELETE FROM admin_sessions WHERE user_name = ? AND kind = ?", (change.name, kind)
        )
        revoked += max(txn.rowcount, 0)
    append_audit_txn(txn, audit)
    return revoked
