"""The administrator's search on SQLite and PostgreSQL: every business key, keys combined,
the BSN matched only through its keyed hash (and filled in for lines stored before the
index existed), hits of every kind with their case and pregnancy, newest first, bounded."""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.storage import SqlMessageStore, Transaction, open_store
from adapters.storage.lines import lookup_hashes_txn, relink_bsn_txn
from adapters.storage.migrations import migrate
from adapters.storage.outbox import enqueue_txn
from adapters.storage.search import _BSN_LINES, SqlSearchStore
from gateway.admin.cases import CaseKind, case_id
from gateway.admin.search import MASKED_BSN, HitKind, SearchHit, SearchQuery
from gateway.crypto import Keyring
from gateway.lines import DeclaredLine
from gateway.ports.messages import Direction, MessageStatus, NewMessage, NewStatus
from tests.adapters.storage.builders import retour, upload
from tests.threadpump import ThreadPump

KEYS = Keyring(keys={"k1": b"k" * 32}, current="k1", index_key=b"i" * 32)
ANNA = "999990007"  # synthetic BSNs that pass the eleven-proof
BEA = "111222333"
KRAAM, MIDWIFE, IGO = "33001234", "02001234", "53001234"
T0 = datetime(2026, 2, 3, 9, 0, tzinfo=UTC)


