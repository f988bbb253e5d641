"""Where a secret could have reached disk: every regular file this process holds open
(deleted temporary files too, read through ``/proc/self/fd``) and every file under a
directory, searched for a byte string."""

from __future__ import annotations

import os
from pathlib import Path


def open_files_holding(secret: bytes) -> list[str]:
    """The open regular files of this process whose contents hold ``secret``."""
    found = []
    fd_dir = Path("/proc/self/fd")
    for entry in list(fd_dir.iterdir()):
        try:
            target = os.readlink(entry)
            if not entry.is_file():
                continue
            with entry.open("rb") as fh:  # a new description: the owner's offset is kept
                if secret in fh.read():
                    found.append(target)
        except OSError:
            continue  # closed meanwhile, or not readable as a file
    return found


def files_holding(directory: Path, secret: bytes) -> list[Path]:
    """The files under ``directory`` whose contents hold ``secret``."""
    return [p for p in directory.rglob("*") if p.is_file() and secret in p.read_bytes()]
