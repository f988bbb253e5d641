"""Incremental reading of EI files: bytes in, records out, in chunks of any size.

Modelled on h11's readers: :meth:`Reader.feed` takes bytes, :meth:`Reader.next_event`
returns the next :class:`Record`, a :class:`BadLine` (a line that cannot be a record of
this file: wrong length, unknown record type), :data:`NEED_DATA` when the buffered bytes
do not yet hold a complete line, or :data:`END` once :meth:`Reader.close` was called and
everything has been returned. Problems that make the rest of the file unreadable (the
first line is not a known 01 record) raise :class:`EIError`.

The buffer is bounded: a line longer than the standard's record length is reported and
skipped without being kept in memory.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from gateway.ei.findings import EIError, Finding
from gateway.ei.layout import Layout, LayoutRegistry
from gateway.ei.record import Record

__all__ = ["END", "NEED_DATA", "BadLine", "Event", "Reader", "read_records", "records_of"]


class _Signal(enum.Enum):
    NEED_DATA = "need data"
    END = "end of file"


NEED_DATA = _Signal.NEED_DATA
END = _Signal.END

# Before the standard is known, no line may be longer than the longest layout's record
# plus this margin; afterwards the bound is the standard's own record length.
_HEADER_MARGIN = 64
_SHOW = 40  # how many bytes of a bad line a finding quotes


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that is not a record of this file. ``kind`` and ``record_id`` are the
    record type and NUM040 read on a best-effort basis (for counting), else ''/None."""

    number: int
    finding: Finding
    kind: str
    record_id: int | None


Event = Record | BadLine | _Signal


def _quote(raw: bytes) -> str:
    text = raw[:_SHOW].decode("latin-1")
    return text + ("…" if len(raw) > _SHOW else "")


class Reader:
    """Reads one EI file incrementally; see the module documentation."""

    def __init__(self, registry: LayoutRegistry, *, layout: Layout | None = None) -> None:
        self._registry = registry
        self.layout: Layout | None = layout
        self._buf = bytearray()
        self._scan_from = 0
        self._pos = 0  # start of the unread part of the buffer
        self._line = 0
        self._closed = False
        self._skipping = False  # inside an over-long line, discarding until its end
        self._pending: list[Record | BadLine] = []
        longest = max((lay.record_length for lay in registry.standards()), default=0)
        self._max_line = (layout.record_length if layout else longest + _HEADER_MARGIN) + 2

    @property
    def lines_read(self) -> int:
        return self._line

    def feed(self, data: bytes) -> None:
        if self._closed:
            raise RuntimeError("feed() after close()")
        if data:
            self._buf += data

    def close(self) -> None:
        """No more data will come; what is left in the buffer is the last line."""
        self._closed = True

    def next_event(self) -> Event:
        if self._pending:
            return self._pending.pop(0)
        while True:
            nl = self._buf.find(b"\n", max(self._pos, self._scan_from))
            if nl < 0:
                self._compact()
                if self._skipping:
                    self._buf.clear()
                    self._scan_from = 0
                    if self._closed:
                        self._skipping = False
                        return END
                    return NEED_DATA
                if len(self._buf) > self._max_line:
                    return self._overlong()
                if not self._closed:
                    self._scan_from = len(self._buf)
                    return NEED_DATA
                if not self._buf:
                    return END
                line = bytes(self._buf)
                self._buf.clear()
                self._scan_from = 0
                return self._line_event(line, ended=False)
            line = bytes(self._buf[self._pos : nl])
            self._pos = nl + 1
            self._scan_from = 0
            if self._skipping:
                self._skipping = False
                continue
            return self._ended_line(line)

    def _compact(self) -> None:
        """Drop the bytes already returned (done only when the buffer runs dry, so that a
        large chunk is not shifted once per line)."""
        if self._pos:
            del self._buf[: self._pos]
            self._scan_from = max(0, self._scan_from - self._pos)
            self._pos = 0

    def events(self) -> Iterator[Record | BadLine]:
        """Every event up to the next NEED_DATA or END."""
        while True:
            event = self.next_event()
            if isinstance(event, _Signal):
                return
            yield event

    # --- lines read by the caller ----------------------------------------------------------

    def take_block(self) -> bytes | None:
        """Every complete line now buffered, taken out of the buffer: the lines joined by
        their LFs, without the last LF (a CR stays part of its line). None unless the
        standard is known, nothing else is pending and a line is complete.

        For a caller that reads lines itself (the validator's fast path). Such a caller
        passes each line it does not handle itself to :meth:`line_events` and counts the
        ones it does with :meth:`count_lines`, in file order, so that line numbers stay
        right; what follows is read as if the lines had come through :meth:`next_event`.
        """
        if self.layout is None or self._skipping or self._pending:
            return None
        last = self._buf.rfind(b"\n", self._pos)
        if last < 0:
            return None
        block = bytes(self._buf[self._pos : last])
        del self._buf[: last + 1]
        self._pos = 0
        self._scan_from = 0
        return block

    def line_events(self, line: bytes) -> list[Record | BadLine]:
        """The events of one line from :meth:`take_block`, as :meth:`next_event` would
        return them."""
        events = [self._ended_line(line)]
        events += self._pending
        self._pending.clear()
        return events

    def count_lines(self, lines: int) -> None:
        """``lines`` lines from :meth:`take_block` were read by the caller."""
        self._line += lines

    # --- internals -----------------------------------------------------------------------

    def _ended_line(self, line: bytes) -> Record | BadLine:
        """A line that ended with a line feed (which ``line`` no longer holds)."""
        if len(line) > self._max_line:
            # Told as when its end had not yet arrived, so that the finding does not
            # depend on how the bytes were chunked.
            self._line += 1
            return self._bad(
                line[: self._max_line],
                "0804",
                f"line is longer than {self._max_line - 2} positions",
            )
        return self._line_event(line, ended=True)

    def _overlong(self) -> BadLine:
        self._line += 1
        head = bytes(self._buf[: self._max_line])
        self._buf.clear()
        self._scan_from = 0
        self._skipping = True
        return self._bad(head, "0804", f"line is longer than {self._max_line - 2} positions")

    def _bad(self, line: bytes, code: str, message: str, kind: str = "") -> BadLine:
        record_id: int | None = None
        if not kind and line[:2].isdigit():
            kind = line[:2].decode("ascii")
        if len(line) >= 14 and line[2:14].isdigit():
            record_id = int(line[2:14])
        finding = Finding(
            record=self._line,
            kind=kind,
            retourcode=code,
            message=message,
            start=1,
            end=len(line),
            value=_quote(line),
        )
        return BadLine(self._line, finding, kind, record_id)

    def _line_event(self, line: bytes, *, ended: bool) -> Record | BadLine:
        self._line += 1
        crlf = line.endswith(b"\r")
        if crlf:
            line = line[:-1]
        if self.layout is None:
            self.layout = self._identify(line)
            self._max_line = self.layout.record_length + 2
        event = self._record(line)
        if not (crlf and ended):
            where = "a line feed without carriage return" if ended else "no CR LF"
            finding = Finding(
                record=self._line,
                kind=line[:2].decode("latin-1"),
                retourcode="8095",
                message=f"record ends with {where}",
                start=len(line) + 1,
                end=len(line) + 1,
            )
            crlf_event = BadLine(self._line, finding, "", None)
            # The record itself is still usable; report the line-end problem first.
            self._pending.append(event)
            return crlf_event
        return event

    def _record(self, line: bytes) -> Record | BadLine:
        assert self.layout is not None
        kind = line[:2].decode("latin-1")
        rec_layout = self.layout.records.get(kind)
        if rec_layout is None:
            return self._bad(line, "0002", f"unknown record type {kind!r} in {self.layout.label}")
        if len(line) != self.layout.record_length:
            return self._bad(
                line,
                "0804",
                f"record {kind} is {len(line)} positions long, "
                f"{self.layout.label} needs {self.layout.record_length}",
                kind=kind,
            )
        return Record(rec_layout, line, self._line)

    def _identify(self, line: bytes) -> Layout:
        def fatal(code: str, message: str, start: int, end: int) -> EIError:
            return EIError(
                Finding(
                    record=self._line,
                    kind=line[:2].decode("latin-1"),
                    retourcode=code,
                    message=message,
                    field={3: "0102", 6: "0103"}.get(start),
                    start=start,
                    end=end,
                    value=line[start - 1 : end].decode("latin-1"),
                )
            )

        if line[:2] != b"01":
            # Another record type first: the order is wrong (8026); no record type at all:
            # the kenmerk record is missing or wrong (0002).
            kind = line[:2]
            code = "8026" if len(kind) == 2 and kind.isdigit() and kind.isascii() else "0002"
            raise fatal(code, "the file does not start with a 01 (voorloop) record", 1, 2)
        code = line[2:5].decode("latin-1")
        version = line[5:7].decode("latin-1")
        subversion = line[7:9].decode("latin-1")
        layout = self._registry.lookup(code, version, subversion)
        if layout is not None:
            return layout
        if not self._registry.knows_code(code):
            raise fatal("0010", f"unknown standard code {code!r}", 3, 5)
        raise fatal("0011", f"standard {code} has no known version {version}.{subversion}", 6, 9)


