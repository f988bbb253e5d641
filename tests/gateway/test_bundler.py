"""The bundler over a real store: the three participants' fixture declarations go through
the intake, and one run claims exactly what the rules predict — one integral prestatie per
phase per woman, in one KZ301 file declared by the IGO — stores it with its provenance,
queues it for the insurer, and settles every line; a second run claims nothing again."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from twisted.internet import defer
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher

from adapters.storage import SqlMessageStore, open_store
from gateway.bundler import Bundler
from gateway.ei import Record, read_records, validate_bytes
from gateway.intake import Intake
from gateway.loading import load_layouts
from gateway.metrics import Metrics
from gateway.ports.bundling import RunGuard
from gateway.ports.intake import Upload
from gateway.ports.outbox import OutboundState
from gateway.rules.claims import _INSURED_FIELDS
from gateway.rules.model import (
    Contract,
    InsurerTerms,
    Participant,
    Place,
    RuleSet,
    Settings,
    Terms,
    Variant,
)
from gateway.terms import load_catalogue
from gateway.vsp import send_metadata
from tests.factories import BSNS, kz301
from tests.gateway.rules.test_decide import TARIFFS
from tests.threadpump import ThreadPump

REGISTRY = load_layouts()
CATALOGUE = load_catalogue()
MESSAGES = Path(__file__).resolve().parents[2] / "fixtures" / "messages"
NOW = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
FILES = {
    "02001234": ("midwifery", "vk301-verloskunde-02001234.asc"),
    "33001234": ("kraamzorg", "kz301-kraamzorg-33001234.asc"),
    "06001234": ("hospital", "zh308-ziekenhuis-06001234.asc"),
}
ALWAYS = ((None, None, True),)
TERMS = Terms(
    Settings("53001234"),
    {agb: Participant(agb, Variant.A, ALWAYS) for agb in FILES},
    {
        "3311": InsurerTerms(
            "3311",
            {2026: Contract(2026, RuleSet.REGULAR_2023, TARIFFS, 0.0, frozenset(), True)},
            False,
        )
    },
)


@pytest.fixture
def pump() -> ThreadPump:
    return ThreadPump()


@pytest.fixture
def store(tmp_path: Path, pump: ThreadPump) -> Iterator[SqlMessageStore]:
    opened = pump.wait(open_store(f"sqlite:///{tmp_path / 'g.db'}", pump))
    intake = Intake(opened, REGISTRY, clock=lambda: NOW, run_in_thread=lambda f: defer.succeed(f()))
    for agb, (discipline, name) in FILES.items():
        metadata = send_metadata(agb, "EI")
        receipt = pump.wait(
            intake.receive(Upload(agb, discipline, metadata, (MESSAGES / name).read_bytes()))
        )
        assert receipt.code is None, receipt
    yield opened
    pump.wait(opened.close())


def bundler(store: SqlMessageStore) -> Bundler:
    return Bundler(store, store.bundles, REGISTRY, CATALOGUE, TERMS, now=lambda: NOW)


def test_a_dry_run_shows_the_claims_and_stores_nothing(
    store: SqlMessageStore, pump: ThreadPump
) -> None:
    plan = pump.wait(bundler(store).plan())
    (claim,) = plan.claims
    assert claim.invoice_number == "CONCEPT-0001"
    assert sorted(link.prestatie for link in claim.links) == sorted(
        ["IG0002", "IG0006", "IG0007", "IG0002", "IG0004", "IG0007"]
    )
    assert json.dumps(plan.summary())  # printable
    assert len(pump.wait(store.open_lines())) == 27
    assert pump.wait(store.outbox.counts()) == {}


def test_one_run_claims_every_phase_once_and_settles_every_line(
    store: SqlMessageStore, pump: ThreadPump
) -> None:
    plan = pump.wait(bundler(store).run_once())
    (claim,) = plan.claims
    assert claim.invoice_number == "IGO26-00001"
    checked = validate_bytes(REGISTRY, claim.payload)
    assert checked.valid, checked.findings
    records = [r for r in read_records(REGISTRY, [claim.payload]) if isinstance(r, Record)]
    assert records[0].text("praktijk_code") == "53001234"
    insured = [r for r in records if r.type == "02"]
    assert {r.text("surname") for r in insured} != {""}  # copied from the providers' files
    assert claim.total == 2 * 150000 + 120000 + 90000 + 2 * 100000
    assert plan.forwards == []
    assert {p.place for d in plan.decisions for p in d.placements.values()} == {Place.ABSORBED}
    assert pump.wait(store.open_lines()) == []
    assert pump.wait(store.outbox.counts()) == {("3311", OutboundState.QUEUED): 1}

    again = pump.wait(bundler(store).run_once())
    assert again.claims == []
    assert pump.wait(store.outbox.counts()) == {("3311", OutboundState.QUEUED): 1}


def test_a_participant_that_declares_itself_is_forwarded_in_its_own_file(
    store: SqlMessageStore, pump: ThreadPump
) -> None:
    kraam = "33001234"
    terms = Terms(
        TERMS.settings,
        {**TERMS.participants, kraam: Participant(kraam, Variant.A, ((None, None, False),))},
        TERMS.insurers,
    )
    bundler = Bundler(store, store.bundles, REGISTRY, CATALOGUE, terms, now=lambda: NOW)
    plan = pump.wait(bundler.run_once())
    (forward,) = plan.forwards
    assert (forward.participant, forward.insurer, forward.standard) == (kraam, "3311", "KZ301")
    checked = validate_bytes(REGISTRY, forward.payload)
    assert checked.valid, checked.findings
    records = [r for r in read_records(REGISTRY, [forward.payload]) if isinstance(r, Record)]
    assert records[0].text("praktijk_code") == kraam  # under its own AGB code
    original = (MESSAGES / FILES[kraam][1]).read_bytes()
    ours = {
        r.text("reference")
        for r in read_records(REGISTRY, [original])
        if isinstance(r, Record) and r.type == "04"
    }
    sent = {r.text("reference") for r in records if r.type == "04"}
    assert sent == ours  # every kraamzorg line, unchanged but for numbering
    (claim,) = plan.claims  # the midwife's and the hospital's care still claimed
    assert claim.links
    counts = pump.wait(store.outbox.counts())
    assert counts == {("3311", OutboundState.QUEUED): 2}


class _Broken:
    """A metric whose every use raises, as prometheus_client does for a negative
    increment of a counter."""

    def labels(self, *values: str) -> _Broken:
        raise ValueError("Counters can only be incremented by non-negative amounts.")


def test_a_run_whose_counting_fails_is_stored_and_the_log_says_so(
    store: SqlMessageStore, pump: ThreadPump
) -> None:
    metrics = Metrics()
    metrics.integral_claims = _Broken()  # type: ignore[assignment]
    counted = Bundler(
        store, store.bundles, REGISTRY, CATALOGUE, TERMS, now=lambda: NOW, metrics=metrics
    )
    events: list[LogEvent] = []
    observe = cast(ILogObserver, events.append)
    globalLogPublisher.addObserver(observe)
    try:
        plan = pump.wait(counted.run_once())
    finally:
        globalLogPublisher.removeObserver(observe)
    assert len(plan.claims) == 1
    assert pump.wait(store.outbox.counts()) == {("3311", OutboundState.QUEUED): 1}
    assert pump.wait(store.open_lines()) == []
    messages = [formatEvent(e) for e in events if e.get("log_failure") is not None]
    assert messages == ["a bundling run was stored, but counting it in the metrics failed"]


def test_a_forwarded_hospital_file_keeps_its_tariff_records_and_their_money(
    store: SqlMessageStore, pump: ThreadPump
) -> None:
    hospital = "06001234"
    terms = Terms(
        TERMS.settings,
        {**TERMS.participants, hospital: Participant(hospital, Variant.A, ((None, None, False),))},
        TERMS.insurers,
    )
    bundler = Bundler(store, store.bundles, REGISTRY, CATALOGUE, terms, now=lambda: NOW)
    plan = pump.wait(bundler.plan())
    (forward,) = plan.forwards
    assert (forward.participant, forward.standard) == (hospital, "ZH308")
    checked = validate_bytes(REGISTRY, forward.payload)
    assert checked.valid, checked.findings
    assert checked.layout is not None
    assert checked.layout.version == "08"  # the version the hospital sent
    records = [r for r in read_records(REGISTRY, [forward.payload]) if isinstance(r, Record)]
    assert [r.type for r in records] == ["01", "02", "04", "06", "06", "98", "99"]
    assert records[-1]["total_declared"] == 232445 + 57112


def test_factuurnummers_are_the_ones_reserved_even_when_an_insurer_before_waits(
    store: SqlMessageStore, pump: ThreadPump
) -> None:
    """An insurer with only waiting phases (here 0101, sorted before 3311) takes no number:
    the claim gets the one number the run reserved, so the next run's can never repeat it."""
    contract = TERMS.insurers["3311"].contracts[2026]
    terms = Terms(
        TERMS.settings,
        TERMS.participants,
        {**TERMS.insurers, "0101": InsurerTerms("0101", {2026: contract}, False)},
    )
    intake = Intake(store, REGISTRY, clock=lambda: NOW, run_in_thread=lambda f: defer.succeed(f()))
    waiting = kz301(REGISTRY, agb="33001234", invoice="W-1", bsn=BSNS[1]).replace(b"3311", b"0101")
    receipt = pump.wait(
        intake.receive(Upload("33001234", "kraamzorg", send_metadata("33001234", "EI"), waiting))
    )
    assert receipt.code is None, receipt
    run = Bundler(store, store.bundles, REGISTRY, CATALOGUE, terms, now=lambda: NOW)
    (claim,) = pump.wait(run.run_once()).claims
    assert claim.invoice_number == "IGO26-00001"
    assert pump.wait(store.bundles.reserve("igo-invoice", 1)) == 2


