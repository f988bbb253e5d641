"""Never claim twice: bundling runs forced to overlap, on SQLite and PostgreSQL.

Each test holds run A at its pause point ("decided": it has read the open lines, decided
and built its claim file, and recorded nothing yet) while run B goes, then lets A go on.
Nothing waits on time to decide the outcome: A is released only once B has done what the
test needs (finished, or been seen waiting for the lease).

* Without the lease (two bundlers that share no lock) the second guard alone holds: A's
  lines are no longer at the revision it read, so A's outcome is not stored and A decides
  again — and finds nothing left to claim.
* With the lease, B waits for A and then finds nothing to claim.
* With A's lease taken from it (by hand, as an expiry would), B claims; A's recording is
  refused for the lost lease and A decides again.

After each, :func:`check_claimed_once` checks the invariants: one live integral line per
(pregnancy, phase, insurer), every original line in at most one live claim, every claim
file queued once with a factuurnummer of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater

from adapters.storage import SqlMessageStore, Transaction, open_store
from adapters.storage.blocking import Blocking
from gateway.bundler import BUNDLING_JOB, BundlePlan, Bundler
from gateway.intake import Intake
from gateway.jobs import JobLock
from gateway.metrics import Metrics
from gateway.pausepoints import ENVIRONMENT_VARIABLE, PausePointError, pause_point_from_environment
from gateway.ports.bundling import BundleConflictError
from gateway.ports.intake import Upload
from gateway.ports.jobs import Leases
from gateway.vsp import send_metadata
from tests.conftest import with_search_path
from tests.gateway.test_bundler import CATALOGUE, FILES, MESSAGES, NOW, REGISTRY, TERMS

ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
PHASES = 6  # the fixtures' women have six phases to claim, all with one insurer


@pytest.fixture(params=ENGINES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'g.db'}"
    pg: str = request.getfixturevalue("pg_url")
    return pg


@pytest.fixture
def run() -> Blocking:
    return Blocking()


def _upload_fixtures(store: SqlMessageStore, run: Blocking) -> None:
    intake = Intake(store, REGISTRY, clock=lambda: NOW, run_in_thread=lambda f: defer.succeed(f()))
    for agb, (discipline, name) in FILES.items():
        metadata = send_metadata(agb, "EI")
        receipt = run.wait(
            intake.receive(Upload(agb, discipline, metadata, (MESSAGES / name).read_bytes()))
        )
        assert receipt.code is None, receipt


@pytest.fixture
def stores(url: str, run: Blocking) -> Iterator[tuple[SqlMessageStore, SqlMessageStore]]:
    """Two stores on one database: two gateway processes, as far as the store can tell."""
    first = run.wait(open_store(url, run))
    second = run.wait(open_store(url, run))
    _upload_fixtures(first, run)
    yield first, second
    run.wait(first.close())
    run.wait(second.close())


class Gate:
    """A pause point that holds the first run reaching "decided" until :meth:`open`."""

    def __init__(self) -> None:
        self.reached = False
        self._gate: Deferred[None] = Deferred()

    def __call__(self, point: str) -> Awaitable[None]:
        if point != "decided" or self.reached:
            return defer.succeed(None)
        self.reached = True
        return self._gate

    def open(self) -> None:
        self._gate.callback(None)


class CountingLeases:
    """The store's leases, counting the tries (to see a run waiting for the lease)."""

    def __init__(self, leases: Leases) -> None:
        self.leases = leases
        self.refused = 0

    async def try_acquire(self, job: str, holder: str, seconds: float) -> str | None:
        other = await self.leases.try_acquire(job, holder, seconds)
        if other is not None:
            self.refused += 1
        return other

    def renew(self, job: str, holder: str, seconds: float) -> Awaitable[bool]:
        return self.leases.renew(job, holder, seconds)

    def release(self, job: str, holder: str) -> Awaitable[None]:
        return self.leases.release(job, holder)


def bundler(
    store: SqlMessageStore,
    *,
    lock: JobLock | None = None,
    gate: Gate | None = None,
    metrics: Metrics | None = None,
) -> Bundler:
    return Bundler(
        store,
        store.bundles,
        REGISTRY,
        CATALOGUE,
        TERMS,
        now=lambda: NOW,
        lock=lock,
        checkpoint=gate,
        metrics=metrics,
    )


