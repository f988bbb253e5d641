"""What goes between the gateway and a check worker (:mod:`adapters.check_workers`): one
frame each way per upload, a 4-byte big-endian length and then a :mod:`marshal`-encoded
tuple of plain values (text, bytes, numbers, ``None``, tuples, lists and dicts of them).

:mod:`marshal` rather than :mod:`pickle`: loading a pickle can run code, loading these
values cannot; both sides are this package's own code. Dates travel as their ordinal
numbers, findings and lines as the sequences of their fields, the layout as its id and the
01 record as its type, bytes and number, so that the gateway rebuilds exactly the
:class:`~gateway.ei.ValidationResult` and lines :func:`gateway.upload_checks.check_upload`
gives.
"""

from __future__ import annotations

import marshal
import struct
from collections import Counter
from collections.abc import Sequence
from dataclasses import fields
from datetime import date
from operator import attrgetter
from typing import Any, BinaryIO, Final, get_args, get_type_hints

from gateway.ei import Finding, LayoutRegistry, Record, ValidationResult
from gateway.lines import DeclaredLine
from gateway.ports.intake import CheckedFile

__all__ = [
    "HEADER",
    "MAX_FRAME",
    "checked_from_reply",
    "frame",
    "read_frame",
    "reply_failed",
    "reply_for",
    "reply_id",
    "request_for",
    "unpack_request",
]

HEADER: Final = struct.Struct(">I")
# Far above the largest upload the EPD API takes (20 MB by default) and its findings.
MAX_FRAME: Final = 1 << 30
_FINDING_FIELDS: Final = tuple(f.name for f in fields(Finding))
_LINE_FIELDS: Final = tuple(f.name for f in fields(DeclaredLine))
_LINE_TYPES: Final = get_type_hints(DeclaredLine)
# Where a line's dates are among its fields (``date`` or ``date | None``): sent as ordinals.
_DATE_AT: Final = tuple(
    at
    for at, name in enumerate(_LINE_FIELDS)
    if _LINE_TYPES[name] is date or date in get_args(_LINE_TYPES[name])
)
_LINE_VALUES: Final = attrgetter(*_LINE_FIELDS)


def frame(data: bytes) -> bytes:
    return HEADER.pack(len(data)) + data


def read_frame(stream: BinaryIO) -> bytes | None:
    """The next frame's contents from ``stream``; None at its end."""
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        return None
    (size,) = HEADER.unpack(head)
    if size > MAX_FRAME:
        raise ValueError("a frame larger than MAX_FRAME")
    data = stream.read(size)
    if len(data) < size:
        return None
    return data


def request_for(request_id: int, payload: bytes, traceer_id: str, participant: str) -> bytes:
    return frame(marshal.dumps((request_id, payload, traceer_id, participant)))


def unpack_request(data: bytes) -> tuple[int, bytes, str, str]:
    request_id, payload, traceer_id, participant = marshal.loads(data)  # noqa: S302 - see above
    return int(request_id), bytes(payload), str(traceer_id), str(participant)


def reply_for(
    request_id: int, sha256: str, result: ValidationResult, lines: list[DeclaredLine]
) -> bytes:
    header = result.header
    return frame(
        marshal.dumps(
            (
                request_id,
                sha256,
                result.layout.id if result.layout is not None else None,
                tuple(tuple(getattr(f, n) for n in _FINDING_FIELDS) for f in result.findings),
                result.records,
                dict(result.counts),
                result.truncated,
                (header.layout.type, header.raw, header.number) if header is not None else None,
                [_line_values(line) for line in lines],
            )
        )
    )


def reply_failed(request_id: int) -> bytes:
    """The reply of a worker whose checks raised: the gateway runs them itself."""
    return frame(marshal.dumps((request_id, None)))


def reply_id(data: bytes) -> tuple[int, tuple[Any, ...]]:
    """A reply's request id and its values (empty when the worker failed)."""
    values = marshal.loads(data)  # noqa: S302 - the gateway's own worker; loading runs no code
    return int(values[0]), tuple(values[1:]) if values[1] is not None else ()


def checked_from_reply(registry: LayoutRegistry, values: tuple[Any, ...]) -> CheckedFile:
    """The :class:`CheckedFile` of a reply's values (:func:`reply_id`)."""
    sha256, layout_id, findings, records, counts, truncated, header, lines = values
    layout = registry.by_id(layout_id) if layout_id is not None else None
    head: Record | None = None
    if header is not None:
        if layout is None:
            raise ValueError("a reply with a 01 record but no layout")
        kind, raw, number = header
        head = Record(layout.record(kind), raw, number)
    result = ValidationResult(
        layout,
        [Finding(*values) for values in findings],
        records,
        Counter(counts),
        truncated,
        head,
    )
    return CheckedFile(result, [_line(values) for values in lines], sha256)


def _line_values(line: DeclaredLine) -> list[Any]:
    values: list[Any] = list(_LINE_VALUES(line))
    for at in _DATE_AT:
        values[at] = _ordinal(values[at])
    return values


def _line(values: Sequence[Any], fromordinal: Any = date.fromordinal) -> DeclaredLine:
    # Built for every line of every upload on the reactor's thread: only the date fields
    # are touched (about half the time of converting field by field). A line of another
    # shape fails in DeclaredLine, and the gateway checks that upload itself.
    fields_ = list(values)
    for at in _DATE_AT:
        value = fields_[at]
        if value is not None:
            fields_[at] = fromordinal(value)
    return DeclaredLine(*fields_)


def _ordinal(value: date | None) -> int | None:
    return None if value is None else value.toordinal()
