"""A readable view of an EI file for the case page: record by record, field by field, with
the client's identifying data masked unless asked otherwise.

Masked: BSNs (the layout's ``check="bsn"`` fields, and any nine-digit stretch that passes
the eleven-proof elsewhere, e.g. in a comment), names, birth dates, addresses and member
and patient numbers. The view holds text exactly as it stands in the file — escaping it
for HTML is the template's job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from gateway.ei import BadLine, EIError, LayoutRegistry, Reader, Record
from gateway.masking import HIDDEN_FIELD, mask_bsns_in

__all__ = ["FieldView", "FileView", "RecordView", "view_file"]

MAX_RECORDS: Final = 500  # a case page shows the start of a big file, and says so
_CHUNK: Final = 1 << 16
_PERSONAL: Final = (
    "bsn",
    "surname",
    "prefix",
    "initials",
    "birth_date",
    "member_number",
    "patient_number",
    "postcode",
    "house_number",
    "street",
    "city",
)


@dataclass(frozen=True, slots=True)
class FieldView:
    id: str
    label: str
    value: str
    masked: bool


@dataclass(frozen=True, slots=True)
class RecordView:
    number: int
    type: str
    name: str
    fields: tuple[FieldView, ...]
    problem: str | None = None  # an unreadable line: why


@dataclass(frozen=True, slots=True)
class FileView:
    title: str  # the layout, or why the file cannot be read
    records: tuple[RecordView, ...]
    truncated: bool
    masked: bool


def _personal(name: str) -> bool:
    return any(part in name for part in _PERSONAL)


def _record(record: Record, unmask: bool) -> RecordView:
    fields = []
    for f in record.layout.fields:
        raw = record.raw[f.slice]
        if f.kind == "reserve" or (f.kind != "kenmerk" and f.is_empty(raw)):
            continue
        try:
            value: object = f.decode(raw)
        except EIError:
            value = raw.decode("latin-1")
        text = "" if value is None else str(value)
        if f.kind == "amount" and isinstance(value, int):
            text = f"{value / 100:.2f}"
        masked = False
        if not unmask:
            if f.check == "bsn" or _personal(f.name):
                text, masked = HIDDEN_FIELD, True
            else:
                hidden = mask_bsns_in(text)
                masked = hidden != text
                text = hidden
        fields.append(FieldView(f.id, f.label, text, masked))
    return RecordView(record.number, record.type, record.layout.name, tuple(fields))


def view_file(registry: LayoutRegistry, payload: bytes, *, unmask: bool = False) -> FileView:
    reader = Reader(registry)
    records: list[RecordView] = []
    truncated = False
    title = "onbekend formaat"
    chunks: list[bytes | None] = [payload[i : i + _CHUNK] for i in range(0, len(payload), _CHUNK)]
    try:
        for chunk in [*chunks, None]:
            if truncated:
                break
            if chunk is None:
                reader.close()
            else:
                reader.feed(chunk)
            truncated = _drain(reader, records, unmask)
    except EIError as exc:
        detail = str(exc) if unmask else mask_bsns_in(str(exc))
        title = f"niet te lezen: {detail}"
    if reader.layout is not None:
        title = f"{reader.layout.label} — {reader.layout.title}"
    return FileView(title, tuple(records), truncated, not unmask)


def _drain(reader: Reader, records: list[RecordView], unmask: bool) -> bool:
    """Add the reader's waiting records; True once there are too many to show."""
    for event in reader.events():
        if len(records) >= MAX_RECORDS:
            return True
        if isinstance(event, BadLine):
            message = event.finding.message if unmask else mask_bsns_in(event.finding.message)
            records.append(
                RecordView(
                    event.number,
                    "?",
                    "onleesbaar",
                    (),
                    f"{message} (retourcode {event.finding.retourcode})",
                )
            )
        else:
            records.append(_record(event, unmask))
    return False
