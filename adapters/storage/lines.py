"""Declaration lines on SQL: written with their upload, read back for bundling.

The client's BSN and birth date are stored only inside a sealed ``client`` value (plain
JSON without a key file) and as ``woman``, a keyed hash of both (an unkeyed SHA-256 without
a key file), so that a woman's lines are found without storing her numbers in the clear.
``bsn_index`` is the same kind of keyed hash of the BSN alone (:func:`bsn_key`), for the
administrator's search by BSN. It is indexed once per woman, not once per line: the table
``bsn_women`` holds each (``bsn_index``, ``woman``) pair some line carries
(:func:`link_bsn_txn`, :func:`unlink_bsn_txn`), and a search goes from the BSN's hash to
the women and from them to their lines by the woman's index.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any, Final

from adapters.storage.database import Transaction
from adapters.storage.journal import JournalCodec
from gateway.crypto import CryptoError
from gateway.lines import DeclaredLine
from gateway.ports.messages import StoreError

__all__ = [
    "COLUMNS",
    "COLUMN_COUNT",
    "People",
    "bsn_key",
    "line_from_row",
    "line_rows",
    "lines_of_txn",
    "link_bsn_txn",
    "lookup_hashes_txn",
    "open_lines_txn",
    "record_lines_txn",
    "record_many_lines_txn",
    "relink_bsn_txn",
    "row_hashes",
    "unlink_bsn_txn",
    "woman_key",
]

COLUMNS: Final = (
    "traceer_id, record_number, participant, standard, woman, client, key_id, insurer,"
    " prestatiecodelijst, prestatiecode, prestatie_date, prestatie_end_date, amount,"
    " reference, previous_reference, performer, zorgproduct, zorgactiviteiten"
)
COLUMN_COUNT: Final = COLUMNS.count(",") + 1


def woman_key(codec: JournalCodec, bsn: str, birth_date: date | None) -> str:
    """The key a woman's lines are found by: BSN and birth date, hashed."""
    text = f"{bsn}|{birth_date.isoformat() if birth_date else ''}"
    if codec.keyring is not None:
        return codec.keyring.index(text)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def bsn_key(codec: JournalCodec, bsn: str) -> str:
    """The key a client's lines are found by in a search: her BSN alone, hashed. Its text
    differs from :func:`woman_key`'s (``bsn:`` prefix), so the two never coincide."""
    text = f"bsn:{bsn}"
    if codec.keyring is not None:
        return codec.keyring.index(text)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _day(txn: Transaction, value: date | None) -> object:
    if value is None:
        return None
    return value if txn.engine == "postgres" else value.isoformat()


def _read_day(value: object) -> date | None:
    if value is None:
        return None
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def _place(line: DeclaredLine | tuple[Any, ...]) -> bytes:
    if isinstance(line, DeclaredLine):
        return f"{line.traceer_id}:{line.record_number}".encode()
    return f"{line[0]}:{line[1]}".encode()


def record_lines_txn(txn: Transaction, lines: Sequence[DeclaredLine], codec: JournalCodec) -> None:
    rows = line_rows(txn, lines, codec)
    txn.insert_rows("declaration_lines", f"{COLUMNS}, bsn_index", rows)
    link_bsn_txn(txn, _pairs(rows))


def record_many_lines_txn(
    txn: Transaction, uploads: Sequence[tuple[Sequence[DeclaredLine], JournalCodec]]
) -> None:
    """The lines of several uploads (each with its codec) in one statement (``COPY`` on
    PostgreSQL)."""
    rows = [row for lines, codec in uploads for row in line_rows(txn, lines, codec)]
    txn.insert_rows("declaration_lines", f"{COLUMNS}, bsn_index", rows)
    link_bsn_txn(txn, _pairs(rows))


# Where line_rows puts the woman's and the BSN's keyed hashes.
_WOMAN: Final = COLUMNS.split(", ").index("woman")
_BSN_INDEX: Final = COLUMN_COUNT


def row_hashes(row: Sequence[Any]) -> tuple[str, str]:
    """(``bsn_index``, ``woman``) of a row of :func:`line_rows`."""
    return (row[_BSN_INDEX], row[_WOMAN])


def _pairs(rows: Iterable[Sequence[Any]]) -> set[tuple[str, str]]:
    return {row_hashes(row) for row in rows}


def link_bsn_txn(txn: Transaction, pairs: Iterable[tuple[str, str]]) -> None:
    """Record that lines carry these (``bsn_index``, ``woman``) pairs, so that a search by
    BSN finds the woman; a pair already known is left alone."""
    rows = sorted(set(pairs))
    txn.insert_values(
        "INSERT INTO bsn_women (bsn_index, woman)", "(?, ?)", rows, "ON CONFLICT DO NOTHING"
    )


def unlink_bsn_txn(txn: Transaction, pairs: Iterable[tuple[str, str]]) -> None:
    """Forget the (``bsn_index``, ``woman``) pairs no line carries any more (after a line's
    hashes were replaced): an unkeyed hash of a BSN is not kept once its lines are keyed."""
    txn.executemany(
        "DELETE FROM bsn_women WHERE bsn_index = ? AND woman = ? AND NOT EXISTS"
        " (SELECT 1 FROM declaration_lines l WHERE l.woman = bsn_women.woman"
        " AND l.bsn_index = bsn_women.bsn_index)",
        sorted(set(pairs)),
    )


