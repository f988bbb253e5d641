"""Bulk-action batches on SQLite and PostgreSQL, driven through the bulk service: the
preview and its digest, the run (each case its own audited action), skipped and failed
cases, pause/resume/cancel, permissions, and resuming from the store after a restart."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from adapters.admin.demo import SeededCases, seed_cases, seed_parked
from adapters.storage import SqlMessageStore, open_store
from adapters.storage import batches as sql_batches
from adapters.storage.admin import SqlAdminStore
from adapters.storage.batches import SqlBatchStore
from gateway.admin.accounts import Actor, Role
from gateway.admin.batches import BatchControl, BatchState, ItemOutcome
from gateway.admin.bulk import BatchRunner, BulkService
from gateway.admin.cases import (
    ActionRefusedError,
    CaseAction,
    CaseFilter,
    CaseKind,
    CaseState,
    case_id,
)
from gateway.admin.metrics import BulkMetrics
from gateway.admin.service import AdminService
from gateway.ei import LayoutRegistry
from gateway.errors import ErrorKind
from gateway.loading import load_layouts
from gateway.ports.admin import NotAllowedError, SelectionChangedError
from gateway.ports.messages import StoreError
from gateway.ports.outbox import OutboundState
from tests.threadpump import ThreadPump

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
BEA = Actor("bea", Role.ADMINISTRATOR, "10.0.0.7")
DOWN = "4444"  # the insurer that was down
PARKED_4444 = CaseFilter(kinds=frozenset({CaseKind.PARKED}), insurer=DOWN)


@pytest.fixture(scope="module")
def layouts() -> LayoutRegistry:
    return load_layouts()


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    pump: ThreadPump
    url: str
    store: SqlMessageStore
    bulk: BulkService
    admin_service: AdminService
    clock: Clock
    seeded: SeededCases
    down: list[str]  # traceer ids parked for the insurer that was down
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def wait(self, awaitable: Any) -> Any:
        return self.pump.wait(awaitable)

    def open(self) -> None:
        """(Re)open the store and build the services on it, as ``serve`` does."""
        self.store = self.wait(open_store(self.url, self.pump))
        admin = SqlAdminStore(self.store.database)
        self.registry = CollectorRegistry()
        self.bulk = BulkService(
            admin, SqlBatchStore(self.store.database), self.clock, BulkMetrics(self.registry)
        )
        self.admin_service = AdminService(admin, self.store, None, self.clock)

    def create(self, query: CaseFilter, action: CaseAction, reason: str = "") -> Any:
        preview = self.wait(self.bulk.preview(BEA, query, action, reason))
        return self.wait(self.bulk.create(BEA, query, action, reason, preview.digest))

    def run(self, steps: int = 100) -> int:
        return int(self.wait(BatchRunner(self.bulk, steps).run_once()))

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def outbound_state(self, traceer_id: str) -> OutboundState:
        outbound = self.wait(self.store.outbox.get(traceer_id))
        assert outbound is not None
        return outbound.state  # type: ignore[no-any-return]

    def audit(self) -> list[Any]:
        return self.wait(self.bulk.admin.audit_entries())  # type: ignore[no-any-return]


@pytest.fixture
def world(sql_url: str, pump: ThreadPump, layouts: LayoutRegistry) -> Iterator[World]:
    w = World(pump, sql_url, None, None, None, Clock(), None, [])  # type: ignore[arg-type]
    w.open()
    w.seeded = pump.wait(seed_cases(w.store, layouts, T0))
    w.down = pump.wait(seed_parked(w.store, layouts, T0, tag="down", insurer=DOWN, count=3))
    w.clock.now = T0 + timedelta(hours=1)
    try:
        yield w
    finally:
        pump.wait(w.store.close())


def test_the_preview_says_which_cases_the_action_fits_and_which_it_leaves_out(
    world: World,
) -> None:
    preview = world.wait(world.bulk.preview(BEA, CaseFilter(insurer=DOWN), CaseAction.RETRY, ""))
    assert preview.case_ids == [case_id(CaseKind.PARKED, ref) for ref in world.down]
    assert preview.kinds == {CaseKind.PARKED: 3}
    assert preview.left_out == 0
    # Every open case, retried: only the parked ones fit; the others are left out.
    every = world.wait(world.bulk.preview(BEA, CaseFilter(), CaseAction.RETRY, ""))
    assert every.kinds == {CaseKind.PARKED: 4}
    assert every.left_out_kinds == {CaseKind.INTAKE_REJECTED: 1, CaseKind.UNMATCHED_RETOUR: 1}
    assert every.digest != preview.digest
    # Writing off fits every open case, and needs a reason.
    error = world.pump.wait_error(world.bulk.preview(BEA, CaseFilter(), CaseAction.WRITE_OFF, " "))
    assert isinstance(error, ActionRefusedError)
    assert error.code == "reden-ontbreekt"


def test_a_batch_retries_every_selected_case_each_with_its_own_audit_entry(
    world: World,
) -> None:
    batch = world.create(PARKED_4444, CaseAction.RETRY)
    assert (batch.state, batch.progress.remaining, batch.progress.total) == (
        BatchState.RUNNING,
        3,
        3,
    )
    # Nothing is done until the runner runs: the files are still parked.
    assert {world.outbound_state(ref) for ref in world.down} == {OutboundState.PARKED}
    assert world.run() == 4  # three cases, then the finish
    assert {world.outbound_state(ref) for ref in world.down} == {OutboundState.QUEUED}
    assert world.outbound_state(world.seeded.parked) is OutboundState.PARKED  # insurer 3311
    done = world.wait(world.bulk.batch(BEA, batch.id))
    assert done.state is BatchState.FINISHED
    assert (done.progress.done, done.progress.remaining) == (3, 0)
    assert [i.outcome for i in done.items] == [ItemOutcome.DONE] * 3
    entries = world.audit()
    retries = [e for e in entries if e.action == "retry"]
    assert [e.subject for e in retries] == [case_id(CaseKind.PARKED, r) for r in world.down]
    assert {(e.actor, e.role, e.origin) for e in retries} == {
        ("bea", "administrator", f"bulk:{batch.id}")
    }
    actions = [e.action for e in entries if e.subject == f"batch:{batch.id}"]
    assert actions == ["batch_created", "batch_finished"]
    created = next(e for e in entries if e.action == "batch_created")
    assert created.detail == "retry op 3 zaken (parked 3)"
    assert created.origin == "10.0.0.7"
    assert world.wait(world.admin_service.verify_audit()).intact
    # A finished batch runs no more.
    assert world.run() == 0
    assert world.metric("igo_gateway_admin_batches_total", action="retry") == 1
    labels = {"kind": "parked", "action": "retry", "outcome": "done"}
    assert world.metric("igo_gateway_admin_batch_cases_total", **labels) == 3
    assert world.metric("igo_gateway_admin_batches_finished_total") == 1


def test_a_case_that_no_longer_fits_is_skipped_with_the_reason(world: World) -> None:
    batch = world.create(PARKED_4444, CaseAction.RETRY)
    # Meanwhile someone retries one of them by hand.
    operator = Actor("otto", Role.OPERATOR, "10.0.0.8")
    first = case_id(CaseKind.PARKED, world.down[0])
    world.wait(world.admin_service.act(operator, first, CaseAction.RETRY, ""))
    world.run()
    done = world.wait(world.bulk.batch(BEA, batch.id))
    assert done.state is BatchState.FINISHED
    assert (done.progress.done, done.progress.skipped) == (2, 1)
    skipped = done.items[0]
    assert (skipped.case_id, skipped.outcome) == (first, ItemOutcome.SKIPPED)
    assert "past niet" in skipped.detail
    retries = [e for e in world.audit() if e.action == "retry" and e.subject == first]
    assert [e.actor for e in retries] == ["otto"]  # the batch did not do it again


def test_a_case_whose_action_breaks_fails_and_the_batch_goes_on(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = world.create(PARKED_4444, CaseAction.RETRY)
    real = sql_batches.act_txn  # type: ignore[attr-defined]
    broken = case_id(CaseKind.PARKED, world.down[1])

    def act_txn(txn: Any, case: str, *args: Any) -> Any:
        result = real(txn, case, *args)  # its writes are rolled back with the savepoint
        if case == broken:
            raise StoreError("the outbound row vanished")
        return result

    monkeypatch.setattr(sql_batches, "act_txn", act_txn)
    world.run()
    done = world.wait(world.bulk.batch(BEA, batch.id))
    assert [i.outcome for i in done.items] == [
        ItemOutcome.DONE,
        ItemOutcome.FAILED,
        ItemOutcome.DONE,
    ]
    assert done.items[1].detail == "Onverwachte fout (StoreError)."
    assert world.outbound_state(world.down[1]) is OutboundState.PARKED
    assert not [e for e in world.audit() if e.action == "retry" and e.subject == broken]
    assert done.state is BatchState.FINISHED


def test_pause_resume_and_cancel_are_audited_and_steer_the_runner(world: World) -> None:
    batch = world.create(PARKED_4444, CaseAction.RETRY)
    assert world.run(steps=1) == 1
    paused = world.wait(world.bulk.control(BEA, batch.id, BatchControl.PAUSE))
    assert paused.state is BatchState.PAUSED
    assert world.run() == 0  # a paused batch is left alone
    assert world.wait(world.bulk.batch(BEA, batch.id)).progress.remaining == 2
    error = world.pump.wait_error(world.bulk.control(BEA, batch.id, BatchControl.PAUSE))
    assert isinstance(error, ActionRefusedError)
    assert (error.code, error.kind) == ("batch-past-niet", ErrorKind.CONFLICT)
    world.wait(world.bulk.control(BEA, batch.id, BatchControl.RESUME))
    assert world.run(steps=1) == 1
    cancelled = world.wait(world.bulk.control(BEA, batch.id, BatchControl.CANCEL))
    assert cancelled.state is BatchState.CANCELLED
    assert (cancelled.progress.done, cancelled.progress.remaining) == (2, 1)
    assert world.run() == 0
    assert world.outbound_state(world.down[2]) is OutboundState.PARKED  # never done
    for control in ("pause", "resume", "cancel"):
        assert world.metric("igo_gateway_admin_batch_controls_total", control=control) == 1
    error = world.pump.wait_error(world.bulk.control(BEA, batch.id, BatchControl.RESUME))
    assert isinstance(error, ActionRefusedError)
    entries = [e for e in world.audit() if e.subject == f"batch:{batch.id}"]
    assert [(e.action, e.detail) for e in entries] == [
        ("batch_created", "retry op 3 zaken (parked 3)"),
        ("batch_paused", "na 1 van 3 zaken"),
        ("batch_resumed", "na 1 van 3 zaken"),
        ("batch_cancelled", "na 2 van 3 zaken"),
    ]


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
def test_only_an_administrator_makes_or_steers_a_batch(world: World, role: Role) -> None:
    other = Actor("someone", role, "10.0.0.9")
    batch = world.create(PARKED_4444, CaseAction.RETRY)
    for attempt in (
        world.bulk.preview(other, PARKED_4444, CaseAction.RETRY, ""),
        world.bulk.create(other, PARKED_4444, CaseAction.RETRY, "", "x"),
        world.bulk.control(other, batch.id, BatchControl.PAUSE),
    ):
        error = world.pump.wait_error(attempt)
        assert isinstance(error, NotAllowedError)
    # Seeing a batch's progress is for whoever sees the cases.
    assert world.wait(world.bulk.batch(other, batch.id)).id == batch.id
    assert [b.id for b in world.wait(world.bulk.list(other))] == [batch.id]
    assert world.wait(world.bulk.batch(BEA, batch.id)).state is BatchState.RUNNING


def test_a_changed_selection_is_refused_with_the_new_preview(
    world: World, layouts: LayoutRegistry
) -> None:
    preview = world.wait(world.bulk.preview(BEA, PARKED_4444, CaseAction.RETRY, ""))
    # Another file for that insurer is parked after the confirmation was shown.
    world.wait(seed_parked(world.store, layouts, T0, tag="late", insurer=DOWN))
    error = world.pump.wait_error(
        world.bulk.create(BEA, PARKED_4444, CaseAction.RETRY, "", preview.digest)
    )
    assert isinstance(error, SelectionChangedError)
    assert len(error.preview.cases) == 4
    assert world.wait(world.bulk.list(BEA)) == []
    empty = CaseFilter(insurer="9999")
    nothing = world.wait(world.bulk.preview(BEA, empty, CaseAction.RETRY, ""))
    error = world.pump.wait_error(
        world.bulk.create(BEA, empty, CaseAction.RETRY, "", nothing.digest)
    )
    assert isinstance(error, ActionRefusedError)
    assert error.code == "lege-selectie"


def test_a_write_off_batch_keeps_its_one_reason_on_every_case(world: World) -> None:
    batch = world.create(PARKED_4444, CaseAction.WRITE_OFF, "  Verzekeraar declareert op papier ")
    assert batch.reason == "Verzekeraar declareert op papier"
    world.run()
    queue = world.wait(
        world.admin_service.queue(BEA, CaseFilter(insurer=DOWN, include_closed=True))
    )
    assert {c.state for c in queue.cases} == {CaseState.WRITTEN_OFF}
    assert {c.record.reason for c in queue.cases if c.record} == {
        "Verzekeraar declareert op papier"
    }


def test_a_batch_goes_on_after_a_restart_without_doing_a_case_twice(world: World) -> None:
    batch = world.create(PARKED_4444, CaseAction.RETRY)
    assert world.run(steps=1) == 1
    world.wait(world.store.close())
    world.open()  # a new process: nothing but the store
    assert world.wait(world.bulk.batch(BEA, batch.id)).progress.remaining == 2
    world.run()
    done = world.wait(world.bulk.batch(BEA, batch.id))
    assert done.state is BatchState.FINISHED
    assert done.progress.done == 3
    retries = [e.subject for e in world.audit() if e.action == "retry"]
    assert sorted(retries) == sorted(case_id(CaseKind.PARKED, r) for r in world.down)