def records_of(registry: LayoutRegistry, payload: bytes) -> list[Record]:
    """The records of a whole file, its bad lines left out: for a file the gateway read
    before (an upload that passed its checks, a claim file it built, a retour it checked),
    whose findings were given then.

    The same records, numbered the same, as :func:`read_records` gives: the file is split
    into its lines at once (it is whole) rather than read through a :class:`Reader`; a
    file whose first line is not a known 01 record of its standard's length is read
    through the :class:`Reader` (which raises what it raises)."""
    lines = payload.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the last line feed ends the last line
    first = lines[0].removesuffix(b"\r") if lines else b""
    layout = (
        registry.lookup(
            first[2:5].decode("latin-1"),
            first[5:7].decode("latin-1"),
            first[7:9].decode("latin-1"),
        )
        if first[:2] == b"01"
        else None
    )
    if layout is None or len(first) != layout.record_length:
        return [r for r in read_records(registry, [payload]) if isinstance(r, Record)]
    length = layout.record_length
    by_type = {kind.encode("latin-1"): rec for kind, rec in layout.records.items()}
    out: list[Record] = []
    for number, text in enumerate(lines, start=1):
        raw = text[:-1] if text[-1:] == b"\r" else text
        if len(raw) != length:
            continue  # too long or too short: a bad line
        rec = by_type.get(raw[:2])
        if rec is not None:
            out.append(Record(rec, raw, number))
    return out


def read_records(registry: LayoutRegistry, chunks: Iterable[bytes]) -> Iterator[Record | BadLine]:
    """Every record (or bad line) of a file given as chunks of bytes."""
    reader = Reader(registry)
    for chunk in chunks:
        reader.feed(chunk)
        yield from reader.events()
    reader.close()
    yield from reader.events()
