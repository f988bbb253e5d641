"""The admin site: server-rendered pages for the IGO administrator and a JSON API with the
same operations, on a Twisted ``Site`` of its own (its own port, apart from the EPD API).

Every route, with the methods it answers, is declared in :data:`adapters.admin.routes.
ADMIN_ROUTES`; any other method is answered 405 with an ``Allow`` header and runs nothing.
Pages (HTML, Jinja2 with autoescaping, no JavaScript):

=======  ==================================  ===============================================
GET      /login, POST /login                 log in (a fresh session id on every login)
POST     /logout                             log out
GET      /cases                              the queue: counts per kind, filters, open cases
GET      /cases/{id}                         a case: facts, retourcodes, history, the file
POST     /cases/{id}/unmask                  the same with client data shown (audited)
GET      /cases/{id}/{action}                what the action will do, and its form
POST     /cases/{id}/{action}                do it (retry, write_off, reopen, note, …)
GET      /pregnancies/{id}                   a pregnancy: its lines, claims and decisions
GET      /uploads/{id}/reprocess, POST …     check an upload again after a config fix
GET      /users, POST /users/{name}/{op}     accounts (administrators)
GET      /audit, GET /audit/export           the audit log (administrators)
GET      /search, POST /search               search by business keys (the form posts, so
                                            a BSN never lands in a URL or access log)
GET      /bulk?{filters}&action=…            bulk action: exactly what it will do, and its form
POST     /bulk                               make the batch (administrators), runs in the back
GET      /batches, GET /batches/{id}         batches and their progress, case by case
POST     /batches/{id}/{control}             pause, resume or cancel a batch
=======  ==================================  ===============================================

JSON API (``Authorization: Bearer <token>`` from ``igo-gateway admin create-token``, or
the session cookie plus an ``X-CSRF-Token`` header on POST), documented in
``schemas/admin-api.openapi.json``: ``GET /api/me``, ``GET /api/cases``,
``GET /api/cases/{id}``, ``POST /api/cases/{id}/unmask``,
``POST /api/cases/{id}/actions/{action}``, ``GET /api/pregnancies/{id}``,
``POST /api/uploads/{traceerId}/reprocess``, ``GET /api/audit``, ``GET /api/audit/verify``,
``GET /api/users``, ``POST /api/users/{name}/{operation}``. The search is
``POST /api/search`` (its keys, a BSN among them, in the body). Bulk actions:
``GET /api/batches``, ``POST /api/batches/preview``, ``POST /api/batches``,
``GET /api/batches/{id}``, ``POST /api/batches/{id}/{pause|resume|cancel}``.

Safety: the session cookie is HttpOnly and SameSite=Strict (and Secure over HTTPS); every
form carries a CSRF token derived from the session, checked on every method but GET and
HEAD (which only read); every answer carries a strict CSP (no
inline script or style), ``X-Frame-Options: DENY`` and ``Cache-Control: no-store``; a
request body may not exceed :data:`MAX_BODY_BYTES`.

This module is the resource that dispatches a request over the route table, and the
builders. The rooms behind it: :mod:`adapters.admin.session` (sessions, cookies, CSRF),
:mod:`adapters.admin.pages` (the pages), :mod:`adapters.admin.api` (the JSON API, its
JSON from :mod:`gateway.admin.serialise`), :mod:`adapters.admin.forms` (what a request
brings, read and checked), :mod:`adapters.admin.render` (templates and JSON) and
:mod:`adapters.admin.errors` (every error's status, in one place). The resource is thin:
every decision is :class:`~gateway.admin.service.AdminService`'s.
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Final

from prometheus_client import CollectorRegistry
from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http, resource, server

from adapters.admin.api import Api
from adapters.admin.config import AdminConfig
from adapters.admin.errors import RedirectError, SiteError, problem
from adapters.admin.forms import arg
from adapters.admin.pages import Pages
from adapters.admin.render import Renderer
from adapters.admin.routes import ADMIN_ROUTES, READ_METHODS, MethodNotAllowedError, Router
from adapters.admin.session import Sessions
from adapters.epd_api.http import problem_bytes
from gateway.admin.bulk import BulkService
from gateway.admin.metrics import BulkMetrics
from gateway.admin.service import AdminService
from gateway.errors import ErrorKind
from gateway.ports.admin import AdminStore, BatchStore
from gateway.reprocess import Reprocessor

__all__ = [
    "MAX_BODY_BYTES",
    "AdminResource",
    "AdminSite",
    "build_admin_site",
    "build_bulk_service",
]

log = Logger()

MAX_BODY_BYTES: Final = 64 * 1024
_CSP: Final = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_SECURITY_HEADERS: Final = {
    b"content-security-policy": _CSP.encode("ascii"),
    b"x-frame-options": b"DENY",
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    b"cache-control": b"no-store",
    b"cross-origin-opener-policy": b"same-origin",
}


class _AdminRequest(server.Request):
    """A request whose body may not exceed :data:`MAX_BODY_BYTES` (forms and small JSON),
    announced or chunked, kept in memory: twisted.web would spool a body of unknown length
    to an unencrypted temporary file, and a search form carries a BSN."""

    _received = 0
    _refused = False

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > MAX_BODY_BYTES:
            self._refuse()
            return
        self.content = io.BytesIO()

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._received += len(data)
        if self._received > MAX_BODY_BYTES:
            self.content = io.BytesIO()
            self._refuse()
            return
        super().handleContentChunk(data)  # type: ignore[no-untyped-call]

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._refused:
            return
        super().requestReceived(command, path, version)  # type: ignore[no-untyped-call]

    def _refuse(self) -> None:
        # Written raw: the request line is not parsed into the request yet, and what is
        # left of the body is not read.
        self._refused = True
        transport = self.channel.transport if self.channel is not None else None
        if transport is None:
            return
        body = b"Request too large.\n"
        transport.write(
            b"HTTP/1.1 413 Request Entity Too Large\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
        )
        transport.loseConnection()


class AdminResource(resource.Resource):
    """The whole site as one leaf resource: routes a request by path and method
    (:data:`~adapters.admin.routes.ADMIN_ROUTES`), checks who asks as the route's access
    says, runs its handler (:class:`~adapters.admin.pages.Pages` or
    :class:`~adapters.admin.api.Api`) and answers what went wrong
    (:func:`adapters.admin.errors.problem`)."""

    isLeaf = True

    def __init__(
        self,
        service: AdminService,
        config: AdminConfig,
        bulk: BulkService | None = None,
        reprocessor: Reprocessor | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._sessions = Sessions(service, config)
        # The service's names are read when a page is shown: the gateway may set them
        # after the site.
        self._render = Renderer(lambda: service.names, bulk=bulk is not None)
        pages = Pages(service, self._render, self._sessions, bulk, reprocessor)
        api = Api(service, self._render, self._sessions, bulk, reprocessor)
        self._router = Router(ADMIN_ROUTES)
        rooms = {"api": api, "public": pages, "session": pages}
        missing = [r.handler for r in ADMIN_ROUTES if not hasattr(rooms[r.access], r.handler)]
        if missing:
            raise TypeError(f"routes without a handler: {', '.join(missing)}")
        self._handlers: dict[str, Callable[..., Awaitable[bytes]]] = {
            r.handler: getattr(rooms[r.access], r.handler) for r in ADMIN_ROUTES
        }

    # twisted.web entry point ----------------------------------------------------------

    def render(self, request: server.Request) -> bytes | int:
        for name, value in _SECURITY_HEADERS.items():
            request.setHeader(name, value)
        if self._sessions.secure:
            request.setHeader(b"strict-transport-security", b"max-age=31536000")
        d = ensureDeferred(self._dispatch(request))
        d.addCallbacks(
            lambda body: self._finish(request, body),
            lambda failure: self._fail(request, failure),
        )
        return server.NOT_DONE_YET

    def _finish(self, request: server.Request, body: bytes) -> None:
        if request._disconnected or request.finished:
            return
        request.write(body)
        request.finish()

    @staticmethod
    def _is_api(request: server.Request) -> bool:
        return (request.postpath or [b""])[0] == b"api"

    def _fail(self, request: server.Request, failure: Failure) -> None:
        exc = failure.value
        if isinstance(exc, RedirectError):
            request.setResponseCode(303)
            request.setHeader(b"location", exc.location.encode("ascii"))
            self._finish(request, b"")
            return
        answer = problem(exc)
        if answer.kind is ErrorKind.UNAVAILABLE:
            log.warn("store unavailable for the admin site")
            request.setHeader(b"retry-after", b"30")
        elif answer.kind is ErrorKind.INTERNAL:
            log.failure("unexpected error in the admin site", failure)
        status = answer.status
        if self._is_api(request):
            request.setResponseCode(status)
            request.setHeader(b"content-type", b"application/problem+json")
            body = problem_bytes(status, answer.code, answer.message)
        else:
            heading = http.RESPONSES.get(status, b"Fout").decode("ascii")
            body = self._render.page(
                request, "error.html", status=status, heading=heading, message=answer.message
            )
        self._finish(request, body)

    async def _dispatch(self, request: server.Request) -> bytes:
        segments = [s.decode("utf-8", "replace") for s in request.postpath or []]
        while segments and segments[-1] == "":
            segments.pop()
        method = request.method.decode("ascii", "replace")
        try:
            match = self._router.resolve(method, segments)
        except MethodNotAllowedError as refused:
            request.setHeader(b"allow", ", ".join(refused.allowed).encode("ascii"))
            raise
        if match is None:
            if self._is_api(request):
                raise SiteError(ErrorKind.NOT_FOUND, "onbekend", "Deze API-route bestaat niet.")
            raise SiteError(ErrorKind.NOT_FOUND, "onbekend", "Deze pagina bestaat niet.")
        route, params = match.route, match.params
        handler = self._handlers[route.handler]
        if route.access == "public":
            return await handler(request, params)
        if route.access == "api":
            actor = await self._sessions.api_actor(request)
            return await handler(request, params, actor)
        token, session_actor = await self._sessions.session(request)
        if session_actor is None or token is None:
            if method in READ_METHODS:
                raise RedirectError("/login")
            raise SiteError(
                ErrorKind.NOT_ALLOWED, "niet-aangemeld", "U bent niet (meer) aangemeld."
            )
        if method not in READ_METHODS:
            # Every method that may change something; the routes declare POST only.
            self._sessions.check_csrf(token, arg(request, "csrf"))
        return await handler(request, params, token, session_actor)


class AdminSite(server.Site):
    """The admin site, with the service behind it (for the gateway's background jobs)."""

    def __init__(
        self,
        service: AdminService,
        config: AdminConfig,
        bulk: BulkService | None = None,
        reprocessor: Reprocessor | None = None,
    ) -> None:
        super().__init__(AdminResource(service, config, bulk, reprocessor))  # type: ignore[no-untyped-call]
        self.service = service
        self.bulk = bulk


def build_bulk_service(
    admin_store: AdminStore,
    batch_store: BatchStore,
    clock: Callable[[], datetime],
    metrics_registry: CollectorRegistry | None = None,
    cases: AdminService | None = None,
) -> BulkService:
    """The bulk service for :func:`build_admin_site` and the batch runner (one for both:
    its metrics are registered once). ``cases`` prepares the actions that need a prepared
    effect (breaking a bundle, passing a rejection on, closing a phase); without it those
    actions are refused."""
    metrics = BulkMetrics(metrics_registry) if metrics_registry is not None else None
    return BulkService(admin_store, batch_store, clock, metrics, cases)


def build_admin_site(
    service: AdminService,
    config: AdminConfig | None = None,
    *,
    bulk: BulkService | None = None,
    reprocessor: Reprocessor | None = None,
) -> AdminSite:
    """The admin site on ``service`` (accounts, audit, single cases), with ``bulk``'s bulk
    actions and ``reprocessor``'s reprocessing of uploads when given (without them the site
    has none). Every service comes built, with its collaborators given to its constructor
    (:class:`gateway.builder.GatewayBuilder` builds them for ``serve`` and the dev server;
    ``bulk.cases`` is ``service`` there, so bulk actions prepare the same effects as single
    cases)."""
    site = AdminSite(service, config or AdminConfig(), bulk, reprocessor)
    site.requestFactory = _AdminRequest
    site.displayTracebacks = False
    return site
