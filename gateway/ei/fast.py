"""The validator's fast path: one compiled check per record type, generated from the layout.

:class:`~gateway.ei.validate.Validator` hands every complete line it has to the function
:func:`program` builds for the file's standard. That function reads the lines in a tight
loop and only says, per record, "no finding, and this is what it changes": a record that
matches its type's pattern, whose checked fields pass, whose position, number and
prestatie checks pass, is counted and added to the running state (counts, totals,
reference numbers) right there. The first line it cannot vouch for — any finding at all,
a record type it does not handle (the 01 and 99 records, comment records), a line of the
wrong length or ending — stops the loop, and the validator reads that one line the slow
way (:meth:`~gateway.ei.validate.Validator._check`), which reports exactly what it always
did, from the same state. So both paths give the same findings by construction; a test
(``tests/gateway/ei/test_fast.py``) runs both over every fixture and generated files.

Everything is derived from the layout data, nothing from today's standards:

* one regular expression per record type: the fields' own patterns (as the slow path's
  record pattern), with "not empty" for mandatory fields and "a zero amount is not C"
  folded in, a group for each field a later check needs, and the CR at the end;
* the field checks that depend on the value only (real dates, BSN eleven-proof, AGB code,
  UZOVI number) are the slow path's own :func:`~gateway.ei.validate.field_problem`,
  remembered per distinct value for the file being read (a bounded memo that ends with
  the file), so a BSN met in the 02 record costs a dictionary look-up in each of its 04
  records;
* the record's position (its parent record in the chain), NUM040 numbering, the prestatie
  checks and the 99 totals, as the validator does them, with the layout's field names.

The code is generated as Python source per standard (like :mod:`dataclasses` does) and
compiled once per process; a record type whose fields do not fit what the generator knows
(a numeric field typed AN, a date that is not 8 digits, a field rule of the slow path that
its patterns do not say) is simply left to the slow path.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Protocol

from gateway.ei.checking import FileState
from gateway.ei.findings import EIError
from gateway.ei.layout import FieldLayout, Layout, RecordLayout
from gateway.ei.record import Record

__all__ = ["FastProgram", "Validating", "program"]

Matcher = Callable[[bytes, int, int], "re.Match[bytes] | None"]
# run(validator, block, starts, i, n, base, matchers) -> the index of the first line it
# did not read; line j (block[starts[j] : starts[j + 1] - 1]) is line base + j + 1 of the
# file. See FastProgram.plan for starts and matchers.
FastRun = Callable[["Validating", bytes, Sequence[int], int, int, int, Sequence[Matcher]], int]
FieldCheck = Callable[[FieldLayout, bytes], "tuple[str, str] | None"]

MEMO_LIMIT = 1 << 16  # remembered values per kind of field, then forgotten at once
# A memo holds values without a finding; its verdict is True, or for a date field its
# date or this: never false, so that ``memo.get(value) or fill(value)`` is one look-up
# when remembered (``fill`` gives None for a value with a finding).
_NO_DATE = object()  # an empty date field
_AN_CLASS = rb"[\x20-\x7e\xa0-\xff]"
_DIGIT = rb"[0-9]"
_AN = bytes([*range(0x20, 0x7F), *range(0xA0, 0x100)])  # the bytes an AN field may hold
_PRESTATIE_DATES = ("prestatie_date", "prestatie_end_date")
_PRODUCT = ("tariff", "number_performed", "calculated_amount")
_LINE_AMOUNT = ("declared_amount", "calculated_amount")


class Validating(Protocol):
    """What the generated code reads and writes of the validator that runs it
    (:class:`~gateway.ei.validate.Validator`): the file's state, the records counted, per
    type and in all, and the callback that sees every record."""

    _s: FileState
    _counts: Counter[str]
    _records: int
    _on_record: Callable[[Record], None] | None


@dataclass(frozen=True, slots=True)
class FastProgram:
    """The fast path of one standard: the generated reader and its record patterns."""

    run: FastRun
    strict: tuple[Matcher, ...]  # every character tested, as the layout's record pattern
    loose: tuple[Matcher, ...]  # AN fields skipped over, for a block known to be clean
    line_length: int  # a record, its CR and its LF
    source: str = field(repr=False)
    namespace: dict[str, Any] = field(repr=False)  # the generated code's globals

    def plan(self, block: bytes) -> tuple[Sequence[int], tuple[Matcher, ...]]:
        """Where each line of ``block`` (lines joined by LF) starts, plus one entry one
        past the end, and the patterns to read them with.

        When every line has the record length, the positions are a :class:`range` (no
        line feed is looked for); when moreover the only CRs are the line ends and every
        other byte is one an AN field may hold, the loose patterns may skip over AN
        fields. Otherwise the strict patterns test every character.
        """
        step = self.line_length
        size = len(block) + 1
        if size % step == 0:
            lines = size // step
            if block[step - 1 :: step].count(b"\n") == lines - 1:  # LFs where lines end
                # What is not an AN byte: only those LFs and a CR before each.
                if block.translate(None, _AN) == b"\r\n" * (lines - 1) + b"\r" and (
                    block[step - 2 :: step].count(b"\r") == lines
                ):
                    return range(0, size + step, step), self.loose
                if block.count(b"\n") == lines - 1:  # no other LF
                    return range(0, size + step, step), self.strict
        starts = [0]
        at = block.find(b"\n")
        while at >= 0:
            starts.append(at + 1)
            at = block.find(b"\n", at + 1)
        starts.append(size)
        return starts, self.strict


_PROGRAMS_KEPT = 64  # layouts loaded again (tests, reloads) do not pile up
_programs: dict[tuple[int, FieldCheck], tuple[Layout, FastProgram | None]] = {}
_programs_lock = threading.Lock()


def program(
    layout: Layout, field_check: FieldCheck, is_prestatie: Callable[[RecordLayout], bool]
) -> FastProgram | None:
    """The fast path of ``layout`` for the field rules ``field_check`` (built once per
    layout and process), or None when no record type of it can take the fast path."""
    key = (id(layout), field_check)
    with _programs_lock:  # validators run on several threads of the gateway
        cached = _programs.get(key)
        if cached is not None and cached[0] is layout:
            return cached[1]
        built = _Generator(layout, field_check, is_prestatie).build()
        while len(_programs) >= _PROGRAMS_KEPT:
            del _programs[next(iter(_programs))]
        _programs[key] = (layout, built)
        return built


def _numeric(f: FieldLayout) -> bool:
    """A field the generated code may turn into an int as ``number_value`` would."""
    return f.kind == "amount" or (f.kind == "number" and f.type == "N")


def _guard(f: FieldLayout) -> bytes:
    """The part of the slow path's field checks that a pattern can say: a mandatory field
    is not empty, a zero amount does not carry C (see ``field_problem``)."""
    guard = b""
    if f.required == "M":
        if f.type == "AN" or f.kind == "dc":
            guard += rb"(?! {%d})" % f.length
        elif f.kind in ("code", "date"):
            guard += rb"(?!0{%d})" % f.length
    if f.kind == "amount":
        guard += rb"(?!0{%d}C)" % (f.length - 1)
    return guard


def _samples(f: FieldLayout) -> list[bytes]:
    """Values of every shape the field's pattern lets through, for :func:`_guard_agrees`."""
    n = f.length
    values = [b"0" * n, b" " * n, b"1" * n, b"9" * n, b"A" * n, b"1".rjust(n, b"0")]
    values += [b"1".ljust(n), b"0" * (n - 1) + b"C", b"0" * (n - 1) + b"D"]
    values += [b"1".rjust(n - 1, b"0") + b"C", b"C" * n, b"D" * n]
    return values


