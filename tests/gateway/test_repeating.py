"""Repeating: every scheduled job's timer, failure logging and stop, on a test clock."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import pytest
from prometheus_client import CollectorRegistry, Counter
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher

from gateway.ports.messages import StoreUnavailableError
from gateway.repeating import Repeating


@pytest.fixture
def events() -> Iterator[list[LogEvent]]:
    seen: list[LogEvent] = []
    observe = cast(ILogObserver, seen.append)
    globalLogPublisher.addObserver(observe)
    try:
        yield seen
    finally:
        globalLogPublisher.removeObserver(observe)


def _failures() -> Counter:
    return Counter("job_failures", "failed runs", ["job"], registry=CollectorRegistry())


def test_it_runs_now_and_every_interval_and_leaves_no_timer_after_stop() -> None:
    clock = Clock()
    runs: list[float] = []
    job = Repeating("counting", lambda: runs.append(clock.seconds()), 10.0, clock)
    job.start()
    assert runs == [0.0]
    clock.advance(10)
    clock.advance(10)
    assert runs == [0.0, 10.0, 20.0]
    assert job.running
    job.stop()
    assert not job.running
    assert clock.getDelayedCalls() == []
    clock.advance(100)
    assert runs == [0.0, 10.0, 20.0]
    finished: list[object] = []
    job.finished.addCallback(finished.append)
    assert len(finished) == 1


def test_a_failed_run_is_logged_counted_and_the_next_one_runs(events: list[LogEvent]) -> None:
    clock = Clock()
    failures = _failures()
    calls = {"n": 0}

    async def work() -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("broken")
        if calls["n"] == 2:
            raise StoreUnavailableError("database is locked")

    job = Repeating("a bundling run", work, 5.0, clock, failures=failures.labels("bundling"))
    job.start()
    clock.advance(5)
    clock.advance(5)
    job.stop()
    assert calls["n"] == 3
    assert failures.labels("bundling")._value.get() == 2
    faults = [formatEvent(e) for e in events if e.get("log_failure") is not None]
    assert faults == ["a bundling run failed"]
    texts = [formatEvent(e) for e in events]
    assert "a bundling run failed, the store is unavailable (database is locked)" in texts
    assert clock.getDelayedCalls() == []


def test_finished_waits_for_the_run_in_progress() -> None:
    clock = Clock()
    pending: Deferred[None] = Deferred()
    job = Repeating("a slow run", lambda: pending, 1.0, clock)
    job.start()
    job.stop()
    finished: list[object] = []
    job.finished.addCallback(finished.append)
    assert finished == []
    pending.callback(None)
    assert len(finished) == 1
    assert clock.getDelayedCalls() == []


def test_a_job_may_stop_itself() -> None:
    clock = Clock()
    left = [2]

    def step() -> None:
        left[0] -= 1
        if left[0] == 0:
            job.stop()

    job = Repeating("re-encryption", step, 0.5, clock)
    job.start()
    clock.advance(0.5)
    assert left == [0]
    assert not job.running
    assert clock.getDelayedCalls() == []


def test_a_job_never_started_is_finished_and_stops_quietly() -> None:
    clock = Clock()
    job = Repeating("idle", lambda: None, 1.0, clock)
    job.stop()
    finished: list[object] = []
    job.finished.addCallback(finished.append)
    assert finished == [None]
    assert clock.getDelayedCalls() == []
