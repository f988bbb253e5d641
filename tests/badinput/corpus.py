"""The bad-input corpus: files and requests no well-behaved EPD sends, each with the answer
the gateway must give.

Every case is a :class:`Case`: who sends it (the client certificate's participant and the
sender named in ``berichtMetadata``), the bytes, the multipart file name, and what is
expected — a technical rejection (``202``, status ``afgekeurd``, one of the given
retourcodes, a rejection retour queued for the sender), an acceptance (the bytes kept as
they are), or a refusal (a ``4xx`` problem+json with its code, nothing stored).

Everything is synthetic (the BSNs of :mod:`tests.factories`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gateway.ei import LayoutRegistry
from gateway.loading import load_layouts
from tests.factories import kz301
from tests.gateway.running import KRAAMZORG, MIDWIFE

__all__ = [
    "CASES",
    "FILENAME_CASES",
    "LIMIT",
    "Accepted",
    "Case",
    "Refused",
    "Rejected",
]

REGISTRY = load_layouts()
MIB = 1024 * 1024
LIMIT = 11 * MIB  # max_upload_bytes of the corpus's gateway: a 10 MB line fits, 12 MB not


@dataclass(frozen=True, slots=True)
class Rejected:
    """Accepted for processing and rejected technically with one of ``codes``."""

    codes: frozenset[str]


@dataclass(frozen=True, slots=True)
class Accepted:
    """Accepted as a valid declaration: stored byte for byte."""


@dataclass(frozen=True, slots=True)
class Refused:
    """Refused outright: this HTTP status and problem code; nothing stored."""

    status: int
    code: str


Expectation = Rejected | Accepted | Refused


@dataclass(frozen=True)
class Case:
    name: str
    payload: Callable[[], bytes]
    expect: Expectation
    filename: str = "declaratie.asc"
    participant: str = KRAAMZORG  # whose certificate
    sender: str = KRAAMZORG  # who berichtMetadata says sends it


def _valid(invoice: str, lines: int = 2) -> bytes:
    return kz301(REGISTRY, agb=KRAAMZORG, invoice=invoice, lines=lines)


def _lines(payload: bytes) -> list[bytes]:
    return payload.split(b"\r\n")


def _put(registry: LayoutRegistry, line: bytes, record: str, field: str, raw: bytes) -> bytes:
    """``line`` with ``field`` of record type ``record`` overwritten by ``raw`` (same width)."""
    f = registry.by_standard("KZ301").record(record).field(field)
    assert len(raw) == f.length, (field, raw)
    return line[: f.start - 1] + raw + line[f.end :]


def _edit_prestatie(invoice: str, field: str, raw: bytes) -> bytes:
    lines = _lines(_valid(invoice))
    lines[2] = _put(REGISTRY, lines[2], "04", field, raw)  # 01, 02, then the first 04
    return b"\r\n".join(lines)


def _surname(invoice: str, raw: bytes) -> bytes:
    lines = _lines(_valid(invoice))
    lines[1] = _put(REGISTRY, lines[1], "02", "surname", raw.ljust(25))
    return b"\r\n".join(lines)


def _header_only(invoice: str) -> bytes:
    return _lines(_valid(invoice))[0] + b"\r\n"


CASES: list[Case] = [
    # --- truncated ----------------------------------------------------------------------
    Case("empty", lambda: b"", Refused(400, "payload-leeg")),
    Case("first five bytes", lambda: _valid("TR-1")[:5], Rejected(frozenset({"0011", "0804"}))),
    Case(
        "cut inside the header",
        lambda: _valid("TR-2")[:150],
        Rejected(frozenset({"0804", "8095", "8026", "0002"})),
    ),
    Case(
        "cut inside a prestatie",
        lambda: _valid("TR-3")[: 2 * 312 + 100],
        Rejected(frozenset({"0804", "8095", "8026", "0002"})),
    ),
    Case("no trailer", lambda: _valid("TR-4")[:-312], Rejected(frozenset({"8026", "0002"}))),
    Case("last CR LF missing", lambda: _valid("TR-5")[:-2], Rejected(frozenset({"8095"}))),
    # --- wrong encodings ----------------------------------------------------------------
    Case(
        "UTF-16 with BOM",
        lambda: _valid("EN-1").decode("latin-1").encode("utf-16"),
        Rejected(frozenset({"8026", "0002"})),
    ),
    Case(
        "UTF-16-LE without BOM",
        lambda: _valid("EN-2").decode("latin-1").encode("utf-16-le"),
        Rejected(frozenset({"8026", "0002", "0804", "0010", "0011"})),
    ),
    Case(
        "NUL bytes in fields",
        lambda: _valid("EN-3").replace(b"Testpersoon", b"Test\x00\x00rsoon"),
        # An AN field with control bytes: rejected or kept as sent, never a crash.
        Rejected(frozenset({"0806", "0803"})),
    ),
    Case("only NUL bytes", lambda: b"\x00" * 5000, Rejected(frozenset({"8026", "0002", "0804"}))),
    Case(
        "NUL instead of the digits of a BSN",
        lambda: _edit_prestatie("EN-4", "bsn", b"\x00" * 9),
        Rejected(frozenset({"0806", "0435", "0803"})),
    ),
    # --- size ---------------------------------------------------------------------------
    Case(
        "a 10 MB single line",
        lambda: b"A" * 10_000_000,
        Rejected(frozenset({"0804", "8026", "0002"})),
    ),
    Case(
        "a valid header and then a 10 MB line",
        lambda: _header_only("SZ-1") + b"0" * 10_000_000 + b"\r\n",
        Rejected(frozenset({"0804", "8026", "0002"})),
    ),
    Case(
        "200,000 records of 1 byte",
        lambda: b"1\r\n" * 200_000,
        Rejected(frozenset({"8026", "0002", "0804"})),
    ),
    Case(
        "a valid header and then 200,000 records of 1 byte",
        lambda: _header_only("SZ-2") + b"1\r\n" * 200_000,
        Rejected(frozenset({"8026", "0002", "0804"})),
    ),
    Case(
        "12 MB: over the upload limit",
        lambda: b"0" * (12 * MIB),
        Refused(413, "bericht-te-groot"),
    ),
    # --- another participant ------------------------------------------------------------
    Case(
        "metadata names another participant",
        lambda: _valid("OP-1"),
        Refused(422, "afzender-onjuist"),
        sender=MIDWIFE,
    ),
    Case(
        "the 01 record names another participant",
        lambda: kz301(REGISTRY, agb=MIDWIFE, invoice="OP-2"),
        Refused(422, "declarant-onjuist"),
    ),
    Case(
        "a file of another participant, under its name",
        lambda: kz301(REGISTRY, agb=MIDWIFE, invoice="OP-3"),
        Refused(422, "afzender-onjuist"),
        sender=MIDWIFE,
    ),
    # --- field contents -----------------------------------------------------------------
    Case(
        "UTF-8 letters in an AN field",
        lambda: _surname("UN-1", "Zoë Dïaz-Øster".encode()),
        # AN fields are Latin-1: UTF-8's continuation bytes 0x80-0x9F are not letters.
        Rejected(frozenset({"0806"})),
    ),
    Case(
        "Latin-1 high bytes in an AN field",
        lambda: _surname("UN-2", "Müller-Lüdenscheidt".encode("latin-1")),
        Accepted(),
    ),
    Case(
        "a right-to-left override in an AN field",
        lambda: _surname("UN-3", "Test\u202enoosrep".encode()),
        Rejected(frozenset({"0806"})),
    ),
    Case(
        "a negative amount without C: a minus sign",
        lambda: _edit_prestatie("NG-1", "declared_amount", b"-0012000D"),
        Rejected(frozenset({"0806", "0631"})),
    ),
    Case(
        "a negative amount without C: no indicator",
        lambda: _edit_prestatie("NG-2", "declared_amount", b"00012000 "),
        Rejected(frozenset({"0806", "0631"})),
    ),
    Case(
        "an amount with indicator '-'",
        lambda: _edit_prestatie("NG-3", "declared_amount", b"00012000-"),
        Rejected(frozenset({"0806", "0631"})),
    ),
]

# Valid files under file names that are paths, scripts or header tricks: each is stored,
# and the download's Content-Disposition names a harmless file.
FILENAME_CASES: list[str] = [
    "../../etc/passwd",
    "..\\..\\windows\\system32\\config\\sam",
    "/etc/shadow",
    "C:\\declaraties\\jan.asc",
    "..",
    'x"; filename="evil.sh',
    "naïve\u202egpj.asc",
    "<script>alert(1)</script>.asc",
    "a" * 1000 + ".asc",
    "declaratie\x00.asc",
]
