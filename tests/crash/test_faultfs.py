"""The fault-injection shim itself (:mod:`tests.crash.faultfs`): a small program under it
writes, syncs, creates and unlinks files and is killed; after the power loss every file
is as at its last fsync and every directory entry as at the directory's last fsync. Its
injected errors reach the program as the errno they name."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.crash.faultfs import FaultFs, build_or_skip


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_or_skip(tmp_path_factory.mktemp("faultfs"))


@pytest.fixture
def disk(tmp_path: Path, shim: Path) -> FaultFs:
    return FaultFs(shim, tmp_path / "data", tmp_path / "state", tmp_path / "control")


def run_under(disk: FaultFs, program: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(program)],
        cwd=disk.root,
        env={**os.environ, **disk.env()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_power_loss_keeps_what_was_synced_and_nothing_else(disk: FaultFs) -> None:
    done = run_under(
        disk,
        """
        import os, signal
        def put(name, data, sync):
            fd = os.open(name, os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(fd, data)
            if sync:
                os.fsync(fd)
            os.close(fd)
        def sync_dir():
            fd = os.open(".", os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
        put("kept", b"A" * 100, sync=True)
        put("gone-back", b"old", sync=True)
        put("unlinked", b"U" * 10, sync=True)
        sync_dir()
        fd = os.open("kept", os.O_WRONLY)
        os.pwrite(fd, b"B" * 10, 50)         # overwritten, not synced
        os.pwrite(fd, b"C" * 10, 100)        # grown, not synced
        os.close(fd)
        fd = os.open("gone-back", os.O_WRONLY)
        os.ftruncate(fd, 1)                  # cut short, not synced
        os.close(fd)
        put("new", b"N" * 10, sync=True)     # synced, but its directory entry is not
        os.unlink("unlinked")                # not synced either: it comes back
        print("ready", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert (disk.root / "kept").read_bytes() == b"A" * 50 + b"B" * 10 + b"A" * 40 + b"C" * 10
    lost = disk.power_loss()
    assert (disk.root / "kept").read_bytes() == b"A" * 100
    assert (disk.root / "gone-back").read_bytes() == b"old"
    assert not (disk.root / "new").exists()
    assert (disk.root / "unlinked").read_bytes() == b"U" * 10
    assert lost == {"kept": 20, "gone-back": 2}
    assert disk.unmodelled() == []
    assert disk.power_loss() == {}  # the logs are gone with the power: nothing twice


def test_calls_the_model_does_not_cover_are_noted(disk: FaultFs) -> None:
    done = run_under(
        disk,
        """
        import os
        fd = os.open("file", os.O_WRONLY | os.O_CREAT, 0o600)
        os.writev(fd, [b"a", b"b"])
        os.close(fd)
        os.rename("file", "other")
        """,
    )
    assert done.returncode == 0, done.stderr
    assert disk.unmodelled() == ["writev", "rename"]


def test_injected_errors_reach_the_program(disk: FaultFs) -> None:
    disk.set_flag("enospc", True)
    disk.fail_nth_write(2)
    done = run_under(
        disk,
        """
        import os
        full = os.path.join(os.environ["FAULTFS_CONTROL"], "enospc")
        fd = os.open("file", os.O_WRONLY | os.O_CREAT, 0o600)
        for _ in range(3):
            try:
                os.write(fd, b"x")
            except OSError as exc:
                print(exc.strerror)
            else:
                print("ok")
            if os.path.exists(full):
                os.unlink(full)  # the disk has room again
        """,
    )
    assert done.returncode == 0, done.stderr
    # full while the flag exists; then the second write from the arming fails with EIO
    assert done.stdout.split("\n")[:3] == ["No space left on device", "Input/output error", "ok"]
    assert [line.split()[0] for line in disk.injected()] == ["ENOSPC", "EIO"]
    assert (disk.root / "file").read_bytes() == b"x"
