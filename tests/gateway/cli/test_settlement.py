"""The settlement report's totals: what the IGO owes a participant is what the IGO's own
retours granted it, net of credits — not what an insurer paid the participant directly for
a line forwarded under the participant's own AGB code."""

from __future__ import annotations

from datetime import date

from gateway.cli.settlement import settlement_json
from gateway.ports.outcomes import SettlementRow
from tests.gateway.rules.test_decide import KRAAM, ln


def row(state: str, amount: int, granted: int | None, outcome: str | None) -> SettlementRow:
    line = ln(KRAAM, "KZ301", "KZUREN", date(2026, 7, 26), amount=amount)
    return SettlementRow(line, state, outcome, granted, (), None)


def test_owed_is_net_of_credits_and_leaves_out_what_the_insurer_paid_itself() -> None:
    rows = [
        row("absorbed", 31250, 31250, "granted"),
        row("cancelled", 12500, 12500, "granted"),  # granted, then credited
        row("cancelled", -12500, -12500, "granted"),  # the credit: the grant reversed
        row("forwarded", 6250, 6250, "granted"),  # paid by the insurer to the participant
        row("absorbed", 9000, None, None),  # still open
    ]
    report = settlement_json(rows, date(2026, 1, 1), date(2026, 12, 31))
    (totals,) = report["participants"]
    assert totals["granted"] == 31250 + 6250
    assert totals["paidByInsurer"] == 6250
    assert totals["owed"] == 31250
    assert totals["open"] == 1
    assert totals["declared"] == 31250 + 6250 + 9000