def _claims_txn(txn: Transaction) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for name, sql in {
        "claims": "SELECT reference, pregnancy, phase, insurer, credits FROM integral_claims",
        "absorbs": "SELECT reference, traceer_id, record_number FROM claim_absorbs",
        "outbound": "SELECT o.traceer_id, m.invoice_number FROM outbound o"
        " JOIN messages m ON m.traceer_id = o.traceer_id",
        "open": "SELECT traceer_id, record_number FROM declaration_lines WHERE state = 'open'",
    }.items():
        txn.execute(sql)
        out[name] = list(txn.fetchall())
    return out


def check_claimed_once(store: SqlMessageStore, run: Blocking) -> list[str]:
    """The invariants of "never claim twice", read from the store; the problems found."""
    rows = run.wait(store.database.run_read("claims-view", _claims_txn))
    credited = {c[4] for c in rows["claims"] if c[4] is not None}
    live = [c for c in rows["claims"] if c[4] is None and c[0] not in credited]
    problems = []
    per_phase: dict[tuple[str, str, str], int] = {}
    for _, pregnancy, phase, insurer, _ in live:
        per_phase[(pregnancy, phase, insurer)] = per_phase.get((pregnancy, phase, insurer), 0) + 1
    problems += [f"{key} claimed {n} times" for key, n in per_phase.items() if n > 1]
    live_refs = {c[0] for c in live}
    per_line: dict[tuple[str, int], int] = {}
    for reference, traceer_id, number in rows["absorbs"]:
        if reference in live_refs:
            key = (traceer_id, int(number))
            per_line[key] = per_line.get(key, 0) + 1
    problems += [f"line {key} in {n} live claims" for key, n in per_line.items() if n > 1]
    invoices = [invoice for _, invoice in rows["outbound"] if invoice is not None]
    if len(invoices) != len(set(invoices)):
        problems.append(f"factuurnummers {invoices}")
    return problems


def _summary(store: SqlMessageStore, run: Blocking) -> tuple[int, int, int]:
    """Live integral lines, claim files queued, lines still open."""
    rows = run.wait(store.database.run_read("claims-view", _claims_txn))
    return len(rows["claims"]), len(rows["outbound"]), len(rows["open"])


def test_a_run_whose_lines_were_claimed_meanwhile_is_not_stored_and_decides_again(
    stores: tuple[SqlMessageStore, SqlMessageStore], run: Blocking
) -> None:
    a_store, b_store = stores
    gate = Gate()
    metrics = Metrics()
    a = Deferred.fromCoroutine(bundler(a_store, gate=gate, metrics=metrics).run_once())
    run.wait(_until(lambda: gate.reached, run))
    assert not a.called  # A decided and built, recorded nothing
    b_plan: BundlePlan = run.wait(bundler(b_store).run_once())
    assert len(b_plan.claims) == 1
    gate.open()
    a_plan: BundlePlan = run.wait(a)
    assert a_plan.claims == []  # decided again: nothing left
    assert metrics.bundling_conflicts._value.get() == 1
    assert check_claimed_once(a_store, run) == []
    assert _summary(a_store, run) == (PHASES, 1, 0)


def test_a_second_run_waits_for_the_lease_then_finds_nothing_to_claim(
    stores: tuple[SqlMessageStore, SqlMessageStore], run: Blocking
) -> None:
    a_store, b_store = stores
    gate = Gate()
    a_lock = JobLock(a_store.leases, BUNDLING_JOB, run, seconds=30)
    b_leases = CountingLeases(b_store.leases)
    b_lock = JobLock(b_leases, BUNDLING_JOB, run, seconds=30)
    a = Deferred.fromCoroutine(bundler(a_store, lock=a_lock, gate=gate).run_once())
    run.wait(_until(lambda: gate.reached, run))
    b = Deferred.fromCoroutine(bundler(b_store, lock=b_lock).run_once())
    run.wait(_until(lambda: b_leases.refused >= 2, run))  # B asked, and asked again
    assert not b.called
    gate.open()
    a_plan: BundlePlan = run.wait(a)
    b_plan: BundlePlan = run.wait(b)
    assert len(a_plan.claims) == 1
    assert b_plan.claims == []
    assert check_claimed_once(a_store, run) == []
    assert _summary(a_store, run) == (PHASES, 1, 0)


