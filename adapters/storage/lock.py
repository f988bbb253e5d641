"""A lock file beside the embedded SQLite store."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from gateway.ports.messages import StoreInUseError

__all__ = ["StoreLock"]


class StoreLock:
    """An exclusive lock beside an SQLite store (``<database>.lock``) that a running gateway
    holds, so that a restore — or a second gateway on the same file — is refused while it
    runs. Released when the holder closes it or its process ends."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.path = database.with_name(database.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreInUseError(f"{self.database} is in use by a running gateway") from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
