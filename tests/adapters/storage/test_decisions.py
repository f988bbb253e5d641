"""A bundling batch's decisions, recorded at once: the latest decision of each pregnancy,
phase and insurer is kept, with since when it is of its kind, as recording them one at a
time keeps it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from adapters.storage import open_store
from adapters.storage.bundling import record_decisions_txn
from adapters.storage.database import Transaction, decode_timestamp
from gateway.ports.bundling import DecisionRecord
from gateway.rules.catalogue import Phase
from gateway.rules.model import DecisionKind
from tests.threadpump import ThreadPump

DAY = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
WAITING, INTEGRAL = DecisionKind.WAITING, DecisionKind.INTEGRAL


def decision(
    pregnancy: str, kind: DecisionKind, phase: Phase | None = Phase.PRENATAL
) -> DecisionRecord:
    return DecisionRecord(
        pregnancy,
        phase,
        "3311",
        kind,
        f"rule-{kind.value}",
        (f"because {pregnancy}", "and so"),
        None,
        date(2026, 12, 1) if kind is WAITING else None,
        None,
        date(2026, 3, 4),
    )


RUNS = [
    [decision("p1", WAITING), decision("p2", INTEGRAL)],
    # p1 changes its kind (since: now); p2 is decided the same again (keeps its since);
    # p2's other phase and p3 are new.
    [
        decision("p1", INTEGRAL),
        decision("p2", INTEGRAL),
        decision("p2", WAITING, Phase.NATAL),
        decision("p3", WAITING, None),
    ],
    # The same pregnancy, phase and insurer twice in one batch: the second stands.
    [decision("p3", INTEGRAL, None), decision("p3", WAITING, None)],
]


def _rows(txn: Transaction) -> list[tuple[Any, ...]]:
    txn.execute(
        "SELECT pregnancy, phase, kind, reasons, until, decided_at, since FROM bundle_decisions"
        " ORDER BY pregnancy, phase"
    )
    return [
        (p, phase, kind, reasons, str(until) if until else None, *map(decode_timestamp, at))
        for p, phase, kind, reasons, until, *at in txn.fetchall()
    ]


@pytest.mark.parametrize("at_once", [True, False], ids=["at-once", "one-by-one"])
def test_a_batch_of_decisions_keeps_the_latest_of_each_and_since_when_it_is_so(
    sql_url: str, pump: ThreadPump, at_once: bool
) -> None:
    store = pump.wait(open_store(sql_url, pump))
    try:
        for n, records in enumerate(RUNS):
            at = DAY + timedelta(days=n)
            if at_once:
                pump.wait(store.database.run_interaction("d", record_decisions_txn, records, at))
            for record in [] if at_once else records:
                pump.wait(store.database.run_interaction("d", record_decisions_txn, [record], at))
        rows = pump.wait(store.database.run_read("read", _rows))
    finally:
        pump.wait(store.close())
    day = [DAY + timedelta(days=n) for n in range(3)]
    reasons = "because {}\nand so".format
    assert rows == [
        ("p1", "prenatal", "integral", reasons("p1"), None, day[1], day[1]),
        ("p2", "natal", "waiting", reasons("p2"), "2026-12-01", day[1], day[1]),
        ("p2", "prenatal", "integral", reasons("p2"), None, day[1], day[0]),
        ("p3", "", "waiting", reasons("p3"), "2026-12-01", day[2], day[2]),
    ]
