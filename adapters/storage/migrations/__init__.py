"""Schema versions, applied forward at start-up.

Each version is one SQL file in this package, ``NNNN_<name>.sql``, shared by both engines;
where the SQL must differ (``BLOB`` vs ``BYTEA``, text vs ``timestamptz``) the version
has one file per engine instead: ``NNNN_<name>.sqlite.sql`` and ``NNNN_<name>.postgres.sql``.
Versions are numbered 1, 2, 3… without gaps (a gap is a packaging fault: the gateway refuses
to start); a file is never edited once released — a change is a new version. Every version
not yet recorded in the database is applied, oldest first, so a development database that
got a version before a lower one existed still gets the lower one when it arrives.

:func:`migrate` applies the missing versions in one transaction and records each in the
``schema_version`` table. A database whose newest version is newer than the newest file
here was written by a newer gateway: it is refused with
:class:`~gateway.ports.messages.SchemaVersionError` and nothing is changed. On PostgreSQL an
advisory lock makes gateway processes that start together migrate one after the other; on
SQLite the writer's ``BEGIN IMMEDIATE`` does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Final

from twisted.internet.defer import Deferred

from adapters.storage.database import POSTGRES, SQLITE, Database, Transaction
from gateway.ports.messages import SchemaVersionError

__all__ = ["LATEST_VERSION", "Migration", "current_version_txn", "load_migrations", "migrate"]

_FILE_NAME = re.compile(
    r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)(?:\.(?P<engine>sqlite|postgres))?\.sql$"
)
# An arbitrary constant of this project: the key of its migration lock on PostgreSQL.
_PG_MIGRATION_LOCK: Final = 0x1600_6A7E_0001


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def _statements(sql: str) -> tuple[str, ...]:
    """The statements of a file: ``--`` comment lines dropped, split at a ``;`` that ends
    a line (the files hold DDL only, no ``;`` inside a statement)."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    parts = re.split(r";[ \t]*(?:\n|$)", "\n".join(lines))
    return tuple(part.strip() for part in parts if part.strip())


def load_migrations(engine: str) -> tuple[Migration, ...]:
    """Every version for ``engine`` (``"sqlite"`` or ``"postgres"``), oldest first."""
    if engine not in (SQLITE, POSTGRES):
        raise ValueError(f"unknown engine {engine!r}")
    shared: dict[int, tuple[str, str]] = {}
    specific: dict[int, dict[str, tuple[str, str]]] = {}
    for entry in resources.files(__name__).iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None:
            continue
        version = int(match["version"])
        text = entry.read_text(encoding="utf-8")
        if match["engine"] is None:
            if version in shared:
                raise RuntimeError(f"two shared files for schema version {version}")
            shared[version] = (match["name"], text)
        else:
            specific.setdefault(version, {})[match["engine"]] = (match["name"], text)
    versions = sorted(shared.keys() | specific.keys())
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"schema versions must run 1, 2, 3… without gaps: {versions}")
    migrations = []
    for version in versions:
        if version in shared and version in specific:
            raise RuntimeError(f"schema version {version} has both shared and per-engine files")
        if version in shared:
            name, text = shared[version]
        elif engine in specific[version]:
            name, text = specific[version][engine]
        else:
            raise RuntimeError(f"schema version {version} has no file for {engine}")
        migrations.append(Migration(version, name, _statements(text)))
    return tuple(migrations)


LATEST_VERSION: Final = load_migrations(SQLITE)[-1].version
"""The schema version this code writes and reads."""


def current_version_txn(txn: Transaction) -> int:
    """The database's schema version; 0 for a database without one."""
    txn.execute("SELECT max(version) FROM schema_version")
    row = txn.fetchone()
    return 0 if row is None or row[0] is None else int(row[0])


def _migrate_txn(txn: Transaction, migrations: tuple[Migration, ...], now: datetime) -> list[int]:
    if txn.engine == POSTGRES:
        txn.execute("SELECT pg_advisory_xact_lock(?)", (_PG_MIGRATION_LOCK,))
        stamp_type = "TIMESTAMPTZ"
    else:
        stamp_type = "TEXT"
    txn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        f" version INTEGER PRIMARY KEY, applied_at {stamp_type} NOT NULL)"
    )
    current = current_version_txn(txn)
    txn.execute("SELECT version FROM schema_version")
    recorded = {int(row[0]) for row in txn.fetchall()}
    latest = migrations[-1].version if migrations else 0
    if current > latest:
        raise SchemaVersionError(
            f"the database has schema version {current}, newer than version {latest} "
            "of this gateway: run a gateway at least as new as the one that wrote it"
        )
    applied = []
    for migration in migrations:
        if migration.version in recorded:
            continue
        for statement in migration.statements:
            txn.execute(statement)
        txn.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
            (migration.version, now),
        )
        applied.append(migration.version)
    return applied


def migrate(
    database: Database, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> Deferred[list[int]]:
    """Bring ``database`` to :data:`LATEST_VERSION`; fires with the versions applied."""
    migrations = load_migrations(database.engine)
    return database.run_interaction("migrate", _migrate_txn, migrations, now())
