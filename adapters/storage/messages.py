"""The messages area on SQL: :class:`SqlMessages` holds the SQL behind the
:class:`~gateway.ports.messages.MessageStore` port (the storage facade,
:class:`~adapters.storage.facade.SqlMessageStore`, answers the port by delegating here).

Every method is one interaction on the :class:`~adapters.storage.database.Database`:
writes are group-committed on the writer thread, reads run on the read pool. The SQL lives
in the ``*_txn`` functions below and in :mod:`adapters.storage.journal` (storing a message
with its bytes, adding a status, reading them back), which run on those threads and are
shared by SQLite and PostgreSQL.

Races between gateway processes on one PostgreSQL database are decided by the unique
constraints (traceer id, idempotency key, factuurnummer per payee): inserts use
``ON CONFLICT DO NOTHING`` and, when a row was not inserted, read back who won.

Uploads are recorded together: the uploads of one group-committed batch are looked up in
one query and written with one statement per table (:func:`record_uploads_txn`);
an upload that does not fit that path (one with replies or an ``Idempotency-Key``, one
that collides with another of its batch, or a whole batch that lost a race to another
process) is recorded alone by :func:`record_upload_txn`, with the same outcome.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.python.failure import Failure

from adapters.storage._values import (
    CONFIRMED_DESCRIPTION,
    check_limit,
    check_new_message,
)
from adapters.storage.database import (
    ALONE,
    Database,
    Transaction,
    encode_timestamp,
)
from adapters.storage.journal import (
    _IN_CHUNK,
    _SELECT_MESSAGES,
    MESSAGE_HEAD,
    MESSAGE_TAIL,
    MESSAGE_VALUES,
    JournalCodec,
    _forget_journal_txn,
    _insert_message_txn,
    _insert_status_txn,
    _message,
    add_status_txn,
    get_message_txn,
    journal_txn,
    message_by_key_txn,
    message_row,
    messages_txn,
    messages_with_payloads_txn,
    payload_txn,
    put_message_txn,
    statuses_txn,
)
from adapters.storage.lines import (
    bsn_key,
    lines_of_txn,
    lookup_hashes_txn,
    open_lines_txn,
    record_lines_txn,
    relink_bsn_txn,
    woman_key,
)
from gateway.crypto import CryptoError
from gateway.lines import DeclaredLine
from gateway.ports.messages import (
    Direction,
    Message,
    MessageStatus,
    NewMessage,
    NewStatus,
    StatusEntry,
    StoreError,
    UploadResult,
)

__all__ = ["SqlMessages", "invoice_holder_txn", "record_upload_txn"]


class SqlMessages:
    """The messages area: what :class:`~gateway.ports.messages.MessageStore` asks of the journal
    and the message tables (all but closing the database, which the facade owns)."""

    def __init__(self, database: Database, codec: JournalCodec) -> None:
        self.database = database
        self.codec = codec

    def reencrypt(self, limit: int = 100) -> Deferred[int]:
        """Seal up to ``limit`` rows of the sealed tables (journal, declaration lines) that
        are not under the current key (or not sealed at all) with it; the number done (0:
        nothing left)."""
        if self.codec.keyring is None:
            return fail(StoreError("no key file is configured ([encryption] key_file)"))
        return self.database.run_interaction("reencrypt", reencrypt_txn, self.codec, limit)

    def record_upload(
        self,
        upload: NewMessage,
        replies: Sequence[NewMessage] = (),
        lines: Sequence[DeclaredLine] = (),
        client_key: str | None = None,
    ) -> Deferred[UploadResult]:
        d = self.database.run_together(
            "record_upload",
            record_uploads_txn,
            record_upload_txn,
            upload,
            tuple(replies),
            self.codec,
            tuple(lines),
            client_key,
        )
        return d.addErrback(_key_taken)

    def declared_lines(self, traceer_id: str) -> Deferred[list[DeclaredLine]]:
        """The prestatie lines stored with upload ``traceer_id``, in file order."""
        return self.database.run_read("declared_lines", lines_of_txn, traceer_id, self.codec)

    def open_lines(self) -> Deferred[list[DeclaredLine]]:
        """Every line not yet settled by bundling."""
        return self.database.run_read("open_lines", open_lines_txn, self.codec)

    def put_message(self, message: NewMessage) -> Deferred[Message]:
        return self.database.run_interaction("put_message", put_message_txn, message, self.codec)

    def get_message(self, traceer_id: str) -> Deferred[Message | None]:
        return self.database.run_read("get_message", get_message_txn, traceer_id)

    def list_messages(
        self,
        party: str,
        direction: Direction,
        *,
        include_confirmed: bool = False,
        since: datetime | None = None,
        limit: int = 100,
    ) -> Deferred[list[Message]]:
        try:
            check_limit(limit)
        except ValueError as exc:
            return fail(exc)
        return self.database.run_read(
            "list_messages", list_messages_txn, party, direction, include_confirmed, since, limit
        )

    def messages_with_payloads(
        self, traceer_ids: Sequence[str]
    ) -> Deferred[dict[str, tuple[Message, bytes | None]]]:
        return self.database.run_read(
            "messages_with_payloads", messages_with_payloads_txn, tuple(traceer_ids), self.codec
        )

    def payload(self, sha256: str) -> Deferred[bytes | None]:
        return self.database.run_read("payload", payload_txn, sha256, self.codec)

    def confirm(self, traceer_id: str, party: str, at: datetime) -> Deferred[bool]:
        return self.database.run_interaction("confirm", confirm_txn, traceer_id, party, at)

    def add_status(self, traceer_id: str, status: NewStatus, at: datetime) -> Deferred[None]:
        return self.database.run_interaction("add_status", add_status_txn, traceer_id, status, at)

    def statuses(self, traceer_ids: Sequence[str]) -> Deferred[list[StatusEntry]]:
        return self.database.run_read("statuses", statuses_txn, tuple(traceer_ids))

    def conversation(self, conversatie_id: str) -> Deferred[list[Message]]:
        return self.database.run_read("conversation", conversation_txn, conversatie_id)

    def ping(self) -> Deferred[None]:
        return self.database.run_read("ping", ping_txn)


# --- reads -----------------------------------------------------------------------------------


def invoice_holder_txn(txn: Transaction, payee: str, invoice_number: str) -> str | None:
    """The traceer id of the declaration that uses ``invoice_number`` of ``payee``."""
    txn.execute(
        "SELECT traceer_id FROM messages WHERE payee = ? AND invoice_number = ? AND direction = ?",
        (payee, invoice_number, Direction.FROM_PARTICIPANT.value),
    )
    row = txn.fetchone()
    return None if row is None else str(row[0])


def list_messages_txn(
    txn: Transaction,
    party: str,
    direction: Direction,
    include_confirmed: bool,
    since: datetime | None,
    limit: int,
) -> list[Message]:
    sql = _SELECT_MESSAGES + " WHERE party = ? AND direction = ?"
    params: list[object] = [party, direction.value]
    if not include_confirmed:
        sql += " AND confirmed_at IS NULL"
    if since is not None:
        sql += " AND created_at >= ?"
        params.append(since)
    sql += " ORDER BY created_at, seq LIMIT ?"
    params.append(limit)
    txn.execute(sql, params)
    return [_message(row) for row in txn.fetchall()]


def conversation_txn(txn: Transaction, conversatie_id: str) -> list[Message]:
    txn.execute(
        _SELECT_MESSAGES + " WHERE conversatie_id = ? ORDER BY created_at, seq",
        (conversatie_id,),
    )
    return [_message(row) for row in txn.fetchall()]


def ping_txn(txn: Transaction) -> None:
    txn.execute("SELECT 1")
    txn.fetchone()


# --- writes ----------------------------------------------------------------------------------


def reencrypt_txn(txn: Transaction, codec: JournalCodec, limit: int) -> int:
    """Seal up to ``limit`` rows of the sealed tables (the journal's payloads first, then
    the declaration lines' client values) that are not under the current key with it."""
    assert codec.keyring is not None
    keyring = codec.keyring
    current = keyring.current
    txn.execute(
        "SELECT sha256, payload, key_id FROM journal"
        " WHERE key_id IS NULL OR key_id <> ? ORDER BY sha256 LIMIT ?",
        (current, limit),
    )
    rows = txn.fetchall()
    for sha256, stored, key_id in rows:
        plain = codec.open(key_id, bytes(stored), sha256)
        new_id, sealed = codec.seal(plain, sha256)
        txn.execute(
            "UPDATE journal SET payload = ?, key_id = ? WHERE sha256 = ?", (sealed, new_id, sha256)
        )
    done = len(rows)
    if done >= limit:
        return done
    txn.execute(
        "SELECT traceer_id, record_number, client, key_id FROM declaration_lines"
        " WHERE key_id IS NULL OR key_id <> ? ORDER BY traceer_id, record_number LIMIT ?",
        (current, limit - done),
    )
    lines = txn.fetchall()
    for traceer_id, record_number, stored, key_id in lines:
        place = f"{traceer_id}:{record_number}".encode()
        try:
            plain = bytes(stored) if key_id is None else keyring.open(key_id, bytes(stored), place)
        except CryptoError as exc:
            raise StoreError(f"declaration line {traceer_id}:{record_number}: {exc}") from None
        new_id, sealed = keyring.seal(plain, place)
        txn.execute(
            "UPDATE declaration_lines SET client = ?, key_id = ?"
            " WHERE traceer_id = ? AND record_number = ?",
            (sealed, new_id, traceer_id, record_number),
        )
        if key_id is None:  # stored without a key file: its lookup hashes were unkeyed
            _rekey_lookups_txn(txn, codec, traceer_id, record_number, plain)
    return done + len(lines)


def _rekey_lookups_txn(
    txn: Transaction, codec: JournalCodec, traceer_id: str, record_number: int, client: bytes
) -> None:
    """A line stored without a key file gets the keyed hashes (``woman``, ``bsn_index``) a
    gateway with the key file looks it up by; else a BSN search and the bundler's grouping
    by woman would miss it."""
    person = json.loads(client)
    bsn, born = str(person["bsn"]), person.get("birth_date")
    birth_date = date.fromisoformat(born) if born else None
    before = lookup_hashes_txn(txn, traceer_id, record_number)
    woman, bsn_index = woman_key(codec, bsn, birth_date), bsn_key(codec, bsn)
    txn.execute(
        "UPDATE declaration_lines SET woman = ?, bsn_index = ?"
        " WHERE traceer_id = ? AND record_number = ?",
        (woman, bsn_index, traceer_id, record_number),
    )
    relink_bsn_txn(txn, before, (bsn_index, woman))


def _invoice(message: NewMessage) -> tuple[str, str] | None:
    """(payee, factuurnummer) of a declaration that must hold its invoice number alone."""
    if (
        message.direction is Direction.FROM_PARTICIPANT
        and message.payee is not None
        and message.invoice_number is not None
    ):
        return (message.payee, message.invoice_number)
    return None


def _client_key_txn(txn: Transaction, upload: NewMessage, client_key: str) -> UploadResult | None:
    """What the participant's ``Idempotency-Key`` already names: the same answer (same
    bytes) or a conflict (other bytes); None when the key is new."""
    txn.execute(
        "SELECT traceer_id, sha256 FROM upload_idempotency_keys"
        " WHERE party = ? AND idempotency_key = ?",
        (upload.party, client_key),
    )
    row = txn.fetchone()
    if row is None:
        return None
    named = get_message_txn(txn, str(row[0]))
    return UploadResult(named, created=False, key_conflict=str(row[1]) != upload.sha256)


def _claim_client_key_txn(
    txn: Transaction, upload: NewMessage, client_key: str, message: Message
) -> UploadResult | None:
    """Let the key name ``message``; when another transaction took it first (another
    gateway process on PostgreSQL), what it names instead."""
    txn.execute(
        "INSERT INTO upload_idempotency_keys (party, idempotency_key, sha256, traceer_id,"
        " created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (upload.party, client_key, upload.sha256, message.traceer_id, upload.created_at),
    )
    if txn.rowcount == 1:
        return None
    return _client_key_txn(txn, upload, client_key)


def record_upload_txn(
    txn: Transaction,
    upload: NewMessage,
    replies: tuple[NewMessage, ...],
    codec: JournalCodec,
    lines: tuple[DeclaredLine, ...] = (),
    client_key: str | None = None,
) -> UploadResult:
    for message in (upload, *replies):
        check_new_message(message)
    if client_key is not None:
        known = _client_key_txn(txn, upload, client_key)
        if known is not None:
            return known
    existing = message_by_key_txn(txn, upload.idempotency_key)
    if existing is not None:
        if client_key is not None:
            # The same bytes under a new key: the key names the message they are.
            taken = _claim_client_key_txn(txn, upload, client_key, existing)
            if taken is not None:
                return taken
        return UploadResult(existing, created=False)
    invoice = _invoice(upload)
    if invoice is not None:
        holder = invoice_holder_txn(txn, *invoice)
        if holder is not None:
            return UploadResult(None, created=False, invoice_conflict=holder)
    journaled = journal_txn(txn, upload, codec)
    if not _insert_message_txn(txn, upload):
        # Another gateway process stored the same upload or invoice number first.
        if journaled:
            _forget_journal_txn(txn, upload.sha256)
        existing = message_by_key_txn(txn, upload.idempotency_key)
        if existing is not None:
            return UploadResult(existing, created=False)
        if invoice is not None:
            holder = invoice_holder_txn(txn, *invoice)
            if holder is not None:
                return UploadResult(None, created=False, invoice_conflict=holder)
        holding = get_message_txn(txn, upload.traceer_id)
        if holding is not None:
            # Its traceer id is another message's: that one, for the caller to judge.
            return UploadResult(holding, created=False)
        raise StoreError(f"upload {upload.traceer_id} collides with a stored message")
    for reply in replies:
        put_message_txn(txn, reply, codec)
    if lines:
        record_lines_txn(txn, lines, codec)
    stored = get_message_txn(txn, upload.traceer_id)
    assert stored is not None
    if client_key is not None:
        taken = _claim_client_key_txn(txn, upload, client_key, stored)
        if taken is not None:
            # Another process stored an upload under this key meanwhile: take back ours.
            raise _KeyTaken(taken)
    return UploadResult(stored, created=True)


class _Raced(Exception):  # noqa: N818 - a signal to record the batch's uploads alone
    """A row of the batch was taken meanwhile (another gateway process)."""


def record_uploads_txn(txn: Transaction, calls: list[tuple[Any, ...]]) -> list[object]:
    """The uploads of one batch (the arguments of :func:`record_upload_txn`, one tuple per
    upload) recorded together: one look-up for all, then one statement per table
    (journal, messages, statuses, lines) and one read-back. Each gets the result
    :func:`record_upload_txn` would give it, or :data:`~adapters.storage.database.ALONE`:
    an upload with replies or a client key, one that fails the checks of a new message,
    and one that collides with an earlier upload of the batch (same traceer id,
    idempotency key or factuurnummer of the payee) is left to be recorded alone, after
    these. Raises :class:`_Raced` (the database rolls the batch back and records each
    alone) when another process took a row in the meantime."""
    results: list[object] = [ALONE] * len(calls)
    chosen: list[tuple[int, NewMessage, JournalCodec, tuple[DeclaredLine, ...]]] = []
    keys: set[str] = set()
    traceer_ids: set[str] = set()
    invoices: set[tuple[str, str]] = set()
    for at, call in enumerate(calls):
        upload, replies, codec, lines, client_key = call
        if replies or client_key is not None:
            continue
        try:
            check_new_message(upload)
        except ValueError:
            continue  # recorded alone: its caller gets the error
        invoice = _invoice(upload)
        if (
            upload.idempotency_key in keys
            or upload.traceer_id in traceer_ids
            or (invoice is not None and invoice in invoices)
        ):
            continue  # recorded alone, after this batch's rows: it sees them
        keys.add(upload.idempotency_key)
        traceer_ids.add(upload.traceer_id)
        if invoice is not None:
            invoices.add(invoice)
        chosen.append((at, upload, codec, lines))
    if not chosen:
        return results
    by_key, by_traceer_id, holders = _known_txn(txn, [upload for _, upload, _, _ in chosen])
    new: list[tuple[int, NewMessage, JournalCodec, tuple[DeclaredLine, ...]]] = []
    for at, upload, codec, lines in chosen:
        invoice = _invoice(upload)
        existing = by_key.get(upload.idempotency_key)
        if existing is not None:
            results[at] = UploadResult(existing, created=False)
        elif invoice is not None and invoice in holders:
            results[at] = UploadResult(None, created=False, invoice_conflict=holders[invoice])
        elif upload.traceer_id in by_traceer_id:
            # Its traceer id is another message's: that one, for the caller to judge.
            results[at] = UploadResult(by_traceer_id[upload.traceer_id], created=False)
        else:
            new.append((at, upload, codec, lines))
    if not new:
        return results
    journal: dict[str, tuple[object, ...]] = {}
    for _, upload, codec, _ in new:
        if upload.sha256 not in journal:
            key_id, stored = codec.seal(upload.payload, upload.sha256)
            journal[upload.sha256] = (
                upload.sha256,
                len(upload.payload),
                stored,
                key_id,
                upload.created_at,
            )
    txn.insert_values(
        "INSERT INTO journal (sha256, size, payload, key_id, created_at)",
        "(?, ?, ?, ?, ?)",
        list(journal.values()),
        "ON CONFLICT (sha256) DO NOTHING",
    )
    rows = [message_row(upload) for _, upload, _, _ in new]
    if txn.insert_values(MESSAGE_HEAD, MESSAGE_VALUES, rows, MESSAGE_TAIL) != len(new):
        raise _Raced("an upload of the batch was stored meanwhile by another process")
    txn.insert_rows(
        "message_statuses",
        "traceer_id, at, status, code, description",
        [
            (
                upload.traceer_id,
                _stored_at(txn, upload.created_at),
                upload.status.status.value,
                upload.status.code,
                upload.status.description,
            )
            for _, upload, _, _ in new
        ],
    )
    if any(lines for _, _, _, lines in new):
        from adapters.storage.lines import record_many_lines_txn  # noqa: PLC0415 - imports this

        record_many_lines_txn(txn, [(lines, codec) for _, _, codec, lines in new if lines])
    written = messages_txn(txn, [upload.traceer_id for _, upload, _, _ in new])
    for at, upload, _, _ in new:
        results[at] = UploadResult(written[upload.traceer_id], created=True)
    return results


def _known_txn(
    txn: Transaction, uploads: Sequence[NewMessage]
) -> tuple[dict[str, Message], dict[str, Message], dict[tuple[str, str], str]]:
    """What the store already holds for ``uploads``, in one query per chunk: the messages
    by idempotency key and by traceer id, and the traceer id of the declaration holding
    each (payee, factuurnummer)."""
    by_key: dict[str, Message] = {}
    by_traceer_id: dict[str, Message] = {}
    holders: dict[tuple[str, str], str] = {}
    wanted = {_invoice(upload) for upload in uploads} - {None}
    for start in range(0, len(uploads), _IN_CHUNK):
        chunk = uploads[start : start + _IN_CHUNK]
        numbers = sorted({i[1] for i in map(_invoice, chunk) if i is not None})
        marks = ", ".join("?" * len(chunk))
        sql = (
            _SELECT_MESSAGES.replace(" FROM messages", ", idempotency_key FROM messages")
            + f" WHERE idempotency_key IN ({marks}) OR traceer_id IN ({marks})"
        )
        params: list[object] = [u.idempotency_key for u in chunk]
        params += [u.traceer_id for u in chunk]
        if numbers:
            sql += f" OR (direction = ? AND invoice_number IN ({', '.join('?' * len(numbers))}))"
            params += [Direction.FROM_PARTICIPANT.value, *numbers]
        txn.execute(sql, params)
        for row in txn.fetchall():
            message = _message(row)
            by_key[str(row[16])] = message
            by_traceer_id[message.traceer_id] = message
            if message.direction is Direction.FROM_PARTICIPANT and message.payee is not None:
                invoice = (message.payee, message.invoice_number or "")
                if invoice in wanted:
                    holders[invoice] = message.traceer_id
    return by_key, by_traceer_id, holders


def _stored_at(txn: Transaction, at: datetime) -> object:
    """``at`` as ``txn``'s engine stores it (for :meth:`Transaction.insert_rows`)."""
    return at.astimezone(UTC) if txn.engine == "postgres" else encode_timestamp(at)


def _key_taken(failure: Failure) -> UploadResult:
    """A concurrent upload took the Idempotency-Key: ours was rolled back; its answer."""
    failure.trap(_KeyTaken)
    taken = failure.value
    assert isinstance(taken, _KeyTaken)
    return taken.result


class _KeyTaken(Exception):  # noqa: N818 - a signal to roll back, not an error to report
    def __init__(self, result: UploadResult) -> None:
        super().__init__("the Idempotency-Key was taken by a concurrent upload")
        self.result = result


def confirm_txn(txn: Transaction, traceer_id: str, party: str, at: datetime) -> bool:
    waiting = (traceer_id, party, Direction.TO_PARTICIPANT.value)
    txn.execute(
        "UPDATE messages SET confirmed_at = ?, status = ?"
        " WHERE traceer_id = ? AND party = ? AND direction = ? AND confirmed_at IS NULL",
        (at, MessageStatus.CONFIRMED.value, *waiting),
    )
    if txn.rowcount == 1:
        _insert_status_txn(
            txn, traceer_id, NewStatus(MessageStatus.CONFIRMED, None, CONFIRMED_DESCRIPTION), at
        )
        return True
    # Confirming again is no error; a message of another party (or none) is.
    txn.execute(
        "SELECT 1 FROM messages WHERE traceer_id = ? AND party = ? AND direction = ?", waiting
    )
    return txn.fetchone() is not None
