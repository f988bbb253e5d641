"""Run Twisted code that works on threads without a running reactor, in tests: the
store's own :class:`~adapters.storage.blocking.Blocking` with a short deadline, so that a
test fails instead of hanging."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import pytest

from adapters.storage.blocking import Blocking

T = TypeVar("T")


WAIT_SECONDS = 20.0


class ThreadPump(Blocking):
    """Stands in for the reactor in tests: calls from other threads run when the test
    waits, and every wait has a short deadline."""

    def wait(self, awaitable: Awaitable[T], timeout: float = WAIT_SECONDS) -> T:
        return super().wait(awaitable, timeout)

    def wait_error(
        self, awaitable: Awaitable[object], timeout: float = WAIT_SECONDS
    ) -> BaseException:
        """The error ``awaitable`` fails with (fails the test if it succeeds)."""
        try:
            self.wait(awaitable, timeout)
        except Exception as exc:
            return exc
        pytest.fail("expected an error, got a result")
