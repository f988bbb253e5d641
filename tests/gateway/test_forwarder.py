"""The forwarder against the real outbound queue (SQLite) and scripted insurer links:
delivered once, retried with backoff, parked with its last error, insurers independent,
and a file whose attempt died with the gateway sent again under the same id."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adapters.storage import SqlMessageStore, open_store
from gateway.forwarder import Forwarder, RoundResult
from gateway.insurer import RetryPolicy
from gateway.metrics import Metrics
from gateway.ports.insurer import (
    Delivery,
    FetchedRetour,
    InsurerLinkError,
    LinkErrorReason,
    OutboundFile,
)
from gateway.ports.outbox import OutboundState
from tests.adapters.storage.test_outbox import claim_file
from tests.threadpump import ThreadPump

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
POLICY = RetryPolicy(
    first_delay=timedelta(minutes=1), max_delay=timedelta(minutes=10), jitter=0, max_attempts=3
)


class ScriptedLink:
    """Answers each send with the next scripted outcome; remembers every attempt."""

    def __init__(self, *outcomes: Delivery | InsurerLinkError) -> None:
        self.outcomes = list(outcomes)
        self.sent: list[OutboundFile] = []

    async def send(self, file: OutboundFile) -> Delivery:
        self.sent.append(file)
        outcome = self.outcomes.pop(0) if self.outcomes else Delivery(f"remote-{len(self.sent)}")
        if isinstance(outcome, InsurerLinkError):
            raise outcome
        return outcome

    async def fetch(self) -> Sequence[FetchedRetour]:
        return []

    async def confirm(self, retour: FetchedRetour) -> None:
        return None


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def store(tmp_path: Path, pump: ThreadPump) -> Iterator[SqlMessageStore]:
    opened = pump.wait(open_store(f"sqlite:///{tmp_path / 'g.db'}", pump))
    yield opened
    pump.wait(opened.close())


@pytest.fixture
def pump() -> ThreadPump:
    return ThreadPump()


def forwarder(
    store: SqlMessageStore, clock: Clock, metrics: Metrics | None = None, **links: ScriptedLink
) -> Forwarder:
    return Forwarder(
        store.outbox,
        {name.removeprefix("u"): link for name, link in links.items()},
        now=clock,
        policy=POLICY,
        random=lambda: 0.0,
        lease=timedelta(minutes=5),
        metrics=metrics,
    )


def state(store: SqlMessageStore, pump: ThreadPump, traceer_id: str) -> OutboundState:
    item = pump.wait(store.outbox.get(traceer_id))
    assert item is not None
    return item.state


def test_a_queued_file_is_delivered_with_its_stable_id(
    store: SqlMessageStore, pump: ThreadPump
) -> None:
    clock, link = Clock(), ScriptedLink()
    pump.wait(store.outbox.enqueue(claim_file(1), "3311", "53001234"))
    result = pump.wait(forwarder(store, clock, u3311=link).run_once("3311"))
    assert result == RoundResult(delivered=1)
    (sent,) = link.sent
    assert (sent.message_id, sent.sender, sent.invoice_number) == (
        "out-0001",
        "53001234",
        "IGO-000001",
    )
    assert sent.payload == claim_file(1).payload
    assert state(store, pump, "out-0001") is OutboundState.DELIVERED
    assert pump.wait(forwarder(store, clock, u3311=link).run_once("3311")) == RoundResult()


def test_failures_back_off_then_deliver_once(store: SqlMessageStore, pump: ThreadPump) -> None:
    clock = Clock()
    down = InsurerLinkError(LinkErrorReason.UNAVAILABLE, "503", status=503)
    link = ScriptedLink(down, down)
    metrics = Metrics()
    fw = forwarder(store, clock, metrics, u3311=link)
    pump.wait(store.outbox.enqueue(claim_file(1), "3311", "X"))

    assert pump.wait(fw.run_once("3311")) == RoundResult(retrying=1)
    clock.now += timedelta(seconds=59)
    assert pump.wait(fw.run_once("3311")) == RoundResult()  # not due yet: 1 minute
    clock.now += timedelta(seconds=1)
    assert pump.wait(fw.run_once("3311")) == RoundResult(retrying=1)
    clock.now += timedelta(minutes=2)  # the second wait doubles
    assert pump.wait(fw.run_once("3311")) == RoundResult(delivered=1)
    assert [f.message_id for f in link.sent] == ["out-0001"] * 3
    text = metrics.exposition().decode()
    assert 'igo_gateway_outbound_attempts_total{insurer="3311",outcome="failed"} 2.0' in text
    assert 'igo_gateway_outbound_attempts_total{insurer="3311",outcome="delivered"} 1.0' in text


def test_a_refused_file_is_parked_at_once_with_its_error(
    store: SqlMessageStore, pump: ThreadPump
) -> None:
    clock = Clock()
    link = ScriptedLink(InsurerLinkError(LinkErrorReason.REFUSED, "400 bad file", status=400))
    pump.wait(store.outbox.enqueue(claim_file(1), "3311", "X"))
    assert pump.wait(forwarder(store, clock, u3311=link).run_once("3311")) == RoundResult(parked=1)
    item = pump.wait(store.outbox.get("out-0001"))
    assert item is not None
    assert item.state is OutboundState.PARKED
    assert item.last_error == "refused: 400 bad file"


def test_too_many_failures_park_the_file(store: SqlMessageStore, pump: ThreadPump) -> None:
    clock = Clock()
    timeout = InsurerLinkError(LinkErrorReason.TIMEOUT, "no answer")
    link = ScriptedLink(timeout, timeout, timeout)
    fw = forwarder(store, clock, u3311=link)
    pump.wait(store.outbox.enqueue(claim_file(1), "3311", "X"))
    results = []
    for _ in range(3):
        results.append(pump.wait(fw.run_once("3311")))
        clock.now += timedelta(minutes=10)
    assert results[-1] == RoundResult(parked=1)
    assert state(store, pump, "out-0001") is OutboundState.PARKED


def test_one_insurer_down_does_not_hold_up_another(
    store: SqlMessageStore, pump: ThreadPump
) -> None:
    clock = Clock()
    down = ScriptedLink(*[InsurerLinkError(LinkErrorReason.UNREACHABLE, "refused")] * 5)
    up = ScriptedLink()
    fw = forwarder(store, clock, u3311=down, u9999=up)
    pump.wait(store.outbox.enqueue(claim_file(1, insurer="3311"), "3311", "X"))
    pump.wait(store.outbox.enqueue(claim_file(2, insurer="9999"), "9999", "X"))
    assert pump.wait(fw.run_once("3311")) == RoundResult(retrying=1)
    assert pump.wait(fw.run_once("9999")) == RoundResult(delivered=1)


def test_a_file_whose_attempt_died_is_sent_again_under_the_same_id(
    store: SqlMessageStore, pump: ThreadPump
) -> None:
    clock = Clock()
    pump.wait(store.outbox.enqueue(claim_file(1), "3311", "X"))
    # A gateway claims the file and dies before it learns the outcome.
    pump.wait(store.outbox.claim_due("3311", clock(), timedelta(minutes=5), 10))
    link = ScriptedLink(Delivery("remote-1", repeated=True))  # the insurer had it
    fw = forwarder(store, clock, u3311=link)
    assert pump.wait(fw.run_once("3311")) == RoundResult()  # still under the dead lease
    clock.now += timedelta(minutes=5)
    assert pump.wait(fw.run_once("3311")) == RoundResult(delivered=1)
    assert [f.message_id for f in link.sent] == ["out-0001"]
    item = pump.wait(store.outbox.get("out-0001"))
    assert item is not None
    assert (item.state, item.attempts, item.remote_id) == (OutboundState.DELIVERED, 2, "remote-1")
