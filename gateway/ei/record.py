"""Parsed records: the raw bytes of one line plus the layout that explains them.

A :class:`Record` keeps only its bytes; fields are decoded when asked for, so parsing a
large file costs one small object per line and nothing per field.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from gateway.ei.findings import EIError, Finding
from gateway.ei.layout import FieldValue, RecordLayout

__all__ = ["CRLF", "Record", "build_record"]

CRLF = b"\r\n"


@dataclass(frozen=True, slots=True)
class Record:
    """One record of an EI file. ``number`` is its 1-based line number in the file."""

    layout: RecordLayout
    raw: bytes
    number: int = 0

    @property
    def type(self) -> str:
        return self.layout.type

    def __getitem__(self, name: str) -> FieldValue:
        """The decoded value of field ``name``; raises :class:`EIError` if it is malformed."""
        f = self.layout.field(name)
        try:
            return f.decode(self.raw[f.slice])
        except EIError as exc:
            raise EIError(_located(exc.finding, self)) from None

    def get(self, name: str, default: FieldValue = None) -> FieldValue:
        """Like ``record[name]`` but ``default`` when the record type has no such field."""
        if not self.layout.has(name):
            return default
        return self[name]

    def text(self, name: str) -> str:
        """The field's value as text (codes, text fields); '' when empty."""
        value = self[name]
        return "" if value is None else str(value)

    def number_value(self, name: str) -> int:
        """The field's value as an int (numbers and amounts)."""
        value = self[name]
        if not isinstance(value, int):
            raise TypeError(f"field {name!r} of record {self.type} is not a number")
        return value

    def raw_field(self, name: str) -> bytes:
        return self.raw[self.layout.field(name).slice]

    def replace(self, **values: FieldValue) -> Record:
        """A copy with some fields set to new values (encoded by their layout)."""
        return build_record(self.layout, values, base=self.raw, number=self.number)

    def to_bytes(self) -> bytes:
        """The record as it stands in a file, line end included."""
        return self.raw + CRLF

    def items(self) -> Iterator[tuple[str, FieldValue]]:
        for f in self.layout.fields:
            yield f.name, self[f.name]


def _located(finding: Finding, record: Record) -> Finding:
    return Finding(
        record=record.number,
        kind=record.type,
        retourcode=finding.retourcode,
        message=finding.message,
        field=finding.field,
        field_name=finding.field_name,
        start=finding.start,
        end=finding.end,
        value=finding.value,
    )


def build_record(
    layout: RecordLayout,
    values: Mapping[str, FieldValue],
    *,
    base: bytes | None = None,
    number: int = 0,
) -> Record:
    """Write a record of ``layout`` from field values; unnamed fields keep ``base``'s bytes
    (or are blank: zeros for N, spaces for AN)."""
    buf = bytearray(base if base is not None else layout.blank)
    if len(buf) != layout.length:
        raise ValueError(f"base record has {len(buf)} positions, layout {layout.length}")
    for name, value in values.items():
        f = layout.field(name)
        if f.kind == "kenmerk":
            continue
        buf[f.slice] = f.encode(value)
    return Record(layout, bytes(buf), number)
