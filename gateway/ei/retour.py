"""Writing retour files: the answer to a declaration, record by record.

A retour record is the declaration's record, unchanged, followed by the retour tail
(granted amount, up to three retourcodes). Where a standard answers the money on the
records under a prestatie (ZH309: the 06 tariefrecords), a prestatie's outcome is spread
over them. The 01 record keeps everything but says which
retour standard the file follows (so that a reader can dispatch on it); the 99 record is
written afresh with counts and totals of what the retour actually contains.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from gateway.ei.groups import prestatie_groups
from gateway.ei.layout import FieldValue, Layout, RecordLayout
from gateway.ei.record import CRLF, Record, build_record

__all__ = ["MAX_CODES", "Outcome", "build_retour", "build_technical_rejection"]

MAX_CODES = 3


@dataclass(frozen=True, slots=True)
class Outcome:
    """The insurer's answer to one detail record.

    ``granted`` is the granted amount in eurocents of a 04 record (where the retour
    answers money on the records under it, ZH309's 06, it is spread over them),
    ``calculated`` the insurer's calculated amount (default: what was declared), ``codes``
    up to three retourcodes (empty when the line was granted without remarks).
    """

    granted: int = 0
    calculated: int | None = None
    codes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.codes) > MAX_CODES:
            raise ValueError(f"a retour record carries at most {MAX_CODES} retourcodes")
        for code in self.codes:
            if len(code) != 4 or not code.isdigit():
                raise ValueError(f"retourcode {code!r} is not four digits")


#: The answer to a record the retour has no outcome for (a comment's, say): nothing granted.
_NO_OUTCOME = Outcome()

_CODE_FIELDS = tuple(f"retourcode_{i}" for i in range(1, MAX_CODES + 1))


def _codes(codes: Sequence[str]) -> dict[str, FieldValue]:
    if len(codes) > MAX_CODES:
        raise ValueError(f"at most {MAX_CODES} retourcodes")
    return dict(_code_values(tuple(codes)))


@functools.lru_cache(maxsize=1024)
def _code_values(codes: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """The retourcode fields' values (remembered: a retour repeats a few sets of codes)."""
    return tuple(zip(_CODE_FIELDS, [*codes, "", "", ""][:MAX_CODES], strict=True))


def _extend(
    retour: Layout,
    record: Record,
    values: Mapping[str, FieldValue],
    target: RecordLayout | None = None,
) -> Record:
    """``record`` with the retour's tail (``target``: the retour's layout of its type)."""
    if target is None:
        target = retour.record(record.type)
    base = record.raw + target.blank[len(record.raw) :]
    return build_record(target, values, base=base)


def _header(
    retour: Layout,
    header: Record | None,
    *,
    insurer_reference: str,
    retour_date: date,
    codes: Sequence[str],
    values: Mapping[str, FieldValue] | None = None,
) -> Record:
    target = retour.record("01")
    own = {
        "standard_code": retour.code,
        "version": retour.version,
        "subversion": retour.subversion,
        "insurer_reference": insurer_reference,
        "retour_date": retour_date,
        **_codes(codes),
    }
    merged = {**(values or {}), **own}
    # The declaration's part of the retour 01 ends where the tail begins.
    answers_length = target.field("insurer_reference").start - 1
    if header is not None and len(header.raw) == answers_length:
        return _extend(retour, header, merged)
    return build_record(target, merged)


def _trailer(retour: Layout, counts: Mapping[str, int], declared: int, granted: int) -> Record:
    target = retour.record("99")
    values: dict[str, FieldValue] = {"total_declared": declared, "total_granted": granted}
    detail = 0
    for f in target.fields:
        if f.name.startswith("count_") and f.name != "count_detail":
            kind = f.name[len("count_") :]
            values[f.name] = counts.get(kind, 0)
            detail += counts.get(kind, 0)
    values["count_detail"] = detail
    return build_record(target, values)


def build_retour(
    retour: Layout,
    declaration: Iterable[Record],
    outcomes: Mapping[int, Outcome],
    *,
    insurer_reference: str,
    retour_date: date,
    header_codes: Sequence[str] = (),
    answered_only: bool = False,
) -> bytes:
    """The retour file in layout ``retour`` answering ``declaration``.

    ``outcomes`` maps NUM040 (the declaration's record id) to the answer for that record.
    With ``answered_only`` the file holds only the prestatie records that have an outcome
    (with their 02 record, their 06/16 records and the comments that follow them): a
    partial answer, to be followed by another retour for the rest.
    """
    records = list(declaration)
    # Each detail record's NUM040, read once (by the record object's identity: records
    # built by hand may share a line number).
    ids = {id(rec): rec.number_value("record_id") for rec in records if _is_detail(rec)}
    included = _selection(records, ids, outcomes) if answered_only else None
    outcomes = {**outcomes, **_child_outcomes(retour, records, ids, outcomes)}
    out: list[bytes] = []
    counts: dict[str, int] = {}
    declared = granted = 0
    header: Record | None = None
    tails: dict[str, _Tail] = {}  # per record type: how its retour tail is written
    for rec in records:
        position = rec.layout.position
        if position == "first":
            header = rec
            continue
        if position == "last":
            continue
        record_id = ids[id(rec)]
        if included is not None and record_id not in included:
            continue
        # A comment carries the NUM040 of the record it comments on: not its answer.
        comment = rec.layout.parent == "*"
        outcome = _NO_OUTCOME if comment else outcomes.get(record_id, _NO_OUTCOME)
        tail = tails.get(rec.type)
        if tail is None:
            tail = tails[rec.type] = _Tail(retour.record(rec.type))
        if tail.granted is not None:
            granted += outcome.granted
        for name in tail.declared:
            declared += rec.number_value(name)
        out.append(tail.write(rec, outcome))
        counts[rec.type] = counts.get(rec.type, 0) + 1
    head = _header(
        retour,
        header,
        insurer_reference=insurer_reference,
        retour_date=retour_date,
        codes=header_codes,
    )
    trailer = _trailer(retour, counts, declared, granted)
    return head.to_bytes() + b"".join(out) + trailer.to_bytes()


def _is_detail(rec: Record) -> bool:
    return rec.layout.position not in ("first", "last")


class _Tail:
    """How the retour's tail of one record type is written: the retourcode fields, and
    where the retour answers money, the granted and the insurer's calculated amount;
    everything else is the declaration's record unchanged (as :func:`_extend`, with each
    set of retourcodes encoded once)."""

    __slots__ = ("calculated", "code_fields", "declared", "encoded_codes", "granted", "target")

    def __init__(self, target: RecordLayout) -> None:
        self.target = target
        self.code_fields = tuple(target.field(name) for name in _CODE_FIELDS)
        money = target.has("granted_amount")
        self.granted = target.field("granted_amount") if money else None
        self.calculated = target.field("insurer_calculated_amount") if money else None
        # The fields that count towards the declared total.
        self.declared = tuple(f.name for f in target.fields if f.total == "declared")
        self.encoded_codes: dict[tuple[str, ...], tuple[bytes, ...]] = {}

    def write(self, rec: Record, outcome: Outcome) -> bytes:
        """``rec`` with its tail answering ``outcome``, line end included."""
        target = self.target
        raw = rec.raw
        buf = bytearray(raw)
        buf += target.blank[len(raw) :]
        if len(buf) != target.length:
            raise ValueError(f"base record has {len(buf)} positions, layout {target.length}")
        codes = self.encoded_codes.get(outcome.codes)
        if codes is None:
            values = dict(_code_values(outcome.codes))
            codes = tuple(f.encode(values[f.name]) for f in self.code_fields)
            self.encoded_codes[outcome.codes] = codes
        for f, encoded in zip(self.code_fields, codes, strict=True):
            buf[f.slice] = encoded
        if self.granted is not None and self.calculated is not None:
            buf[self.granted.slice] = self.granted.encode(outcome.granted)
            calculated = outcome.calculated if outcome.calculated is not None else _declared(rec)
            buf[self.calculated.slice] = self.calculated.encode(calculated)
        buf += CRLF
        return bytes(buf)


def _child_outcomes(
    retour: Layout,
    records: Sequence[Record],
    ids: Mapping[int, int],
    outcomes: Mapping[int, Outcome],
) -> dict[int, Outcome]:
    """Where the retour answers money on the records under a prestatie (ZH309: the 06
    tariefrecords) rather than on the 04 itself, the 04's outcome spread over them: the
    granted (and a calculated) amount split in proportion to what each declared, to the
    cent, and the 04's retourcodes on each. ``ids``: each detail record's NUM040."""
    spread: dict[int, Outcome] = {}
    for line, children in prestatie_groups(records):
        outcome = outcomes.get(ids[id(line)])
        if outcome is None or retour.record(line.type).has("granted_amount"):
            continue
        answered = [
            c
            for c in children
            if retour.record(c.type).has("granted_amount") and ids[id(c)] not in outcomes
        ]
        if not answered:
            continue
        weights = [abs(_declared(c)) for c in answered]
        granted = _split(outcome.granted, weights)
        calculated = (
            _split(outcome.calculated, weights)
            if outcome.calculated is not None
            else [None] * len(answered)
        )
        for child, g, calc in zip(answered, granted, calculated, strict=True):
            spread[ids[id(child)]] = Outcome(granted=g, calculated=calc, codes=outcome.codes)
    return spread


def _split(total: int, weights: Sequence[int]) -> list[int]:
    """``total`` in parts proportional to ``weights`` that add up to it exactly (the
    remainder on the last part; all of it on the first when the weights are all 0)."""
    whole = sum(weights)
    if whole == 0:
        return [total] + [0] * (len(weights) - 1)
    sign = -1 if total < 0 else 1
    parts = [sign * (abs(total) * w // whole) for w in weights[:-1]]
    return [*parts, total - sum(parts)]


def _declared(rec: Record) -> int:
    for name in ("declared_amount", "calculated_amount"):
        if rec.layout.has(name):
            return rec.number_value(name)
    return 0


def _selection(
    records: Sequence[Record], ids: Mapping[int, int], outcomes: Mapping[int, Outcome]
) -> set[int]:
    """Record ids to include in a partial retour (see :func:`build_retour`); ``ids``: each
    detail record's NUM040."""
    included: set[int] = set()
    parent_02: int | None = None
    current_04_included = False
    last_included = False
    for rec in records:
        if rec.layout.position != "detail":
            continue
        rid = ids[id(rec)]
        if rec.type == "02":
            parent_02 = rid
            last_included = rid in outcomes
            if last_included:
                included.add(rid)
        elif rec.type == "04":
            current_04_included = rid in outcomes
            last_included = current_04_included
            if current_04_included:
                included.add(rid)
                if parent_02 is not None:
                    included.add(parent_02)
        elif rec.layout.parent == "04":
            last_included = current_04_included
            if last_included:
                included.add(rid)
        elif rec.layout.parent == "*":
            if last_included:
                included.add(rid)
        else:
            last_included = rid in outcomes
            if last_included:
                included.add(rid)
    return included


def build_technical_rejection(
    retour: Layout,
    code: str,
    *,
    extra_codes: Sequence[str] = (),
    header: Record | None,
    insurer_reference: str,
    retour_date: date,
    header_values: Mapping[str, FieldValue] | None = None,
) -> bytes:
    """A whole-file rejection: only a 01 record carrying ``code`` (then up to two
    ``extra_codes`` saying why, e.g. the finding's own code) and an empty 99.

    ``header`` is the rejected file's 01 record when it could be read; otherwise the 01
    is written from ``header_values`` (e.g. the sender's AGB code and the period).
    """
    head = _header(
        retour,
        header,
        insurer_reference=insurer_reference,
        retour_date=retour_date,
        codes=(code, *extra_codes),
        values=header_values,
    )
    return head.to_bytes() + _trailer(retour, {}, 0, 0).to_bytes()
