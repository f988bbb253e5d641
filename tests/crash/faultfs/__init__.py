"""The fault-injecting layer under the store for the crash tests: ``faultfs.c``, a small
shim loaded with ``LD_PRELOAD`` into the gateway process (its documentation says what it
records and what it does not model), and here the test side of it:

* :func:`build` compiles the shim with ``gcc`` (the tests skip, saying why, without one);
* :class:`FaultFs` is one watched directory: the environment for the gateway process,
  the control files that inject ``ENOSPC`` and ``EIO``, and :meth:`FaultFs.power_loss`,
  which, once the process is dead (SIGKILL), applies the undo logs in reverse so that
  every file is as it was at its last ``fsync`` and every directory entry as at the last
  ``fsync`` of the directory.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["FaultFs", "build", "build_or_skip"]

SOURCE = Path(__file__).with_name("faultfs.c")
_HEADER = struct.Struct("<IIQQQ")  # magic, kind, offset, length, old_size (packed)
_MAGIC = 0x46465544
# Paths are bounded at start-up (roots of at most 1024 bytes), hence no truncation warnings.
FLAGS = ("-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-Wno-format-truncation")


def build(directory: Path) -> Path | None:
    """Compile the shim into ``directory``; None when there is no ``gcc``."""
    gcc = shutil.which("gcc")
    if gcc is None:
        return None
    library = directory / "faultfs.so"
    subprocess.run(
        [gcc, *FLAGS, "-o", str(library), str(SOURCE), "-ldl"],
        check=True,
        capture_output=True,
    )
    return library


@dataclass(frozen=True)
class FaultFs:
    """The shim watching the files directly in ``root``; its logs live in ``state``, its
    control files in ``control`` (all three made here)."""

    library: Path
    root: Path
    state: Path
    control: Path

    def __post_init__(self) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.control.mkdir(parents=True, exist_ok=True)
        self._reset()

    def env(self, fsync_delay_ms: int = 0) -> dict[str, str]:
        """The environment that puts a process under the shim; with ``fsync_delay_ms``,
        a slow disk (every fsync of a watched file waits that long first)."""
        return {
            "LD_PRELOAD": str(self.library),
            "FAULTFS_ROOT": str(self.root),
            "FAULTFS_STATE": str(self.state),
            "FAULTFS_CONTROL": str(self.control),
            "FAULTFS_FSYNC_DELAY_MS": str(fsync_delay_ms),
        }

    # --- injected errors -------------------------------------------------------------

    def set_flag(self, name: str, on: bool) -> None:
        """``enospc`` or ``eio``: while set, every write to a watched file fails."""
        flag = self.control / name
        if on:
            flag.touch()
        else:
            flag.unlink(missing_ok=True)

    def fail_nth_write(self, n: int) -> None:
        """The ``n``-th write to a watched file from now fails once with ``EIO``."""
        (self.control / "eio-nth").write_text(str(n), encoding="ascii")

    def injected(self) -> list[str]:
        """One line per error injected so far: ``ERRNO call path``."""
        log = self.state / "injected.log"
        return log.read_text(encoding="utf-8").splitlines() if log.exists() else []

    def unmodelled(self) -> list[str]:
        """Calls on watched files the model does not cover (rename): must stay empty."""
        log = self.state / "unmodelled"
        return log.read_text(encoding="utf-8").splitlines() if log.exists() else []

    # --- power loss ------------------------------------------------------------------

    def power_loss(self) -> dict[str, int]:
        """Lose everything not yet fsynced (the watched process must be dead); returns the
        bytes of content taken back per file name (files with none left out). SQLite's
        ``-shm`` wal-index is memory that happens to have a file: it goes too (SQLite
        rebuilds it from the WAL), and is not counted."""
        lost: dict[str, int] = {}
        undo = self.state / "undo"
        for log in sorted(undo.iterdir()):
            lost[log.name] = _undo(log, self.root / log.name)
        for log in sorted((self.state / "grave").glob("*.undo")):
            lost[f"unlinked {log.stem}"] = _undo(log, log.with_suffix(""))
        lost = {name: n for name, n in lost.items() if n and not name.endswith("-shm")}
        entries = self.state / "dir.log"
        if entries.exists():
            for line in reversed(entries.read_text(encoding="utf-8").splitlines()):
                kind, _, rest = line.partition(" ")
                if kind == "C":  # created since the directory was last synced
                    Path(rest).unlink(missing_ok=True)
                elif kind == "U":  # unlinked since: it comes back
                    path, _, grave = rest.partition("\t")
                    Path(path).unlink(missing_ok=True)
                    os.link(grave, path)
                else:
                    raise AssertionError(f"unknown dir.log entry {line!r}")
        for shm in self.root.glob("*-shm"):
            shm.unlink()
        self._reset()
        return lost

    def _reset(self) -> None:
        for name in ("undo", "grave"):
            shutil.rmtree(self.state / name, ignore_errors=True)
            (self.state / name).mkdir(parents=True)
        (self.state / "dir.log").unlink(missing_ok=True)


def _undo(log: Path, target: Path) -> int:
    """Apply one file's undo log in reverse; the bytes of content taken back."""
    data = log.read_bytes()
    records: list[tuple[int, bytes, int]] = []
    at = 0
    while at + _HEADER.size <= len(data):
        magic, _kind, offset, length, old_size = _HEADER.unpack_from(data, at)
        if magic != _MAGIC:
            raise AssertionError(f"{log.name}: damaged undo log at {at}")
        start = at + _HEADER.size
        if start + length > len(data):
            break  # cut short by the kill: its data write never happened
        records.append((offset, data[start : start + length], old_size))
        at = start + length
    if not target.exists():
        return 0
    lost = 0
    with target.open("r+b") as file:
        for offset, old, old_size in reversed(records):
            lost += max(file.seek(0, os.SEEK_END) - old_size, 0) + len(old)
            file.seek(offset)
            file.write(old)
            file.truncate(old_size)
    return lost


def build_or_skip(directory: Path) -> Path:
    """:func:`build`, skipping the test when there is no ``gcc`` — except in CI
    (``CI=true``), which has one: there a missing compiler fails the test."""
    library = build(directory)
    if library is None:
        reason = "gcc not found: the fault-injection shim tests/crash/faultfs/faultfs.c needs it"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return library
