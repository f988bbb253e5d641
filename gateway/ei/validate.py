"""The checks an insurer's intake makes on an EI file, in one streaming pass.

:class:`Validator` takes the file in chunks (any size) and keeps counters, the record
types above the current one, and the reference numbers of the prestatie records read so
far. Its memory is bounded by the chunk and the record length except for that last part,
which grows with the file: one entry per distinct reference number, each the number's
bytes and the amount of its debit line, 110–150 bytes at the peak (measured by
``tests/benchmarks/codec.py``: 8 MiB for 75,000 prestaties, 109 MiB for 750,000), plus a
small entry per credit line that names a previous reference. Telling uniqueness over the
whole file in one pass takes every number seen; what bounds it in the gateway is the
upload limit (``max_upload_bytes``, 20 MB by default: some 64,000 records of 310
positions, under 8 MiB of references). Every finding carries its line number, record
type, field, positions, value and Vektis retourcode.

Most records are checked by a fast path generated from the layout (:mod:`gateway.ei.fast`),
which gives the same findings as the checks below: a record it cannot vouch for is read
by them.

Checks, by retourcode (see ``schemas/retourcodes.xml`` for which codes are modelled):

* structure: record length 0804, line end 8095, unknown record type 0002, record order
  8026, NUM040 numbering 0801, 99 counts and totals (the 99 field's own code, 0150-0158,
  else 0040), standard 0010 and version 0011;
* fields: types and dates (the field's own code, else 0806), mandatory fields (the field's
  own code, else 0803), debit/credit indicators 0631;
* semantics: BSN eleven-proof 0435, UZOVI form 0018, AGB code form (0014/0016/0017 in the
  01 record, else 0807), payee 8029, message kind 8028, currency 0031, period 0020/0021,
  invoice date 0025, prestatie date inside the period 8007 and not after the invoice date
  8176 (a single date) / 8177 (begin) / 8178 (end), tariff × number = calculated amount
  0612, reference numbers unique in the file 8021, a debit and its identical credit in one
  file 8062, a child record (06) repeating its parent's (04) key fields.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date

from gateway.ei.checking import FileState, is_prestatie
from gateway.ei.fast import FastProgram, program
from gateway.ei.findings import EIError, Finding
from gateway.ei.layout import FieldLayout, Layout, LayoutRegistry
from gateway.ei.reader import BadLine, Reader
from gateway.ei.record import Record

__all__ = ["ValidationResult", "Validator", "bsn_is_valid", "validate_bytes"]

DEFAULT_MAX_FINDINGS = 1000

# Record types out of order (COD954 8026 "volgorde recordtypen is niet correct").
ORDER = "8026"
# A count or total of the 99 record without a published code of its own (the published
# ones, 0150-0158, are on the 99 fields in the layouts): modelled, see retourcodes.xml.
TRAILER = "0040"

# The payee indicator (COD833) names which code of the 01 record is paid.
_PAYEE_FIELDS = {
    "01": "servicebureau",
    "02": "zorgverlener_code",
    "03": "praktijk_code",
    "04": "instelling_code",
}


def bsn_is_valid(bsn: str) -> bool:
    """The BSN eleven-proof: 9 digits, weights 9..2 and -1, sum divisible by 11, not 0."""
    if len(bsn) != 9 or not (bsn.isascii() and bsn.isdigit()):
        return False
    d = bsn.encode("ascii")
    # the weighted sum of the characters' codes, less the codes' part (48 × (44 - 1))
    total = 9 * d[0] + 8 * d[1] + 7 * d[2] + 6 * d[3] + 5 * d[4] + 4 * d[5] + 3 * d[6]
    total += 2 * d[7] - d[8] - 2064
    return total % 11 == 0 and total != 0 and bsn != "000000000"


def agb_is_valid(code: str) -> bool:
    """AGB code form: 8 digits, a zorgverlenersoort (first two digits) other than 00."""
    return len(code) == 8 and code.isdigit() and code[:2] != "00"


def field_problem(f: FieldLayout, raw: bytes) -> tuple[str, str] | None:
    """What is wrong with a well-typed value of a field that :attr:`RecordLayout.checked`
    lists, as (retourcode, message), or None: mandatory and empty, no real date, a zero
    amount marked credit, a BSN, AGB code or UZOVI number of the wrong form.

    It depends on the field's bytes and layout only, so the fast path may remember it
    (and checks, when it generates its code, that its patterns say as much as this).
    """
    empty = f.is_empty(raw)
    if f.required == "M" and empty:
        return f.retourcode or "0803", "mandatory field is empty"
    if f.kind == "date" and not empty:
        # The record pattern only says "8 digits"; 20260231 matches it but is no date.
        try:
            f.decode(raw)
        except EIError:
            return f.retourcode or "0806", "not a valid date (CCYYMMDD)"
    if empty or f.check is None:
        if f.kind == "amount" and raw == b"0" * (f.length - 1) + b"C":
            return "0631", "a zero amount must carry D, not C"
        return None
    text = raw.decode("latin-1")
    if f.check == "bsn" and not bsn_is_valid(text):
        return f.retourcode or "0435", "fails the eleven-proof"
    if f.check == "agb" and not agb_is_valid(text):
        return f.retourcode or "0807", "not a valid AGB code"
    if f.check == "uzovi" and not (text.isdigit() and len(text) == 4):
        return f.retourcode or "0018", "not a valid UZOVI number"
    return None


@dataclass(slots=True)
class ValidationResult:
    """What :class:`Validator` found. ``valid`` means: no findings at all."""

    layout: Layout | None
    findings: list[Finding]
    records: int
    counts: Counter[str]
    truncated: bool = False
    header: Record | None = None

    @property
    def valid(self) -> bool:
        return not self.findings

    @property
    def retourcodes(self) -> set[str]:
        return {f.retourcode for f in self.findings}

    def as_json(self, file: str) -> dict[str, object]:
        layout = self.layout
        return {
            "file": file,
            "standard": layout.standard if layout else None,
            "version": f"{int(layout.version)}.{int(layout.subversion)}" if layout else None,
            "valid": self.valid,
            "records": self.records,
            "findings": [f.as_json() for f in self.findings],
            "truncated": self.truncated,
        }


class Validator:
    """Validates one file fed in chunks; call :meth:`close` for the result."""

    def __init__(
        self,
        registry: LayoutRegistry,
        *,
        max_findings: int = DEFAULT_MAX_FINDINGS,
        expect: Layout | None = None,
        on_record: Callable[[Record], None] | None = None,
        fast: bool = True,
    ) -> None:
        """``on_record`` sees every record read, in file order (one pass for callers that
        need both the checks and the records). ``fast=False`` reads every record the slow
        way (the fast path gives the same result; see :mod:`gateway.ei.fast`)."""
        self._reader = Reader(registry, layout=expect)
        self._fast_enabled = fast
        self._fast: FastProgram | None = None
        self._fast_layout: Layout | None = None
        self._on_record = on_record
        self._findings: list[Finding] = []
        self._max = max_findings
        self._truncated = False
        self._fatal = False
        self._counts: Counter[str] = Counter()
        self._records = 0
        self._s = FileState()
        self._pending_totals: list[tuple[FieldLayout, Record]] = []
        self._parent_types_of: Layout | None = None
        self._parent_types: frozenset[str] = frozenset()

    # --- public --------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if self._fatal:
            return
        self._reader.feed(data)
        self._drain()

    def close(self) -> ValidationResult:
        if not self._fatal:
            self._reader.close()
            self._drain()
        if not self._fatal:
            self._finish()
        return ValidationResult(
            layout=self._reader.layout,
            findings=self._findings,
            records=self._records,
            counts=self._counts,
            truncated=self._truncated,
            header=self._s.header,
        )

    # --- reporting -----------------------------------------------------------------------

    def _add(self, finding: Finding) -> None:
        if len(self._findings) >= self._max:
            self._truncated = True
            return
        self._findings.append(finding)

    def _field_finding(
        self, rec: Record, f: FieldLayout, code: str, message: str, value: str | None = None
    ) -> None:
        if value is None:
            value = rec.raw[f.slice].decode("latin-1")
        self._finding_at(rec.number, rec.type, f, code, message, value)

    def _finding_at(
        self, number: int, kind: str, f: FieldLayout, code: str, message: str, value: str
    ) -> None:
        self._add(
            Finding(
                record=number,
                kind=kind,
                retourcode=code,
                message=f"{f.label}: {message}",
                field=f.id,
                field_name=f.label,
                start=f.start,
                end=f.end,
                value=value,
            )
        )

    def _record_finding(self, rec: Record, code: str, message: str) -> None:
        self._add(Finding(record=rec.number, kind=rec.type, retourcode=code, message=message))

    # --- the pass ------------------------------------------------------------------------

    def _drain(self) -> None:
        reader = self._reader
        try:
            while True:
                if self._fast_enabled and reader.layout is not None:
                    block = reader.take_block()
                    if block is not None:
                        self._read_block(block)
                event = reader.next_event()
                if not isinstance(event, Record | BadLine):  # NEED_DATA or END
                    return
                self._event(event)
        except EIError as exc:
            self._fatal = True
            self._add(exc.finding)

    def _read_block(self, block: bytes) -> None:
        """Complete lines, each checked by the fast path or, where it cannot vouch for a
        record, by the slow one (see :mod:`gateway.ei.fast`)."""
        reader = self._reader
        layout = reader.layout
        assert layout is not None
        if self._fast_layout is not layout:
            self._fast = program(layout, field_problem, is_prestatie)
            self._fast_layout = layout
        fast = self._fast
        if fast is None:
            for line in block.split(b"\n"):
                for event in reader.line_events(line):
                    self._event(event)
            return
        starts, matchers = fast.plan(block)
        base = reader.lines_read
        i, n = 0, len(starts) - 1
        while i < n:
            j = fast.run(self, block, starts, i, n, base, matchers)
            reader.count_lines(j - i)
            if j == n:
                return
            for event in reader.line_events(block[starts[j] : starts[j + 1] - 1]):
                self._event(event)
            i = j + 1

    def _event(self, event: Record | BadLine) -> None:
        self._records += 1 if not _is_line_end_report(event) else 0
        if isinstance(event, BadLine):
            self._add(event.finding)
            self._count_bad(event)
        else:
            if self._on_record is not None:
                self._on_record(event)
            self._check(event)

    def _count_bad(self, bad: BadLine) -> None:
        """Keep counting and numbering across a line that could not be read, so that one
        broken record does not also make every later count wrong."""
        layout = self._reader.layout
        if not bad.kind or layout is None or bad.kind not in layout.records:
            return
        self._counts[bad.kind] += 1
        rec_layout = layout.records[bad.kind]
        # A record whose parent could not be read is not compared with an older one.
        self._s.parents.pop(bad.kind, None)
        if rec_layout.position == "detail":
            self._s.detail_count += 1
            if bad.record_id is not None:
                self._s.last_record_id = bad.record_id
                if rec_layout.parent != "*":  # what a following comment may carry
                    self._s.commented_ids = (bad.record_id, bad.record_id)
            # Its children (the 04s of a broken 02) still have their parent.
            chain = self._s.chain
            if chain and rec_layout.parent not in (None, "*"):
                if rec_layout.parent in chain:
                    while chain[-1] != rec_layout.parent:
                        chain.pop()
                chain.append(bad.kind)

    def _check(self, rec: Record) -> None:
        # The fast path (gateway.ei.fast) stands in for this method on records it finds
        # clean, and must change the state exactly as this does for them. A new field rule
        # belongs in field_problem (the fast path then follows by itself); a new
        # cross-record check needs its counterpart there, or its record types left out
        # in _Generator.supported. tests/gateway/ei/test_fast.py tells when they differ.
        layout = self._reader.layout
        assert layout is not None
        s = self._s
        if self._parent_types_of is not layout:
            self._parent_types_of = layout
            self._parent_types = frozenset(
                r.parent for r in layout.records.values() if r.parent_keys and r.parent
            )
        self._counts[rec.type] += 1
        self._check_position(rec, layout)
        typed_ok = rec.layout.regex.fullmatch(rec.raw) is not None
        bad_fields = set() if typed_ok else self._check_types(rec)
        self._check_fields(rec, bad_fields)
        if rec.layout.parent_keys:
            self._check_parent_keys(rec, bad_fields)
        if rec.type in self._parent_types:
            s.parents[rec.type] = rec
        if rec.layout.position == "detail":
            s.detail_count += 1
            self._check_record_id(rec, layout, bad_fields)
        if rec.layout.position == "first":
            s.header = rec
            self._check_header(rec, bad_fields)
        elif rec.layout.position == "last":
            self._check_trailer(rec, layout, bad_fields)
        elif is_prestatie(rec.layout):
            self._check_prestatie(rec, bad_fields)
        for f in rec.layout.fields:
            if f.total and f.name not in bad_fields:
                s.totals[f.total] += rec.number_value(f.name)

    def _check_position(self, rec: Record, layout: Layout) -> None:
        s = self._s
        position = rec.layout.position
        if s.seen_last:
            self._record_finding(rec, ORDER, "record after the 99 (sluit) record")
            return
        if position == "first":
            if s.chain:
                self._record_finding(rec, ORDER, "a second 01 (voorloop) record")
            s.chain = [rec.type]
            return
        if not s.chain:
            self._record_finding(rec, ORDER, f"record {rec.type} before the 01 (voorloop) record")
            s.chain = ["01"]
        if position == "last":
            s.seen_last = True
            return
        parent = rec.layout.parent
        if parent == "*":
            if len(s.chain) < 2:
                self._record_finding(
                    rec, ORDER, "comment (98) record does not follow a detail record"
                )
            return
        if parent not in s.chain:
            self._record_finding(
                rec, ORDER, f"record {rec.type} is not preceded by its parent record {parent}"
            )
            s.chain.append(rec.type)
            return
        while s.chain[-1] != parent:
            s.chain.pop()
        s.chain.append(rec.type)

    def _check_parent_keys(self, rec: Record, bad: set[str]) -> None:
        """A child record (a 06 under its 04) repeats its parent's key fields."""
        parent = self._s.parents.get(rec.layout.parent or "")
        if parent is None:
            return  # reported as a record out of order
        for f in rec.layout.parent_keys:
            if f.name in bad:
                continue
            if rec.raw[f.slice] != parent.raw_field(f.name):
                self._field_finding(
                    rec,
                    f,
                    f.retourcode or "0806",
                    f"differs from its {parent.type} record (line {parent.number})",
                )
                bad.add(f.name)

    def _check_types(self, rec: Record) -> set[str]:
        """The record did not match its layout's pattern: find which fields are wrong."""
        bad: set[str] = set()
        for f in rec.layout.fields:
            raw = rec.raw[f.slice]
            try:
                f.decode(raw)
                ok = f.kind not in ("code", "number", "kenmerk") or raw.isdigit()
                if ok and f.type == "AN":
                    ok = all(b >= 0x20 and not (0x7F <= b < 0xA0) for b in raw)
            except EIError:
                ok = False
            if ok:
                continue
            bad.add(f.name)
            if f.kind in ("amount", "dc") and raw[-1:] not in (b"D", b"C", b" "):
                self._field_finding(rec, f, "0631", "debit/credit indicator must be D or C")
            elif f.kind == "date":
                self._field_finding(rec, f, f.retourcode or "0806", "not a valid date (CCYYMMDD)")
            elif f.type == "N":
                self._field_finding(rec, f, f.retourcode or "0806", "numeric field with non-digits")
            else:
                self._field_finding(
                    rec, f, f.retourcode or "0806", "characters outside the permitted set"
                )
        return bad

    def _check_fields(self, rec: Record, bad: set[str]) -> None:
        for f in rec.layout.checked:
            if f.name in bad:
                continue
            problem = field_problem(f, rec.raw[f.slice])
            if problem is not None:
                self._field_finding(rec, f, *problem)
                bad.add(f.name)

    def _check_record_id(self, rec: Record, layout: Layout, bad: set[str]) -> None:
        s = self._s
        if "record_id" in bad:
            return
        record_id = rec.number_value("record_id")
        last = s.last_record_id
        # Detail records are numbered 1, 2, 3, …; a retour answers a selection of the
        # declaration's records and keeps their numbers, so there they only increase.
        retour = layout.kind == "retour"
        next_ok = record_id > last if retour else record_id == last + 1
        if rec.layout.parent == "*":
            # A comment (98) carries the NUM040 of the record it comments on, as real
            # files do; a new number of its own (the next one) is accepted as well.
            commented = s.commented_ids
            if not next_ok and record_id not in commented:
                self._field_finding(
                    rec,
                    rec.layout.field("record_id"),
                    "0801",
                    f"expected {commented[0]} (the record it comments on) or {last + 1}",
                )
        else:
            if not next_ok:
                expected = f"greater than {last}" if retour else str(last + 1)
                self._field_finding(
                    rec, rec.layout.field("record_id"), "0801", f"expected {expected}"
                )
            s.commented_ids = (record_id, last + 1)
        if record_id > last:
            s.last_record_id = record_id

    def _check_header(self, rec: Record, bad: set[str]) -> None:
        s = self._s
        lay = rec.layout

        def date_of(name: str) -> date | None:
            if not lay.has(name) or name in bad:
                return None
            value = rec[name]
            return value if isinstance(value, date) else None

        begin, end, invoice = (
            date_of("period_begin"),
            date_of("period_end"),
            date_of("invoice_date"),
        )
        s.period = (begin, end)
        s.invoice_date = invoice
        if begin and end and end < begin:
            self._field_finding(rec, lay.field("period_end"), "0021", "before the period's begin")
        if invoice and begin and invoice < begin:
            self._field_finding(
                rec, lay.field("invoice_date"), "0025", "before the declaration period begins"
            )
        if lay.has("payee") and "payee" not in bad:
            payee = rec.text("payee")
            target = _PAYEE_FIELDS.get(payee)
            if target is None:
                self._field_finding(rec, lay.field("payee"), "8029", "unknown payee indicator")
            elif lay.has(target) and lay.field(target).is_empty(rec.raw_field(target)):
                tf = lay.field(target)
                self._field_finding(
                    rec, tf, tf.retourcode or "8029", "is the payee but is not filled in"
                )
        if lay.has("currency") and "currency" not in bad and rec.text("currency") != "EUR":
            self._field_finding(rec, lay.field("currency"), "0031", "must be EUR")
        if (
            lay.has("message_kind")
            and "message_kind" not in bad
            and rec.text("message_kind") not in ("P", "T")
        ):
            self._field_finding(
                rec, lay.field("message_kind"), "8028", "must be P (production) or T (test)"
            )

    def _check_prestatie(self, rec: Record, bad: set[str]) -> None:
        s = self._s
        lay = rec.layout
        begin, end = s.period
        # After the invoice date: 8176 for a single prestatie date, 8177 for a begin date
        # (the record also has an end date), 8178 for the end date.
        begin_code = "8177" if lay.has("prestatie_end_date") else "8176"
        for name, code_after in (("prestatie_date", begin_code), ("prestatie_end_date", "8178")):
            if not lay.has(name) or name in bad:
                continue
            value = rec[name]
            if not isinstance(value, date):
                continue
            f = lay.field(name)
            if begin and end and not (begin <= value <= end) and name == "prestatie_date":
                self._field_finding(rec, f, "8007", "outside the declaration period")
            elif s.invoice_date and value > s.invoice_date:
                self._field_finding(rec, f, code_after, "after the invoice date")
        names = ("tariff", "number_performed", "calculated_amount")
        if all(lay.has(n) and n not in bad for n in names):
            tariff = rec.number_value("tariff")
            number = rec.number_value("number_performed")
            calculated = rec.number_value("calculated_amount")
            if tariff * number != abs(calculated):
                self._field_finding(
                    rec,
                    lay.field("calculated_amount"),
                    "0612",
                    f"is not tariff {tariff} × number {number}",
                )
        if lay.has("reference") and "reference" not in bad:
            raw_ref = rec.raw_field("reference").rstrip(b" ")
            if raw_ref:
                # A tariefrecord's reference is its own series, apart from the 04's.
                key = raw_ref if rec.type == "04" else rec.raw[:2] + b":" + raw_ref
                references = s.references
                known = key in references
                if known:
                    self._field_finding(
                        rec, lay.field("reference"), "8021", "used by another record in this file"
                    )
                amount = self._line_amount(rec, bad)
                if amount is not None and amount >= 0:
                    references[key] = amount
                elif not known:
                    references[key] = None
                prev = rec.raw_field("previous_reference") if lay.has("previous_reference") else b""
                if amount is not None and amount < 0 and prev.rstrip(b" "):
                    series = prev if rec.type == "04" else rec.raw[:2] + b":" + prev.rstrip(b" ")
                    s.credits.append((series, amount, rec.number, lay))

    @staticmethod
    def _line_amount(rec: Record, bad: set[str]) -> int | None:
        for name in ("declared_amount", "calculated_amount"):
            if rec.layout.has(name) and name not in bad:
                return rec.number_value(name)
        return None

    def _check_trailer(self, rec: Record, layout: Layout, bad: set[str]) -> None:
        s = self._s
        lay = rec.layout
        for f in lay.fields:
            if f.name in bad:
                continue
            if f.name.startswith("count_") and f.name != "count_detail":
                counted = self._counts[f.name[len("count_") :]]
                if rec.number_value(f.name) != counted:
                    self._field_finding(
                        rec, f, f.retourcode or TRAILER, f"file has {counted} such records"
                    )
        if (
            lay.has("count_detail")
            and "count_detail" not in bad
            and rec.number_value("count_detail") != s.detail_count
        ):
            detail = lay.field("count_detail")
            self._field_finding(
                rec,
                detail,
                detail.retourcode or TRAILER,
                f"file has {s.detail_count} detail records",
            )
        self._pending_totals = [
            (f, rec) for f in lay.fields if f.name.startswith("total_") and f.name not in bad
        ]

    def _finish(self) -> None:
        s = self._s
        layout = self._reader.layout
        if layout is None:
            if self._records == 0:
                self._add(
                    Finding(record=0, kind="", retourcode="0001", message="the file is empty")
                )
            return
        if not s.seen_last:
            self._add(
                Finding(
                    record=self._reader.lines_read,
                    kind="",
                    retourcode=ORDER,
                    message="the file has no 99 (sluit) record",
                )
            )
        for f, rec in self._pending_totals:
            total = f.name[len("total_") :]
            if not layout.totals(total):
                continue  # no detail record of this layout carries amounts for this total
            if rec.number_value(f.name) != s.totals[total]:
                self._field_finding(
                    rec,
                    f,
                    f.retourcode or TRAILER,
                    f"the detail records add up to {s.totals[total]} eurocents",
                )
        for prev, amount, number, lay in s.credits:
            if s.references.get(prev.rstrip(b" ")) == -amount:
                self._finding_at(
                    number,
                    lay.type,
                    lay.field("previous_reference"),
                    "8062",
                    "credits a debit line of this same file with the identical amount",
                    # the field's own value (a tariefrecord's series prefix left out)
                    (prev if lay.type == "04" else prev[3:]).decode("latin-1"),
                )


def _is_line_end_report(event: Record | BadLine) -> bool:
    return isinstance(event, BadLine) and event.finding.retourcode == "8095"


def validate_bytes(
    registry: LayoutRegistry,
    data: bytes | Iterable[bytes],
    *,
    max_findings: int = DEFAULT_MAX_FINDINGS,
    expect: Layout | None = None,
    on_record: Callable[[Record], None] | None = None,
    fast: bool = True,
) -> ValidationResult:
    """Validate a whole file given as bytes or as an iterable of chunks."""
    validator = Validator(
        registry, max_findings=max_findings, expect=expect, on_record=on_record, fast=fast
    )
    for chunk in [data] if isinstance(data, bytes) else data:
        validator.feed(chunk)
    return validator.close()