def lookup_hashes_txn(
    txn: Transaction, traceer_id: str, record_number: int
) -> tuple[str | None, str] | None:
    """A line's (``bsn_index``, ``woman``) as stored; None when there is no such line."""
    txn.execute(
        "SELECT bsn_index, woman FROM declaration_lines WHERE traceer_id = ? AND record_number = ?",
        (traceer_id, record_number),
    )
    row = txn.fetchone()
    return None if row is None else (row[0], str(row[1]))


def relink_bsn_txn(
    txn: Transaction, before: tuple[str | None, str] | None, after: tuple[str, str]
) -> None:
    """A line's hashes went from ``before`` (:func:`lookup_hashes_txn`) to ``after``: the
    new pair is linked, the old one forgotten when no line carries it any more."""
    link_bsn_txn(txn, [after])
    if before is not None and before[0] is not None and before != after:
        unlink_bsn_txn(txn, [(before[0], before[1])])


def line_rows(
    txn: Transaction, lines: Sequence[DeclaredLine], codec: JournalCodec
) -> list[tuple[Any, ...]]:
    """The stored values of ``lines``: :data:`COLUMNS` and then ``bsn_index``, the client
    sealed and hashed; dates as ``txn``'s engine takes them (no ``datetime``)."""
    women: dict[tuple[str, date | None], tuple[bytes, str, str]] = {}
    rows = []
    for line in lines:
        person = (line.bsn, line.birth_date)
        known = women.get(person)
        if known is None:  # encoded and hashed once per woman of the upload
            client = json.dumps(
                {
                    "bsn": line.bsn,
                    "birth_date": line.birth_date.isoformat() if line.birth_date else None,
                }
            ).encode()
            known = women[person] = (
                client,
                woman_key(codec, line.bsn, line.birth_date),
                bsn_key(codec, line.bsn),
            )
        client, woman, bsn_index = known
        key_id, sealed = (
            codec.keyring.seal(client, _place(line)) if codec.keyring else (None, client)
        )
        rows.append(
            (
                line.traceer_id,
                line.record_number,
                line.participant,
                line.standard,
                woman,
                sealed,
                key_id,
                line.insurer,
                line.prestatiecodelijst,
                line.prestatiecode,
                _day(txn, line.prestatie_date),
                _day(txn, line.prestatie_end_date),
                line.amount,
                line.reference,
                line.previous_reference,
                line.performer,
                line.zorgproduct,
                " ".join(line.zorgactiviteiten) or None,
                bsn_index,
            )
        )
    return rows


# A woman's client data as read from a line (BSN, birth date), by the bytes it was stored
# as: a read of many lines decodes each woman's once (she has some twenty lines a year).
People = dict[bytes, tuple[str, date | None]]


def line_from_row(
    row: tuple[Any, ...], codec: JournalCodec, people: People | None = None
) -> DeclaredLine:
    """The line a row of :data:`COLUMNS` holds; ``people``, when given, keeps each
    woman's decoded client data for the next of her lines (one read's, never longer)."""
    stored, key_id = bytes(row[5]), row[6]
    if key_id is None:
        client = stored
    elif codec.keyring is None:
        raise StoreError("declaration lines are sealed but no key file is configured")
    else:
        try:
            client = codec.keyring.open(key_id, stored, _place(row))
        except CryptoError as exc:
            raise StoreError(f"declaration line {row[0]}:{row[1]}: {exc}") from None
    person = None if people is None else people.get(client)
    if person is None:
        decoded = json.loads(client)
        person = (decoded["bsn"], _read_day(decoded["birth_date"]))
        if people is not None:
            people[client] = person
    prestatie_date = _read_day(row[10])
    assert prestatie_date is not None
    return DeclaredLine(
        traceer_id=row[0],
        record_number=int(row[1]),
        participant=row[2],
        standard=row[3],
        bsn=person[0],
        birth_date=person[1],
        insurer=row[7],
        prestatiecodelijst=row[8],
        prestatiecode=row[9],
        prestatie_date=prestatie_date,
        prestatie_end_date=_read_day(row[11]),
        amount=None if row[12] is None else int(row[12]),
        reference=row[13],
        previous_reference=row[14],
        performer=row[15],
        zorgproduct=row[16],
        zorgactiviteiten=tuple((row[17] or "").split()),
    )


def lines_of_txn(txn: Transaction, traceer_id: str, codec: JournalCodec) -> list[DeclaredLine]:
    txn.execute(
        f"SELECT {COLUMNS} FROM declaration_lines WHERE traceer_id = ?"  # noqa: S608
        " ORDER BY record_number",
        (traceer_id,),
    )
    return [line_from_row(row, codec) for row in txn.fetchall()]


def open_lines_txn(txn: Transaction, codec: JournalCodec) -> list[DeclaredLine]:
    txn.execute(
        # 'open' written out, as the partial index declaration_lines_open names it.
        f"SELECT {COLUMNS} FROM declaration_lines WHERE state = 'open'"  # noqa: S608
        " ORDER BY prestatie_date, traceer_id, record_number"
    )
    return [line_from_row(row, codec) for row in txn.fetchall()]
