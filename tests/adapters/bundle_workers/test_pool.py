"""Bundle workers: a run whose batches a worker process prepares stores what a run that
prepares them itself stores — on both engines, with a key file too — under the run's
lease; a worker that cannot prepare a batch (it fails, or ends) leaves that batch to the
bundler (one that ended is started anew for the next); the worker ends when it is stopped
and when the gateway's process dies."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import pytest
from twisted.internet.defer import Deferred
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher

from adapters.bundle_workers import BundleWorkers, WorkerSpec
from adapters.storage import SqlMessageStore, open_store
from adapters.storage.database import Transaction
from gateway.bundler import BUNDLING_JOB, BatchWorkerUnavailableError, BundleRun, PreparedBatch
from gateway.crypto import Keyring, new_key_file
from gateway.jobs import JobLock
from gateway.metrics import Metrics
from gateway.rules.model import Distribution
from tests.benchmarks.cycle import NOW
from tests.gateway.test_bundling_batches import (
    CATALOGUE,
    KRAAM,
    MIDWIFE,
    TERMS,
    WOMEN,
    backlog,
    bundler,
    claims,
    invoices,
    rows,
    take_in,
    upload_of,
)
from tests.threadpump import ThreadPump

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow  # each test starts a worker process (about a second)


@pytest.fixture
def pump() -> ThreadPump:
    return ThreadPump()


def _spec(url: str, key_file: Path | None = None) -> WorkerSpec:
    return WorkerSpec(url, key_file, CATALOGUE, TERMS, Distribution.DECLARED)


def _stored(store: SqlMessageStore, pump: ThreadPump) -> dict[str, Any]:
    """What a run stored: the claimed lines, the files queued and where each line ended."""
    return {
        "claims": claims(store, pump),
        "invoices": sorted(invoices(store, pump)),
        "files": sorted(
            rows(
                store,
                pump,
                "SELECT m.invoice_number, m.sha256, m.party FROM outbound o"
                " JOIN messages m ON m.traceer_id = o.traceer_id",
            )
        ),
        "lines": sorted(
            rows(
                store,
                pump,
                # by the participant's own reference (the uploads' traceerIds are new)
                "SELECT participant, reference, state, claim_reference, pregnancy, phase,"
                " revision FROM declaration_lines",
            )
        ),
    }


def _both(url_of: Any, pump: ThreadPump, keyring: Keyring | None, key_file: Path | None) -> None:
    """The same backlog bundled in batches by a worker, and by the bundler itself."""
    stored = []
    for name, with_worker in (("worker", True), ("itself", False)):
        url = url_of(name)
        store: SqlMessageStore = pump.wait(open_store(url, pump, keyring))
        workers = BundleWorkers(pump, _spec(url, key_file)) if with_worker else None
        try:
            backlog(store, pump)
            done: BundleRun = pump.wait(bundler(store, 1, workers=workers).run())
            assert done.batches == 3
            assert pump.wait(store.open_lines()) == []
            stored.append((done, _stored(store, pump)))
        finally:
            if workers is not None:
                workers.stop(wait=True)
                assert workers.started == 1  # one worker for the whole run
            pump.wait(store.close())
    (by_worker, worker_stored), (by_itself, itself_stored) = stored
    assert worker_stored == itself_stored
    assert worker_stored["files"]  # claim files queued, with the same bytes
    assert by_worker == by_itself  # the same tally: batches, numbers, lines by place


def test_a_run_prepared_by_a_worker_stores_what_the_bundler_itself_stores(
    tmp_path: Path, pump: ThreadPump
) -> None:
    _both(lambda name: f"sqlite:///{tmp_path / name}.db", pump, None, None)


def test_a_worker_opens_sealed_lines_with_the_gateway_s_key_file(
    tmp_path: Path, pump: ThreadPump
) -> None:
    key_file = tmp_path / "keys.toml"
    new_key_file(key_file, now=NOW)
    _both(lambda name: f"sqlite:///{tmp_path / name}.db", pump, Keyring.load(key_file), key_file)


@pytest.mark.postgres
def test_a_worker_prepares_batches_from_postgresql_too(
    pg_url: str, pump: ThreadPump, tmp_path: Path
) -> None:
    # The worker's run on PostgreSQL, the bundler's own on SQLite: the same result.
    _both(
        lambda name: pg_url if name == "worker" else f"sqlite:///{tmp_path / name}.db",
        pump,
        None,
        None,
    )


@pytest.fixture
def store(tmp_path: Path, pump: ThreadPump) -> Iterator[SqlMessageStore]:
    opened: SqlMessageStore = pump.wait(open_store(f"sqlite:///{tmp_path / 'g.db'}", pump))
    yield opened
    pump.wait(opened.close())


def _told(events: list[LogEvent]) -> list[str]:
    """The warnings logged, as text."""
    return [
        formatEvent(event)
        for event in events
        if event.get("log_level") is not None and event["log_level"].name == "warn"
    ]


def test_a_batch_a_worker_cannot_prepare_is_prepared_by_the_bundler(
    store: SqlMessageStore, pump: ThreadPump, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    backlog(store, pump)
    # A worker whose store cannot be opened fails every batch (and tries it again).
    workers = BundleWorkers(pump, _spec(f"sqlite:///{tmp_path / 'missing' / 'no.db'}"))
    metrics = Metrics()
    events: list[LogEvent] = []
    observe = cast(ILogObserver, events.append)
    globalLogPublisher.addObserver(observe)
    try:
        done: BundleRun = pump.wait(bundler(store, 1, workers=workers, metrics=metrics).run())
    finally:
        globalLogPublisher.removeObserver(observe)
        workers.stop(wait=True)
    assert done.batches == 3
    assert len(set(done.claim_files)) == 3
    assert pump.wait(store.open_lines()) == []
    told = [w for w in _told(events) if "bundle worker" in w]
    assert len(told) == 3  # each batch prepared here, and said so
    assert all("(StoreUnavailableError)" in w for w in told)  # the class only
    for bsn in (w.bsn for w in WOMEN):  # no client data in what is told
        assert not any(bsn in w for w in told)
    assert workers.started == 1  # the worker stays; each batch tries the store again
    assert "Traceback" not in capfd.readouterr().err  # the worker prints nothing
    assert metrics.bundle_batches_here._value.get() == 3  # counted for the operator


def test_a_worker_that_ended_is_started_anew_for_the_next_batch(
    store: SqlMessageStore, pump: ThreadPump, tmp_path: Path
) -> None:
    take_in(store, pump, MIDWIFE, upload_of(MIDWIFE, "VK-1", WOMEN[0:2]))
    take_in(store, pump, KRAAM, upload_of(KRAAM, "KZ-1", WOMEN[0:2]))
    workers = BundleWorkers(pump, _spec(f"sqlite:///{tmp_path / 'g.db'}"))
    try:
        first: PreparedBatch = pump.wait(workers.prepare([], 0, NOW, False), timeout=60)
        assert first.numbers == 0
        for child in multiprocessing.active_children():
            if "SpawnProcess" in child.name:
                os.kill(child.pid or 0, signal.SIGKILL)
        error = pump.wait_error(workers.prepare([], 0, NOW, False), timeout=60)
        assert isinstance(error, BatchWorkerUnavailableError)
        again: PreparedBatch = pump.wait(workers.prepare([], 0, NOW, False), timeout=60)
        assert again.numbers == 0
        assert workers.started == 2
    finally:
        workers.stop(wait=True)
    assert not [c for c in multiprocessing.active_children() if "SpawnProcess" in c.name]


class _LeaseTakenAway:
    """A worker before which the run's lease is taken away once (as an expiry would)."""

    def __init__(self, workers: BundleWorkers, store: SqlMessageStore) -> None:
        self.workers = workers
        self.store = store
        self.taken = False

    def prepare(
        self, women: Sequence[str], taken: int, now: datetime, arrivals: bool
    ) -> Deferred[PreparedBatch]:
        return Deferred.fromCoroutine(self._prepare(women, taken, now, arrivals))

    async def _prepare(
        self, women: Sequence[str], taken: int, now: datetime, arrivals: bool
    ) -> PreparedBatch:
        if not self.taken:
            self.taken = True
            await self.store.database.run_interaction("drop-lease", _drop_lease_txn)
        return await self.workers.prepare(women, taken, now, arrivals)


