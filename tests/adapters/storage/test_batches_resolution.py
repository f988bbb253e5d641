"""Bulk actions whose effect is prepared first (passing an insurer's rejection on, breaking
a bundle), on SQLite and PostgreSQL, on the real cycle of :mod:`test_resolution`: the
batch prepares each case's effect through the admin service, as a single case's action
does, and does it in the case's own transaction."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.storage.admin import SqlAdminStore
from adapters.storage.batches import SqlBatchStore
from gateway.admin.accounts import Actor, Role
from gateway.admin.batches import BatchState, ItemOutcome
from gateway.admin.bulk import BatchRunner, BulkService
from gateway.admin.cases import CaseAction, CaseFilter, CaseKind, CaseState
from tests.adapters.storage.test_resolution import Cycle, cycle, rejected  # noqa: F401

BEA = Actor("bea", Role.ADMINISTRATOR, "10.0.0.7")


def bulk_service(cycle: Cycle) -> BulkService:  # noqa: F811 - the fixture's value
    database = cycle.store.database
    return BulkService(
        SqlAdminStore(database, cycle.store.codec),
        SqlBatchStore(database, cycle.store.codec),
        lambda: cycle.now[0],
        cases=cycle.service,
    )


def test_a_batch_passes_the_rejections_on(cycle: Cycle) -> None:  # noqa: F811
    _, case_id = rejected(cycle)
    bulk = bulk_service(cycle)
    query = CaseFilter(kinds=frozenset({CaseKind(case_id.partition(":")[0])}))
    preview = cycle.wait(bulk.preview(BEA, query, CaseAction.PASS_ON, ""))
    assert case_id in preview.case_ids
    batch = cycle.wait(bulk.create(BEA, query, CaseAction.PASS_ON, "", preview.digest))
    cycle.wait(BatchRunner(bulk).run_once())
    done = cycle.wait(bulk.batch(BEA, batch.id))
    assert done.state is BatchState.FINISHED
    assert [i.outcome for i in done.items] == [ItemOutcome.DONE] * len(preview.cases)
    view = cycle.wait(cycle.service.case(BEA, case_id))
    assert view.case.state is CaseState.PASSED_ON
    entries = cycle.wait(cycle.service.admin.audit_entries(subject=case_id))
    assert [(e.action, e.origin) for e in entries if e.action == "pass_on"] == [
        ("pass_on", f"bulk:{batch.id}")
    ]


def test_a_batch_breaks_the_bundle_and_a_case_already_broken_is_skipped(
    cycle: Cycle,  # noqa: F811
) -> None:
    _, case_id = rejected(cycle)
    bulk = bulk_service(cycle)
    query = CaseFilter(kinds=frozenset({CaseKind(case_id.partition(":")[0])}))
    preview = cycle.wait(bulk.preview(BEA, query, CaseAction.BREAK_BUNDLE, "zorg elders"))
    batch = cycle.wait(
        bulk.create(BEA, query, CaseAction.BREAK_BUNDLE, "zorg elders", preview.digest)
    )
    # Someone breaks it by hand first: the batch skips it with the reason.
    operator = Actor("otto", Role.OPERATOR, "10.0.0.8")
    cycle.wait(cycle.service.act(operator, case_id, CaseAction.BREAK_BUNDLE, "met de hand"))
    cycle.wait(BatchRunner(bulk).run_once())
    done = cycle.wait(bulk.batch(BEA, batch.id))
    outcomes = {i.case_id: (i.outcome, i.detail) for i in done.items}
    skipped = outcomes.pop(case_id)
    assert skipped == (ItemOutcome.SKIPPED, "Actie break_bundle past niet bij deze zaak (broken).")
    assert {outcome for outcome, _ in outcomes.values()} == {ItemOutcome.DONE}
    entries = cycle.wait(cycle.service.admin.audit_entries(subject=case_id))
    assert [e.actor for e in entries if e.action == "break_bundle"] == ["otto"]


def test_a_case_whose_effect_cannot_be_prepared_is_skipped_and_the_batch_goes_on(
    cycle: Cycle,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, case_id = rejected(cycle)
    bulk = bulk_service(cycle)
    query = CaseFilter(kinds=frozenset({CaseKind(case_id.partition(":")[0])}))
    preview = cycle.wait(bulk.preview(BEA, query, CaseAction.PASS_ON, ""))
    assert len(preview.case_ids) > 1
    batch = cycle.wait(bulk.create(BEA, query, CaseAction.PASS_ON, "", preview.digest))
    resolver = cycle.service.resolver
    assert resolver is not None
    real = resolver.pass_on
    broken = case_id.partition(":")[2]

    async def pass_on(reference: str) -> Any:
        if reference == broken:
            raise ValueError("a file the unpacker cannot read")
        return await real(reference)

    monkeypatch.setattr(resolver, "pass_on", pass_on)
    for _ in range(3):  # a bad case must not make the runner try it again and again
        cycle.wait(BatchRunner(bulk).run_once())
    done = cycle.wait(bulk.batch(BEA, batch.id))
    assert done.state is BatchState.FINISHED
    outcomes = {i.case_id: (i.outcome, i.detail) for i in done.items}
    assert outcomes.pop(case_id) == (
        ItemOutcome.SKIPPED,
        "Kon niet worden voorbereid (ValueError).",
    )
    assert {outcome for outcome, _ in outcomes.values()} == {ItemOutcome.DONE}
