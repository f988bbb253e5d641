"""The insurer port's values and the retry policy (pure: time and randomness are given)."""

from __future__ import annotations

import hashlib
import itertools
from datetime import UTC, datetime, timedelta

import pytest

from gateway.insurer import Park, Retry, RetryPolicy
from gateway.ports.insurer import FetchedRetour, InsurerLinkError, LinkErrorReason, OutboundFile

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def never_random() -> float:
    return 0.0


def always_max() -> float:
    return 0.999999


def transient() -> InsurerLinkError:
    return InsurerLinkError(LinkErrorReason.UNAVAILABLE, "503 from insurer", status=503)


# --- values ----------------------------------------------------------------------------------


def test_outbound_file_carries_its_checksum() -> None:
    f = OutboundFile("id-1", "3311", "53001234", "KZ301", b"abc")
    assert f.sha256 == hashlib.sha256(b"abc").hexdigest()
    assert FetchedRetour("r", b"abc").sha256 == f.sha256


@pytest.mark.parametrize("bad", ["", "a/b", "tab\there"])
def test_outbound_file_needs_a_usable_id(bad: str) -> None:
    with pytest.raises(ValueError, match="message_id"):
        OutboundFile(bad, "3311", "53001234", "KZ301", b"x")


@pytest.mark.parametrize(
    ("reason", "retryable"),
    [
        (LinkErrorReason.TIMEOUT, True),
        (LinkErrorReason.UNREACHABLE, True),
        (LinkErrorReason.UNAVAILABLE, True),
        (LinkErrorReason.CORRUPT, True),
        (LinkErrorReason.IO, True),
        (LinkErrorReason.REFUSED, False),
        (LinkErrorReason.TLS, False),
        (LinkErrorReason.PROTOCOL, False),
        (LinkErrorReason.CONFLICT, False),
    ],
)
def test_which_errors_are_worth_retrying(reason: LinkErrorReason, retryable: bool) -> None:
    error = InsurerLinkError(reason, "why")
    assert error.retryable is retryable
    assert str(error) == f"{reason.value}: why"


# --- retry policy ----------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(
        first_delay=timedelta(seconds=10), max_delay=timedelta(seconds=100), jitter=0
    )
    delays = [policy.delay(n, never_random).total_seconds() for n in range(1, 7)]
    assert delays == [10, 20, 40, 80, 100, 100]


def test_a_huge_attempt_number_stays_at_the_cap() -> None:
    policy = RetryPolicy(jitter=0)
    assert policy.delay(10_000, never_random) == policy.max_delay


def test_jitter_takes_at_most_its_fraction_off() -> None:
    policy = RetryPolicy(first_delay=timedelta(seconds=100), jitter=0.25)
    assert policy.delay(1, never_random) == timedelta(seconds=100)
    shortest = policy.delay(1, always_max).total_seconds()
    assert 75 <= shortest < 75.001
    assert policy.delay(1, lambda: 0.5) == timedelta(seconds=87.5)


def test_retry_schedules_the_next_attempt() -> None:
    policy = RetryPolicy(first_delay=timedelta(seconds=30), jitter=0)
    decision = policy.after_failure(
        transient(), attempt=1, first_attempt_at=T0, now=T0, random=never_random
    )
    assert decision == Retry(T0 + timedelta(seconds=30), 2)
    later = T0 + timedelta(minutes=5)
    decision = policy.after_failure(
        transient(), attempt=3, first_attempt_at=T0, now=later, random=never_random
    )
    assert decision == Retry(later + timedelta(seconds=120), 4)


def test_parks_with_the_last_error_after_the_attempt_limit() -> None:
    policy = RetryPolicy(max_attempts=3, jitter=0)
    decision = policy.after_failure(
        transient(), attempt=3, first_attempt_at=T0, now=T0, random=never_random
    )
    assert isinstance(decision, Park)
    assert decision.attempts == 3
    assert decision.last_error == "unavailable: 503 from insurer"
    assert "3 attempts" in decision.why


def test_parks_when_the_next_attempt_would_exceed_the_time_limit() -> None:
    policy = RetryPolicy(
        first_delay=timedelta(minutes=10),
        max_delay=timedelta(hours=1),
        jitter=0,
        max_attempts=100,
        give_up_after=timedelta(hours=2),
    )
    now = T0 + timedelta(hours=1, minutes=30)
    decision = policy.after_failure(
        transient(), attempt=5, first_attempt_at=T0, now=now, random=never_random
    )
    assert isinstance(decision, Park)
    assert "of trying" in decision.why


def test_a_refusal_parks_at_once() -> None:
    refused = InsurerLinkError(LinkErrorReason.REFUSED, "400 metadata", status=400)
    decision = RetryPolicy().after_failure(
        refused, attempt=1, first_attempt_at=T0, now=T0, random=never_random
    )
    assert decision == Park(1, "refused: 400 metadata", "not retryable (refused)")


def test_a_whole_outage_is_a_bounded_schedule() -> None:
    """Simulate an insurer that never answers: the attempts spread out and then stop."""
    policy = RetryPolicy()
    now, attempt = T0, 1
    times = [now]
    while True:
        decision = policy.after_failure(
            transient(), attempt=attempt, first_attempt_at=T0, now=now, random=lambda: 0.5
        )
        if isinstance(decision, Park):
            break
        now, attempt = decision.at, decision.attempt
        times.append(now)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == sorted(gaps)
    assert max(gaps) <= policy.max_delay
    assert len(times) <= policy.max_attempts


@pytest.mark.parametrize(
    "kwargs",
    [
        {"first_delay": timedelta(0)},
        {"first_delay": timedelta(hours=2), "max_delay": timedelta(hours=1)},
        {"factor": 0.5},
        {"jitter": 1.0},
        {"max_attempts": 0},
    ],
)
def test_nonsense_policies_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        RetryPolicy().delay(0, never_random)