def _drop_lease_txn(txn: Transaction) -> None:
    txn.execute("DELETE FROM job_leases")


def test_a_batch_a_worker_prepared_is_recorded_under_the_run_s_lease(
    store: SqlMessageStore, pump: ThreadPump, tmp_path: Path
) -> None:
    backlog(store, pump)
    metrics = Metrics()
    lock = JobLock(store.leases, BUNDLING_JOB, pump, seconds=60)
    workers = BundleWorkers(pump, _spec(f"sqlite:///{tmp_path / 'g.db'}"))
    stealing = _LeaseTakenAway(workers, store)
    try:
        done: BundleRun = pump.wait(
            bundler(store, 1, workers=stealing, lock=lock, metrics=metrics).run(), timeout=60
        )
    finally:
        workers.stop(wait=True)
    # The first batch's recording was refused for the lost lease (its guard names the
    # run's lease, though the worker holds none); decided again, every batch stored once.
    assert metrics.bundling_conflicts._value.get() == 1
    assert done.batches == 3
    assert sorted(invoices(store, pump)) == sorted(done.claim_files)
    assert len(set(done.claim_files)) == 3
    assert pump.wait(store.open_lines()) == []


# A gateway's process that dies (as by SIGKILL) once its worker has prepared a batch.
DYING_GATEWAY = """
import multiprocessing, os, sys
from adapters.bundle_workers import BundleWorkers
from tests.adapters.bundle_workers.test_pool import _spec
from tests.benchmarks.cycle import NOW
from tests.threadpump import ThreadPump
pump = ThreadPump()
workers = BundleWorkers(pump, _spec(sys.argv[1]))
pump.wait(workers.prepare([], 0, NOW, False), 60)
print(*(child.pid for child in multiprocessing.active_children()), flush=True)
os._exit(0)
"""


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (a process ended but not reaped yet counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_a_worker_whose_gateway_died_ends_too(tmp_path: Path) -> None:
    # Output to a file: the worker shares it, and would hold a pipe open.
    out = tmp_path / "out.txt"
    with out.open("w") as sink:
        gateway = subprocess.Popen(
            [sys.executable, "-c", DYING_GATEWAY, f"sqlite:///{tmp_path / 'g.db'}"],
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.DEVNULL,
        )
        assert gateway.wait(timeout=120) == 0
    (pid,) = map(int, out.read_text().split())
    deadline = time.monotonic() + 30
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(pid)  # its input gone, it closed its store and ended
