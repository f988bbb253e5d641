"""Writing declaration files record by record, with numbering and the 99 done for you.

:class:`FileWriter` numbers detail records (NUM040) in order, keeps the counts and totals
and writes the 99 record at the end. It produces the files of the EPD simulators, the
fixtures, and the IGO's own integral claims.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping

from gateway.ei.layout import FieldValue, Layout
from gateway.ei.record import Record, build_record

__all__ = ["FileWriter"]


class FileWriter:
    """Builds one EI file of ``layout``; call :meth:`header` first and :meth:`finish` last."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._lines: list[bytes] = []
        self._counts: Counter[str] = Counter()
        self._totals: Counter[str] = Counter()
        self._next_id = 1
        self._started = False
        self._finished = False

    @property
    def next_record_id(self) -> int:
        return self._next_id

    def header(self, **values: FieldValue) -> Record:
        if self._started:
            raise RuntimeError("the 01 record was already written")
        self._started = True
        base: dict[str, FieldValue] = {
            "standard_code": self.layout.code,
            "version": self.layout.version,
            "subversion": self.layout.subversion,
        }
        rec = build_record(self.layout.record("01"), {**base, **values}, number=1)
        self._lines.append(rec.to_bytes())
        return rec

    def detail(self, type_: str, values: Mapping[str, FieldValue]) -> Record:
        """Append a detail record of ``type_``; its NUM040 is assigned here: the next
        number, or for a comment (98) the number of the record it comments on, as the
        files Vektis publishes do."""
        if not self._started or self._finished:
            raise RuntimeError("detail records go between the 01 and the 99 record")
        target = self.layout.record(type_)
        comment = target.parent == "*"
        if comment and self._next_id == 1:
            raise RuntimeError("a comment record follows the record it comments on")
        record_id = self._next_id - 1 if comment else self._next_id
        rec = build_record(target, {**values, "record_id": record_id}, number=len(self._lines) + 1)
        if not comment:
            self._next_id += 1
        self._counts[type_] += 1
        for f in target.fields:
            if f.total:
                self._totals[f.total] += rec.number_value(f.name)
        self._lines.append(rec.to_bytes())
        return rec

    def insured(self, **values: FieldValue) -> Record:
        return self.detail("02", values)

    def prestatie(self, **values: FieldValue) -> Record:
        return self.detail("04", values)

    def comment(self, text: str, line_number: int = 1) -> Record:
        return self.detail("98", {"line_number": line_number, "text": text})

    def finish(self, **overrides: FieldValue) -> bytes:
        """Write the 99 record (``overrides`` replace computed values) and return the file."""
        return b"".join(self.lines(**overrides))

    def lines(self, **overrides: FieldValue) -> Iterator[bytes]:
        if self._finished:
            raise RuntimeError("the file was already finished")
        self._finished = True
        target = self.layout.record("99")
        values: dict[str, FieldValue] = {}
        for f in target.fields:
            if f.name == "count_detail":
                values[f.name] = sum(self._counts.values())
            elif f.name.startswith("count_"):
                values[f.name] = self._counts[f.name[len("count_") :]]
            elif f.name.startswith("total_"):
                values[f.name] = self._totals[f.name[len("total_") :]]
        values.update(overrides)
        yield from self._lines
        yield build_record(target, values, number=len(self._lines) + 1).to_bytes()