def test_a_run_that_lost_its_lease_is_not_stored(
    stores: tuple[SqlMessageStore, SqlMessageStore], run: Blocking
) -> None:
    a_store, b_store = stores
    gate = Gate()
    a_lock = JobLock(a_store.leases, BUNDLING_JOB, run, seconds=30)
    b_lock = JobLock(b_store.leases, BUNDLING_JOB, run, seconds=30)
    a = Deferred.fromCoroutine(bundler(a_store, lock=a_lock, gate=gate).run_once())
    run.wait(_until(lambda: gate.reached, run))
    # By hand (as an expiry would): the lease is gone from under A.
    run.wait(a_store.database.run_interaction("drop-lease", _drop_lease_txn))
    b_plan: BundlePlan = run.wait(bundler(b_store, lock=b_lock).run_once())
    assert len(b_plan.claims) == 1
    gate.open()
    a_plan: BundlePlan = run.wait(a)
    assert a_plan.claims == []
    assert check_claimed_once(a_store, run) == []
    assert _summary(a_store, run) == (PHASES, 1, 0)


def test_a_run_that_keeps_conflicting_gives_up_and_stores_nothing(
    stores: tuple[SqlMessageStore, SqlMessageStore], run: Blocking
) -> None:
    a_store, _ = stores

    class Meddling(Gate):
        """Every time A has decided, a hand changes one of its lines."""

        def __call__(self, point: str) -> Awaitable[None]:
            return a_store.database.run_interaction("meddle", _meddle_txn)

    with pytest.raises(BundleConflictError):
        run.wait(bundler(a_store, gate=Meddling()).run_once())
    assert _summary(a_store, run)[:2] == (0, 0)


def test_sequence_numbers_are_never_handed_out_twice(
    stores: tuple[SqlMessageStore, SqlMessageStore], run: Blocking
) -> None:
    a, b = stores
    reservations = [(a if n % 2 else b).bundles.reserve("race", 1 + n % 3) for n in range(60)]
    numbers: list[int] = []
    for n, reservation in enumerate(reservations):
        first = run.wait(reservation)
        numbers += range(first, first + 1 + n % 3)
    assert sorted(numbers) == list(range(1, len(numbers) + 1))


def _drop_lease_txn(txn: Transaction) -> None:
    txn.execute("DELETE FROM job_leases")


def _meddle_txn(txn: Transaction) -> None:
    txn.execute(
        "UPDATE declaration_lines SET revision = revision + 1 WHERE record_number = ("
        " SELECT MIN(record_number) FROM declaration_lines)"
    )


async def _until_async(condition: Any, run: Blocking) -> None:
    while not condition():
        await deferLater(run, 0.01, lambda: None)


def _until(condition: Any, run: Blocking) -> Deferred[None]:
    """Fires once ``condition()`` holds, checked while the stand-in reactor runs."""
    return Deferred.fromCoroutine(_until_async(condition, run))


def test_no_pause_point_is_armed_without_the_variable(tmp_path: Path) -> None:
    assert pause_point_from_environment({}) is None
    with pytest.raises(PausePointError):
        pause_point_from_environment({ENVIRONMENT_VARIABLE: "nowhere"})
    assert pause_point_from_environment({ENVIRONMENT_VARIABLE: f"decided:{tmp_path}"})


# --- random interleavings ------------------------------------------------------------------

UPLOADS = [*FILES.items(), ("33001234", ("kraamzorg", "kz301-correction-credit.asc"))]
STEP = st.one_of(
    st.tuples(st.just("upload"), st.integers(0, len(UPLOADS) - 1)),
    st.tuples(st.sampled_from(["start", "start-paused", "release"]), st.integers(0, 1)),
)


