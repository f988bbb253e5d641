"""Job leases on both engines: one holder at a time, renewed by its holder only, taken
over when expired or when its process on this host is gone, released by its holder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from adapters.storage import SqlMessageStore, Transaction, open_store
from adapters.storage.leases import SqlJobLeases, holder_is_gone
from tests.threadpump import ThreadPump

HOST = socket.gethostname()


@pytest.fixture
def store(sql_url: str, pump: ThreadPump) -> Iterator[SqlMessageStore]:
    opened = pump.wait(open_store(sql_url, pump))
    yield opened
    pump.wait(opened.close())


def _expire_txn(txn: Transaction) -> None:
    txn.execute("UPDATE job_leases SET expires_ms = 0")


def _dead_pid() -> int:
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(child.stdout)


def test_one_holder_at_a_time_until_released(store: SqlMessageStore, pump: ThreadPump) -> None:
    leases = store.leases
    me, other = f"{HOST}:1:a", "elsewhere:1:b"
    assert pump.wait(leases.try_acquire("job", me, 30)) is None
    assert pump.wait(leases.try_acquire("job", me, 30)) is None  # its own again
    assert pump.wait(leases.try_acquire("job", other, 30)) == me
    assert pump.wait(leases.try_acquire("another-job", other, 30)) is None
    assert pump.wait(leases.renew("job", me, 30)) is True
    assert pump.wait(leases.renew("job", other, 30)) is False
    pump.wait(leases.release("job", other))  # not its lease: nothing happens
    assert pump.wait(leases.try_acquire("job", other, 30)) == me
    pump.wait(leases.release("job", me))
    assert pump.wait(leases.try_acquire("job", other, 30)) is None


def test_an_expired_lease_is_taken_over_and_its_old_holder_cannot_renew(
    store: SqlMessageStore, pump: ThreadPump
) -> None:
    leases = store.leases
    first, second = "elsewhere:1:a", "elsewhere:2:b"
    assert pump.wait(leases.try_acquire("job", first, 30)) is None
    pump.wait(store.database.run_interaction("expire", _expire_txn))
    assert pump.wait(leases.try_acquire("job", second, 30)) is None
    assert pump.wait(leases.renew("job", first, 30)) is False


def test_a_lease_of_a_process_gone_on_this_host_is_taken_at_once(
    store: SqlMessageStore, pump: ThreadPump
) -> None:
    dead = f"{HOST}:{_dead_pid()}:a"
    alive = f"{HOST}:{os.getpid()}:b"
    leases = SqlJobLeases(store.database, HOST)
    assert pump.wait(leases.try_acquire("job", dead, 30)) is None
    assert pump.wait(leases.try_acquire("job", f"{HOST}:{os.getpid()}:c", 30)) is None
    assert pump.wait(leases.renew("job", dead, 30)) is False
    assert pump.wait(leases.try_acquire("job2", alive, 30)) is None
    assert pump.wait(leases.try_acquire("job2", f"{HOST}:{os.getpid()}:d", 30)) == alive
    # Another host's holder is never judged by this host's processes.
    elsewhere = f"elsewhere:{_dead_pid()}:e"
    assert pump.wait(leases.try_acquire("job3", elsewhere, 30)) is None
    assert pump.wait(leases.try_acquire("job3", alive, 30)) == elsewhere


def test_holder_names() -> None:
    assert holder_is_gone(f"{HOST}:{_dead_pid()}:x", HOST)
    assert not holder_is_gone(f"{HOST}:{os.getpid()}:x", HOST)
    assert not holder_is_gone(f"other-host:{_dead_pid()}:x", HOST)
    assert not holder_is_gone("no-pid", HOST)