def line(traceer_id: str, n: int, bsn: str, participant: str, **changes: object) -> DeclaredLine:
    base = DeclaredLine(
        traceer_id=traceer_id,
        record_number=n,
        participant=participant,
        standard="KZ301",
        bsn=bsn,
        birth_date=date(1994, 5, 6),
        insurer="3311",
        prestatiecodelijst="044",
        prestatiecode="196202",
        prestatie_date=date(2026, 1, 10 + n),
        prestatie_end_date=None,
        amount=4375,
        reference=f"REF-{traceer_id}-{n}",
        previous_reference=None,
        performer=None,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def outbound_file(n: int) -> NewMessage:
    data = f"integral claim file {n}\r\n".encode()
    return NewMessage(
        traceer_id=f"out-{n:04d}",
        conversatie_id=f"conv-out-{n:04d}",
        direction=Direction.TO_INSURER,
        party="3311",
        payload=data,
        sha256=hashlib.sha256(data).hexdigest(),
        created_at=T0 + timedelta(days=1, seconds=n),
        status=NewStatus(MessageStatus.RECEIVED, None, "In de wachtrij."),
        idempotency_key=f"out:{n}",
        filename=f"IGO-{n}.asc",
        standard="KZ301",
        invoice_number=f"IGO-F-{n}",
    )


@dataclass
class World:
    pump: ThreadPump
    store: SqlMessageStore
    search: SqlSearchStore

    def wait(self, awaitable: Any) -> Any:
        return self.pump.wait(awaitable)

    def sql(self, sql: str, *params: object) -> None:
        def run(txn: Transaction) -> None:
            txn.execute(sql, params)

        self.wait(self.store.database.run_interaction("test_sql", run))

    def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        def run(txn: Transaction) -> list[tuple[Any, ...]]:
            txn.execute(sql, params)
            return txn.fetchall()

        rows: list[tuple[Any, ...]] = self.wait(self.store.database.run_read("test_rows", run))
        return rows

    def find(self, limit: int = 100, reveal: bool = False, **keys: Any) -> list[SearchHit]:
        hits, _more = self.wait(self.search.search(SearchQuery(**keys), limit, reveal=reveal))
        return list(hits)


def kinds(hits: list[SearchHit]) -> list[tuple[HitKind, str, int | None]]:
    return [(h.kind, h.traceer_id, h.record_number) for h in hits]


@pytest.fixture
def world(sql_url: str, pump: ThreadPump) -> Iterator[World]:
    store = pump.wait(open_store(sql_url, pump, KEYS))
    world = World(pump, store, SqlSearchStore(store.database, store.codec))
    # Kraamzorg upload 1: Anna's two lines and Bea's one; midwife upload 2: Anna's one.
    up1 = upload(1, invoice="F-1", created_at=T0)
    world.wait(
        store.record_upload(
            up1,
            [],
            [
                line("up-0001", 1, ANNA, KRAAM),
                line("up-0001", 2, ANNA, KRAAM),
                line("up-0001", 3, BEA, KRAAM),
            ],
        )
    )
    up2 = upload(2, party=MIDWIFE, invoice="F-2", created_at=T0 + timedelta(hours=1))
    world.wait(
        store.record_upload(
            up2, [], [line("up-0002", 1, ANNA, MIDWIFE, prestatie_date=date(2026, 1, 20))]
        )
    )
    # Upload 3 rejected at intake, with its technical retour (retourcode 0001).
    up3 = upload(3, invoice="F-3", created_at=T0 + timedelta(hours=2))
    up3 = dataclasses.replace(
        up3, status=NewStatus(MessageStatus.REJECTED, "0040", "Totaal klopt niet.")
    )
    world.wait(store.record_upload(up3, [retour(3, to=up3)]))
    # An integral claim for Anna's kraamzorg lines in a parked outbound file.
    out = outbound_file(1)
    world.wait(
        store.database.run_interaction("enqueue", enqueue_txn, out, "3311", IGO, store.codec)
    )
    world.sql("UPDATE outbound SET state = 'parked' WHERE traceer_id = ?", out.traceer_id)
    world.sql(
        "INSERT INTO integral_claims (reference, invoice_number, record_number, outbound,"
        " insurer, pregnancy, phase, prestatie, amount, credits, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        "IGO-REF-1",
        "IGO-F-1",
        2,
        out.traceer_id,
        "3311",
        "preg-anna",
        "kraamzorg",
        "196202",
        8750,
        None,
        T0 + timedelta(days=1),
    )
    for n in (1, 2):
        world.sql(
            "INSERT INTO claim_absorbs (reference, traceer_id, record_number) VALUES (?, ?, ?)",
            "IGO-REF-1",
            "up-0001",
            n,
        )
        world.sql(
            "UPDATE declaration_lines SET state = 'claimed', claim_reference = ?, outbound = ?"
            " WHERE traceer_id = ? AND record_number = ?",
            "IGO-REF-1",
            out.traceer_id,
            "up-0001",
            n,
        )
    # Bea's line was rejected by the insurer with two retourcodes.
    world.sql(
        "UPDATE declaration_lines SET state = 'forwarded', outcome = 'rejected',"
        " outcome_codes = '8001 8002' WHERE traceer_id = 'up-0001' AND record_number = 3"
    )
    try:
        yield world
    finally:
        pump.wait(store.close())


def test_a_bsn_finds_her_lines_the_files_they_are_in_and_her_claim(world: World) -> None:
    hits = world.find(bsn=ANNA)
    assert sorted(kinds(hits)) == sorted(
        [
            (HitKind.LINE, "up-0001", 1),
            (HitKind.LINE, "up-0001", 2),
            (HitKind.LINE, "up-0002", 1),
            (HitKind.UPLOAD, "up-0001", None),
            (HitKind.UPLOAD, "up-0002", None),
            (HitKind.OUTBOUND, "out-0001", None),
            (HitKind.CLAIM, "out-0001", 2),
        ]
    )
    lines = [h for h in hits if h.kind is HitKind.LINE]
    assert {h.bsn for h in lines} == {MASKED_BSN}
    assert all(ANNA not in repr(h) for h in hits)
    revealed = [h for h in world.find(bsn=ANNA, reveal=True) if h.kind is HitKind.LINE]
    assert {h.bsn for h in revealed} == {ANNA}
    # Bea is not Anna: only her own line and the upload it is in.
    assert sorted(kinds(world.find(bsn=BEA))) == sorted(
        [
            (HitKind.LINE, "up-0001", 3),
            (HitKind.UPLOAD, "up-0001", None),
        ]
    )


def test_the_bsn_is_stored_only_as_a_keyed_hash(world: World) -> None:
    rows = world.rows("SELECT bsn_index, woman FROM declaration_lines")
    assert len({r[0] for r in rows}) == 2  # Anna's and Bea's
    assert all(r[0] and len(r[0]) == 64 and r[0] != r[1] for r in rows)
    assert all(ANNA not in str(r) and BEA not in str(r) for r in rows)
    assert {r[0] for r in rows} == {
        KEYS.index(f"bsn:{ANNA}"),
        KEYS.index(f"bsn:{BEA}"),
    }


def test_the_bsn_index_is_kept_once_per_woman_not_once_per_line(world: World) -> None:
    pairs = world.rows("SELECT DISTINCT bsn_index, woman FROM declaration_lines")
    assert len(pairs) == 2  # Anna's four lines (two participants) and Bea's one
    assert sorted(world.rows("SELECT bsn_index, woman FROM bsn_women")) == sorted(pairs)


def _rehash(world: World, traceer_id: str, record_number: int, bsn_index: str, woman: str) -> None:
    """Give one line other hashes the way the store does (re-keying, reprocessing)."""

    def run(txn: Transaction) -> None:
        before = lookup_hashes_txn(txn, traceer_id, record_number)
        txn.execute(
            "UPDATE declaration_lines SET bsn_index = ?, woman = ?"
            " WHERE traceer_id = ? AND record_number = ?",
            (bsn_index, woman, traceer_id, record_number),
        )
        relink_bsn_txn(txn, before, (bsn_index, woman))

    world.wait(world.store.database.run_interaction("rehash", run))


def test_a_line_given_other_hashes_is_found_by_its_new_bsn_only(world: World) -> None:
    anna, bea = KEYS.index(f"bsn:{ANNA}"), KEYS.index(f"bsn:{BEA}")
    ((bea_woman,),) = world.rows("SELECT woman FROM declaration_lines WHERE bsn_index = ?", bea)
    _rehash(world, "up-0001", 2, bea, bea_woman)
    anna_lines = [k for k in kinds(world.find(bsn=ANNA)) if k[0] is HitKind.LINE]
    bea_lines = [k for k in kinds(world.find(bsn=BEA)) if k[0] is HitKind.LINE]
    assert sorted(anna_lines) == [(HitKind.LINE, "up-0001", 1), (HitKind.LINE, "up-0002", 1)]
    assert sorted(bea_lines) == [(HitKind.LINE, "up-0001", 2), (HitKind.LINE, "up-0001", 3)]
    # Anna's pair stays while lines carry it, and goes with the last of them.
    assert len(world.rows("SELECT 1 FROM bsn_women WHERE bsn_index = ?", anna)) == 1
    for traceer_id, n in (("up-0001", 1), ("up-0002", 1)):
        _rehash(world, traceer_id, n, bea, bea_woman)
    assert world.rows("SELECT bsn_index FROM bsn_women") == [(bea,)]
    assert [k for k in kinds(world.find(bsn=ANNA)) if k[0] is HitKind.LINE] == []


def test_a_womans_line_with_another_bsn_index_is_not_found_by_hers(world: World) -> None:
    bea = KEYS.index(f"bsn:{BEA}")
    ((anna_woman,),) = world.rows(
        "SELECT woman FROM declaration_lines WHERE traceer_id = 'up-0001' AND record_number = 2"
    )
    _rehash(world, "up-0001", 2, bea, anna_woman)  # her woman kept, another BSN index
    anna_lines = [k for k in kinds(world.find(bsn=ANNA)) if k[0] is HitKind.LINE]
    assert (HitKind.LINE, "up-0001", 2) not in anna_lines
    assert (HitKind.LINE, "up-0001", 2) in kinds(world.find(bsn=BEA))


def test_a_bsn_search_reads_lines_by_the_womans_index(tmp_path: Path) -> None:
    """SQLite's own planner on a migrated store, without statistics as the gateway runs:
    from the BSN's pairs to the lines by the woman's index, never a scan of the lines."""
    pump = ThreadPump()
    pump.wait(pump.wait(open_store(f"sqlite:///{tmp_path / 'g.db'}", pump)).close())
    with sqlite3.connect(tmp_path / "g.db") as connection:
        sql = "EXPLAIN QUERY PLAN SELECT 1 FROM declaration_lines l WHERE " + _BSN_LINES
        plan = [row[3] for row in connection.execute(sql, ("x", "x"))]
    connection.close()
    assert "SEARCH l USING INDEX declaration_lines_woman (woman=?)" in plan, plan
    assert "SEARCH b USING PRIMARY KEY (bsn_index=?)" in plan, plan
    assert not any(step.startswith("SCAN") for step in plan), plan


def test_a_store_of_version_17_gets_its_pairs_from_its_lines(world: World) -> None:
    hits = kinds(world.find(bsn=ANNA))
    world.sql("DROP TABLE bsn_women")  # the store as version 17 left it
    world.sql("DROP INDEX declaration_lines_no_bsn")
    world.sql("CREATE INDEX declaration_lines_bsn ON declaration_lines (bsn_index)")
    world.sql("DELETE FROM schema_version WHERE version = 18")
    assert world.wait(migrate(world.store.database)) == [18]
    assert len(world.rows("SELECT 1 FROM bsn_women")) == 2
    assert kinds(world.find(bsn=ANNA)) == hits


def test_lines_stored_before_the_index_are_found_after_the_backfill(world: World) -> None:
    world.sql("UPDATE declaration_lines SET bsn_index = NULL")
    world.sql("DELETE FROM bsn_women")  # as a store from before version 11 has none
    fresh = SqlSearchStore(world.store.database, world.store.codec)
    hits, more = world.wait(fresh.search(SearchQuery(bsn=BEA), 100, reveal=False))
    assert not more
    assert (HitKind.LINE, "up-0001", 3) in kinds(hits)
    assert world.rows("SELECT count(*) FROM declaration_lines WHERE bsn_index IS NULL") == [(0,)]


def test_a_line_shows_its_pregnancy_claim_and_case(world: World) -> None:
    (hit,) = [h for h in world.find(reference="REF-up-0001-1") if h.kind is HitKind.LINE]
    assert hit.pregnancy == "preg-anna"
    assert hit.state == "claimed"
    assert hit.factuurnummer == "F-1"
    assert hit.participant == KRAAM
    assert hit.insurer == "3311"
    assert hit.on == date(2026, 1, 11)
    assert hit.case_id == case_id(CaseKind.PARKED, "out-0001")  # its claim's file is parked


def test_a_factuurnummer_finds_the_upload_and_its_lines(world: World) -> None:
    assert sorted(kinds(world.find(factuurnummer="F-1"))) == sorted(
        [
            (HitKind.LINE, "up-0001", 1),
            (HitKind.LINE, "up-0001", 2),
            (HitKind.LINE, "up-0001", 3),
            (HitKind.UPLOAD, "up-0001", None),
        ]
    )
    claim_hits = world.find(factuurnummer="IGO-F-1")
    assert sorted(kinds(claim_hits)) == sorted(
        [
            (HitKind.LINE, "up-0001", 1),
            (HitKind.LINE, "up-0001", 2),
            (HitKind.OUTBOUND, "out-0001", None),
            (HitKind.CLAIM, "out-0001", 2),
        ]
    )
    claim = next(h for h in claim_hits if h.kind is HitKind.CLAIM)
    assert (claim.pregnancy, claim.state, claim.participant) == ("preg-anna", "parked", IGO)
    assert claim.case_id == case_id(CaseKind.PARKED, "out-0001")


def test_keys_combine_and_dates_are_prestatie_dates_for_lines(world: World) -> None:
    hits = world.find(bsn=ANNA, participant=KRAAM)
    assert (HitKind.LINE, "up-0002", 1) not in kinds(hits)
    assert (HitKind.LINE, "up-0001", 1) in kinds(hits)
    in_range = world.find(bsn=ANNA, date_from=date(2026, 1, 12), date_to=date(2026, 1, 25))
    assert sorted(k for k in kinds(in_range) if k[0] is HitKind.LINE) == [
        (HitKind.LINE, "up-0001", 2),
        (HitKind.LINE, "up-0002", 1),
    ]
    # Messages by the day they were stored: nothing was stored in January.
    assert all(h.kind is HitKind.LINE for h in in_range)
    stored_day = world.find(participant=MIDWIFE, date_from=T0.date(), date_to=T0.date())
    assert kinds(stored_day) == [(HitKind.UPLOAD, "up-0002", None)]
    assert world.find(participant=MIDWIFE, insurer="9999") == []


def test_a_retourcode_finds_the_rejection_its_retour_and_rejected_lines(world: World) -> None:
    rejected = world.find(retourcode="0040")
    assert kinds(rejected) == [(HitKind.UPLOAD, "up-0003", None)]
    assert rejected[0].case_id == case_id(CaseKind.INTAKE_REJECTED, "up-0003")
    assert rejected[0].state == MessageStatus.REJECTED.value
    assert kinds(world.find(retourcode="0001")) == [(HitKind.RETOUR, "ret-0003", None)]
    (bea,) = world.find(retourcode="8002")
    assert (bea.kind, bea.record_number, bea.outcome) == (HitKind.LINE, 3, "rejected")
    assert bea.retourcodes == ("8001", "8002")
    assert world.find(retourcode="800") == []  # a code is matched whole


def test_a_traceer_id_finds_the_message_and_the_retours_answering_it(world: World) -> None:
    assert sorted(kinds(world.find(traceer_id="up-0003"))) == sorted(
        [
            (HitKind.RETOUR, "ret-0003", None),
            (HitKind.UPLOAD, "up-0003", None),
        ]
    )


def test_results_are_newest_first_and_bounded(world: World) -> None:
    hits, more = world.wait(world.search.search(SearchQuery(insurer="3311"), 3, reveal=False))
    assert more
    assert len(hits) == 3
    every, more_all = world.wait(
        world.search.search(SearchQuery(insurer="3311"), 100, reveal=False)
    )
    assert not more_all
    assert hits == every[:3]
    order = [(h.on, h.at) for h in every]
    assert order == sorted(order, reverse=True)


def test_a_case_stays_linked_once_it_was_retried(world: World) -> None:
    world.sql("UPDATE outbound SET state = 'queued' WHERE traceer_id = 'out-0001'")
    assert {h.case_id for h in world.find(factuurnummer="IGO-F-1")} == {None}
    world.sql(
        "INSERT INTO admin_cases (case_id, kind, ref, state, reason, changed_at, changed_by)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        "parked:out-0001",
        "parked",
        "out-0001",
        "retried",
        "",
        T0,
        "otto",
    )
    hits = world.find(factuurnummer="IGO-F-1")
    assert {h.case_id for h in hits} == {case_id(CaseKind.PARKED, "out-0001")}
    assert len(hits) == 4


def test_an_upload_names_the_insurers_of_its_lines(world: World) -> None:
    (hit,) = [h for h in world.find(factuurnummer="F-2") if h.kind is HitKind.UPLOAD]
    assert (hit.participant, hit.insurer, hit.factuurnummer) == (MIDWIFE, "3311", "F-2")


def test_a_claim_in_review_links_its_lines_and_itself_to_the_rejection_case(
    world: World,
) -> None:
    world.sql("UPDATE outbound SET state = 'answered' WHERE traceer_id = 'out-0001'")
    world.sql(
        "UPDATE declaration_lines SET outcome = 'review', outcome_codes = '8100'"
        " WHERE claim_reference = 'IGO-REF-1'"
    )
    hits = [h for h in world.find(reference="IGO-REF-1") if h.kind in (HitKind.LINE, HitKind.CLAIM)]
    assert len(hits) == 3
    assert {h.case_id for h in hits} == {case_id(CaseKind.REJECTED_LINE, "IGO-REF-1")}
