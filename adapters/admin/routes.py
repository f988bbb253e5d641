"""The admin site's routes, declared in one table (in the manner of klein): each route
names its path, the methods it answers and its handler.

A request is routed by path *and* method. A path that matches a route but not with this
method is answered ``405 Method Not Allowed`` with an ``Allow`` header naming the methods
its routes declare — so a handler only ever runs for a method it was written for (a case
action cannot be done by ``HEAD``, ``PUT`` or ``DELETE``, which the CSRF check might not
cover). ``HEAD`` is implied by ``GET`` and runs the same handler (twisted.web leaves out
the body). A path that matches no route is ``404``.

Path segments are literals, ``{name}`` (any one segment) or ``{name:converter}``: the
converter turns the segment into a value or refuses it (``ValueError``), in which case
that route does not match. So ``/cases/{case}/{action:action}`` does not match
``/cases/x/unmask``, and ``/api/batches/{batch:batch}`` not ``/api/batches/preview``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from gateway.admin.batches import BatchControl
from gateway.admin.cases import CaseAction

__all__ = [
    "ADMIN_ROUTES",
    "CONVERTERS",
    "READ_METHODS",
    "Match",
    "MethodNotAllowedError",
    "Route",
    "Router",
]

Access = Literal["public", "session", "api"]
Converter = Callable[[str], object]

READ_METHODS: Final = frozenset({"GET", "HEAD"})


@dataclass(frozen=True, slots=True)
class Route:
    """``methods`` answered at ``path`` by the resource's method ``handler``; ``access``
    says who may: anyone (``public``), a logged-in browser (``session``), or an API client
    (``api``: a bearer token, or the session cookie with an ``X-CSRF-Token`` header)."""

    methods: frozenset[str]
    path: str
    handler: str
    access: Access

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(s for s in self.path.split("/") if s)


def route(methods: str, path: str, handler: str, access: Access = "session") -> Route:
    return Route(frozenset(methods.split()), path, handler, access)


def _batch_id(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise ValueError(text)
    return int(text)


CONVERTERS: Final[Mapping[str, Converter]] = {
    "action": CaseAction,
    "control": BatchControl,
    "batch": _batch_id,
}

ADMIN_ROUTES: Final[Sequence[Route]] = (
    route("GET", "/static/admin.css", "static_css", "public"),
    route("GET", "/login", "login_page", "public"),
    route("POST", "/login", "login", "public"),
    route("GET", "/", "home"),
    route("POST", "/logout", "logout"),
    route("GET", "/cases", "queue_page"),
    route("GET", "/cases/{case}", "case_page"),
    route("POST", "/cases/{case}/unmask", "unmask_page"),
    route("GET", "/cases/{case}/{action:action}", "confirm_page"),
    route("POST", "/cases/{case}/{action:action}", "act"),
    route("GET", "/pregnancies/{pregnancy}", "pregnancy_page"),
    route("GET", "/uploads/{traceer}/reprocess", "reprocess_page"),
    route("POST", "/uploads/{traceer}/reprocess", "reprocess"),
    route("GET POST", "/search", "search_page"),
    route("GET", "/audit", "audit_page"),
    route("GET", "/users", "users_route"),
    route("POST", "/users/{name}/{operation}", "user_operation_route"),
    route("GET", "/audit/export", "audit_export"),
    route("GET", "/bulk", "bulk_preview_page"),
    route("POST", "/bulk", "bulk_create"),
    route("GET", "/batches", "batches_page"),
    route("GET", "/batches/{batch:batch}", "batch_page"),
    route("POST", "/batches/{batch:batch}/{control:control}", "batch_control"),
    route("GET", "/api/me", "api_me", "api"),
    route("GET", "/api/cases", "api_queue", "api"),
    route("GET", "/api/cases/{case}", "api_case", "api"),
    route("POST", "/api/cases/{case}/unmask", "api_unmask", "api"),
    route("POST", "/api/cases/{case}/actions/{action:action}", "api_act", "api"),
    route("GET", "/api/pregnancies/{pregnancy}", "api_pregnancy", "api"),
    route("POST", "/api/uploads/{traceer}/reprocess", "api_reprocess", "api"),
    route("POST", "/api/search", "api_search", "api"),
    route("GET", "/api/audit", "api_audit", "api"),
    route("GET", "/api/audit/verify", "api_audit_verify", "api"),
    route("GET", "/api/users", "api_users", "api"),
    route("POST", "/api/users/{name}/{operation}", "api_user_operation", "api"),
    route("GET", "/api/batches", "api_batches", "api"),
    route("POST", "/api/batches", "api_batch_create", "api"),
    route("POST", "/api/batches/preview", "api_batch_preview", "api"),
    route("GET", "/api/batches/{batch:batch}", "api_batch", "api"),
    route("POST", "/api/batches/{batch:batch}/{control:control}", "api_batch_control", "api"),
)


@dataclass(frozen=True, slots=True)
class Match:
    route: Route
    params: Mapping[str, object]


class MethodNotAllowedError(Exception):
    """The path is known, the method is not; ``allowed`` is for the ``Allow`` header."""

    def __init__(self, allowed: Sequence[str]) -> None:
        super().__init__("method not allowed")
        self.allowed = tuple(allowed)


_ORDER: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


class Router:
    def __init__(
        self, routes: Sequence[Route], converters: Mapping[str, Converter] = CONVERTERS
    ) -> None:
        for r in routes:
            for segment in r.segments:
                _, _, converter = segment.strip("{}").partition(":")
                if segment.startswith("{") and converter and converter not in converters:
                    raise ValueError(f"{r.path}: no converter {converter!r}")
        self.routes = tuple(routes)
        self._converters = converters

    def resolve(self, method: str, segments: Sequence[str]) -> Match | None:
        """The route for ``method`` at ``segments`` and its parameters; None when no route
        has this path; :class:`MethodNotAllowedError` when routes have it, not this method."""
        allowed: set[str] = set()
        for r in self.routes:
            params = self._match(r, segments)
            if params is None:
                continue
            if method in r.methods or (method == "HEAD" and "GET" in r.methods):
                return Match(r, params)
            allowed |= r.methods
        if not allowed:
            return None
        if "GET" in allowed:
            allowed.add("HEAD")
        known = [m for m in _ORDER if m in allowed]
        raise MethodNotAllowedError(known + sorted(allowed - set(known)))

    def _match(self, r: Route, segments: Sequence[str]) -> dict[str, object] | None:
        pattern = r.segments
        if len(pattern) != len(segments):
            return None
        params: dict[str, object] = {}
        for want, got in zip(pattern, segments, strict=True):
            if not (want.startswith("{") and want.endswith("}")):
                if want != got:
                    return None
                continue
            name, _, converter = want[1:-1].partition(":")
            if not got:
                return None
            if converter:
                try:
                    params[name] = self._converters[converter](got)
                except ValueError:
                    return None
            else:
                params[name] = got
        return params
