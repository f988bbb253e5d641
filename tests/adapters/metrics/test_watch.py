"""The operations watch keeps igo_gateway_store_up and the outbound queue's gauges current
without anyone calling /readyz."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from adapters.metrics.watch import STORE_CHECK_SECONDS, OperationsWatch, watch_operations
from gateway.metrics import Metrics
from gateway.ports.messages import StoreUnavailableError
from gateway.ports.outbox import OutboundState

NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)


class Store:
    def __init__(self) -> None:
        self.up = True

    def ping(self) -> Deferred[None]:
        if self.up:
            return succeed(None)
        return fail(StoreUnavailableError("ping: database unavailable"))


class Outbox:
    """The two reads the watch makes, answering what a test sets."""

    def __init__(self) -> None:
        self.by_state: dict[tuple[str, OutboundState], int] = {}
        self.oldest: dict[str, datetime] = {}

    def counts(self) -> Deferred[Mapping[tuple[str, OutboundState], int]]:
        return succeed(dict(self.by_state))

    def oldest_unanswered(self) -> Deferred[Mapping[str, datetime]]:
        return succeed(dict(self.oldest))


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_the_store_gauge_follows_the_store_on_its_own() -> None:
    metrics, store, clock = Metrics(), Store(), Clock()
    task = watch_operations(OperationsWatch(metrics, store.ping, lambda: NOW), clock)
    assert value(metrics, "igo_gateway_store_up") == 1  # checked at start
    store.up = False
    clock.advance(STORE_CHECK_SECONDS)
    assert value(metrics, "igo_gateway_store_up") == 0
    store.up = True
    clock.advance(STORE_CHECK_SECONDS)
    assert value(metrics, "igo_gateway_store_up") == 1
    task.stop()


def test_the_oldest_unanswered_file_is_published_per_insurer() -> None:
    metrics, store, clock, outbox = Metrics(), Store(), Clock(), Outbox()
    outbox.by_state = {("3311", OutboundState.DELIVERED): 2, ("7095", OutboundState.ANSWERED): 4}
    outbox.oldest = {"3311": NOW - timedelta(days=4)}
    task = watch_operations(OperationsWatch(metrics, store.ping, lambda: NOW, outbox), clock)
    age = "igo_gateway_outbound_oldest_unanswered_age_seconds"
    assert value(metrics, age, insurer="3311") == 4 * 86400
    assert value(metrics, age, insurer="7095") == 0
    files = "igo_gateway_outbound_files"
    assert value(metrics, files, insurer="3311", state="delivered") == 2
    assert value(metrics, files, insurer="3311", state="queued") == 0
    # The retour comes in: the insurer waits for nothing any more.
    outbox.by_state = {("3311", OutboundState.ANSWERED): 2, ("7095", OutboundState.ANSWERED): 4}
    outbox.oldest = {}
    clock.advance(STORE_CHECK_SECONDS)
    assert value(metrics, age, insurer="3311") == 0
    assert value(metrics, files, insurer="3311", state="delivered") == 0
    # While the store does not answer, the queue is not read (the gauges keep their value).
    store.up = False
    outbox.oldest = {"3311": NOW - timedelta(days=9)}
    clock.advance(STORE_CHECK_SECONDS)
    assert value(metrics, age, insurer="3311") == 0
    task.stop()