def _guard_agrees(f: FieldLayout, field_check: FieldCheck) -> bool:
    """Whether the guard says all that ``field_check`` says about the field's values of
    every shape: no value the guarded pattern lets through has a finding. False when the
    slow path has learnt a rule this module does not know (the record type then stays
    with the slow path)."""
    guarded = re.compile(_guard(f) + f.pattern())
    return all(field_check(f, value) is None for value in _samples(f) if guarded.fullmatch(value))


def _runs(f: FieldLayout) -> list[tuple[bytes, int]] | None:
    """The field's pattern as runs of one character class, or None when it is not one
    this module knows (the record type is then left to the slow path)."""
    if f.kind == "amount":
        runs = [(_DIGIT, f.length - 1), (b"[DC]", 1)]
    elif f.kind == "dc":
        runs = [(b"[DC ]", 1)]
    elif f.type == "N":
        runs = [(_DIGIT, f.length)]
    else:
        runs = [(_AN_CLASS, f.length)]
    # The same pattern as the slow path's, or this module is out of date.
    if b"".join(c + (b"{%d}" % n if c in (_DIGIT, _AN_CLASS) else b"") for c, n in runs) != (
        f.pattern()
    ):
        return None
    return runs


def _pattern(items: list[tuple[bytes, int] | bytes], *, loose: bool = False) -> bytes:
    """Runs joined into a pattern, neighbours of one class merged (fewer steps for the
    regular expression engine); bytes items (groups, guards) are taken as they are.
    ``loose``: an AN run matches any bytes (compiled with DOTALL, it is skipped over)."""
    out: list[tuple[bytes, int] | bytes] = []
    for given in items:
        item = given
        if loose and isinstance(given, tuple) and given[0] == _AN_CLASS:
            item = (b".", given[1])
        last = out[-1] if out else None
        if isinstance(item, tuple) and isinstance(last, tuple) and last[0] == item[0]:
            out[-1] = (item[0], last[1] + item[1])
        else:
            out.append(item)
    return b"".join(
        item if isinstance(item, bytes) else item[0] + (b"{%d}" % item[1] if item[1] > 1 else b"")
        for item in out
    )


