"""Backup and restore of the embedded SQLite store, and the lock a running gateway holds."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from adapters.storage import open_store
from adapters.storage.backup import BackupError, backup_sqlite, restore_sqlite, sqlite_path
from adapters.storage.lock import StoreLock
from adapters.storage.migrations import LATEST_VERSION
from gateway.ports.messages import StoreInUseError
from tests.adapters.storage.builders import upload
from tests.threadpump import ThreadPump


def url_of(path: Path) -> str:
    return f"sqlite:///{path}"


def test_a_backup_taken_while_the_store_is_open_restores_everything(
    pump: ThreadPump, tmp_path: Path
) -> None:
    live = tmp_path / "live.db"
    store = pump.wait(open_store(url_of(live), pump))
    pump.wait(store.record_upload(upload(1), []))
    info = backup_sqlite(live, tmp_path / "copy.db")  # the store is open: WAL, uncheckpointed
    pump.wait(store.record_upload(upload(2), []))  # after the backup: not in it
    pump.wait(store.close())
    assert info.schema_version == LATEST_VERSION

    restored = tmp_path / "restored" / "gateway.db"
    restore_sqlite(info.path, restored)
    store = pump.wait(open_store(url_of(restored), pump))
    try:
        first = pump.wait(store.get_message("up-0001"))
        assert first is not None
        assert pump.wait(store.payload(first.sha256)) == upload(1).payload
        assert pump.wait(store.get_message("up-0002")) is None
    finally:
        pump.wait(store.close())
    assert not list(restored.parent.glob(".*"))  # no partial file left behind


def test_a_backup_never_overwrites(tmp_path: Path, pump: ThreadPump) -> None:
    live = tmp_path / "live.db"
    pump.wait(pump.wait(open_store(url_of(live), pump)).close())
    target = tmp_path / "copy.db"
    target.write_bytes(b"keep me")
    with pytest.raises(BackupError, match="already exists"):
        backup_sqlite(live, target)
    assert target.read_bytes() == b"keep me"


def test_restore_refuses_a_damaged_or_foreign_file(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE t (x)")
    for bad in (garbage, foreign):
        with pytest.raises(BackupError, match=r"not a gateway database|damaged"):
            restore_sqlite(bad, tmp_path / "gateway.db")
    assert not (tmp_path / "gateway.db").exists()


def test_restore_refuses_a_backup_from_a_newer_gateway(tmp_path: Path, pump: ThreadPump) -> None:
    live = tmp_path / "live.db"
    pump.wait(pump.wait(open_store(url_of(live), pump)).close())
    with sqlite3.connect(live) as conn:
        conn.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
            (LATEST_VERSION + 1, "2030-01-01T00:00:00+00:00"),
        )
    with pytest.raises(BackupError, match="newer gateway"):
        restore_sqlite(live, tmp_path / "gateway.db")


def test_restore_over_a_store_needs_force_and_a_stopped_gateway(
    tmp_path: Path, pump: ThreadPump
) -> None:
    live = tmp_path / "live.db"
    pump.wait(pump.wait(open_store(url_of(live), pump)).close())
    backup = backup_sqlite(live, tmp_path / "copy.db").path
    with pytest.raises(BackupError, match="--force"):
        restore_sqlite(backup, live)
    running = StoreLock(live)
    running.acquire()
    try:
        with pytest.raises(BackupError, match="in use"):
            restore_sqlite(backup, live, force=True)
    finally:
        running.release()
    assert restore_sqlite(backup, live, force=True).path == live


def test_the_store_lock_is_exclusive_until_released(tmp_path: Path) -> None:
    first, second = StoreLock(tmp_path / "g.db"), StoreLock(tmp_path / "g.db")
    first.acquire()
    with pytest.raises(StoreInUseError):
        second.acquire()
    first.release()
    second.acquire()
    second.release()


def test_postgresql_is_pointed_to_its_own_tools() -> None:
    with pytest.raises(BackupError, match="pg_dump"):
        sqlite_path("postgresql://postgres@127.0.0.1/test")


def test_backups_and_restored_stores_are_readable_by_their_owner_only(
    pump: ThreadPump, tmp_path: Path
) -> None:
    live = tmp_path / "live.db"
    store = pump.wait(open_store(url_of(live), pump))
    pump.wait(store.record_upload(upload(1), []))
    previous = os.umask(0o022)  # the usual umask, which leaves new files world-readable
    try:
        info = backup_sqlite(live, tmp_path / "copy.db")
        pump.wait(store.close())
        restored = restore_sqlite(info.path, tmp_path / "restored" / "gateway.db")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(info.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(restored.path.stat().st_mode) == 0o600
