"""Retrying a file an insurer link failed to deliver: :class:`RetryPolicy` turns a run of
failures (each an :class:`~gateway.ports.insurer.InsurerLinkError`, whose ``retryable``
says whether trying again later can help) into the next attempt's time (:class:`Retry`)
or, past its limits, into "park with the last error" (:class:`Park`).

The link itself is a port: :mod:`gateway.ports.insurer`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.ports.insurer import InsurerLinkError

__all__ = ["Park", "Retry", "RetryDecision", "RetryPolicy"]


# --- retrying ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Retry:
    """Try again at ``at`` (attempt number ``attempt``, counting from 1)."""

    at: datetime
    attempt: int


@dataclass(frozen=True, slots=True)
class Park:
    """Stop trying; the administrator sees ``last_error`` after ``attempts`` attempts."""

    attempts: int
    last_error: str
    why: str


RetryDecision = Retry | Park


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, up to a limit.

    After failed attempt *n* (1-based) the next attempt waits
    ``min(max_delay, first_delay × factor^(n-1))``, of which a random fraction of up to
    ``jitter`` is taken off so that many files failing together (one insurer down) do not
    all come back at the same second. After ``max_attempts`` attempts, or once the next
    attempt would fall later than ``give_up_after`` from the first, the file is parked; an
    error that is not retryable parks it at once.

    Pure: the caller gives the time and a source of random numbers in [0, 1).
    """

    first_delay: timedelta = timedelta(seconds=30)
    factor: float = 2.0
    max_delay: timedelta = timedelta(hours=1)
    jitter: float = 0.2
    max_attempts: int = 12
    give_up_after: timedelta | None = timedelta(days=2)

    def __post_init__(self) -> None:
        if self.first_delay <= timedelta(0) or self.max_delay < self.first_delay:
            raise ValueError("need 0 < first_delay <= max_delay")
        if self.factor < 1:
            raise ValueError("factor must be at least 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def delay(self, attempt: int, random: Callable[[], float]) -> timedelta:
        """The wait after failed attempt ``attempt`` (1-based)."""
        if attempt < 1:
            raise ValueError("attempts count from 1")
        first = self.first_delay.total_seconds()
        cap = self.max_delay.total_seconds()
        # Past the cap the exponent no longer matters; stop before the float overflows.
        exponent = min(attempt - 1, 64)
        base = min(cap, first * self.factor**exponent)
        return timedelta(seconds=base * (1 - self.jitter * random()))

    def after_failure(
        self,
        error: InsurerLinkError,
        *,
        attempt: int,
        first_attempt_at: datetime,
        now: datetime,
        random: Callable[[], float],
    ) -> RetryDecision:
        """What to do after failed attempt ``attempt`` (1-based) that ended at ``now``."""
        last = str(error)
        if not error.retryable:
            return Park(attempt, last, f"not retryable ({error.reason.value})")
        if attempt >= self.max_attempts:
            return Park(attempt, last, f"gave up after {attempt} attempts")
        at = now + self.delay(attempt, random)
        if self.give_up_after is not None and at - first_attempt_at > self.give_up_after:
            return Park(attempt, last, f"gave up after {self.give_up_after} of trying")
        return Retry(at, attempt + 1)
