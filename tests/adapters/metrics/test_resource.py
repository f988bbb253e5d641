"""The operations endpoint, in memory: /metrics in the Prometheus text format, /healthz,
and /readyz following the store."""

from __future__ import annotations

import json

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.web import server

from adapters.metrics.resource import OperationsRoot
from gateway.metrics import Metrics
from gateway.ports.messages import StoreUnavailableError
from tests.adapters.inmemory_http import get


class Store:
    def __init__(self) -> None:
        self.up = True

    def ping(self) -> Deferred[None]:
        if self.up:
            return succeed(None)
        return fail(StoreUnavailableError("ping: database unavailable"))


def site(metrics: Metrics, store: Store) -> server.Site:
    return server.Site(OperationsRoot(metrics, store.ping), reactor=Clock())


def test_metrics_are_served_in_the_prometheus_text_format() -> None:
    metrics = Metrics(version="1.2.3")
    metrics.uploads.labels("KZ301", "33001234", "accepted").inc()
    status, headers, body = get(site(metrics, Store()), "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    (sample,) = [s for s in families["igo_gateway_uploads"].samples if s.name.endswith("_total")]
    assert sample.labels == {"standard": "KZ301", "participant": "33001234", "outcome": "accepted"}
    assert sample.value == 1
    assert families["igo_gateway_build_info"].samples[0].labels == {"version": "1.2.3"}


def test_healthz_answers_while_the_process_runs() -> None:
    status, _, body = get(site(Metrics(), Store()), "/healthz")
    assert status == 200
    assert json.loads(body) == {"status": "ok"}


def test_readyz_follows_the_store() -> None:
    metrics, store = Metrics(), Store()
    ops = site(metrics, store)
    status, _, body = get(ops, "/readyz")
    assert (status, json.loads(body)["store"]) == (200, "ok")
    assert json.loads(body)["insurers"] == {}
    assert metrics.store_available._value.get() == 1

    store.up = False
    status, _, body = get(ops, "/readyz")
    assert status == 503
    assert json.loads(body) == {"status": "unavailable", "store": "unreachable", "insurers": {}}
    assert metrics.store_available._value.get() == 0

    store.up = True
    assert get(ops, "/readyz")[0] == 200


def test_anything_else_is_not_found() -> None:
    assert get(site(Metrics(), Store()), "/berichten")[0] == 404
