"""What the validator's two paths share: which records get the prestatie checks, and the
state of one file's checks as it is read.

:class:`~gateway.ei.validate.Validator` (the slow path, every record on its own) and the
code :mod:`gateway.ei.fast` generates (the fast path, a block of records at once) both
read and write one :class:`FileState`; neither imports the other for it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date

from gateway.ei.layout import RecordLayout
from gateway.ei.record import Record

__all__ = ["FileState", "is_prestatie"]


def is_prestatie(rec: RecordLayout) -> bool:
    """Whether records of this type get the prestatie checks (dates, tariff × number,
    reference numbers)."""
    return rec.type == "04" or rec.has("prestatiecode")


@dataclass(slots=True)
class FileState:
    """Where the checks of one file stand: the record chain, the detail records counted,
    the header, the period, the totals, the reference numbers and credit lines seen, and
    the fast path's memory of the file."""

    chain: list[str] = field(default_factory=list)
    detail_count: int = 0
    last_record_id: int = 0
    # NUM040 of the last detail record that is not a comment (the one a 98 comments on):
    # the number it carries and, if that was wrong, the one it should have carried
    commented_ids: tuple[int, int] = (0, 0)
    # the last record of each type that has children with parent-key fields (the 04)
    parents: dict[str, Record] = field(default_factory=dict)
    seen_last: bool = False
    header: Record | None = None
    period: tuple[date | None, date | None] = (None, None)
    invoice_date: date | None = None
    totals: Counter[str] = field(default_factory=Counter)
    # every reference number seen -> the amount of the last debit line that carries it
    # (None: no debit line), for the 0588 and 8062 checks
    references: dict[bytes, int | None] = field(default_factory=dict)
    # credit lines naming a previous reference: (its previous_reference field as it stands,
    # amount, line number, record layout), checked against the debits at the end
    credits: list[tuple[bytes, int, int, RecordLayout]] = field(default_factory=list)
    # The fast path's memory of this file: field values without a finding, per kind of
    # field, and values that passed a check, per check: prestatie dates per (record type,
    # field, period begin, period end, invoice date), tariff × number per record type.
    # See gateway.ei.fast.
    memos: list[dict[bytes, object]] = field(default_factory=list)
    passed: dict[tuple[object, ...], set[bytes]] = field(default_factory=dict)