class _Generator:
    def __init__(
        self,
        layout: Layout,
        field_check: FieldCheck,
        is_prestatie: Callable[[RecordLayout], bool],
    ) -> None:
        self.layout = layout
        self.field_check = field_check
        self.is_prestatie = is_prestatie
        self.namespace: dict[str, Any] = {"Record": Record, "_NO_DATE": _NO_DATE}
        self.memos: dict[tuple[tuple[str, str, int, str, str | None], ...], tuple[str, str]] = {}
        self.totals: dict[str, str] = {}
        self.body: list[str] = []
        self.strict: list[Matcher] = []
        self.loose: list[Matcher] = []
        # (variable, key) of each set of values that passed a check in this file
        self.passed: list[tuple[str, str]] = []

    # --- what the fast path handles ------------------------------------------------------

    def supported(self, rec: RecordLayout) -> bool:
        first = next(r.type for r in self.layout.records.values() if r.position == "first")
        if rec.position != "detail" or rec.parent in (None, "*") or rec.type in ("01", first):
            return False
        if not rec.has("record_id") or not _numeric(rec.field("record_id")):
            return False
        # A record whose fields must match its parent's (a ZH308 06 under its 04), and such
        # a parent, keep the slow path's state of parents: both are left to it.
        if rec.parent_keys or any(
            r.parent_keys and r.parent == rec.type for r in self.layout.records.values()
        ):
            return False
        if any(_runs(f) is None for f in rec.fields):
            return False
        if any(f.total and not _numeric(f) for f in rec.fields):
            return False
        if any(f.kind == "date" and (f.type != "N" or f.length != 8) for f in rec.fields):
            return False
        if any(f.kind == "amount" and f.check for f in rec.fields):
            return False
        remembered = [f for f in rec.checked if f.check or f.kind == "date"]
        if not all(_guard_agrees(f, self.field_check) for f in rec.checked if f not in remembered):
            return False
        if self.is_prestatie(rec):
            for name in (*_PRODUCT, *_LINE_AMOUNT):
                if rec.has(name) and not _numeric(rec.field(name)):
                    return False
        return True

    # --- building ------------------------------------------------------------------------

    def memo(self, fields: Sequence[FieldLayout]) -> tuple[str, str]:
        """The names of the memo dictionary (one per file: see ``run``) and its filler
        for adjacent fields like ``fields`` (one value: their bytes together)."""
        key = tuple((f.type, f.kind, f.length, f.required, f.check) for f in fields)
        if key not in self.memos:
            check = self.field_check
            parts = [(f, f.start - fields[0].start, f.end - fields[0].start + 1) for f in fields]

            def fill(memo: dict[bytes, object], raw: bytes) -> object:
                """The verdict on ``raw``: a true value (for a date field: its date, or
                _NO_DATE), remembered; or None, the value has a finding."""
                verdict: object = True
                for f, begin, end in parts:
                    value = raw[begin:end]
                    if check(f, value) is not None:
                        return None
                    if f.kind == "date":
                        try:
                            verdict = f.decode(value) or _NO_DATE
                        except EIError:
                            return None
                if len(memo) >= MEMO_LIMIT:
                    memo.clear()
                memo[raw] = verdict
                return verdict

            n = len(self.memos)
            self.namespace[f"F{n}"] = fill
            self.memos[key] = (f"M{n}", f"F{n}")
        return self.memos[key]

    def total(self, name: str) -> str:
        if name not in self.totals:
            self.totals[name] = f"t{len(self.totals)}"
        return self.totals[name]

    def emit(self, depth: int, line: str) -> None:
        self.body.append("    " * depth + line)

    def record(self, idx: int, rec: RecordLayout) -> None:
        lay = f"L{idx}"
        self.namespace[lay] = rec
        prestatie = self.is_prestatie(rec)
        wanted = {"record_id"}
        if prestatie:
            wanted |= {*_PRESTATIE_DATES, *_PRODUCT, *_LINE_AMOUNT, "reference"}
            wanted |= {"previous_reference"}
        remembered = [f for f in rec.checked if f.check or f.kind == "date"]
        amount = next((n for n in _LINE_AMOUNT if rec.has(n)), None) if prestatie else None
        # Tariff, number and calculated amount side by side are read as one value, and
        # tariff × number checked once per distinct value in the file.
        product: list[FieldLayout] = []
        if prestatie and all(rec.has(n) for n in _PRODUCT):
            span = sorted((rec.field(n) for n in _PRODUCT), key=lambda f: f.start)
            if all(a.end + 1 == b.start for a, b in pairwise(span)) and not any(
                f.total or f in remembered or f.name == amount for f in span
            ):
                product = span
        captured = [
            f
            for f in rec.fields
            if (f.name in wanted or f.total or f in remembered) and f not in product
        ]
        # Neighbouring fields that only need a remembered check share one group and one
        # look-up (the BSN and the UZOVI number, say); a date keeps its own (its value).
        units: list[list[FieldLayout]] = []
        for f in captured:
            alone = f.name in wanted or f.total or f.kind == "date" or f not in remembered
            last = units[-1] if units else None
            if (
                not alone
                and last is not None
                and last[-1].end + 1 == f.start
                and all(g in remembered and g.kind != "date" for g in last)
                and not any(g.name in wanted or g.total for g in last)
            ):
                last.append(f)
            else:
                units.append([f])
        var = {unit[0].name: f"x{i}" for i, unit in enumerate(units)}
        unit_of = {unit[0].name: unit for unit in units}
        groups: list[str] = []
        items: list[tuple[bytes, int] | bytes] = []
        for f in rec.fields:
            if product and f is product[0]:
                items.append(b"(")
                groups.append("xp")
            if f in rec.checked and f not in remembered:
                items.append(_guard(f))
            runs = _runs(f)
            assert runs is not None
            if f not in captured:
                items += runs
                if product and f is product[-1]:
                    items.append(b")")
                continue
            unit = unit_of.get(f.name)
            if unit is None:  # inside a unit begun by an earlier field
                items += runs
                if f is next(u for u in units if f in u)[-1]:
                    items.append(b")")
            elif f.kind == "amount":
                # digits and sign apart: no slicing to read the value
                items += [b"(", runs[0], b")(", runs[1], b")"]
                groups += [var[f.name], var[f.name] + "s"]
            else:
                items += [b"(", *runs]
                if len(unit) == 1:
                    items.append(b")")
                groups.append(var[f.name])
        self.strict.append(re.compile(_pattern([*items, b"\r"])).fullmatch)
        self.loose.append(re.compile(_pattern([*items, b"\r"], loose=True), re.DOTALL).fullmatch)

        d = 4
        self.emit(d - 1, f"{'if' if idx == 0 else 'elif'} k == {rec.type.encode('latin-1')!r}:")
        self.emit(d, f"m = R{idx}(block, pos, pos + {self.layout.record_length + 1})")
        self.emit(d, "if m is None:")
        self.emit(d + 1, "break")
        self.emit(d, f"{', '.join(groups)}, = m.groups()")
        # The field checks a pattern cannot say, remembered per value; a prestatie date
        # also against this file's period and invoice date, remembered for this file.
        for unit in units:
            if unit[0] not in remembered:
                continue
            memo, fill = self.memo(unit)
            x = var[unit[0].name]
            name = unit[0].name
            if not (prestatie and name in _PRESTATIE_DATES):
                self.emit(d, f"v{x} = {memo}.get({x}) or {fill}({memo}, {x})")
                self.emit(d, f"if not v{x}:")
                self.emit(d + 1, "break")
                continue
            seen = f"P{len(self.passed)}"
            self.passed.append((seen, f"({rec.type!r}, {name!r}, begin, end, invoice)"))
            self.emit(d, f"if {x} not in {seen}:")
            self.emit(d + 1, f"v{x} = {memo}.get({x}) or {fill}({memo}, {x})")
            self.emit(d + 1, f"if not v{x}:")
            self.emit(d + 2, "break")
            self.emit(d + 1, f"if v{x} is not _NO_DATE:")
            if name == "prestatie_date":
                self.emit(d + 2, f"if begin and end and not (begin <= v{x} <= end):")
                self.emit(d + 3, "break")
            self.emit(d + 2, f"if invoice and v{x} > invoice:")
            self.emit(d + 3, "break")
            self.emit(d + 1, f"if len({seen}) < LIMIT:")
            self.emit(d + 2, f"{seen}.add({x})")
        # Position: the parent record is in the chain (nothing changes when the record
        # follows one of its own type under the same parent).
        parent, kind = rec.parent, rec.type
        self.emit(d, f"grow = chain[-1] != {kind!r} or chain[-2] != {parent!r}")
        self.emit(d, f"if grow and {parent!r} not in chain:")
        self.emit(d + 1, "break")
        # NUM040.
        self.emit(d, f"rid = int({var['record_id']})")
        retour = self.layout.kind == "retour"
        self.emit(d, "if rid <= last_id:" if retour else "if rid != last_id + 1:")
        self.emit(d + 1, "break")
        # Every number a check or a total needs, decoded once.
        value: dict[str, str] = {}
        for f in captured:
            if _numeric(f) and (f.total or (prestatie and f.name in (*_PRODUCT, *_LINE_AMOUNT))):
                x = var[f.name]
                value[f.name] = f"n{x}"
                if f.kind == "amount":
                    self.emit(d, f"n{x} = -int({x}) if {x}s == b'C' else int({x})")
                else:
                    self.emit(d, f"n{x} = int({x})")
        if product:
            seen = f"P{len(self.passed)}"
            self.passed.append((seen, f"({rec.type!r}, 'tariff × number')"))
            first = product[0].start
            read = {}
            for f in product:
                a, b = f.start - first, f.end - first + 1
                if f.kind != "amount":
                    read[f.name] = f"int(xp[{a}:{b}])"
                elif f.name == "calculated_amount":  # its size: the sign does not count
                    read[f.name] = f"int(xp[{a}:{b - 1}])"
                else:
                    digits = f"int(xp[{a}:{b - 1}])"
                    read[f.name] = f"(-{digits} if xp[{b - 1}] == 67 else {digits})"
            t, n, c = (read[x] for x in _PRODUCT)
            self.emit(d, f"if xp not in {seen}:")
            self.emit(d + 1, f"if {t} * {n} != {c}:  # tariff × number = |calculated|")
            self.emit(d + 2, "break")
            self.emit(d + 1, f"if len({seen}) < LIMIT:")
            self.emit(d + 2, f"{seen}.add(xp)")
        if prestatie:
            self.prestatie(d, rec, var, value, amount, product_done=bool(product))
        # Nothing to report: the record changes the state as the slow path would.
        self.emit(d, "if on_record is not None:")
        raw = f"block[pos : pos + {self.layout.record_length}]"
        self.emit(d + 1, f"on_record(Record({lay}, {raw}, base + LINENO + 1))")
        self.emit(d, "if grow:")
        self.emit(d + 1, f"while chain[-1] != {parent!r}:")
        self.emit(d + 2, "chain.pop()")
        self.emit(d + 1, f"chain.append({kind!r})")
        self.emit(d, "detail += 1")
        # (A comment may share its record's NUM040, so the numbering follows NUM040s, not
        # the count of detail records.)
        self.emit(d, "prev_id = last_id")
        self.emit(d, "last_id = rid")
        self.emit(d, f"c{idx} += 1")
        if prestatie and rec.has("reference"):
            self.emit(d, "if ref:")
            if amount is not None:
                n = value[amount]
                self.emit(d + 1, f"refs[ref] = {n} if {n} >= 0 else None")
                if rec.has("previous_reference"):
                    prev = var["previous_reference"]
                    self.emit(d + 1, f"if {n} < 0 and {prev}.rstrip(b' '):")
                    series = (
                        prev
                        if rec.type == "04"
                        else f"{rec.type.encode('ascii')!r} + b':' + {prev}.rstrip(b' ')"
                    )
                    self.emit(d + 2, f"credits.append(({series}, {n}, base + LINENO + 1, {lay}))")
            else:
                self.emit(d + 1, "refs[ref] = None")
        for f in rec.fields:
            if f.total:
                self.emit(d, f"{self.total(f.total)} += {value[f.name]}")

    def prestatie(
        self,
        d: int,
        rec: RecordLayout,
        var: dict[str, str],
        value: dict[str, str],
        amount: str | None,
        *,
        product_done: bool,
    ) -> None:
        """The prestatie checks of ``Validator._check_prestatie``."""
        # (The dates are checked with the remembered field checks.)
        if not product_done and all(rec.has(n) for n in _PRODUCT):
            t, n, c = (value[x] for x in _PRODUCT)
            self.emit(d, f"if {t} * {n} != abs({c}):")
            self.emit(d + 1, "break")
        if rec.has("reference"):
            self.emit(d, f"ref = {var['reference']}.rstrip(b' ')")
            if rec.type != "04":  # a tariefrecord's references are a series of their own
                self.emit(d, "if ref:")
                self.emit(d + 1, f"ref = {rec.type.encode('ascii')!r} + b':' + ref")
            self.emit(d, "if ref in refs:")
            self.emit(d + 1, "break")

    def build(self) -> FastProgram | None:
        records = [rec for rec in self.layout.records.values() if self.supported(rec)]
        if not records:
            return None
        # Prestatie records first: they are the most of a file.
        records.sort(key=lambda rec: not self.is_prestatie(rec))
        for idx, rec in enumerate(records):
            self.record(idx, rec)
        counters = [f"c{i}" for i in range(len(records))]
        head = [
            "def run(v, block, starts, i, n, base, matchers):",
            f"    {', '.join(f'R{i}' for i in range(len(records)))}, = matchers",
            "    s = v._s",
            "    chain = s.chain",
            "    if s.seen_last or not chain:",
            "        return i",
            "    detail = s.detail_count",
            "    last_id = s.last_record_id",
            "    prev_id = last_id",
            "    begin, end = s.period",
            "    invoice = s.invoice_date",
            "    refs = s.references",
            "    credits = s.credits",
            "    on_record = v._on_record",
            f"    {' = '.join(counters)} = 0",
        ]
        if self.totals:
            head.append(f"    {' = '.join(self.totals.values())} = 0")
        # The memos belong to the file (nothing read, BSNs included, outlives it).
        if self.memos:
            names = ", ".join(name for name, _ in self.memos.values())
            head += [
                "    if not s.memos:",
                f"        s.memos = [{{}} for _ in range({len(self.memos)})]",
                f"    {names}, = s.memos",
            ]
        for seen, key in self.passed:
            head += [
                f"    {seen} = s.passed.get({key})",
                f"    if {seen} is None:",
                f"        {seen} = s.passed[{key}] = set()",
            ]
        self.namespace["LIMIT"] = MEMO_LIMIT
        step = self.layout.record_length + 2
        body = self.body
        head += [
            "    j = i",
            "    try:",
            "        if starts.__class__ is range:  # every line a record's length",
            "            for pos in starts[i:n]:",
            "                k = block[pos : pos + 2]",
            *("    " + line.replace("LINENO", f"pos // {step}") for line in body),
            "                else:",
            "                    break",
            "            else:",
            "                pos = starts[n]",
            f"            j = pos // {step}",
            "        else:",
            "            while j < n:",
            "                pos = starts[j]",
            f"                if starts[j + 1] - pos != {step}:",
            "                    break",
            "                k = block[pos : pos + 2]",
            *("    " + line.replace("LINENO", "j") for line in body),
            "                else:",
            "                    break",
            "                j += 1",
        ]
        # The last record read here is the one a following comment (98) comments on: the
        # NUM040 it carries, and the one it should have carried (the same, it passed).
        tail = [
            "    finally:",
            "        s.detail_count = detail",
            "        s.last_record_id = last_id",
            *(
                [
                    "        if j > i:",
                    "            s.commented_ids = (last_id, prev_id + 1)",
                ]
                if self.layout.kind == "retour"
                else [
                    "        if j > i:",
                    "            s.commented_ids = (last_id, last_id)",
                ]
            ),
            "        v._records += j - i",
            "        counts = v._counts",
        ]
        for i, rec in enumerate(records):
            tail += [f"        if c{i}:", f"            counts[{rec.type!r}] += c{i}"]
        for name, t in self.totals.items():
            tail += [f"        if {t}:", f"            s.totals[{name!r}] += {t}"]
        tail.append("    return j")
        source = "\n".join([*head, *tail]) + "\n"
        code = compile(source, f"<fast path of {self.layout.id}>", "exec")
        exec(code, self.namespace)  # noqa: S102 - the source is generated above from layout data
        return FastProgram(
            run=self.namespace["run"],
            strict=tuple(self.strict),
            loose=tuple(self.loose),
            line_length=self.layout.record_length + 2,
            source=source,
            namespace=self.namespace,
        )
