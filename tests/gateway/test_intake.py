"""The intake with check workers (:class:`~gateway.ports.intake.FileChecks`): it takes
their findings, lines and hash and runs nothing on a thread; when they cannot check a
file it checks the file itself, with the same outcome as without workers."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from twisted.internet import defer
from twisted.internet.defer import Deferred

from adapters.storage.memory import MemoryMessageStore
from gateway.intake import Intake
from gateway.loading import load_layouts
from gateway.ports.intake import CheckedFile, FileCheckUnavailableError, Receipt, Upload
from gateway.ports.messages import Message, MessageStatus
from gateway.upload_checks import check_upload
from gateway.vsp import send_metadata
from tests.factories import kz301
from tests.gateway.ei.fixture_table import INVALID

REGISTRY = load_layouts()
NOW = datetime(2026, 2, 3, 9, 30, tzinfo=UTC)
AGB = "33001234"


class _Checks:
    """Check workers that answer with the intake's own checks, or cannot."""

    def __init__(self, *, available: bool = True) -> None:
        self.available = available
        self.asked: list[str] = []

    def check(self, payload: bytes, traceer_id: str, participant: str) -> Deferred[CheckedFile]:
        self.asked.append(traceer_id)
        if not self.available:
            return defer.fail(FileCheckUnavailableError("no check worker is running"))
        result, lines = check_upload(REGISTRY, payload, traceer_id, participant)
        return defer.succeed(CheckedFile(result, lines, hashlib.sha256(payload).hexdigest()))


def _intake(store: MemoryMessageStore, checks: _Checks | None, threads: list[str]) -> Intake:
    def run_in_thread(work: Callable[[], Any]) -> Deferred[Any]:
        threads.append("ran")
        return defer.succeed(work())

    return Intake(store, REGISTRY, clock=lambda: NOW, run_in_thread=run_in_thread, checks=checks)


def _receive(intake: Intake, payload: bytes) -> Receipt:
    upload = Upload(AGB, "kraamzorg", send_metadata(AGB, "EI"), payload)
    got: list[Receipt] = []
    defer.ensureDeferred(intake.receive(upload)).addCallback(got.append)
    (receipt,) = got
    return receipt


def test_a_workers_checks_are_taken_and_nothing_runs_on_a_thread() -> None:
    store, checks, threads = MemoryMessageStore(), _Checks(), list[str]()
    payload = kz301(REGISTRY, agb=AGB, lines=4)

    receipt = _receive(_intake(store, checks, threads), payload)

    assert checks.asked == [receipt.traceer_id]
    assert threads == []
    assert receipt.status is MessageStatus.RECEIVED
    _, lines = check_upload(REGISTRY, payload, receipt.traceer_id, AGB)
    assert store.lines == lines
    found: list[Message | None] = []
    store.get_message(receipt.traceer_id).addCallback(found.append)
    (stored,) = found
    assert stored is not None
    assert stored.sha256 == hashlib.sha256(payload).hexdigest()


@pytest.mark.parametrize("row", INVALID[:8], ids=[row.file for row in INVALID[:8]])
def test_a_file_rejected_by_a_worker_gets_what_the_intake_itself_gives(row: Any) -> None:
    payload = row.read()
    by_worker = _receive(_intake(MemoryMessageStore(), _Checks(), []), payload)
    by_intake = _receive(_intake(MemoryMessageStore(), None, []), payload)
    assert by_worker.status is by_intake.status is MessageStatus.REJECTED
    assert (by_worker.code, by_worker.findings) == (by_intake.code, by_intake.findings)
    assert by_worker.standard == by_intake.standard


def test_when_the_workers_cannot_check_the_intake_checks_the_file_itself() -> None:
    store, checks, threads = MemoryMessageStore(), _Checks(available=False), list[str]()
    payload = kz301(REGISTRY, agb=AGB, lines=2)

    receipt = _receive(_intake(store, checks, threads), payload)

    assert checks.asked == [receipt.traceer_id]
    assert threads == ["ran"]
    assert receipt.status is MessageStatus.RECEIVED
    assert len(store.lines) == 2
