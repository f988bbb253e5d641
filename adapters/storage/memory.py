"""An in-memory message store: the storage port without a database.

:class:`MemoryMessageStore` keeps everything in dictionaries and answers with Deferreds
that have already fired, so services and resources built on it can be driven in a plain
function call (no reactor, no threads). It is held to the same behaviour tests as the SQL
stores — idempotency keys, the factuurnummer rule per payee, all-or-nothing writes, order
of listings — so what passes on it passes on SQLite and PostgreSQL.

It is real code, not a test double: use it for unit tests of services, demos and tools
that need a store for the length of one process. Nothing survives the process, and it is
not thread-safe: call it from one thread (the reactor's).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, fail, succeed

from adapters.storage._values import (
    CONFIRMED_DESCRIPTION,
    check_limit,
    check_new_message,
    dump_metadata,
    load_metadata,
)
from gateway.lines import DeclaredLine
from gateway.ports.messages import (
    Direction,
    Message,
    MessageStatus,
    NewMessage,
    NewStatus,
    StatusEntry,
    StoreError,
    StoreUnavailableError,
    UploadResult,
)

__all__ = ["MemoryMessageStore"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Row:
    """A stored message: what :class:`Message` shows, plus its idempotency key."""

    message: Message
    metadata_json: str
    idempotency_key: str
    seq: int  # order of insertion: breaks ties of created_at


class MemoryMessageStore:
    """:class:`~gateway.ports.messages.MessageStore` in memory, with the SQL stores' semantics."""

    def __init__(self) -> None:
        self._journal: dict[str, bytes] = {}
        self._messages: dict[str, _Row] = {}
        self._by_key: dict[str, str] = {}
        self._invoices: dict[tuple[str, str], str] = {}
        self._client_keys: dict[tuple[str, str], str] = {}  # (party, Idempotency-Key)
        self._statuses: list[tuple[datetime, int, StatusEntry]] = []
        self._undo: list[Callable[[], None]] | None = None
        self._seq = 0
        self._closed = False
        self.lines: list[DeclaredLine] = []  # the prestatie lines recorded with uploads

    # --- inspection (for tests and tools) ----------------------------------------------

    def message_count(self) -> int:
        """Messages stored, in every direction."""
        return len(self._messages)

    def journal_count(self) -> int:
        """Distinct payloads journaled."""
        return len(self._journal)

    # --- the port ------------------------------------------------------------------------

    def record_upload(
        self,
        upload: NewMessage,
        replies: Sequence[NewMessage] = (),
        lines: Sequence[DeclaredLine] = (),
        client_key: str | None = None,
    ) -> Deferred[UploadResult]:
        def run() -> UploadResult:
            scoped = None if client_key is None else (upload.party, client_key)
            if scoped is not None and scoped in self._client_keys:
                found = _copy(self._messages[self._client_keys[scoped]])
                conflict = found.sha256 != upload.sha256
                return UploadResult(found, created=False, key_conflict=conflict)
            result = self._record_upload(upload, tuple(replies))
            if result.created:
                self.lines.extend(lines)
            if scoped is not None and result.message is not None:
                self._set(self._client_keys, scoped, result.message.traceer_id)
            return result

        return self._write(run)

    def put_message(self, message: NewMessage) -> Deferred[Message]:
        return self._write(lambda: self._put(message))

    def get_message(self, traceer_id: str) -> Deferred[Message | None]:
        return self._read(lambda: self._get(traceer_id))

    def list_messages(
        self,
        party: str,
        direction: Direction,
        *,
        include_confirmed: bool = False,
        since: datetime | None = None,
        limit: int = 100,
    ) -> Deferred[list[Message]]:
        def run() -> list[Message]:
            check_limit(limit)
            start = None if since is None else _utc(since)
            found = [
                row
                for row in self._messages.values()
                if row.message.party == party
                and row.message.direction is direction
                and (include_confirmed or row.message.confirmed_at is None)
                and (start is None or row.message.created_at >= start)
            ]
            return [_copy(row) for row in sorted(found, key=_oldest_first)[:limit]]

        return self._read(run)

    def payload(self, sha256: str) -> Deferred[bytes | None]:
        return self._read(lambda: self._journal.get(sha256))

    def messages_with_payloads(
        self, traceer_ids: Sequence[str]
    ) -> Deferred[dict[str, tuple[Message, bytes | None]]]:
        def run() -> dict[str, tuple[Message, bytes | None]]:
            found = {}
            for traceer_id in traceer_ids:
                message = self._get(traceer_id)
                if message is not None:
                    found[traceer_id] = (message, self._journal.get(message.sha256))
            return found

        return self._read(run)

    def confirm(self, traceer_id: str, party: str, at: datetime) -> Deferred[bool]:
        return self._write(lambda: self._confirm(traceer_id, party, at))

    def add_status(self, traceer_id: str, status: NewStatus, at: datetime) -> Deferred[None]:
        return self._write(lambda: self._add_status(traceer_id, status, at))

    def statuses(self, traceer_ids: Sequence[str]) -> Deferred[list[StatusEntry]]:
        def run() -> list[StatusEntry]:
            wanted = set(traceer_ids)
            return [entry for _, _, entry in self._statuses if entry.traceer_id in wanted]

        return self._read(run)

    def conversation(self, conversatie_id: str) -> Deferred[list[Message]]:
        def run() -> list[Message]:
            found = [
                row
                for row in self._messages.values()
                if row.message.conversatie_id == conversatie_id
            ]
            return [_copy(row) for row in sorted(found, key=_oldest_first)]

        return self._read(run)

    def ping(self) -> Deferred[None]:
        return self._read(lambda: None)

    def close(self) -> Deferred[None]:
        self._closed = True
        return succeed(None)

    # --- transactions --------------------------------------------------------------------

    def _read(self, fn: Callable[[], T]) -> Deferred[T]:
        if self._closed:
            return fail(StoreUnavailableError("the store is closed"))
        try:
            return succeed(fn())
        except Exception as exc:  # handed to the caller, as the SQL stores do
            return fail(exc)

    def _write(self, fn: Callable[[], T]) -> Deferred[T]:
        """Run ``fn`` all or nothing: what it changed is undone if it raises."""
        if self._closed:
            return fail(StoreUnavailableError("the store is closed"))
        self._undo = []
        try:
            result = fn()
        except Exception as exc:  # handed to the caller, as the SQL stores do
            for undo in reversed(self._undo):
                undo()
            return fail(exc)
        finally:
            self._undo = None
        return succeed(result)

    def _set(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        assert self._undo is not None, "writes happen inside _write"
        if key in table:
            old = table[key]
            self._undo.append(lambda: table.__setitem__(key, old))
        else:
            self._undo.append(lambda: table.pop(key))
        table[key] = value

    # --- the operations ------------------------------------------------------------------

    def _get(self, traceer_id: str) -> Message | None:
        row = self._messages.get(traceer_id)
        return None if row is None else _copy(row)

    def _by_idempotency_key(self, key: str) -> Message | None:
        traceer_id = self._by_key.get(key)
        return None if traceer_id is None else _copy(self._messages[traceer_id])

    def _record_upload(self, upload: NewMessage, replies: tuple[NewMessage, ...]) -> UploadResult:
        for message in (upload, *replies):
            check_new_message(message)
        existing = self._by_idempotency_key(upload.idempotency_key)
        if existing is not None:
            return UploadResult(existing, created=False)
        invoice = _invoice_key(upload)
        if invoice is not None and invoice in self._invoices:
            return UploadResult(None, created=False, invoice_conflict=self._invoices[invoice])
        if upload.traceer_id in self._messages:  # another message's traceer id
            return UploadResult(_copy(self._messages[upload.traceer_id]), created=False)
        stored = self._put(upload)
        for reply in replies:
            self._put(reply)
        return UploadResult(stored, created=True)

    def _put(self, new: NewMessage) -> Message:
        check_new_message(new)
        existing = self._by_idempotency_key(new.idempotency_key)
        if existing is not None:
            return existing
        invoice = _invoice_key(new)
        if new.traceer_id in self._messages or (invoice is not None and invoice in self._invoices):
            raise StoreError(
                f"message {new.traceer_id} collides with a stored message"
                " (traceer id or factuurnummer of the payee)"
            )
        metadata_json = dump_metadata(new.metadata)
        message = Message(
            traceer_id=new.traceer_id,
            conversatie_id=new.conversatie_id,
            direction=new.direction,
            party=new.party,
            sha256=new.sha256,
            size=len(new.payload),
            created_at=_utc(new.created_at),
            status=new.status.status,
            filename=new.filename,
            standard=new.standard,
            invoice_number=new.invoice_number,
            payee=new.payee,
            reply_to=new.reply_to,
            reference_id=new.reference_id,
            metadata=load_metadata(metadata_json),
            confirmed_at=None,
        )
        if new.sha256 not in self._journal:
            self._set(self._journal, new.sha256, bytes(new.payload))
        row = _Row(message, metadata_json, new.idempotency_key, seq=self._next_seq())
        self._set(self._messages, new.traceer_id, row)
        self._set(self._by_key, new.idempotency_key, new.traceer_id)
        if invoice is not None:
            self._set(self._invoices, invoice, new.traceer_id)
        self._append_status(new.traceer_id, new.status, new.created_at)
        return _copy(self._messages[new.traceer_id])

    def _confirm(self, traceer_id: str, party: str, at: datetime) -> bool:
        when = _utc(at)
        row = self._messages.get(traceer_id)
        if (
            row is None
            or row.message.party != party
            or row.message.direction is not Direction.TO_PARTICIPANT
        ):
            return False
        if row.message.confirmed_at is not None:
            return True
        confirmed = replace(row.message, confirmed_at=when, status=MessageStatus.CONFIRMED)
        self._set(self._messages, traceer_id, replace(row, message=confirmed))
        self._append_status(
            traceer_id, NewStatus(MessageStatus.CONFIRMED, None, CONFIRMED_DESCRIPTION), when
        )
        return True

    def _add_status(self, traceer_id: str, status: NewStatus, at: datetime) -> None:
        when = _utc(at)
        row = self._messages.get(traceer_id)
        if row is None:
            raise StoreError(f"no message with traceer id {traceer_id}")
        updated = replace(row.message, status=status.status)
        self._set(self._messages, traceer_id, replace(row, message=updated))
        self._append_status(traceer_id, status, when)

    def _next_seq(self) -> int:
        # Not undone on rollback: like a database sequence, it only has to increase.
        self._seq += 1
        return self._seq

    def _append_status(self, traceer_id: str, status: NewStatus, at: datetime) -> None:
        assert self._undo is not None
        when = _utc(at)
        entry = StatusEntry(traceer_id, when, status.status, status.code, status.description)
        seq = self._next_seq()
        # Kept sorted oldest first; the sequence number orders entries of one instant.
        index = len(self._statuses)
        while index > 0 and self._statuses[index - 1][0] > when:
            index -= 1
        self._statuses.insert(index, (when, seq, entry))
        self._undo.append(lambda: self._statuses.remove((when, seq, entry)))


def _copy(row: _Row) -> Message:
    """A message the caller may keep: its metadata is decoded anew from the stored text."""
    return replace(row.message, metadata=load_metadata(row.metadata_json))


def _invoice_key(message: NewMessage) -> tuple[str, str] | None:
    if (
        message.direction is Direction.FROM_PARTICIPANT
        and message.payee is not None
        and message.invoice_number is not None
    ):
        return (message.payee, message.invoice_number)
    return None


def _oldest_first(row: _Row) -> tuple[datetime, int]:
    return (row.message.created_at, row.seq)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamps must be timezone-aware")
    return value.astimezone(UTC)
