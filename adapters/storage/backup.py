"""Backup and restore of the embedded SQLite store.

:func:`backup_sqlite` copies a live database with SQLite's online backup API — consistent
even while the gateway writes (WAL mode) — into a new file that only appears under its final
name once complete and synced. :func:`restore_sqlite` checks a backup (integrity, and a
schema this gateway can run) before it replaces the store, and refuses while the store is
in use. Backups and restored stores are created readable and writable by their owner only
(0600), whatever the umask: they hold everything the store holds. PostgreSQL has its own
tools (``pg_dump`` / ``pg_restore``, or continuous archiving).
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from adapters.storage.lock import StoreLock
from adapters.storage.migrations import LATEST_VERSION
from gateway.ports.messages import StoreInUseError

__all__ = [
    "BackupError",
    "BackupInfo",
    "backup_sqlite",
    "restore_sqlite",
    "sqlite_path",
]

SQLITE_PREFIX = "sqlite:///"
PRIVATE_MODE = 0o600


class BackupError(Exception):
    """A backup or restore that cannot be done; nothing was changed."""


@dataclass(frozen=True, slots=True)
class BackupInfo:
    path: Path
    schema_version: int
    size: int


def sqlite_path(url: str) -> Path:
    """The database file of a ``sqlite:///`` store URL."""
    if not url.startswith(SQLITE_PREFIX) or url == SQLITE_PREFIX + ":memory:":
        raise BackupError(
            "backup and restore work on the embedded SQLite store; for PostgreSQL use "
            "pg_dump and pg_restore (or continuous archiving)"
        )
    return Path(url.removeprefix(SQLITE_PREFIX))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 (SQLite then writes into it, and gives its
    journal the same mode); an existing file is replaced."""
    path.unlink(missing_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE))
    os.chmod(path, PRIVATE_MODE)  # the umask may have taken bits away, never added any


def _check(path: Path) -> int:
    """The schema version of the database at ``path``, after an integrity check."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            (result,) = conn.execute("PRAGMA integrity_check").fetchone()
            if result != "ok":
                raise BackupError(f"{path}: the database is damaged ({result})")
            row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path}: not a gateway database ({exc})") from None
    version = int(row[0]) if row and row[0] is not None else 0
    if version < 1:
        raise BackupError(f"{path}: not a gateway database (no schema version)")
    return version


def backup_sqlite(database: Path, target: Path) -> BackupInfo:
    """Copy the live ``database`` to ``target`` (which must not exist yet)."""
    if not database.is_file():
        raise BackupError(f"{database}: no such database")
    if target.exists():
        raise BackupError(f"{target} already exists; choose a new name")
    partial = target.with_name(f".{target.name}.partial")
    try:
        _create_private(partial)
        with (
            sqlite3.connect(f"file:{database}?mode=ro", uri=True) as source,
            sqlite3.connect(partial) as copy,
        ):
            source.backup(copy)
        with partial.open("rb") as fh:
            os.fsync(fh.fileno())
        version = _check(partial)
        os.replace(partial, target)
        _fsync_dir(target.parent)
    except (sqlite3.Error, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise BackupError(f"backup failed: {exc}") from None
    except BackupError:
        partial.unlink(missing_ok=True)
        raise
    return BackupInfo(target, version, target.stat().st_size)


def restore_sqlite(backup: Path, database: Path, *, force: bool = False) -> BackupInfo:
    """Replace ``database`` with ``backup`` (``force`` when a database is there already).
    Refused when the backup is damaged, from a newer gateway, or the store is in use."""
    if not backup.is_file():
        raise BackupError(f"{backup}: no such backup")
    version = _check(backup)
    if version > LATEST_VERSION:
        raise BackupError(
            f"{backup}: written by a newer gateway (schema {version}; this one runs up to "
            f"{LATEST_VERSION}); upgrade the gateway first"
        )
    if database.exists() and not force:
        raise BackupError(f"{database} exists; stop the gateway and restore with --force")
    lock = StoreLock(database)
    try:
        lock.acquire()
    except StoreInUseError as exc:
        raise BackupError(f"{exc}; stop it before restoring") from None
    try:
        return _replace(backup, database, version)
    finally:
        lock.release()


def _replace(backup: Path, database: Path, version: int) -> BackupInfo:
    partial = database.with_name(f".{database.name}.restoring")
    try:
        _create_private(partial)
        with (
            sqlite3.connect(f"file:{backup}?mode=ro", uri=True) as source,
            sqlite3.connect(partial) as copy,
        ):
            source.backup(copy)
        with partial.open("rb") as fh:
            os.fsync(fh.fileno())
        for suffix in ("-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        os.replace(partial, database)
        _fsync_dir(database.parent)
    except (sqlite3.Error, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise BackupError(f"restore failed: {exc}") from None
    return BackupInfo(database, version, database.stat().st_size)
