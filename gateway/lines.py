"""Declaration lines: the prestatie (04) records of an accepted declaration file, as values.

Pure: records in, :class:`DeclaredLine` values out. Every declaration standard the gateway
takes (KZ301, the midwifery declaration, ZH308) carries in its 04 record the client's BSN,
the insurer (UZOVI), the prestatie code and date, the provider's reference number and the
one it corrects; the birth date is in the 04 record (ZH308) or in the 02 record the 04
follows (the 310-position frame). Amounts: the declared amount, signed (a credit line is
negative): the 04's own, or — ZH308 — the sum of the 06 tariefrecords that follow it;
None when the line has neither.
A hospital line also carries the codes other than its declaratiecode that rules match on:
the DBC zorgproduct code (9 digits, 04 record) and its zorgactiviteit codes (the 04
record's field and the 16 records that follow it, where the layout has them).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date

from gateway.ei import Record, line_amount, prestatie_groups

__all__ = ["AnswerOutcome", "DeclaredLine", "declared_lines"]


class AnswerOutcome(enum.StrEnum):
    """What a declared line's answer says (the ``outcome`` column of declaration_lines;
    the values are stored and shown in JSON as they are)."""

    GRANTED = "granted"  # the insurer paid (part of) it
    REJECTED = "rejected"  # refused; passed on to the participant
    REVIEW = "review"  # refused; the IGO reviews it first (an open case)
    RETURNED = "returned"  # the gateway returned it: the participant declares it itself


@dataclass(frozen=True, slots=True)
class DeclaredLine:
    traceer_id: str  # the upload the line came in
    record_number: int  # NUM040 of its 04 record
    participant: str  # AGB code of the declaring participant
    standard: str
    bsn: str
    birth_date: date | None
    insurer: str  # UZOVI of the 04 record
    prestatiecodelijst: str
    prestatiecode: str
    prestatie_date: date
    prestatie_end_date: date | None
    amount: int | None  # declared, eurocents, negative for a credit line
    reference: str
    previous_reference: str | None
    performer: str | None
    zorgproduct: str | None = None  # DBC zorgproductcode (ZH308), 9 digits
    zorgactiviteiten: tuple[str, ...] = ()  # zorgactiviteit codes (ZH308)

    @property
    def is_credit(self) -> bool:
        return self.amount is not None and self.amount < 0


def _text(record: Record, name: str) -> str | None:
    value = record.get(name)
    return str(value).strip() or None if value is not None else None


def _date(record: Record, name: str) -> date | None:
    value = record.get(name)
    return value if isinstance(value, date) else None


def _activity_code(record: Record) -> str | None:
    """The zorgactiviteit code of a 16 record: its ``zorgactiviteit_code`` field, else the
    first field whose name says it is one (layouts name it as their source does)."""
    if record.layout.has("zorgactiviteit_code"):
        return _text(record, "zorgactiviteit_code")
    for f in record.layout.fields:
        if "zorgactiviteit" in f.name and "code" in f.name:
            return _text(record, f.name)
    return None


def declared_lines(
    records: Iterable[Record], *, traceer_id: str, participant: str, standard: str
) -> list[DeclaredLine]:
    """The prestatie lines of a valid declaration file, in file order."""
    records = list(records)
    amounts: dict[int, int | None] = {}
    performers: dict[int, str | None] = {}
    for line, children in prestatie_groups(records):
        number = line.number_value("record_id")
        amounts[number] = line_amount(line, children, "declared_amount")
        # ZH308 v8.0 names the performer on the 06 tariefrecords, not on the 04.
        performers[number] = next(
            (p for p in (_text(c, "performer_code") for c in children) if p and p.strip("0")),
            None,
        )
    birth_dates: dict[str, date] = {}
    out: list[DeclaredLine] = []
    for record in records:
        if record.type == "16" and out:  # a zorgactiviteit of the 04 before it
            code = _activity_code(record)
            if code is not None and code not in out[-1].zorgactiviteiten:
                out[-1] = replace(out[-1], zorgactiviteiten=(*out[-1].zorgactiviteiten, code))
            continue
        if record.type == "02":
            bsn = _text(record, "bsn")
            born = _date(record, "birth_date")
            if bsn and born:
                birth_dates[bsn] = born
            continue
        if record.type != "04":
            continue
        bsn = _text(record, "bsn") or ""
        prestatie_date = _date(record, "prestatie_date")
        if prestatie_date is None:  # a valid file has one; guard against modelled layouts
            continue
        out.append(
            DeclaredLine(
                traceer_id=traceer_id,
                record_number=record.number_value("record_id"),
                participant=participant,
                standard=standard,
                bsn=bsn,
                birth_date=_date(record, "birth_date") or birth_dates.get(bsn),
                insurer=_text(record, "uzovi") or "",
                prestatiecodelijst=_text(record, "prestatiecodelijst") or "",
                prestatiecode=_text(record, "prestatiecode") or "",
                prestatie_date=prestatie_date,
                prestatie_end_date=_date(record, "prestatie_end_date"),
                amount=amounts.get(record.number_value("record_id")),
                reference=_text(record, "reference") or "",
                previous_reference=_text(record, "previous_reference"),
                performer=_text(record, "performer_code")
                or performers.get(record.number_value("record_id")),
                zorgproduct=_text(record, "zorgproduct"),
                zorgactiviteiten=tuple(
                    code for code in [_text(record, "zorgactiviteit_code")] if code is not None
                ),
            )
        )
    return out
