"""A batch's group closed over uploads and credits, on both engines: the women each line's
row connects, found from the rows read once per woman, are those the joins on the lines
table find (the closure as a query per step, kept here as the reference)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from adapters.storage import SqlMessageStore, Transaction, open_store
from adapters.storage.bundling import _close_group_txn, _rows_of_women_txn
from tests.adapters.storage.builders import upload
from tests.adapters.storage.test_lines import line
from tests.threadpump import ThreadPump

PARTICIPANTS = ("33001234", "02001234")


def _reference_closure(txn: Transaction, women: Sequence[str]) -> list[str]:
    """The closure by joins on the table: the women of the group's uploads, and the women
    of the lines the group's lines correct, while a new one has a line still open."""
    group = set(women)
    seen = set(group)
    frontier = sorted(group)
    while frontier:
        found: set[str] = set()
        for woman in frontier:
            txn.execute(
                "SELECT DISTINCT o.woman FROM declaration_lines o WHERE o.traceer_id IN"
                " (SELECT traceer_id FROM declaration_lines WHERE woman = ?)",
                (woman,),
            )
            found.update(row[0] for row in txn.fetchall())
            txn.execute(
                "SELECT DISTINCT t.woman FROM declaration_lines l JOIN declaration_lines t"
                " ON t.participant = l.participant AND t.reference = l.previous_reference"
                " WHERE l.woman = ? AND t.woman <> l.woman",
                (woman,),
            )
            found.update(row[0] for row in txn.fetchall())
        new, seen = found - seen, seen | found
        frontier = []
        for woman in sorted(new):
            txn.execute("SELECT state FROM declaration_lines WHERE woman = ?", (woman,))
            if any(state == "open" for (state,) in txn.fetchall()):
                frontier.append(woman)
        group.update(frontier)
    return sorted(group)


def _backlog(store: SqlMessageStore, pump: ThreadPump, rng: random.Random) -> None:
    """Uploads of two participants, each of a few of 30 women; some lines credit a line
    of another woman of the same participant; some women's lines are settled."""
    references: dict[str, list[str]] = {p: [] for p in PARTICIPANTS}
    for n in range(1, 25):
        participant = PARTICIPANTS[n % 2]
        lines = []
        for k, woman in enumerate(rng.sample(range(30), rng.randint(1, 3))):
            reference = f"R{n}-{k}"
            earlier = references[participant]
            credits = earlier and rng.random() < 0.2
            lines.append(
                line(
                    k,
                    traceer_id=f"up-{n:04d}",
                    participant=participant,
                    bsn=f"{woman:09d}",
                    reference=reference,
                    previous_reference=rng.choice(earlier) if credits else None,
                    amount=-4375 if credits else 4375,
                )
            )
            references[participant].append(reference)
        pump.wait(store.record_upload(upload(n, party=participant), [], lines))

    def settle(txn: Transaction) -> None:
        txn.execute("SELECT DISTINCT woman FROM declaration_lines ORDER BY woman")
        women = [row[0] for row in txn.fetchall()]
        for woman in rng.sample(women, len(women) // 3):
            txn.execute("UPDATE declaration_lines SET state = 'absorbed' WHERE woman = ?", (woman,))

    pump.wait(store.database.run_interaction("settle", settle))


def test_the_group_is_closed_as_the_joins_close_it_with_each_womans_rows(
    sql_url: str, pump: ThreadPump
) -> None:
    rng = random.Random(17)
    store = pump.wait(open_store(sql_url, pump))
    try:
        _backlog(store, pump, rng)

        def compare(txn: Transaction) -> list[tuple[list[str], list[str]]]:
            txn.execute("SELECT DISTINCT woman FROM declaration_lines ORDER BY woman")
            women = [row[0] for row in txn.fetchall()]
            out = []
            for _ in range(40):
                start = sorted(rng.sample(women, rng.randint(1, 3)))
                group, rows = _close_group_txn(txn, start)
                assert sorted(rows) == group
                everyone: dict[str, list[Any]] = _rows_of_women_txn(txn, group)
                assert {w: sorted(r) for w, r in rows.items()} == {
                    w: sorted(r) for w, r in everyone.items()
                }
                out.append((group, _reference_closure(txn, start)))
            return out

        pairs = pump.wait(store.database.run_read("compare", compare))
        for group, expected in pairs:
            assert group == expected
        # The backlog connects some groups beyond the women they start from.
        assert any(len(group) > 3 for group, _ in pairs)
    finally:
        pump.wait(store.close())
