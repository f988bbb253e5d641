"""What the codec reports: findings, each mapped to a Vektis retourcode, and its one error type."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.errors import ErrorKind, GatewayError

__all__ = ["EIError", "Finding"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing wrong with a file, located as precisely as the codec can.

    ``record`` is the 1-based line number in the file (0 for the file as a whole),
    ``kind`` the record type ("04") when known, ``field`` the layout's field id with its
    name in ``field_name``, ``start``/``end`` the 1-based inclusive positions, ``value``
    the offending text and ``retourcode`` the Vektis COD954 code it maps to.
    """

    record: int
    kind: str
    retourcode: str
    message: str
    field: str | None = None
    field_name: str | None = None
    start: int | None = None
    end: int | None = None
    value: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "record": self.record,
            "kind": self.kind,
            "field": self.field,
            "field_name": self.field_name,
            "start": self.start,
            "end": self.end,
            "value": self.value,
            "retourcode": self.retourcode,
            "message": self.message,
        }


class EIError(GatewayError, ValueError):
    """The codec's one error type: the input cannot be read as an EI file (or a value
    cannot be written into one). ``finding`` says where and which retourcode applies."""

    code = "ei-onleesbaar"
    kind = ErrorKind.INVALID

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.message)
        self.finding = finding
