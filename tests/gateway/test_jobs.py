"""The job lock over a fake store of leases and a fake clock: it waits its turn (polling),
refuses at once without waiting, renews while held, and never raises on release."""

from __future__ import annotations

from collections.abc import Awaitable

import pytest
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from gateway.jobs import JobLock
from gateway.ports.jobs import JobBusyError


class FakeLeases:
    def __init__(self) -> None:
        self.holder: str | None = None
        self.renewals = 0
        self.fail_release = False

    def try_acquire(self, job: str, holder: str, seconds: float) -> Awaitable[str | None]:
        if self.holder in (None, holder):
            self.holder = holder
            return defer.succeed(None)
        return defer.succeed(self.holder)

    def renew(self, job: str, holder: str, seconds: float) -> Awaitable[bool]:
        self.renewals += 1
        return defer.succeed(self.holder == holder)

    def release(self, job: str, holder: str) -> Awaitable[None]:
        if self.fail_release:
            return defer.fail(RuntimeError("store away"))
        if self.holder == holder:
            self.holder = None
        return defer.succeed(None)


def _result(d: Deferred[object]) -> object:
    out: list[object] = []
    d.addBoth(out.append)
    assert out, "not fired"
    return out[0]


def test_a_second_lock_waits_until_the_first_is_released() -> None:
    leases, clock = FakeLeases(), Clock()
    first, second = JobLock(leases, "j", clock), JobLock(leases, "j", clock)
    assert _result(Deferred.fromCoroutine(first.acquire())) is None
    waiting = Deferred.fromCoroutine(second.acquire())
    clock.advance(5)
    assert not waiting.called
    _result(Deferred.fromCoroutine(first.release()))
    clock.advance(1)
    assert waiting.called
    assert leases.holder == second.holder


def test_without_waiting_a_held_lease_is_refused_at_once() -> None:
    leases, clock = FakeLeases(), Clock()
    _result(Deferred.fromCoroutine(JobLock(leases, "j", clock).acquire()))
    refused = _result(Deferred.fromCoroutine(JobLock(leases, "j", clock).acquire(wait=False)))
    assert refused.check(JobBusyError)  # type: ignore[attr-defined]


def test_the_lease_is_renewed_while_held_and_not_after() -> None:
    leases, clock = FakeLeases(), Clock()
    lock = JobLock(leases, "j", clock, seconds=30)
    _result(Deferred.fromCoroutine(lock.acquire()))
    clock.advance(10)
    clock.advance(10)
    assert leases.renewals == 2
    _result(Deferred.fromCoroutine(lock.release()))
    clock.advance(60)
    assert leases.renewals == 2


def test_a_release_the_store_refuses_is_logged_not_raised() -> None:
    leases, clock = FakeLeases(), Clock()
    lock = JobLock(leases, "j", clock)
    _result(Deferred.fromCoroutine(lock.acquire()))
    leases.fail_release = True
    assert _result(Deferred.fromCoroutine(lock.release())) is None


def test_a_lease_needs_a_length() -> None:
    with pytest.raises(ValueError, match="positive"):
        JobLock(FakeLeases(), "j", Clock(), seconds=0)
