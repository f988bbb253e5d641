"""The insurer link for parties that exchange files by directory: an outbox and an inbox.

Implements :class:`gateway.ports.insurer.InsurerLink` over two folders (local, or a mounted
share that a transfer tool synchronises):

* :meth:`DirectoryInsurerLink.send` writes ``<message id>.asc`` into the outbox. It is
  written under a hidden temporary name in the *same* folder, flushed to disk (fsync), then
  renamed into place with ``os.replace`` — atomic on one file system — and the folder is
  fsynced, so the other side never sees a half-written file. The name comes from the
  file's stable id, so a re-send after a crash finds the file (or the ledger entry left
  once it was picked up) and is reported as a repeat instead of writing a second claim.
* :meth:`DirectoryInsurerLink.fetch` takes the inbox's complete files: hidden names and
  temporary suffixes (``.tmp``, ``.part``, ``.partial``) are skipped, and so is a file
  modified in the last ``settle_seconds`` or that changes while it is read — for a partner
  that writes in place instead of renaming.
* :meth:`DirectoryInsurerLink.confirm` moves a retour into the archive folder (or deletes
  it when there is none); confirming a file that is gone already is fine.

The ledger of sent files is a hidden folder ``.sent`` in the outbox (one small file per
sent id, holding the payload's SHA-256); transfer tools should skip dot-files.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from gateway.ports.insurer import (
    Delivery,
    FetchedRetour,
    InsurerLinkError,
    LinkErrorReason,
    OutboundFile,
)
from gateway.ports.runtime import RunInThread, run_inline

__all__ = ["DirectoryInsurerLink", "write_atomically"]

T = TypeVar("T")

LEDGER = ".sent"
TEMPORARY_SUFFIXES = (".tmp", ".part", ".partial")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` so that readers see either nothing or all of it:
    a hidden temporary file in the same folder, fsync, ``os.replace``, fsync the folder."""
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


class DirectoryInsurerLink:
    """Outbox/inbox folders for one insurer (see the module docs).

    ``clock`` gives the wall-clock time in seconds (as ``time.time``) to compare with file
    modification times; ``run`` runs blocking file work (e.g. ``deferToThread``-based in
    production; inline by default and in tests).
    """

    def __init__(
        self,
        outbox: Path,
        inbox: Path,
        *,
        archive: Path | None = None,
        suffix: str = ".asc",
        settle_seconds: float = 2.0,
        clock: Callable[[], float] = time.time,
        run: RunInThread = run_inline,
        max_per_fetch: int = 100,
    ) -> None:
        self.outbox = outbox
        self.inbox = inbox
        self.archive = archive
        self._suffix = suffix
        self._settle = settle_seconds
        self._clock = clock
        self._run = run
        self._max_per_fetch = max_per_fetch

    async def _blocking(self, work: Callable[[], T]) -> T:
        try:
            return await self._run(work)
        except InsurerLinkError:
            raise
        except OSError as exc:
            raise InsurerLinkError(
                LinkErrorReason.IO, f"{exc.strerror or exc} ({exc.filename})"
            ) from None

    # --- the port ----------------------------------------------------------------------------

    async def send(self, file: OutboundFile) -> Delivery:
        return await self._blocking(lambda: self._send(file))

    async def fetch(self) -> Sequence[FetchedRetour]:
        return await self._blocking(self._fetch)

    async def confirm(self, retour: FetchedRetour) -> None:
        await self._blocking(lambda: self._confirm(retour))

    # --- blocking work -----------------------------------------------------------------------

    def file_name(self, message_id: str) -> str:
        """The outbox name of a message: its id, made safe for any file system."""
        return _UNSAFE.sub("_", message_id).lstrip(".") + self._suffix

    def _send(self, file: OutboundFile) -> Delivery:
        name = self.file_name(file.message_id)
        target = self.outbox / name
        ledger = self.outbox / LEDGER / name
        sha = file.sha256
        if ledger.exists():
            if ledger.read_text(encoding="ascii").strip() != sha:
                raise _conflict(name)
            return Delivery(name, repeated=True)
        self.outbox.mkdir(parents=True, exist_ok=True)
        if target.exists():
            if hashlib.sha256(target.read_bytes()).hexdigest() != sha:
                raise _conflict(name)
            repeated = True
        else:
            write_atomically(target, file.payload)
            repeated = False
        # The ledger entry comes after the file: a crash in between leaves the file, which
        # the next attempt finds above; the reverse order could lose the file.
        ledger.parent.mkdir(exist_ok=True)
        write_atomically(ledger, sha.encode("ascii"))
        return Delivery(name, repeated=repeated)

    def _fetch(self) -> list[FetchedRetour]:
        if not self.inbox.is_dir():
            return []
        now = self._clock()
        found: list[FetchedRetour] = []
        for path in sorted(self.inbox.iterdir()):
            if len(found) >= self._max_per_fetch:
                break
            name = path.name
            if name.startswith(".") or name.endswith(TEMPORARY_SUFFIXES):
                continue
            before = path.stat()
            if not path.is_file() or now - before.st_mtime < self._settle:
                continue
            payload = path.read_bytes()
            after = path.stat()
            if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
                continue  # still being written; next time
            if len(payload) != after.st_size:
                continue
            found.append(
                FetchedRetour(
                    remote_id=name,
                    payload=payload,
                    filename=name,
                    received_at=datetime.fromtimestamp(after.st_mtime, UTC),
                )
            )
        return found

    def _confirm(self, retour: FetchedRetour) -> None:
        name = retour.remote_id
        if "/" in name or name.startswith("."):
            raise InsurerLinkError(LinkErrorReason.PROTOCOL, f"not an inbox file name: {name!r}")
        source = self.inbox / name
        if not source.exists():
            return
        if self.archive is None:
            source.unlink(missing_ok=True)
            _fsync_dir(self.inbox)
            return
        self.archive.mkdir(parents=True, exist_ok=True)
        target = self.archive / name
        n = 1
        while target.exists():
            target = self.archive / f"{name}.{n}"
            n += 1
        os.replace(source, target)
        _fsync_dir(self.archive)
        _fsync_dir(self.inbox)


def _conflict(name: str) -> InsurerLinkError:
    return InsurerLinkError(LinkErrorReason.CONFLICT, f"{name} was already sent with other content")
