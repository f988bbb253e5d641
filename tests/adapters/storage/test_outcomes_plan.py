"""Unpacking a claim file reads its absorbed lines through the keys, never by scanning the
whole lines table: a scan per claim file made a year's unpacking quadratic. Checked with
SQLite's own query planner on a migrated store (without statistics, as the gateway runs)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from adapters.storage import open_store
from adapters.storage.outcomes import ABSORBED_OF_FILE
from tests.threadpump import ThreadPump


def test_the_absorbed_lines_of_a_claim_file_are_found_by_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    pump = ThreadPump()
    store = pump.wait(open_store(url, pump))
    pump.wait(store.close())
    with sqlite3.connect(tmp_path / "g.db") as connection:
        plan = [
            row[3] for row in connection.execute("EXPLAIN QUERY PLAN " + ABSORBED_OF_FILE, ("x",))
        ]
    assert not any(step.startswith("SCAN d") for step in plan), plan
    assert any(step.startswith("SEARCH d USING") for step in plan), plan
