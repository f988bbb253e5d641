"""The administrator's search on SQL (:class:`gateway.admin.search.SearchStore`): messages,
declaration lines and integral claims found by their business keys.

One query per kind of hit (messages: uploads, retours and outbound files; declaration
lines; integral claims), each newest first and cut at ``limit + 1``; the hits are merged,
sorted newest first and cut at ``limit``, and "more" says whether anything was left off.
A key that does not apply to a table directly is matched through what it is linked to:
an upload matches an insurer or a BSN through its lines, an outbound file a BSN through
the lines that went in it, a claim a participant, a retourcode or a BSN through the lines
it absorbed.

Dates: a line's date is its prestatie date; a message's and a claim's the day (UTC) it was
stored.

A BSN is matched only through ``declaration_lines.bsn_index``, a keyed hash of the BSN
(:func:`adapters.storage.lines.bsn_key`): the table ``bsn_women`` names the women whose
lines carry it, their lines are read by the woman's index, and each line's own
``bsn_index`` is checked (:data:`_BSN_LINES`). Lines stored before schema version 11 have none:
the first search of a :class:`SqlSearchStore` fills them in from their sealed client value
(:func:`backfill_bsn_index_txn`, in batches), so that none is missed. A hit's own BSN is
read from the sealed value only when the caller reveals it.

The case a hit belongs to: an upload rejected at intake, an outbound file parked, a retour
that answers nothing, a claim (and its lines) rejected by the insurer and in review (the
rules of the case sources of :mod:`adapters.storage.admin` and
:mod:`adapters.storage.resolution`), and any case the
administrator has a record of whose ref is the message's traceer id, the line's
``traceer:record``, its claim's reference or its outbound file, or the claim's reference or
its outbound file (so a case retried or written off stays linked after its facts went).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

from adapters.storage.database import POSTGRES, Database, Transaction, decode_timestamp
from adapters.storage.journal import JournalCodec, statuses_txn
from adapters.storage.lines import bsn_key, link_bsn_txn
from gateway.admin.cases import CaseKind, case_id
from gateway.admin.search import MASKED_BSN, HitKind, SearchHit, SearchQuery
from gateway.crypto import CryptoError
from gateway.lines import AnswerOutcome
from gateway.ports.messages import Direction, MessageStatus, StoreError

__all__ = ["BACKFILL_BATCH", "SqlSearchStore", "backfill_bsn_index_txn", "search_txn"]

BACKFILL_BATCH: Final = 1000

_KIND_OF_DIRECTION: Final = {
    Direction.FROM_PARTICIPANT.value: HitKind.UPLOAD,
    Direction.TO_PARTICIPANT.value: HitKind.RETOUR,
    Direction.FROM_INSURER.value: HitKind.RETOUR,
    Direction.TO_INSURER.value: HitKind.OUTBOUND,
}


class SqlSearchStore:
    def __init__(self, database: Database, codec: JournalCodec) -> None:
        self.database = database
        self.codec = codec
        self._filled = False

    async def backfill(self) -> int:
        """Give every line stored without a BSN index one; how many it did."""
        done = 0
        while True:
            count = await self.database.run_interaction(
                "search_backfill", backfill_bsn_index_txn, self.codec, BACKFILL_BATCH
            )
            done += count
            if count < BACKFILL_BATCH:
                self._filled = True
                return done

    async def search(
        self, query: SearchQuery, limit: int, *, reveal: bool
    ) -> tuple[list[SearchHit], bool]:
        if not self._filled:
            await self.backfill()
        bsn_index = bsn_key(self.codec, query.bsn) if query.bsn is not None else None
        return await self.database.run_read(
            "search", search_txn, query, bsn_index, limit, self.codec if reveal else None
        )


def _open_client(
    codec: JournalCodec, traceer_id: str, record_number: int, stored: bytes, key_id: str | None
) -> dict[str, Any]:
    if key_id is None:
        client = stored
    elif codec.keyring is None:
        raise StoreError("declaration lines are sealed but no key file is configured")
    else:
        place = f"{traceer_id}:{record_number}".encode()
        try:
            client = codec.keyring.open(key_id, stored, place)
        except CryptoError as exc:
            raise StoreError(f"declaration line {traceer_id}:{record_number}: {exc}") from None
    value = json.loads(client)
    if not isinstance(value, dict):  # pragma: no cover - written by record_lines_txn
        raise StoreError("a declaration line's client value is not an object")
    return value


def backfill_bsn_index_txn(txn: Transaction, codec: JournalCodec, batch: int) -> int:
    """Up to ``batch`` lines without a BSN index get one (the BSN read from the sealed
    client value in Python: the database never sees it in the clear)."""
    txn.execute(
        "SELECT traceer_id, record_number, client, key_id, woman FROM declaration_lines"
        " WHERE bsn_index IS NULL LIMIT ?",
        (batch,),
    )
    rows = txn.fetchall()
    pairs = set()
    for traceer_id, record_number, stored, key_id, woman in rows:
        client = _open_client(codec, traceer_id, int(record_number), bytes(stored), key_id)
        bsn_index = bsn_key(codec, str(client["bsn"]))
        txn.execute(
            "UPDATE declaration_lines SET bsn_index = ? WHERE traceer_id = ? AND record_number = ?",
            (bsn_index, traceer_id, record_number),
        )
        pairs.add((bsn_index, str(woman)))
    link_bsn_txn(txn, pairs)
    return len(rows)


# --- the search ----------------------------------------------------------------------------

# A line ``l`` whose BSN index is the parameter (given twice): found through the women that
# BSN names (bsn_women) and the woman's index; the line's own hash is checked too, since a
# pair outlives a line that was given other hashes while another line still carries it.
_BSN_LINES: Final = (
    "l.woman IN (SELECT b.woman FROM bsn_women b WHERE b.bsn_index = ?) AND l.bsn_index = ?"
)


class _Where:
    """Conditions joined by AND, with their parameters in order."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.params: list[object] = []

    def add(self, sql: str, *params: object) -> None:
        self.parts.append(f"({sql})")
        self.params.extend(params)

    @property
    def sql(self) -> str:
        return " WHERE " + " AND ".join(self.parts) if self.parts else ""


