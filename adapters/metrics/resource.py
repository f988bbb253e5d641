"""The operations endpoint: ``/metrics`` (Prometheus text format), ``/healthz`` (the process
answers) and ``/readyz`` (the store answers; the gateway can take uploads).

Served over plain HTTP on its own port, by default on loopback only: it carries no client
data, but nothing on it needs to be reachable from outside the host or the cluster.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping

from prometheus_client import CONTENT_TYPE_LATEST
from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger
from twisted.web import pages, resource, server

from gateway.metrics import Metrics

__all__ = ["OperationsRoot"]

log = Logger()


def _json(request: server.Request, status: int, body: dict[str, object]) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(body).encode()


class _Metrics(resource.Resource):
    isLeaf = True

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._metrics = metrics

    def render_GET(self, request: server.Request) -> bytes:
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
        return self._metrics.exposition()


class _Healthz(resource.Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]

    def render_GET(self, request: server.Request) -> bytes:
        return _json(request, 200, {"status": "ok"})


class _Readyz(resource.Resource):
    isLeaf = True

    def __init__(
        self,
        metrics: Metrics,
        check_store: Callable[[], Awaitable[None]],
        insurers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._metrics = metrics
        self._check_store = check_store
        self._insurers = insurers if insurers is not None else {}

    def render_GET(self, request: server.Request) -> int:
        d = ensureDeferred(self._ready(request))
        d.addErrback(lambda f: log.failure("readiness check failed", f))
        return server.NOT_DONE_YET

    async def _ready(self, request: server.Request) -> None:
        try:
            await self._check_store()
        except Exception as exc:  # any failure means: not ready
            self._metrics.store_available.set(0)
            log.warn("not ready: the store does not answer ({kind})", kind=type(exc).__name__)
            body = _json(
                request,
                503,
                {"status": "unavailable", "store": "unreachable", "insurers": dict(self._insurers)},
            )
        else:
            self._metrics.store_available.set(1)
            # The insurer links are reported, not required: uploads are taken while an
            # insurer is down, and its files wait.
            body = _json(
                request, 200, {"status": "ready", "store": "ok", "insurers": dict(self._insurers)}
            )
        if not request._disconnected:
            request.setHeader(b"content-length", b"%d" % len(body))
            request.write(body)
            request.finish()


class OperationsRoot(resource.Resource):
    """``/metrics``, ``/healthz`` and ``/readyz`` (with each insurer link's state: ``ok``
    after a delivery, ``failing`` after a failed attempt); everything else 404."""

    def __init__(
        self,
        metrics: Metrics,
        check_store: Callable[[], Awaitable[None]],
        insurers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.putChild(b"metrics", _Metrics(metrics))
        self.putChild(b"healthz", _Healthz())
        self.putChild(b"readyz", _Readyz(metrics, check_store, insurers))

    def getChild(self, path: bytes, request: server.Request) -> resource.IResource:
        return pages.notFound()
