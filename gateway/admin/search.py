"""Search by business keys: what the administrator finds about a factuurnummer, a reference,
a traceer id, a participant, an insurer, a retourcode, a date range or a client's BSN.

A :class:`SearchQuery` names one or more keys; they combine (every key given must match).
The store (:class:`~gateway.ports.admin.SearchStore`, on SQL
:class:`adapters.storage.search.SqlSearchStore`) answers with :class:`SearchHit` values of
five kinds — an upload, a retour, an outbound file, a declaration line, an integral claim
line — newest first, at most ``limit`` of them, and says whether more matched.

The BSN is special: it is validated here (nine digits, the eleven-proof), matched in the
store only through a keyed hash of it (never stored, never compared in the clear), never
part of a ``repr`` or an audit entry (:func:`audit_detail` says "zoeken op BSN" without
the number), and a hit's own BSN stays masked unless the actor may unmask and asks to.

Pure: values in, values out.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from typing import Final

from gateway.ei.validate import agb_is_valid, bsn_is_valid
from gateway.errors import ErrorKind, GatewayError

__all__ = [
    "DEFAULT_LIMIT",
    "HIT_LABELS",
    "KEY_LABELS",
    "MASKED_BSN",
    "MAX_LIMIT",
    "HitKind",
    "SearchHit",
    "SearchQuery",
    "SearchRefusedError",
    "SearchResult",
    "audit_detail",
    "check_query",
    "parse_day",
]

DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 500
MAX_KEY_LENGTH: Final = 64
MASKED_BSN: Final = "*********"
_PLAIN_KEY: Final = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._:/-]*$")


class HitKind(enum.StrEnum):
    UPLOAD = "upload"  # a declaration file a participant sent
    RETOUR = "retour"  # a retour file: to a participant, or from an insurer
    OUTBOUND = "outbound"  # a file the gateway sent (or queued) for an insurer
    LINE = "line"  # a prestatie line of an upload
    CLAIM = "claim"  # an integral claim line the gateway declared


HIT_LABELS: Final = {
    HitKind.UPLOAD: "Aanlevering",
    HitKind.RETOUR: "Retour",
    HitKind.OUTBOUND: "Bestand naar verzekeraar",
    HitKind.LINE: "Prestatieregel",
    HitKind.CLAIM: "Integrale declaratieregel",
}

# The Dutch names of the keys, as the form and the audit log show them.
KEY_LABELS: Final = {
    "factuurnummer": "factuurnummer",
    "reference": "referentie",
    "traceer_id": "traceerId",
    "participant": "deelnemer (AGB)",
    "insurer": "verzekeraar (UZOVI)",
    "retourcode": "retourcode",
    "date_from": "datum vanaf",
    "date_to": "datum tot en met",
}


class SearchRefusedError(GatewayError):
    """A search that cannot be run: ``code`` for machines, the message (Dutch, without the
    value that was wrong when it is a BSN) for people."""

    kind = ErrorKind.INVALID

    def __init__(self, code: str, message: str, *, kind: ErrorKind = ErrorKind.INVALID) -> None:
        super().__init__(message, code=code, kind=kind)


@dataclass(frozen=True, slots=True)
class SearchQuery:
    factuurnummer: str | None = None
    reference: str | None = None
    traceer_id: str | None = None
    participant: str | None = None  # AGB code
    insurer: str | None = None  # UZOVI number
    retourcode: str | None = None
    date_from: date | None = None  # prestatie date of lines, created date of messages
    date_to: date | None = None  # inclusive
    bsn: str | None = field(default=None, repr=False)  # never shown, logged or audited

    def given(self) -> list[str]:
        """The names of the keys given (the BSN as ``bsn``)."""
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]


@dataclass(frozen=True, slots=True)
class SearchHit:
    kind: HitKind
    traceer_id: str  # the message, or the upload (outbound file) a line (claim) is in
    on: date  # the prestatie date of a line; the created date of a message or claim
    at: datetime  # when it was stored (breaks ties of ``on``)
    participant: str | None
    insurer: str | None
    state: str  # the message's status, the line's place, the outbound file's state
    outcome: str | None = None  # the insurer's verdict on a line (granted, rejected, review)
    retourcodes: tuple[str, ...] = ()
    factuurnummer: str | None = None
    reference: str | None = None
    record_number: int | None = None  # NUM040 of a line or claim
    pregnancy: str | None = None  # the pregnancy a line's (or claim's) claim is for
    case_id: str | None = None  # the case it belongs to, if any
    filename: str | None = None
    prestatiecode: str | None = None
    amount: int | None = None  # eurocents
    bsn: str | None = field(default=None, repr=False)  # a line's client: masked unless unmasked

    @property
    def label(self) -> str:
        return HIT_LABELS[self.kind]


@dataclass(frozen=True, slots=True)
class SearchResult:
    hits: list[SearchHit]
    more: bool  # more matched than ``limit``
    limit: int
    unmasked: bool = False


def _text(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if len(value) > MAX_KEY_LENGTH or not _PLAIN_KEY.match(value):
        raise SearchRefusedError(
            "ongeldige-zoeksleutel",
            f"{KEY_LABELS[name]}: letters, cijfers en . _ : / -, hoogstens {MAX_KEY_LENGTH}.",
        )
    return value


def _digits(name: str, value: str | None, length: int) -> str | None:
    value = _text(name, value)
    if value is not None and (not value.isdigit() or len(value) != length):
        raise SearchRefusedError(
            "ongeldige-zoeksleutel", f"{KEY_LABELS[name]}: precies {length} cijfers."
        )
    return value


def check_query(query: SearchQuery) -> SearchQuery:
    """The query with its keys trimmed (empty ones dropped), or
    :class:`SearchRefusedError`: no key at all, a key of the wrong form, a BSN that fails
    the eleven-proof, a date range that ends before it begins."""
    bsn = query.bsn.strip() if query.bsn is not None else None
    if bsn is not None and bsn and not bsn_is_valid(bsn):
        # The message does not repeat the number: it may end up in a log or a screenshot.
        raise SearchRefusedError(
            "ongeldig-bsn", "Het BSN moet 9 cijfers zijn en de elfproef doorstaan."
        )
    participant = _digits("participant", query.participant, 8)
    if participant is not None and not agb_is_valid(participant):
        raise SearchRefusedError("ongeldige-zoeksleutel", "deelnemer (AGB): geen geldige AGB-code.")
    checked = SearchQuery(
        factuurnummer=_text("factuurnummer", query.factuurnummer),
        reference=_text("reference", query.reference),
        traceer_id=_text("traceer_id", query.traceer_id),
        participant=participant,
        insurer=_digits("insurer", query.insurer, 4),
        retourcode=_digits("retourcode", query.retourcode, 4),
        date_from=query.date_from,
        date_to=query.date_to,
        bsn=bsn or None,
    )
    if not checked.given():
        raise SearchRefusedError("geen-zoeksleutel", "Vul minstens één zoeksleutel in.")
    if checked.date_from and checked.date_to and checked.date_to < checked.date_from:
        raise SearchRefusedError("ongeldige-periode", "De einddatum ligt vóór de begindatum.")
    return checked


def audit_detail(query: SearchQuery) -> str:
    """What the audit entry says of a search: every key and its value, except the BSN,
    which is named ("zoeken op BSN") but never given."""
    parts = []
    for name in query.given():
        if name == "bsn":
            continue
        parts.append(f"{KEY_LABELS[name]}={getattr(query, name)}")
    if query.bsn is not None:
        parts.append("zoeken op BSN")
    return "zoeken: " + ", ".join(parts)


def parse_day(name: str, text: str | None) -> date | None:
    """A date key as typed (``YYYY-MM-DD``); None when empty."""
    if text is None or not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise SearchRefusedError(
            "ongeldige-datum", f"{KEY_LABELS[name]}: een datum als 2026-11-02."
        ) from None
