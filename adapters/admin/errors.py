"""How the admin site answers what went wrong: every error's HTTP status is decided here,
in :func:`problem`, and nowhere else.

Every error the site answers has an :class:`~gateway.errors.ErrorKind` (what went wrong,
not how HTTP says it), and :data:`STATUS_BY_KIND` is the site's one table from kind to
status, for pages and the JSON API alike. The site's own refusals are :class:`SiteError`
with a kind; the core's errors (:class:`~gateway.admin.cases.ActionRefusedError`,
:class:`~gateway.admin.search.SearchRefusedError`, a missing right, a missing case or
batch, an unreachable store) bring their kind along. A method a route does not declare is
the one answer that is HTTP's own (405). Anything else is an internal error. The site
shows the answer as a page, the API as ``application/problem+json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from adapters.admin.routes import MethodNotAllowedError
from gateway.admin.cases import ActionRefusedError
from gateway.admin.search import SearchRefusedError
from gateway.errors import ErrorKind, GatewayError
from gateway.ports.admin import NotAllowedError
from gateway.ports.messages import StoreUnavailableError

__all__ = ["STATUS_BY_KIND", "Problem", "RedirectError", "SiteError", "problem"]


# The site's one mapping of error kinds to statuses (pages and JSON API alike).
STATUS_BY_KIND: Final[Mapping[ErrorKind, int]] = MappingProxyType(
    {
        ErrorKind.INVALID: 400,
        ErrorKind.NOT_FOUND: 404,
        ErrorKind.CONFLICT: 409,
        ErrorKind.NOT_ALLOWED: 403,
        ErrorKind.UNAUTHENTICATED: 401,
        ErrorKind.THROTTLED: 429,
        ErrorKind.UNAVAILABLE: 503,
        ErrorKind.BUSY: 503,
        ErrorKind.MISCONFIGURED: 500,
        ErrorKind.INTERNAL: 500,
    }
)
METHOD_NOT_ALLOWED: Final = 405  # HTTP's own refusal: a method the route does not declare


class SiteError(Exception):
    """A request the site refuses: ``kind`` says what went wrong, ``code`` is for
    machines, ``message`` (Dutch) for people."""

    def __init__(self, kind: ErrorKind, code: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.code, self.message = kind, code, message

    @property
    def status(self) -> int:
        return STATUS_BY_KIND[self.kind]


class RedirectError(Exception):
    """Not an error: ends a request with 303 See Other."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


@dataclass(frozen=True, slots=True)
class Problem:
    """An error as the site answers it."""

    status: int
    code: str
    message: str
    kind: ErrorKind


def problem(exc: object) -> Problem:
    """The answer to ``exc``, raised while handling a request."""
    if isinstance(exc, SiteError):
        return Problem(exc.status, exc.code, exc.message, exc.kind)
    if isinstance(exc, MethodNotAllowedError):
        message = f"Deze methode kan hier niet; wel: {', '.join(exc.allowed)}."
        return Problem(METHOD_NOT_ALLOWED, "methode", message, ErrorKind.INVALID)
    if isinstance(exc, NotAllowedError):
        return _problem(exc, "Uw rol geeft geen toegang tot deze pagina of actie.")
    if isinstance(exc, (ActionRefusedError, SearchRefusedError)):
        return _problem(exc, str(exc))
    if isinstance(exc, LookupError):
        what = "batch" if str(exc).startswith("batch:") else "zaak"
        message = f"Deze {what} bestaat niet."
        if isinstance(exc, GatewayError):
            return _problem(exc, message)
        return Problem(
            STATUS_BY_KIND[ErrorKind.NOT_FOUND], "onbekend", message, ErrorKind.NOT_FOUND
        )
    if isinstance(exc, StoreUnavailableError):
        return _problem(
            exc, "De opslag is nu niet bereikbaar; er is niets veranderd. Probeer het later."
        )
    kind = ErrorKind.INTERNAL
    return Problem(STATUS_BY_KIND[kind], "interne-fout", "Er ging iets onverwachts mis.", kind)


def _problem(exc: GatewayError, message: str) -> Problem:
    """A core error's answer: the status its kind has here, its own reason code."""
    return Problem(STATUS_BY_KIND[exc.kind], exc.code, message, exc.kind)
