"""What storing declaration lines costs as the store grows, on the schema of version 17
(the BSN's keyed hash indexed with every line) against the current one (indexed once per
woman, in ``bsn_women``), side by side in one run.

Run as ``python -m tests.benchmarks.line_index [--lines N]`` (default: a national year,
3,570,000 lines). It prints figures and asserts nothing about time.
``tests/benchmarks/test_line_index_bench.py`` runs it on a tiny size.

Two SQLite stores in a scratch directory, each migrated by the project's own migration
files (one up to version 17, the other to the newest), in WAL mode with ``synchronous =
FULL`` as the gateway opens them, but with SQLite's default page cache (about 2 MiB), as
the store had when these figures were first taken; the store now opens its connections
with :data:`adapters.storage.database.DEFAULT_CACHE_MIB`. The same batches of line rows
go into both, one batch after the other, alternately first, so that the machine's noise
falls on both alike: each batch is one transaction with the statements the intake's
writer runs (``Transaction.insert_rows`` for the lines and, on the current schema,
:func:`adapters.storage.lines.link_bsn_txn` for the women's pairs). Only those
statements and the commit are timed; making the rows is not.

The rows are synthetic: 170,000 women a year of 21 lines each, every woman's lines spread
over 7 uploads of 3 (a harder case for ``bsn_women`` than the cycle benchmark's files,
which hold all of a woman's lines of one discipline), 16 women's 3 lines to an upload,
16 uploads to a transaction (what the intake's group commit gathered in the cycle benchmark), random
keyed hashes as the woman's and the BSN's, and a 90-byte sealed client value. Foreign
keys are not checked (no message rows are stored): that look-up is the same on both.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.storage.database import SQLITE, Transaction
from adapters.storage.lines import COLUMNS, link_bsn_txn, row_hashes
from adapters.storage.migrations import load_migrations

NATIONAL_LINES = 3_570_000
LINES_PER_WOMAN = 21
WOMEN_PER_UPLOAD = 16
WOMAN_LINES_PER_UPLOAD = 3
UPLOADS_PER_COMMIT = 16
OLD_VERSION = 17  # the last version with declaration_lines_bsn


@dataclass
class Store:
    name: str
    connection: sqlite3.Connection
    pairs: bool  # whether the schema keeps bsn_women
    seconds: list[float] = field(default_factory=list)  # per batch

    def store(self, rows: Sequence[tuple[Any, ...]]) -> None:
        start = time.perf_counter()
        cursor = self.connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        txn = Transaction(cursor, SQLITE)
        txn.insert_rows("declaration_lines", f"{COLUMNS}, bsn_index", rows)
        if self.pairs:
            link_bsn_txn(txn, {row_hashes(row) for row in rows})
        cursor.execute("COMMIT")
        self.seconds.append(time.perf_counter() - start)

    def size_mib(self, path: Path) -> float:
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 2**20


def open_store(path: Path, version: int | None) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = FULL")
    for migration in load_migrations(SQLITE):
        if version is None or migration.version <= version:
            for statement in migration.statements:
                connection.execute(statement)
    return connection


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def batches(lines: int, seed: int = 18) -> Iterator[list[tuple[Any, ...]]]:
    """Line rows (:data:`COLUMNS` and ``bsn_index``) in the order of the year, one
    transaction's at a time: each upload takes 3 lines of each of 16 women, a woman's 21
    lines in 7 uploads spread over the year."""
    rng = random.Random(seed)
    women = max(1, lines // LINES_PER_WOMAN)
    # each woman's 7 uploads: slots (3 lines each) shuffled over the year
    slots = [w for w in range(women) for _ in range(LINES_PER_WOMAN // WOMAN_LINES_PER_UPLOAD)]
    rng.shuffle(slots)
    per_upload = WOMEN_PER_UPLOAD
    rows: list[tuple[Any, ...]] = []
    for upload, start in enumerate(range(0, len(slots), per_upload), start=1):
        traceer_id = f"{upload:08d}-{rng.getrandbits(64):016x}"
        for n, woman in enumerate(slots[start : start + per_upload]):
            for k in range(WOMAN_LINES_PER_UPLOAD):
                record = n * WOMAN_LINES_PER_UPLOAD + k + 2
                rows.append(_row(traceer_id, record, woman, upload, rng))
        if upload % UPLOADS_PER_COMMIT == 0:
            yield rows
            rows = []
    if rows:
        yield rows


def _row(
    traceer_id: str, record: int, woman: int, upload: int, rng: random.Random
) -> tuple[Any, ...]:
    participant = f"{3300 + upload % 400:04d}1234"
    return (
        traceer_id,
        record,
        participant,
        "KZ301",
        _hash(f"woman:{woman}"),
        rng.randbytes(90),
        "k1",
        "3311",
        "044",
        "196202",
        f"2026-{1 + upload % 12:02d}-{1 + record % 28:02d}",
        None,
        4375,
        f"{participant}-{upload:08d}-{record:04d}",
        None,
        None,
        None,
        None,
        _hash(f"bsn:{woman}"),
    )


def run(lines: int, scratch: Path, out: Any = None) -> dict[str, list[float]]:
    old = Store("version 17", open_store(scratch / "v17.db", OLD_VERSION), pairs=False)
    new = Store("current", open_store(scratch / "now.db", None), pairs=True)
    stored = 0
    total = max(1, lines // LINES_PER_WOMAN) * LINES_PER_WOMAN
    marks = [total * k // 10 for k in range(1, 11)]
    phase_start = [0, 0]
    report: dict[str, list[float]] = {old.name: [], new.name: []}
    print(
        f"{total:,} line rows, {UPLOADS_PER_COMMIT * WOMEN_PER_UPLOAD * WOMAN_LINES_PER_UPLOAD}"
        " a transaction;"
        " milliseconds per 1,000 lines in each tenth of the run",
        file=out,
    )
    print(f"{'lines stored':>14} {'version 17':>11} {'current':>9} {'ratio':>7}", file=out)
    for n, rows in enumerate(batches(lines)):
        first, second = (old, new) if n % 2 == 0 else (new, old)
        first.store(rows)
        second.store(rows)
        stored += len(rows)
        if marks and stored >= marks[0]:  # one row, however many tenths the batch passed
            count = stored - phase_start[1]
            per = [1000 * sum(s.seconds[phase_start[0] :]) / count * 1000 for s in (old, new)]
            report[old.name].append(per[0])
            report[new.name].append(per[1])
            print(
                f"{stored:>14,} {per[0]:>11.1f} {per[1]:>9.1f} {per[1] / per[0]:>7.2f}",
                file=out,
            )
            phase_start = [len(old.seconds), stored]
            marks = [mark for mark in marks if mark > stored]
    totals = [sum(s.seconds) for s in (old, new)]
    print(
        f"{'whole run':>14} {totals[0]:>10.1f}s {totals[1]:>8.1f}s {totals[1] / totals[0]:>7.2f}",
        file=out,
    )
    for store, name in ((old, "v17.db"), (new, "now.db")):
        store.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        print(f"{store.name}: store {store.size_mib(scratch / name):,.0f} MiB", file=out)
        store.connection.close()
    return report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=NATIONAL_LINES)
    parser.add_argument("--scratch", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.scratch or os.environ.get("TMPDIR")) as tmp:
        run(args.lines, Path(tmp))


if __name__ == "__main__":
    main()
