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

Intake reads the lines of every accepted upload, so :func:`declared_lines` reads the
fields it needs of each record type in one slicing call (an :func:`operator.itemgetter` of
the fields' slices) with straight-line code generated once per record layout, and decodes
each distinct value once per file. What it gives is what reading the records field by field gives
(:func:`lines_by_field`, which it falls back to for a record it cannot read so: the same
values, the same errors; ``tests/gateway/test_lines.py`` compares the two over every
fixture and generated files).
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import MISSING, dataclass, fields, replace
from datetime import date
from operator import itemgetter
from typing import Any, Protocol

from gateway.ei import EIError, FieldLayout, Record, RecordLayout, line_amount, prestatie_groups
from gateway.errors import ErrorKind, GatewayError

__all__ = ["AnswerOutcome", "AnsweredLine", "DeclaredLine", "declared_lines", "lines_by_field"]


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


class AnsweredLine(Protocol):
    """What answering a declared line needs of it: its key (upload and NUM040), who
    declared it and what amount. A :class:`DeclaredLine` has all of it; the unpacker reads
    no more than this of the lines a retour answers (no client data)."""

    @property
    def traceer_id(self) -> str: ...

    @property
    def record_number(self) -> int: ...

    @property
    def participant(self) -> str: ...

    @property
    def amount(self) -> int | None: ...

    @property
    def is_credit(self) -> bool: ...


def _slot_setting_init(cls: type[Any]) -> None:
    """Give the frozen, slotted dataclass ``cls`` an ``__init__`` with the signature of
    its own that stores each field through its slot's descriptor, where the one
    :mod:`dataclasses` writes for a frozen class looks ``object.__setattr__`` up and calls
    it by name, field by field: about half the time per value built. Every line of an
    upload is built once at intake and again whenever it is read back (bundling, claims,
    unpacking), millions of times a year (docs/benchmarks.md). The class stays frozen:
    assigning a field afterwards still raises :class:`dataclasses.FrozenInstanceError`."""
    if hasattr(cls, "__post_init__") or any(
        not f.init or f.default_factory is not MISSING for f in fields(cls)
    ):
        raise TypeError(f"{cls.__name__}: only plain fields can be set this way")
    names = [f.name for f in fields(cls)]
    namespace: dict[str, Any] = {f"set_{n}": cls.__dict__[n].__set__ for n in names}
    params = []
    for f in fields(cls):
        if f.default is MISSING:
            params.append(f.name)
        else:
            namespace[f"default_{f.name}"] = f.default
            params.append(f"{f.name}=default_{f.name}")
    body = "".join(f"    set_{n}(self, {n})\n" for n in names)
    code = compile(f"def __init__(self, {', '.join(params)}):\n{body}", f"<{cls.__name__}>", "exec")
    exec(code, namespace)  # noqa: S102 - generated above from the class's own fields
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__annotations__ = dict(cls.__init__.__annotations__)
    cls.__init__ = init


_slot_setting_init(DeclaredLine)


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


def lines_by_field(
    records: Iterable[Record], *, traceer_id: str, participant: str, standard: str
) -> list[DeclaredLine]:
    """The prestatie lines of a valid declaration file, in file order, each field read on
    its own (what :func:`declared_lines` gives, more slowly)."""
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


# --- reading the fields of a record type at once ----------------------------------------


class _UnreadableError(GatewayError):
    """A record :func:`declared_lines` leaves to :func:`lines_by_field` (which then says
    what is wrong with it, as it always did); never leaves this module."""

    code = "regel-onleesbaar"
    kind = ErrorKind.INVALID


_MISSING = object()
Convert = Callable[[FieldLayout, bytes], object]


def _as_text(f: FieldLayout, raw: bytes) -> object:
    value = f.decode(raw)
    return str(value).strip() or None if value is not None else None


def _as_date(f: FieldLayout, raw: bytes) -> object:
    value = f.decode(raw)
    return value if isinstance(value, date) else None


def _as_number(f: FieldLayout, raw: bytes) -> object:
    value = f.decode(raw)
    if not isinstance(value, int):
        raise _UnreadableError  # number_value's TypeError, raised by lines_by_field
    return value


# What is read of each kind of record, in order: (field name, how its value is taken).
_LINE = (
    ("record_id", _as_number),
    ("bsn", _as_text),
    ("birth_date", _as_date),
    ("uzovi", _as_text),
    ("prestatiecodelijst", _as_text),
    ("prestatiecode", _as_text),
    ("prestatie_date", _as_date),
    ("prestatie_end_date", _as_date),
    ("declared_amount", _as_number),
    ("reference", _as_text),
    ("previous_reference", _as_text),
    ("performer_code", _as_text),
    ("zorgproduct", _as_text),
    ("zorgactiviteit_code", _as_text),
)
_CHILD = (("declared_amount", _as_number), ("performer_code", _as_text))
_CLIENT = (("bsn", _as_text), ("birth_date", _as_date))
_ACTIVITY_CODE = "<the zorgactiviteit code of a 16 record>"
_ACTIVITY = ((_ACTIVITY_CODE, _as_text),)


@dataclass(frozen=True, slots=True)
class _Fields:
    """Some fields of one record type: ``take(raw)`` slices those the type has (and an
    empty slice at the end), ``found`` says for each its place among the fields asked
    for, its layout and how its value is taken; the others' values are None."""

    take: Callable[[bytes], tuple[bytes, ...]]
    found: tuple[tuple[int, FieldLayout, Convert], ...]
    size: int
    # read(raw, memos): the values, each looked up in its memo (one per found field) or
    # decoded into it: the same as _Reader.values would loop over, written out
    read: Callable[[bytes, tuple[dict[bytes, Any], ...]], list[Any]]


_FIELDS_KEPT = 256  # layouts loaded again (tests, reloads) do not pile up
_fields: dict[tuple[int, tuple[tuple[str, Convert], ...]], tuple[RecordLayout, _Fields]] = {}
_fields_lock = threading.Lock()


def _fields_of(layout: RecordLayout, wanted: Sequence[tuple[str, Convert]]) -> _Fields:
    key = (id(layout), tuple(wanted))
    with _fields_lock:  # intake checks uploads on several threads
        cached = _fields.get(key)
        if cached is not None and cached[0] is layout:
            return cached[1]
        found = []
        for at, (name, convert) in enumerate(wanted):
            f = _field_named(layout, name)
            if f is not None:
                found.append((at, f, convert))
        # (itemgetter of one slice would give the bytes, not a 1-tuple: hence the empty one)
        getter = itemgetter(*(f.slice for _, f, _ in found), slice(0, 0))
        built = _Fields(getter, tuple(found), len(wanted), _compiled(getter, found, len(wanted)))
        while len(_fields) >= _FIELDS_KEPT:
            del _fields[next(iter(_fields))]
        _fields[key] = (layout, built)
        return built


def _fill(memo: dict[bytes, Any], convert: Convert, f: FieldLayout, raw: bytes) -> Any:
    try:
        value = memo[raw] = convert(f, raw)
    except EIError:
        raise _UnreadableError from None
    return value


def _compiled(
    take: Callable[[bytes], tuple[bytes, ...]],
    found: Sequence[tuple[int, FieldLayout, Convert]],
    size: int,
) -> Callable[[bytes, tuple[dict[bytes, Any], ...]], list[Any]]:
    """``read(raw, memos)`` for these fields, generated as straight-line code (like
    :mod:`dataclasses` does; see also :mod:`gateway.ei.fast`): no loop, no per-field
    tuple unpacking."""
    namespace: dict[str, Any] = {"take": take, "MISSING": _MISSING, "fill": _fill}
    out = ["None"] * size
    body = ["def read(raw, memos):"]
    if found:
        body.append(f"    {''.join(f'a{i}, ' for i in range(len(found)))}_ = take(raw)")
        body.append(f"    {''.join(f'm{i}, ' for i in range(len(found)))}= memos")
    for i, (at, f, convert) in enumerate(found):
        namespace[f"f{i}"], namespace[f"c{i}"] = f, convert
        body += [
            f"    v{i} = m{i}.get(a{i}, MISSING)",
            f"    if v{i} is MISSING:",
            f"        v{i} = fill(m{i}, c{i}, f{i}, a{i})",
        ]
        out[at] = f"v{i}"
    body.append(f"    return [{', '.join(out)}]")
    code = compile("\n".join(body) + "\n", "<declared line fields>", "exec")
    exec(code, namespace)  # noqa: S102 - generated above from layout data
    read: Callable[[bytes, tuple[dict[bytes, Any], ...]], list[Any]] = namespace["read"]
    return read


def _field_named(layout: RecordLayout, name: str) -> FieldLayout | None:
    if name == _ACTIVITY_CODE:  # as _activity_code finds it
        if layout.has("zorgactiviteit_code"):
            return layout.field("zorgactiviteit_code")
        return next(
            (f for f in layout.fields if "zorgactiviteit" in f.name and "code" in f.name), None
        )
    return layout.field(name) if layout.has(name) else None


_Plan = tuple[
    Callable[[bytes, tuple[dict[bytes, Any], ...]], list[Any]], tuple[dict[bytes, Any], ...]
]


class _Reader:
    """Field values of one file's records, each distinct value of a kind of field
    decoded once (the memos end with the file: nothing read outlives it)."""

    def __init__(self) -> None:
        self._memos: dict[tuple[Convert, str], dict[bytes, Any]] = {}
        # per record layout and fields asked for: the reading, and its fields' memos
        self._plans: dict[tuple[int, int], _Plan] = {}

    def _plan(self, layout: RecordLayout, wanted: Sequence[tuple[str, Convert]]) -> _Plan:
        spec = _fields_of(layout, wanted)
        memos = tuple(self._memos.setdefault((c, f.kind), {}) for _, f, c in spec.found)
        plan: _Plan = (spec.read, memos)
        # (the records keep their layouts alive while the file is read: the ids hold)
        self._plans[(id(layout), id(wanted))] = plan
        return plan

    def values(self, record: Record, wanted: Sequence[tuple[str, Convert]]) -> list[Any]:
        """The values of the ``wanted`` fields of ``record``; None for a field its type
        lacks. ``wanted`` is one of this module's constants."""
        layout = record.layout
        read, memos = self._plans.get((id(layout), id(wanted))) or self._plan(layout, wanted)
        return read(record.raw, memos)


def declared_lines(
    records: Iterable[Record], *, traceer_id: str, participant: str, standard: str
) -> list[DeclaredLine]:
    """The prestatie lines of a valid declaration file, in file order (as
    :func:`lines_by_field` gives them)."""
    records = list(records)
    try:
        return _read_lines(
            records, traceer_id=traceer_id, participant=participant, standard=standard
        )
    except _UnreadableError:
        return lines_by_field(
            records, traceer_id=traceer_id, participant=participant, standard=standard
        )


def _read_lines(
    records: list[Record], *, traceer_id: str, participant: str, standard: str
) -> list[DeclaredLine]:
    reader = _Reader()
    amounts: dict[int, int | None] = {}
    performers: dict[int, str | None] = {}
    read: dict[int, list[Any]] = {}  # id of a 04 record -> its values (records are kept)
    for line, children in prestatie_groups(records):
        values = read[id(line)] = reader.values(line, _LINE)
        number = values[0]
        if number is None:
            raise _UnreadableError  # no record_id: lines_by_field's KeyError
        own = values[8]
        found: list[int] = []
        performer: str | None = None
        for child in children:
            amount, code = reader.values(child, _CHILD)
            if amount is not None:
                found.append(amount)
            if performer is None and code and code.strip("0"):
                performer = code
        amounts[number] = own if own is not None else sum(found) if found else None
        performers[number] = performer
    birth_dates: dict[str, date] = {}
    out: list[DeclaredLine] = []
    for record in records:
        kind = record.type
        if kind == "16" and out:  # a zorgactiviteit of the 04 before it
            (code,) = reader.values(record, _ACTIVITY)
            if code is not None and code not in out[-1].zorgactiviteiten:
                out[-1] = replace(out[-1], zorgactiviteiten=(*out[-1].zorgactiviteiten, code))
            continue
        if kind == "02":
            bsn, born = reader.values(record, _CLIENT)
            if bsn and born:
                birth_dates[bsn] = born
            continue
        if kind != "04":
            continue
        (
            number,
            bsn,
            birth_date,
            insurer,
            codelijst,
            code,
            prestatie_date,
            end_date,
            _,
            reference,
            previous,
            performer,
            zorgproduct,
            activity,
        ) = read.get(id(record)) or reader.values(record, _LINE)
        if prestatie_date is None:  # a valid file has one; guard against modelled layouts
            continue
        if number is None:
            raise _UnreadableError
        bsn = bsn or ""
        out.append(
            DeclaredLine(
                traceer_id=traceer_id,
                record_number=number,
                participant=participant,
                standard=standard,
                bsn=bsn,
                birth_date=birth_date or birth_dates.get(bsn),
                insurer=insurer or "",
                prestatiecodelijst=codelijst or "",
                prestatiecode=code or "",
                prestatie_date=prestatie_date,
                prestatie_end_date=end_date,
                amount=amounts.get(number),
                reference=reference or "",
                previous_reference=previous,
                performer=performer or performers.get(number),
                zorgproduct=zorgproduct,
                zorgactiviteiten=(activity,) if activity is not None else (),
            )
        )
    return out