def _day(txn: Transaction, value: date) -> object:
    return value if txn.engine == POSTGRES else value.isoformat()


def _read_day(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _start(day: date) -> datetime:
    return datetime.combine(day, time(0), UTC)


def _codes_like(code: str) -> str:
    return f"% {code} %"


_LINE_CODES: Final = "(' ' || COALESCE({t}.outcome_codes, '') || ' ') LIKE ?"


def _message_hits(
    txn: Transaction, q: SearchQuery, bsn_index: str | None, limit: int
) -> list[SearchHit]:
    w = _Where()
    if q.factuurnummer is not None:
        w.add(
            "m.invoice_number = ? OR EXISTS (SELECT 1 FROM integral_claims c"
            " WHERE c.outbound = m.traceer_id AND c.invoice_number = ?)",
            q.factuurnummer,
            q.factuurnummer,
        )
    if q.reference is not None:
        w.add(
            "m.reference_id = ?"
            " OR EXISTS (SELECT 1 FROM declaration_lines l WHERE l.traceer_id = m.traceer_id"
            " AND (l.reference = ? OR l.previous_reference = ?))"
            " OR EXISTS (SELECT 1 FROM integral_claims c WHERE c.outbound = m.traceer_id"
            " AND c.reference = ?)",
            *[q.reference] * 4,
        )
    if q.traceer_id is not None:
        w.add("m.traceer_id = ? OR m.reply_to = ?", q.traceer_id, q.traceer_id)
    if q.participant is not None:
        w.add(
            "(m.direction IN ('from_participant', 'to_participant') AND m.party = ?)"
            " OR o.sender = ?",
            q.participant,
            q.participant,
        )
    if q.insurer is not None:
        w.add(
            "(m.direction IN ('to_insurer', 'from_insurer') AND m.party = ?)"
            " OR EXISTS (SELECT 1 FROM declaration_lines l WHERE l.insurer = ?"
            " AND (l.traceer_id = m.traceer_id OR l.answered_in = m.traceer_id))",
            q.insurer,
            q.insurer,
        )
    if q.retourcode is not None:
        w.add(
            "EXISTS (SELECT 1 FROM message_statuses s WHERE s.traceer_id = m.traceer_id"
            " AND s.code = ?)",
            q.retourcode,
        )
    if q.date_from is not None:
        w.add("m.created_at >= ?", _start(q.date_from))
    if q.date_to is not None:
        w.add("m.created_at < ?", _start(q.date_to + timedelta(days=1)))
    if bsn_index is not None:
        w.add(
            f"EXISTS (SELECT 1 FROM declaration_lines l WHERE {_BSN_LINES}"  # noqa: S608
            " AND (l.traceer_id = m.traceer_id OR l.outbound = m.traceer_id"
            " OR l.answered_in = m.traceer_id))",
            bsn_index,
            bsn_index,
        )
    txn.execute(
        "SELECT m.traceer_id, m.direction, m.party, m.created_at, m.status, m.filename,"  # noqa: S608
        " m.invoice_number, m.reply_to, m.reference_id, o.state, o.sender"
        " FROM messages m LEFT JOIN outbound o ON o.traceer_id = m.traceer_id"
        + w.sql
        + " ORDER BY m.created_at DESC, m.seq DESC LIMIT ?",
        [*w.params, limit + 1],
    )
    rows = txn.fetchall()
    codes: dict[str, list[str]] = {}
    for entry in statuses_txn(txn, tuple(row[0] for row in rows)):
        if entry.code and entry.code not in codes.setdefault(entry.traceer_id, []):
            codes[entry.traceer_id].append(entry.code)
    ids = [row[0] for row in rows]
    records = _case_records(txn, ids)
    insurers = _insurers_of_uploads(txn, [row[0] for row in rows if row[1] == "from_participant"])
    hits = []
    for row in rows:
        traceer_id, direction, party = row[0], row[1], row[2]
        at = decode_timestamp(row[3])
        kind = _KIND_OF_DIRECTION[direction]
        to_insurer = direction == Direction.TO_INSURER.value
        case = records.get(traceer_id) or _live_case(traceer_id, direction, row[4], row[7], row[9])
        hits.append(
            SearchHit(
                kind=kind,
                traceer_id=traceer_id,
                on=at.date(),
                at=at,
                participant=row[10]
                if to_insurer
                else (party if direction in ("from_participant", "to_participant") else None),
                insurer=party
                if direction in ("to_insurer", "from_insurer")
                else insurers.get(traceer_id),
                state=str(row[9]) if to_insurer and row[9] is not None else str(row[4]),
                retourcodes=tuple(codes.get(traceer_id, ())),
                factuurnummer=row[6],
                reference=row[8],
                case_id=case,
                filename=row[5],
            )
        )
    return hits


def _live_case(
    traceer_id: str, direction: str, status: str, reply_to: str | None, outbound: str | None
) -> str | None:
    """The case a message is the subject of now, by the rules of the case sources."""
    if direction == Direction.FROM_PARTICIPANT.value and status == MessageStatus.REJECTED.value:
        return case_id(CaseKind.INTAKE_REJECTED, traceer_id)
    if direction == Direction.TO_INSURER.value and outbound == "parked":
        return case_id(CaseKind.PARKED, traceer_id)
    if direction == Direction.FROM_INSURER.value and reply_to is None:
        return case_id(CaseKind.UNMATCHED_RETOUR, traceer_id)
    return None


_LINE_SELECT: Final = (
    "SELECT l.traceer_id, l.record_number, l.participant, l.insurer, l.prestatie_date,"
    " l.state, l.outcome, l.retourcode, l.outcome_codes, l.reference, l.claim_reference,"
    " l.outbound, l.prestatiecode, l.amount, m.invoice_number, m.created_at, m.filename,"
    " COALESCE(c.pregnancy, (SELECT c2.pregnancy FROM claim_absorbs a"
    " JOIN integral_claims c2 ON c2.reference = a.reference"
    " WHERE a.traceer_id = l.traceer_id AND a.record_number = l.record_number"
    " ORDER BY c2.created_at DESC LIMIT 1)), o.state, l.client, l.key_id"
    " FROM declaration_lines l JOIN messages m ON m.traceer_id = l.traceer_id"
    " LEFT JOIN integral_claims c ON c.reference = l.claim_reference"
    " LEFT JOIN outbound o ON o.traceer_id = l.outbound"
)


def _line_hits(
    txn: Transaction,
    q: SearchQuery,
    bsn_index: str | None,
    limit: int,
    reveal: JournalCodec | None,
) -> list[SearchHit]:
    w = _Where()
    if q.factuurnummer is not None:
        w.add("m.invoice_number = ? OR c.invoice_number = ?", q.factuurnummer, q.factuurnummer)
    if q.reference is not None:
        w.add(
            "l.reference = ? OR l.previous_reference = ? OR l.claim_reference = ?",
            *[q.reference] * 3,
        )
    if q.traceer_id is not None:
        w.add("l.traceer_id = ? OR l.outbound = ? OR l.answered_in = ?", *[q.traceer_id] * 3)
    if q.participant is not None:
        w.add("l.participant = ?", q.participant)
    if q.insurer is not None:
        w.add("l.insurer = ?", q.insurer)
    if q.retourcode is not None:
        w.add(
            "l.retourcode = ? OR " + _LINE_CODES.format(t="l"),
            q.retourcode,
            _codes_like(q.retourcode),
        )
    if q.date_from is not None:
        w.add("l.prestatie_date >= ?", _day(txn, q.date_from))
    if q.date_to is not None:
        w.add("l.prestatie_date <= ?", _day(txn, q.date_to))
    if bsn_index is not None:
        w.add(_BSN_LINES, bsn_index, bsn_index)
    txn.execute(
        _LINE_SELECT + w.sql + " ORDER BY l.prestatie_date DESC, m.created_at DESC, m.seq DESC,"
        " l.record_number DESC LIMIT ?",
        [*w.params, limit + 1],
    )
    rows = txn.fetchall()
    records = _case_records(
        txn, [f"{r[0]}:{r[1]}" for r in rows] + [r[k] for r in rows for k in (10, 11) if r[k]]
    )
    hits = []
    for row in rows:
        traceer_id, record_number = row[0], int(row[1])
        codes = [row[7]] if row[7] else []
        codes += [c for c in (row[8] or "").split() if c not in codes]
        case = (
            records.get(f"{traceer_id}:{record_number}")
            or records.get(row[10] or "")
            or records.get(row[11] or "")
        )
        if case is None and row[6] == AnswerOutcome.REVIEW and row[10]:
            case = case_id(CaseKind.REJECTED_LINE, row[10])
        if case is None and row[18] == "parked":
            case = case_id(CaseKind.PARKED, row[11])
        bsn = MASKED_BSN
        if reveal is not None:
            client = _open_client(reveal, traceer_id, record_number, bytes(row[19]), row[20])
            bsn = str(client["bsn"])
        hits.append(
            SearchHit(
                kind=HitKind.LINE,
                traceer_id=traceer_id,
                on=_read_day(row[4]),
                at=decode_timestamp(row[15]),
                participant=row[2],
                insurer=row[3],
                state=str(row[5]),
                outcome=row[6],
                retourcodes=tuple(codes),
                factuurnummer=row[14],
                reference=row[9],
                record_number=record_number,
                pregnancy=row[17],
                case_id=case,
                filename=row[16],
                prestatiecode=row[12],
                amount=None if row[13] is None else int(row[13]),
                bsn=bsn,
            )
        )
    return hits


_ABSORBED: Final = (
    "EXISTS (SELECT 1 FROM claim_absorbs a JOIN declaration_lines l"
    " ON l.traceer_id = a.traceer_id AND l.record_number = a.record_number"
    " WHERE a.reference = c.reference AND ({cond}))"
)


def _claim_hits(
    txn: Transaction, q: SearchQuery, bsn_index: str | None, limit: int
) -> list[SearchHit]:
    w = _Where()
    if q.factuurnummer is not None:
        w.add("c.invoice_number = ?", q.factuurnummer)
    if q.reference is not None:
        w.add("c.reference = ? OR c.credits = ?", q.reference, q.reference)
    if q.traceer_id is not None:
        w.add(
            "c.outbound = ? OR EXISTS (SELECT 1 FROM claim_absorbs a"
            " WHERE a.reference = c.reference AND a.traceer_id = ?)",
            q.traceer_id,
            q.traceer_id,
        )
    if q.participant is not None:
        w.add(
            "o.sender = ? OR " + _ABSORBED.format(cond="l.participant = ?"),
            q.participant,
            q.participant,
        )
    if q.insurer is not None:
        w.add("c.insurer = ?", q.insurer)
    if q.retourcode is not None:
        w.add(
            _ABSORBED.format(cond="l.retourcode = ? OR " + _LINE_CODES.format(t="l")),
            q.retourcode,
            _codes_like(q.retourcode),
        )
    if q.date_from is not None:
        w.add("c.created_at >= ?", _start(q.date_from))
    if q.date_to is not None:
        w.add("c.created_at < ?", _start(q.date_to + timedelta(days=1)))
    if bsn_index is not None:
        w.add(_ABSORBED.format(cond=_BSN_LINES), bsn_index, bsn_index)
    txn.execute(
        "SELECT c.reference, c.invoice_number, c.record_number, c.outbound, c.insurer,"  # noqa: S608
        " c.pregnancy, c.prestatie, c.amount, c.created_at, o.state, o.sender, m.filename,"
        " c.credits, EXISTS (SELECT 1 FROM declaration_lines r"
        " WHERE r.claim_reference = c.reference AND r.outcome = 'review')"
        " FROM integral_claims c JOIN messages m ON m.traceer_id = c.outbound"
        " LEFT JOIN outbound o ON o.traceer_id = c.outbound"
        + w.sql
        + " ORDER BY c.created_at DESC, c.outbound DESC, c.record_number DESC LIMIT ?",
        [*w.params, limit + 1],
    )
    rows = txn.fetchall()
    records = _case_records(txn, [row[k] for row in rows for k in (0, 3)])
    verdicts = _claim_verdicts(txn, [row[0] for row in rows])
    hits = []
    for row in rows:
        at = decode_timestamp(row[8])
        outcome, codes = verdicts.get(row[0], (None, ()))
        case = records.get(row[0]) or records.get(row[3])
        if case is None and row[12] is None and row[13]:
            case = case_id(CaseKind.REJECTED_LINE, row[0])
        if case is None and row[9] == "parked":
            case = case_id(CaseKind.PARKED, row[3])
        hits.append(
            SearchHit(
                kind=HitKind.CLAIM,
                traceer_id=row[3],
                on=at.date(),
                at=at,
                participant=row[10],
                insurer=row[4],
                state=str(row[9]) if row[9] is not None else "",
                outcome=outcome,
                retourcodes=codes,
                factuurnummer=row[1],
                reference=row[0],
                record_number=int(row[2]),
                pregnancy=row[5],
                case_id=case,
                filename=row[11],
                prestatiecode=row[6],
                amount=int(row[7]),
            )
        )
    return hits


def _claim_verdicts(
    txn: Transaction, references: Sequence[str]
) -> dict[str, tuple[str | None, tuple[str, ...]]]:
    """The insurer's verdict on each claimed line, from the original lines it absorbed:
    ``review`` (rejected, waiting for the IGO) when any waits, else ``rejected`` when any
    was rejected, else ``granted`` when all were; ``replaced`` for a line a corrected one
    replaced. With the retourcodes of those lines."""
    found: dict[str, tuple[str | None, tuple[str, ...]]] = {}
    unique = list(dict.fromkeys(references))
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        txn.execute(
            "SELECT l.claim_reference, l.outcome, l.retourcode, l.outcome_codes"  # noqa: S608
            f" FROM declaration_lines l WHERE l.claim_reference IN ({marks})",
            chunk,
        )
        outcomes: dict[str, list[str | None]] = {}
        codes: dict[str, list[str]] = {}
        for ref, outcome, code, more in txn.fetchall():
            outcomes.setdefault(ref, []).append(outcome)
            own = codes.setdefault(ref, [])
            own += [c for c in [code, *(more or "").split()] if c and c not in own]
        txn.execute(
            f"SELECT corrects FROM integral_claims WHERE corrects IN ({marks})",  # noqa: S608
            chunk,
        )
        replaced = {row[0] for row in txn.fetchall()}
        for ref in chunk:
            seen = outcomes.get(ref, [])
            verdict: str | None = None
            if ref in replaced:
                verdict = "replaced"
            elif AnswerOutcome.REVIEW in seen:
                verdict = AnswerOutcome.REVIEW
            elif AnswerOutcome.REJECTED in seen:
                verdict = AnswerOutcome.REJECTED
            elif seen and all(o == AnswerOutcome.GRANTED for o in seen):
                verdict = AnswerOutcome.GRANTED
            found[ref] = (verdict, tuple(codes.get(ref, ())))
    return found


def _case_records(txn: Transaction, refs: Sequence[str]) -> dict[str, str]:
    """The case ids of the administrator's records about ``refs``, by ref."""
    found: dict[str, str] = {}
    unique = list(dict.fromkeys(refs))
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        txn.execute(
            f"SELECT ref, case_id FROM admin_cases WHERE ref IN ({marks})",  # noqa: S608
            chunk,
        )
        for ref, case in txn.fetchall():
            found.setdefault(ref, case)
    return found


def _insurers_of_uploads(txn: Transaction, ids: Sequence[str]) -> dict[str, str]:
    """The insurers an upload's lines are for, by upload (several: comma-separated)."""
    found: dict[str, list[str]] = {}
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        marks = ", ".join("?" * len(chunk))
        txn.execute(
            "SELECT DISTINCT traceer_id, insurer FROM declaration_lines"  # noqa: S608
            f" WHERE traceer_id IN ({marks}) ORDER BY traceer_id, insurer",
            chunk,
        )
        for traceer_id, insurer in txn.fetchall():
            found.setdefault(traceer_id, []).append(insurer)
    return {traceer_id: ", ".join(names) for traceer_id, names in found.items()}


def _newest_first(hit: SearchHit) -> tuple[date, datetime, str, int]:
    return hit.on, hit.at, hit.traceer_id, hit.record_number or 0


def search_txn(
    txn: Transaction,
    query: SearchQuery,
    bsn_index: str | None,
    limit: int,
    reveal: JournalCodec | None,
) -> tuple[list[SearchHit], bool]:
    """At most ``limit`` hits of every kind together, newest first, and whether more
    matched. ``reveal`` (the codec) reads the lines' BSNs; None leaves them masked."""
    hits = [
        *_message_hits(txn, query, bsn_index, limit),
        *_line_hits(txn, query, bsn_index, limit, reveal),
        *_claim_hits(txn, query, bsn_index, limit),
    ]
    hits.sort(key=_newest_first, reverse=True)
    return hits[:limit], len(hits) > limit
