"""Prestatie lines and the records under them.

A prestatie line is a 04 record. In most standards it carries its own amounts; in ZH308
they are in the 06 tariefrecords that follow it (one or more per 04), and a ZH309 answers
the money on those 06 records too. These helpers give a line's amount whichever way the
standard puts it, read from the layouts (``parent="04"``), not from a list of standards.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from gateway.ei.record import Record

__all__ = ["PRESTATIE", "line_amount", "prestatie_groups"]

PRESTATIE = "04"


def prestatie_groups(records: Iterable[Record]) -> Iterator[tuple[Record, list[Record]]]:
    """Each prestatie (04) record with the records under it (06, 16), in file order.
    Comments (98) are not part of a group."""
    current: Record | None = None
    children: list[Record] = []
    for rec in records:
        if rec.type == PRESTATIE:
            if current is not None:
                yield current, children
            current, children = rec, []
        elif rec.layout.parent == PRESTATIE:
            if current is not None:
                children.append(rec)
        elif rec.layout.parent != "*" and current is not None:
            yield current, children
            current, children = None, []
    if current is not None:
        yield current, children


def line_amount(line: Record, children: Sequence[Record], name: str) -> int | None:
    """The amount ``name`` (``declared_amount``, ``granted_amount``, …) of a prestatie
    line: its own field when its record has one, else the sum over the records under it
    that have one; None when neither has the field."""
    if line.layout.has(name):
        return line.number_value(name)
    found = [c.number_value(name) for c in children if c.layout.has(name)]
    return sum(found) if found else None