def _live_claims_txn(txn: Transaction) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    txn.execute("SELECT traceer_id, record_number, state FROM declaration_lines")
    lines = list(txn.fetchall())
    txn.execute(
        "SELECT a.traceer_id, a.record_number, c.reference FROM claim_absorbs a"
        " JOIN integral_claims c ON c.reference = a.reference WHERE c.credits IS NULL"
        " AND c.reference NOT IN"
        " (SELECT credits FROM integral_claims WHERE credits IS NOT NULL)"
    )
    return lines, list(txn.fetchall())


def _release(gates: list[Gate | None], wanted: tuple[int, ...], run: Blocking) -> None:
    """Let the runs ``wanted`` go on from their pause points, each once it got there (one
    waiting for the other's lease gets there after the other went on)."""
    while pending := [n for n in wanted if gates[n] is not None]:
        run.wait(_until(lambda: any(g.reached for n in pending if (g := gates[n])), run))
        for n in pending:
            gate = gates[n]
            if gate is not None and gate.reached:
                gate.open()
                gates[n] = None


def _interleave(url: str, steps: list[tuple[str, int]], locked: bool) -> None:
    run = Blocking()
    stores = [run.wait(open_store(url, run)), run.wait(open_store(url, run))]
    intake = Intake(
        stores[0], REGISTRY, clock=lambda: NOW, run_in_thread=lambda f: defer.succeed(f())
    )
    uploaded: set[int] = set()
    running: list[Deferred[BundlePlan] | None] = [None, None]
    gates: list[Gate | None] = [None, None]
    try:
        for kind, n in steps:
            if kind == "upload" and n not in uploaded:
                uploaded.add(n)
                agb, (discipline, name) = UPLOADS[n]
                metadata = send_metadata(agb, "EI")
                data = (MESSAGES / name).read_bytes()
                run.wait(intake.receive(Upload(agb, discipline, metadata, data)))
            elif kind.startswith("start") and running[n] is None:
                gate = Gate() if kind == "start-paused" else None
                lock = JobLock(stores[n].leases, BUNDLING_JOB, run, seconds=30) if locked else None
                gates[n] = gate
                running[n] = Deferred.fromCoroutine(
                    bundler(stores[n], lock=lock, gate=gate).run_once()
                )
            elif kind == "release" and running[n] is not None:
                # Run n may wait for the lease of the other, paused: that one goes on too.
                _release(gates, (0, 1) if locked else (n,), run)
                run.wait(running[n])  # type: ignore[arg-type]
                running[n] = None
        _release(gates, (0, 1), run)
        for n in (0, 1):
            if running[n] is not None:
                run.wait(running[n])  # type: ignore[arg-type]
        run.wait(bundler(stores[0]).run_once())  # whatever is left
        assert check_claimed_once(stores[0], run) == []
        lines, absorbed = run.wait(stores[0].database.run_read("live", _live_claims_txn))
        claims_of: dict[tuple[str, int], int] = {}
        for traceer_id, number, _ in absorbed:
            claims_of[(traceer_id, int(number))] = claims_of.get((traceer_id, int(number)), 0) + 1
        for traceer_id, number, state in lines:
            held = claims_of.get((traceer_id, int(number)), 0)
            # Absorbed: in exactly one live claim. Never in two. (A line cancelled by a
            # correction that left its phase's integral line as it was stays in the one
            # claim that absorbed it.)
            assert held == 1 if state == "absorbed" else held <= 1, (traceer_id, number, state)
    finally:
        for store in stores:
            run.wait(store.close())


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(steps=st.lists(STEP, max_size=12), locked=st.booleans())
def test_random_interleavings_claim_every_line_once_sqlite(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, int]], locked: bool
) -> None:
    url = f"sqlite:///{tmp_path_factory.mktemp('race') / 'g.db'}"
    _interleave(url, steps, locked)


@pytest.mark.postgres
@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
@given(steps=st.lists(STEP, max_size=12), locked=st.booleans())
def test_random_interleavings_claim_every_line_once_postgres(
    postgres_url: str, steps: list[tuple[str, int]], locked: bool
) -> None:
    schema = f"race_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        _interleave(with_search_path(postgres_url, schema), steps, locked)
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