def _recorded(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """What a store holds of bundling's recording, table by table, in a fixed order."""
    queries = {
        "lines": "SELECT traceer_id, record_number, state, reason, retourcode, claim_reference,"
        " outbound, pregnancy, phase, decision FROM declaration_lines"
        " ORDER BY traceer_id, record_number",
        "statuses": "SELECT traceer_id, status, code, description FROM message_statuses"
        " ORDER BY traceer_id, at, status, description",
        "messages": "SELECT traceer_id, status FROM messages ORDER BY traceer_id",
        "claims": "SELECT reference, invoice_number, record_number, outbound, insurer,"
        " pregnancy, phase, prestatie, amount, credits FROM integral_claims ORDER BY reference",
        "absorbs": "SELECT reference, traceer_id, record_number FROM claim_absorbs"
        " ORDER BY reference, traceer_id, record_number",
    }
    with contextlib.closing(sqlite3.connect(path)) as db:
        return {name: db.execute(sql).fetchall() for name, sql in queries.items()}


def test_a_batch_recorded_under_its_guard_moves_and_reports_the_lines_as_one_read_anew(
    store: SqlMessageStore, pump: ThreadPump, tmp_path: Path
) -> None:
    """The state a settled line moves from is the guard's (just checked) or, without a
    guard, the one read: both record the same lines, claims and upload statuses."""
    # A line settled before (absorbed already) gets no new progress status for it.
    (settled_before, *_) = pump.wait(store.open_lines())
    with contextlib.closing(sqlite3.connect(tmp_path / "g.db")) as db, db:
        db.execute(
            "UPDATE declaration_lines SET state = 'absorbed' WHERE traceer_id = ?"
            " AND record_number = ?",
            (settled_before.traceer_id, settled_before.record_number),
        )
    calls: list[tuple[Any, ...]] = []
    recording = store.bundles.record_bundle

    def record(*args: Any) -> Any:
        calls.append(args)
        return recording(*args)

    pump.wait(store.close())
    shutil.copy(tmp_path / "g.db", tmp_path / "unguarded.db")
    guarded = pump.wait(open_store(f"sqlite:///{tmp_path / 'g.db'}", pump))
    unguarded = pump.wait(open_store(f"sqlite:///{tmp_path / 'unguarded.db'}", pump))
    try:
        recording = guarded.bundles.record_bundle
        guarded.bundles.record_bundle = record  # type: ignore[method-assign,assignment]
        pump.wait(bundler(guarded).run_once())
        ((outbound, claims, outcomes, at, decisions, retours, late, guard),) = calls
        assert isinstance(guard, RunGuard)
        assert guard.expected
        pump.wait(
            unguarded.bundles.record_bundle(
                outbound, claims, outcomes, at, decisions, retours, late, None
            )
        )
    finally:
        pump.wait(guarded.close())
        pump.wait(unguarded.close())
    ours, theirs = _recorded(tmp_path / "g.db"), _recorded(tmp_path / "unguarded.db")
    assert ours == theirs
    assert {state for _, _, state, *_ in ours["lines"]} == {"absorbed"}
    assert ours["claims"]
    assert ours["absorbs"]
    upload = settled_before.traceer_id
    count = sum(1 for line in ours["lines"] if line[0] == upload)
    (progress,) = [d for t, _, _, d in ours["statuses"] if t == upload and "Verwerkt" in str(d)]
    assert progress == f"Verwerkt: {count - 1} regel(s) integraal gedeclareerd."


def test_each_woman_of_a_claim_file_has_the_02_record_her_providers_sent(
    store: SqlMessageStore, pump: ThreadPump
) -> None:
    """The claim file repeats, per woman, the first 02 record of her BSN in an upload
    she is claimed from (every upload read once a batch)."""
    sent: dict[str, list[Record]] = {}
    for _, name in FILES.values():
        for record in read_records(REGISTRY, [(MESSAGES / name).read_bytes()]):
            if isinstance(record, Record) and record.type == "02":
                sent.setdefault(record.text("bsn"), []).append(record)
    plan = pump.wait(bundler(store).run_once())
    (claim,) = plan.claims
    claimed = [
        r
        for r in read_records(REGISTRY, [claim.payload])
        if isinstance(r, Record) and r.type == "02"
    ]
    assert claimed
    for record in claimed:
        bsn = record.text("bsn")
        assert any(
            all(record.get(name) == own.get(name) for name in _INSURED_FIELDS) for own in sent[bsn]
        ), bsn
        assert record.text("surname")
