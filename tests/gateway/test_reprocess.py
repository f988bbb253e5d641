"""Reprocessing an upload after a configuration fix: a file rejected at intake by a layout
since corrected is checked again and, valid now, its lines are stored once; an accepted
upload's open lines are refreshed from its file and its lines the rules returned with 9001
are decided again; never a second copy of a line, always an audit entry."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.storage import SqlMessageStore, Transaction, open_store
from adapters.storage.admin import SqlAdminStore
from adapters.storage.reprocess import SqlReprocessStore
from gateway.admin.accounts import Actor, Role
from gateway.admin.audit import AuditAction
from gateway.admin.cases import ActionRefusedError, CaseState
from gateway.ei import LayoutRegistry
from gateway.errors import ErrorKind
from gateway.intake import Intake
from gateway.loading import load_layouts
from gateway.ports.intake import Upload
from gateway.ports.messages import MessageStatus
from gateway.ports.reprocess import ReprocessOutcome
from gateway.reprocess import Reprocessor
from gateway.resources import schemas_dir
from gateway.vsp import send_metadata
from tests.threadpump import ThreadPump

REPO = Path(__file__).resolve().parents[2]
KZ301 = REPO / "fixtures" / "messages" / "kz301-kraamzorg-33001234.asc"
KRAAMZORG = "33001234"
NOW = datetime(2026, 9, 10, 12, 0, tzinfo=UTC)
OPERATOR = Actor("otto", Role.OPERATOR, "10.0.0.1")
VIEWER = Actor("vera", Role.VIEWER, "10.0.0.2")
REGISTRY = load_layouts()

ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture
def pump() -> ThreadPump:
    return ThreadPump()


@pytest.fixture(params=ENGINES)
def store(request: pytest.FixtureRequest, tmp_path: Path, pump: ThreadPump) -> Iterator[Any]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'gateway.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    opened = pump.wait(open_store(url, pump))
    yield opened
    pump.wait(opened.close())


@pytest.fixture(scope="module")
def wrong_layouts(tmp_path_factory: pytest.TempPathFactory) -> LayoutRegistry:
    """The layouts as misconfigured: KZ301 said to be version 3.1, so 3.2 files fail."""
    directory = tmp_path_factory.mktemp("layouts")
    for path in (schemas_dir() / "layouts").glob("*.xml"):
        shutil.copy(path, directory / path.name)
    wrong = directory / "KZ301-3.2.xml"
    wrong.write_text(
        wrong.read_text(encoding="utf-8").replace('subversion="02"', 'subversion="01"', 1),
        encoding="utf-8",
    )
    return load_layouts(directory)


async def _inline(work: Callable[[], Any]) -> Any:
    return work()


def receive(
    pump: ThreadPump, store: SqlMessageStore, registry: LayoutRegistry, payload: bytes
) -> str:
    return receive_as(pump, store, KRAAMZORG, "kraamzorg", payload, registry)


def receive_as(
    pump: ThreadPump,
    store: SqlMessageStore,
    agb: str,
    discipline: str,
    payload: bytes,
    registry: LayoutRegistry = REGISTRY,
) -> str:
    intake = Intake(store, registry, clock=lambda: NOW, run_in_thread=_inline)
    metadata = send_metadata(agb, "EI")
    receipt = pump.wait(intake.receive(Upload(agb, discipline, metadata, payload, "decl.asc")))
    return receipt.traceer_id


def reprocessor(store: SqlMessageStore, after: list[str] | None = None) -> Reprocessor:
    async def bundle_now() -> None:
        if after is not None:
            after.append("bundled")

    return Reprocessor(
        store,
        SqlReprocessStore(store.database, store.codec),
        REGISTRY,
        now=lambda: NOW,
        run_in_thread=_inline,
        after_change=bundle_now,
    )


def _count_txn(txn: Transaction, traceer_id: str) -> int:
    txn.execute("SELECT count(*) FROM declaration_lines WHERE traceer_id = ?", (traceer_id,))
    row = txn.fetchone()
    assert row is not None
    return int(row[0])


def line_count(pump: ThreadPump, store: SqlMessageStore, traceer_id: str) -> int:
    return pump.wait(store.database.run_read("count", _count_txn, traceer_id))


def test_a_file_rejected_by_a_layout_since_fixed_is_accepted_once(
    pump: ThreadPump, store: SqlMessageStore, wrong_layouts: LayoutRegistry
) -> None:
    traceer = receive(pump, store, wrong_layouts, KZ301.read_bytes())
    message = pump.wait(store.get_message(traceer))
    assert message is not None
    assert message.status is MessageStatus.REJECTED
    assert line_count(pump, store, traceer) == 0
    after: list[str] = []
    result = pump.wait(
        reprocessor(store, after).reprocess(traceer, OPERATOR, "KZ301-layout hersteld")
    )
    assert result.outcome is ReprocessOutcome.ACCEPTED
    lines = line_count(pump, store, traceer)
    assert lines > 0
    assert result.lines_added == lines
    assert after == ["bundled"]
    message = pump.wait(store.get_message(traceer))
    assert message is not None
    assert message.status is MessageStatus.RECEIVED
    assert message.invoice_number is not None
    history = pump.wait(store.statuses([traceer]))
    assert [s.status for s in history] == [MessageStatus.REJECTED, MessageStatus.RECEIVED]
    assert "opnieuw verwerkt" in history[-1].description.lower()
    # its intake case resolved itself; the reprocessing is in the audit log
    admin = SqlAdminStore(store.database, store.codec)
    case, _ = pump.wait(admin.case(f"intake_rejected:{traceer}")) or (None, None)
    assert case is not None
    assert case.state is CaseState.RESOLVED
    (entry,) = [
        e
        for e in pump.wait(admin.audit_entries(subject=traceer))
        if e.action == AuditAction.REPROCESS
    ]
    assert entry.actor == "otto"
    assert "KZ301-layout hersteld" in entry.detail
    # again: no second copy of its lines
    again = pump.wait(reprocessor(store).reprocess(traceer, OPERATOR, "nog eens"))
    assert again.outcome is ReprocessOutcome.REDECIDED
    assert again.lines_added == 0
    assert line_count(pump, store, traceer) == lines


def test_a_file_still_invalid_stays_rejected_and_the_attempt_is_audited(
    pump: ThreadPump, store: SqlMessageStore
) -> None:
    broken = (REPO / "fixtures" / "messages" / "invalid-0150-trailer-total.asc").read_bytes()
    traceer = receive(pump, store, REGISTRY, broken)
    result = pump.wait(reprocessor(store).reprocess(traceer, OPERATOR, "probeer"))
    assert result.outcome is ReprocessOutcome.STILL_REJECTED
    assert result.code == "0150"
    assert line_count(pump, store, traceer) == 0
    message = pump.wait(store.get_message(traceer))
    assert message is not None
    assert message.status is MessageStatus.REJECTED
    admin = SqlAdminStore(store.database, store.codec)
    assert [e.action for e in pump.wait(admin.audit_entries(subject=traceer))] == [
        AuditAction.REPROCESS
    ]


def test_a_factuurnummer_taken_meanwhile_keeps_it_rejected(
    pump: ThreadPump, store: SqlMessageStore, wrong_layouts: LayoutRegistry
) -> None:
    payload = KZ301.read_bytes()
    traceer = receive(pump, store, wrong_layouts, payload)
    # the participant sent it again from another EPD version (other bytes, the same
    # factuurnummer), and that was accepted
    other = receive(pump, store, REGISTRY, payload.replace(b"EPD 4.2", b"EPD 4.3", 1))
    assert other != traceer
    assert line_count(pump, store, other) > 0
    result = pump.wait(reprocessor(store).reprocess(traceer, OPERATOR, "layout"))
    assert result.outcome is ReprocessOutcome.INVOICE_TAKEN
    assert result.code == "0030"
    assert line_count(pump, store, traceer) == 0


def _mangle_txn(txn: Transaction, traceer_id: str) -> None:
    # first line: still open, stored before a fix of the line reader (its code lost);
    # second: returned by the rules with 9001 (participant outside its period, since fixed)
    txn.execute(
        "UPDATE declaration_lines SET prestatiecode = 'XXXX' WHERE traceer_id = ?"
        " AND record_number = (SELECT min(record_number) FROM declaration_lines"
        " WHERE traceer_id = ?)",
        (traceer_id, traceer_id),
    )
    txn.execute(
        "UPDATE declaration_lines SET state = 'returned', retourcode = '9001',"
        " reason = 'outside participation', outcome = 'rejected', outcome_codes = '9001'"
        " WHERE traceer_id = ? AND record_number = (SELECT max(record_number)"
        " FROM declaration_lines WHERE traceer_id = ?)",
        (traceer_id, traceer_id),
    )


def _lines_txn(txn: Transaction, traceer_id: str) -> list[tuple[Any, ...]]:
    txn.execute(
        "SELECT record_number, prestatiecode, state, retourcode, outcome, revision"
        " FROM declaration_lines WHERE traceer_id = ? ORDER BY record_number",
        (traceer_id,),
    )
    return [tuple(row) for row in txn.fetchall()]


def test_an_accepted_upload_has_its_open_lines_refreshed_and_9001_lines_decided_again(
    pump: ThreadPump, store: SqlMessageStore
) -> None:
    traceer = receive(pump, store, REGISTRY, KZ301.read_bytes())
    before = pump.wait(store.database.run_read("lines", _lines_txn, traceer))
    assert len(before) >= 2, "the fixture needs two lines"
    pump.wait(store.database.run_interaction("mangle", _mangle_txn, traceer))
    after: list[str] = []
    result = pump.wait(reprocessor(store, after).reprocess(traceer, OPERATOR, "deelnameperiode"))
    assert result.outcome is ReprocessOutcome.REDECIDED
    assert (result.lines_added, result.lines_refreshed, result.lines_reopened) == (0, 1, 1)
    assert after == ["bundled"]
    now = pump.wait(store.database.run_read("lines", _lines_txn, traceer))
    assert [row[:5] for row in now] == [row[:5] for row in before]  # as the file says, open
    assert all(row[2] == "open" for row in now)
    assert now[0][5] > before[0][5]
    assert now[-1][5] > before[-1][5]
    # read them before sees they changed


def _misread_hashes_txn(txn: Transaction, traceer_id: str) -> None:
    # the first line stored with a misread BSN: other hashes, and their pair for the search
    txn.execute(
        "UPDATE declaration_lines SET prestatiecode = 'XXXX', bsn_index = 'misread-bsn',"
        " woman = 'misread-woman' WHERE traceer_id = ? AND record_number = (SELECT"
        " min(record_number) FROM declaration_lines WHERE traceer_id = ?)",
        (traceer_id, traceer_id),
    )
    txn.execute("INSERT INTO bsn_women VALUES ('misread-bsn', 'misread-woman')")


def _pairs_txn(txn: Transaction, traceer_id: str) -> list[tuple[Any, ...]]:
    txn.execute(
        "SELECT DISTINCT l.bsn_index, l.woman, EXISTS (SELECT 1 FROM bsn_women b"
        " WHERE b.bsn_index = l.bsn_index AND b.woman = l.woman) FROM declaration_lines l"
        " WHERE l.traceer_id = ? ORDER BY 1, 2",
        (traceer_id,),
    )
    return [tuple(row) for row in txn.fetchall()]


def test_a_refreshed_line_gets_its_files_bsn_index_back(
    pump: ThreadPump, store: SqlMessageStore
) -> None:
    traceer = receive(pump, store, REGISTRY, KZ301.read_bytes())
    before = pump.wait(store.database.run_read("pairs", _pairs_txn, traceer))
    pump.wait(store.database.run_interaction("misread", _misread_hashes_txn, traceer))
    result = pump.wait(reprocessor(store).reprocess(traceer, OPERATOR, "deelnameperiode"))
    assert result.lines_refreshed == 1
    after = pump.wait(store.database.run_read("pairs", _pairs_txn, traceer))
    assert after == before
    assert all(linked for _, _, linked in after)
    assert pump.wait(store.database.run_read("misread", _misread_pairs_txn)) == []


def _misread_pairs_txn(txn: Transaction) -> list[tuple[Any, ...]]:
    txn.execute("SELECT * FROM bsn_women WHERE woman = 'misread-woman'")
    return [tuple(row) for row in txn.fetchall()]


def test_who_may_reprocess_and_what(pump: ThreadPump, store: SqlMessageStore) -> None:
    traceer = receive(pump, store, REGISTRY, KZ301.read_bytes())
    refused = pump.wait_error(reprocessor(store).reprocess(traceer, VIEWER, "x"))
    assert isinstance(refused, ActionRefusedError)
    assert refused.kind is ErrorKind.NOT_ALLOWED
    missing = pump.wait_error(reprocessor(store).reprocess("no-such-upload", OPERATOR, "x"))
    assert isinstance(missing, LookupError)
    empty = pump.wait_error(reprocessor(store).reprocess(traceer, OPERATOR, "  "))
    assert isinstance(empty, ActionRefusedError)
    assert empty.kind is ErrorKind.INVALID


def _places_txn(txn: Transaction, traceer_id: str) -> dict[str, int]:
    txn.execute(
        "SELECT state, count(*) FROM declaration_lines WHERE traceer_id = ? GROUP BY state",
        (traceer_id,),
    )
    return {str(row[0]): int(row[1]) for row in txn.fetchall()}


def test_lines_returned_for_a_wrong_participation_period_are_bundled_after_the_fix(
    pump: ThreadPump, store: SqlMessageStore
) -> None:
    from gateway.bundler import Bundler  # noqa: PLC0415 - only this test bundles
    from gateway.rules.model import (  # noqa: PLC0415
        Participant,
        Terms,
        Variant,
    )
    from tests.gateway.test_bundler import CATALOGUE, FILES, MESSAGES, TERMS  # noqa: PLC0415
    from tests.gateway.test_bundler import NOW as LATER  # noqa: PLC0415

    uploads = {
        agb: receive_as(pump, store, agb, discipline, (MESSAGES / name).read_bytes())
        for agb, (discipline, name) in FILES.items()
    }
    kraam = uploads[KRAAMZORG]
    no_forwarding = {
        uzovi: replace(
            insurer,
            contracts={
                year: replace(contract, forward_monodisciplinary=False)
                for year, contract in insurer.contracts.items()
            },
        )
        for uzovi, insurer in TERMS.insurers.items()
    }
    # misconfigured: the kraamzorg organisation joined only next year
    wrong = Terms(
        TERMS.settings,
        {
            **TERMS.participants,
            KRAAMZORG: Participant(KRAAMZORG, Variant.A, ((date(2027, 1, 1), None, True),)),
        },
        no_forwarding,
    )
    fixed = Terms(TERMS.settings, TERMS.participants, no_forwarding)

    def run(terms: Terms) -> None:
        bundler = Bundler(store, store.bundles, REGISTRY, CATALOGUE, terms, now=lambda: LATER)
        pump.wait(bundler.run_once())

    run(wrong)
    returned = pump.wait(store.database.run_read("places", _places_txn, kraam))
    assert set(returned) == {"returned"}
    result = pump.wait(reprocessor(store).reprocess(kraam, OPERATOR, "deelname 2026 hersteld"))
    assert result.lines_reopened == returned["returned"]
    run(fixed)
    after = pump.wait(store.database.run_read("places", _places_txn, kraam))
    assert set(after) == {"absorbed"}  # into the integral claim, as they should have been
    assert sum(after.values()) == returned["returned"]  # the same lines, not a copy


def test_two_reprocessings_at_once_store_the_lines_once(
    pump: ThreadPump, store: SqlMessageStore, wrong_layouts: LayoutRegistry
) -> None:
    from twisted.internet.defer import Deferred, gatherResults  # noqa: PLC0415

    traceer = receive(pump, store, wrong_layouts, KZ301.read_bytes())
    both = gatherResults(
        [
            Deferred.fromCoroutine(reprocessor(store).reprocess(traceer, OPERATOR, "een")),
            Deferred.fromCoroutine(reprocessor(store).reprocess(traceer, OPERATOR, "twee")),
        ]
    )
    results = pump.wait(both)
    assert sorted(r.outcome.value for r in results) == ["accepted", "redecided"]
    assert sum(r.lines_added for r in results) == line_count(pump, store, traceer) > 0
