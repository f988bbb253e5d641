"""What bundling reads and writes, on SQL.

:meth:`SqlBundleStore.bundle_input` gives every line of each woman who has a line still
open (so that a late line or a correction is decided together with what came before), the
integral lines already claimed for them, and the phases closed by hand.
:meth:`SqlBundleStore.record_bundle` stores a run's outcome in one transaction: the
outbound files (queued for the forwarder), the claimed integral lines with what they
absorbed, and where every settled original line ended.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from twisted.internet.defer import Deferred

from adapters.storage.database import Database, Transaction
from adapters.storage.lines import COLUMNS, line_from_row, woman_key
from adapters.storage.messages import JournalCodec, add_status_txn
from adapters.storage.outbox import enqueue_txn
from gateway.bundler import BundleInput, LineOutcome, QueuedFile
from gateway.lines import DeclaredLine
from gateway.rules.catalogue import Phase
from gateway.rules.claims import ClaimLink
from gateway.rules.model import RETURN_TO_DECLARE_ITSELF, Existing, LineKey
from gateway.store import MessageStatus, NewStatus

__all__ = ["SqlBundleStore"]

_CHUNK: Final = 400


class SqlBundleStore:
    def __init__(self, database: Database, codec: JournalCodec) -> None:
        self.database = database
        self.codec = codec

    def woman_of(self, line: DeclaredLine) -> str:
        return woman_key(self.codec, line.bsn, line.birth_date)

    def bundle_input(self) -> Deferred[BundleInput]:
        return self.database.run_read("bundle_input", bundle_input_txn, self.codec)

    def reserve(self, name: str, count: int) -> Deferred[int]:
        """Reserve ``count`` numbers of sequence ``name``; the first of them."""
        return self.database.run_interaction("reserve", reserve_txn, name, count)

    def record_bundle(
        self,
        outbound: Sequence[QueuedFile],
        claims: Sequence[tuple[ClaimLink, str, str]],  # (link, outbound traceerId, insurer)
        outcomes: Sequence[LineOutcome],
        at: datetime,
    ) -> Deferred[None]:
        return self.database.run_interaction(
            "record_bundle",
            record_bundle_txn,
            tuple(outbound),
            tuple(claims),
            tuple(outcomes),
            at,
            self.codec,
        )

    def close_phase(self, pregnancy: str, phase: Phase, by: str, at: datetime) -> Deferred[None]:
        return self.database.run_interaction(
            "close_phase", close_phase_txn, pregnancy, phase, by, at
        )


def _chunks(values: Sequence[Any]) -> list[Sequence[Any]]:
    return [values[i : i + _CHUNK] for i in range(0, len(values), _CHUNK)]


def bundle_input_txn(txn: Transaction, codec: JournalCodec) -> BundleInput:
    txn.execute("SELECT DISTINCT woman FROM declaration_lines WHERE state = 'open'")
    women = sorted(row[0] for row in txn.fetchall())
    lines: list[DeclaredLine] = []
    for chunk in _chunks(women):
        marks = ", ".join("?" * len(chunk))
        txn.execute(
            f"SELECT {COLUMNS} FROM declaration_lines WHERE woman IN ({marks})",  # noqa: S608
            tuple(chunk),
        )
        lines += [line_from_row(row, codec) for row in txn.fetchall()]
    keys = {(line.traceer_id, line.record_number) for line in lines}
    txn.execute("SELECT credits FROM integral_claims WHERE credits IS NOT NULL")
    credited = {row[0] for row in txn.fetchall()}
    txn.execute(
        "SELECT c.reference, c.pregnancy, c.phase, c.insurer, c.prestatie, c.amount,"
        " a.traceer_id, a.record_number FROM integral_claims c"
        " JOIN claim_absorbs a ON a.reference = c.reference WHERE c.credits IS NULL"
    )
    found: dict[str, tuple[tuple[Any, ...], set[LineKey]]] = {}
    for row in txn.fetchall():
        if row[0] in credited:
            continue
        entry = found.setdefault(row[0], (row[:6], set()))
        entry[1].add((row[6], int(row[7])))
    existing = [
        Existing(
            head[0], head[1], Phase(head[2]), head[3], head[4], int(head[5]), frozenset(absorbs)
        )
        for head, absorbs in found.values()
        if absorbs & keys
    ]
    txn.execute("SELECT pregnancy, phase FROM closed_phases")
    closed = {(row[0], Phase(row[1])) for row in txn.fetchall()}
    return BundleInput(lines, existing, closed)


def reserve_txn(txn: Transaction, name: str, count: int) -> int:
    txn.execute("SELECT value FROM counters WHERE name = ?", (name,))
    row = txn.fetchone()
    if row is None:
        txn.execute("INSERT INTO counters (name, value) VALUES (?, ?)", (name, count))
        return 1
    first = int(row[0]) + 1
    txn.execute("UPDATE counters SET value = ? WHERE name = ?", (int(row[0]) + count, name))
    return first


def record_bundle_txn(
    txn: Transaction,
    outbound: tuple[QueuedFile, ...],
    claims: tuple[tuple[ClaimLink, str, str], ...],
    outcomes: tuple[LineOutcome, ...],
    at: datetime,
    codec: JournalCodec,
) -> None:
    for item in outbound:
        enqueue_txn(txn, item.message, item.insurer, item.sender, codec)
    for link, message_id, insurer in claims:
        txn.execute(
            "INSERT INTO integral_claims (reference, invoice_number, record_number, outbound,"
            " insurer, pregnancy, phase, prestatie, amount, credits, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                link.reference,
                link.invoice_number,
                link.record_number,
                message_id,
                insurer,
                link.pregnancy,
                link.phase.value,
                link.prestatie,
                link.amount,
                link.credits,
                at,
            ),
        )
        for traceer_id, record_number in link.absorbs:
            txn.execute(
                "INSERT INTO claim_absorbs (reference, traceer_id, record_number) VALUES (?, ?, ?)",
                (link.reference, traceer_id, record_number),
            )
    # A run decides again every line of a woman with a line still open; an upload gets a
    # progress status only for its lines that move, not again for lines settled before.
    per_upload: dict[str, Counter[str]] = defaultdict(Counter)
    for outcome in outcomes:
        txn.execute(
            "SELECT state FROM declaration_lines WHERE traceer_id = ? AND record_number = ?",
            outcome.key,
        )
        row = txn.fetchone()
        if row is None or row[0] != outcome.place.value:
            per_upload[outcome.key[0]][outcome.place.value] += 1
    for upload, counts in sorted(per_upload.items()):
        add_status_txn(txn, upload, _progress(counts), at)
    for outcome in outcomes:
        traceer_id, record_number = outcome.key
        txn.execute(
            "UPDATE declaration_lines SET state = ?, reason = ?, retourcode = ?,"
            " claim_reference = COALESCE(?, claim_reference), outbound = COALESCE(?, outbound)"
            " WHERE traceer_id = ? AND record_number = ?",
            (
                outcome.place.value,
                outcome.reason,
                outcome.retourcode,
                outcome.claim_reference,
                outcome.outbound,
                traceer_id,
                record_number,
            ),
        )


_WORDS = {
    "absorbed": "integraal gedeclareerd",
    "forwarded": "monodisciplinair doorgestuurd",
    "returned": "teruggestuurd om zelf te declareren (9001)",
    "cancelled": "tegen een correctie weggestreept",
}


def _progress(counts: Counter[str]) -> NewStatus:
    """The status an upload gets when bundling settled some of its lines."""
    parts = [
        f"{counts[place]} regel(s) {words}" for place, words in _WORDS.items() if counts[place]
    ]
    status = (
        MessageStatus.FORWARDED
        if counts["absorbed"] or counts["forwarded"]
        else MessageStatus.PROCESSED
    )
    code = RETURN_TO_DECLARE_ITSELF if counts["returned"] else None
    return NewStatus(status, code, "Verwerkt: " + "; ".join(parts) + ".")


def close_phase_txn(txn: Transaction, pregnancy: str, phase: Phase, by: str, at: datetime) -> None:
    txn.execute(
        "INSERT INTO closed_phases (pregnancy, phase, closed_by, closed_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (pregnancy, phase) DO NOTHING",
        (pregnancy, phase.value, by, at),
    )
