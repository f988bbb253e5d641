"""The distribution of a granted integral amount over the lines it absorbed, with hospital,
midwifery and kraamzorg lines together, credits included: a property test.

``shares``: the parts add up to the granted amount less the overhead, to the cent; no line
gets a negative part, a credit line gets nothing, and each discipline's pot is its share
(of the disciplines that took part) within a cent per line. ``declared``: every line gets
what it declared, a credit line its (negative) amount, so the parts add up to what was
declared net of credits."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.lines import DeclaredLine
from gateway.rules.model import Discipline, Distribution, line_key
from gateway.unpacker import distribute
from tests.gateway.rules.test_decide import HOSPITAL, KRAAM, MIDWIFE, ln

DISCIPLINE = {
    MIDWIFE: Discipline.MIDWIFERY,
    KRAAM: Discipline.KRAAMZORG,
    HOSPITAL: Discipline.HOSPITAL,
}
KINDS = [
    (MIDWIFE, "VK301", "1101"),
    (MIDWIFE, "VK301", "1603"),
    (KRAAM, "KZ301", "196203"),
    (KRAAM, "KZ301", "KZUREN"),
    (HOSPITAL, "ZH308", "15E416"),
]


@st.composite
def absorbed(draw: st.DrawFn) -> list[DeclaredLine]:
    lines = []
    for i in range(draw(st.integers(1, 12))):
        who, standard, code = draw(st.sampled_from(KINDS))
        amount = draw(st.integers(0, 400_000))
        if draw(st.integers(0, 4)) == 0:
            amount = -amount  # a credit line
        lines.append(
            ln(who, standard, code, date(2026, 3, 1) + timedelta(days=i * 7), amount=amount)
        )
    # Each discipline once more, with a debit or only a credit; at least one debit.
    for i, (who, standard, code) in enumerate((KINDS[0], KINDS[2], KINDS[4])):
        amount = draw(st.integers(1, 9000))
        if i > 0 and draw(st.booleans()):
            amount = -amount
        lines.append(ln(who, standard, code, date(2026, 9, 1), amount=amount))
    return lines


def taking_part(lines: list[DeclaredLine]) -> set[Discipline]:
    """The disciplines with a debit line (a credit alone is no part in the care)."""
    return {DISCIPLINE[line.participant] for line in lines if not line.is_credit}


SHARES = st.fixed_dictionaries(
    {
        Discipline.MIDWIFERY: st.integers(0, 100),
        Discipline.KRAAMZORG: st.integers(0, 100),
        Discipline.HOSPITAL: st.integers(0, 100),
    }
)


@settings(max_examples=300, deadline=None)
@given(
    lines=absorbed(),
    granted=st.integers(1, 5_000_000),
    shares=SHARES,
    overhead=st.sampled_from([0.0, 2.5, 7.0, 12.345]),
)
def test_shares_add_up_to_the_granted_amount_to_the_cent(
    lines: list[DeclaredLine],
    granted: int,
    shares: dict[Discipline, float],
    overhead: float,
) -> None:
    parts = distribute(
        granted,
        lines,
        model=Distribution.SHARES,
        shares=shares,
        discipline_of=DISCIPLINE.get,
        overhead_percent=overhead,
    )
    assert set(parts) == {line_key(line) for line in lines}
    net = round(granted * (1 - overhead / 100))
    assert sum(parts.values()) == net
    assert all(part >= 0 for part in parts.values())
    for line in lines:
        if line.is_credit:
            assert parts[line_key(line)] == 0
    present = taking_part(lines)
    whole = sum(share for d, share in shares.items() if d in present)
    for discipline, share in shares.items():
        own = [ln for ln in lines if DISCIPLINE[ln.participant] is discipline]
        pot = sum(parts[line_key(ln)] for ln in own)
        if discipline not in present:
            assert pot == 0
        elif whole:
            assert abs(pot - net * share / whole) <= len(own) + 1


@settings(max_examples=200, deadline=None)
@given(lines=absorbed(), granted=st.integers(1, 5_000_000))
def test_declared_gives_every_line_what_it_declared_net_of_credits(
    lines: list[DeclaredLine], granted: int
) -> None:
    parts = distribute(
        granted,
        lines,
        model=Distribution.DECLARED,
        shares={},
        discipline_of=DISCIPLINE.get,
    )
    assert parts == {line_key(line): line.amount for line in lines}
    assert sum(parts.values()) == sum(line.amount or 0 for line in lines)
