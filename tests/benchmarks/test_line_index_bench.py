"""The line-index benchmark on a tiny size, so that it cannot rot unnoticed. Nothing here
is timed."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

from tests.benchmarks import line_index as bench


def test_both_stores_get_every_line_and_only_the_current_one_keeps_pairs(
    tmp_path: Path,
) -> None:
    out = io.StringIO()
    report = bench.run(2100, tmp_path, out)

    assert len(report["version 17"]) == len(report["current"]) >= 1
    assert "2,100 line rows" in out.getvalue()
    with sqlite3.connect(tmp_path / "v17.db") as old, sqlite3.connect(tmp_path / "now.db") as new:
        for store in (old, new):
            assert store.execute("SELECT count(*) FROM declaration_lines").fetchone() == (2100,)
        indexes = "SELECT name FROM sqlite_master WHERE type = 'index' AND name = ?"
        assert old.execute(indexes, ("declaration_lines_bsn",)).fetchall()
        assert not new.execute(indexes, ("declaration_lines_bsn",)).fetchall()
        assert new.execute("SELECT count(*) FROM bsn_women").fetchone() == (100,)  # women
    old.close()
    new.close()


def test_a_womans_lines_are_spread_over_seven_uploads() -> None:
    rows = [row for batch in bench.batches(2100) for row in batch]
    uploads_of_a_woman: dict[str, list[str]] = {}
    for row in rows:
        uploads_of_a_woman.setdefault(row[4], []).append(row[0])
    assert len(uploads_of_a_woman) == 100
    assert {len(uploads) for uploads in uploads_of_a_woman.values()} == {21}
    spread = [len(set(uploads)) for uploads in uploads_of_a_woman.values()]
    assert max(spread) == 7
    assert sum(spread) / len(spread) > 6
    assert len({(row[0], row[1]) for row in rows}) == len(rows)  # one row per key
