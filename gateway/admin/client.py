"""Whom a case is about: the client as her file names her, read from the insured record
(02) that a prestatie record (04) belongs to — for a rejected integral line the claim file
the gateway sent (with the member number the insurer got), else the upload of one of the
original lines.

The store keeps no name; the files (sealed in the journal) do. The BSN and the member
number are masked unless the administrator unmasks (which the service audits); the name
and the birth date are what she needs to know whom to call.
"""

from __future__ import annotations

from datetime import date

from gateway.admin.labels import ClientView
from gateway.ei import EIError, LayoutRegistry, Record, read_records
from gateway.masking import mask_value

__all__ = ["client_of"]


def _initials(text: str) -> str:
    letters = [c for c in text if c.isalpha()]
    return "".join(f"{c.upper()}." for c in letters)


def client_of(
    registry: LayoutRegistry, payload: bytes, record_number: int, *, unmask: bool = False
) -> ClientView | None:
    """The client of the 04 record numbered ``record_number`` in ``payload``; None when the
    file cannot be read or has no such record."""
    insured: Record | None = None
    found: Record | None = None
    try:
        for record in read_records(registry, [payload]):
            if not isinstance(record, Record):
                continue
            if record.type == "02":
                insured = record
            elif record.type == "04" and record.number_value("record_id") == record_number:
                found = record
                break
    except (EIError, ValueError):
        return None
    if found is None or insured is None:
        return None
    bsn = insured.text("bsn").strip() if insured.layout.has("bsn") else ""
    member = insured.text("member_number").strip() if insured.layout.has("member_number") else ""
    parts = [
        _initials(insured.text("initials")) if insured.layout.has("initials") else "",
        insured.text("prefix").strip() if insured.layout.has("prefix") else "",
        insured.text("surname").strip() if insured.layout.has("surname") else "",
    ]
    birth = insured.get("birth_date") if insured.layout.has("birth_date") else None
    return ClientView(
        bsn=bsn if unmask else mask_value(bsn),
        name=" ".join(p for p in parts if p),
        birth_date=birth if isinstance(birth, date) else None,
        member_number=member if unmask else mask_value(member),
        masked=not unmask,
    )
