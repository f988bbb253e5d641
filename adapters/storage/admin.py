"""The admin store on SQL (:class:`gateway.ports.admin.AdminStore`): accounts, sessions,
the audit log and the cases' own records, in the same database as the messages.

:class:`SqlAdminStore` is the port's one object over the areas that hold the SQL:
:mod:`adapters.storage.accounts`, :mod:`adapters.storage.sessions`,
:mod:`adapters.storage.audit` and :mod:`adapters.storage.cases`. The storage facade builds
it once (``store.admin``).
"""

from __future__ import annotations

from adapters.storage.accounts import SqlAccountStore
from adapters.storage.audit import SqlAuditStore
from adapters.storage.cases import SqlCaseStore
from adapters.storage.database import Database
from adapters.storage.journal import JournalCodec
from adapters.storage.sessions import SqlSessionStore

__all__ = ["SqlAdminStore"]


class SqlAdminStore(SqlAccountStore, SqlSessionStore, SqlAuditStore, SqlCaseStore):
    """:class:`~gateway.ports.admin.AdminStore` on a SQLite or PostgreSQL :class:`Database`:
    the accounts, sessions, audit and cases areas over one database."""

    def __init__(self, database: Database, codec: JournalCodec | None = None) -> None:
        SqlCaseStore.__init__(self, database, codec)
